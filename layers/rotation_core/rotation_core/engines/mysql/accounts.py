"""What the server says about accounts, read on a session: host parts, ``mysql.user`` rows, grants, default roles.

Reading only (SELECT and SHOW), so a rotation (:mod:`.engine`), the pair's proof (:mod:`.pair`) and the preflight
(:mod:`.preflight`, :mod:`.dual_password`) read the accounts the same way and need the same rights to do so.
:func:`holds` answers, from grants read here, whether an account holds a privilege at its level or above.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from rotation_core.engines.mysql.grants import (
    GRANT_OPTION,
    Account,
    AccountGrants,
    GrantObject,
    GrantSyntaxError,
    Privilege,
    auth_plugins_of,
    parse_grants,
)
from rotation_core.engines.mysql.session import MySQLSession, fetch_column, fetch_rows, text_of
from rotation_core.engines.mysql.statements import (
    ACCOUNT_ROW_END,
    ACCOUNT_ROW_START,
    MYSQL_DEFAULT_ROLES,
    USER_HOSTS_MARIADB,
    USER_HOSTS_MYSQL,
    AccountRow,
    Flavour,
    StatementBuilder,
    TlsRequirement,
    UnsupportedAccountError,
    limit_text,
)
from rotation_core.errors import Category, TargetError, describe

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
_IDENTIFIED_WITH = re.compile(r"\bIDENTIFIED WITH '([A-Za-z0-9_]+)'")


def original_host(session: MySQLSession, original: str, caller: Account) -> str:
    """The host part of the original account, from the server; ambiguity is an error, not a guess.

    ``caller`` is the account the current secret logged in as (the original or its alternate, which
    share the host part): where the original exists with several hosts, that login says which.
    """
    query = USER_HOSTS_MARIADB if session.server.flavour is Flavour.MARIADB else USER_HOSTS_MYSQL
    hosts = fetch_column(session, query, (original,), action="look up the original user's hosts")
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


def account_row(session: MySQLSession, builder: StatementBuilder, account: Account, text: str) -> AccountRow | None:
    """Plugin, TLS requirement and resource limits from ``mysql.user``; None if there is no such account.

    MySQL 5.7+ never shows resource limits in SHOW GRANTS, so they are read here on both flavours.
    """
    columns = [column for column, _name in builder.limit_columns]
    query = f"{ACCOUNT_ROW_START}, {', '.join(columns)} {ACCOUNT_ROW_END}"
    rows = fetch_rows(session, query, (account.user, account.host), action=f"read {text}")
    if not rows:
        return None
    plugin, ssl_type, cipher, issuer, subject, *limit_values = rows[0]
    names = [name for _column, name in builder.limit_columns]
    limits = {name: limit_text(value) for name, value in zip(names, limit_values, strict=True)}
    requirement = TlsRequirement(
        ssl_type=text_of(ssl_type).upper(), cipher=text_of(cipher), issuer=text_of(issuer), subject=text_of(subject)
    )
    return AccountRow(plugin=text_of(plugin), requirement=requirement, limits=limits)


class CopiedAccounts(NamedTuple):
    """An original account and its copy ``clone`` (the same host part), as messages name them, with the original's
    ``mysql.user`` row and its plugin (one a copy can keep)."""

    source: Account
    clone: Account
    source_text: str
    target_text: str
    source_row: AccountRow
    plugin: str


def copied_accounts(
    session: MySQLSession, builder: StatementBuilder, *, original: str, target: str, caller: Account, doing: str
) -> CopiedAccounts:
    """The original (its host part read from the server, see :func:`original_host`) and ``target`` on that host;
    ``doing`` ("copied", "read") says what was under way if the original vanishes meanwhile."""
    host = original_host(session, original, caller)
    source, clone = Account(original, host), Account(target, host)
    source_text = f"{describe(original)}@{describe(host)}"
    target_text = f"{describe(target)}@{describe(host)}"
    source_row = account_row(session, builder, source, source_text)
    if source_row is None:
        raise TargetError(f"{source_text} vanished while it was being {doing}; retry", category=Category.PERMISSION)
    plugin = builder.check_plugin(source_row.plugin, source_text)
    return CopiedAccounts(source, clone, source_text, target_text, source_row, plugin)


def grants_of(session: MySQLSession, account: Account, text: str) -> AccountGrants:
    """The account's grants as data; an account whose grants cannot be copied safely is refused."""
    lines = fetch_column(
        session, "SHOW GRANTS FOR %s@%s", (account.user, account.host), action=f"read the grants of {text}"
    )
    try:
        return parse_grants(lines, account)
    except GrantSyntaxError as error:
        raise UnsupportedAccountError(
            f"the grants of {text} cannot be copied safely ({error}); only plain privileges, column "
            "privileges, WITH GRANT OPTION, resource limits and roles are copied (see the README)"
        ) from None


