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

Every statement goes through :func:`.session.send`, which always formats it, so ``%`` doubled in
spliced names is undone exactly once. The driver is imported on first connection, never at import time.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

from rotation_core.engines.base import (
    CloneRequest,
    DatabaseLogin,
    DualPasswordOutcome,
    DualPasswordRequest,
    Session,
    TlsMode,
    parse_login_fields,
    sql_probe_failed,
)
from rotation_core.engines.mysql import ENGINE, dual_password, pair, preflight
from rotation_core.engines.mysql.accounts import (
    account_row,
    check_own_account,
    copied_accounts,
    default_roles,
    global_privilege,
    granted_default_roles,
    grants_of,
    holds,
    own_grants,
)
from rotation_core.engines.mysql.grants import Account, AccountGrants, sync_statements
from rotation_core.engines.mysql.session import (
    MySQLSession,
    driver_message,
    error_code,
    execute,
    fetch_rows,
    session_of,
)
from rotation_core.engines.mysql.statements import (
    ServerVersion,
    StatementBuilder,
    native_password_hash,
)
from rotation_core.engines.tls import resolve_ca_bundle
from rotation_core.errors import Category, SecretFormatError, TargetError, describe
from rotation_core.log import register_sensitive
from rotation_core.settings import Settings

# Client error numbers (CR_*) and server error numbers (ER_*) that decide a category.
_ER_ACCESS_DENIED = 1045
# The same refusal without "(using password: ...)": MariaDB answers it for an account that does not exist at
# times (seen on 10.11 for a clone setSecret had not made yet), so it is a refused login too.
_ER_ACCESS_DENIED_NO_PASSWORD = 1698
_ER_DBACCESS_DENIED = 1044
_ER_SECURE_TRANSPORT_REQUIRED = 3159
_ER_NOT_SUPPORTED_AUTH_MODE = 1251
_CR_SSL_CONNECTION_ERROR = 2026
_CR_AUTH_PLUGIN_ERROR = 2061
_TLS_MARKERS = ("ssl", "tls", "certificate")
_ADMIN_HINT = (
    "the master user needs CREATE USER, SELECT on the mysql schema, and every privilege and role of the "
    "original user WITH GRANT OPTION / WITH ADMIN OPTION (see the README); once it has them, the next "
    "attempt completes the alternate user from the state this one left"
)


APPLICATION_NAME = "secrets-rotation"  # shows in the server's process list


class MySQLEngine:
    display_name = ENGINE.display_name
    engine_names = ENGINE.secret_engines
    default_port = ENGINE.default_port
    uses_rds = ENGINE.uses_rds

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
                f"{driver_message(error)}",
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
        mysql_session = session_of(session)
        builder = StatementBuilder(mysql_session.server)
        where = check_own_account(mysql_session, builder)
        statement = builder.own_password(new_password)
        register_sensitive(new_password, native_password_hash(new_password))
        execute(mysql_session, [statement], action=f"change the password of {where}")

    def set_clone_password(self, admin: Session, request: CloneRequest) -> None:
        caller, original, target, new_password = request.caller, request.original, request.target, request.new_password
        # Nothing happens before the pair is proven on the server (engines/mysql/pair.py).
        self.check_pair(
            admin, caller=caller, original=original, target=target, allow_privileged=request.allow_privileged
        )
        session = session_of(admin)
        builder = StatementBuilder(session.server)
        source, clone, source_text, target_text, source_row, plugin = copied_accounts(
            session, builder, original=original, target=target, caller=session_of(caller).account, doing="copied"
        )
        register_sensitive(new_password, native_password_hash(new_password))
        action = f"set the password of {target_text} as a stand-in for {source_text}"
        if target == original:
            execute(session, [builder.set_password(clone, new_password)], action=action, admin_hint=_ADMIN_HINT)
            return
        # The clone as it is now: absent, complete, or half-made by an attempt that failed part-way
        # (account statements cannot be rolled back). Everything below is computed from that state
        # or sets a value outright, so the next attempt completes once the cause is fixed.
        exists = account_row(session, builder, clone, target_text) is not None
        desired = grants_of(session, source, source_text)
        if exists:
            statements = [builder.set_password(clone, new_password, plugin=plugin)]
            existing = grants_of(session, clone, target_text)
        else:
            statements = [builder.create_user(clone, plugin, new_password)]
            existing = AccountGrants()
        statements.append(builder.require_tls(clone, source_row.requirement))
        statements.append(builder.resource_limits(clone, source_row.limits))
        statements.extend(sync_statements(desired, existing, clone))
        wanted = granted_default_roles(session, builder, source, desired)
        have = default_roles(session, builder, clone, existing) if exists else []
        execute(session, statements, action=action, admin_hint=_ADMIN_HINT)
        if wanted != have:
            # Last, once the roles are granted; it needs a privilege of its own on MariaDB.
            execute(
                session,
                [builder.default_roles(clone, wanted)],
                action=f"set the default roles of {target_text} to those of {source_text}",
                admin_hint=builder.default_role_privilege,
            )

    def probe(self, session: Session, query: str) -> None:
        import pymysql

        conn = session_of(session).conn
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
            raise sql_probe_failed(driver_message(error)) from None

    def check_pair(
        self, admin: Session, *, caller: Session, original: str, target: str, allow_privileged: bool
    ) -> None:
        pair.check_pair(
            session_of(admin), session_of(caller), original=original, target=target, allow_privileged=allow_privileged
        )

    def check_own_password(self, session: Session, login: DatabaseLogin) -> None:
        preflight.check_own_password(session_of(session))

    def check_clone_rights(self, admin: Session, *, caller: Session, original: str, target: str) -> None:
        preflight.check_clone_rights(session_of(admin), session_of(caller), original=original, target=target)

    # -- dual passwords (MySQL 8.0.14 and later, .dual_password) and the drain check -------------------

    def set_dual_password(self, session: Session, request: DualPasswordRequest) -> bool:
        return dual_password.set_own(session_of(session), request)

    def set_dual_password_as_admin(self, admin: Session, request: DualPasswordRequest) -> DualPasswordOutcome:
        return dual_password.set_as_admin(session_of(admin), request)

    def check_dual_password(self, session: Session, login: DatabaseLogin, *, admin: Session | None) -> None:
        dual_password.check(session_of(session), None if admin is None else session_of(admin))

    def count_sessions(self, session: Session, username: str) -> int | None:
        """Threads of ``username`` in the process list, this one excepted; None when this account sees only its own
        threads (it lacks PROCESS) and ``username`` is another account."""
        mysql_session = session_of(session)
        process = global_privilege("PROCESS")
        if username != mysql_session.account.user and not holds(own_grants(mysql_session), process, with_grant=False):
            return None
        rows = fetch_rows(
            mysql_session,
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s AND ID <> CONNECTION_ID()",
            (username,),
            action=f"count the sessions of {describe(username)}",
        )
        return int(rows[0][0]) if rows else 0

    # -- helpers ---------------------------------------------------------------------------------

    def _login_error(self, login: DatabaseLogin, error: Exception, ca_bundle: str | None) -> TargetError:
        message = driver_message(error)
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
        code = error_code(error)
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
