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
