"""One psycopg2 connection: statements sent in its transaction, rows read in a read-only one.

Every statement reaches the driver through :func:`send`, composed from :class:`~.statements.Statement` data (role
names ``sql.Identifier``, values ``sql.Literal``) and executed without parameters, so psycopg2 never %-formats it.
:mod:`.engine` changes roles through :func:`run`; the read-only checks (:mod:`.pair`, :mod:`.preflight`) read
through :func:`read_rows`. The driver is imported by the functions that use it, never at import time.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rotation_core.engines.base import Session
from rotation_core.engines.postgres import ENGINE
from rotation_core.engines.postgres.statements import Ident, Statement
from rotation_core.errors import Category, StatementError, TargetError
from rotation_core.log import redact

if TYPE_CHECKING:
    import psycopg2.extensions
    import psycopg2.sql

READ_ONLY = Statement("SET TRANSACTION READ ONLY")
# What the driver raises when it cannot turn a statement into SQL text (a name it cannot encode, say).
DRIVER_FORMAT_ERRORS = (ValueError, TypeError, KeyError, IndexError)


def connection_of(session: Session) -> psycopg2.extensions.connection:
    """The psycopg2 connection a :class:`~.engine.PostgresEngine` session is."""
    return session  # type: ignore[return-value]


def run(
    conn: psycopg2.extensions.connection,
    statements: Sequence[Statement],
    *,
    action: str,
    admin_hint: str = "",
    commit: bool = True,
) -> list[tuple[Any, ...]]:
    """Run the statements in the connection's transaction; the rows of the last one that returns any.

    With ``commit`` the transaction is committed; on any failure it is rolled back.
    """
    import psycopg2

    rows: list[tuple[Any, ...]] = []
    try:
        with conn.cursor() as cursor:
            for statement in statements:
                send(cursor, statement)
                if cursor.description is not None:
                    rows = list(cursor.fetchall())
        if commit:
            conn.commit()
    except psycopg2.Error as error:
        rollback(conn)
        insufficient = getattr(error, "pgcode", None) == "42501"
        hint = admin_hint if insufficient and admin_hint else "see the database's message"
        lost_connection = isinstance(error, psycopg2.OperationalError) and not insufficient
        raise TargetError(
            f"{ENGINE.display_name} refused to {action}: {driver_message(error)}; {hint}",
            category=Category.UNREACHABLE if lost_connection else Category.PERMISSION,
        ) from None
    except DRIVER_FORMAT_ERRORS as error:
        rollback(conn)
        raise StatementError(
            f"psycopg2 could not build a statement to {action}: {type(error).__name__}: "
            f"{driver_message(error)}; nothing was changed. A role name cannot be written into SQL text "
            "by this function: rename it, or report this as a bug"
        ) from None
    return rows


def read_rows(conn: psycopg2.extensions.connection, statement: Statement, action: str) -> list[tuple[object, ...]]:
    """The statement's rows, read in a transaction opened READ ONLY and rolled back."""
    try:
        return run(conn, [READ_ONLY, statement], action=action, commit=False)
    finally:
        rollback(conn)


def sql_text(conn: psycopg2.extensions.connection, statement: Statement) -> str:
    """A statement as SQL text (names quoted by the driver; only for statements that carry no value)."""
    return _composed(statement).as_string(conn)


def send(cursor: psycopg2.extensions.cursor, statement: Statement) -> None:
    """The one place statements reach the driver: composed, and never %-formatted (no parameters)."""
    cursor.execute(_composed(statement))


def _composed(statement: Statement) -> psycopg2.sql.Composed:
    from psycopg2 import sql

    parts = [sql.Identifier(p.name) if isinstance(p, Ident) else sql.Literal(p.value) for p in statement.parts]
    return sql.SQL(statement.template).format(*parts)


def rollback(conn: psycopg2.extensions.connection) -> None:
    import psycopg2

    with contextlib.suppress(psycopg2.Error):
        conn.rollback()


_WHITESPACE = re.compile(r"\s+")


def driver_message(error: Exception) -> str:
    """The driver's message on one line, with any registered secret value removed."""
    text = getattr(error, "pgerror", None) or str(error) or type(error).__name__
    return redact(_WHITESPACE.sub(" ", text).strip())
