"""Valkey and Redis OSS engine: redis-py I/O, the managed users' services (:mod:`.users`), ACL rules (:mod:`.acl`).

A user keeps two passwords from setSecret until the next rotation, AWSCURRENT's and AWSPENDING's, so applications
still holding the previous secret keep logging in (``ROTATION_STRATEGY=dual_password``). The change is made

* for an ElastiCache or MemoryDB user (the secret's ``user_arn``) through the service, with both passwords, after
  the user's tag proved it bound to this secret; the step then waits for the user to be ``active`` again;
* for a user of a self-managed server by a master (``masterarn``, same host and port), after the current secret
  logged in (the server authenticated the user by its name and current password): the master refuses the ``default``
  user, itself, users any password logs in as (``nopass``) and, unless ``ALLOW_PRIVILEGED_USERS`` lists them, users with
  @admin or @dangerous commands or every key; then one ``ACL SETUSER <user> resetpass #<digest> #<digest>`` leaves
  exactly the current and the new password (by SHA-256 digest: no password in a command), and ``ACL SAVE`` keeps it
  across a restart where the server has an ACL file.

Logins use TLS with the certificate and host name verified unless the secret says otherwise, never a plaintext retry;
the driver is imported on first connection.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rotation_core.engines.base import (
    CloneRequest,
    DatabaseLogin,
    DriverSession,
    DualPasswordOutcome,
    DualPasswordRequest,
    Session,
    TlsMode,
    parse_login_fields,
)
from rotation_core.engines.tls import resolve_ca_bundle
from rotation_core.engines.valkey import ENGINE
from rotation_core.engines.valkey.acl import (
    DEFAULT_USER,
    PRIVILEGED_CATEGORIES,
    AclUser,
    allows,
    categories_named,
    parse_getuser,
    privileges,
    set_passwords_command,
    wanted_digests,
)
from rotation_core.engines.valkey.users import ManagedUsers, UserArn
from rotation_core.errors import (
    Category,
    ConfigurationError,
    ConfusedDeputyError,
    SecretFormatError,
    TargetError,
    VerificationError,
    describe,
)
from rotation_core.log import get_logger, redact, register_sensitive
from rotation_core.settings import DEFAULT_TEST_QUERY, Settings

DEFAULT_PROBE = ("PING",)
MAX_USERNAME_BYTES = 512
_NO_CLONES = (
    "the Valkey/Redis function rotates with two passwords per user (ROTATION_STRATEGY=dual_password); it neither "
    "changes a user's only password nor makes clones"
)
_MASTER_RIGHTS = "+acl|getuser +acl|setuser +acl|cat (and +acl|save where the server keeps an ACL file)"
_NO_ACL_FILE = "not configured to use an acl file"
#: Parsed in place of a managed user's absent password so the other fields are checked; never sent anywhere.
_NO_PASSWORD_STAND_IN = "unused"  # noqa: S105  # nosec B105


@dataclass
class ValkeySession(DriverSession):
    """An open, authenticated connection and the login it came from."""

    client: Any = field(repr=False)
    login: DatabaseLogin

    def _close_connection(self) -> None:
        self.client.close()

    def command(self, *args: str) -> Any:
        return self.client.execute_command(*args)


class ValkeyEngine:
    display_name = ENGINE.display_name
    engine_names = ENGINE.secret_engines
    default_port = ENGINE.default_port
    uses_rds = ENGINE.uses_rds
    max_username_bytes = MAX_USERNAME_BYTES

    def __init__(self, settings: Settings, *, users: ManagedUsers | None = None) -> None:
        self._settings = settings
        self._users = users or ManagedUsers(settings)

    # --- the secret --------------------------------------------------------------------------------------------

    def parse_login(self, secret: Mapping[str, Any], label: str) -> DatabaseLogin:
        """``username``, ``password``; ``user_arn`` (a managed user) and/or ``host``/``port``/TLS (an endpoint).

        A managed user's secret may name no endpoint and, before its first rotation (AWS's documented setup), hold
        no password; a self-managed user's needs both, and a master (``masterarn``) the strategy resolves.
        """
        arn = None if secret.get("user_arn") is None else UserArn.parse(secret.get("user_arn"), label)
        if arn is not None and secret.get("masterarn") is not None:
            raise SecretFormatError(
                f'the {label} secret names both "user_arn" (a user {arn.title.split()[1]} manages) and "masterarn" (a '
                "master of a self-managed server); remove the one that does not apply"
            )
        no_host = secret.get("host") in (None, "")
        # AWS's setup: a managed user's secret holds no password before its first rotation (never a pending one).
        no_password = arn is not None and label != "pending" and secret.get("password") in (None, "")
        if no_host and arn is None:
            raise SecretFormatError(
                f'the {label} secret names neither "user_arn" (an ElastiCache or MemoryDB user) nor "host" (a '
                "self-managed server); add the one that applies (see docs/engines/valkey.md)"
            )
        # The shared checks of every other field; stand-ins (never used) for the two a managed user may lack.
        stand_ins = {"host": "localhost"} if no_host else {}
        stand_ins.update({"password": _NO_PASSWORD_STAND_IN} if no_password else {})
        login = parse_login_fields({**secret, **stand_ins}, label, self)
        if "\x00" in login.username or any(c.isspace() for c in login.username):
            raise SecretFormatError(f'the {label} secret\'s "username" contains white space or a NUL character')
        return DatabaseLogin(
            label=login.label,
            engine=login.engine,
            host="" if no_host else login.host,
            port=login.port,
            username=login.username,
            password="" if no_password else login.password,
            dbname=None,
            tls=login.tls,
            user_arn=None if arn is None else arn.arn,
        )

    def check_username(self, username: str, what: str) -> None:
        if len(username.encode("utf-8")) > MAX_USERNAME_BYTES:
            raise SecretFormatError(f"{what} is longer than {MAX_USERNAME_BYTES} bytes")

    # --- connections ---------------------------------------------------------------------------------------------

    def connect(self, login: DatabaseLogin) -> Session:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        if not login.has_endpoint:
            raise ConfigurationError(f'the {login.label} secret names no endpoint to log in at (no "host")')
        register_sensitive(login.password)
        timeout = self._settings.connect_timeout
        params: dict[str, Any] = {
            "host": login.host,
            "port": login.port,
            "username": login.username,
            "password": login.password,
            "socket_connect_timeout": timeout,
            "socket_timeout": max(timeout, 10),
            "retry": Retry(NoBackoff(), 0),
            "protocol": 2,
            "single_connection_client": True,
        }
        ca_bundle = None
        if login.tls is not TlsMode.DISABLE:  # allow/prefer/require: encrypted, never a plaintext retry
            params["ssl"] = True
            if login.tls.verifies_certificate:
                ca_bundle = resolve_ca_bundle(self._settings.db_ca_bundle)
                params.update(ssl_cert_reqs="required", ssl_ca_certs=ca_bundle,
                              ssl_check_hostname=login.tls is TlsMode.VERIFY_FULL)  # fmt: skip
            else:
                params.update(ssl_cert_reqs="none", ssl_check_hostname=False)
        client = None
        try:
            client = redis.Redis(**params)  # a single-connection client connects and authenticates here
            with contextlib.suppress(redis.exceptions.NoPermissionError):  # logged in; PING is the probe's business
                client.ping()
        except (redis.RedisError, OSError) as error:
            if client is not None:
                client.close()
            raise self._login_error(login, error, ca_bundle) from None
        return ValkeySession(client, login)

    def _login_error(self, login: DatabaseLogin, error: Exception, ca_bundle: str | None) -> TargetError:
        import redis

        where = (
            f"{self.display_name} login as {describe(login.username)} at {login.host}:{login.port} "
            f"({login.label} secret)"
        )
        message = _message(error)
        chain = _causes(error)
        verify = next((e for e in chain if isinstance(e, ssl.SSLCertVerificationError)), None)
        tls = next((e for e in chain if isinstance(e, ssl.SSLError)), None)
        if (
            isinstance(error, redis.AuthenticationError)
            or "WRONGPASS" in message
            or "invalid username-password" in message
        ):
            return TargetError(f"{where} was refused: {message}", category=Category.AUTH_FAILED)
        if verify is not None and "hostname" in str(verify.verify_message or verify).lower():
            return TargetError(
                f"{where} failed TLS: the server's certificate does not name the host name {login.host} "
                f'({verify.verify_message}); use the host name the certificate was issued for, or "sslmode": '
                '"verify-ca" to verify the CA only',
                category=Category.TLS,
            )
        if verify is not None:
            return TargetError(
                f"{where} failed TLS ({login.tls.value}, CA bundle {ca_bundle or 'not used'}): "
                f"{verify.verify_message}. Set DB_CA_BUNDLE to a bundle holding the server's CA and use the host name "
                "the certificate was issued for",
                category=Category.TLS,
            )
        if tls is None and login.tls is not TlsMode.DISABLE and isinstance(error, redis.TimeoutError):
            tls = self._tcp_accepts(login)  # the port answered, the TLS handshake did not: no TLS there
        if tls is not None:
            return TargetError(
                f"{where} failed TLS: {message}. The server does not speak TLS there? Enable TLS on the server, or set "
                '"ssl": false in the secret to connect without it (the password then crosses the network '
                "unencrypted); with DB_CA_BUNDLE, check it holds the server's CA",
                category=Category.TLS,
            )
        return TargetError(
            f"{where} failed, the server is unreachable: {message}. Check host, port and network routes/security "
            f"groups (connect timeout {self._settings.connect_timeout}s, DB_CONNECT_TIMEOUT); a server that only "
            'speaks TLS closes a plaintext connection ("ssl": false)',
            category=Category.UNREACHABLE,
        )

    def _tcp_accepts(self, login: DatabaseLogin) -> ssl.SSLError | None:
        """After a timeout with TLS: does the port accept TCP at once? Then the server never answered the TLS
        handshake (a plaintext server waits for a command), which is a TLS failure, not an unreachable server."""
        try:
            socket.create_connection((login.host, login.port), timeout=min(self._settings.connect_timeout, 2)).close()
        except OSError:
            return None
        return ssl.SSLError("the server accepted the connection but never answered the TLS handshake")

    def probe(self, session: Session, query: str) -> None:
        """``PING``, or TEST_QUERY's command (words split on white space) when it is set."""
        import redis

        words = DEFAULT_PROBE if query.strip() in ("", DEFAULT_TEST_QUERY) else tuple(query.split())
        try:
            _session(session).command(*words)
        except (redis.RedisError, OSError) as error:
            raise VerificationError(
                f"the probe {describe(' '.join(words))} failed: {_message(error)}; check TEST_QUERY (a read-only "
                "command, default PING) and the user's ACL"
            ) from None

    # --- what the other strategies would need: refused ------------------------------------------------------

    def set_own_password(self, session: Session, login: DatabaseLogin, new_password: str) -> None:
        raise ConfigurationError(_NO_CLONES)

    def set_clone_password(self, admin: Session, request: CloneRequest) -> None:
        raise ConfigurationError(_NO_CLONES)

    def check_own_password(self, session: Session, login: DatabaseLogin) -> None:
        raise ConfigurationError(_NO_CLONES)

    def check_clone_rights(self, admin: Session, *, caller: Session, original: str, target: str) -> None:
        raise ConfigurationError(_NO_CLONES)

    # --- dual passwords ----------------------------------------------------------------------------------------

    def set_dual_password(self, session: Session | None, request: DualPasswordRequest) -> bool:
        """A managed user (no master): through its service, after proving it bound to the secret. Self-managed
        servers need a master: a user that may run ACL SETUSER could change every user."""
        login = request.login
        if login is None or login.user_arn is None:
            raise ConfigurationError(
                'a self-managed Valkey/Redis user\'s passwords are changed by a master: name its secret in "masterarn" '
                f"(a user with {_MASTER_RIGHTS}); a user allowed ACL SETUSER itself could change every user"
            )
        arn = UserArn.parse(login.user_arn, login.label)
        register_sensitive(request.current_password, request.new_password)
        self._users.bound_user(arn, username=login.username, secret_arn=login.secret_arn)  # before any change
        self._users.wait_until_active(arn, why="a user is changed only while active")
        passwords = [request.new_password] + ([request.current_password] if request.current_password else [])
        self._users.set_passwords(arn, passwords)
        self._users.wait_until_active(arn, why="the new passwords are being applied")
        get_logger().info(
            f"{arn.title} has the new password and the current one (if any); it is active again",
            extra={"user": login.username, "passwords": len(passwords)},
        )
        return True

    def set_dual_password_as_admin(self, admin: Session, request: DualPasswordRequest) -> DualPasswordOutcome:
        """Self-managed: the master leaves the user the current secret logged in as exactly both passwords."""
        master, caller = _session(admin), _session(request.caller)
        register_sensitive(request.current_password, request.new_password)
        user = self._changeable_user(master, caller)
        wanted = wanted_digests(request.current_password, request.new_password)
        register_sensitive(*wanted)
        if user.password_digests == wanted:
            self._save_acl(master)  # an earlier attempt set them; it may have failed to save them
            return DualPasswordOutcome.ALREADY_SET
        self._admin_command(master, set_passwords_command(user.name, (request.current_password, request.new_password)),
                            f"set the passwords of {describe(user.name)}")  # fmt: skip
        self._save_acl(master)
        return DualPasswordOutcome.CHANGED

    def check_dual_password(self, session: Session | None, login: DatabaseLogin, *, admin: Session | None) -> None:
        """Read-only: a managed user's binding and state (waiting while it is modifying), or what the master needs
        and the refusals it would make."""
        if login.user_arn is not None:
            arn = UserArn.parse(login.user_arn, login.label)
            self._users.bound_user(arn, username=login.username, secret_arn=login.secret_arn)
            user = self._users.wait_until_active(arn, why="checking the user")
            if user.authentication == "password" and user.password_count < 1:
                raise TargetError(f"{arn.title} has no password", category=Category.VERIFICATION)
            return
        if admin is None or session is None:
            raise TargetError(
                'a self-managed Valkey/Redis user\'s passwords are changed by a master: name its secret in "masterarn" '
                f"(a user with {_MASTER_RIGHTS})",
                category=Category.CONFIGURATION,
            )
        master = _session(admin)
        self._changeable_user(master, _session(session))
        missing = [right for right in ("acl|setuser",) if not self._master_may(master, right)]
        if missing:
            raise TargetError(
                f"the master {describe(master.login.username)} may not run {', '.join(missing)}; give it "
                f"{_MASTER_RIGHTS}",
                category=Category.PERMISSION,
            )

    # --- self-managed: who the user is, and whether a master may change it ------------------------------------

    def _changeable_user(self, master: ValkeySession, caller: ValkeySession) -> AclUser:
        """The user ``caller`` logged in as (the server authenticated that name with the current password), after
        every refusal (confused_deputy)."""
        name, master_name = caller.login.username, master.login.username
        refused = "; nothing was changed"
        if name == DEFAULT_USER:
            raise ConfusedDeputyError(
                "the secret names the default user, which this function never rotates (every connection that does not "
                f"authenticate is the default user){refused}"
            )
        if name == master_name:
            raise ConfusedDeputyError(f"the secret names the master's own user {describe(name)}{refused}")
        user = parse_getuser(
            name, self._admin_command(master, ("ACL", "GETUSER", name), f"read the user {describe(name)}")
        )
        if user is None:
            raise ConfusedDeputyError(f"the server has no user {describe(name)}{refused}")
        if user.nopass:
            raise ConfusedDeputyError(
                f"the user {describe(name)} has no password (nopass: any password logs in), so the current secret's "
                f"login proves nothing about who holds it{refused}"
            )
        if name not in self._settings.allow_privileged_users:
            found = privileges(user, self._category_members(master, categories_named(user.commands)))
            if found:
                raise ConfusedDeputyError(
                    f"the user {describe(name)} is privileged ({'; '.join(found)}): a secret's editor must not be able "
                    "to aim the master at such a user. Rotate it by hand, or let this function rotate it by listing "
                    f"its name in ALLOW_PRIVILEGED_USERS (the ValkeyAllowPrivilegedUsers parameter){refused}"
                )
        return user

    def _category_members(self, master: ValkeySession, named: set[str]) -> dict[str, frozenset[str]]:
        members = {}
        for category in sorted({*PRIVILEGED_CATEGORIES, *named}):
            reply = self._admin_command(master, ("ACL", "CAT", category), f"list the commands of @{category}")
            members[category] = frozenset(_text(item).lower() for item in reply or ())
        return members

    def _master_may(self, master: ValkeySession, command: str) -> bool:
        user = parse_getuser(master.login.username, self._admin_command(
            master, ("ACL", "GETUSER", master.login.username), "read the master's own rules"))  # fmt: skip
        if user is None:
            return False
        return allows(user.commands, command, self._category_members(master, categories_named(user.commands)))

    def _save_acl(self, master: ValkeySession) -> None:
        import redis

        try:
            master.command("ACL", "SAVE")
        except redis.ResponseError as error:
            if _NO_ACL_FILE in _message(error).lower():
                get_logger().warning(
                    "the server keeps no ACL file, so the new passwords live in memory only: a restart brings back the "
                    "users' configured passwords. Keep users in an ACL file (aclfile) so that ACL SAVE persists them"
                )
                return
            raise self._refused(error, "save the ACL file (ACL SAVE)") from None
        except (redis.RedisError, OSError) as error:
            raise self._refused(error, "save the ACL file (ACL SAVE)") from None

    def _admin_command(self, session: ValkeySession, command: tuple[str, ...], action: str) -> Any:
        import redis

        try:
            return session.command(*command)
        except (redis.RedisError, OSError) as error:
            raise self._refused(error, action) from None

    def _refused(self, error: Exception, action: str) -> TargetError:
        import redis

        message = _message(error)
        if isinstance(error, redis.exceptions.NoPermissionError) or message.startswith("NOPERM"):
            return TargetError(
                f"{self.display_name} refused to {action}: {message}; the master needs {_MASTER_RIGHTS}",
                category=Category.PERMISSION,
            )
        category = Category.PERMISSION if isinstance(error, redis.ResponseError) else Category.UNREACHABLE
        return TargetError(f"{self.display_name} failed to {action}: {message}", category=category)


def _session(session: Session | None) -> ValkeySession:
    if not isinstance(session, ValkeySession):
        raise TypeError("expected a session opened by ValkeyEngine.connect")
    return session


def _text(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return "" if value is None else str(value)


def _causes(error: BaseException) -> list[BaseException]:
    chain, seen = [], set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _message(error: BaseException) -> str:
    return redact(str(error) or type(error).__name__)[:300]
