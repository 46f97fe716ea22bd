"""Integration fixtures: real database servers with TLS and statement logging, and moto's HTTP server.

Every test that uses ``pg_server`` runs once per selected PostgreSQL kind (``server_matrix.py``);
``pg_kind`` is that kind. One server per kind is started, on first use, for the whole session
(127.0.0.1, free ports, temporary folders) and stopped at its end, as is the emulator. Missing server
binaries fail the run: integration tests never skip silently (only kinds that need root, without root).
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
import trustme

from helpers import LeakGuard
from integration.built import Build, prepare_build
from rotation_local import emulator, service
from rotation_local.invoke import load_function
from rotation_local.postgres_server import PostgresServer
from rotation_local.server_kinds import POSTGRES, ServerKind, ServerPool
from server_matrix import RECORDER, kind_of, parametrize_server_kinds

pytestmark = pytest.mark.integration


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_server_kinds(metafunc)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_bundle(tls_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tls") / "test-ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return path


def tls_material(tls_ca: trustme.CA, *names: str) -> dict[str, bytes]:
    """A server certificate (chain) and key from the session's CA, as ``ServerKind.start`` takes them."""
    cert = tls_ca.issue_cert(*names)
    return {
        "tls_cert_pem": b"".join(blob.bytes() for blob in cert.cert_chain_pems),
        "tls_key_pem": cert.private_key_pem.bytes(),
    }


@pytest.fixture(scope="session")
def server_pool(tls_ca: trustme.CA) -> Iterator[ServerPool]:
    """The session's database servers, one per kind, each started when a test first needs it.

    TLS on (a certificate for 127.0.0.1 and localhost); PostgreSQL logs every statement and MySQL-family
    servers have their general log on (the leak guard reads those logs).
    """
    material = tls_material(tls_ca, "127.0.0.1", "localhost")

    def start(kind: ServerKind) -> Any:
        settings = {"log_statement": "all"} if kind.family == POSTGRES else None
        server = kind.start(settings=settings, **material)
        RECORDER.versions[kind.name] = server.version
        return server

    pool = ServerPool(start)
    yield pool
    pool.stop_all()


@pytest.fixture(scope="session")
def pg_kind(request: pytest.FixtureRequest) -> ServerKind:
    """The PostgreSQL kind this test runs on (the parameter ``server_matrix`` gives it)."""
    return kind_of(request)


@pytest.fixture(scope="session")
def pg_server(pg_kind: ServerKind, server_pool: ServerPool) -> PostgresServer:
    """PostgreSQL of this test's kind, TLS on and every statement logged."""
    server: PostgresServer = server_pool.get(pg_kind)
    return server


@pytest.fixture(autouse=True)
def _watch_server_logs(request: pytest.FixtureRequest, leak_guard: LeakGuard) -> None:
    if "pg_server" in request.fixturenames:
        server: PostgresServer = request.getfixturevalue("pg_server")
        leak_guard.watch_file(server.log_path)
        leak_guard.add(server.admin_password)


@pytest.fixture(scope="session")
def build() -> Build:
    """The `sam build` output, rebuilt once if missing or stale (integration/built.py)."""
    return prepare_build()


@pytest.fixture(scope="session")
def sm_server() -> Iterator[emulator.EmulatorServer]:
    server = emulator.EmulatorServer().start()
    yield server
    server.stop()


@pytest.fixture
def sm_env(sm_server: emulator.EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment of a handler talking to the emulator over HTTP, as a deployed function would."""
    env = {
        "AWS_ENDPOINT_URL_SECRETSMANAGER": sm_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": emulator.DEFAULT_REGION,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("SECRETS_MANAGER_ENDPOINT", "ROTATION_STRATEGY", "DB_CA_BUNDLE", "TEST_QUERY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    return env


@pytest.fixture
def sm_client(sm_env: dict[str, str], sm_server: emulator.EmulatorServer) -> Any:
    return boto3.client("secretsmanager", endpoint_url=sm_server.endpoint_url, region_name=emulator.DEFAULT_REGION)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@dataclass
class PgAccount:
    """A database user the test created, with its secret in the emulator."""

    username: str
    arn: str
    dbname: str


@pytest.fixture
def pg_account(pg_server: PostgresServer, sm_client: Any, leak_guard: LeakGuard) -> Callable[..., PgAccount]:
    """Create a login role (named ``<prefix>_<random>``), a database it owns, and its secret (rotation enabled)."""

    def make(
        *,
        with_master: bool = False,
        master_options: str = "CREATEROLE",
        admin_option: bool = True,
        prefix: str = "app",
        **overrides: Any,
    ) -> PgAccount:
        """``admin_option``: on PostgreSQL 16+, give the master ADMIN OPTION on the user (it needs it)."""
        username = unique(prefix)
        password = secrets.token_urlsafe(24)
        leak_guard.add(password)
        pg_server.create_login(username, password)
        dbname = unique("db")
        pg_server.execute(f'CREATE DATABASE "{dbname}" OWNER "{username}"')
        value: dict[str, Any] = {
            "engine": "postgres",
            "host": "127.0.0.1",
            "port": pg_server.port,
            "username": username,
            "password": password,
            "dbname": dbname,
            "owner_team": "payments",
        }
        if with_master:
            master_user, master_password = unique("master"), secrets.token_urlsafe(24)
            leak_guard.add(master_password)
            pg_server.create_login(master_user, master_password, master_options)
            if admin_option:
                grant_admin_option(pg_server, username, master_user)
            master_value = {**value, "username": master_user, "password": master_password, "dbname": "postgres"}
            value["masterarn"] = sm_client.create_secret(Name=unique("master"), SecretString=json.dumps(master_value))[
                "ARN"
            ]
        value.update(overrides)
        arn = sm_client.create_secret(Name=unique("secret"), SecretString=json.dumps(value))["ARN"]
        emulator.enable_rotation(arn)
        return PgAccount(username=username, arn=arn, dbname=dbname)

    return make


def grant_admin_option(server: PostgresServer, role: str, master: str) -> None:
    """What the README asks for on PostgreSQL 16 and later: the master holds ADMIN OPTION on the role.

    PostgreSQL 15 and earlier do not need it (CREATEROLE is enough), so it is not given there.
    """
    if server.major >= 16:
        server.execute(f'GRANT "{role}" TO "{master}" WITH ADMIN OPTION')


@pytest.fixture
def postgres_function(sm_env: dict[str, str], ca_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """A fresh copy of functions/postgres/app.py configured through its environment, as in Lambda."""

    def load(**env: str) -> ModuleType:
        monkeypatch.setenv("DB_CA_BUNDLE", str(ca_bundle))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return load_function("postgres")

    return load


def rotate(app: ModuleType, arn: str, **kwargs: Any) -> str:
    return service.rotate(arn, lambda event: app.lambda_handler(dict(event), None), **kwargs)


def secret_at(sm_client: Any, arn: str, stage: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(sm_client.get_secret_value(SecretId=arn, VersionStage=stage)["SecretString"])
    return result


def stages(sm_client: Any, arn: str) -> dict[str, list[str]]:
    result: dict[str, list[str]] = sm_client.describe_secret(SecretId=arn)["VersionIdsToStages"]
    return result
