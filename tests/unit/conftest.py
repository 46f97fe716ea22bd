"""Unit fixtures: moto in-process, a fake database, no network at all."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from rotation_core.handler import RotationHandler, database_strategy
from rotation_core.rotator import Rotator
from rotation_core.secrets import SecretStore
from rotation_core.settings import Settings, Strategy
from rotation_local import emulator
from unit.fakes import CallCounter, FakeDatabase, FakeEngine, FakeUser, fake_handler


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests never open a network connection."""

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("unit tests must not use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_SECRETSMANAGER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", emulator.DEFAULT_REGION)


@pytest.fixture
def sm_client(aws_env: None, leak_guard: Any) -> Iterator[Any]:
    """A Secrets Manager client on moto in-process, with AWS's PutSecretValue semantics."""
    emulator.apply_fidelity_patches()
    with mock_aws():
        yield boto3.client("secretsmanager", region_name=emulator.DEFAULT_REGION)
        leak_guard.add_from_emulator()


@pytest.fixture
def call_counter(sm_client: Any) -> CallCounter:
    return CallCounter(sm_client)


@pytest.fixture
def database() -> FakeDatabase:
    return FakeDatabase(
        users={"app": FakeUser(password="Initial-Password-0001"), "admin": FakeUser(password="Admin-Password-0001")},
        admins={"admin"},
        may_retain_own={"app"},
    )


BASE_SECRET = {
    "engine": "postgres",
    "host": "db.internal.example",
    "port": 5432,
    "username": "app",
    "dbname": "orders",
    "team": "payments",
}


@pytest.fixture
def make_secret(sm_client: Any, database: FakeDatabase) -> Callable[..., str]:
    """Create a secret for the fake database's ``app`` user with rotation enabled; returns its ARN."""

    def make(*, rotation_enabled: bool = True, with_master: bool = False, **overrides: Any) -> str:
        value: dict[str, Any] = {**BASE_SECRET, "password": database.password_of("app")}
        if with_master:
            master = {**BASE_SECRET, "username": "admin", "password": database.password_of("admin")}
            value["masterarn"] = sm_client.create_secret(Name="master", SecretString=json.dumps(master))["ARN"]
        value.update(overrides)
        arn: str = sm_client.create_secret(Name="app-secret", SecretString=json.dumps(value))["ARN"]
        if rotation_enabled:
            emulator.enable_rotation(arn)
        return arn

    return make


@pytest.fixture
def make_rotator(sm_client: Any, database: FakeDatabase) -> Callable[..., Rotator]:
    def make(strategy: Strategy = Strategy.SINGLE_USER, **settings: Any) -> Rotator:
        config = Settings(strategy=strategy, **settings)
        engine = FakeEngine(config, database)
        return Rotator(SecretStore(sm_client), database_strategy(strategy)(engine, config))

    return make


@pytest.fixture
def pending(make_secret: Callable[..., str]) -> tuple[str, str]:
    """A rotation the service has started on ``make_secret()``'s secret: its ARN and the AWSPENDING placeholder's
    token."""
    arn = make_secret()
    return arn, emulator.stage_pending_placeholder(arn)


@pytest.fixture
def make_handler(sm_client: Any, database: FakeDatabase) -> Callable[..., RotationHandler]:
    """The fake engine's rotation function as Lambda calls it, with the keyword arguments as its environment."""

    def make(**environ: str) -> RotationHandler:
        return fake_handler(sm_client, database, **environ)

    return make
