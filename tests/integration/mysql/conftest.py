"""MySQL-flavour fixtures: a real MariaDB 10.11 with TLS and the general query log, and accounts on it.

The server is started once per session on 127.0.0.1 and a free port. The general log records every
statement the server receives; each test's leak guard reads it, because the README claims that on
MariaDB no plaintext password reaches it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trustme

from helpers import LeakGuard
from integration.conftest import unique
from rotation_local import emulator
from rotation_local.invoke import load_function
from rotation_local.mariadb_server import MariaDBServer


@pytest.fixture(scope="session")
def mariadb_server(tls_ca: trustme.CA) -> Iterator[MariaDBServer]:
    cert = tls_ca.issue_cert("127.0.0.1", "localhost")
    server = MariaDBServer.start(
        tls_cert_pem=b"".join(blob.bytes() for blob in cert.cert_chain_pems),
        tls_key_pem=cert.private_key_pem.bytes(),
    )
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _watch_general_log(mariadb_server: MariaDBServer, leak_guard: LeakGuard) -> None:
    leak_guard.watch_file(mariadb_server.log_path)
    leak_guard.add(mariadb_server.admin_password)


@dataclass
class MySQLAccount:
    """A database account the test created, with its secret in the emulator."""

    username: str
    host: str
    arn: str
    dbname: str
    master_arn: str | None = None
    master_user: str | None = None


def short_name(prefix: str) -> str:
    """A user name that leaves room for ``_clone`` within 32 characters."""
    return unique(prefix)[:20]


@pytest.fixture
def mysql_account(mariadb_server: MariaDBServer, sm_client: Any, leak_guard: LeakGuard) -> Callable[..., MySQLAccount]:
    """Create ``<prefix>_<random>@host`` with a database it may use, and its secret (rotation enabled)."""

    def make(
        *, host: str = "%", with_master: bool = False, require: str = "", prefix: str = "app", **overrides: Any
    ) -> MySQLAccount:
        username = short_name(prefix)
        password = secrets.token_urlsafe(24)
        leak_guard.add(password)
        mariadb_server.create_login(username, host, password, require=require)
        dbname = unique("db")
        mariadb_server.execute(f"CREATE DATABASE `{dbname}`")
        mariadb_server.execute(f"GRANT ALL PRIVILEGES ON `{dbname}`.* TO %s@%s", (username, host))
        value: dict[str, Any] = {
            "engine": "mariadb",
            "host": "127.0.0.1",
            "port": mariadb_server.port,
            "username": username,
            "password": password,
            "dbname": dbname,
            "owner_team": "payments",
        }
        master_arn = master_user = None
        if with_master:
            master_user, master_password = short_name("master"), secrets.token_urlsafe(24)
            leak_guard.add(master_password)
            mariadb_server.create_login(master_user, "127.0.0.1", master_password)
            mariadb_server.execute("GRANT ALL PRIVILEGES ON *.* TO %s@'127.0.0.1' WITH GRANT OPTION", (master_user,))
            master_value = {**value, "username": master_user, "password": master_password}
            del master_value["dbname"]
            master_arn = sm_client.create_secret(Name=unique("master"), SecretString=json.dumps(master_value))["ARN"]
            value["masterarn"] = master_arn
        value.update(overrides)
        arn = sm_client.create_secret(Name=unique("secret"), SecretString=json.dumps(value))["ARN"]
        emulator.enable_rotation(arn)
        return MySQLAccount(
            username=username, host=host, arn=arn, dbname=dbname, master_arn=master_arn, master_user=master_user
        )

    return make


@pytest.fixture
def mysql_function(sm_env: dict[str, str], ca_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """A fresh copy of functions/mysql/app.py configured through its environment, as in Lambda."""

    def load(**env: str) -> ModuleType:
        monkeypatch.setenv("DB_CA_BUNDLE", str(ca_bundle))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return load_function("mysql")

    return load
