"""moto's ElastiCache and MemoryDB users, made to act on real Valkey/Redis servers (the Valkey engine's emulator).

moto 5.2 has ElastiCache ``CreateUser``/``DescribeUsers``/tags but no ``ModifyUser``, and MemoryDB users whose
changes reach no server. This module adds ``ModifyUser`` and maps both services' users onto the ACL of a real local
server (:func:`place`), as :mod:`rotation_local.rds_emulator` maps RDS onto real database servers: a password set
through the API really logs in, and the replaced one is really refused. Requests and responses keep the services'
published definitions (botocore's ``elasticache/2015-02-02`` and ``memorydb/2021-01-01`` ``service-2.json``;
``tests/unit/test_valkey_emulator.py`` holds them to it): ``ModifyUser`` takes ``UserId``, ``Passwords`` (one or two,
16 to 128 characters, as ``CreateUser`` in moto) or ``AuthenticationMode``, ``AccessString``, ``AppendAccessString``,
``NoPasswordRequired``, answers the ``User`` shape, and fails with ``UserNotFound`` or ``InvalidUserState`` (a user
that is not ``active``); MemoryDB's ``UpdateUser`` fails with ``InvalidUserStateFault`` likewise.

A placed user's change is applied to the server when the service reports it ``active`` again: by default at once
(the first ``DescribeUsers`` after the change says ``active``); with ``modifying_describes=N`` the user stays
``modifying`` for N ``DescribeUsers`` calls and the server keeps the old passwords until then, so a client that
logs in before ``active`` fails, as it would at AWS. Passwords reach the server as SHA-256 digests only.
Works for moto in-process and for :class:`rotation_local.emulator.EmulatorServer`, whose requests this process serves.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rotation_local.emulator import DEFAULT_ACCOUNT, DEFAULT_REGION

#: ElastiCache's documented password length for users (moto's CreateUser enforces the minimum too).
MIN_PASSWORD, MAX_PASSWORD = 16, 128
MAX_PASSWORDS = 2  # "You are allowed up to two." (ModifyUserMessage.Passwords)


class AclServer(Protocol):
    """What a placed server offers: its users' passwords set by digest (``ACL SETUSER ... resetpass #...``)."""

    def set_user_passwords(self, username: str, digests: list[str]) -> None: ...


@dataclass
class _Placement:
    server: AclServer
    username: str
    modifying_describes: int = 0
    left: int = 0  # DescribeUsers calls before the pending change is applied
    pending: list[str] | None = field(default=None, repr=False)  # digests waiting to reach the server


_placements: dict[str, _Placement] = {}
_lock = threading.Lock()


def digest(password: str) -> str:
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def place(user_arn: str, server: AclServer, username: str, *, modifying_describes: int = 0) -> None:
    """The ElastiCache or MemoryDB user ``user_arn`` lives on ``server`` as ``username`` (ACL changes go there)."""
    apply_user_patches()
    with _lock:
        _placements[user_arn] = _Placement(server, username, modifying_describes)


def forget(user_arn: str) -> None:
    with _lock:
        _placements.pop(user_arn, None)


def _changed(user: Any, passwords: list[str]) -> None:
    """A user's passwords changed through the API: now ("active" at the next describe) or after N describes."""
    with _lock:
        placement = _placements.get(user.arn)
        if placement is None:
            return
        placement.pending = [digest(password) for password in passwords]
        placement.left = placement.modifying_describes
        user.status = "modifying"


def _described(user: Any) -> None:
    """A DescribeUsers answer is about to show ``user``: a change whose time has come reaches the server first."""
    with _lock:
        placement = _placements.get(getattr(user, "arn", ""))
        if placement is None or placement.pending is None:
            return
        if placement.left > 0:
            placement.left -= 1
            return
        placement.server.set_user_passwords(placement.username, placement.pending)
        placement.pending = None
        user.status = "active"


def _invalid_state_elasticache() -> Exception:
    from moto.elasticache.exceptions import ElastiCacheException

    class InvalidUserState(ElastiCacheException):
        code = "InvalidUserState"  # the error code service-2.json gives InvalidUserStateFault

    return InvalidUserState("The user is not in active state.")


def _check_passwords(passwords: list[str], error: Callable[[str], Exception]) -> None:
    if not passwords or len(passwords) > MAX_PASSWORDS:
        raise error(f"Between 1 and {MAX_PASSWORDS} passwords are allowed.")
    if any(not MIN_PASSWORD <= len(password) <= MAX_PASSWORD for password in passwords):
        raise error(f"Passwords length must be between {MIN_PASSWORD}-{MAX_PASSWORD} characters.")


