"""Valkey/Redis engine without a server: the secret's forms, ACL rules as data, the managed users' binding."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from rotation_core.engines.valkey.acl import (
    AclUser,
    allows,
    parse_getuser,
    password_digest,
    privileges,
    set_passwords_command,
    wanted_digests,
)
from rotation_core.engines.valkey.engine import ValkeyEngine
from rotation_core.engines.valkey.users import BINDING_TAG, ManagedUsers, UserArn
from rotation_core.errors import Category, ConfigurationError, ConfusedDeputyError, SecretFormatError, TargetError
from rotation_core.settings import Settings

EC_ARN = "arn:aws:elasticache:us-east-1:123456789012:user:rotation-app"
MDB_ARN = "arn:aws:memorydb:us-east-1:123456789012:user/app"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf"
MEMBERS = {
    "admin": frozenset({"acl|setuser", "config|set", "shutdown"}),
    "dangerous": frozenset({"acl|setuser", "config|set", "keys", "flushall", "shutdown"}),
    "read": frozenset({"get", "keys", "scan"}),
    "write": frozenset({"set", "del", "flushall"}),
}


def engine(**settings: Any) -> ValkeyEngine:
    return ValkeyEngine(Settings(**settings), users=ManagedUsers(Settings(), client_factory=lambda *_: None))


# --- the secret ----------------------------------------------------------------------------------------------


def test_valkey_parse_aws_elasticache_secret_without_host_or_password_is_a_managed_login() -> None:
    login = engine().parse_login({"user_arn": EC_ARN, "username": "app"}, "current")

    assert (login.user_arn, login.host, login.password, login.has_endpoint) == (EC_ARN, "", "", False)


def test_valkey_parse_pending_secret_without_password_refused() -> None:
    with pytest.raises(SecretFormatError, match="password"):
        engine().parse_login({"user_arn": EC_ARN, "username": "app"}, "pending")


def test_valkey_parse_self_managed_secret_needs_host() -> None:
    with pytest.raises(SecretFormatError, match='neither "user_arn"'):
        engine().parse_login({"username": "app", "password": "x" * 20, "masterarn": SECRET_ARN}, "current")


def test_valkey_parse_user_arn_and_masterarn_together_refused() -> None:
    secret = {"user_arn": MDB_ARN, "username": "app", "password": "x" * 20, "masterarn": SECRET_ARN}

    with pytest.raises(SecretFormatError, match='both "user_arn"'):
        engine().parse_login(secret, "current")


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:elasticache:us-east-1:123456789012:user/app",  # ElastiCache ARNs use ':'
        "arn:aws:memorydb:us-east-1:123456789012:user:app",  # MemoryDB ARNs use '/'
        "arn:aws:rds:us-east-1:123456789012:db:app",
        "arn:aws:elasticache:us-east-1:123456789012:user:app\nforged",
        42,
    ],
)
def test_valkey_parse_malformed_user_arn_refused(arn: object) -> None:
    with pytest.raises(SecretFormatError, match="user_arn"):
        engine().parse_login({"user_arn": arn, "username": "app", "password": "x" * 20}, "current")


def test_valkey_parse_username_with_space_refused() -> None:
    secret = {"host": "cache.example.com", "username": "app +@all", "password": "x" * 20}

    with pytest.raises(SecretFormatError, match="white space"):
        engine().parse_login(secret, "current")


def test_valkey_parse_self_managed_defaults_port_and_verified_tls() -> None:
    login = engine().parse_login({"host": "cache.example.com", "username": "app", "password": "x" * 20}, "current")

    assert (login.port, login.tls.value, login.user_arn) == (6379, "verify-full", None)


def test_valkey_engine_refuses_the_single_user_and_clone_operations() -> None:
    with pytest.raises(ConfigurationError, match="dual_password"):
        engine().set_own_password(None, None, "x")  # type: ignore[arg-type]


# --- ACL rules -----------------------------------------------------------------------------------------------


def user(commands: str, keys: str = "~app:*", flags: tuple[str, ...] = ("on",), selectors: int = 0) -> AclUser:
    return AclUser("app", frozenset(flags), frozenset(), tuple(commands.split()), tuple(keys.split()), selectors)


def test_valkey_parse_getuser_resp2_reply() -> None:
    reply = [b"flags", [b"on"], b"passwords", [b"AB" * 32], b"commands", b"-@all +get", b"keys", b"~app:*",
             b"channels", b"", b"selectors", []]  # fmt: skip

    parsed = parse_getuser("app", reply)

    assert parsed is not None
    assert (parsed.flags, parsed.password_digests, parsed.commands, parsed.keys) == (
        frozenset({"on"}), frozenset({"ab" * 32}), ("-@all", "+get"), ("~app:*",),
    )  # fmt: skip
    assert parse_getuser("app", None) is None


@pytest.mark.parametrize(
    ("commands", "keys", "flags", "expected"),
    [
        ("-@all +get +set", "~app:*", ("on",), []),
        ("-@all +@read +@write -@dangerous", "~app:*", ("on",), []),
        ("+@all", "~app:*", ("on",), ["every command (+@all)", "@admin", "@dangerous"]),
        ("-@all +get", "~*", ("on",), ["every key (~*)"]),
        ("-@all +get", "%R~*", ("on",), ["every key (~*)"]),
        ("-@all +get", "", ("on", "allkeys"), ["every key (~*)"]),
        ("-@all +@read", "~app:*", ("on",), ["@dangerous"]),  # KEYS is @read and @dangerous
        ("-@all +config|set", "~app:*", ("on",), ["@admin", "@dangerous"]),
        ("-@all +config", "~app:*", ("on",), ["@admin", "@dangerous"]),
        ("-@all +@admin", "~app:*", ("on",), ["@admin", "@dangerous"]),
        ("allcommands", "~app:*", ("on",), ["every command (+@all)", "@admin", "@dangerous"]),
    ],
)
def test_valkey_privileges_found_from_rules_and_categories(
    commands: str, keys: str, flags: tuple[str, ...], expected: list[str]
) -> None:
    found = privileges(user(commands, keys, flags), MEMBERS)

    assert [item.split(" ")[0] if item.startswith("@") else item for item in found] == expected


def test_valkey_privileges_selectors_are_not_evaluated_so_refused() -> None:
    assert privileges(user("-@all +get", selectors=1), MEMBERS) == ["ACL selectors (not evaluated)"]


def test_valkey_allows_later_rule_wins() -> None:
    assert allows(("-@all", "+acl|setuser"), "acl|setuser", MEMBERS)
    assert not allows(("+@all", "-@dangerous"), "acl|setuser", MEMBERS)
    assert not allows(("-@all", "+acl|getuser"), "acl|setuser", MEMBERS)


def test_valkey_set_passwords_command_sends_digests_never_passwords() -> None:
    command = set_passwords_command("app", ("Current-Password-000001", "New-Password-0000000001"))

    assert command[:4] == ("ACL", "SETUSER", "app", "resetpass")
    assert set(command[4:]) == {"#" + password_digest("Current-Password-000001"),
                                "#" + password_digest("New-Password-0000000001")}  # fmt: skip
    assert not any("Password" in word for word in command)


def test_valkey_wanted_digests_first_rotation_only_the_new_password() -> None:
    assert wanted_digests("", "New-Password-0000000001") == frozenset({password_digest("New-Password-0000000001")})


# --- managed users -------------------------------------------------------------------------------------------


class FakeElastiCache:
    """boto3's ElastiCache client as far as the engine calls it, answering in the service's shapes."""

    def __init__(self, tags: Mapping[str, str], *, name: str = "app", auth: str = "password") -> None:
        self.user = {"UserId": "rotation-app", "UserName": name, "Status": "active", "ARN": EC_ARN,
                     "Authentication": {"Type": auth, "PasswordCount": 1}}  # fmt: skip
        self.tags = dict(tags)
        self.calls: list[str] = []
        self.statuses: list[str] = []

    def describe_users(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("DescribeUsers")
        if self.statuses:
            self.user["Status"] = self.statuses.pop(0)
        return {"Users": [self.user]}

    def list_tags_for_resource(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("ListTagsForResource")
        return {"TagList": [{"Key": k, "Value": v} for k, v in self.tags.items()]}

    def modify_user(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("ModifyUser")
        return self.user


def users_with(client: FakeElastiCache, **settings: Any) -> ManagedUsers:
    clock = iter(range(1000))
    return ManagedUsers(Settings(**settings), client_factory=lambda *_: client, sleep=lambda _s: None,
                        clock=lambda: float(next(clock)))  # fmt: skip


@pytest.mark.parametrize(
    "tags", [{}, {BINDING_TAG: SECRET_ARN.replace("AbCdEf", "XyZxYz")}, {"other": SECRET_ARN}], ids=str
)
def test_valkey_managed_user_not_tagged_with_this_secret_refused_before_any_change(tags: dict[str, str]) -> None:
    client = FakeElastiCache(tags)

    with pytest.raises(ConfusedDeputyError, match=BINDING_TAG):
        users_with(client).bound_user(UserArn.parse(EC_ARN, "current"), username="app", secret_arn=SECRET_ARN)

    assert "ModifyUser" not in client.calls


def test_valkey_managed_user_with_another_name_than_the_secret_refused() -> None:
    client = FakeElastiCache({BINDING_TAG: SECRET_ARN}, name="admin")

    with pytest.raises(ConfusedDeputyError, match="named 'admin'"):
        users_with(client).bound_user(UserArn.parse(EC_ARN, "current"), username="app", secret_arn=SECRET_ARN)


def test_valkey_managed_user_with_iam_authentication_refused() -> None:
    client = FakeElastiCache({BINDING_TAG: SECRET_ARN}, auth="iam")

    with pytest.raises(ConfigurationError, match="IAM"):
        users_with(client).bound_user(UserArn.parse(EC_ARN, "current"), username="app", secret_arn=SECRET_ARN)


def test_valkey_managed_user_wait_until_active_polls_then_gives_up_with_verification() -> None:
    client = FakeElastiCache({BINDING_TAG: SECRET_ARN})
    client.statuses = ["modifying", "modifying", "active"]

    assert users_with(client, max_wait_for_active=10).wait_until_active(
        UserArn.parse(EC_ARN, "c"), why="test"
    ).status == "active"  # fmt: skip
    client.statuses = ["modifying"] * 50
    with pytest.raises(TargetError, match="still 'modifying'") as raised:
        users_with(client, max_wait_for_active=3).wait_until_active(UserArn.parse(EC_ARN, "c"), why="test")
    assert raised.value.category is Category.VERIFICATION


def test_valkey_managed_access_denied_is_a_permission_naming_the_parameter() -> None:
    from botocore.exceptions import ClientError

    class Denied(FakeElastiCache):
        def describe_users(self, **kwargs: Any) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "DescribeUsers")

    with pytest.raises(TargetError, match="ValkeyElastiCacheUsers") as raised:
        users_with(Denied({})).describe(UserArn.parse(EC_ARN, "c"))
    assert raised.value.category is Category.PERMISSION
