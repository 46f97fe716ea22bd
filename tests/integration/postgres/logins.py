"""Logins and facts for the PostgreSQL integration tests (shared by their modules)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rotation_local.postgres_server import PostgresServer
from rotation_local.targets import ClientTls
from rotation_local.targets.postgres import TARGET


def connect(server: PostgresServer, ca_bundle: Path, secret: dict[str, Any], dbname: str | None = None) -> Any:
    """A verify-full connection as the secret's user (to ``dbname``, default the secret's)."""
    return TARGET.connect(server, secret, ClientTls(ca_bundle), dbname)


def can_login(server: PostgresServer, ca_bundle: Path, secret: dict[str, Any]) -> bool:
    return TARGET.logs_in(server, secret, ca_bundle)


def server_major(server: PostgresServer) -> int:
    """The major version the server reports (``SHOW server_version``: "15.18 (Debian ...)", "18beta1")."""
    match = re.match(r"\s*(\d+)", server.version)
    assert match is not None, f"unexpected server_version {server.version!r}"
    return int(match.group(1))
