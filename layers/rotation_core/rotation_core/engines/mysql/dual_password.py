"""MySQL dual passwords (8.0.14 and later): the new password becomes primary, the current one stays as secondary.

Both passwords log in until the next rotation replaces the secondary, so an application that still holds the
AWSCURRENT secret keeps connecting while AWSCURRENT moves (``docs/engines/mysql.md``). Measured on MySQL 9.7:

* **As the account itself**: ``ALTER USER USER() IDENTIFIED BY <new> REPLACE <current> RETAIN CURRENT PASSWORD``.
  Retaining a password on one's own account needs ``APPLICATION_PASSWORD_ADMIN`` (or ``CREATE USER``).
  ``REPLACE`` makes the server check ``<current>`` against the *primary* password and refuse (error 3891)
  otherwise, atomically: a retried or concurrent setSecret, where the new password is already primary, is
  refused instead of retaining the new password as the secondary and losing the current one. The server
  accepts no hash here (``USER()`` takes only ``IDENTIFIED BY``, ``CURRENT_USER() ... AS`` needs CREATE
  USER), so the two passwords travel in the (TLS) statement; MySQL writes ``<secret>`` for both in its
  general, slow and binary logs.
* **As a master** (``masterarn``): the account's ``caching_sha2_password`` strings are read from
  ``mysql.user`` (primary: ``authentication_string``; secondary: ``User_attributes.additional_password``)
  and compared with the two passwords (:mod:`.auth_strings`), under ``GET_LOCK`` on the account; then
  ``ALTER USER ... IDENTIFIED WITH caching_sha2_password AS '<hash>' RETAIN CURRENT PASSWORD`` sends a hash
  computed here, never the password. The master needs CREATE USER and SELECT on ``mysql.user``.

MariaDB keeps one password per account: the strategy is refused there, naming the server, before anything
is changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any

from rotation_core.engines.base import DualPasswordOutcome, DualPasswordRequest
from rotation_core.engines.mysql.accounts import global_privilege, holds, own_definition, own_grants, plugin_of
from rotation_core.engines.mysql.auth_strings import DEFAULT_ROUNDS, caching_sha2_hash, caching_sha2_matches
from rotation_core.engines.mysql.grants import Account, Statement
from rotation_core.engines.mysql.session import (
    MySQLSession,
    check_writable,
    error_code,
    execute,
    fetch_rows,
    send,
    session_of,
    statement_error,
    text_of,
)
from rotation_core.engines.mysql.statements import (
    CACHING_SHA2_PLUGIN,
    Flavour,
    ServerVersion,
    StatementBuilder,
    UnsupportedAccountError,
)
from rotation_core.errors import Category, TargetError, describe
from rotation_core.log import get_logger, register_sensitive

MIN_VERSION = (8, 0, 14)
_ER_INCORRECT_CURRENT_PASSWORD = 3891
_ER_SPECIFIC_ACCESS_DENIED = 1227
_LOCK_TIMEOUT_SECONDS = 15
_OWN_RIGHTS = frozenset({"APPLICATION_PASSWORD_ADMIN", "CREATE USER"})
_NO_DUAL_ON_MARIADB = (
    "{server} has no dual passwords (MariaDB keeps one password per account; RETAIN CURRENT PASSWORD is MySQL "
    "8.0.14 and later), so ROTATION_STRATEGY=dual_password cannot rotate it. Use the single_user or "
    "alternating_users function for this server"
)
OWN_STATEMENT = "ALTER USER USER() IDENTIFIED BY %s REPLACE %s RETAIN CURRENT PASSWORD"
ACCOUNT_PASSWORDS = (
    "SELECT plugin, authentication_string, User_attributes FROM mysql.user WHERE User = %s AND Host = %s"
)


def require_dual_passwords(server: ServerVersion) -> None:
    """Refuse a server without dual passwords, naming it (category ``configuration``: the strategy is wrong)."""
    if server.flavour is Flavour.MARIADB:
        raise TargetError(_NO_DUAL_ON_MARIADB.format(server=server), category=Category.CONFIGURATION)
    if server.numbers < MIN_VERSION:
        raise TargetError(
            f"{server} has no dual passwords: RETAIN CURRENT PASSWORD needs MySQL 8.0.14 or later. Upgrade the "
            "server, or use the single_user or alternating_users function",
            category=Category.CONFIGURATION,
        )


def own_statement(current_password: str, new_password: str) -> Statement:
    """The account's own change: applied by the server only while ``current_password`` is the primary."""
    return (OWN_STATEMENT, (new_password, current_password))


