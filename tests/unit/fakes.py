"""An in-memory database engine for unit tests of the state machine and the strategies."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rotation_core.engines.base import (
    CLONE_SUFFIX,
    ByteLimitedLogins,
    CloneRequest,
    DatabaseLogin,
    DualPasswordOutcome,
    DualPasswordRequest,
    Session,
)
from rotation_core.errors import Category, ConfusedDeputyError, TargetError, VerificationError
from rotation_core.handler import RotationHandler, database_handler
from rotation_core.registry import EngineSpec
from rotation_core.rotator import Rotator
from rotation_core.secrets import SecretStore
from rotation_core.settings import Settings, Strategy
from rotation_local import emulator, service

#: The fake's registry entry, for handlers built around it (its class is injected: engine_factory).
FAKE_ENGINE = EngineSpec(
    name="fake",
    display_name="FakeSQL",
    implementation="unit.fakes:FakeEngine",
    secret_engines=frozenset({"postgres"}),
    default_port=5432,
    strategies=(Strategy.SINGLE_USER, Strategy.ALTERNATING_USERS, Strategy.DUAL_PASSWORD),
    driver="",
    default_exclude_characters="",
    template_name="Fake",
)


@dataclass
class FakeUser:
    password: str
    acts_as: str | None = None
    secondary: str | None = None  # dual passwords: a second password that also logs in


@dataclass
class FakeDatabase:
    """What the fake server knows: users, who may manage users, and failure switches."""

    users: dict[str, FakeUser] = field(default_factory=dict)
    admins: set[str] = field(default_factory=set)
    privileged: set[str] = field(default_factory=set)  # users with superuser-class rights
    reachable: bool = True
    probe_fails: bool = False
    own_password_locked: bool = False  # the server would refuse a user's own password change
    dual_passwords: bool = True  # the server keeps a secondary password (MySQL 8.0.14+, not MariaDB)
    may_retain_own: set[str] = field(default_factory=set)  # users with APPLICATION_PASSWORD_ADMIN
    sessions: dict[str, int] = field(default_factory=dict)  # open sessions per user, for the drain check
    connections: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)  # where each connection went, in order
    changes: list[str] = field(default_factory=list)

    def password_of(self, username: str) -> str:
        return self.users[username].password


@dataclass
class FakeSession:
    database: FakeDatabase
    username: str
    closed: bool = False

    def close(self) -> None:
        self.closed = True


class FakeEngine(ByteLimitedLogins):
    display_name = "FakeSQL"
    engine_names = frozenset({"postgres"})
    default_port = 5432
    max_username_bytes = 63
    uses_rds = True

    def __init__(self, settings: Settings, database: FakeDatabase) -> None:
        self.settings = settings
        self.database = database

    def connect(self, login: DatabaseLogin) -> Session:
        self.database.connections.append(login.username)
        self.database.hosts.append(login.host)
        if not self.database.reachable:
            raise TargetError("FakeSQL is unreachable", category=Category.UNREACHABLE)
        user = self.database.users.get(login.username)
        if user is None or login.password not in (user.password, user.secondary):
            raise TargetError(f"FakeSQL login refused ({login.label} secret)", category=Category.AUTH_FAILED)
        return FakeSession(self.database, login.username)

    def set_own_password(self, session: Session, login: DatabaseLogin, new_password: str) -> None:
        assert isinstance(session, FakeSession)
        assert session.username == login.username
        self.database.users[login.username].password = new_password
        self.database.changes.append(f"self:{login.username}")

    def set_clone_password(self, admin: Session, request: CloneRequest) -> None:
        caller, original, target, new_password = request.caller, request.original, request.target, request.new_password
        assert isinstance(admin, FakeSession)
        assert isinstance(caller, FakeSession)
        assert not caller.closed  # the current login, still open
        if admin.username not in self.database.admins:
            raise TargetError("FakeSQL: permission denied", category=Category.PERMISSION)
        allow = request.allow_privileged
        self.check_pair(admin, caller=caller, original=original, target=target, allow_privileged=allow)
        user = self.database.users.setdefault(target, FakeUser(password=""))
        user.password = new_password
        if target != original:
            user.acts_as = original
        self.database.changes.append(f"admin:{target}")

    def probe(self, session: Session, query: str) -> None:
        if self.database.probe_fails:
            raise VerificationError("FakeSQL probe failed")

    def check_own_password(self, session: Session, login: DatabaseLogin) -> None:
        if self.database.own_password_locked:
            raise TargetError("FakeSQL: the user may not change its own password", category=Category.PERMISSION)

    def check_pair(
        self, admin: Session, *, caller: Session, original: str, target: str, allow_privileged: bool
    ) -> None:
        """The real engines' rules over the fake's model: an alternate is proven by ``acts_as`` (set only here)."""
        assert isinstance(admin, FakeSession)
        alternate = original + CLONE_SUFFIX
        if admin.username in (original, alternate):
            raise ConfusedDeputyError("FakeSQL: the pair includes the master's own login")
        pair = [name for name in (original, alternate) if name in self.database.users]
        if not allow_privileged and any(name in self.database.privileged for name in pair):
            raise ConfusedDeputyError("FakeSQL: the pair holds superuser-class rights (ALLOW_PRIVILEGED_USERS)")
        if alternate in self.database.users and self.database.users[alternate].acts_as != original:
            raise ConfusedDeputyError(f"FakeSQL: {alternate} is not the alternate of {original}")

    def check_clone_rights(self, admin: Session, *, caller: Session, original: str, target: str) -> None:
        assert isinstance(admin, FakeSession)
        assert isinstance(caller, FakeSession)
        assert not caller.closed
        if admin.username not in self.database.admins:
            raise TargetError("FakeSQL: the master may not manage users", category=Category.PERMISSION)

    # Dual passwords, as MySQL 8.0.14+ keeps them: a primary and a secondary password per user.

    def set_dual_password(self, session: Session, request: DualPasswordRequest) -> bool:
        """``ALTER USER USER() IDENTIFIED BY new REPLACE current RETAIN CURRENT PASSWORD``."""
        assert isinstance(session, FakeSession)
        self._require_dual()
        if session.username not in self.database.may_retain_own:
            raise TargetError("FakeSQL: APPLICATION_PASSWORD_ADMIN needed", category=Category.PERMISSION)
        user = self.database.users[session.username]
        if user.password != request.current_password:
            return False  # the server checks REPLACE against the primary only
        user.secondary, user.password = user.password, request.new_password
        self.database.changes.append(f"dual-self:{session.username}")
        return True

    def set_dual_password_as_admin(self, admin: Session, request: DualPasswordRequest) -> DualPasswordOutcome:
        assert isinstance(admin, FakeSession)
        assert isinstance(request.caller, FakeSession)
        assert not request.caller.closed
        self._require_dual()
        if admin.username not in self.database.admins:
            raise TargetError("FakeSQL: permission denied", category=Category.PERMISSION)
        user = self.database.users[request.caller.username]
        if user.password == request.new_password and user.secondary == request.current_password:
            return DualPasswordOutcome.ALREADY_SET
        outcome = DualPasswordOutcome.CHANGED
        if user.password != request.current_password:
            user.password = request.current_password  # the secondary stays as it is
            outcome = DualPasswordOutcome.RESTORED
        user.secondary, user.password = user.password, request.new_password
        self.database.changes.append(f"dual-admin:{request.caller.username}")
        return outcome

    def check_dual_password(self, session: Session, login: DatabaseLogin, *, admin: Session | None) -> None:
        assert isinstance(session, FakeSession)
        self._require_dual()
        if admin is None and session.username not in self.database.may_retain_own:
            raise TargetError("FakeSQL: APPLICATION_PASSWORD_ADMIN needed", category=Category.PERMISSION)
        if admin is not None and not (isinstance(admin, FakeSession) and admin.username in self.database.admins):
            raise TargetError("FakeSQL: the master may not manage users", category=Category.PERMISSION)

    def count_sessions(self, session: Session, username: str) -> int | None:
        return self.database.sessions.get(username)

    def _require_dual(self) -> None:
        if not self.database.dual_passwords:
            raise TargetError("FakeSQL keeps one password per user", category=Category.CONFIGURATION)


def fake_handler(client: Any, database: FakeDatabase, **environ: str) -> RotationHandler:
    """The fake engine's rotation function as Lambda calls it: Secrets Manager through ``client``, the keyword
    arguments as its environment."""
    return database_handler(
        FAKE_ENGINE,
        engine_factory=lambda settings: FakeEngine(settings, database),
        store=SecretStore(client),
        environ=environ,
    )


def run_steps(rotator: Rotator, arn: str, token: str, *steps: str) -> None:
    """Invoke ``rotator`` with each step's event in turn, as the service would."""
    for step in steps:
        rotator.handle(service.event(step, arn, token))


