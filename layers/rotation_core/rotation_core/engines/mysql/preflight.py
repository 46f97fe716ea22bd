"""What a MySQL or MariaDB rotation will need, checked without changing anything (the preflight).

Only SELECT and SHOW statements, through the engine's own readers, so the preflight reads the accounts
exactly as a rotation would (and needs the same rights to do so):

* Single user: the account checks of ``set_own_password`` (on MariaDB: one password plugin,
  ``mysql_native_password``); the server is not read-only (a replica); on MySQL the account does not
  require the current password for a change (``PASSWORD REQUIRE CURRENT``), read from ``SHOW CREATE
  USER`` for oneself, which needs no privilege. That output holds the account's password hash: it is
  searched for two clauses and never logged or returned.
* Alternating users: the master reads the original account as ``set_clone_password`` does (its host
  part, plugin, TLS requirement and limits from ``mysql.user``, its grants and default roles), which
  proves SELECT on the mysql schema; then its own grants (``SHOW GRANTS FOR CURRENT_USER()``) must hold
  CREATE USER, every privilege to copy (or revoke from an existing clone) with GRANT OPTION at its level
  or above, ADMIN OPTION on every role to copy (ROLE_ADMIN or SUPER on MySQL), and on MariaDB, when a
  default role is to be set, UPDATE on the mysql schema. Privileges that reach the master only through
  its roles are not counted.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rotation_core.engines.mysql.grants import (
    GRANT_OPTION,
    Account,
    AccountGrants,
    GrantObject,
    GrantSyntaxError,
    Privilege,
    parse_grants,
    render_role,
)
from rotation_core.engines.mysql.statements import StatementBuilder, UnsupportedAccountError
from rotation_core.errors import Category, TargetError, describe

if TYPE_CHECKING:
    from rotation_core.engines.mysql.engine import MySQLEngine, MySQLSession

ALL = "ALL PRIVILEGES"
# What ALL PRIVILEGES means at each level, for a master whose grants list privileges one by one (MySQL 8's root).
_TABLE_ALL = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "REFERENCES", "INDEX", "ALTER", "CREATE VIEW",
     "SHOW VIEW", "TRIGGER"}
)  # fmt: skip
_DATABASE_ALL = _TABLE_ALL | {"CREATE TEMPORARY TABLES", "LOCK TABLES", "EXECUTE", "CREATE ROUTINE", "ALTER ROUTINE",
                              "EVENT"}  # fmt: skip
_GLOBAL_ALL = _DATABASE_ALL | {"RELOAD", "SHUTDOWN", "PROCESS", "FILE", "SHOW DATABASES", "SUPER", "REPLICATION SLAVE",
                               "REPLICATION CLIENT", "CREATE USER", "CREATE TABLESPACE"}  # fmt: skip
_ROUTINE_ALL = frozenset({"EXECUTE", "ALTER ROUTINE"})
_MYSQL_ROLE_RIGHTS = frozenset({"ROLE_ADMIN", "SUPER"})
_REQUIRE_CURRENT = re.compile(r"\bPASSWORD REQUIRE CURRENT(?: (DEFAULT|OPTIONAL))?\b")
_IDENTIFIED_WITH = re.compile(r"\bIDENTIFIED WITH '([A-Za-z0-9_]+)'")
_LISTED = 8


def check_own_password(engine: MySQLEngine, session: MySQLSession) -> None:
    builder = StatementBuilder(session.server)
    where = engine._check_own_account(session, builder)
    (read_only,) = engine._fetch_rows(session, "SELECT @@GLOBAL.read_only", (), action="read @@read_only")[0]
    if int(read_only or 0):
        raise TargetError(
            f"the server is read-only (@@read_only is on: a replica or a reader instance), so {where} could not "
            'change its password; point the secret\'s "host" at the writer',
            category=Category.PERMISSION,
        )
    if builder.is_mariadb:
        return
    created = engine._fetch_column(session, "SHOW CREATE USER CURRENT_USER()", (), action="read own account")
    text = created[0] if created else ""  # holds the password hash: searched, never shown
    plugin = _IDENTIFIED_WITH.search(text)
    builder.check_plugin(plugin.group(1) if plugin else "", where)
    required = _REQUIRE_CURRENT.search(text)
    if required is not None and required.group(1) == "DEFAULT":
        rows = engine._fetch_rows(
            session, "SELECT @@GLOBAL.password_require_current", (), action="read @@password_require_current"
        )
        required = required if rows and int(rows[0][0] or 0) else None
    if required is not None and required.group(1) != "OPTIONAL":
        raise UnsupportedAccountError(
            f"{where} must give its current password to change it (PASSWORD REQUIRE CURRENT), which a single-user "
            "rotation does not send; use the alternating-users strategy or ALTER USER ... PASSWORD REQUIRE CURRENT "
            "OPTIONAL"
        )


def check_clone_rights(
    engine: MySQLEngine, admin: MySQLSession, caller: MySQLSession, *, original: str, target: str
) -> None:
    builder = StatementBuilder(admin.server)
    host = engine._original_host(admin, original, caller.account)
    source, clone = Account(original, host), Account(target, host)
    source_text = f"{describe(original)}@{describe(host)}"
    target_text = f"{describe(target)}@{describe(host)}"
    row = engine._account_row(admin, builder, source, source_text)
    if row is None:
        raise TargetError(f"{source_text} vanished while it was being read; retry", category=Category.PERMISSION)
    builder.check_plugin(row.plugin, source_text)
    desired = engine._grants(admin, source, source_text)
    needed = set(desired.privileges)
    roles = {grant.role for grant in desired.roles}
    exists = target != original and engine._account_row(admin, builder, clone, target_text) is not None
    if exists:
        existing = engine._grants(admin, clone, target_text)
        needed |= existing.privileges - desired.privileges  # revoked from the clone: needs the same rights
        roles |= {grant.role for grant in existing.roles - desired.roles}
    granted = {grant.role for grant in desired.roles}
    default_roles = [r for r in engine._default_roles(admin, builder, source, desired) if r in granted]
    master = _own_grants(engine, admin)
    lacking = []
    if not _holds(master, Privilege(GrantObject("", None, None), "CREATE USER"), with_grant=False):
        lacking.append("CREATE USER")
    for privilege in sorted(needed, key=_order):
        if not _holds(master, privilege, with_grant=True):
            what = "GRANT OPTION" if privilege.name == GRANT_OPTION else f"{privilege.name} WITH GRANT OPTION"
            column = f" ({describe(privilege.column)})" if privilege.column is not None else ""
            lacking.append(f"{what} on {_shown(privilege.target.render())}{column}")
    role_rights = {p.name for p in master.privileges if p.target == GrantObject("", None, None)}
    admin_roles = {grant.role for grant in master.roles if grant.admin_option}
    mysql_role_admin = not builder.is_mariadb and role_rights & _MYSQL_ROLE_RIGHTS
    for role in sorted(roles - admin_roles, key=lambda r: (r.user, r.host or "")):
        if not mysql_role_admin:
            lacking.append(f"ADMIN OPTION on the role {_shown(render_role(role))}")
    if builder.is_mariadb and default_roles:
        update = Privilege(GrantObject("", "mysql", None), "UPDATE")
        if not _holds(master, update, with_grant=False):
            lacking.append("UPDATE on the mysql schema (to set the alternate's default role)")
    if lacking:
        more = len(lacking) - _LISTED
        listed = "; ".join(lacking[:_LISTED]) + (f"; and {more} more" if more > 0 else "")
        master_text = f"{describe(admin.account.user)}@{describe(admin.account.host)}"
        raise TargetError(
            f"the master {master_text} cannot copy {source_text} to {target_text}: it lacks {listed}",
            category=Category.PERMISSION,
        )


def _own_grants(engine: MySQLEngine, session: MySQLSession) -> AccountGrants:
    """The session's own grants, line by line; a line outside the grammar (PROXY, a partial revoke) is skipped."""
    lines = engine._fetch_column(session, "SHOW GRANTS FOR CURRENT_USER()", (), action="read the master's own grants")
    merged = AccountGrants()
    for line in lines:
        try:
            grants = parse_grants([line], session.account)
        except GrantSyntaxError:
            continue
        merged.privileges |= grants.privileges
        merged.roles |= grants.roles
    return merged


