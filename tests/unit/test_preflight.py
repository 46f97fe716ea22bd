"""The preflight on moto in-process and the fake database: the event, the report's shape, each check, no writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from helpers import lambda_context, log_records
from readonly_guard import READ_OPERATIONS, ReadOnlyGuard, WriteRefusedError
from rotation_core.errors import Category, InvalidEventError
from rotation_core.preflight import (
    ALTERNATING_CHECKS,
    CONFIGURATION_CHECKS,
    DATABASE_CHECKS,
    PROBE_CHECKS,
    SECRET_CHECKS,
    SINGLE_USER_CHECKS,
    PreflightWriteError,
    ReadOnlyProvider,
    ReadOnlyStore,
)
from rotation_core.secrets import SecretStore
from rotation_local import emulator
from unit.fakes import FakeDatabase, fake_handler, stages, value_at

SINGLE_USER_NAMES = [name for name, _ in CONFIGURATION_CHECKS + SECRET_CHECKS + DATABASE_CHECKS + SINGLE_USER_CHECKS]
SINGLE_USER_NAMES += [name for name, _ in PROBE_CHECKS]


def preflight(handler: Callable[..., Any], secret_id: str, context: Any = None) -> dict[str, Any]:
    result: dict[str, Any] = handler({"Preflight": {"SecretId": secret_id}}, context or lambda_context())
    return result


def statuses(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {check["name"]: (check["status"], check["category"]) for check in report["checks"]}


def test_preflight_correct_single_user_setup_every_check_ok_in_order(
    sm_client: Any, make_secret: Callable[..., str], database: FakeDatabase
) -> None:
    arn = make_secret()

    report = preflight(fake_handler(sm_client, database), arn)

    assert report["ok"] is True
    assert [check["name"] for check in report["checks"]] == SINGLE_USER_NAMES
    for check in report["checks"]:
        assert set(check) == {"name", "status", "category", "fix"}
        assert check["status"] == "ok"
        assert check["fix"] == ""
        assert Category(check["category"])  # one of the existing categories
    assert set(report) == {"ok", "checks"}
    json.dumps(report)  # what Lambda returns to the caller


def test_preflight_correct_alternating_setup_checks_master_ok(
    sm_client: Any, make_secret: Callable[..., str], database: FakeDatabase
) -> None:
    arn = make_secret(with_master=True)

    report = preflight(fake_handler(sm_client, database, ROTATION_STRATEGY="alternating_users"), arn)

    assert report["ok"] is True
    names = [check["name"] for check in report["checks"]]
    expected = [name for name, _ in ALTERNATING_CHECKS + PROBE_CHECKS]
    assert names[-len(expected) :] == expected
    assert "own_password_change" not in names


@pytest.mark.parametrize(
    "event",
    [
        {"Preflight": "arn"},
        {"Preflight": {"SecretId": ""}},
        {"Preflight": {"SecretId": "a\nb"}},
        {"Preflight": {"SecretId": "s", "Extra": 1}},
        {"Preflight": {"SecretId": "s"}, "Step": "createSecret"},
        {"Preflight": {}},
    ],
    ids=["not_object", "empty_id", "control_character", "extra_key", "mixed_with_step", "no_id"],
)
def test_preflight_event_not_the_exact_shape_refused_as_event_error(
    event: dict[str, Any], sm_client: Any, database: FakeDatabase, capfd: pytest.CaptureFixture[str]
) -> None:
    handler = fake_handler(sm_client, database)

    with pytest.raises(InvalidEventError):
        handler(event, lambda_context())

    errors = [r for r in log_records(capfd.readouterr().out) if r["level"] == "ERROR"]
    assert [r["category"] for r in errors] == ["event"]


def test_preflight_never_writes_guard_sees_only_reads(
    sm_client: Any, make_secret: Callable[..., str], database: FakeDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = make_secret(with_master=True)
    before = stages(sm_client, arn)
    passwords = {name: user.password for name, user in database.users.items()}
    guard = ReadOnlyGuard()
    handler = fake_handler(sm_client, database, ROTATION_STRATEGY="alternating_users")

    with guard.active(monkeypatch):
        guard.watch_client(sm_client)
        report = preflight(handler, arn)

    assert report["ok"] is True
    assert guard.refused == []
    assert set(guard.operations) <= READ_OPERATIONS
    assert "GetSecretValue" in guard.operations
    assert stages(sm_client, arn) == before
    assert database.changes == []
    assert {name: user.password for name, user in database.users.items()} == passwords


def test_read_only_guard_write_call_refused_on_every_side(sm_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    arn = sm_client.create_secret(Name="guarded", SecretString=json.dumps({"password": "Guarded-Value-1"}))["ARN"]
    guard = ReadOnlyGuard()

    with guard.active(monkeypatch):
        watched = guard.watch_client(sm_client)
        with pytest.raises(WriteRefusedError):
            watched.put_secret_value(SecretId=arn, SecretString="{}")
        fresh = boto3.client("secretsmanager", region_name=emulator.DEFAULT_REGION)
        with pytest.raises(WriteRefusedError):
            fresh.update_secret(SecretId=arn, Description="changed")
        with pytest.raises(WriteRefusedError):
            emulator.backend().put_secret_value(arn, "{}", None, "t" * 36, ["AWSPENDING"])

    assert guard.refused == ["PutSecretValue", "UpdateSecret", "emulator:put_secret_value"]


def test_preflight_read_only_store_and_provider_refuse_writes(sm_client: Any) -> None:
    store = ReadOnlyStore(SecretStore(sm_client))
    with pytest.raises(PreflightWriteError):
        store.put_pending("s", "t", {})
    with pytest.raises(PreflightWriteError):
        store.promote("s", "t", "v")
    provider = ReadOnlyProvider(_NamedProvider())
    with pytest.raises(PreflightWriteError):
        provider.issue("name", {})
    with pytest.raises(PreflightWriteError):
        provider.revoke("id")


class _NamedProvider:
    name = "fake"
    display_name = "Fake"
    value_field = "api_key"
    id_field = "api_key_id"


def test_preflight_rotation_not_enabled_reports_rotation_enabled_failed(
    sm_client: Any, make_secret: Callable[..., str], database: FakeDatabase
) -> None:
    arn = make_secret(rotation_enabled=False)

    report = preflight(fake_handler(sm_client, database), arn)

    assert report["ok"] is False
    assert statuses(report)["rotation_enabled"] == ("failed", "protocol")
    assert "--no-rotate-immediately" in next(c["fix"] for c in report["checks"] if c["name"] == "rotation_enabled")
    assert statuses(report)["current_login"] == ("ok", "auth_failed")  # the other checks still ran


def test_preflight_other_function_attached_reports_rotation_function_failed(
    sm_client: Any, make_secret: Callable[..., str], database: FakeDatabase
) -> None:
    arn = make_secret()

    report = preflight(fake_handler(sm_client, database), arn, lambda_context("another-function"))

    assert statuses(report)["rotation_function"] == ("failed", "protocol")
    fix = next(c["fix"] for c in report["checks"] if c["name"] == "rotation_function")
    assert "local-rotation" in fix
    assert emulator.function_arn("another-function") in fix


def test_preflight_qualified_function_arn_matches_attached_function(
    sm_client: Any, make_secret: Callable[..., str], database: FakeDatabase
) -> None:
    arn = make_secret()
    context = lambda_context()
    context.invoked_function_arn += ":live"

    report = preflight(fake_handler(sm_client, database), arn, context)

    assert statuses(report)["rotation_function"] == ("ok", "protocol")


def test_preflight_without_lambda_context_skips_rotation_function(
    sm_client: Any, make_secret: Callable[..., str], database: FakeDatabase
) -> None:
    arn = make_secret()
    handler = fake_handler(sm_client, database)

    report: dict[str, Any] = handler({"Preflight": {"SecretId": arn}}, None)

    assert statuses(report)["rotation_function"] == ("skipped", "protocol")
    assert report["ok"] is True


def test_preflight_unfinished_rotation_reports_no_pending_rotation_failed(
    sm_client: Any, make_secret: Callable[..., str], database: FakeDatabase
) -> None:
    arn = make_secret()
    token = emulator.stage_pending_placeholder(arn)

    report = preflight(fake_handler(sm_client, database), arn)

    assert statuses(report)["no_pending_rotation"] == ("failed", "protocol")
    fix = next(c["fix"] for c in report["checks"] if c["name"] == "no_pending_rotation")
    assert token in fix
    assert "update-secret-version-stage" in fix


def test_preflight_describe_access_denied_reports_secret_not_attached(aws_env: None, database: FakeDatabase) -> None:
    client = boto3.client("secretsmanager", region_name=emulator.DEFAULT_REGION)
    stubber = Stubber(client)
    stubber.add_client_error("describe_secret", "AccessDeniedException", "not authorized", 400)

    with stubber:
        report = preflight(fake_handler(client, database), "rotation/postgres/single-user/app")

    assert statuses(report)["secrets_manager_endpoint"] == ("ok", "secrets_manager")
    assert statuses(report)["rotation_function"] == ("failed", "protocol")
    fix = next(c["fix"] for c in report["checks"] if c["name"] == "rotation_function")
    assert "does not name this function as its rotation function" in fix
    assert emulator.function_arn(emulator.LOCAL_FUNCTION) in fix
    skipped = [c for c in report["checks"] if c["status"] == "skipped"]
    assert skipped
    assert all(c["fix"] == "not run because rotation_function failed" for c in skipped)


@pytest.mark.parametrize("code", ["AccessDeniedException", "DecryptionFailure"])
def test_preflight_get_secret_value_denied_reports_kms_decrypt_failed(
    code: str, aws_env: None, database: FakeDatabase
) -> None:
    client = boto3.client("secretsmanager", region_name=emulator.DEFAULT_REGION)
    arn = f"arn:aws:secretsmanager:{emulator.DEFAULT_REGION}:{emulator.DEFAULT_ACCOUNT}:secret:app-AbCdEf"
    stubber = Stubber(client)
    described = {
        "ARN": arn,
        "Name": "app",
        "RotationEnabled": True,
        "RotationLambdaARN": emulator.function_arn(emulator.LOCAL_FUNCTION),
        "VersionIdsToStages": {"v1" * 16: ["AWSCURRENT"]},
    }
    stubber.add_response("describe_secret", described)
    stubber.add_client_error("get_secret_value", code, "Access to KMS is not allowed", 400)

    with stubber:
        report = preflight(fake_handler(client, database), arn)

    assert statuses(report)["kms_decrypt"] == ("failed", "secrets_manager")
    assert "kms" in next(c["fix"] for c in report["checks"] if c["name"] == "kms_decrypt").lower()
    assert statuses(report)["secret_json"][0] == "skipped"


def test_preflight_bad_function_configuration_reports_it_instead_of_raising(
    sm_client: Any, make_secret: Callable[..., str], database: FakeDatabase
) -> None:
    arn = make_secret()

    report = preflight(fake_handler(sm_client, database, ROTATION_STRATEGY="guess"), arn)

    assert report["ok"] is False
    assert statuses(report)["function_configuration"] == ("failed", "configuration")
    assert "ROTATION_STRATEGY" in report["checks"][0]["fix"]


@pytest.mark.parametrize(
    ("secret", "database_state", "expected"),
    [
        pytest.param(
            {"port": "not-a-port"}, {},
            {"kms_decrypt": ("ok", "secrets_manager"), "secret_json": ("failed", "secret_format"),
             "target_reachable": "skipped"},
            id="secret_not_usable",
        ),
        pytest.param(
            {"password": "Not-The-Password-1"}, {},
            {"target_reachable": ("ok", "unreachable"), "current_login": ("failed", "auth_failed"),
             "own_password_change": "skipped"},
            id="wrong_password",
        ),
        pytest.param(
            {}, {"reachable": False},
            {"target_reachable": ("failed", "unreachable"), "target_tls": "skipped"},
            id="server_down",
        ),
        pytest.param(
            {}, {"own_password_locked": True},
            {"own_password_change": ("failed", "permission")},
            id="own_password_refused",
        ),
    ],
)  # fmt: skip
def test_preflight_one_part_wrong_reports_its_check_failed_and_skips_what_needs_it(
    secret: dict[str, str],
    database_state: dict[str, bool],
    expected: dict[str, tuple[str, str] | str],
    sm_client: Any,
    make_secret: Callable[..., str],
    database: FakeDatabase,
) -> None:
    """``expected``: the checks' (status, category), or only the status (a skipped check's category is its own)."""
    arn = make_secret(**secret)
    for name, value in database_state.items():
        setattr(database, name, value)

    report = preflight(fake_handler(sm_client, database), arn)

    found = statuses(report)
    shown = {name: found[name] if isinstance(want, tuple) else found[name][0] for name, want in expected.items()}
    assert shown == expected
    assert value_at(sm_client, arn, "AWSCURRENT")["password"] not in json.dumps(report)


def test_preflight_master_without_rights_reports_master_privileges_failed(
    sm_client: Any, make_secret: Callable[..., str], database: FakeDatabase
) -> None:
    arn = make_secret(with_master=True)
    database.admins.clear()

    report = preflight(fake_handler(sm_client, database, ROTATION_STRATEGY="alternating_users"), arn)

    assert statuses(report)["master_login"] == ("ok", "auth_failed")
    assert statuses(report)["master_privileges"] == ("failed", "permission")


def test_preflight_master_secret_missing_reports_master_secret_failed(
    sm_client: Any, make_secret: Callable[..., str], database: FakeDatabase
) -> None:
    arn = make_secret()  # no masterarn

    report = preflight(fake_handler(sm_client, database, ROTATION_STRATEGY="alternating_users"), arn)

    assert statuses(report)["master_secret"] == ("failed", "secret_format")
    assert "masterarn" in next(c["fix"] for c in report["checks"] if c["name"] == "master_secret")


def test_preflight_master_on_another_server_reports_confused_deputy(
    sm_client: Any, make_secret: Callable[..., str], database: FakeDatabase
) -> None:
    master = {"engine": "postgres", "host": "elsewhere.example", "username": "admin", "password": "Admin-Password-0001"}
    master_arn = sm_client.create_secret(Name="far-master", SecretString=json.dumps(master))["ARN"]
    arn = make_secret(masterarn=master_arn)

    report = preflight(fake_handler(sm_client, database, ROTATION_STRATEGY="alternating_users"), arn)

    assert statuses(report)["master_secret"] == ("failed", "confused_deputy")
    assert statuses(report)["master_login"][0] == "skipped"
