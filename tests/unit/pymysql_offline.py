"""PyMySQL without a server: the SQL text PyMySQL itself makes of a statement, and a connection that
answers queries from a script and records every statement it would have sent.

Both use PyMySQL's own formatting (``Cursor.execute`` / ``Cursor.mogrify``, escaping included), so unit
tests see exactly what would reach a server, ``%`` handling and all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pymysql
import pymysql.cursors

from rotation_core.engines.mysql.grants import Statement

#: Given the text PyMySQL would send, the rows the fake server answers (``[]`` for statements).
Answer = Callable[[str], Sequence[tuple[Any, ...]]]


class RecordingCursor(pymysql.cursors.Cursor):
    """A PyMySQL cursor whose queries go to :class:`OfflineConnection` instead of a socket."""

    def _query(self, q: str) -> int:
        conn = self.connection
        assert isinstance(conn, OfflineConnection)
        conn.sent.append(q)
        self._clear_result()
        self._rows = tuple(conn.answer(q))
        self.rowcount = len(self._rows)
        self.description = (("column", None, None, None, None, None, None),) if self._rows else None
        return self.rowcount


class OfflineConnection(pymysql.connections.Connection):  # type: ignore[type-arg]
    """Never connects; ``sent`` lists the statements as PyMySQL formatted them."""

    def __init__(self, answer: Answer | None = None) -> None:
        super().__init__(defer_connect=True, charset="utf8mb4", cursorclass=RecordingCursor)
        # The handshake would set this; 0 means the server's default, backslash escapes on.
        self.server_status = 0
        self.answer: Answer = answer or (lambda _sql: [])
        self.sent: list[str] = []

    def close(self) -> None:
        """Nothing to close."""


def sent_text(statement: Statement) -> str:
    """What PyMySQL sends for a statement and its values."""
    sql, values = statement
    text: str = OfflineConnection().cursor().mogrify(sql, values)
    return text