def default_roles(
    session: MySQLSession, builder: StatementBuilder, account: Account, grants: AccountGrants
) -> list[Account]:
    """The default roles of an existing account: MariaDB shows them in SHOW GRANTS, MySQL 8+ has a table."""
    if builder.is_mariadb:
        return list(grants.default_roles)
    if session.server.numbers < (8, 0, 0):
        return []  # MySQL 5.7 has no roles
    rows = fetch_rows(session, MYSQL_DEFAULT_ROLES, (account.user, account.host), action="read default roles")
    return [Account(text_of(user), text_of(host)) for user, host in rows]


def granted_default_roles(
    session: MySQLSession, builder: StatementBuilder, account: Account, grants: AccountGrants
) -> list[Account]:
    """The default roles of an account that it is still granted (MariaDB keeps a default role after a REVOKE)."""
    granted = {grant.role for grant in grants.roles}
    return [role for role in default_roles(session, builder, account, grants) if role in granted]


def check_own_account(session: MySQLSession, builder: StatementBuilder) -> str:
    """Refuse an account whose own password this function cannot set; returns how messages name it."""
    where = f"{describe(session.account.user)}@{describe(session.account.host)}"
    if builder.is_mariadb:
        # The hash form is only right for mysql_native_password; SHOW GRANTS for oneself needs no privilege.
        lines = fetch_column(session, "SHOW GRANTS FOR CURRENT_USER()", (), action="read own grants")
        plugins = auth_plugins_of(lines, session.account)
        if len(plugins) > 1:
            raise UnsupportedAccountError(
                f"{where} may authenticate in several ways ({', '.join(plugins)}); this function rotates "
                "accounts with one password plugin only"
            )
        builder.check_plugin(plugins[0] if plugins else "", where)
    return where


def own_definition(session: MySQLSession) -> str:
    """``SHOW CREATE USER`` of the session's own account (MySQL; needs no privilege). It holds the password hash:
    search it, never show it."""
    created = fetch_column(session, "SHOW CREATE USER CURRENT_USER()", (), action="read own account")
    return created[0] if created else ""


def plugin_of(definition: str) -> str:
    """The auth plugin named in a ``SHOW CREATE USER`` text (empty if none is)."""
    found = _IDENTIFIED_WITH.search(definition)
    return found.group(1) if found else ""


def own_grants(session: MySQLSession) -> AccountGrants:
    """The session's own grants, line by line; a line outside the grammar (PROXY, a partial revoke) is skipped."""
    lines = fetch_column(session, "SHOW GRANTS FOR CURRENT_USER()", (), action="read the master's own grants")
    merged = AccountGrants()
    for line in lines:
        try:
            grants = parse_grants([line], session.account)
        except GrantSyntaxError:
            continue
        merged.privileges |= grants.privileges
        merged.roles |= grants.roles
    return merged


def holds(master: AccountGrants, privilege: Privilege, *, with_grant: bool) -> bool:
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


def global_privilege(name: str) -> Privilege:
    """``name`` ON ``*.*``."""
    return Privilege(GrantObject("", None, None), name)


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
