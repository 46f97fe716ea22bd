"""MySQL and MariaDB, locally: the host's MariaDB 10.11, MariaDB 11.8 (trixie) and Oracle MySQL 9.7 (sid)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rotation_local.targets.base import MARIADB, ORACLE_MYSQL, ClientTls, DatabaseTarget, ServerKind
from rotation_local.tls import TlsMaterial

if TYPE_CHECKING:
    from rotation_core.settings import Strategy

ENGINE = "mysql"
# The privilege a user needs to keep its own password as the secondary one (a privilege name, not a password).
DUAL_PASSWORD_PRIVILEGE = "APPLICATION_PASSWORD_ADMIN"  # noqa: S105  # nosec B105
DUAL_PASSWORD = "dual_password"  # noqa: S105  # nosec B105 (the strategy's name; the layer is imported lazily)
_MARIADB_PACKAGES = ("mariadb-server-core", "mariadb-client-core")
# mariadb-install-db needs my_print_defaults, from the client package; the first package's version must match.
KINDS = (
    ServerKind("mariadb-10.11", ENGINE, MARIADB, "10.11"),
    ServerKind("mariadb-11.8", ENGINE, MARIADB, "11.8", suite="trixie", packages=_MARIADB_PACKAGES),
    ServerKind("mysql-9.7", ENGINE, ORACLE_MYSQL, "9.7", suite="sid", packages=("mysql-server-core",)),
)


class MySQLTarget(DatabaseTarget):
    def start(
        self, kind: ServerKind, *, root: Path | None = None, tls: TlsMaterial | None = None, log_statements: bool = True
    ) -> Any:
        """MySQL-family servers always keep their general log (``log_statements`` changes nothing)."""
        from rotation_local.mariadb_server import MariaDBServer
        from rotation_local.mysql_server import MySQLServer

        server_class = MariaDBServer if kind.flavour == MARIADB else MySQLServer
        return server_class.start(tls=tls, root=root)

    def strategies(self, kind: ServerKind) -> tuple[Strategy, ...]:
        """MariaDB keeps one password per account: no dual passwords (the function refuses the strategy there)."""
        strategies = super().strategies(kind)
        if kind.flavour == MARIADB:
            return tuple(strategy for strategy in strategies if strategy.value != DUAL_PASSWORD)
        return strategies

    def login_options(self, strategy: Strategy) -> dict[str, str]:
        """Dual passwords with the user's own login: MySQL requires APPLICATION_PASSWORD_ADMIN to keep its password."""
        return {"privileges": DUAL_PASSWORD_PRIVILEGE} if strategy.value == DUAL_PASSWORD else {}

    def create_login(self, server: Any, username: str, password: str, *, database: str | None = None,
                     **options: str) -> None:  # fmt: skip
        """``options``: ``host`` (the account's host part, default ``%``), ``require`` (a TLS clause) and
        ``privileges`` (global privileges granted ON *.*, trusted test input)."""
        host = options.get("host", "%")
        server.create_login(username, host, password, require=options.get("require", ""))
        if options.get("privileges"):
            server.execute(f"GRANT {options['privileges']} ON *.* TO %s@%s", (username, host))
        if database is not None:
            server.execute(f"CREATE DATABASE `{database}`")
            server.execute(f"GRANT ALL PRIVILEGES ON `{database}`.* TO %s@%s", (username, host))

    def create_master(self, server: Any, username: str, password: str) -> None:
        server.create_login(username, "127.0.0.1", password)
        server.execute("GRANT ALL PRIVILEGES ON *.* TO %s@'127.0.0.1' WITH GRANT OPTION", (username,))

    def allow_master(self, server: Any, master: str, username: str) -> None:
        """Nothing beyond :meth:`create_master` for plain logins (roles: the docs list ADMIN OPTION)."""

    def secret(self, server: Any, username: str, password: str, **extra: Any) -> dict[str, Any]:
        engine = "mariadb" if server.flavour == MARIADB else "mysql"
        return {"engine": engine, "host": "127.0.0.1", "port": server.port, "username": username,
                "password": password, **extra}  # fmt: skip

    def connect(self, server: Any, secret: Mapping[str, Any], tls: ClientTls, database: str | None = None) -> Any:
        import ssl

        import pymysql

        context = None
        if tls.ca_bundle is not None:
            context = ssl.create_default_context(cafile=str(tls.ca_bundle))
            context.check_hostname = tls.check_host_name
        return pymysql.connect(
            host="127.0.0.1", port=server.port, user=secret["username"], password=secret["password"],
            database=database or secret.get("dbname"), ssl=context, connect_timeout=5,
        )  # fmt: skip

    def login_error(self) -> type[Exception]:
        import pymysql

        error: type[Exception] = pymysql.err.OperationalError
        return error


TARGET = MySQLTarget(ENGINE, KINDS, "pymysql")
