"""Before the master changes a password: prove on the server that the pair is the secret's own (issue #24).

The pair's names come from the rotated secret's ``username``, which whoever may edit the secret writes. So
the server is asked, reading only (a read-only transaction, rolled back), before any statement changes a
role:

* neither ``<user>`` nor ``<user>_clone`` is the master's own login (its session or current role);
* neither holds superuser-class rights — SUPERUSER, CREATEROLE, REPLICATION, BYPASSRLS, or membership
  (direct or through other roles) in a role that has one of them or in a privileged predefined or
  managed-service role (:data:`~.statements.PRIVILEGED_ROLES`) — unless the operator listed ``<user>`` in
  ``ALLOW_PRIVILEGED_USERS`` (the function's environment, never the secret);
* an existing ``<user>_clone`` really is ``<user>``'s alternate: a member of ``<user>`` through a grant made
  by the master (or by a superuser), and a member of no role ``<user>`` is not.

The grant is the marker. This function and AWS's multi-user function both make the alternate with
``GRANT <user> TO <user>_clone`` run as the master, and PostgreSQL records who granted it. Someone who
planted ``<user>_clone`` cannot forge that record: on PostgreSQL 16 and later granting ``<user>`` needs
ADMIN OPTION on it, and the grantor recorded is the granting role (a superuser's grant is recorded as the
bootstrap superuser's). A role comment or a default role (``SET role``) would not do: whoever created the
planted role may set both. On PostgreSQL 15 and earlier a role with CREATEROLE may grant membership in,
and change the password of, any role that is not a superuser, so against such a role the refusals that
matter are the master's own login and superuser-class users, which hold on every version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rotation_core.engines.base import CLONE_SUFFIX
from rotation_core.engines.postgres.connection import read_rows
from rotation_core.engines.postgres.statements import (
    membership_grantors,
    memberships_beyond,
    role_rights,
    session_roles,
)
from rotation_core.errors import Category, ConfusedDeputyError, TargetError, describe
from rotation_core.settings import ALLOW_PRIVILEGED_USERS

if TYPE_CHECKING:
    import psycopg2.extensions

NOTHING_CHANGED = "Nothing was changed"
RESTORE = (
    "If someone edited the secret to name this user, put the secret's own user back: make its previous value "
    "AWSCURRENT again"
)
_ATTRIBUTES = ("SUPERUSER", "CREATEROLE", "REPLICATION", "BYPASSRLS")
_LISTED = 6


def check_pair(conn: psycopg2.extensions.connection, *, original: str, target: str, allow_privileged: bool) -> None:
    """Raise :class:`ConfusedDeputyError` unless the master may act on ``original`` and its alternate."""
    alternate = original + CLONE_SUFFIX
    session_user, current_user = read_rows(conn, session_roles(), "read who the master is")[0]
    master = {str(session_user), str(current_user)}
    for name in (original, alternate):
        if name in master:
            raise ConfusedDeputyError(
                f"the pair {describe(original)} / {describe(alternate)} includes the master's own login "
                f"{describe(name)}: alternating users never change the master's password (rotate the master "
                f"secret with the single-user function). {NOTHING_CHANGED}. {RESTORE}"
            )
    rights = {str(row[0]): row for row in read_rows(conn, role_rights(original, alternate), "read the pair")}
    if original not in rights:
        raise TargetError(
            f"the user {describe(original)} does not exist on the server; create it (the alternating strategy "
            "copies it, it does not invent it)",
            category=Category.PERMISSION,
        )
    if target == original and alternate not in rights:
        raise ConfusedDeputyError(f"{describe(alternate)}, the current login, vanished; retry the rotation")
    if not allow_privileged:
        for name in (original, alternate):
            if name in rights:
                _refuse_privileged(name, original, rights[name])
    if alternate in rights:
        _check_alternate(conn, original, alternate, master)


def _refuse_privileged(name: str, original: str, row: tuple[object, ...]) -> None:
    _name, *flags, roles = row
    reasons = [attribute for attribute, on in zip(_ATTRIBUTES, flags, strict=True) if on]
    member_of = [str(role) for role in roles] if isinstance(roles, list) else []
    if member_of:
        more = f" and {len(member_of) - _LISTED} more" if len(member_of) > _LISTED else ""
        reasons.append("member of " + ", ".join(describe(role) for role in member_of[:_LISTED]) + more)
    if reasons:
        raise ConfusedDeputyError(
            f"{describe(name)} holds superuser-class rights ({'; '.join(reasons)}): the master changes such a "
            f"user's password only when the function's {ALLOW_PRIVILEGED_USERS} lists {describe(original)} (an "
            f"operator's decision, in the function's environment; never a secret's). {NOTHING_CHANGED}. {RESTORE}"
        )


def _check_alternate(conn: psycopg2.extensions.connection, original: str, alternate: str, master: set[str]) -> None:
    grantors = read_rows(conn, membership_grantors(original, alternate), "read who made the alternate")
    trusted = [str(name) for name, superuser in grantors if name is not None and (str(name) in master or superuser)]
    if not trusted:
        by = ", ".join(describe(name) if name is not None else "a dropped role" for name, _ in grantors)
        found = f"granted by {by}" if grantors else "no membership at all"
        master_name = describe(sorted(master)[0])
        raise ConfusedDeputyError(
            f"{describe(alternate)} exists but the server does not show it as the alternate of {describe(original)}: "
            f"it has {found}, where this function and AWS's make the alternate a member of {describe(original)} "
            f"through a grant by the master ({master_name}) or a superuser. It may have been planted by whoever "
            f"edited the secret. {NOTHING_CHANGED}. {RESTORE}. If it really is the alternate, have the master "
            f"grant the membership itself, as the master: GRANT {_ident(original)} TO {_ident(alternate)} "
            f"(PostgreSQL 15 and earlier: REVOKE {_ident(original)} FROM {_ident(alternate)} first)"
        )
    beyond = [str(row[0]) for row in read_rows(conn, memberships_beyond(alternate, original), "read roles")]
    if beyond:
        listed = ", ".join(describe(role) for role in beyond)
        raise ConfusedDeputyError(
            f"{describe(alternate)} is also a member of {listed}, which {describe(original)} is not: an alternate "
            f"holds the original's rights and nothing more, so its password is not set. {NOTHING_CHANGED}. "
            f"Revoke those memberships from {describe(alternate)} (REVOKE <role> FROM {_ident(alternate)}), or, if "
            "the secret was edited, make its previous value AWSCURRENT again"
        )


def _ident(name: str) -> str:
    """A name as a quoted identifier for a statement shown in a message (control characters escaped)."""
    return '"' + describe(name)[1:-1].replace('"', '""') + '"'
