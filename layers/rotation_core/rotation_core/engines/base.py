"""What a database engine provides to the rotation strategies, and the secret's login fields.

A new engine is a package under :mod:`rotation_core.engines` that declares itself (``ENGINE``, see
:mod:`rotation_core.registry`) and implements :class:`DatabaseEngine`; ``docs/adding-an-engine.md``
lists every file. Engines know SQL and drivers; they never call Secrets Manager, and they never
branch on the strategy: the strategies decide which users to use and ask the engine to act.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from rotation_core.errors import SecretFormatError, VerificationError, describe

# The alternating-users strategy's second user is ``<user>`` + this suffix (AWS's templates use it too).
from rotation_core.settings import CLONE_SUFFIX as CLONE_SUFFIX  # noqa: PLC0414 (an explicit re-export)


class TlsMode(enum.StrEnum):
    """How to use TLS, named after libpq's ``sslmode`` values."""

    DISABLE = "disable"
    ALLOW = "allow"
    PREFER = "prefer"
    REQUIRE = "require"
    VERIFY_CA = "verify-ca"
    VERIFY_FULL = "verify-full"

    @property
    def verifies_certificate(self) -> bool:
        return self in (TlsMode.VERIFY_CA, TlsMode.VERIFY_FULL)


@dataclass(frozen=True)
class DatabaseLogin:
    """Where and as whom to log in, taken from one version of a secret."""

    label: str  # which secret this came from ("current", "pending", "master" ...), for messages
    engine: str | None
    host: str
    port: int
    username: str
    password: str = field(repr=False)
    dbname: str | None
    tls: TlsMode
    #: The user's ARN at the AWS service that manages it (an ElastiCache or MemoryDB user), when one does; such a
    #: secret may name no endpoint at all (``host`` empty): the service, not a login, then changes the password.
    user_arn: str | None = None
    #: The ARN of the secret this login was read from, where the strategy knows it: a managed user is changed only
    #: when it is bound to that secret (a tag naming it), which someone who can only edit the secret cannot forge.
    secret_arn: str = ""

    @property
    def has_endpoint(self) -> bool:
        """False for a secret that names only a user a service manages (no ``host`` to log in at)."""
        return bool(self.host)

    def same_server(self, other: DatabaseLogin) -> bool:
        return self.host.lower() == other.host.lower() and self.port == other.port

    def driver_params(self, database_key: str, default_database: str | None, connect_timeout: int) -> dict[str, Any]:
        """Where and as whom, in the DB-API ``connect`` keywords both drivers share (the database's key differs)."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.username,
            "password": self.password,
            database_key: self.dbname or default_database,
            "connect_timeout": connect_timeout,
        }


class Session(Protocol):
    """An open database connection, as far as strategies care."""

    def close(self) -> None: ...


@dataclass
class DriverSession:
    """A :class:`Session` over one driver connection, which :meth:`close` closes once however often it is called."""

    closed: bool = field(default=False, repr=False, kw_only=True)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._close_connection()

    def _close_connection(self) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class CloneRequest:
    """What the alternating-users strategy asks the engine to do with the master's session.

    ``caller`` is the session the current secret opened (proving it genuine), so the engine can tell which
    account it is; ``target`` equals ``original`` when the original user's turn has come round again.
    ``admin_login`` (if given) is where the admin session was opened, for an engine that needs the master
    in another database too (PostgreSQL's REASSIGN OWNED works one database at a time).
    ``allow_privileged`` comes from the function's environment (``ALLOW_PRIVILEGED_USERS``), never from a
    secret: the pair may hold superuser-class rights (see :meth:`DatabaseEngine.check_pair`).
    """

    caller: Session
    original: str
    target: str
    new_password: str = field(repr=False)
    admin_login: DatabaseLogin | None = None
    allow_privileged: bool = False


class DatabaseEngine(Protocol):
    """The database-specific half of a rotation."""

    display_name: str  # "PostgreSQL"
    engine_names: frozenset[str]  # accepted values of the secret's "engine" key
    default_port: int
    max_username_bytes: int
    #: RDS may manage its servers and masters (the spec's ``uses_rds``): only then may a master secret that names
    #: another host, or none, be looked up in RDS (the function of an engine without it has no RDS permission).
    uses_rds: bool

    def parse_login(self, secret: Mapping[str, Any], label: str) -> DatabaseLogin:
        """Validate a secret's login fields; raise :class:`SecretFormatError` naming the bad key."""
        ...

    def check_username(self, username: str, what: str) -> None:
        """Raise :class:`SecretFormatError` (starting with ``what``) if the server cannot hold this name."""
        ...

    def connect(self, login: DatabaseLogin) -> Session:
        """Log in; raise :class:`rotation_core.errors.TargetError` with a category on failure."""
        ...

    def set_own_password(self, session: Session, login: DatabaseLogin, new_password: str) -> None:
        """As ``login``, change that user's own password."""
        ...

    def set_clone_password(self, admin: Session, request: CloneRequest) -> None:
        """As an admin, give ``target`` the password, creating it as a stand-in for ``original`` if needed.

        See :class:`CloneRequest` for what the request holds. Runs :meth:`check_pair` first: a refused pair
        is never touched.
        """
        ...

    def check_pair(
        self, admin: Session, *, caller: Session, original: str, target: str, allow_privileged: bool
    ) -> None:
        """Prove on the server, reading only, that the master may act on this pair; else raise.

        The pair is ``original`` and ``original + CLONE_SUFFIX``; ``caller`` is the current secret's session
        (one of the two). Raises :class:`rotation_core.errors.ConfusedDeputyError` when either user is the
        master's own login, holds superuser-class rights (unless ``allow_privileged``), or exists as the
        alternate without the server's proof that it is the original's alternate; the message says how to
        recover. Changes nothing, so it may run any number of times (preflight, configuration test, setSecret).
        """
        ...

    def probe(self, session: Session, query: str) -> None:
        """Run the read-only probe query; raise :class:`VerificationError` if it fails."""
        ...

    # The preflight (rotation_core.preflight): read-only, nothing is changed.

    def check_own_password(self, session: Session, login: DatabaseLogin) -> None:
        """Raise :class:`rotation_core.errors.TargetError` if :meth:`set_own_password` would be refused for a
        reason visible without trying (a standby server, read-only transactions, an account it cannot rotate)."""
        ...

    def check_clone_rights(self, admin: Session, *, caller: Session, original: str, target: str) -> None:
        """Raise :class:`rotation_core.errors.TargetError` naming every right the admin lacks for
        :meth:`set_clone_password` with the same arguments (reading the accounts as that would)."""
        ...


@dataclass(frozen=True)
class DualPasswordRequest:
    """What the dual-password strategy asks the engine: ``new_password`` becomes the account's password and
    ``current_password`` stays valid beside it, as its secondary password, until the next rotation.

    ``caller`` is the session the current secret opened: it proves that secret genuine and names, as the
    server sees it, the account whose passwords change. It is None only for a user a service manages whose secret
    names no endpoint (or holds no password yet, as AWS's ElastiCache function allows before the first rotation):
    the engine then proves the binding through the service (``login.user_arn`` and ``login.secret_arn``). ``login`` is
    the current secret's login (where, as whom, which managed user, which secret). ``current_password`` is empty when
    the current secret holds none.
    """

    caller: Session | None
    current_password: str = field(repr=False)
    new_password: str = field(repr=False)
    login: DatabaseLogin | None = None


class DualPasswordOutcome(enum.StrEnum):
    """What :meth:`DualPasswordEngine.set_dual_password_as_admin` found and did."""

    CHANGED = "changed"  # the new password is primary, the current one secondary
    ALREADY_SET = "already_set"  # an earlier attempt had done exactly that: nothing was sent
    RESTORED = "restored"  # the current password was not the primary any more: it was made primary again first


class DualPasswordEngine(DatabaseEngine, Protocol):
    """An engine whose server keeps two passwords per account (MySQL 8.0.14+: ``RETAIN CURRENT PASSWORD``; Valkey and
    Redis: several per ACL user, and ElastiCache's and MemoryDB's APIs accept two)."""

    def set_dual_password(self, session: Session | None, request: DualPasswordRequest) -> bool:
        """Without a master: as the account itself (``session`` is ``request.caller``), or for a user a service
        manages (``request.login.user_arn``) through that service, once it proved the user bound to the secret
        (``request.login.secret_arn``). Make the new password primary, the current one secondary, in one statement the
        server applies only while the current password is the primary (a service: both passwords, set at once).

        Idempotent: False when the server says the current password is not the primary (an earlier attempt
        already replaced it); then nothing was changed. Never retains the new password as the secondary.
        """
        ...

    def set_dual_password_as_admin(self, admin: Session, request: DualPasswordRequest) -> DualPasswordOutcome:
        """As an admin: the same for the account ``request.caller`` logged in as, decided from the account's
        stored passwords (read, not guessed by logging in) while holding a lock on that account, so a retried or
        concurrent attempt never retains the new password as the secondary."""
        ...

    def check_dual_password(self, session: Session | None, login: DatabaseLogin, *, admin: Session | None) -> None:
        """Raise :class:`rotation_core.errors.TargetError` if a dual-password change would be refused for a reason
        visible without trying: the server has no dual passwords, the account's plugin, the privilege the
        account (``admin`` None) or the admin needs; for a user a service manages (``login.user_arn``; ``session``
        None when the secret names no endpoint) its binding to the secret and its state there, waiting (bounded)
        while a change is still being applied. Read-only."""
        ...


class SessionCounter(Protocol):
    """An engine that can say, read-only, how many sessions a user has open (the drain check)."""

    def count_sessions(self, session: Session, username: str) -> int | None:
        """Open sessions of ``username`` other than ``session`` itself; None when ``session`` cannot see them all."""
        ...


_TRUE_TEXT = frozenset({"true", "yes", "1", "y"})
_FALSE_TEXT = frozenset({"false", "no", "0", "n"})
MAX_PASSWORD_CHARACTERS = 4096
MAX_HOST_LENGTH = 253  # the longest DNS name


class EngineLimits(Protocol):
    """The attributes of an engine that secret parsing needs."""

    display_name: str
    engine_names: frozenset[str]
    default_port: int
    max_username_bytes: int


def check_username_bytes(username: str, what: str, engine: EngineLimits) -> None:
    """The byte limit most engines have (PostgreSQL: NAMEDATALEN - 1)."""
    if len(username.encode("utf-8")) > engine.max_username_bytes:
        limit = engine.max_username_bytes
        raise SecretFormatError(f"{what} is longer than {engine.display_name}'s limit of {limit} bytes")


def sql_probe_failed(driver_message: str) -> VerificationError:
    """A SQL engine's TEST_QUERY failed with the new credentials (``driver_message`` holds no value of a secret)."""
    return VerificationError(
        f"the probe query failed with the new credentials: {driver_message}; check TEST_QUERY and the user's grants"
    )


def parse_login_fields(secret: Mapping[str, Any], label: str, engine: EngineLimits) -> DatabaseLogin:
    """The checks every SQL engine shares: types, ranges, lengths, TLS mode."""
    engine_names, display_name = engine.engine_names, engine.display_name
    default_port = engine.default_port
    engine_name = secret.get("engine")
    if engine_name is not None and engine_name not in engine_names:
        allowed = ", ".join(sorted(engine_names))
        raise SecretFormatError(
            f'the {label} secret\'s "engine" is {describe(engine_name)}, but this is the {display_name} '
            f"function (engine must be one of: {allowed}); attach the function that matches the database"
        )
    host = _required_text(secret, "host", label)
    if len(host) > MAX_HOST_LENGTH or any(c.isspace() or ord(c) < 32 for c in host) or "/" in host:
        raise SecretFormatError(f'the {label} secret\'s "host" {describe(host)} is not a host name or address')
    username = _required_text(secret, "username", label)
    if "\x00" in username:
        raise SecretFormatError(f'the {label} secret\'s "username" contains a NUL character')
    check_username_bytes(username, f'the {label} secret\'s "username"', engine)
    password = secret.get("password")
    if not isinstance(password, str) or not password:
        raise SecretFormatError(f'the {label} secret has no "password" string')
    _require_utf8(password, "password", label)
    if "\x00" in password or len(password) > MAX_PASSWORD_CHARACTERS:
        raise SecretFormatError(
            f'the {label} secret\'s "password" contains a NUL character or is over {MAX_PASSWORD_CHARACTERS} characters'
        )
    dbname = secret.get("dbname")
    if dbname is not None and (not isinstance(dbname, str) or not dbname or "\x00" in dbname):
        raise SecretFormatError(f'the {label} secret\'s "dbname" must be a non-empty string when present')
    if dbname is not None:
        _require_utf8(dbname, "dbname", label)
    return DatabaseLogin(
        label=label,
        engine=engine_name,
        host=host,
        port=_port(secret, label, default_port),
        username=username,
        password=password,
        dbname=dbname,
        tls=_tls_mode(secret, label),
    )


def _required_text(secret: Mapping[str, Any], key: str, label: str) -> str:
    value = secret.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SecretFormatError(f'the {label} secret has no "{key}" string; add it (see the README\'s secret format)')
    return _require_utf8(value, key, label)


def _require_utf8(value: str, key: str, label: str) -> str:
    """JSON may carry lone surrogates (``"\\ud800"``), which no driver can send: refuse them here."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise SecretFormatError(
            f'the {label} secret\'s "{key}" holds characters that are not valid Unicode (a lone surrogate); '
            "correct the value"
        ) from None
    return value


def _port(secret: Mapping[str, Any], label: str, default: int) -> int:
    raw = secret.get("port", default)
    if isinstance(raw, bool):
        port = -1
    elif isinstance(raw, int):
        port = raw
    elif isinstance(raw, str) and raw.strip().isdigit() and raw.strip().isascii():
        port = int(raw.strip())
    else:
        port = -1
    if not 1 <= port <= 65535:
        raise SecretFormatError(f'the {label} secret\'s "port" must be a number from 1 to 65535')
    return port


def _tls_mode(secret: Mapping[str, Any], label: str) -> TlsMode:
    """``sslmode`` if given, else ``"ssl": false`` disables TLS, else certificate-verified TLS."""
    sslmode = secret.get("sslmode")
    if sslmode is not None:
        try:
            return TlsMode(sslmode)
        except ValueError:
            allowed = ", ".join(m.value for m in TlsMode)
            raise SecretFormatError(f'the {label} secret\'s "sslmode" must be one of: {allowed}') from None
    ssl = secret.get("ssl")
    if ssl is None:
        return TlsMode.VERIFY_FULL
    if isinstance(ssl, str) and ssl.strip().lower() in _TRUE_TEXT | _FALSE_TEXT:
        ssl = ssl.strip().lower() in _TRUE_TEXT
    if not isinstance(ssl, bool):
        raise SecretFormatError(f'the {label} secret\'s "ssl" must be true or false')
    return TlsMode.VERIFY_FULL if ssl else TlsMode.DISABLE


class ByteLimitedLogins:
    """``parse_login`` and ``check_username`` for an engine whose user names are limited in bytes.

    The engine class declares :class:`EngineLimits`' attributes (``max_username_bytes`` among them).
    """

    display_name: str
    engine_names: frozenset[str]
    default_port: int
    max_username_bytes: int

    def parse_login(self, secret: Mapping[str, Any], label: str) -> DatabaseLogin:
        return parse_login_fields(secret, label, self)

    def check_username(self, username: str, what: str) -> None:
        check_username_bytes(username, what, self)
