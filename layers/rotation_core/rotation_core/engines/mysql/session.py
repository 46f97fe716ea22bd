"""A MySQL or MariaDB session: the connection, who the server says we are, and every statement sent on it.

Every statement goes through :func:`send`, which always formats it, so ``%`` doubled in spliced names is undone
exactly once. :mod:`.engine` opens sessions; it, the read-only checks (:mod:`.pair`, :mod:`.preflight`) and the
dual-password statements (:mod:`.dual_password`) all send and read through here. The driver is imported by the
functions that use it, never at import time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rotation_core.engines.base import DriverSession, Session
from rotation_core.engines.mysql import ENGINE
from rotation_core.engines.mysql.grants import Account, Statement
from rotation_core.engines.mysql.statements import ServerVersion
from rotation_core.errors import Category, StatementError, TargetError, describe
from rotation_core.log import get_logger, redact

if TYPE_CHECKING:
    import pymysql.connections
    import pymysql.cursors

# Client error numbers (CR_*) that mean the connection is gone.
_CR_LOST_CONNECTION = frozenset({2003, 2006, 2013, 2055})
# What the driver raises when it cannot turn a statement and its values into SQL text.
DRIVER_FORMAT_ERRORS = (ValueError, TypeError, KeyError, IndexError)
_READ_HINT = "the master user needs SELECT on the mysql schema to read accounts and grants"


@dataclass
class MySQLSession(DriverSession):
    """An open connection plus who the server says we are and what the server is."""

    conn: pymysql.connections.Connection[Any]
    account: Account
    server: ServerVersion

    def _close_connection(self) -> None:
        self.conn.close()


def session_of(session: Session | None) -> MySQLSession:
    """The session :meth:`~.engine.MySQLEngine.connect` opened (anything else is a bug)."""
    if not isinstance(session, MySQLSession):
        raise TypeError("expected a session opened by MySQLEngine.connect")
    return session


def fetch_rows(session: MySQLSession, query: str, params: tuple[object, ...], *, action: str) -> list[tuple[Any, ...]]:
    import pymysql

    try:
        with session.conn.cursor() as cursor:
            send(cursor, (query, params))
            return list(cursor.fetchall())
    except (pymysql.Error, *DRIVER_FORMAT_ERRORS) as error:
        raise statement_error(error, action, _READ_HINT, query) from None


def fetch_column(session: MySQLSession, query: str, params: tuple[object, ...], *, action: str) -> list[str]:
    return [text_of(row[0]) for row in fetch_rows(session, query, params, action=action)]


def check_writable(session: MySQLSession, refused: str) -> None:
    """Refuse a read-only server (a replica, a reader instance); ``refused`` says what could not change there."""
    (read_only,) = fetch_rows(session, "SELECT @@GLOBAL.read_only", (), action="read @@read_only")[0]
    if int(read_only or 0):
        raise TargetError(
            f"the server is read-only (@@read_only is on: a replica or a reader instance), so {refused}; "
            'point the secret\'s "host" at the writer',
            category=Category.PERMISSION,
        )


def execute(session: MySQLSession, statements: list[Statement], *, action: str, admin_hint: str = "") -> None:
    import pymysql

    sql = ""
    try:
        with session.conn.cursor() as cursor:
            for statement in statements:
                sql = statement[0]
                send(cursor, statement)
    except (pymysql.Error, *DRIVER_FORMAT_ERRORS) as error:
        raise statement_error(error, action, admin_hint, sql) from None
    get_logger().debug("ran account statements", extra={"statements": len(statements)})


def send(cursor: pymysql.cursors.Cursor, statement: Statement) -> None:
    """The one place statements reach the driver: always formatted with their (possibly empty) values.

    Passing None instead of an empty tuple would skip PyMySQL's formatting and send ``%%`` as is.
    """
    sql, values = statement
    cursor.execute(sql, tuple(values))


def statement_error(error: Exception, action: str, admin_hint: str, sql: str) -> TargetError:
    import pymysql

    # The statement text holds no value (those are bound parameters), so it can be shown.
    at = f"{action} (at {describe(_shown(sql))})"
    code = error_code(error)
    if isinstance(error, DRIVER_FORMAT_ERRORS) or (isinstance(error, pymysql.ProgrammingError) and code is None):
        # PyMySQL formats the statement before sending it: a TypeError there comes out as a
        # ProgrammingError without a server error number, a ValueError (UnicodeEncodeError
        # included) as it is.
        return StatementError(
            f"PyMySQL could not build the statement to {at}: {type(error).__name__}: {driver_message(error)}; "
            "nothing of this statement reached the server. A name in the account or its grants cannot be "
            "written into SQL text by this function: rename it, or report this as a bug"
        )
    lost = code in _CR_LOST_CONNECTION
    hint = admin_hint or "see the database's message"
    return TargetError(
        f"{ENGINE.display_name} refused to {at}: {driver_message(error)}; {hint}",
        category=Category.UNREACHABLE if lost else Category.PERMISSION,
    )


def _shown(sql: str) -> str:
    """A statement template as the server would see it, placeholders left in, for messages."""
    return sql.replace("%%", "%")


def text_of(value: object, *, errors: str = "replace") -> str:
    """A column's value as text (the driver answers bytes for some columns).

    ``errors="surrogateescape"`` keeps bytes that are not UTF-8 (a binary password string) recoverable.
    """
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors=errors)
    return str(value)


def error_code(error: Exception) -> int | None:
    """The server's (ER_*) or the client's (CR_*) error number, when the driver gives one."""
    args = getattr(error, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


_WHITESPACE = re.compile(r"\s+")


def driver_message(error: Exception) -> str:
    """The driver's message on one line, with any registered secret value removed."""
    args: tuple[object, ...] = tuple(getattr(error, "args", ()))
    text = str(args[1]) if len(args) >= 2 and isinstance(args[0], int) else str(error)
    return redact(_WHITESPACE.sub(" ", text or type(error).__name__).strip())
