"""Throwaway MySQL-family servers on 127.0.0.1, for the local run and the integration tests: MariaDB here.

:class:`MySQLFamilyServer` holds what MariaDB and Oracle MySQL (:mod:`rotation_local.mysql_server`)
share: a data folder in a temporary directory (inside a private root filesystem with ``root``, see
:mod:`rotation_local.rootfs`), a server process listening on a free loopback port and a private Unix
socket, and the general query log (every statement the server receives) in a file, so tests can check
what reached it. :meth:`MySQLFamilyServer.stop` stops the process by its PID and removes the folder.
As root, the server runs with ``--user=root`` (it refuses root otherwise).

:class:`MariaDBServer` uses the machine's MariaDB package (apt ``mariadb-server``) or a root's:
``mariadb-install-db`` creates the data folder, ``mariadbd`` serves it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import secrets
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

from rotation_local.local_server import LocalServer, ServerError, free_port
from rotation_local.rootfs import Chroot
from rotation_local.tls import TlsMaterial

ADMIN_USER = "rotation_admin"
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 30.0
_FOLDERS = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/usr/local/mysql/bin")


def find_program(names: tuple[str, ...], env_var: str, root: Path | None = None) -> str | None:
    """The first of ``names`` in the usual folders (``$env_var`` first); a path inside ``root``, if any."""
    folders = list(_FOLDERS)
    if root is None and os.environ.get(env_var):
        folders.insert(0, os.environ[env_var])
    chroot = Chroot(root)
    for name in names:
        for folder in folders:
            if chroot.exists(f"{folder}/{name}"):
                return f"{folder}/{name}"
    return None


def find_mariadb_binaries(root: Path | None = None) -> tuple[str, str]:
    """``mariadbd`` and ``mariadb-install-db``; ``MARIADB_BINDIR`` overrides the search on the host."""
    server = find_program(("mariadbd", "mysqld"), "MARIADB_BINDIR", root)
    install = find_program(("mariadb-install-db", "mysql_install_db"), "MARIADB_BINDIR", root)
    if server is None or install is None:
        where = f"in the root filesystem {root}" if root else "on this machine"
        raise ServerError(
            f"no MariaDB server binaries found {where}: install them (Debian/Ubuntu: sudo apt-get install "
            "mariadb-server) or set MARIADB_BINDIR to the folder holding mariadbd and mariadb-install-db"
        )
    return server, install


def native_password_hash(password: str) -> str:
    """``*`` + upper-case hex SHA1(SHA1(password)): what mysql_native_password stores."""
    return "*" + hashlib.sha1(hashlib.sha1(password.encode("utf-8")).digest()).hexdigest().upper()  # noqa: S324


@dataclass(kw_only=True)
class MySQLFamilyServer(LocalServer):
    """A running MariaDB or MySQL server. ``workdir`` and the path properties are host paths."""

    flavour: ClassVar[str] = ""  # "mariadb" or "mysql"
    program: ClassVar[str] = ""  # the server program's name, for messages
    log_name: ClassVar[str] = "general.log"  # the general query log: every statement, as the server logged it

    @property
    def error_log_path(self) -> Path:
        return self.workdir / "error.log"

    @property
    def run_as_root(self) -> bool:
        return os.geteuid() == 0

    @property
    def os_user(self) -> str:
        """The OS user running the server; MariaDB's install lets it log in over the socket (unix_socket)."""
        return pwd.getpwuid(os.geteuid()).pw_name

    @classmethod
    def start(
        cls,
        *,
        tls: TlsMaterial | None = None,
        settings: Mapping[str, str] | None = None,
        root: Path | None = None,
    ) -> Self:
        """Create and start a server; with ``tls`` (a certificate and key), TLS is on (and optional for clients).

        Without them TLS is off (servers that would make up a certificate of their own are told not
        to). ``settings`` are extra server options (``{"require_secure_transport": "ON"}``). With
        ``root`` the server's binaries run from that root filesystem.
        """
        chroot = Chroot(root)
        server = cls(
            workdir=chroot.make_tempdir(f"rotation-{cls.flavour}-"),
            port=free_port(),
            admin_password=secrets.token_urlsafe(24),
            tls=tls is not None,
            root=root,
        )
        try:
            server_program = server._prepare()
            server._launch(server_program, tls, dict(settings or {}))
            server._create_admin()
            server.version = str(server.query_one("SELECT VERSION()"))
        except BaseException:
            server.stop()
            raise
        return server

    # -- what each flavour does its own way ---------------------------------------------------------

    def _prepare(self) -> str:
        """Create the data folder; returns the server program (a path as the server sees it)."""
        raise NotImplementedError

    @property
    def _bootstrap_user(self) -> str:
        """The account that logs in over the socket without a password right after ``_prepare``."""
        raise NotImplementedError

    def _flavour_options(self, tls: bool) -> dict[str, str | None]:
        """Server options of this flavour (``None``: an option without a value)."""
        raise NotImplementedError

    def _create_user_statement(self, password: str) -> tuple[str, str]:
        """``CREATE USER %s@%s ...`` with the password's placeholder, and the value to bind to it."""
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------------

    def _run(self, argv: list[str], what: str) -> None:
        result = subprocess.run(
            self.chroot.command(argv), capture_output=True, text=True, check=False, cwd=self.workdir
        )
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip()[-2000:]
            raise ServerError(f"{what} failed ({result.returncode}): {output}")

    def _launch(self, program: str, tls: TlsMaterial | None, settings: dict[str, str]) -> None:
        inside = self.chroot.inside
        options: dict[str, str | None] = {
            "datadir": inside(self.datadir),
            "socket": inside(self.socket_path),
            "port": str(self.port),
            "bind-address": "127.0.0.1",
            "pid-file": inside(self.workdir / f"{self.flavour}.pid"),
            "log-error": inside(self.error_log_path),
            "general-log": "ON",
            "general-log-file": inside(self.log_path),
            "log-output": "FILE",
            "innodb-buffer-pool-size": "32M",
            "innodb-flush-log-at-trx-commit": "0",
            "sync-binlog": "0",
            "performance-schema": "OFF",
        }
        options.update(self._flavour_options(tls is not None))
        if tls is not None:
            for name, data in (("server-cert.pem", tls.cert_pem), ("server-key.pem", tls.key_pem)):
                path = self.workdir / name
                path.write_bytes(data)
                path.chmod(0o600)
            options["ssl-cert"] = inside(self.workdir / "server-cert.pem")
            options["ssl-key"] = inside(self.workdir / "server-key.pem")
        options.update(settings)
        command = [
            program,
            "--no-defaults",
            *(f"--{name}" if value is None else f"--{name}={value}" for name, value in options.items()),
        ]
        if self.run_as_root:
            command.insert(2, "--user=root")
        with open(self.workdir / "stdout.log", "wb") as output:
            # chroot execs the server: the child's PID is the server's.
            self.process = subprocess.Popen(
                self.chroot.command(command), stdout=output, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise ServerError(f"{self.program} exited with code {code}: {self._error_log_tail()}")
            with contextlib.suppress(Exception):
                self._socket_connect(self._bootstrap_user, "").close()
                return
            time.sleep(0.1)
        raise ServerError(
            f"{self.program} did not accept connections within {_START_TIMEOUT:.0f}s: {self._error_log_tail()}"
        )

    def _create_admin(self) -> None:
        statement, value = self._create_user_statement(self.admin_password)
        conn = self._socket_connect(self._bootstrap_user, "")
        try:
            with conn.cursor() as cursor:
                for host in ("localhost", "127.0.0.1"):
                    cursor.execute(statement, (ADMIN_USER, host, value))
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
        """Stop the server by its PID (SIGTERM, SIGKILL after 30 s) and remove the folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=_STOP_TIMEOUT)
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

    def create_login(self, username: str, host: str, password: str, *, require: str = "") -> None:
        """Create ``username@host`` with the flavour's password plugin, keeping plaintext out of the general log.

        ``require`` is an optional TLS clause such as ``"SSL"`` or ``"X509"`` (trusted test input).
        """
        statement, value = self._create_user_statement(password)
        clause = f" REQUIRE {require}" if require else ""
        self.execute(statement + clause, (username, host, value))

    def grants(self, username: str, host: str) -> list[str]:
        return [str(row[0]) for row in self.query("SHOW GRANTS FOR %s@%s", (username, host))]


@dataclass
class MariaDBServer(MySQLFamilyServer):
    """MariaDB: accounts use mysql_native_password, whose hash is sent instead of the password."""

    flavour: ClassVar[str] = "mariadb"
    program: ClassVar[str] = "mariadbd"

    def _prepare(self) -> str:
        mariadbd, install_db = find_mariadb_binaries(self.root)
        self._run(
            [
                install_db,
                f"--datadir={self.chroot.inside(self.datadir)}",
                f"--user={self.os_user}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            "mariadb-install-db",
        )
        return mariadbd

    @property
    def _bootstrap_user(self) -> str:
        return "root" if self.run_as_root else self.os_user

    def _flavour_options(self, tls: bool) -> dict[str, str | None]:
        options: dict[str, str | None] = {"innodb-log-file-size": "8M"}
        if not tls:
            options["ssl"] = "OFF"  # MariaDB 11.4+ would otherwise make up a certificate of its own
        return options

    def _create_user_statement(self, password: str) -> tuple[str, str]:
        """The SHA1(SHA1()) hash instead of the password: its plaintext never reaches the general log."""
        return "CREATE USER %s@%s IDENTIFIED BY PASSWORD %s", native_password_hash(password)