def admin_statement(account: Account, password_hash: str, *, retain: bool) -> Statement:
    """As a master: ``caching_sha2_password`` with the string computed here; ``retain`` keeps the primary as secondary.

    Without ``retain`` MySQL leaves an existing secondary password as it is.
    """
    tail = " RETAIN CURRENT PASSWORD" if retain else ""
    return (
        f"ALTER USER %s@%s IDENTIFIED WITH {CACHING_SHA2_PLUGIN} AS %s{tail}",
        (account.user, account.host, password_hash),
    )


def lock_name(account: Account) -> str:
    """A ``GET_LOCK`` name for the account (at most 64 characters, no user text)."""
    digest = hashlib.sha256(f"{account.user}@{account.host}".encode()).hexdigest()[:40]
    return f"secrets-rotation:{digest}"


def set_own(session: MySQLSession, request: DualPasswordRequest) -> bool:
    import pymysql

    require_dual_passwords(session.server)
    where = _where(session.account)
    register_sensitive(request.current_password, request.new_password)
    statement = own_statement(request.current_password, request.new_password)
    try:
        with session.conn.cursor() as cursor:
            send(cursor, statement)
    except pymysql.Error as error:
        code = error_code(error)
        if code == _ER_INCORRECT_CURRENT_PASSWORD:
            return False
        if code == _ER_SPECIFIC_ACCESS_DENIED:
            raise TargetError(
                f"{where} may not keep its current password as a secondary one: MySQL requires the "
                "APPLICATION_PASSWORD_ADMIN privilege for that on one's own account (GRANT APPLICATION_PASSWORD_ADMIN "
                'ON *.* TO the user), or name a master secret ("masterarn") that holds CREATE USER',
                category=Category.PERMISSION,
            ) from None
        raise statement_error(
            error, f"change the password of {where} keeping the current one", "see the database's message", statement[0]
        ) from None
    return True


def set_as_admin(admin: MySQLSession, request: DualPasswordRequest) -> DualPasswordOutcome:
    require_dual_passwords(admin.server)
    account = session_of(request.caller).account
    where = _where(account)
    register_sensitive(request.current_password, request.new_password)
    name = lock_name(account)
    rows = fetch_rows(
        admin, "SELECT GET_LOCK(%s, %s)", (name, _LOCK_TIMEOUT_SECONDS), action=f"lock {where} for the change"
    )
    if not rows or rows[0][0] != 1:
        raise TargetError(
            f"another rotation of {where} holds its lock (GET_LOCK) for over {_LOCK_TIMEOUT_SECONDS} s; retry",
            category=Category.UNREACHABLE,
        )
    try:
        primary, secondary = _stored_passwords(admin, account, where)
        if caching_sha2_matches(request.new_password, primary) and caching_sha2_matches(
            request.current_password, secondary
        ):
            return DualPasswordOutcome.ALREADY_SET
        rounds = _digest_rounds(admin)
        statements: list[Statement] = []
        outcome = DualPasswordOutcome.CHANGED
        if not caching_sha2_matches(request.current_password, primary):
            # An earlier attempt made the new password primary and the secondary was lost since, or the primary
            # was changed outside the rotation: the current password becomes primary again first, so that
            # RETAIN keeps it (never the new one).
            statements.append(admin_statement(account, _hash(request.current_password, rounds), retain=False))
            outcome = DualPasswordOutcome.RESTORED
        statements.append(admin_statement(account, _hash(request.new_password, rounds), retain=True))
        execute(
            admin,
            statements,
            action=f"change the password of {where} keeping the current one",
            admin_hint="the master needs CREATE USER (and SELECT on mysql.user to read the account first)",
        )
        return outcome
    finally:
        with contextlib.suppress(TargetError):  # the lock also ends with the session
            fetch_rows(admin, "SELECT RELEASE_LOCK(%s)", (name,), action=f"unlock {where}")


