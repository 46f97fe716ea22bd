"""Secrets Manager's configuration test (RotateImmediately=false) on every database function and strategy.

The service stages a transient AWSPENDING version holding no value or a copy of AWSCURRENT, runs
testSecret alone and removes the version. Each test runs on every selected server kind of every engine and every
registry strategy the kind supports (``db_strategy``; dual passwords with a master here), through the real function
module and the emulator over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from helpers import LeakGuard
from integration.support import Account, DatabaseSetup, create_account, secret_at, stages, unique
from rotation_core.errors import Category, ConfigurationTestError, PendingNotReadyError, RotationError
from rotation_local import emulator, service
from rotation_local.invoke import load_function
from rotation_local.server_kinds import ServerKind
from rotation_local.targets import DatabaseTarget

BOTH = pytest.mark.parametrize("copy_current", [False, True], ids=["no-value", "copy-of-current"])


@pytest.fixture
def database_function(
    sm_env: dict[str, str], db_target: DatabaseTarget, db_kind: ServerKind
) -> Callable[..., ModuleType]:
    """A fresh copy of the engine's function; ``account`` set its environment for the strategy."""

    def load(strategy: str) -> ModuleType:
        assert strategy in {s.value for s in db_target.strategies(db_kind)}
        return load_function(db_target.engine)

    return load


@pytest.fixture
def account(
    db_target: DatabaseTarget, db_server: Any, sm_client: Any, leak_guard: LeakGuard, ca_bundle: Path,
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest,
) -> Account:  # fmt: skip
    """A login with a master; the function's environment is set for the test's strategy."""
    strategy = request.getfixturevalue("db_strategy")
    monkeypatch.setenv("DB_CA_BUNDLE", str(ca_bundle))
    monkeypatch.setenv("ROTATION_STRATEGY", strategy)
    return create_account(
        db_target, db_server, sm_client, leak_guard,
        username=unique("app")[:20], master_username=unique("master")[:20], with_master=True,
    )  # fmt: skip


def invoker(app: ModuleType) -> Callable[[Any], None]:
    return lambda event: app.lambda_handler(dict(event), None)


def state(db: DatabaseSetup, account: Account) -> Any:
    """The secret's labels and which of the two users log in."""
    current = secret_at(db.sm_client, account.arn, "AWSCURRENT")
    clone = {**current, "username": account.username + "_clone"}
    return stages(db.sm_client, account.arn), db.logs_in(current), db.logs_in(clone)


@BOTH
def test_configuration_test_working_setup_passes_changes_nothing_says_what_it_checked(
    db: DatabaseSetup,
    db_strategy: str,
    copy_current: bool,
    account: Account,
    database_function: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = state(db, account)

    service.configuration_test(account.arn, invoker(database_function(db_strategy)), copy_current=copy_current)

    assert state(db, account) == before
    assert before[1:] == (True, False)  # the current user logs in, no clone was ever made
    assert "this is Secrets Manager's configuration test (RotateImmediately=false)" in caplog.text
    uses_master = db_strategy in ("alternating_users", "dual_password") and account.master_arn is not None
    if uses_master:  # the strategy uses the master the secret names: both are checked
        assert "checked: the current credentials log in and pass the probe" in caplog.text
        assert "checked: the master credentials log in" in caplog.text
    elif db_strategy == "dual_password":  # a user a service manages: the service, not a master, sets the passwords
        assert "checked: the current credentials log in and pass the probe" in caplog.text
    elif copy_current:  # single user, a new container: the copy logged in, and those are the current credentials
        assert "the credentials that just logged in are the current ones, so the setup works" in caplog.text
    else:
        assert "checked: the current credentials log in and pass the probe" in caplog.text
    if db_strategy == "dual_password":
        who = "the master" if account.master_arn is not None else "the service"
        assert f"checked: the server keeps dual passwords and {who} may set them" in caplog.text


@BOTH
def test_configuration_test_current_password_changed_out_of_band_fails_auth_failed_changes_nothing(
    db: DatabaseSetup, db_strategy: str, copy_current: bool, account: Account, database_function: Any
) -> None:
    current = secret_at(db.sm_client, account.arn, "AWSCURRENT")
    other = "Out-Of-Band-" + unique("pw")
    db.leak_guard.add(other)
    db.sm_client.put_secret_value(SecretId=account.arn, SecretString=json.dumps({**current, "password": other}))
    before = state(db, account)

    with pytest.raises(RotationError) as raised:
        service.configuration_test(account.arn, invoker(database_function(db_strategy)), copy_current=copy_current)

    assert raised.value.category is Category.AUTH_FAILED
    assert isinstance(raised.value, ConfigurationTestError)
    assert "configuration test" in raised.value.message
    assert state(db, account) == before
    assert db.logs_in(current)  # the database still has the real password


@BOTH
@pytest.mark.strategies("alternating_users")
def test_configuration_test_alternating_master_password_wrong_fails_naming_master(
    db: DatabaseSetup, db_strategy: str, copy_current: bool, account: Account, database_function: Any
) -> None:
    assert account.master_arn is not None
    master = secret_at(db.sm_client, account.master_arn, "AWSCURRENT")
    wrong = "Wrong-Master-" + unique("pw")
    db.leak_guard.add(wrong)
    db.sm_client.put_secret_value(SecretId=account.master_arn, SecretString=json.dumps({**master, "password": wrong}))
    before = state(db, account)

    with pytest.raises(ConfigurationTestError, match="master secret") as raised:
        service.configuration_test(account.arn, invoker(database_function(db_strategy)), copy_current=copy_current)

    assert raised.value.category is Category.AUTH_FAILED
    assert state(db, account) == before


def test_configuration_test_genuinely_new_value_that_does_not_log_in_still_fails(
    db: DatabaseSetup, db_strategy: str, account: Account, database_function: Any
) -> None:
    app = database_function(db_strategy)
    token = emulator.stage_pending_placeholder(account.arn)
    app.lambda_handler(service.event("createSecret", account.arn, token), None)

    with pytest.raises(PendingNotReadyError, match="setSecret has not run") as raised:
        app.lambda_handler(service.event("testSecret", account.arn, token), None)

    assert not isinstance(raised.value, ConfigurationTestError)
    assert stages(db.sm_client, account.arn)[token] == ["AWSPENDING"]


@BOTH
def test_finish_secret_after_configuration_test_never_promotes(
    db: DatabaseSetup, db_strategy: str, copy_current: bool, account: Account, database_function: Any
) -> None:
    app = database_function(db_strategy)
    token = emulator.stage_transient_version(account.arn, copy_current=copy_current)
    app.lambda_handler(service.event("testSecret", account.arn, token), None)
    before = stages(db.sm_client, account.arn)

    with pytest.raises(PendingNotReadyError, match=r"never promotes it|createSecret has not run"):
        app.lambda_handler(service.event("finishSecret", account.arn, token), None)

    assert stages(db.sm_client, account.arn) == before
    emulator.remove_version(account.arn, token)
