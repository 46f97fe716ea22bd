"""The Lambda entry point: nothing at import, settings from the environment, one log line per failure."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from helpers import FUNCTIONS_DIR, REPO_ROOT, log_records
from rotation_core.errors import InvalidEventError, RotationError
from rotation_core.handler import database_handler
from rotation_core.secrets import SecretStore
from rotation_local import emulator, service
from rotation_local.invoke import load_function
from unit.fakes import FAKE_ENGINE, FakeDatabase, FakeEngine, value_at


def test_import_function_module_loads_no_driver_no_boto3_and_reads_no_settings() -> None:
    probe = (
        "import os, sys\n"
        "class Watch(dict):\n"
        "    def __getitem__(self, k): raise SystemExit('environment read at import: ' + k)\n"
        "    def get(self, k, d=None): raise SystemExit('environment read at import: ' + k)\n"
        "os.environ = Watch(os.environ)\n"
        "import app\n"
        "heavy = ('psycopg2', 'pymysql', 'boto3', 'botocore', 'aws_lambda_powertools')\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "print(','.join(loaded) or 'none')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": f"{REPO_ROOT / 'layers' / 'rotation_core'}:{FUNCTIONS_DIR / 'postgres'}"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "none"


def test_handler_endpoint_variables_configure_the_client(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    for env, expected in [
        ({"AWS_ENDPOINT_URL_SECRETSMANAGER": "http://127.0.0.1:4566"}, "http://127.0.0.1:4566"),
        ({"SECRETS_MANAGER_ENDPOINT": "https://vpce-1.secretsmanager.eu-west-1.vpce.amazonaws.com"},
         "https://vpce-1.secretsmanager.eu-west-1.vpce.amazonaws.com"),
        ({}, "https://secretsmanager.eu-west-1.amazonaws.com"),
    ]:  # fmt: skip
        handler = database_handler(FAKE_ENGINE, engine_factory=FakeEngineFactory(FakeDatabase()), environ=env)
        rotator = handler._build_rotator(env)
        assert rotator.store.client.meta.endpoint_url == expected


class FakeEngineFactory:
    def __init__(self, database: FakeDatabase) -> None:
        self.database = database

    def __call__(self, settings: Any) -> FakeEngine:
        return FakeEngine(settings, self.database)


def test_handler_full_rotation_through_lambda_entry_point(
    sm_client: Any, make_secret: Any, database: FakeDatabase
) -> None:
    arn = make_secret()
    handler = database_handler(
        FAKE_ENGINE, engine_factory=FakeEngineFactory(database), store=SecretStore(sm_client), environ={}
    )

    service.rotate(arn, lambda event: handler(dict(event), None))

    assert database.password_of("app") == value_at(sm_client, arn, "AWSCURRENT")["password"]


def test_handler_failure_is_logged_once_with_category_and_reraised(
    sm_client: Any, make_secret: Any, database: FakeDatabase, capfd: pytest.CaptureFixture[str]
) -> None:
    arn = make_secret()
    token = emulator.stage_pending_placeholder(arn)
    handler = database_handler(
        FAKE_ENGINE, engine_factory=FakeEngineFactory(database), store=SecretStore(sm_client), environ={}
    )

    handler(service.event("createSecret", arn, token), None)
    with pytest.raises(RotationError, match="setSecret has not run"):
        handler(service.event("testSecret", arn, token), None)

    records = log_records(capfd.readouterr().out)
    errors = [r for r in records if r["level"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["category"] == "protocol"
    assert errors[0]["error_type"] == "PendingNotReadyError"
    assert errors[0]["step"] == "testSecret"
    assert errors[0]["secret_arn"] == arn
    assert errors[0]["token"] == token


def test_handler_bad_configuration_fails_every_invocation_clearly(sm_client: Any) -> None:
    handler = database_handler(
        FAKE_ENGINE,
        engine_factory=FakeEngineFactory(FakeDatabase()),
        store=SecretStore(sm_client),
        environ={"ROTATION_STRATEGY": "guess"},
    )
    with pytest.raises(RotationError, match="ROTATION_STRATEGY"):
        handler(service.event("createSecret", "s", "t"), None)


def test_handler_unexpected_exception_is_wrapped_without_values(
    sm_client: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    from rotation_core import log

    secret = "Leaky-Driver-Value-123"

    def explode(_env: Any) -> Any:
        log.register_sensitive(secret)
        raise ValueError(f"driver bug echoing {secret}")

    from rotation_core.handler import RotationHandler

    with pytest.raises(RotationError) as raised:
        RotationHandler(explode)(service.event("createSecret", "s", "t"), None)

    assert secret not in str(raised.value)
    assert "unexpected ValueError" in str(raised.value)
    assert raised.value.category.value == "internal"
    assert secret not in capfd.readouterr().out


def test_handler_invalid_event_reports_event_category(sm_client: Any, capfd: pytest.CaptureFixture[str]) -> None:
    handler = database_handler(
        FAKE_ENGINE, engine_factory=FakeEngineFactory(FakeDatabase()), store=SecretStore(sm_client), environ={}
    )
    with pytest.raises(InvalidEventError):
        handler({"Step": "createSecret"}, None)
    records = log_records(capfd.readouterr().out)
    assert [r["category"] for r in records if r["level"] == "ERROR"] == ["event"]


def test_load_function_gives_independent_handlers() -> None:
    first, second = load_function("postgres"), load_function("postgres")
    assert first.lambda_handler is not second.lambda_handler