def check(session: MySQLSession, admin: MySQLSession | None) -> None:
    """Server, plugin and privileges of a dual-password rotation, read-only (the preflight and configuration test).

    The server and the plugin are reported as ``configuration`` (the strategy does not fit this account), what
    the user or the master lacks as ``permission``.
    """
    require_dual_passwords(session.server)
    builder = StatementBuilder(session.server)
    where = _where(session.account)
    if admin is None:
        plugin = plugin_of(own_definition(session))  # the text holds a hash: never shown
    else:
        rows = fetch_rows(
            admin, ACCOUNT_PASSWORDS, (session.account.user, session.account.host), action=f"read {where}"
        )
        if not rows:
            raise TargetError(f"the master cannot see {where} in mysql.user", category=Category.PERMISSION)
        plugin = text_of(rows[0][0], errors="surrogateescape")
    try:
        builder.check_plugin(plugin, where)
        if admin is not None:
            _require_caching_sha2(plugin, where)
    except UnsupportedAccountError as error:
        raise TargetError(error.message, category=Category.CONFIGURATION) from None
    target = admin or session
    check_writable(target, f"the password of {where} could not change")
    grants = own_grants(target)
    if admin is None:
        if not any(holds(grants, global_privilege(right), with_grant=False) for right in _OWN_RIGHTS):
            raise TargetError(
                f"{where} may not keep its current password as a secondary one: it lacks APPLICATION_PASSWORD_ADMIN "
                "(GRANT APPLICATION_PASSWORD_ADMIN ON *.* TO the user), which MySQL requires for RETAIN CURRENT "
                'PASSWORD on one\'s own account; or name a master secret ("masterarn")',
                category=Category.PERMISSION,
            )
        return
    if not holds(grants, global_privilege("CREATE USER"), with_grant=False):
        raise TargetError(
            f"the master {_where(admin.account)} lacks CREATE USER, which ALTER USER ... RETAIN CURRENT PASSWORD "
            "needs for another account",
            category=Category.PERMISSION,
        )


def _where(account: Account) -> str:
    return f"{describe(account.user)}@{describe(account.host)}"


def _require_caching_sha2(plugin: str, where: str) -> None:
    if plugin != CACHING_SHA2_PLUGIN:
        raise UnsupportedAccountError(
            f"{where} authenticates with {describe(plugin)}: a master sets dual passwords only for "
            f"{CACHING_SHA2_PLUGIN} accounts, whose stored strings it can compute and compare (no password in the "
            f"statement). Move the account to {CACHING_SHA2_PLUGIN}, or let the user change its own password "
            '(no "masterarn", APPLICATION_PASSWORD_ADMIN)'
        )


def _stored_passwords(admin: MySQLSession, account: Account, where: str) -> tuple[str | None, str | None]:
    """The account's primary and secondary password strings (never logged: they are registered as sensitive)."""
    rows = fetch_rows(admin, ACCOUNT_PASSWORDS, (account.user, account.host), action=f"read {where}")
    if not rows:
        raise TargetError(f"{where} is not in mysql.user (dropped while rotating?)", category=Category.PERMISSION)
    plugin, primary, attributes = (text_of(value, errors="surrogateescape") for value in rows[0])
    StatementBuilder(admin.server).check_plugin(plugin, where)
    _require_caching_sha2(plugin, where)
    secondary = _additional_password(attributes)
    register_sensitive(primary, secondary)
    return primary or None, secondary


def _additional_password(attributes: str) -> str | None:
    try:
        data: Any = json.loads(attributes) if attributes else {}
    except ValueError:
        return None
    value = data.get("additional_password") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


def _digest_rounds(admin: MySQLSession) -> int:
    rows = fetch_rows(
        admin,
        "SELECT @@GLOBAL.caching_sha2_password_digest_rounds",
        (),
        action="read @@caching_sha2_password_digest_rounds",
    )
    try:
        return int(rows[0][0]) if rows and rows[0][0] is not None else DEFAULT_ROUNDS
    except (TypeError, ValueError):
        return DEFAULT_ROUNDS


def _hash(password: str, rounds: int) -> str:
    value = caching_sha2_hash(password, rounds)
    register_sensitive(value)
    get_logger().debug("computed the caching_sha2_password string", extra={"rounds": rounds})
    return value