@functools.cache
def apply_user_patches() -> None:
    """ElastiCache ModifyUser, and both services' user changes applied to placed servers. Runs once."""
    from moto.core.responses import ActionResult
    from moto.elasticache.exceptions import (
        InvalidParameterCombinationException,
        InvalidParameterValueException,
        UserNotFound,
    )
    from moto.elasticache.models import ElastiCacheBackend
    from moto.elasticache.responses import ElastiCacheResponse
    from moto.memorydb.exceptions import MemoryDBClientError
    from moto.memorydb.models import MemoryDBBackend

    def modify_user(  # noqa: PLR0917 (the API's parameters)
        self: Any,
        user_id: str,
        passwords: list[str] | None,
        access_string: str | None,
        append_access_string: str | None,
        no_password_required: bool | None,
        authentication_mode: dict[str, Any] | None,
    ) -> Any:
        if user_id not in self.users:
            raise UserNotFound(user_id)
        user = self.users[user_id]
        if user.status != "active":
            raise _invalid_state_elasticache()
        mode_passwords = (authentication_mode or {}).get("Passwords")
        if passwords and mode_passwords:
            raise InvalidParameterCombinationException(
                "Passwords provided via multiple arguments. Use only one argument"
            )
        new_passwords = passwords or mode_passwords
        if new_passwords is not None:
            _check_passwords(list(new_passwords), InvalidParameterValueException)
            user.passwords = list(new_passwords)
            user.authentication_type = "password"
            user.no_password_required = False
        elif no_password_required:
            user.passwords = []
            user.no_password_required = True
        if access_string is not None:
            user.access_string = access_string
        if append_access_string is not None:
            user.access_string = f"{user.access_string} {append_access_string}".strip()
        if new_passwords is not None:
            _changed(user, list(new_passwords))
        return user

    def modify_user_response(self: Any) -> Any:
        params = self._get_params()
        user = self.elasticache_backend.modify_user(
            user_id=params.get("UserId"),
            passwords=params.get("Passwords"),
            access_string=params.get("AccessString"),
            append_access_string=params.get("AppendAccessString"),
            no_password_required=self._get_bool_param("NoPasswordRequired"),
            authentication_mode=params.get("AuthenticationMode"),
        )
        return ActionResult(user)

    ElastiCacheBackend.modify_user = modify_user  # type: ignore[attr-defined]
    ElastiCacheResponse.modify_user = modify_user_response  # type: ignore[attr-defined]

    describe_elasticache = ElastiCacheBackend.describe_users

    def describe_elasticache_users(self: Any, user_id: str | None) -> Any:
        users = describe_elasticache(self, user_id)
        for user in users:
            _described(user)
        return users

    ElastiCacheBackend.describe_users = describe_elasticache_users  # type: ignore[method-assign]

    class InvalidUserStateError(MemoryDBClientError):
        def __init__(self, msg: str) -> None:
            super().__init__("InvalidUserStateFault", msg)

    class InvalidParameterError(MemoryDBClientError):
        def __init__(self, msg: str) -> None:
            super().__init__("InvalidParameterValueException", msg)

    update_memorydb = MemoryDBBackend.update_user

    def update_memorydb_user(
        self: Any, user_name: str, authentication_mode: dict[str, Any] | None, access_string: str | None
    ) -> Any:
        current = self.users.get(user_name)
        if current is not None and current.status != "active":
            raise InvalidUserStateError(f"User {user_name} is not active.")
        passwords = (authentication_mode or {}).get("Passwords")
        if passwords is not None:
            _check_passwords(list(passwords), InvalidParameterError)
        user = update_memorydb(self, user_name, authentication_mode, access_string)
        if passwords is not None:
            _changed(user, list(passwords))
        return user

    MemoryDBBackend.update_user = update_memorydb_user  # type: ignore[method-assign]

    describe_memorydb = MemoryDBBackend.describe_users

    def describe_memorydb_users(self: Any, user_name: str | None = None, filters: Any = None) -> Any:
        users = describe_memorydb(self, user_name, filters)
        for user in users:
            _described(user)
        return users

    MemoryDBBackend.describe_users = describe_memorydb_users  # type: ignore[method-assign]


def elasticache_backend(account_id: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION) -> Any:
    from moto.backends import get_backend

    return get_backend("elasticache")[account_id][region]


def memorydb_backend(account_id: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION) -> Any:
    from moto.backends import get_backend

    return get_backend("memorydb")[account_id][region]


def create_elasticache_user(user_id: str, username: str, password: str, access_string: str, engine: str) -> str:
    """An ElastiCache user (what an operator's ``create-user`` makes); its ARN."""
    apply_user_patches()
    user = elasticache_backend().create_user(
        user_id=user_id, user_name=username, engine=engine, passwords=[password], access_string=access_string,
        no_password_required=False, authentication_type="password", tags=None,
    )  # fmt: skip
    return str(user.arn)


def create_memorydb_user(username: str, password: str, access_string: str) -> str:
    """A MemoryDB user (what an operator's ``create-user`` makes); its ARN."""
    apply_user_patches()
    mode = {"Type": "password", "Passwords": [password]}
    user = memorydb_backend().create_user(user_name=username, authentication_mode=mode, access_string=access_string)
    return str(user.arn)


def tag_user(user_arn: str, key: str, value: str) -> None:
    """What an operator's ``add-tags-to-resource`` (ElastiCache) or ``tag-resource`` (MemoryDB) does."""
    tags = [{"Key": key, "Value": value}]
    if ":elasticache:" in user_arn:
        elasticache_backend().add_tags_to_resource(user_arn, tags)
    else:
        memorydb_backend().tag_resource(user_arn, tags)


def user_status(user_arn: str) -> str:
    """The status the service keeps for a user, read without a DescribeUsers call (which could advance it)."""
    backend = elasticache_backend() if ":elasticache:" in user_arn else memorydb_backend()
    return next(str(user.status) for user in backend.users.values() if user.arn == user_arn)
