"""examples/refresh_on_rotation.py: the cached value is used until max_age, an auth failure refreshes it."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from moto import mock_aws

from helpers import REPO_ROOT, LeakGuard


class AuthFailureError(Exception):
    pass


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "refresh_on_rotation", REPO_ROOT / "examples" / "refresh_on_rotation.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def _rotate(client: Any, name: str, password: str) -> None:
    client.put_secret_value(SecretId=name, SecretString=json.dumps({"username": "app", "password": password}))


def _app_secret(example: ModuleType, client: Any, **options: Any) -> Any:
    """The example's RotatingSecret over a new secret "app/db" whose password is "first-password"."""
    client.create_secret(Name="app/db", SecretString=json.dumps({"username": "app", "password": "first-password"}))
    return example.RotatingSecret("app/db", provider=SecretsProvider(boto3_client=client), **options)


def test_rotating_secret_within_max_age_returns_cached_value(
    example: ModuleType, client: Any, leak_guard: LeakGuard
) -> None:
    leak_guard.add("first-password", "second-password")
    secret = _app_secret(example, client, max_age=300)

    assert secret.get()["password"] == "first-password"
    _rotate(client, "app/db", "second-password")

    assert secret.get()["password"] == "first-password"
    assert secret.get(refresh=True)["password"] == "second-password"


def test_call_with_fresh_credentials_auth_failure_refetches_and_retries(
    example: ModuleType, client: Any, leak_guard: LeakGuard
) -> None:
    leak_guard.add("first-password", "second-password")
    secret = _app_secret(example, client, max_age=300)
    secret.get()
    _rotate(client, "app/db", "second-password")
    attempts: list[str] = []

    def login(credentials: dict[str, Any]) -> str:
        attempts.append(credentials["password"])
        if credentials["password"] != "second-password":
            raise AuthFailureError("password authentication failed")
        return "connected"

    result = example.call_with_fresh_credentials(
        secret, login, is_auth_failure=lambda e: isinstance(e, AuthFailureError)
    )

    assert result == "connected"
    assert attempts == ["first-password", "second-password"]


def test_call_with_fresh_credentials_other_error_raised_without_retry(example: ModuleType, client: Any) -> None:
    secret = _app_secret(example, client)
    calls: list[int] = []

    def broken(credentials: dict[str, Any]) -> None:
        calls.append(1)
        raise TimeoutError("database unreachable")

    with pytest.raises(TimeoutError):
        example.call_with_fresh_credentials(secret, broken, is_auth_failure=lambda e: isinstance(e, AuthFailureError))
    assert calls == [1]


def test_is_auth_failure_refused_login_of_either_driver_true_other_errors_false(example: ModuleType) -> None:
    import psycopg2
    import pymysql

    assert example.is_auth_failure(psycopg2.OperationalError('FATAL:  password authentication failed for user "app"'))
    assert example.is_auth_failure(pymysql.err.OperationalError(1045, "Access denied for user 'app'@'10.0.0.1'"))
    assert not example.is_auth_failure(psycopg2.OperationalError("could not connect to server: Connection refused"))
    assert not example.is_auth_failure(pymysql.err.OperationalError(2003, "Can't connect to MySQL server"))
    assert not example.is_auth_failure(TimeoutError("timed out"))


class FakeConnection:
    """A DB-API connection whose queries fail once ``broken`` is set (a dropped session)."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.broken = False
        self.closed = False

    def cursor(self) -> Any:
        connection = self

        class Cursor:
            def __enter__(self) -> Any:
                return self

            def __exit__(self, *_exc: object) -> None:
                return None

            def execute(self, sql: str) -> None:
                if connection.broken:
                    raise ConnectionResetError("server closed the connection")

            def fetchone(self) -> tuple[int]:
                return (1,)

        return Cursor()

    def close(self) -> None:
        self.closed = True


def test_database_pooled_connection_survives_rotation_broken_one_reopened_with_fresh_secret(
    example: ModuleType, client: Any, monkeypatch: pytest.MonkeyPatch, leak_guard: LeakGuard
) -> None:
    leak_guard.add("first-password", "second-password")
    secret = _app_secret(example, client, max_age=300)
    opened: list[FakeConnection] = []
    valid = {"first-password"}

    def connect(credentials: dict[str, Any], *, ca_bundle: str | None = None) -> FakeConnection:
        if credentials["password"] not in valid:
            raise AuthFailureError("password authentication failed")
        opened.append(FakeConnection(credentials["password"]))
        return opened[-1]

    monkeypatch.setattr(example, "connect", connect)
    monkeypatch.setattr(example, "is_auth_failure", lambda error: isinstance(error, AuthFailureError))
    database = example.Database(secret)
    assert database.query_pooled() == (1,)
    _rotate(client, "app/db", "second-password")
    valid.clear()
    valid.add("second-password")

    assert database.query_pooled() == (1,)  # the open session is not dropped by a password change
    opened[0].broken = True
    assert database.query_pooled() == (1,)  # reopened: refused with the cached password, refreshed, retried

    assert [c.password for c in opened] == ["first-password", "second-password"]
    assert opened[0].closed
    assert database.refreshes == 1
