"""A throwaway Oracle MySQL server (8.0 and later) on 127.0.0.1, for the integration tests.

``mysqld --initialize-insecure`` creates the data folder (``root@localhost`` without a password,
reachable over the private Unix socket only), then ``mysqld`` serves it with the X protocol and the
binary log off, small buffers and the general query log in a file. Accounts use
``caching_sha2_password`` (MySQL 9 no longer has ``mysql_native_password``). Their passwords are sent
in ``IDENTIFIED BY``, which MySQL itself writes as ``<secret>`` to its general log; the tests' leak
guard reads that log, so a plaintext password in it fails the test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rotation_local.mariadb_server import MySQLFamilyServer, find_program
from rotation_local.postgres_server import ServerError

CACHING_SHA2 = "caching_sha2_password"


@dataclass
class MySQLServer(MySQLFamilyServer):
    flavour: ClassVar[str] = "mysql"
    program: ClassVar[str] = "mysqld"

    def _prepare(self) -> str:
        mysqld = find_program(("mysqld",), "MYSQL_BINDIR", self.root)
        if mysqld is None:
            where = f"in the root filesystem {self.root}" if self.root else "on this machine"
            raise ServerError(f"no MySQL server (mysqld) found {where}; set MYSQL_BINDIR to the folder holding it")
        inside = self.chroot.inside
        command = [
            mysqld,
            "--no-defaults",
            "--initialize-insecure",
            f"--datadir={inside(self.datadir)}",
            f"--log-error={inside(self.workdir / 'initialize.log')}",
            "--secure-file-priv=NULL",
            "--innodb-buffer-pool-size=32M",
        ]
        if self.run_as_root:
            command.insert(2, "--user=root")
        try:
            self._run(command, "mysqld --initialize-insecure")
        except ServerError as error:
            log = self.workdir / "initialize.log"
            tail = log.read_text(encoding="utf-8", errors="replace")[-2000:] if log.exists() else ""
            raise ServerError(f"{error}\n{tail}".strip()) from None
        return mysqld

    @property
    def _bootstrap_user(self) -> str:
        return "root"  # --initialize-insecure: root@localhost without a password

    def _flavour_options(self, tls: bool) -> dict[str, str | None]:
        options: dict[str, str | None] = {
            "mysqlx": "OFF",
            "skip-log-bin": None,
            "secure-file-priv": "NULL",
            "innodb-redo-log-capacity": "8M",
        }
        if not tls:
            # No encrypted connections at all (mysqld would otherwise use the certificates it made up).
            options["tls-version"] = ""
        return options

    def _create_user_statement(self, password: str) -> tuple[str, str]:
        return f"CREATE USER %s@%s IDENTIFIED WITH {CACHING_SHA2} BY %s", password
