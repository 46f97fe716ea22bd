"""Before the master changes a password: prove on the server that the pair is the secret's own (issue #24).

The pair's names come from the rotated secret's ``username``, which whoever may edit the secret writes. So
the server is asked, with SELECT and SHOW GRANTS only, before any account statement:

* neither ``<user>`` nor ``<user>_clone`` has the master's user name (at any host);
* neither holds superuser-class rights, directly or through its roles (read recursively): at the global
  level ``ALL PRIVILEGES``, ``SUPER``, ``SYSTEM_USER``, ``CREATE USER``, ``GRANT OPTION``, ``ROLE_ADMIN``,
  the definer privileges, ``FILE``, or any privilege that writes (global, or on the ``mysql`` schema, whose tables
  hold the accounts); any ``PROXY`` grant — unless the operator listed ``<user>`` in
  ``ALLOW_PRIVILEGED_USERS`` (the function's environment, never the secret);
* when the alternate is the current login and the original's password is to be set, the alternate is the
  original's copy: at the original's host, holding already every privilege and role of the original (grant
  and admin options left out: AWS's function drops ``WITH GRANT OPTION`` when it copies grants), so whoever
  uses it gains no right by the original's password. When the alternate's password is to be set, its
  grants are then brought to the original's (privileges and roles the original lacks are revoked), so
  whoever knows the original's password gains no right by it either; only the two checks above apply.

No marker would do better here: MySQL 8's account ``ATTRIBUTE``/``COMMENT`` can be set by any holder of
``CREATE USER`` (MariaDB has neither), and so can a marker role be dropped and re-made. That is also who
can plant an account, and who could already change the password of any account without ``SYSTEM_USER``
(MariaDB: of any account) directly; the function never does it for them where the server's answers show
a right it would hand over.
"""

from __future__ import annotations

from dataclasses import dataclass

from rotation_core.engines.base import CLONE_SUFFIX
from rotation_core.engines.mysql.accounts import account_row, original_host
from rotation_core.engines.mysql.grants import (
    GRANT_OPTION,
    Account,
    AccountGrants,
    GrantSyntaxError,
    Privilege,
    parse_grants,
    render_role,
)
from rotation_core.engines.mysql.session import MySQLSession, fetch_column
from rotation_core.engines.mysql.statements import StatementBuilder, UnsupportedAccountError
from rotation_core.errors import ConfusedDeputyError, describe
from rotation_core.settings import ALLOW_PRIVILEGED_USERS

