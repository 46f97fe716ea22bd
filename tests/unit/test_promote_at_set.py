"""PROMOTE_AT_SET=true (single user): setSecret changes the password, proves it and promotes it in one invocation.

testSecret and finishSecret then find the version AWSCURRENT (guard 3) and have nothing to do; a crash between
the password change and the promotion is retried by the service and setSecret promotes then; the metrics count
the completed rotation where it completed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from helpers import emf_documents, lambda_context
from rotation_core.errors import ConfigurationError, PendingNotReadyError, SecretsManagerError
from rotation_core.handler import RotationHandler
from rotation_core.rotator import Rotator
from rotation_core.secrets import SecretStore
from rotation_core.settings import Settings, Strategy
from rotation_local import emulator, service
from unit.fakes import CallCounter, FakeDatabase, run_steps, stages, value_at

Steps = Callable[..., Rotator]


def test_promote_at_set_set_secret_promotes_then_test_and_finish_have_nothing_to_do(
    sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps, database: FakeDatabase,
    call_counter: CallCounter,
) -> None:  # fmt: skip
    arn = make_secret()
    old = value_at(sm_client, arn, "AWSCURRENT")
    rotator = make_rotator(promote_at_set=True)
    token = emulator.stage_pending_placeholder(arn)
    run_steps(rotator, arn, token, "createSecret")
    call_counter.take()

    run_steps(rotator, arn, token, "setSecret")

    calls = dict(call_counter.take())
    assert rotator.last_promoted
    assert stages(sm_client, arn)[token] == ["AWSPENDING", "AWSCURRENT"]  # the service removes AWSPENDING later
    assert value_at(sm_client, arn, "AWSPREVIOUS") == old
    assert database.password_of("app") == value_at(sm_client, arn, "AWSCURRENT")["password"]
    assert calls == {"DescribeSecret": 1, "UpdateSecretVersionStage": 1}  # in a warm container
    assert database.connections == ["app", "app"]  # the change, then the proof with the new password
    for step in ("testSecret", "finishSecret"):
        assert rotator.handle(service.event(step, arn, token)) is False  # already AWSCURRENT: nothing to do
    assert not rotator.last_promoted


def test_promote_at_set_crash_before_promotion_retry_promotes_from_set(
    sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps, database: FakeDatabase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    arn = make_secret()
    token = emulator.stage_pending_placeholder(arn)
    run_steps(make_rotator(promote_at_set=True), arn, token, "createSecret")

    def unavailable(*_args: Any, **_kwargs: Any) -> None:
        raise SecretsManagerError("UpdateSecretVersionStage failed: InternalServiceError")

    with monkeypatch.context() as patch:
        patch.setattr(SecretStore, "promote", unavailable)
        with pytest.raises(SecretsManagerError):
            run_steps(make_rotator(promote_at_set=True), arn, token, "setSecret")
    assert stages(sm_client, arn)[token] == ["AWSPENDING"]
    assert database.password_of("app") == value_at(sm_client, arn, "AWSPENDING")["password"]

    service.rotate(arn, make_rotator(promote_at_set=True).handle, token=token)  # the service's retry

    assert stages(sm_client, arn)[token] == ["AWSCURRENT"]
    assert database.password_of("app") == value_at(sm_client, arn, "AWSCURRENT")["password"]


def test_promote_at_set_pending_a_copy_of_current_never_promoted(
    sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps
) -> None:
    arn = make_secret()
    token = emulator.stage_transient_version(arn, copy_current=True)
    before = stages(sm_client, arn)

    with pytest.raises(PendingNotReadyError):
        run_steps(make_rotator(promote_at_set=True), arn, token, "setSecret")

    assert stages(sm_client, arn) == before
    emulator.remove_version(arn, token)


@pytest.mark.parametrize("strategy", ["alternating_users", "dual_password"])
def test_promote_at_set_with_another_strategy_refused_naming_both_settings(strategy: str) -> None:
    with pytest.raises(ConfigurationError, match=r"PROMOTE_AT_SET=true applies to the single_user strategy only"):
        Settings.from_env({"ROTATION_STRATEGY": strategy, "PROMOTE_AT_SET": "true"})


def test_promote_at_set_default_off() -> None:
    assert Settings.from_env({}).promote_at_set is False
    assert Settings.from_env({"PROMOTE_AT_SET": "yes"}).promote_at_set is True


def test_promote_at_set_rotation_completed_metric_written_by_set_secret(
    make_secret: Callable[..., str], make_handler: Callable[..., RotationHandler], capfd: pytest.CaptureFixture[str]
) -> None:
    arn = make_secret()
    handler = make_handler(PROMOTE_AT_SET="true", ROTATION_STRATEGY=Strategy.SINGLE_USER.value)

    service.rotate(arn, lambda event: handler(dict(event), lambda_context()))

    documents = emf_documents(capfd.readouterr().out)
    completed = [d for d in documents if "RotationCompleted" in d]
    assert len(completed) == 1
    assert [d["Step"] for d in documents if "StepSucceeded" in d and d is not completed[0]] == list(service.STEPS)
