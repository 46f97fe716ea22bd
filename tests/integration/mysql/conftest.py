"""MySQL-family fixtures: a real MariaDB or Oracle MySQL server with TLS and the general query log, and accounts.

Every test here runs once per selected MySQL-family kind (mariadb-10.11, mariadb-11.8, mysql-9.7; see
``server_matrix.py``); ``mysql_kind`` is that kind and ``mysql_server`` its server, started once per
session on 127.0.0.1 and a free port. The general log records every statement the server receives;
each test's leak guard reads it, because the README claims that no plaintext password reaches it
(MariaDB receives mysql_native_password hashes, MySQL writes ``<secret>`` in their place).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trustme

from helpers import LeakGuard
from integration.conftest import tls_material, unique
from rotation_local import emulator
from rotation_local.invoke import load_function
from rotation_local.mariadb_server import MySQLFamilyServer
from rotation_local.server_kinds import MARIADB, ServerKind, ServerPool
from server_matrix import kind_of


@pytest.fixture(scope="session")
def mysql_kind(request: pytest.FixtureRequest) -> ServerKind:
    """The MySQL-family kind this test runs on (the parameter ``server_matrix`` gives it)."""
    return kind_of(request)


@pytest.fixture(scope="session")
def mysql_server(mysql_kind: ServerKind, server_pool: ServerPool) -> MySQLFamilyServer:
    """MariaDB or MySQL of this test's kind, TLS on, general log on."""
    server: MySQLFamilyServer = server_pool.get(mysql_kind)
    return server


@pytest.fixture(scope="session")
def mariadb_server(mysql_server: MySQLFamilyServer) -> MySQLFamilyServer:
    """The former name of ``mysql_server`` (it is a MariaDB only on the MariaDB kinds)."""
    return mysql_server


def secret_engine(server: MySQLFamilyServer) -> str:
    """The secret's ``engine`` a user of this server would write."""
    return "mariadb" if server.flavour == MARIADB else "mysql"


def start_extra_server(kind: ServerKind, tls_ca: trustme.CA | None, *names: str) -> MySQLFamilyServer:
    """Another server of the kind, for a module (with a certificate for ``names`` from ``tls_ca``, or no TLS)."""
    material = tls_material(tls_ca, *names) if tls_ca is not None else {}
    server: MySQLFamilyServer = kind.start(**material)
    return server


@pytest.fixture(autouse=True)
def _watch_general_log(mysql_server: MySQLFamilyServer, leak_guard: LeakGuard) -> None:
    leak_guard.watch_file(mysql_server.log_path)
    leak_guard.add(mysql_server.admin_password)


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
def mysql_account(
    mysql_server: MySQLFamilyServer, sm_client: Any, leak_guard: LeakGuard
) -> Callable[..., MySQLAccount]:
    """Create ``<prefix>_<random>@host`` with a database it may use, and its secret (rotation enabled)."""

    def make(
        *, host: str = "%", with_master: bool = False, require: str = "", prefix: str = "app", **overrides: Any
    ) -> MySQLAccount:
        username = short_name(prefix)
        password = secrets.token_urlsafe(24)
        leak_guard.add(password)
        mysql_server.create_login(username, host, password, require=require)
        dbname = unique("db")
        mysql_server.execute(f"CREATE DATABASE `{dbname}`")
        mysql_server.execute(f"GRANT ALL PRIVILEGES ON `{dbname}`.* TO %s@%s", (username, host))
        value: dict[str, Any] = {
            "engine": secret_engine(mysql_server),
            "host": "127.0.0.1",
            "port": mysql_server.port,
            "username": username,
            "password": password,
            "dbname": dbname,
            "owner_team": "payments",
        }
        master_arn = master_user = None
        if with_master:
            master_user, master_password = short_name("master"), secrets.token_urlsafe(24)
            leak_guard.add(master_password)
            mysql_server.create_login(master_user, "127.0.0.1", master_password)
            mysql_server.execute("GRANT ALL PRIVILEGES ON *.* TO %s@'127.0.0.1' WITH GRANT OPTION", (master_user,))
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
