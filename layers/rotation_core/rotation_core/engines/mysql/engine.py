"""MySQL and MariaDB engine: PyMySQL I/O (the statements come from :mod:`.statements`).

The server's flavour and version come from ``VERSION()`` after login and choose the statements.
Accounts are ``user@host``: the host part is read from the server (``CURRENT_USER()`` at login and
``mysql.user``), never assumed to be ``'%'``. The alternating clone gets the original's host, auth
plugin, TLS requirement, resource limits, privileges (``WITH GRANT OPTION`` included), roles and
default roles; grants are copied as data through :mod:`rotation_core.engines.mysql.grants`, the
plugin, TLS requirement and limits are read from ``mysql.user``.

Account statements cannot be rolled back, so the clone is brought to the original's state from
whatever state it is in: an existing clone (a half-made one left by a failed attempt included) is
read back and synchronised, never re-created, and every statement of a retry either sets a value
outright or is computed from the difference, so a retry completes once the cause is fixed.

Every statement goes through :meth:`MySQLEngine._send`, which always formats it, so ``%`` doubled in
spliced names is undone exactly once. The driver is imported on first connection, never at import time.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rotation_core.engines.base import (
    CloneRequest,
    DatabaseLogin,
    DualPasswordOutcome,
    DualPasswordRequest,
    Session,
    TlsMode,
    parse_login_fields,
)
from rotation_core.engines.mysql import ENGINE
from rotation_core.engines.mysql.grants import (
    Account,
    AccountGrants,
    GrantObject,
    GrantSyntaxError,
    Privilege,
    Statement,
    auth_plugins_of,
    parse_grants,
    sync_statements,
)
from rotation_core.engines.mysql.statements import (
    ACCOUNT_ROW_END,
    ACCOUNT_ROW_START,
    MYSQL_DEFAULT_ROLES,
    USER_HOSTS_MARIADB,
    USER_HOSTS_MYSQL,
    AccountRow,
    Flavour,
    ServerVersion,
    StatementBuilder,
    TlsRequirement,
    UnsupportedAccountError,
    limit_text,
    native_password_hash,
)
from rotation_core.engines.tls import resolve_ca_bundle
from rotation_core.errors import Category, SecretFormatError, StatementError, TargetError, VerificationError, describe
from rotation_core.log import get_logger, redact, register_sensitive
from rotation_core.settings import Settings

if TYPE_CHECKING:
    import pymysql.connections
    import pymysql.cursors

# Client error numbers (CR_*) and server error numbers (ER_*) that decide a category.
_ER_ACCESS_DENIED = 1045
# The same refusal without "(using password: ...)": MariaDB answers it for an account that does not exist at
# times (seen on 10.11 for a clone setSecret had not made yet), so it is a refused login too.
_ER_ACCESS_DENIED_NO_PASSWORD = 1698
_ER_DBACCESS_DENIED = 1044
_ER_SECURE_TRANSPORT_REQUIRED = 3159
_ER_NOT_SUPPORTED_AUTH_MODE = 1251
_CR_LOST_CONNECTION = frozenset({2003, 2006, 2013, 2055})
_CR_SSL_CONNECTION_ERROR = 2026
_CR_AUTH_PLUGIN_ERROR = 2061
_TLS_MARKERS = ("ssl", "tls", "certificate")
# What the driver raises when it cannot turn a statement and its values into SQL text.
_DRIVER_FORMAT_ERRORS = (ValueError, TypeError, KeyError, IndexError)
_ADMIN_HINT = (
    "the master user needs CREATE USER, SELECT on the mysql schema, and every privilege and role of the "
    "original user WITH GRANT OPTION / WITH ADMIN OPTION (see the README); once it has them, the next "
    "attempt completes the alternate user from the state this one left"
)


@dataclass
class MySQLSession:
    """An open connection plus who the server says we are and what the server is."""

    conn: pymysql.connections.Connection[Any]
    account: Account
    server: ServerVersion
    closed: bool = field(default=False, repr=False)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.close()


APPLICATION_NAME = "secrets-rotation"  # shows in the server's process list


class MySQLEngine:
    display_name = ENGINE.display_name
    engine_names = ENGINE.secret_engines
    default_port = ENGINE.default_port

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._limit = settings.username_character_limit
        # MySQL counts characters (the User column is CHAR(32) in utf8mb3); the byte bound shared with
        # the other engines is the widest UTF-8 encoding of that many characters. check_username counts.
        self.max_username_bytes = 4 * self._limit

    def parse_login(self, secret: Mapping[str, Any], label: str) -> DatabaseLogin:
        login = parse_login_fields(secret, label, self)
        self.check_username(login.username, f'the {label} secret\'s "username"')
        return login

    def check_username(self, username: str, what: str) -> None:
        if len(username) > self._limit:
            raise SecretFormatError(
                f"{what} is {len(username)} characters, over the limit of {self._limit} "
                "(USERNAME_CHARACTER_LIMIT; MySQL 5.7+ and MariaDB allow 32, older MySQL 16)"
            )

    def connect(self, login: DatabaseLogin) -> Session:
        import pymysql

        params = login.driver_params("database", None, self._settings.connect_timeout)
        params.update(
            read_timeout=60, write_timeout=60, autocommit=True, charset="utf8mb4", program_name=APPLICATION_NAME
        )
        ca_bundle = None
        if login.tls is TlsMode.DISABLE:
            params["ssl_disabled"] = True
        elif login.tls in (TlsMode.ALLOW, TlsMode.PREFER):
            pass  # asked for explicitly by the secret; PyMySQL has no opportunistic TLS, so this is plaintext
        else:
            if login.tls.verifies_certificate:
                ca_bundle = resolve_ca_bundle(self._settings.db_ca_bundle)
            # An explicit context makes PyMySQL refuse a server without TLS before sending the login.
            params["ssl"] = _tls_context(login.tls, ca_bundle)
        try:
            conn = pymysql.connect(**params)
        except (pymysql.Error, OSError, RuntimeError) as error:
            raise self._login_error(login, error, ca_bundle) from None
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT CURRENT_USER(), VERSION(), @@version_comment")
                row = cursor.fetchone()
            if row is None:
                raise ValueError("no row")
            account = _account_of(str(row[0]), login.username)
            server = ServerVersion.parse(str(row[1]), str(row[2] or ""))
        except (pymysql.Error, ValueError) as error:
            conn.close()
            raise TargetError(
                f"logged in as {describe(login.username)} but could not read the account and server version: "
                f"{_driver_message(error)}",
                category=Category.UNREACHABLE,
            ) from None
        if account.user != login.username:
            conn.close()
            raise TargetError(
                f"the login as {describe(login.username)} was matched to the anonymous account "
                f"{describe(account.user + '@' + str(account.host))}; the named account does not exist for "
                "this client host. Create it, or drop the anonymous account",
                category=Category.PERMISSION,
            )
        return MySQLSession(conn=conn, account=account, server=server)

    def set_own_password(self, session: Session, login: DatabaseLogin, new_password: str) -> None:
        mysql_session = _session(session)
        builder = StatementBuilder(mysql_session.server)
        where = self._check_own_account(mysql_session, builder)
        statement = builder.own_password(new_password)
        register_sensitive(new_password, native_password_hash(new_password))
        self._execute(mysql_session, [statement], action=f"change the password of {where}")

    def _check_own_account(self, session: MySQLSession, builder: StatementBuilder) -> str:
        """Refuse an account whose own password this function cannot set; returns how messages name it."""
        where = f"{describe(session.account.user)}@{describe(session.account.host)}"
        if builder.is_mariadb:
            # The hash form is only right for mysql_native_password; SHOW GRANTS for oneself needs no privilege.
            lines = self._fetch_column(session, "SHOW GRANTS FOR CURRENT_USER()", (), action="read own grants")
            plugins = auth_plugins_of(lines, session.account)
            if len(plugins) > 1:
                raise UnsupportedAccountError(
                    f"{where} may authenticate in several ways ({', '.join(plugins)}); this function rotates "
                    "accounts with one password plugin only"
                )
            builder.check_plugin(plugins[0] if plugins else "", where)
        return where

    def set_clone_password(self, admin: Session, request: CloneRequest) -> None:
        caller, original, target, new_password = request.caller, request.original, request.target, request.new_password
        # Nothing happens before the pair is proven on the server (engines/mysql/pair.py).
        self.check_pair(
            admin, caller=caller, original=original, target=target, allow_privileged=request.allow_privileged
        )
        session = _session(admin)
        builder = StatementBuilder(session.server)
        host = self._original_host(session, original, _session(caller).account)
        source = Account(original, host)
        clone = Account(target, host)
        source_text = f"{describe(original)}@{describe(host)}"
        target_text = f"{describe(target)}@{describe(host)}"
        source_row = self._account_row(session, builder, source, source_text)
        if source_row is None:
            raise TargetError(f"{source_text} vanished while it was being copied; retry", category=Category.PERMISSION)
        plugin = builder.check_plugin(source_row.plugin, source_text)
        register_sensitive(new_password, native_password_hash(new_password))
        action = f"set the password of {target_text} as a stand-in for {source_text}"
        if target == original:
            self._execute(session, [builder.set_password(clone, new_password)], action=action, admin_hint=_ADMIN_HINT)
            return
        # The clone as it is now: absent, complete, or half-made by an attempt that failed part-way
        # (account statements cannot be rolled back). Everything below is computed from that state
        # or sets a value outright, so the next attempt completes once the cause is fixed.
        exists = self._account_row(session, builder, clone, target_text) is not None
        desired = self._grants(session, source, source_text)
        if exists:
            statements = [builder.set_password(clone, new_password, plugin=plugin)]
            existing = self._grants(session, clone, target_text)
        else:
            statements = [builder.create_user(clone, plugin, new_password)]
            existing = AccountGrants()
        statements.append(builder.require_tls(clone, source_row.requirement))
        statements.append(builder.resource_limits(clone, source_row.limits))
        statements.extend(sync_statements(desired, existing, clone))
        # A default role only counts while the role is granted (MariaDB keeps it after a REVOKE).
        granted = {grant.role for grant in desired.roles}
        wanted = [role for role in self._default_roles(session, builder, source, desired) if role in granted]
        have = self._default_roles(session, builder, clone, existing) if exists else []
        self._execute(session, statements, action=action, admin_hint=_ADMIN_HINT)
        if wanted != have:
            # Last, once the roles are granted; it needs a privilege of its own on MariaDB.
            self._execute(
                session,
                [builder.default_roles(clone, wanted)],
                action=f"set the default roles of {target_text} to those of {source_text}",
                admin_hint=builder.default_role_privilege,
            )

    def probe(self, session: Session, query: str) -> None:
        import pymysql

        conn = _session(session).conn
        try:
            with conn.cursor() as cursor:
                cursor.execute("START TRANSACTION READ ONLY")
                try:
                    cursor.execute(query)
                    if cursor.description is not None:
                        cursor.fetchone()
                finally:
                    cursor.execute("ROLLBACK")
        except pymysql.Error as error:
            raise VerificationError(
                f"the probe query failed with the new credentials: {_driver_message(error)}; "
                "check TEST_QUERY and the user's grants"
            ) from None

    def check_pair(
        self, admin: Session, *, caller: Session, original: str, target: str, allow_privileged: bool
    ) -> None:
        from rotation_core.engines.mysql.pair import check_pair

        check_pair(
            self, _session(admin), _session(caller), original=original, target=target, allow_privileged=allow_privileged
        )

    def check_own_password(self, session: Session, login: DatabaseLogin) -> None:
        from rotation_core.engines.mysql.preflight import check_own_password

        check_own_password(self, _session(session))

    def check_clone_rights(self, admin: Session, *, caller: Session, original: str, target: str) -> None:
        from rotation_core.engines.mysql.preflight import check_clone_rights

        check_clone_rights(self, _session(admin), _session(caller), original=original, target=target)

    # -- dual passwords (MySQL 8.0.14 and later, .dual_password) and the drain check -------------------

    def set_dual_password(self, session: Session, request: DualPasswordRequest) -> bool:
        from rotation_core.engines.mysql.dual_password import set_own

        return set_own(self, _session(session), request)

    def set_dual_password_as_admin(self, admin: Session, request: DualPasswordRequest) -> DualPasswordOutcome:
        from rotation_core.engines.mysql.dual_password import set_as_admin

        return set_as_admin(self, _session(admin), request)

    def check_dual_password(self, session: Session, login: DatabaseLogin, *, admin: Session | None) -> None:
        from rotation_core.engines.mysql.dual_password import check

        check(self, _session(session), None if admin is None else _session(admin))

    def count_sessions(self, session: Session, username: str) -> int | None:
        """Threads of ``username`` in the process list, this one excepted; None when this account sees only its own
        threads (it lacks PROCESS) and ``username`` is another account."""
        from rotation_core.engines.mysql.preflight import _holds, _own_grants

        mysql_session = _session(session)
        if username != mysql_session.account.user:
            process = Privilege(GrantObject("", None, None), "PROCESS")
            if not _holds(_own_grants(self, mysql_session), process, with_grant=False):
                return None
        rows = self._fetch_rows(
            mysql_session,
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s AND ID <> CONNECTION_ID()",
            (username,),
            action=f"count the sessions of {describe(username)}",
        )
        return int(rows[0][0]) if rows else 0

    # -- helpers ---------------------------------------------------------------------------------

    def _original_host(self, session: MySQLSession, original: str, caller: Account) -> str:
        """The host part of the original account, from the server; ambiguity is an error, not a guess.

        ``caller`` is the account the current secret logged in as (the original or its alternate, which
        share the host part): where the original exists with several hosts, that login says which.
        """
        query = USER_HOSTS_MARIADB if session.server.flavour is Flavour.MARIADB else USER_HOSTS_MYSQL
        hosts = self._fetch_column(session, query, (original,), action="look up the original user's hosts")
        if not hosts:
            raise TargetError(
                f"the user {describe(original)} does not exist on the server; create it (the alternating "
                "strategy copies it, it does not invent it)",
                category=Category.PERMISSION,
            )
        if caller.host in hosts:
            return str(caller.host)
        if len(hosts) == 1:
            return hosts[0]
        listed = ", ".join(describe(h) for h in sorted(hosts))
        raise TargetError(
            f"the user {describe(original)} exists with several hosts ({listed}) and the current login "
            "did not say which one it is; keep one account per user name for rotated users",
            category=Category.PERMISSION,
        )

    def _account_row(
        self, session: MySQLSession, builder: StatementBuilder, account: Account, text: str
    ) -> AccountRow | None:
        """Plugin, TLS requirement and resource limits from ``mysql.user``; None if there is no such account.

        MySQL 5.7+ never shows resource limits in SHOW GRANTS, so they are read here on both flavours.
        """
        columns = [column for column, _name in builder.limit_columns]
        query = f"{ACCOUNT_ROW_START}, {', '.join(columns)} {ACCOUNT_ROW_END}"
        rows = self._fetch_rows(session, query, (account.user, account.host), action=f"read {text}")
        if not rows:
            return None
        plugin, ssl_type, cipher, issuer, subject, *limit_values = rows[0]
        names = [name for _column, name in builder.limit_columns]
        limits = {name: limit_text(value) for name, value in zip(names, limit_values, strict=True)}
        requirement = TlsRequirement(
            ssl_type=_text(ssl_type).upper(), cipher=_text(cipher), issuer=_text(issuer), subject=_text(subject)
        )
        return AccountRow(plugin=_text(plugin), requirement=requirement, limits=limits)

    def _grants(self, session: MySQLSession, account: Account, text: str) -> AccountGrants:
        lines = self._fetch_column(
            session, "SHOW GRANTS FOR %s@%s", (account.user, account.host), action=f"read the grants of {text}"
        )
        try:
            return parse_grants(lines, account)
        except GrantSyntaxError as error:
            raise UnsupportedAccountError(
                f"the grants of {text} cannot be copied safely ({error}); only plain privileges, column "
                "privileges, WITH GRANT OPTION, resource limits and roles are copied (see the README)"
            ) from None

    def _default_roles(
        self, session: MySQLSession, builder: StatementBuilder, account: Account, grants: AccountGrants
    ) -> list[Account]:
        """The default roles of an existing account: MariaDB shows them in SHOW GRANTS, MySQL 8+ has a table."""
        if builder.is_mariadb:
            return list(grants.default_roles)
        if session.server.numbers < (8, 0, 0):
            return []  # MySQL 5.7 has no roles
        rows = self._fetch_rows(session, MYSQL_DEFAULT_ROLES, (account.user, account.host), action="read default roles")
        return [Account(_text(user), _text(host)) for user, host in rows]

    def _fetch_rows(
        self, session: MySQLSession, query: str, params: tuple[object, ...], *, action: str
    ) -> list[tuple[Any, ...]]:
        import pymysql

        try:
            with session.conn.cursor() as cursor:
                self._send(cursor, (query, params))
                return list(cursor.fetchall())
        except (pymysql.Error, *_DRIVER_FORMAT_ERRORS) as error:
            raise self._statement_error(
                error,
                action,
                "the master user needs SELECT on the mysql schema to read accounts and grants",
                query,
            ) from None

    def _fetch_column(self, session: MySQLSession, query: str, params: tuple[object, ...], *, action: str) -> list[str]:
        return [_text(row[0]) for row in self._fetch_rows(session, query, params, action=action)]

    def _execute(
        self, session: MySQLSession, statements: list[Statement], *, action: str, admin_hint: str = ""
    ) -> None:
        import pymysql

        sql = ""
        try:
            with session.conn.cursor() as cursor:
                for statement in statements:
                    sql = statement[0]
                    self._send(cursor, statement)
        except (pymysql.Error, *_DRIVER_FORMAT_ERRORS) as error:
            raise self._statement_error(error, action, admin_hint, sql) from None
        get_logger().debug("ran account statements", extra={"statements": len(statements)})

    @staticmethod
    def _send(cursor: pymysql.cursors.Cursor, statement: Statement) -> None:
        """The one place statements reach the driver: always formatted with their (possibly empty) values.

        Passing None instead of an empty tuple would skip PyMySQL's formatting and send ``%%`` as is.
        """
        sql, values = statement
        cursor.execute(sql, tuple(values))

    def _statement_error(self, error: Exception, action: str, admin_hint: str, sql: str) -> TargetError:
        import pymysql

        # The statement text holds no value (those are bound parameters), so it can be shown.
        at = f"{action} (at {describe(_shown(sql))})"
        code = _error_code(error)
        if isinstance(error, _DRIVER_FORMAT_ERRORS) or (isinstance(error, pymysql.ProgrammingError) and code is None):
            # PyMySQL formats the statement before sending it: a TypeError there comes out as a
            # ProgrammingError without a server error number, a ValueError (UnicodeEncodeError
            # included) as it is.
            return StatementError(
                f"PyMySQL could not build the statement to {at}: {type(error).__name__}: {_driver_message(error)}; "
                "nothing of this statement reached the server. A name in the account or its grants cannot be "
                "written into SQL text by this function: rename it, or report this as a bug"
            )
        lost = code in _CR_LOST_CONNECTION
        hint = admin_hint or "see the database's message"
        return TargetError(
            f"{self.display_name} refused to {at}: {_driver_message(error)}; {hint}",
            category=Category.UNREACHABLE if lost else Category.PERMISSION,
        )

    def _login_error(self, login: DatabaseLogin, error: Exception, ca_bundle: str | None) -> TargetError:
        message = _driver_message(error)
        where = (
            f"{self.display_name} login as {describe(login.username)} at {login.host}:{login.port} "
            f"({login.label} secret)"
        )
        category, text = self._classify_login_error(login, error, message, ca_bundle)
        return TargetError(f"{where} {text}", category=category)

    def _classify_login_error(
        self, login: DatabaseLogin, error: Exception, message: str, ca_bundle: str | None
    ) -> tuple[Category, str]:
        lowered = message.lower()
        code = _error_code(error)
        cause = getattr(error, "original_exception", None) or error
        if code in (_ER_ACCESS_DENIED, _ER_ACCESS_DENIED_NO_PASSWORD):
            return Category.AUTH_FAILED, f"was refused: {message}"
        if "server doesn't support it" in lowered or "server does not support ssl" in lowered:
            return Category.TLS, (
                'failed: the server does not offer TLS. Enable TLS on the server, or set "ssl": false in the '
                "secret to connect without it (the password then crosses the network unencrypted)"
            )
        if "cryptography" in lowered or code in (_CR_AUTH_PLUGIN_ERROR, _ER_SECURE_TRANSPORT_REQUIRED):
            return Category.TLS, (
                f"failed: {message}. caching_sha2_password and sha256_password need TLS (the default) or the "
                'cryptography package in the layer; remove "ssl": false / "sslmode" from the secret'
            )
        tls_text = any(marker in lowered for marker in _TLS_MARKERS) and login.tls is not TlsMode.DISABLE
        if isinstance(cause, ssl.SSLError) or code == _CR_SSL_CONNECTION_ERROR or tls_text:
            return Category.TLS, (
                f"failed TLS ({login.tls.value}, CA bundle {ca_bundle or 'not used'}): {message}. Set DB_CA_BUNDLE "
                "to a bundle holding the server's CA (see the README for RDS) and use the host name the "
                "certificate was issued for"
            )
        if code in (_ER_DBACCESS_DENIED, _ER_NOT_SUPPORTED_AUTH_MODE):
            return Category.PERMISSION, (
                f"was not permitted: {message}; check the user's access to the secret's dbname and its auth plugin"
            )
        return Category.UNREACHABLE, (
            f"failed, the server is unreachable: {message}. Check host, port and network routes/security groups "
            f"(connect timeout {self._settings.connect_timeout}s, DB_CONNECT_TIMEOUT)"
        )


def _tls_context(mode: TlsMode, ca_bundle: str | None) -> ssl.SSLContext:
    if mode.verifies_certificate:
        context = ssl.create_default_context(cafile=ca_bundle)
        context.check_hostname = mode is TlsMode.VERIFY_FULL
        return context
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # "require": encrypted, not authenticated, as in libpq
    return context


def _account_of(current_user: str, username: str) -> Account:
    """Split ``CURRENT_USER()`` (``user@host``; the user may itself contain ``@``)."""
    user, _sep, host = current_user.rpartition("@")
    if current_user.startswith(username + "@"):
        user, host = username, current_user[len(username) + 1 :]
    return Account(user, host)


def _session(session: Session | None) -> MySQLSession:
    if not isinstance(session, MySQLSession):
        raise TypeError("expected a session opened by MySQLEngine.connect")
    return session


def _shown(sql: str) -> str:
    """A statement template as the server would see it, placeholders left in, for messages."""
    return sql.replace("%%", "%")


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _error_code(error: Exception) -> int | None:
    args = getattr(error, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


_WHITESPACE = re.compile(r"\s+")


def _driver_message(error: Exception) -> str:
    """The driver's message on one line, with any registered secret value removed."""
    args: tuple[object, ...] = tuple(getattr(error, "args", ()))
    text = str(args[1]) if len(args) >= 2 and isinstance(args[0], int) else str(error)
    return redact(_WHITESPACE.sub(" ", text or type(error).__name__).strip())
