"""Users an AWS service manages: ElastiCache (``ModifyUser``) and MemoryDB (``UpdateUser``), through their APIs.

The operations and shapes are the services' published definitions (botocore's ``elasticache/2015-02-02`` and
``memorydb/2021-01-01`` ``service-2.json``): ``DescribeUsers`` answers ``Status`` ("active", "modifying",
"deleting"), ``Authentication`` (``Type``: password, no-password, iam; ``PasswordCount``, at most two) and the name
the server knows the user by (ElastiCache ``UserName``, MemoryDB ``Name``); a change is refused with
``InvalidUserStateFault`` while the user is not active; ``ListTagsForResource`` / ``ListTags`` give its tags.

Binding: a user is changed for a secret only when its tag :data:`BINDING_TAG` holds that secret's exact ARN, read
before any change. Someone who can only edit the secret cannot set a tag on a user, and the function's role may
touch only the users the template's ARN patterns name.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rotation_core.aws import bounded_client
from rotation_core.errors import Category, ConfigurationError, ConfusedDeputyError, SecretFormatError, TargetError
from rotation_core.errors import describe as shown
from rotation_core.log import get_logger, redact
from rotation_core.settings import Settings

#: The tag a managed user must carry, its value the ARN of the one secret whose rotation may change it.
BINDING_TAG = "secrets-rotation:secret-arn"
ELASTICACHE, MEMORYDB = "elasticache", "memorydb"
_TITLES = {ELASTICACHE: "ElastiCache", MEMORYDB: "MemoryDB"}
_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):(?P<service>elasticache|memorydb):(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"user(?P<sep>[:/])(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,127})$"
)
_HINTS = {
    "AccessDenied": "the function's role may not do this for the user: its ARN must match the ValkeyElastiCacheUsers "
    "or ValkeyMemoryDbUsers parameter of the stack",
    "Throttling": "the account is over the service's request rate; the rotation can be retried",
    "InvalidUserState": "the user is being changed by someone else; the rotation can be retried",
    "InvalidParameterValue": "the service refused the request: with ElastiCache, passwords need 16 to 128 printable "
    "characters (PasswordLength, ValkeyExcludeCharacters)",
}


@dataclass(frozen=True)
class UserArn:
    """A managed user's ARN, as the secret's ``user_arn`` holds it (AWS's format for each service)."""

    arn: str
    service: str  # ELASTICACHE | MEMORYDB
    region: str
    user_id: str  # ElastiCache: the user ID; MemoryDB: the user name

    @property
    def title(self) -> str:
        return f"the {_TITLES[self.service]} user {shown(self.user_id)}"

    @classmethod
    def parse(cls, text: object, label: str) -> UserArn:
        """Validate ``user_arn``: ``arn:aws:elasticache:<region>:<account>:user:<id>`` or
        ``arn:aws:memorydb:<region>:<account>:user/<name>``."""
        match = _ARN.match(text) if isinstance(text, str) else None
        if not isinstance(text, str) or match is None or (match["service"] == ELASTICACHE) != (match["sep"] == ":"):
            raise SecretFormatError(
                f'the {label} secret\'s "user_arn" is not the ARN of an ElastiCache user '
                "(arn:aws:elasticache:<region>:<account>:user:<user id>) or a MemoryDB user "
                "(arn:aws:memorydb:<region>:<account>:user/<user name>)"
            )
        return cls(arn=text, service=match["service"], region=match["region"], user_id=match["name"])


@dataclass(frozen=True)
class ManagedUser:
    """What ``DescribeUsers`` says about one user."""

    arn: str
    name: str  # the name the server knows (AUTH <name> ...)
    status: str
    authentication: str
    password_count: int


class ManagedUsers:
    """ElastiCache and MemoryDB users: described, proven bound to a secret, their passwords set, waited for.

    ``client_factory(service, region)`` makes a boto3 client (tests inject theirs); ``sleep`` and ``clock`` pace the
    wait for ``active``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        client_factory: Callable[[str, str], Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._factory = client_factory or (lambda service, region: bounded_client(service, None, region))
        self._clients: dict[tuple[str, str], Any] = {}
        self._sleep = sleep
        self._clock = clock

    def _client(self, arn: UserArn) -> Any:
        key = (arn.service, arn.region)
        if key not in self._clients:
            self._clients[key] = self._factory(*key)
        return self._clients[key]

    # --- reading ---------------------------------------------------------------------------------------------

    def describe(self, arn: UserArn) -> ManagedUser:
        client = self._client(arn)
        if arn.service == ELASTICACHE:
            answer = self._call(arn, "DescribeUsers", client.describe_users, UserId=arn.user_id)
            users = [u for u in answer.get("Users", []) if u.get("UserId") == arn.user_id]
            name_key = "UserName"
        else:
            answer = self._call(arn, "DescribeUsers", client.describe_users, UserName=arn.user_id)
            users = [u for u in answer.get("Users", []) if u.get("Name") == arn.user_id]
            name_key = "Name"
        if len(users) != 1:
            raise SecretFormatError(f'the secret\'s "user_arn" names {arn.title}, which does not exist in this account')
        user = users[0]
        if str(user.get("ARN", arn.arn)) != arn.arn:
            raise ConfusedDeputyError(f'{arn.title} has another ARN than the secret\'s "user_arn"; correct the secret')
        authentication = user.get("Authentication") or {}
        return ManagedUser(
            arn=arn.arn,
            name=str(user.get(name_key, "")),
            status=str(user.get("Status", "")),
            authentication=str(authentication.get("Type", "")),
            password_count=int(authentication.get("PasswordCount") or 0),
        )

    def tags(self, arn: UserArn) -> dict[str, str]:
        client = self._client(arn)
        if arn.service == ELASTICACHE:
            answer = self._call(arn, "ListTagsForResource", client.list_tags_for_resource, ResourceName=arn.arn)
        else:
            answer = self._call(arn, "ListTags", client.list_tags, ResourceArn=arn.arn)
        return {str(tag.get("Key")): str(tag.get("Value") or "") for tag in answer.get("TagList", [])}

    def bound_user(self, arn: UserArn, *, username: str, secret_arn: str) -> ManagedUser:
        """The user, after proving it is the secret's: its tag names the secret, its name is the secret's username.

        Raises :class:`ConfusedDeputyError` (nothing changed) when either does not hold, and refuses users that do
        not authenticate with passwords (IAM).
        """
        user = self.describe(arn)
        bound_to = self.tags(arn).get(BINDING_TAG)
        if not secret_arn or bound_to != secret_arn:
            found = "has no such tag" if bound_to is None else f"names {shown(bound_to)}"
            raise ConfusedDeputyError(
                f'the secret\'s "user_arn" names {arn.title}, which is not bound to this secret: its tag '
                f"{BINDING_TAG} {found}. A secret's editor cannot choose the user: tag the user with this secret's "
                f"ARN (aws {arn.service} {'add-tags-to-resource' if arn.service == ELASTICACHE else 'tag-resource'}) "
                "if it is the right one; nothing was changed"
            )
        if user.name != username:
            raise ConfusedDeputyError(
                f'{arn.title} is named {shown(user.name)} on the server, but the secret\'s "username" is '
                f"{shown(username)}; a rotation never changes another user than the one the secret logs in as. "
                "Correct the secret; nothing was changed"
            )
        if user.authentication == "iam":
            raise ConfigurationError(
                f"{arn.title} authenticates with IAM, not passwords: there is nothing to rotate. Use IAM "
                "authentication tokens, or move the user to password authentication"
            )
        if user.status == "deleting":
            raise TargetError(f"{arn.title} is being deleted", category=Category.CONFIGURATION)
        return user

    def wait_until_active(self, arn: UserArn, *, why: str) -> ManagedUser:
        """Describe the user until it is ``active`` (MAX_WAITING_TIME_FOR_ACTIVE_IN_SECONDS, every
        WAITING_RETRY_INTERVAL_IN_SECONDS), as AWS's ElastiCache function does."""
        deadline = self._clock() + self._settings.max_wait_for_active
        while True:
            user = self.describe(arn)
            if user.status == "active":
                return user
            if self._clock() >= deadline:
                raise TargetError(
                    f"{arn.title} is still {shown(user.status)} after {self._settings.max_wait_for_active} s ({why}); "
                    "Secrets Manager retries the rotation. If changes take longer, raise "
                    "MAX_WAITING_TIME_FOR_ACTIVE_IN_SECONDS (and DatabaseFunctionTimeout above it)",
                    category=Category.VERIFICATION,
                )
            get_logger().info(f"{arn.title} is {user.status}; waiting for it to be active ({why})")
            self._sleep(self._settings.wait_interval)

    # --- changing --------------------------------------------------------------------------------------------

    def set_passwords(self, arn: UserArn, passwords: list[str]) -> None:
        """The user's passwords become exactly ``passwords`` (one or two), through the service."""
        client = self._client(arn)
        if arn.service == ELASTICACHE:
            self._call(arn, "ModifyUser", client.modify_user, UserId=arn.user_id, Passwords=passwords)
        else:
            mode = {"Type": "password", "Passwords": passwords}
            self._call(arn, "UpdateUser", client.update_user, UserName=arn.user_id, AuthenticationMode=mode)

    def _call(self, arn: UserArn, operation: str, method: Callable[..., Any], **kwargs: Any) -> Mapping[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        service = _TITLES[arn.service]
        try:
            answer: Mapping[str, Any] = method(**kwargs)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            stem = code.removesuffix("Exception").removesuffix("Fault")
            if stem in ("UserNotFound",):
                raise SecretFormatError(
                    f'the secret\'s "user_arn" names {arn.title}, which does not exist in this account'
                ) from None
            hint = _HINTS.get(stem, "see the service's message")
            category = Category.PERMISSION if stem == "AccessDenied" else Category.UNREACHABLE
            message = redact(str(error.response.get("Error", {}).get("Message", "")))[:300]
            raise TargetError(
                f"{service} {operation} for {arn.title} failed ({shown(code)}: {shown(message)}); {hint}",
                category=category,
            ) from None
        except BotoCoreError as error:
            raise TargetError(
                f"{service} could not be reached for {operation} ({type(error).__name__}): in a VPC, give the function "
                f"a route to the {service} API (an interface VPC endpoint or a NAT gateway)",
                category=Category.UNREACHABLE,
            ) from None
        return answer
