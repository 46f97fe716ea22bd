"""A throwaway MariaDB server on 127.0.0.1, for the local run and the integration tests.

It uses the machine's MariaDB package (apt ``mariadb-server``): ``mariadb-install-db`` creates a data
folder in a temporary directory, ``mariadbd`` listens on a free loopback port and a private Unix
socket, and the general query log (every statement the server receives) goes to a file, so tests can
check what reached it. :meth:`MariaDBServer.stop` shuts the server down and removes the folder.
As root, the server runs with ``--user=root`` (it refuses root otherwise).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rotation_local.postgres_server import ServerError, free_port

ADMIN_USER = "rotation_admin"
_START_TIMEOUT = 60.0


def find_mariadb_binaries() -> tuple[Path, Path]:
    """``mariadbd`` and ``mariadb-install-db``; ``MARIADB_BINDIR`` overrides the search."""
    folders = [os.environ["MARIADB_BINDIR"]] if os.environ.get("MARIADB_BINDIR") else []
    folders += ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/usr/local/mysql/bin"]
    server = install = None
    for name, folder in ((name, folder) for name in ("mariadbd", "mysqld") for folder in folders):
        if server is None and (Path(folder) / name).is_file():
            server = Path(folder) / name
    for name, folder in ((name, folder) for name in ("mariadb-install-db", "mysql_install_db") for folder in folders):
        if install is None and (Path(folder) / name).is_file():
            install = Path(folder) / name
    if server is None or install is None:
        raise ServerError(
            "no MariaDB server binaries found: install them (Debian/Ubuntu: sudo apt-get install mariadb-server) "
            "or set MARIADB_BINDIR to the folder holding mariadbd and mariadb-install-db"
        )
    return server, install


def native_password_hash(password: str) -> str:
    """``*`` + upper-case hex SHA1(SHA1(password)): what mysql_native_password stores."""
    return "*" + hashlib.sha1(hashlib.sha1(password.encode("utf-8")).digest()).hexdigest().upper()  # noqa: S324


@dataclass
class MariaDBServer:
    workdir: Path
    port: int
    admin_password: str = field(repr=False)
    tls: bool
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    version: str = ""

    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    @property
    def socket_path(self) -> Path:
        return self.workdir / "mariadb.sock"

    @property
    def log_path(self) -> Path:
        """The general query log: every statement the server received, as it received it."""
        return self.workdir / "general.log"

    @property
    def error_log_path(self) -> Path:
        return self.workdir / "error.log"

    @classmethod
    def start(
        cls,
        *,
        tls_cert_pem: bytes | None = None,
        tls_key_pem: bytes | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> MariaDBServer:
        """Create and start a server; with a certificate and key, TLS is on (and optional for clients).

        ``settings`` are extra ``mariadbd`` options (``{"require_secure_transport": "ON"}``).
        """
        mariadbd, install_db = find_mariadb_binaries()
        workdir = Path(tempfile.mkdtemp(prefix="rotation-mariadb-"))
        server = cls(
            workdir=workdir, port=free_port(), admin_password=secrets.token_urlsafe(24), tls=tls_cert_pem is not None
        )
        try:
            server._install(install_db)
            server._launch(mariadbd, tls_cert_pem, tls_key_pem, dict(settings or {}))
            server._create_admin()
            server.version = str(server.query_one("SELECT VERSION()"))
        except BaseException:
            server.stop()
            raise
        return server

    def _install(self, install_db: Path) -> None:
        result = subprocess.run(
            [
                str(install_db),
                f"--datadir={self.datadir}",
                "--user=root" if os.geteuid() == 0 else f"--user={os.environ.get('USER', 'nobody')}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.workdir,
        )
        if result.returncode != 0:
            raise ServerError(
                f"mariadb-install-db failed ({result.returncode}): {(result.stderr or result.stdout).strip()[-2000:]}"
            )

    def _launch(self, mariadbd: Path, cert: bytes | None, key: bytes | None, settings: dict[str, str]) -> None:
        options = {
            "datadir": str(self.datadir),
            "socket": str(self.socket_path),
            "port": str(self.port),
            "bind-address": "127.0.0.1",
            "pid-file": str(self.workdir / "mariadbd.pid"),
            "log-error": str(self.error_log_path),
            "general-log": "ON",
            "general-log-file": str(self.log_path),
            "log-output": "FILE",
            "innodb-buffer-pool-size": "32M",
            "innodb-log-file-size": "8M",
            "innodb-flush-log-at-trx-commit": "0",
            "sync-binlog": "0",
            "performance-schema": "OFF",
        }
        if cert is not None and key is not None:
            for name, data in (("server-cert.pem", cert), ("server-key.pem", key)):
                path = self.workdir / name
                path.write_bytes(data)
                path.chmod(0o600)
            options.update(
                {"ssl-cert": str(self.workdir / "server-cert.pem"), "ssl-key": str(self.workdir / "server-key.pem")}
            )
        options.update(settings)
        command = [str(mariadbd), "--no-defaults", *(f"--{name}={value}" for name, value in options.items())]
        if os.geteuid() == 0:
            command.insert(2, "--user=root")
        with open(self.workdir / "stdout.log", "wb") as output:
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"mariadbd exited with code {self.process.returncode}: {self._error_log_tail()}")
            with contextlib.suppress(Exception):
                self._socket_connect("root", "").close()
                return
            time.sleep(0.1)
        raise ServerError(f"mariadbd did not accept connections within {_START_TIMEOUT:.0f}s: {self._error_log_tail()}")

    def _create_admin(self) -> None:
        conn = self._socket_connect("root", "")
        try:
            with conn.cursor() as cursor:
                for host in ("localhost", "127.0.0.1"):
                    cursor.execute(
                        "CREATE USER %s@%s IDENTIFIED BY PASSWORD %s",
                        (ADMIN_USER, host, native_password_hash(self.admin_password)),
                    )
                    cursor.execute("GRANT ALL PRIVILEGES ON *.* TO %s@%s WITH GRANT OPTION", (ADMIN_USER, host))
        finally:
            conn.close()

    def _socket_connect(self, user: str, password: str) -> Any:
        import pymysql

        return pymysql.connect(
            unix_socket=str(self.socket_path), user=user, password=password, autocommit=True, connect_timeout=5
        )

    def _error_log_tail(self) -> str:
        try:
            return self.error_log_path.read_text(encoding="utf-8", errors="replace")[-2000:].strip()
        except FileNotFoundError:
            return "(no error log)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def admin_connect(self, database: str | None = None) -> Any:
        """An all-privileges connection over the server's private Unix socket (autocommit on)."""
        import pymysql

        return pymysql.connect(
            unix_socket=str(self.socket_path),
            user=ADMIN_USER,
            password=self.admin_password,
            database=database,
            autocommit=True,
            connect_timeout=5,
        )

    def execute(self, statement: str, params: Any = None) -> None:
        conn = self.admin_connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement, params)
        finally:
            conn.close()

    def query(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        conn = self.admin_connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement, params)
                return list(cursor.fetchall())
        finally:
            conn.close()

    def query_one(self, statement: str, params: Any = None) -> Any:
        rows = self.query(statement, params)
        return rows[0][0] if rows else None

    def create_login(self, username: str, host: str, password: str, *, require: str = "") -> None:
        """Create ``username@host`` with a mysql_native_password password.

        The password is sent as its SHA1(SHA1()) hash, so its plaintext never reaches the general log.
        ``require`` is an optional TLS clause such as ``"SSL"`` or ``"X509"`` (trusted test input).
        """
        clause = f" REQUIRE {require}" if require else ""
        self.execute(
            "CREATE USER %s@%s IDENTIFIED BY PASSWORD %s" + clause, (username, host, native_password_hash(password))
        )

    def grants(self, username: str, host: str) -> list[str]:
        return [str(row[0]) for row in self.query("SHOW GRANTS FOR %s@%s", (username, host))]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