def stages(sm_client: Any, arn: str) -> dict[str, list[str]]:
    versions: dict[str, list[str]] = sm_client.describe_secret(SecretId=arn)["VersionIdsToStages"]
    return versions


def stage_pending(sm_client: Any, arn: str, value: str | Mapping[str, Any]) -> str:
    """Stage a rotation and write its AWSPENDING version as someone with PutSecretValue would; returns its token.

    ``value`` is the version's text, or a mapping stored as JSON without the fields whose value is None
    (how a test leaves a field out).
    """
    token = emulator.stage_pending_placeholder(arn)
    text = value if isinstance(value, str) else json.dumps({k: v for k, v in value.items() if v is not None})
    sm_client.put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString=text, VersionStages=["AWSPENDING"])
    return token


def value_at(sm_client: Any, arn: str, stage: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(sm_client.get_secret_value(SecretId=arn, VersionStage=stage)["SecretString"])
    return result


class CallCounter:
    """Counts Secrets Manager API calls made through a client."""

    def __init__(self, client: Any) -> None:
        self.calls: Counter[str] = Counter()
        client.meta.events.register("before-call.secrets-manager.*", self._count)

    def _count(self, model: Any, **_kwargs: Any) -> None:
        self.calls[model.name] += 1

    def take(self) -> Counter[str]:
        taken, self.calls = self.calls, Counter()
        return taken
