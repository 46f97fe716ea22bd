"""PostgreSQL, locally: the host's PostgreSQL 15 and PostgreSQL 17/18 from Debian trixie/sid roots."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rotation_local.targets.base import POSTGRESQL, ClientTls, DatabaseTarget, ServerKind
from rotation_local.tls import TlsMaterial

ENGINE = "postgres"
KINDS = (  # the first package of a root's kind is the one whose version must match
    ServerKind("postgres-15", ENGINE, POSTGRESQL, "15"),
    ServerKind("postgres-17", ENGINE, POSTGRESQL, "17", suite="trixie", packages=("postgresql-17",)),
    ServerKind("postgres-18", ENGINE, POSTGRESQL, "18", suite="sid", packages=("postgresql-18",)),
)


class PostgresTarget(DatabaseTarget):
    def start(
        self, kind: ServerKind, *, root: Path | None = None, tls: TlsMaterial | None = None, log_statements: bool = True
    ) -> Any:
        from rotation_local.postgres_server import PostgresServer

        return PostgresServer.start(
            tls=tls,
            settings={"log_statement": "all"} if log_statements else None,
            bindir=Path(f"/usr/lib/postgresql/{kind.version}/bin") if root is not None else None,
            root=root,
        )

    def create_login(self, server: Any, username: str, password: str, *, database: str | None = None,
                     **options: str) -> None:  # fmt: skip
        """``options``: ``role_options`` (e.g. ``"CREATEROLE"``, trusted test input)."""
        from psycopg2 import sql

        server.create_login(username, password, *options.get("role_options", "").split())
        if database is not None:
            server.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(username))
            )

    def create_master(self, server: Any, username: str, password: str) -> None:
        server.create_login(username, password, "CREATEROLE")

    def allow_master(self, server: Any, master: str, username: str) -> None:
        """PostgreSQL 16 and later: CREATEROLE alone may no longer manage a role without ADMIN OPTION on it."""
        from psycopg2 import sql

        if server.major >= 16:
            server.execute(
                sql.SQL("GRANT {} TO {} WITH ADMIN OPTION").format(sql.Identifier(username), sql.Identifier(master))
            )

    def secret(self, server: Any, username: str, password: str, **extra: Any) -> dict[str, Any]:
        return {"engine": ENGINE, "host": "127.0.0.1", "port": server.port, "username": username,
                "password": password, "dbname": "postgres", **extra}  # fmt: skip

    def connect(self, server: Any, secret: Mapping[str, Any], tls: ClientTls, database: str | None = None) -> Any:
        import psycopg2

        if tls.ca_bundle is None:
            options: dict[str, Any] = {"sslmode": "disable"}
        else:
            mode = "verify-full" if tls.check_host_name else "verify-ca"
            options = {"sslmode": mode, "sslrootcert": str(tls.ca_bundle)}
        return psycopg2.connect(
            host="127.0.0.1", port=server.port, user=secret["username"], password=secret["password"],
            dbname=database or secret.get("dbname") or "postgres", connect_timeout=5, **options,
        )  # fmt: skip

    def login_error(self) -> type[Exception]:
        import psycopg2

        error: type[Exception] = psycopg2.OperationalError
        return error


TARGET = PostgresTarget(ENGINE, KINDS, "psycopg2")