def _covers(level: GrantObject, target: GrantObject) -> bool:
    """A grant at ``level`` applies to ``target``: ``*.*`` to everything, ``db.*`` to what is in ``db``."""
    if level.kind == "" and level.database is None:
        return True
    if level.kind == "" and level.name is None:
        return level.database == target.database
    return level == target


def _level_all(target: GrantObject) -> frozenset[str]:
    if target.kind:
        return _ROUTINE_ALL
    if target.database is None:
        return _GLOBAL_ALL
    return _DATABASE_ALL if target.name is None else _TABLE_ALL


def _holds(master: AccountGrants, privilege: Privilege, *, with_grant: bool) -> bool:
    """Does the master hold ``privilege`` (and GRANT OPTION for it, with ``with_grant``) at its level or above?"""
    applying = [p for p in master.privileges if _covers(p.target, privilege.target)]
    names = {p.name for p in applying if p.column is None}
    if with_grant and GRANT_OPTION not in names:
        return False
    if privilege.name == GRANT_OPTION or ALL in names or privilege.name in names:
        return True
    if privilege.name == ALL:
        return _level_all(privilege.target) <= names
    return privilege.column is not None and any(
        p.name == privilege.name and p.column == privilege.column for p in applying
    )


def _order(privilege: Privilege) -> tuple[str, str, str, str, str]:
    target = privilege.target
    return (target.kind, target.database or "", target.name or "", privilege.name, privilege.column or "")


def _shown(rendered: str) -> str:
    """A rendered grant object or role as the server writes it (``%`` not doubled), for a message."""
    return describe(rendered.replace("%%", "%"))
