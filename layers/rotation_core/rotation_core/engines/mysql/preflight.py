"""What a MySQL or MariaDB rotation will need, checked without changing anything (the preflight).

Only SELECT and SHOW statements, through the readers a rotation uses (:mod:`.accounts`), so the preflight reads the
accounts exactly as a rotation would (and needs the same rights to do so):

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

from rotation_core.engines.mysql.accounts import (
    account_row,
    check_own_account,
    copied_accounts,
    global_privilege,
    granted_default_roles,
    grants_of,
    holds,
    own_definition,
    own_grants,
    plugin_of,
)
from rotation_core.engines.mysql.grants import GRANT_OPTION, GrantObject, Privilege, render_role
from rotation_core.engines.mysql.session import MySQLSession, check_writable, fetch_rows
from rotation_core.engines.mysql.statements import StatementBuilder, UnsupportedAccountError
from rotation_core.errors import Category, TargetError, describe

_MYSQL_ROLE_RIGHTS = frozenset({"ROLE_ADMIN", "SUPER"})
_REQUIRE_CURRENT = re.compile(r"\bPASSWORD REQUIRE CURRENT(?: (DEFAULT|OPTIONAL))?\b")
_LISTED = 8


def check_own_password(session: MySQLSession) -> None:
    builder = StatementBuilder(session.server)
    where = check_own_account(session, builder)
    check_writable(session, f"{where} could not change its password")
    if builder.is_mariadb:
        return
    definition = own_definition(session)  # holds the password hash: searched, never shown
    builder.check_plugin(plugin_of(definition), where)
    required = _REQUIRE_CURRENT.search(definition)
    if required is not None and required.group(1) == "DEFAULT":
        rows = fetch_rows(
            session, "SELECT @@GLOBAL.password_require_current", (), action="read @@password_require_current"
        )
        required = required if rows and int(rows[0][0] or 0) else None
    if required is not None and required.group(1) != "OPTIONAL":
        raise UnsupportedAccountError(
            f"{where} must give its current password to change it (PASSWORD REQUIRE CURRENT), which a single-user "
            "rotation does not send; use the alternating-users strategy or ALTER USER ... PASSWORD REQUIRE CURRENT "
            "OPTIONAL"
        )


def check_clone_rights(admin: MySQLSession, caller: MySQLSession, *, original: str, target: str) -> None:
    builder = StatementBuilder(admin.server)
    source, clone, source_text, target_text, _row, _plugin = copied_accounts(
        admin, builder, original=original, target=target, caller=caller.account, doing="read"
    )
    desired = grants_of(admin, source, source_text)
    needed = set(desired.privileges)
    roles = {grant.role for grant in desired.roles}
    exists = target != original and account_row(admin, builder, clone, target_text) is not None
    if exists:
        existing = grants_of(admin, clone, target_text)
        needed |= existing.privileges - desired.privileges  # revoked from the clone: needs the same rights
        roles |= {grant.role for grant in existing.roles - desired.roles}
    defaults = granted_default_roles(admin, builder, source, desired)
    master = own_grants(admin)
    lacking = []
    if not holds(master, global_privilege("CREATE USER"), with_grant=False):
        lacking.append("CREATE USER")
    for privilege in sorted(needed, key=_order):
        if not holds(master, privilege, with_grant=True):
            what = "GRANT OPTION" if privilege.name == GRANT_OPTION else f"{privilege.name} WITH GRANT OPTION"
            column = f" ({describe(privilege.column)})" if privilege.column is not None else ""
            lacking.append(f"{what} on {_shown(privilege.target.render())}{column}")
    role_rights = {p.name for p in master.privileges if p.target == GrantObject("", None, None)}
    admin_roles = {grant.role for grant in master.roles if grant.admin_option}
    mysql_role_admin = not builder.is_mariadb and role_rights & _MYSQL_ROLE_RIGHTS
    for role in sorted(roles - admin_roles, key=lambda r: (r.user, r.host or "")):
        if not mysql_role_admin:
            lacking.append(f"ADMIN OPTION on the role {_shown(render_role(role))}")
    if builder.is_mariadb and defaults:
        update = Privilege(GrantObject("", "mysql", None), "UPDATE")
        if not holds(master, update, with_grant=False):
            lacking.append("UPDATE on the mysql schema (to set the alternate's default role)")
    if lacking:
        more = len(lacking) - _LISTED
        listed = "; ".join(lacking[:_LISTED]) + (f"; and {more} more" if more > 0 else "")
        master_text = f"{describe(admin.account.user)}@{describe(admin.account.host)}"
        raise TargetError(
            f"the master {master_text} cannot copy {source_text} to {target_text}: it lacks {listed}",
            category=Category.PERMISSION,
        )


def _order(privilege: Privilege) -> tuple[str, str, str, str, str]:
    target = privilege.target
    return (target.kind, target.database or "", target.name or "", privilege.name, privilege.column or "")


def _shown(rendered: str) -> str:
    """A rendered grant object or role as the server writes it (``%`` not doubled), for a message."""
    return describe(rendered.replace("%%", "%"))
