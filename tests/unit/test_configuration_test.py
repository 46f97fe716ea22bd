"""Secrets Manager's configuration test (RotateImmediately=false): testSecret alone on a transient version.

The version holds no value or a copy of AWSCURRENT; either way testSecret tests the setup, changes
nothing, says what it checked, and finishSecret never promotes such a version.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from rotation_core.errors import Category, ConfigurationTestError, PendingNotReadyError
from rotation_core.rotator import Rotator
from rotation_core.settings import Strategy
from rotation_local import emulator, service
from unit.conftest import CallCounter
from unit.fakes import FakeDatabase, stages, value_at

Steps = Callable[..., Rotator]
BOTH = pytest.mark.parametrize("copy_current", [False, True], ids=["no-value", "copy-of-current"])
STRATEGIES = pytest.mark.parametrize("strategy", list(Strategy))


def passwords(database: FakeDatabase) -> dict[str, str]:
    return {name: user.password for name, user in database.users.items()}


@BOTH
@STRATEGIES
def test_configuration_test_working_setup_passes_changes_nothing_logs_checks(
    copy_current: bool,
    strategy: Strategy,
    sm_client: Any,
    make_secret: Callable[..., str],
    make_rotator: Steps,
    database: FakeDatabase,
    caplog: pytest.LogCaptureFixture,
) -> None:
    arn = make_secret(with_master=True)
    before_passwords, before_versions = passwords(database), set(stages(sm_client, arn))
    rotator = make_rotator(strategy)

    service.configuration_test(arn, rotator.handle, copy_current=copy_current)

    assert passwords(database) == before_passwords
    assert database.changes == []
    assert set(stages(sm_client, arn)) == before_versions
    with_master = strategy in (Strategy.ALTERNATING_USERS, Strategy.DUAL_PASSWORD)  # the secret names one
    expected = ["app", "admin"] if with_master else ["app"]
    assert database.connections == expected  # current credentials, and the master's when the strategy uses it
    assert "configuration test (RotateImmediately=false)" in caplog.text
    if strategy is Strategy.SINGLE_USER and copy_current:
        # A new container cannot tell a copy from a new value without a third call; the copy's credentials
        # are the current ones, and the log says so.
        assert "the AWSPENDING credentials log in and pass the probe" in caplog.text
        assert "the credentials that just logged in are the current ones, so the setup works" in caplog.text
        return
    assert "checked: the current credentials log in and pass the probe" in caplog.text
    assert ("checked: the master credentials log in" in caplog.text) is with_master
    assert "configuration test passed; nothing was changed" in caplog.text


# (id, strategy, the secret has a masterarn, the user whose password is changed outside, what the error says,
#  its category, whether the master's login was tried)
BROKEN_SETUPS = [
    *(
        pytest.param(
            strategy, True, "app", r"configuration test .* failed, nothing was changed", Category.AUTH_FAILED, False,
            id=f"current-password-wrong-{strategy.value}",
        )
        for strategy in Strategy
    ),
    pytest.param(
        Strategy.ALTERNATING_USERS, True, "admin", "master secret", Category.AUTH_FAILED, True,
        id="master-password-wrong",
    ),
    pytest.param(
        Strategy.ALTERNATING_USERS, False, None, "masterarn", Category.SECRET_FORMAT, False,
        id="alternating-without-masterarn",
    ),
]  # fmt: skip


@BOTH
@pytest.mark.parametrize(
    ("strategy", "with_master", "changed_outside", "message", "category", "master_tried"), BROKEN_SETUPS
)
def test_configuration_test_broken_setup_fails_with_its_category_changes_nothing(
    copy_current: bool,
    strategy: Strategy,
    with_master: bool,
    changed_outside: str | None,
    message: str,
    category: Category,
    master_tried: bool,
    make_secret: Callable[..., str],
    make_rotator: Steps,
    database: FakeDatabase,
) -> None:
    """The master is used only once the caller's own secret logged in."""
    arn = make_secret(with_master=with_master)
    if changed_outside is not None:
        database.users[changed_outside].password = "Changed-Out-Of-Band-1"
    before = passwords(database)

    with pytest.raises(ConfigurationTestError, match=message) as raised:
        service.configuration_test(arn, make_rotator(strategy).handle, copy_current=copy_current)

    assert raised.value.category is category
    assert passwords(database) == before
    assert database.changes == []
    assert ("admin" in database.connections) is master_tried


