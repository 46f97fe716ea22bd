"""Valkey and Redis OSS users: the engine unit (ACL rules as data, the managed-user services, redis-py I/O).

One function reaches a user three ways, chosen by the secret and each bound to it by something its editor cannot
write: an ElastiCache user (``user_arn``; ``ModifyUser``, the user's tag naming the secret), a MemoryDB user
(``user_arn``; ``UpdateUser``, the same tag), or a user of a self-managed server (``masterarn``: a master whose ACL
rights change the user the current secret logs in as). :mod:`.acl` builds and reads ACL rules (pure),
:mod:`.users` calls the two services, :mod:`.engine` talks to the server.
"""

from __future__ import annotations

from rotation_core.registry import AwsGrant, EngineSpec, SettingSpec
from rotation_core.settings import Strategy


def _managed_users(parameter: str, users: str, service: str, arn_path: str, operations: tuple[str, ...]) -> AwsGrant:
    """What the function may do to the users of one managing service: describe, read tags, change (by ARN pattern)."""
    return AwsGrant(
        sid=f"Change{parameter.removeprefix('Valkey')}BoundToTheirSecrets",
        actions=tuple(f"{service}:{operation}" for operation in operations),
        resource=f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{arn_path}${{%s}}",
        parameter=parameter,
        default="rotation-*",
        description=f"{users} the Valkey/Redis function may describe and change (IAM wildcards * and ?); each must "
        "also carry the tag naming its secret",
    )


ENGINE = EngineSpec(
    name="valkey",
    display_name="Valkey/Redis OSS",
    implementation="rotation_core.engines.valkey.engine:ValkeyEngine",
    secret_engines=frozenset({"valkey", "redis"}),
    default_port=6379,
    strategies=(Strategy.DUAL_PASSWORD,),
    driver="redis",
    # AWS's ElastiCache user rotation function's default (the service refuses some of these in passwords).
    default_exclude_characters="/@\"'\\",
    template_name="Valkey",
    settings=(
        SettingSpec(
            "MAX_WAITING_TIME_FOR_ACTIVE_IN_SECONDS",
            "is how long a step waits for an ElastiCache or MemoryDB user to be active again after a change (keep "
            "DatabaseFunctionTimeout above it; a step that runs out of time is retried by Secrets Manager)",
            "45",
            (0, 840),
        ),
        SettingSpec(
            "WAITING_RETRY_INTERVAL_IN_SECONDS",
            "between two DescribeUsers calls while a user is modifying",
            "5",
            (0, 60),
        ),
        SettingSpec(
            "ALLOW_PRIVILEGED_USERS",
            "lists, comma-separated, the self-managed users the master may change although their ACL allows "
            "@admin or @dangerous commands or every key (docs/engines/valkey.md). Empty: none; a secret's editor "
            "could otherwise aim a master at them. The default user and the master's own are never changed",
            "",
        ),
    ),
    uses_rds=False,
    aws_grants=(
        _managed_users(
            "ValkeyElastiCacheUsers",
            "IDs of the ElastiCache users",
            "elasticache",
            "user:",
            ("DescribeUsers", "ListTagsForResource", "ModifyUser"),
        ),
        _managed_users(
            "ValkeyMemoryDbUsers",
            "Names of the MemoryDB users",
            "memorydb",
            "user/",
            ("DescribeUsers", "ListTags", "UpdateUser"),
        ),
    ),
)
