"""What every throwaway database server of the local tooling shares: a loopback port, a private folder.

:class:`LocalServer` holds the fields and paths common to :class:`~rotation_local.postgres_server.
PostgresServer` and :class:`~rotation_local.mariadb_server.MySQLFamilyServer`: the temporary working
folder (inside a private root filesystem with ``root``), the free 127.0.0.1 port, the administrator's
password, whether TLS is on, the version the server reports, and the statement log's text.
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rotation_local.rootfs import Chroot


class ServerError(RuntimeError):
    """A throwaway server could not be found or started (the message says what to install or check)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(kw_only=True)
class LocalServer:
    """A server in ``workdir`` (a host path) listening on 127.0.0.1:``port``."""

    workdir: Path
    port: int
    admin_password: str = field(repr=False)
    tls: bool
    root: Path | None = None
    version: str = ""
    #: The server's process, where the tooling started it as a child (PostgreSQL's pg_ctl detaches it instead).
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    #: Names in ``workdir`` of the server's private Unix socket (short: a socket's path may hold 107 bytes, and a
    #: root filesystem's folder is long) and of its statement log.
    socket_name: ClassVar[str] = "s.sock"
    log_name: ClassVar[str] = "server.log"

    @property
    def chroot(self) -> Chroot:
        return Chroot(self.root)

    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    @property
    def socket_path(self) -> Path:
        return self.workdir / self.socket_name

    @property
    def log_path(self) -> Path:
        """The file where the server records every statement it receives."""
        return self.workdir / self.log_name

    def admin_connect(self, database: str | None = None) -> Any:
        """An all-privileges connection over the server's private Unix socket."""
        raise NotImplementedError

    def query(self, statement: Any, params: Any = None, *, database: str | None = None) -> list[tuple[Any, ...]]:
        conn = self.admin_connect(database)
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement, params)
                return list(cursor.fetchall())
        finally:
            conn.close()

    def query_one(self, statement: Any, params: Any = None, *, database: str | None = None) -> Any:
        rows = self.query(statement, params, database=database)
        return rows[0][0] if rows else None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
