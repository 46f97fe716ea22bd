"""Logins and facts for the PostgreSQL integration tests (shared by their modules)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg2

from rotation_local.postgres_server import PostgresServer


def connect(server: PostgresServer, ca_bundle: Path, secret: dict[str, Any], dbname: str | None = None) -> Any:
    return psycopg2.connect(
        host="127.0.0.1",
        port=server.port,
        user=secret["username"],
        password=secret["password"],
        dbname=dbname or secret["dbname"],
        sslmode="verify-full",
        sslrootcert=str(ca_bundle),
    )


def can_login(server: PostgresServer, ca_bundle: Path, secret: dict[str, Any]) -> bool:
    try:
        connect(server, ca_bundle, secret).close()
    except psycopg2.OperationalError:
        return False
    return True


def server_major(server: PostgresServer) -> int:
    """The major version the server reports (``SHOW server_version``: "15.18 (Debian ...)", "18beta1")."""
    match = re.match(r"\s*(\d+)", server.version)
    assert match is not None, f"unexpected server_version {server.version!r}"
    return int(match.group(1))