@STRATEGIES
def test_test_secret_genuinely_new_value_not_logging_in_still_fails_as_pending_not_ready(
    strategy: Strategy, sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps, database: FakeDatabase
) -> None:
    arn = make_secret(with_master=True)
    token = emulator.stage_pending_placeholder(arn)
    rotator = make_rotator(strategy)
    rotator.handle(service.event("createSecret", arn, token))

    with pytest.raises(PendingNotReadyError, match="setSecret has not run") as raised:
        make_rotator(strategy).handle(service.event("testSecret", arn, token))

    assert not isinstance(raised.value, ConfigurationTestError)
    assert database.changes == []


@STRATEGIES
@pytest.mark.parametrize("tested_here", [True, False], ids=["after-testSecret-here", "alone-in-a-new-container"])
def test_finish_secret_on_copy_of_current_refuses_changes_nothing(
    strategy: Strategy, tested_here: bool, sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps
) -> None:
    """Whether or not this container ran testSecret (and saw AWSCURRENT), a copy of it is never promoted."""
    arn = make_secret(with_master=True)
    token = emulator.stage_transient_version(arn, copy_current=True)
    rotator = make_rotator(strategy)
    if tested_here:
        rotator.handle(service.event("testSecret", arn, token))
    before = stages(sm_client, arn)

    with pytest.raises(PendingNotReadyError, match="never promotes it"):
        rotator.handle(service.event("finishSecret", arn, token))

    assert stages(sm_client, arn) == before


@STRATEGIES
def test_finish_secret_on_no_value_version_refuses(
    strategy: Strategy, sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps
) -> None:
    arn = make_secret(with_master=True)
    token = emulator.stage_transient_version(arn, copy_current=False)
    rotator = make_rotator(strategy)
    rotator.handle(service.event("testSecret", arn, token))

    with pytest.raises(PendingNotReadyError, match="createSecret has not run"):
        rotator.handle(service.event("finishSecret", arn, token))

    assert stages(sm_client, arn)[token] == ["AWSPENDING"]


def test_configuration_test_single_user_copy_in_new_container_makes_two_calls(
    sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps, call_counter: CallCounter
) -> None:
    """The copy logs in like the current credentials it copies: no extra call to tell them apart."""
    arn = make_secret()
    token = emulator.stage_transient_version(arn, copy_current=True)
    call_counter.take()

    make_rotator().handle(service.event("testSecret", arn, token))

    assert dict(call_counter.take()) == {"DescribeSecret": 1, "GetSecretValue": 1}


def test_rotation_after_configuration_test_in_same_container_completes(
    sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps, database: FakeDatabase
) -> None:
    """A configuration test leaves nothing behind that would block the real rotation afterwards."""
    arn = make_secret(with_master=True)
    rotator = make_rotator(Strategy.ALTERNATING_USERS)
    service.configuration_test(arn, rotator.handle, copy_current=True)

    token = service.rotate(arn, rotator.handle)

    assert stages(sm_client, arn)[token] == ["AWSCURRENT"]
    current = value_at(sm_client, arn, "AWSCURRENT")
    assert database.password_of(current["username"]) == current["password"]


def test_test_secret_on_copy_with_mismatched_pending_json_is_not_a_copy(
    sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps, database: FakeDatabase
) -> None:
    """Only an exact copy counts: a pending value with one more key is a new value and must log in."""
    arn = make_secret()
    token = emulator.stage_pending_placeholder(arn)
    current = value_at(sm_client, arn, "AWSCURRENT")
    sm_client.put_secret_value(
        SecretId=arn,
        ClientRequestToken=token,
        SecretString=json.dumps({**current, "password": "Not-The-Database-One-1"}),
        VersionStages=["AWSPENDING"],
    )

    with pytest.raises(PendingNotReadyError, match="setSecret has not run"):
        make_rotator().handle(service.event("testSecret", arn, token))
