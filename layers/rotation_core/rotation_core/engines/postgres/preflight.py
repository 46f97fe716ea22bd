"""What a PostgreSQL rotation will need, checked without changing anything (the preflight).

Each check is one SELECT over the catalog, sent through the engine's own statement path
(:func:`~rotation_core.engines.postgres.connection.read_rows`, composed from :class:`Statement` data, never
%-formatted) inside a transaction that ``SET TRANSACTION READ ONLY`` opens and a rollback ends: even a mistake
here could not change a role.

* Single user: the user may change its own password unless the server is a standby (read replica),
  its transactions are read-only by default, or Amazon RDS restricts password commands to members of
  ``rds_password``; before PostgreSQL 10 there is no SCRAM-SHA-256 verifier to send.
* Alternating users: the master needs CREATEROLE (or superuser), superuser to manage a superuser, and
  on PostgreSQL 16 and later ADMIN OPTION on the original role and on an existing clone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rotation_core.engines.base import DatabaseLogin
from rotation_core.engines.postgres.connection import read_rows
from rotation_core.engines.postgres.statements import Literal, Statement
from rotation_core.errors import Category, TargetError, describe

if TYPE_CHECKING:
    import psycopg2.extensions

SCRAM_SINCE = 100000  # server_version_num of PostgreSQL 10
ADMIN_OPTION_SINCE = 16

OWN_PASSWORD_FACTS = Statement(
    "SELECT pg_catalog.pg_is_in_recovery(), pg_catalog.current_setting('default_transaction_read_only'), "
    "pg_catalog.current_setting('rds.restrict_password_commands', true), "
    "EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = 'rds_password' "
    "AND pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER'))"
)
_ON = frozenset({"on", "1", "true", "yes"})


def clone_rights_facts(original: str, target: str) -> Statement:
    """The master's role attributes and its ADMIN OPTION on the original and the target (NULL: no such role)."""
    return Statement(
        "SELECT current_user, me.rolsuper, me.rolcreaterole, "
        "(SELECT o.rolsuper FROM pg_catalog.pg_roles o WHERE o.rolname = {}), "
        "(SELECT pg_catalog.pg_has_role(current_user, o.oid, 'USAGE WITH ADMIN OPTION') "
        "FROM pg_catalog.pg_roles o WHERE o.rolname = {}), "
        "(SELECT pg_catalog.pg_has_role(current_user, t.oid, 'USAGE WITH ADMIN OPTION') "
        "FROM pg_catalog.pg_roles t WHERE t.rolname = {}) "
        "FROM pg_catalog.pg_roles me WHERE me.rolname = current_user",
        (Literal(original), Literal(original), Literal(target)),
    )


def check_own_password(conn: psycopg2.extensions.connection, login: DatabaseLogin) -> None:
    who = describe(login.username)
    if conn.server_version < SCRAM_SINCE:
        raise TargetError(
            f"the server runs PostgreSQL {conn.server_version // 10000}, which has no SCRAM-SHA-256 passwords; "
            "this function sends SCRAM verifiers only (PostgreSQL 10 or later)",
            category=Category.PERMISSION,
        )
    row = _facts(conn, OWN_PASSWORD_FACTS, f"read what a password change by {who} depends on")
    in_recovery, read_only, restricted, in_rds_password = row
    problems = []
    if in_recovery:
        problems.append(
            'the server is a read-only standby (a read replica): point the secret\'s "host" at the primary '
            "(the cluster's writer endpoint)"
        )
    if str(read_only).lower() in _ON:
        problems.append(
            f"transactions of {who} are read-only by default (default_transaction_read_only is on for the user, "
            f"its database or the server), so ALTER ROLE would be refused: ALTER ROLE {who} RESET "
            "default_transaction_read_only"
        )
    if restricted is not None and str(restricted).lower() in _ON and not in_rds_password:
        problems.append(
            f"rds.restrict_password_commands is on, so only members of rds_password may change passwords: "
            f"GRANT rds_password TO {who}"
        )
    if problems:
        raise TargetError(
            f"{who} could not change its own password: " + "; ".join(problems), category=Category.PERMISSION
        )


def check_clone_rights(conn: psycopg2.extensions.connection, *, original: str, target: str) -> None:
    row = _facts(conn, clone_rights_facts(original, target), "read the master's role attributes")
    master, superuser, createrole, original_super, admin_on_original, admin_on_target = row
    needs = []
    if original_super is None:
        needs.append(f"the user {describe(original)} does not exist on the server (the strategy copies it)")
    if not (superuser or createrole):
        needs.append(f"CREATEROLE (ALTER ROLE {describe(master)} CREATEROLE)")
    if original_super and not superuser:
        needs.append(f"superuser: {describe(original)} is a superuser, and only a superuser may change its password")
    if conn.server_version // 10000 >= ADMIN_OPTION_SINCE and not superuser:
        if original_super is not None and not admin_on_original:
            needs.append(
                f"ADMIN OPTION on {describe(original)} (PostgreSQL 16 and later: GRANT {describe(original)} TO "
                f"{describe(master)} WITH ADMIN OPTION)"
            )
        if target != original and admin_on_target is False:
            needs.append(
                f"ADMIN OPTION on the existing {describe(target)} (GRANT {describe(target)} TO {describe(master)} "
                "WITH ADMIN OPTION)"
            )
    if needs:
        raise TargetError(
            f"the master {describe(master)} cannot manage {describe(target)}: it needs " + "; ".join(needs),
            category=Category.PERMISSION,
        )


def _facts(conn: psycopg2.extensions.connection, statement: Statement, action: str) -> tuple[object, ...]:
    rows = read_rows(conn, statement, action)
    if not rows:
        raise TargetError(f"PostgreSQL answered no row when asked to {action}", category=Category.PERMISSION)
    return tuple(rows[0])
