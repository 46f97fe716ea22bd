"""Integration fixtures shared by every engine: the server pool, the emulator over HTTP, the build.

Every test that uses an ``<engine>_kind`` (behind its engine folder's server fixture) or ``db_kind``
runs once per selected server kind (``server_matrix.py``). One server per kind is started, on first
use, for the whole session (127.0.0.1, free ports, temporary folders) and stopped at its end, as is the
emulator. Missing server binaries fail the run: integration tests never skip silently (only kinds that
need root, without root). Engine-specific fixtures live in the engine's folder (``postgres/``, ``mysql/``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
import trustme

from helpers import LeakGuard
from integration.built import Build, prepare_build
from integration.support import DatabaseSetup, load_configured_function
from rotation_core.registry import engine as engine_spec
from rotation_local import emulator
from rotation_local.server_kinds import ServerKind, ServerPool, start_server
from rotation_local.targets import DatabaseTarget, database_target, database_targets
from rotation_local.tls import material_from
from server_matrix import RECORDER, kind_of, parametrize_server_kinds

ENGINES = tuple(database_targets())

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


@pytest.fixture(scope="session")
def server_pool(tls_ca: trustme.CA) -> Iterator[ServerPool]:
    """The session's database servers, one per kind, each started when a test first needs it.

    TLS on (a certificate for 127.0.0.1 and localhost) and every statement logged (the PostgreSQL
    server log, the MySQL-family general log): the leak guard reads those logs.
    """
    material = material_from(tls_ca, "127.0.0.1", "localhost")

    def start(kind: ServerKind) -> Any:
        server = start_server(kind, tls=material, log_statements=True)
        RECORDER.versions[kind.name] = server.version
        return server

    pool = ServerPool(start)
    yield pool
    pool.stop_all()


@pytest.fixture(scope="session")
def db_kind(request: pytest.FixtureRequest) -> ServerKind:
    """Any engine's server kind (``server_matrix`` runs the test once per selected kind of every engine)."""
    return kind_of(request)


def _engine_fixtures(engine: str) -> tuple[Any, Any, Any]:
    """``<engine>_kind``, ``<engine>_server`` and ``<engine>_function`` for one engine.

    Its tests run once per kind of that engine. The server fixture names its kind fixture in its
    signature, so that pytest sees it among the test's fixtures and ``server_matrix`` parametrizes it.
    """
    kind_fixture = f"{engine}_kind"

    def kind(request: pytest.FixtureRequest) -> ServerKind:
        return kind_of(request)

    def server(server_pool: ServerPool, **kind_value: ServerKind) -> Any:
        return server_pool.get(kind_value[kind_fixture])

    server.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("server_pool", inspect.Parameter.POSITIONAL_OR_KEYWORD),
         inspect.Parameter(kind_fixture, inspect.Parameter.KEYWORD_ONLY)]
    )  # fmt: skip

    def function(sm_env: dict[str, str], ca_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., ModuleType]:
        first = engine_spec(engine).strategies[0].value  # what the function runs without ROTATION_STRATEGY
        return functools.partial(load_configured_function, engine, monkeypatch, ca_bundle, ROTATION_STRATEGY=first)

    kind.__doc__ = f"The {engine} server kind this test runs on (the parameter ``server_matrix`` gives it)."
    server.__doc__ = f"The {engine} server of this test's kind: TLS on, every statement logged."
    function.__doc__ = f"A fresh copy of functions/{engine}/app.py configured through its environment, as in Lambda."
    return (
        pytest.fixture(scope="session", name=kind_fixture)(kind),
        pytest.fixture(scope="session", name=f"{engine}_server")(server),
        pytest.fixture(name=f"{engine}_function")(function),
    )


for _engine in ENGINES:  # pytest collects fixtures from this module's globals
    _fixtures = _engine_fixtures(_engine)
    globals()[f"_{_engine}_kind"], globals()[f"_{_engine}_server"], globals()[f"_{_engine}_function"] = _fixtures


@pytest.fixture(scope="session")
def db_target(db_kind: ServerKind) -> DatabaseTarget:
    return database_target(db_kind.family)


@pytest.fixture(scope="session")
def db_server(db_kind: ServerKind, server_pool: ServerPool) -> Any:
    return server_pool.get(db_kind)


@pytest.fixture
def db(
    db_target: DatabaseTarget, db_server: Any, sm_client: Any, leak_guard: LeakGuard, ca_bundle: Path
) -> DatabaseSetup:
    """This kind's target and server with the emulator's client, the leak guard and the CA bundle."""
    return DatabaseSetup(db_target, db_server, sm_client, leak_guard, ca_bundle)


@pytest.fixture
def db_function(
    db_kind: ServerKind,
    db_target: DatabaseTarget,
    sm_env: dict[str, str],
    ca_bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., ModuleType]:
    """The function of this kind's engine, loaded fresh and configured through its environment; without
    ``ROTATION_STRATEGY`` it runs the first registry strategy the kind supports (single user where there is one)."""
    default = db_target.strategies(db_kind)[0].value

    def load(**env: str) -> ModuleType:
        return load_configured_function(db_kind.family, monkeypatch, ca_bundle, **{"ROTATION_STRATEGY": default, **env})

    return load


@pytest.fixture(autouse=True)
def _watch_database_logs(request: pytest.FixtureRequest, leak_guard: LeakGuard) -> None:
    """Every database server a test uses: its statement log is searched, its admin password searched for."""
    for fixture, kind_fixture in [("db_server", "db_kind"), *((f"{e}_server", f"{e}_kind") for e in ENGINES)]:
        if fixture in request.fixturenames and kind_fixture in request.fixturenames:
            server = request.getfixturevalue(fixture)
            kind: ServerKind = request.getfixturevalue(kind_fixture)
            leak_guard.watch_file(database_target(kind.family).statement_log(server))
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
    """Environment of a handler talking to the emulator over HTTP, as a deployed function would (Secrets Manager, and
    every other AWS API a function calls: RDS, ElastiCache, MemoryDB)."""
    env = {
        "AWS_ENDPOINT_URL_SECRETSMANAGER": sm_server.endpoint_url,
        "AWS_ENDPOINT_URL": sm_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": emulator.DEFAULT_REGION,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("SECRETS_MANAGER_ENDPOINT", "ROTATION_STRATEGY", "DB_CA_BUNDLE", "TEST_QUERY"):
        monkeypatch.delenv(name, raising=False)
    return env


@pytest.fixture
def sm_client(sm_env: dict[str, str], sm_server: emulator.EmulatorServer) -> Any:
    return boto3.client("secretsmanager", endpoint_url=sm_server.endpoint_url, region_name=emulator.DEFAULT_REGION)
