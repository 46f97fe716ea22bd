"""The state machine: guards, each step, re-entrancy, crash recovery and API call counts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from rotation_core.errors import (
    Category,
    ConfusedDeputyError,
    InvalidEventError,
    PendingNotReadyError,
    RotationStateError,
    SecretFormatError,
    TargetError,
)
from rotation_core.rotator import Rotator
from rotation_core.settings import Strategy
from rotation_local import emulator, service
from unit.fakes import CallCounter, FakeDatabase, run_steps, stages, value_at

Steps = Callable[..., Rotator]
ROTATION_TOKEN = "7d0c4a2e-5f1b-4c8e-9a3d-2b6e8f1c0a94-cross-account"


def test_rotation_single_user_full_cycle_changes_password_and_moves_labels(
    sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps, database: FakeDatabase
) -> None:
    arn = make_secret()
    old = value_at(sm_client, arn, "AWSCURRENT")
    rotator = make_rotator()

    token = service.rotate(arn, rotator.handle)

    new = value_at(sm_client, arn, "AWSCURRENT")
    assert new["password"] != old["password"]
    assert database.password_of("app") == new["password"]
    assert {k: v for k, v in new.items() if k != "password"} == {k: v for k, v in old.items() if k != "password"}
    assert stages(sm_client, arn)[token] == ["AWSCURRENT"]
    assert value_at(sm_client, arn, "AWSPREVIOUS") == old


def count_per_step(
    rotators: list[Rotator], arn: str, token: str, call_counter: CallCounter, database: FakeDatabase
) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    calls, connections = {}, {}
    call_counter.take()
    for step, rotator in zip(service.STEPS, rotators, strict=True):
        before = len(database.connections)
        run_steps(rotator, arn, token, step)
        calls[step] = dict(call_counter.take())
        connections[step] = len(database.connections) - before
    return calls, connections


def test_rotation_single_user_in_one_warm_container_makes_seven_calls_and_two_connections(
    sm_client: Any, pending: tuple[str, str], make_rotator: Steps, call_counter: CallCounter, database: Any
) -> None:
    arn, token = pending
    rotator = make_rotator()

    calls, connections = count_per_step([rotator] * 4, arn, token, call_counter, database)

    assert calls == {
        "createSecret": {"DescribeSecret": 1, "GetSecretValue": 1, "PutSecretValue": 1},
        "setSecret": {"DescribeSecret": 1},
        "testSecret": {"DescribeSecret": 1},
        "finishSecret": {"DescribeSecret": 1, "UpdateSecretVersionStage": 1},
    }
    assert connections == {"createSecret": 0, "setSecret": 1, "testSecret": 1, "finishSecret": 0}


def test_rotation_single_user_each_step_in_new_container_makes_twelve_calls(
    sm_client: Any, pending: tuple[str, str], make_rotator: Steps, call_counter: CallCounter, database: Any
) -> None:
    arn, token = pending

    calls, connections = count_per_step([make_rotator() for _ in range(4)], arn, token, call_counter, database)

    assert calls == {
        "createSecret": {"DescribeSecret": 1, "GetSecretValue": 1, "PutSecretValue": 1},
        "setSecret": {"DescribeSecret": 1, "GetSecretValue": 2},
        "testSecret": {"DescribeSecret": 1, "GetSecretValue": 1},
        "finishSecret": {"DescribeSecret": 1, "GetSecretValue": 2, "UpdateSecretVersionStage": 1},
    }
    # finishSecret did not see testSecret succeed, so it proves the credentials itself, and compares
    # them with AWSCURRENT (a configuration test's copy works too, and is never promoted).
    assert connections == {"createSecret": 0, "setSecret": 1, "testSecret": 1, "finishSecret": 1}


def test_finish_secret_before_set_secret_refuses_to_promote(
    sm_client: Any, pending: tuple[str, str], make_rotator: Steps, database: FakeDatabase
) -> None:
    """An out-of-order finishSecret (e.g. a direct invocation) must not lock the user out."""
    arn, token = pending
    run_steps(make_rotator(), arn, token, "createSecret")
    before = stages(sm_client, arn)

    with pytest.raises(PendingNotReadyError):
        run_steps(make_rotator(), arn, token, "finishSecret")

    assert stages(sm_client, arn) == before
    assert database.password_of("app") == value_at(sm_client, arn, "AWSCURRENT")["password"]


def test_finish_secret_on_bare_placeholder_refuses_to_promote(
    sm_client: Any, pending: tuple[str, str], make_rotator: Steps
) -> None:
    arn, token = pending
    current = value_at(sm_client, arn, "AWSCURRENT")

    with pytest.raises(PendingNotReadyError, match="createSecret has not run"):
        run_steps(make_rotator(), arn, token, "finishSecret")

    assert value_at(sm_client, arn, "AWSCURRENT") == current
    assert stages(sm_client, arn)[token] == ["AWSPENDING"]


@pytest.mark.parametrize("step", service.STEPS)
def test_guard_rotation_disabled_raises_and_changes_nothing(
    step: str, sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps, database: FakeDatabase
) -> None:
    arn = make_secret(rotation_enabled=False)
    token = emulator.stage_pending_placeholder(arn)
    before = stages(sm_client, arn)

    with pytest.raises(RotationStateError, match="rotation is not enabled"):
        run_steps(make_rotator(), arn, token, step)

    assert stages(sm_client, arn) == before
    assert database.changes == []


@pytest.mark.parametrize("step", service.STEPS)
def test_guard_token_not_a_version_raises(step: str, make_secret: Callable[..., str], make_rotator: Steps) -> None:
    arn = make_secret()
    with pytest.raises(RotationStateError, match="is not a version of this secret"):
        run_steps(make_rotator(), arn, "0f0f0f0f-0000-4000-8000-000000000000", step)


@pytest.mark.parametrize("step", service.STEPS)
def test_guard_token_already_current_is_a_no_op(
    step: str, sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps, call_counter: CallCounter,
    database: FakeDatabase,
) -> None:  # fmt: skip
    arn = make_secret()
    current_token = next(v for v, s in stages(sm_client, arn).items() if "AWSCURRENT" in s)
    before = stages(sm_client, arn)
    call_counter.take()

    run_steps(make_rotator(), arn, current_token, step)

    assert dict(call_counter.take()) == {"DescribeSecret": 1}
    assert stages(sm_client, arn) == before
    assert database.connections == []


@pytest.mark.parametrize("step", service.STEPS)
def test_guard_token_not_pending_raises(
    step: str, sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps
) -> None:
    arn = make_secret()
    rotator = make_rotator()
    old_token = service.rotate(arn, rotator.handle)
    service.rotate(arn, rotator.handle)  # the first token is now AWSPREVIOUS

    with pytest.raises(RotationStateError, match="is not AWSPENDING"):
        run_steps(rotator, arn, old_token, step)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (None, "not a JSON object"),
        ([], "not a JSON object"),
        ({}, "Step"),
        ({"Step": "deleteSecret", "SecretId": "s", "ClientRequestToken": "t"}, "is not one of"),
        ({"Step": "createSecret", "ClientRequestToken": "t"}, "SecretId"),
        ({"Step": "createSecret", "SecretId": "", "ClientRequestToken": "t"}, "SecretId"),
        ({"Step": "createSecret", "SecretId": "a\nb", "ClientRequestToken": "t"}, "control characters"),
        ({"Step": "createSecret", "SecretId": "s"}, "ClientRequestToken"),
        ({"Step": "createSecret", "SecretId": "s", "ClientRequestToken": "x" * 65}, "ClientRequestToken"),
        ({"Step": "createSecret", "SecretId": "s", "ClientRequestToken": "a b"}, "ClientRequestToken"),
        ({"Step": "createSecret", "SecretId": "s", "ClientRequestToken": "t", "RotationToken": 5}, "RotationToken"),
        (
            {"Step": "createSecret", "SecretId": "s", "ClientRequestToken": "t", "RotationToken": "short"},
            "RotationToken",
        ),
    ],
)
def test_event_parse_malformed_event_raises_clear_error(
    event: Any, message: str, make_rotator: Steps, call_counter: CallCounter
) -> None:
    with pytest.raises(InvalidEventError, match=message):
        make_rotator().handle(event)
    assert sum(call_counter.take().values()) == 0


def test_create_secret_twice_keeps_the_first_value(
    sm_client: Any, pending: tuple[str, str], make_rotator: Steps
) -> None:
    arn, token = pending
    rotator = make_rotator()
    run_steps(rotator, arn, token, "createSecret")
    first = value_at(sm_client, arn, "AWSPENDING")

    run_steps(rotator, arn, token, "createSecret")

    assert value_at(sm_client, arn, "AWSPENDING") == first
    assert [t for t, s in stages(sm_client, arn).items() if "AWSPENDING" in s] == [token]


def test_create_secret_honours_password_policy(sm_client: Any, pending: tuple[str, str], make_rotator: Steps) -> None:
    from rotation_core.settings import PasswordPolicy

    arn, token = pending
    policy = PasswordPolicy(length=48, exclude_punctuation=True, exclude_characters="abc")
    rotator = make_rotator(password_policy=policy)
    run_steps(rotator, arn, token, "createSecret")

    password = value_at(sm_client, arn, "AWSPENDING")["password"]
    assert len(password) == 48
    assert password.isalnum()
    assert not set("abc") & set(password)


def test_every_step_invoked_twice_ends_in_the_same_state(
    sm_client: Any, pending: tuple[str, str], make_rotator: Steps, database: FakeDatabase
) -> None:
    arn, token = pending
    rotator = make_rotator()
    for step in service.STEPS:
        run_steps(rotator, arn, token, step, step)
    emulator.clear_pending(arn)

    assert stages(sm_client, arn)[token] == ["AWSCURRENT"]
    assert database.password_of("app") == value_at(sm_client, arn, "AWSCURRENT")["password"]


def test_crash_after_password_change_then_retried_rotation_succeeds(
    sm_client: Any, pending: tuple[str, str], make_rotator: Steps, database: FakeDatabase
) -> None:
    arn, token = pending
    rotator = make_rotator()
    run_steps(rotator, arn, token, "createSecret", "setSecret")  # then the function dies
    assert database.password_of("app") == value_at(sm_client, arn, "AWSPENDING")["password"]

    service.rotate(arn, make_rotator().handle, token=token)  # the service retries the rotation

    assert database.password_of("app") == value_at(sm_client, arn, "AWSCURRENT")["password"]
    assert stages(sm_client, arn)[token] == ["AWSCURRENT"]


def test_set_secret_previous_password_still_set_logs_in_with_previous(
    sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps, database: FakeDatabase
) -> None:
    arn = make_secret()
    rotator = make_rotator()
    service.rotate(arn, rotator.handle)
    # The database still has the previous password (e.g. restored from a snapshot).
    database.users["app"].password = value_at(sm_client, arn, "AWSPREVIOUS")["password"]

    service.rotate(arn, rotator.handle)

    assert database.password_of("app") == value_at(sm_client, arn, "AWSCURRENT")["password"]


def test_set_secret_no_password_logs_in_raises_auth_failed_and_changes_nothing(
    sm_client: Any, pending: tuple[str, str], make_rotator: Steps, database: FakeDatabase
) -> None:
    arn, token = pending
    database.users["app"].password = "Changed-Out-Of-Band-1"

    with pytest.raises(TargetError, match="changed outside this rotation") as raised:
        run_steps(make_rotator(), arn, token, "createSecret", "setSecret")

    assert raised.value.category is Category.AUTH_FAILED
    assert database.changes == []


def test_set_secret_unreachable_database_raises_without_trying_other_passwords(
    pending: tuple[str, str], make_rotator: Steps, database: FakeDatabase
) -> None:
    arn, token = pending
    rotator = make_rotator()
    run_steps(rotator, arn, token, "createSecret")
    database.reachable = False

    with pytest.raises(TargetError) as raised:
        run_steps(rotator, arn, token, "setSecret")

    assert raised.value.category is Category.UNREACHABLE
    assert database.connections == ["app"]


def test_test_secret_before_set_secret_fails_clearly_and_changes_nothing(
    sm_client: Any, pending: tuple[str, str], make_rotator: Steps, database: FakeDatabase
) -> None:
    arn, token = pending
    rotator = make_rotator()
    run_steps(rotator, arn, token, "createSecret")
    before = stages(sm_client, arn)
    password = database.password_of("app")

    with pytest.raises(PendingNotReadyError, match="setSecret has not run"):
        run_steps(rotator, arn, token, "testSecret")

    assert stages(sm_client, arn) == before
    assert database.password_of("app") == password
    assert database.changes == []


def test_test_secret_on_bare_placeholder_tests_configuration_changes_nothing(
    sm_client: Any, pending: tuple[str, str], make_rotator: Steps, database: FakeDatabase
) -> None:
    """RotateImmediately=false: the service runs testSecret alone on a pending version with no value."""
    arn, token = pending
    before = stages(sm_client, arn)

    run_steps(make_rotator(), arn, token, "testSecret")

    assert database.connections == ["app"]  # the current credentials, nothing else
    assert database.changes == []
    assert stages(sm_client, arn) == before


def test_test_secret_probe_failure_raises_verification_error(
    pending: tuple[str, str], make_rotator: Steps, database: FakeDatabase
) -> None:
    arn, token = pending
    rotator = make_rotator()
    run_steps(rotator, arn, token, "createSecret", "setSecret")
    database.probe_fails = True

    with pytest.raises(TargetError) as raised:
        run_steps(rotator, arn, token, "testSecret")
    assert raised.value.category is Category.VERIFICATION


def test_finish_secret_twice_second_is_no_op(
    sm_client: Any, pending: tuple[str, str], make_rotator: Steps, call_counter: CallCounter
) -> None:
    arn, token = pending
    rotator = make_rotator()
    run_steps(rotator, arn, token, *service.STEPS)
    after_first = stages(sm_client, arn)
    call_counter.take()

    run_steps(rotator, arn, token, "finishSecret")
    calls = dict(call_counter.take())

    assert stages(sm_client, arn) == after_first
    assert calls == {"DescribeSecret": 1}


def test_strategy_comes_from_settings_not_from_secret_content(
    sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps, database: FakeDatabase
) -> None:
    arn = make_secret(with_master=True, rotation_strategy="alternating_users")

    service.rotate(arn, make_rotator(Strategy.SINGLE_USER).handle)

    assert value_at(sm_client, arn, "AWSCURRENT")["username"] == "app"
    assert database.changes == ["self:app"]


def test_rotation_alternating_three_times_alternates_users_and_keeps_previous_working(
    sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps, database: FakeDatabase
) -> None:
    arn = make_secret(with_master=True)
    rotator = make_rotator(Strategy.ALTERNATING_USERS)
    seen = []
    for _ in range(3):
        service.rotate(arn, rotator.handle)
        current = value_at(sm_client, arn, "AWSCURRENT")
        previous = value_at(sm_client, arn, "AWSPREVIOUS")
        seen.append(current["username"])
        assert database.password_of(current["username"]) == current["password"]
        assert database.password_of(previous["username"]) == previous["password"]
        assert current["masterarn"] == previous["masterarn"]
    assert seen == ["app_clone", "app", "app_clone"]
    assert database.users["app_clone"].acts_as == "app"
    assert database.changes == ["admin:app_clone", "admin:app", "admin:app_clone"]


def test_alternating_master_on_other_host_is_refused(
    sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps, database: FakeDatabase
) -> None:
    arn = make_secret(with_master=True)
    master_arn = value_at(sm_client, arn, "AWSCURRENT")["masterarn"]
    master = value_at(sm_client, master_arn, "AWSCURRENT")
    sm_client.put_secret_value(SecretId=master_arn, SecretString=json.dumps({**master, "host": "elsewhere.example"}))

    with pytest.raises(ConfusedDeputyError, match="master secret names another server"):
        service.rotate(arn, make_rotator(Strategy.ALTERNATING_USERS).handle)

    assert database.changes == []


def test_alternating_current_secret_must_log_in_before_master_is_used(
    make_secret: Callable[..., str], make_rotator: Steps, database: FakeDatabase
) -> None:
    arn = make_secret(with_master=True)
    database.users["app"].password = "Changed-Out-Of-Band-1"

    with pytest.raises(TargetError) as raised:
        service.rotate(arn, make_rotator(Strategy.ALTERNATING_USERS).handle)

    assert raised.value.category is Category.AUTH_FAILED
    assert "admin" not in database.connections
    assert database.changes == []


def test_alternating_without_masterarn_fails_in_create_secret(
    sm_client: Any, pending: tuple[str, str], make_rotator: Steps
) -> None:
    arn, token = pending

    with pytest.raises(SecretFormatError, match="masterarn"):
        run_steps(make_rotator(Strategy.ALTERNATING_USERS), arn, token, "createSecret")

    assert stages(sm_client, arn)[token] == ["AWSPENDING"]


def test_alternating_username_too_long_for_clone_fails_clearly(
    make_secret: Callable[..., str], make_rotator: Steps, database: FakeDatabase
) -> None:
    long_name = "u" * 58
    database.users[long_name] = database.users["app"]
    arn = make_secret(with_master=True, username=long_name)
    token = emulator.stage_pending_placeholder(arn)

    with pytest.raises(
        SecretFormatError, match="longer than FakeSQL's limit of 63 bytes; the user name must leave room"
    ):
        run_steps(make_rotator(Strategy.ALTERNATING_USERS), arn, token, "createSecret")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not json", "not a JSON object"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"engine": "postgres", "username": "app", "password": "Abcdef-12345"}), '"host"'),
        (json.dumps({"engine": "mysql", "host": "h", "username": "app", "password": "Abcdef-12345"}), "engine"),
        (json.dumps({"host": "h", "username": "app", "password": "Abcdef-12345", "port": "x"}), '"port"'),
        (json.dumps({"host": "h", "username": "app", "password": "Abcdef-12345", "ssl": "maybe"}), '"ssl"'),
        (json.dumps({"host": "h", "username": "app", "password": 12345}), '"password"'),
    ],
)
def test_create_secret_malformed_current_value_raises_without_storing(
    value: str, message: str, sm_client: Any, make_rotator: Steps
) -> None:
    arn = sm_client.create_secret(Name="bad", SecretString=value)["ARN"]
    emulator.enable_rotation(arn)
    token = emulator.stage_pending_placeholder(arn)

    with pytest.raises(SecretFormatError, match=message) as raised:
        run_steps(make_rotator(), arn, token, "createSecret")

    assert "Abcdef-12345" not in str(raised.value)
    assert stages(sm_client, arn)[token] == ["AWSPENDING"]


def test_create_secret_passes_rotation_token_to_put_secret_value(
    sm_client: Any, pending: tuple[str, str], make_rotator: Steps
) -> None:
    arn, token = pending
    sent: list[dict[str, Any]] = []
    sm_client.meta.events.register(
        "provide-client-params.secrets-manager.PutSecretValue", lambda params, **_: sent.append(dict(params))
    )

    make_rotator().handle({**service.event("createSecret", arn, token), "RotationToken": ROTATION_TOKEN})

    assert [params.get("RotationToken") for params in sent] == [ROTATION_TOKEN]


def test_create_secret_master_value_not_json_names_the_secret(
    sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps
) -> None:
    arn = make_secret(with_master=True)
    master_arn = value_at(sm_client, arn, "AWSCURRENT")["masterarn"]
    sm_client.put_secret_value(SecretId=master_arn, SecretString="not json")

    with pytest.raises(SecretFormatError, match="master"):
        service.rotate(arn, make_rotator(Strategy.ALTERNATING_USERS).handle)
