"""The preflight on every database server kind, through the engine's function and the emulator over HTTP.

A correct setup passes every check and changes nothing (the read-only guard on every client and on the
emulator, the server's statement log, the logins afterwards); each failure cause that can be made
locally fails the check that names it, with the category the rotation would report.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trustme

from helpers import lambda_context
from integration.preflight_support import check, failed_names, nothing_written, outcome, preflight
from integration.support import Account, DatabaseSetup, create_account, rotate, secret_at, unique
from rotation_core.settings import Strategy
from rotation_local import emulator
from rotation_local.postgres_server import free_port
from rotation_local.server_kinds import ServerKind
from rotation_local.targets import DatabaseTarget

SINGLE_USER_CHECKS = [
    "function_configuration", "secrets_manager_endpoint", "rotation_function", "rotation_enabled",
    "no_pending_rotation", "kms_decrypt", "secret_json", "target_reachable", "target_tls", "current_login",
    "own_password_change", "test_query",
]  # fmt: skip
ALTERNATING_CHECKS = [
    *SINGLE_USER_CHECKS[:-2], "master_secret", "master_login", "alternate_pair", "master_privileges", "test_query",
]  # fmt: skip


def requires(target: DatabaseTarget, kind: ServerKind, strategy: Strategy) -> None:
    """The checks a strategy's preflight runs are asserted on kinds whose engine has that strategy only."""
    if strategy not in target.strategies(kind):
        pytest.skip(f"{kind.name} has no {strategy.value} strategy (its engine's own tests cover its preflight)")


def account(db: DatabaseSetup, **options: Any) -> Account:
    return create_account(db.target, db.server, db.sm_client, db.leak_guard, username=unique("pre")[:16], **options)


def test_preflight_database_single_user_correct_setup_all_ok_nothing_written(
    db_kind: ServerKind, db: DatabaseSetup, db_function: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    requires(db.target, db_kind, Strategy.SINGLE_USER)
    acct = account(db)
    before = secret_at(db.sm_client, acct.arn, "AWSCURRENT")
    app = db_function()

    with nothing_written(monkeypatch, [acct.arn], [db.target.statement_log(db.server)]) as unchanged:
        report = preflight(app, acct.arn)

    assert report["ok"] is True, failed_names(report)
    assert [c["name"] for c in report["checks"]] == SINGLE_USER_CHECKS
    assert {c["status"] for c in report["checks"]} == {"ok"}
    unchanged.assert_nothing_written()
    assert db.logs_in(before)
    assert secret_at(db.sm_client, acct.arn, "AWSCURRENT") == before


def test_preflight_database_alternating_correct_setup_all_ok_nothing_written(
    db_kind: ServerKind, db: DatabaseSetup, db_function: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    requires(db.target, db_kind, Strategy.ALTERNATING_USERS)
    acct = account(db, with_master=True, master_username=unique("m")[:16])
    assert acct.master_arn is not None
    before = secret_at(db.sm_client, acct.arn, "AWSCURRENT")
    master = secret_at(db.sm_client, acct.master_arn, "AWSCURRENT")
    app = db_function(ROTATION_STRATEGY="alternating_users")

    with nothing_written(monkeypatch, [acct.arn, acct.master_arn], [db.target.statement_log(db.server)]) as unchanged:
        report = preflight(app, acct.arn)

    assert report["ok"] is True, [check(report, name) for name in failed_names(report)]
    assert [c["name"] for c in report["checks"]] == ALTERNATING_CHECKS
    unchanged.assert_nothing_written()
    assert db.logs_in(before)
    assert db.logs_in(master)
    assert not db.logs_in({**before, "username": acct.username + "_clone"})


def test_preflight_database_passes_then_rotation_succeeds(
    db: DatabaseSetup, db_function: Callable[..., ModuleType]
) -> None:
    acct = account(db)
    app = db_function()

    assert preflight(app, acct.arn)["ok"] is True
    rotate(app, acct.arn)

    assert db.logs_in(secret_at(db.sm_client, acct.arn, "AWSCURRENT"))


def test_preflight_database_server_down_reports_target_reachable_unreachable(
    db: DatabaseSetup, db_function: Callable[..., ModuleType]
) -> None:
    password = secrets.token_urlsafe(24)
    db.leak_guard.add(password)
    value = db.target.secret(db.server, "app", password, port=free_port())
    arn = db.sm_client.create_secret(Name=unique("down"), SecretString=json.dumps(value))["ARN"]
    emulator.enable_rotation(arn)

    report = preflight(db_function(DB_CONNECT_TIMEOUT="2"), arn)

    assert report["ok"] is False
    assert failed_names(report) == ["target_reachable"]
    assert outcome(report, "target_reachable") == ("failed", "unreachable")
    assert outcome(report, "current_login")[0] == "skipped"


@pytest.mark.verifies("tls_wrong_ca")
def test_preflight_database_wrong_ca_reports_target_tls_failed(
    db: DatabaseSetup, db_function: Callable[..., ModuleType], tmp_path: Path
) -> None:
    acct = account(db)
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))

    report = preflight(db_function(DB_CA_BUNDLE=str(other_ca)), acct.arn)

    assert failed_names(report) == ["target_tls"]
    assert outcome(report, "target_reachable") == ("ok", "unreachable")
    assert outcome(report, "target_tls") == ("failed", "tls")
    assert "DB_CA_BUNDLE" in check(report, "target_tls")["fix"]