NOTHING_CHANGED = "Nothing was changed"
RESTORE = (
    "If someone edited the secret to name this user, put the secret's own user back: make its previous value "
    "AWSCURRENT again"
)
#: Global privileges that manage accounts, grants or definers, or bypass the rules (MySQL and MariaDB names).
PRIVILEGED_GLOBAL = frozenset(
    {"ALL PRIVILEGES", "SUPER", "SYSTEM_USER", "CREATE USER", GRANT_OPTION, "ROLE_ADMIN", "SET_USER_ID",
     "SET_ANY_DEFINER", "ALLOW_NONEXISTENT_DEFINER", "SET USER", "FILE"}
)  # fmt: skip
#: Privileges that write: held globally or on the ``mysql`` schema they reach the account tables.
WRITING = frozenset({"ALL PRIVILEGES", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER"})
ACCOUNT_SCHEMA = "mysql"
_MAX_ROLES = 64  # roles read per account (nested roles included)


def check_pair(
    admin: MySQLSession, caller: MySQLSession, *, original: str, target: str, allow_privileged: bool
) -> None:
    """Raise :class:`ConfusedDeputyError` unless the master may act on ``original`` and its alternate."""
    alternate = original + CLONE_SUFFIX
    master = admin.account
    for name in (original, alternate):
        # The server compares user names with trailing spaces ignored (PAD SPACE): so does this.
        if name.rstrip(" ") == master.user.rstrip(" "):
            raise ConfusedDeputyError(
                f"the pair {describe(original)} / {describe(alternate)} includes the master's own user name "
                f"{describe(name)}: alternating users never change the master's password (rotate the master secret "
                f"with the single-user function). {NOTHING_CHANGED}. {RESTORE}"
            )
    builder = StatementBuilder(admin.server)
    host = original_host(admin, original, caller.account)
    source, clone = Account(original, host), Account(alternate, host)
    source_text, clone_text = _text(source), _text(clone)
    if target == original and caller.account != clone:
        raise ConfusedDeputyError(
            f"the current login is {_text(caller.account)}, but the alternate of {source_text} is {clone_text} "
            f"(the same host part): this function and AWS's make it there. {NOTHING_CHANGED}. {RESTORE}"
        )
    clone_exists = account_row(admin, builder, clone, clone_text) is not None
    accounts = [(source, source_text)] + ([(clone, clone_text)] if clone_exists else [])
    direct = {account: _read_grants(admin, account, text) for account, text in accounts}
    if not allow_privileged:
        for account, text in accounts:
            reasons = _privileged_reasons(admin, direct[account])
            if reasons:
                raise ConfusedDeputyError(
                    f"{text} holds superuser-class rights ({'; '.join(reasons)}): the master changes such an "
                    f"account's password only when the function's {ALLOW_PRIVILEGED_USERS} lists "
                    f"{describe(original)} (an operator's decision, in the function's environment; never a "
                    f"secret's). {NOTHING_CHANGED}. {RESTORE}"
                )
    if target == original:  # the alternate is the current login: the original's password is next
        if not clone_exists:
            raise ConfusedDeputyError(f"{clone_text}, the current login, vanished; retry the rotation")
        _check_copy(direct[source].grants, direct[clone].grants, source_text, clone_text)


def _check_copy(source: AccountGrants, clone: AccountGrants, source_text: str, clone_text: str) -> None:
    missing = sorted(_rights(source) - _rights(clone))
    if missing:
        raise ConfusedDeputyError(
            f"{clone_text} is the current login, but it lacks rights {source_text} holds ({_listed(missing)}), "
            f"so the server does not show it as a copy of {source_text}, and setting the password of "
            f"{source_text} would hand those rights to whoever uses it. It may have been planted by whoever edited "
            f"the secret. {NOTHING_CHANGED}. {RESTORE}. If it really is the alternate (grants given to "
            f"{source_text} alone while the alternate was in use), give {clone_text} the same grants and rotate "
            "again"
        )


def _rights(grants: AccountGrants) -> set[tuple[str, ...]]:
    """Privileges and roles as comparable keys, without grant and admin options."""
    keys = {_privilege_key(p) for p in grants.privileges if p.name != GRANT_OPTION}
    keys |= {("role", render_role(grant.role).replace("%%", "%")) for grant in grants.roles}
    return keys


def _privilege_key(privilege: Privilege) -> tuple[str, ...]:
    column = "" if privilege.column is None else f" ({privilege.column})"
    return ("privilege", f"{privilege.name}{column} ON {privilege.target.render().replace('%%', '%')}")


def _listed(keys: list[tuple[str, ...]], most: int = 6) -> str:
    shown = ", ".join(describe(key[1]) for key in keys[:most])
    return shown + (f" and {len(keys) - most} more" if len(keys) > most else "")


@dataclass(frozen=True)
class _Read:
    """An account's (or role's) grants as data, and whether it holds a PROXY grant (outside the copy grammar)."""

    grants: AccountGrants
    proxy: bool


def _read_grants(session: MySQLSession, account: Account, text: str) -> _Read:
    """Every grant line of ``account``; a PROXY line is noted, every other line must parse."""
    action = f"read the grants of {text}"
    if account.host is None:  # a MariaDB role
        lines = fetch_column(session, "SHOW GRANTS FOR %s", (account.user,), action=action)
    else:
        lines = fetch_column(session, "SHOW GRANTS FOR %s@%s", (account.user, account.host), action=action)
    merged, proxy = AccountGrants(), False
    for number, line in enumerate(lines, start=1):
        if line.lstrip().upper().startswith("GRANT PROXY"):
            proxy = True
            continue
        try:
            grants = parse_grants([line], account)
        except GrantSyntaxError as error:
            raise UnsupportedAccountError(
                f"the grants of {text} cannot be read safely (grant line {number}: {error}), so the function "
                f"cannot prove which rights it holds; {NOTHING_CHANGED.lower()}"
            ) from None
        merged.privileges |= grants.privileges
        merged.roles |= grants.roles
    return _Read(merged, proxy)


def _privileged_reasons(session: MySQLSession, read: _Read) -> list[str]:
    """What makes the account superuser-class, its roles' grants (recursively) included; empty if nothing."""
    reasons = _own_reasons(read, "")
    seen: set[Account] = set()
    pending = [grant.role for grant in read.grants.roles]
    while pending and len(seen) < _MAX_ROLES:
        role = pending.pop()
        if role in seen:
            continue
        seen.add(role)
        role_text = _text(role)
        role_read = _read_grants(session, role, f"the role {role_text}")
        reasons += _own_reasons(role_read, f" through the role {role_text}")
        pending += [grant.role for grant in role_read.grants.roles]
    if pending:
        reasons.append(f"more than {_MAX_ROLES} roles, not all of them read")
    return reasons


def _own_reasons(read: _Read, through: str) -> list[str]:
    reasons = []
    for privilege in sorted(read.grants.privileges, key=_privilege_key):
        target = privilege.target
        everywhere = target.kind == "" and target.database is None
        on_accounts = target.kind == "" and target.database == ACCOUNT_SCHEMA
        if (everywhere and (privilege.name in PRIVILEGED_GLOBAL or privilege.name in WRITING)) or (
            on_accounts and privilege.name in WRITING
        ):
            reasons.append(describe(f"{privilege.name} ON {target.render().replace('%%', '%')}") + through)
    if read.proxy:
        reasons.append(f"a PROXY grant{through}")
    return reasons


def _text(account: Account) -> str:
    return describe(account.user) if account.host is None else f"{describe(account.user)}@{describe(account.host)}"
