"""The Valkey function's preflight on each reach: every check a rotation depends on, nothing written.

Self-managed: the master's secret, login and rights (and the refusals it would make). ElastiCache/MemoryDB: the
user's tag naming the secret and its state (``active``, waited for while it is ``modifying``); a secret naming no
endpoint has its login checks reported skipped, with the reason, before the first rotation. The read-only guard
watches every AWS client the function makes; the users' stored password digests are compared before and after.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from helpers import LeakGuard
from integration.preflight_support import check, failed_names, nothing_written, outcome, preflight
from integration.support import Account, rotate, secret_at, unique
from rotation_local import emulator, valkey_emulator
from rotation_local.targets.valkey import TARGET, ValkeyServer

MANAGED = pytest.mark.servers("*-elasticache", "*-memorydb")
SELF = pytest.mark.servers("redis-7", "valkey-8")
PLAN = [
    "function_configuration", "secrets_manager_endpoint", "rotation_function", "rotation_enabled",
    "no_pending_rotation", "kms_decrypt", "secret_json", "target_reachable", "target_tls", "current_login",
    "dual_password", "own_password_change", "master_secret", "master_login", "alternate_pair", "master_privileges",
    "test_query",
]  # fmt: skip
LOGIN_CHECKS = ("target_reachable", "target_tls", "current_login", "test_query")


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"]}


@SELF
def test_valkey_preflight_self_managed_master_checks_ok_nothing_written(
    valkey_server: ValkeyServer, account: Account, valkey_function: Any, sm_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    master_arn = secret_at(sm_client, account.arn, "AWSCURRENT")["masterarn"]
    before = valkey_server.passwords_of(account.username)

    with nothing_written(monkeypatch, [account.arn, master_arn]) as unchanged:
        report = preflight(valkey_function(), account.arn)

    assert report["ok"] is True, failed_names(report)
    assert [c["name"] for c in report["checks"]] == PLAN
    assert {name for name, status in statuses(report).items() if status != "ok"} == {
        "own_password_change", "alternate_pair"
    }  # fmt: skip
    unchanged.assert_nothing_written()
    assert valkey_server.passwords_of(account.username) == before


@SELF
def test_valkey_preflight_self_managed_privileged_user_reported_as_confused_deputy(
    valkey_server: ValkeyServer, valkey_function: Any, sm_client: Any, leak_guard: LeakGuard
) -> None:
    name, password = unique("priv")[:20], "Privileged-Password-0001"
    leak_guard.add(password)
    valkey_server.command("ACL", "SETUSER", name, "reset", "on", f">{password}", "~*", "-@all", "+ping", "+get")
    value = TARGET.secret(valkey_server, name, password)
    arn = sm_client.create_secret(Name=unique("priv"), SecretString=json.dumps(value))["ARN"]
    emulator.enable_rotation(arn)

    report = preflight(valkey_function(), arn)

    assert failed_names(report) == ["master_privileges"]
    assert outcome(report, "master_privileges") == ("failed", "confused_deputy")
    assert "ALLOW_PRIVILEGED_USERS" in check(report, "master_privileges")["fix"]


@MANAGED
def test_valkey_preflight_managed_user_bound_and_active_ok_nothing_written(
    valkey_server: ValkeyServer, account: Account, valkey_function: Any, sm_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    before = valkey_server.passwords_of(account.username)

    with nothing_written(monkeypatch, [account.arn]) as unchanged:
        report = preflight(valkey_function(), account.arn)

    assert report["ok"] is True, failed_names(report)
    skipped = {name for name, status in statuses(report).items() if status == "skipped"}
    assert skipped == {"master_secret", "master_login", "alternate_pair", "master_privileges"}
    unchanged.assert_nothing_written()
    assert "ModifyUser" not in unchanged.guard.operations
    assert "UpdateUser" not in unchanged.guard.operations
    assert valkey_server.passwords_of(account.username) == before


@MANAGED
def test_valkey_preflight_managed_secret_without_endpoint_says_no_login_can_be_tried(
    account: Account, valkey_function: Any, sm_client: Any
) -> None:
    value = secret_at(sm_client, account.arn, "AWSCURRENT")
    sm_client.put_secret_value(SecretId=account.arn, SecretString=json.dumps(
        {k: v for k, v in value.items() if k not in ("host", "port")}))  # fmt: skip

    report = preflight(valkey_function(), account.arn)

    assert report["ok"] is True, failed_names(report)
    for name in LOGIN_CHECKS:
        assert outcome(report, name)[0] == "skipped"
        assert "names no endpoint" in check(report, name)["fix"]
    assert outcome(report, "own_password_change") == ("ok", "permission")


@MANAGED
def test_valkey_preflight_managed_user_not_bound_to_the_secret_fails_confused_deputy(
    valkey_server: ValkeyServer, valkey_account: Callable[..., Account], valkey_function: Any, sm_client: Any
) -> None:
    account, other = valkey_account(), valkey_account()
    other_user = secret_at(sm_client, other.arn, "AWSCURRENT")
    sm_client.put_secret_value(SecretId=account.arn, SecretString=json.dumps(other_user))  # the other's user

    report = preflight(valkey_function(), account.arn)

    assert failed_names(report) == ["own_password_change"]
    assert outcome(report, "own_password_change") == ("failed", "confused_deputy")
    assert "secrets-rotation:secret-arn" in check(report, "own_password_change")["fix"]


@MANAGED
def test_valkey_preflight_managed_user_modifying_waited_for_then_stuck_reported(
    valkey_server: ValkeyServer, account: Account, valkey_function: Any, sm_client: Any
) -> None:
    arn = secret_at(sm_client, account.arn, "AWSCURRENT")["user_arn"]
    app = valkey_function(WAITING_RETRY_INTERVAL_IN_SECONDS="0", MAX_WAITING_TIME_FOR_ACTIVE_IN_SECONDS="1")
    valkey_emulator.place(arn, valkey_server, account.username, modifying_describes=2)
    rotate(app, account.arn)  # the user is active again when the rotation ends
    valkey_emulator.place(arn, valkey_server, account.username, modifying_describes=10_000)
    current = secret_at(sm_client, account.arn, "AWSCURRENT")["password"]
    _change_through_the_service(arn, [current])

    report = preflight(app, account.arn)

    assert failed_names(report) == ["own_password_change"]
    assert outcome(report, "own_password_change") == ("failed", "verification")
    assert "MAX_WAITING_TIME_FOR_ACTIVE_IN_SECONDS" in check(report, "own_password_change")["fix"]
    valkey_emulator.place(arn, valkey_server, account.username)


def _change_through_the_service(user_arn: str, passwords: list[str]) -> None:
    """An operator's own ModifyUser/UpdateUser, leaving the user modifying."""
    if ":elasticache:" in user_arn:
        backend = valkey_emulator.elasticache_backend()
        user_id = user_arn.rsplit(":", 1)[-1]
        backend.modify_user(user_id, passwords, None, None, None, None)
    else:
        valkey_emulator.memorydb_backend().update_user(
            user_arn.rsplit("/", 1)[-1], {"Type": "password", "Passwords": passwords}, None
        )