def test_preflight_database_ssl_false_skips_tls_and_passes(
    db: DatabaseSetup, db_function: Callable[..., ModuleType]
) -> None:
    acct = account(db, ssl=False)

    report = preflight(db_function(), acct.arn)

    assert report["ok"] is True
    assert outcome(report, "target_tls") == ("skipped", "tls")
    assert "not verified" in check(report, "target_tls")["fix"]


def test_preflight_database_wrong_password_reports_current_login_auth_failed(
    db: DatabaseSetup, db_function: Callable[..., ModuleType]
) -> None:
    wrong = secrets.token_urlsafe(24)
    db.leak_guard.add(wrong)
    acct = account(db, password=wrong)

    report = preflight(db_function(), acct.arn)

    assert failed_names(report) == ["current_login"]
    assert outcome(report, "current_login") == ("failed", "auth_failed")
    assert outcome(report, "target_tls") == ("ok", "tls")
    assert wrong not in json.dumps(report)


def test_preflight_database_master_without_privilege_reports_master_privileges_permission(
    db_kind: ServerKind, db: DatabaseSetup, db_function: Callable[..., ModuleType]
) -> None:
    requires(db.target, db_kind, Strategy.ALTERNATING_USERS)
    acct = account(
        db, with_master=True, master_username=unique("m")[:16],
        master_role_options="",  # a plain login: no CREATEROLE, no CREATE USER, no mysql-schema access
    )  # fmt: skip

    report = preflight(db_function(ROTATION_STRATEGY="alternating_users"), acct.arn)

    # MySQL/MariaDB prove the pair from the accounts' grants, which such a master may not read either.
    reads_grants = db.target.engine != "postgres"
    expected = ["alternate_pair", "master_privileges"] if reads_grants else ["master_privileges"]
    assert failed_names(report) == expected
    assert outcome(report, "master_login") == ("ok", "auth_failed")
    assert outcome(report, "master_privileges") == ("failed", "permission")
    pair = ("failed", "permission") if reads_grants else ("ok", "confused_deputy")
    assert outcome(report, "alternate_pair") == pair


def test_preflight_database_master_wrong_password_reports_master_login_failed(
    db_kind: ServerKind, db: DatabaseSetup, db_function: Callable[..., ModuleType]
) -> None:
    requires(db.target, db_kind, Strategy.ALTERNATING_USERS)
    acct = account(db, with_master=True, master_username=unique("m")[:16])
    assert acct.master_arn is not None
    master = secret_at(db.sm_client, acct.master_arn, "AWSCURRENT")
    wrong = secrets.token_urlsafe(24)
    db.leak_guard.add(wrong)
    db.sm_client.put_secret_value(SecretId=acct.master_arn, SecretString=json.dumps({**master, "password": wrong}))

    report = preflight(db_function(ROTATION_STRATEGY="alternating_users"), acct.arn)

    assert failed_names(report) == ["master_login"]
    assert outcome(report, "master_login") == ("failed", "auth_failed")
    assert outcome(report, "master_privileges")[0] == "skipped"


def test_preflight_database_rotation_not_enabled_reports_rotation_enabled_protocol(
    db: DatabaseSetup, db_function: Callable[..., ModuleType]
) -> None:
    password = secrets.token_urlsafe(24)
    db.leak_guard.add(password)
    db.target.create_login(db.server, name := unique("off")[:16], password)
    value = db.target.secret(db.server, name, password)
    arn = db.sm_client.create_secret(Name=unique("off"), SecretString=json.dumps(value))["ARN"]

    report = preflight(db_function(), arn)

    assert outcome(report, "rotation_enabled") == ("failed", "protocol")
    assert outcome(report, "rotation_function") == ("failed", "protocol")  # nothing is attached either
    assert "--no-rotate-immediately" in check(report, "rotation_enabled")["fix"]
    assert outcome(report, "current_login") == ("ok", "auth_failed")


def test_preflight_database_unfinished_rotation_reports_no_pending_rotation_protocol(
    db: DatabaseSetup, db_function: Callable[..., ModuleType]
) -> None:
    acct = account(db)
    token = emulator.stage_pending_placeholder(acct.arn)

    report = preflight(db_function(), acct.arn)

    assert failed_names(report) == ["no_pending_rotation"]
    assert outcome(report, "no_pending_rotation") == ("failed", "protocol")
    assert token in check(report, "no_pending_rotation")["fix"]
    emulator.drop_pending(acct.arn)


def test_preflight_database_attached_to_another_function_reports_rotation_function_protocol(
    db: DatabaseSetup, db_function: Callable[..., ModuleType]
) -> None:
    acct = account(db)

    report = preflight(db_function(), acct.arn, lambda_context("some-other-rotation-function"))

    assert failed_names(report) == ["rotation_function"]
    assert emulator.function_arn(emulator.LOCAL_FUNCTION) in check(report, "rotation_function")["fix"]


def test_preflight_secrets_manager_endpoint_unreachable_reports_endpoint_failed(
    db: DatabaseSetup, db_function: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    acct = account(db)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETSMANAGER", f"http://127.0.0.1:{free_port()}")

    report = preflight(db_function(), acct.arn)

    assert failed_names(report) == ["secrets_manager_endpoint"]
    assert outcome(report, "secrets_manager_endpoint") == ("failed", "secrets_manager")
    assert "VPC endpoint" in check(report, "secrets_manager_endpoint")["fix"]
    assert all(c["status"] == "skipped" for c in report["checks"][2:])
