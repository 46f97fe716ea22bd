"""The alternating-users strategy and the engine's pair proof, on the fake database (no server).

The strategy hands the engine the operator's opt-in (``ALLOW_PRIVILEGED_USERS``, from the environment only),
the engine proves the pair before it changes anything, and the same proof runs in the configuration test
and the preflight. What the real servers prove is tested in ``tests/integration`` (the attack tests).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from helpers import lambda_context
from rotation_core.errors import Category, ConfigurationTestError, ConfusedDeputyError
from rotation_core.handler import RotationHandler
from rotation_core.rotator import Rotator
from rotation_core.settings import Strategy
from rotation_local import emulator, service
from unit.fakes import FakeDatabase, FakeUser, stages, value_at

ALTERNATING = Strategy.ALTERNATING_USERS


def test_alternating_privileged_original_refused_nothing_changed_message_says_how_to_recover(
    sm_client: Any, make_secret: Callable[..., str], make_rotator: Callable[..., Rotator], database: FakeDatabase
) -> None:
    database.privileged.add("app")
    arn = make_secret(with_master=True)
    token = emulator.stage_pending_placeholder(arn)
    rotator = make_rotator(ALTERNATING)
    rotator.handle(service.event("createSecret", arn, token))

    with pytest.raises(ConfusedDeputyError) as raised:
        rotator.handle(service.event("setSecret", arn, token))

    assert raised.value.category is Category.CONFUSED_DEPUTY
    assert database.changes == []
    assert "app_clone" not in database.users
    assert f"--remove-from-version-id {token}" in raised.value.message  # the stale AWSPENDING, named
    assert stages(sm_client, arn)[token] == ["AWSPENDING"]


def test_alternating_privileged_original_listed_by_the_operator_rotates(
    sm_client: Any, make_secret: Callable[..., str], make_rotator: Callable[..., Rotator], database: FakeDatabase
) -> None:
    database.privileged.add("app")
    arn = make_secret(with_master=True)

    service.rotate(arn, make_rotator(ALTERNATING, allow_privileged_users=frozenset({"app"})).handle)

    assert value_at(sm_client, arn, "AWSCURRENT")["username"] == "app_clone"
    assert database.changes == ["admin:app_clone"]


def test_alternating_planted_alternate_refused_by_set_configuration_test_and_preflight(
    sm_client: Any,
    make_secret: Callable[..., str],
    make_rotator: Callable[..., Rotator],
    make_handler: Callable[..., RotationHandler],
    database: FakeDatabase,
) -> None:
    # Made by someone else (the fake records only this function's alternates), named by an edited secret.
    database.users["app_clone"] = FakeUser(password="Planted-Password-0001")
    arn = make_secret(with_master=True, username="app_clone", password="Planted-Password-0001")
    rotator = make_rotator(ALTERNATING)

    with pytest.raises(ConfigurationTestError) as configuration:
        service.configuration_test(arn, rotator.handle, copy_current=False)
    handler = make_handler(ROTATION_STRATEGY="alternating_users")
    report = handler({"Preflight": {"SecretId": arn}}, lambda_context())
    with pytest.raises(ConfusedDeputyError):
        service.rotate(arn, rotator.handle)

    assert configuration.value.category is Category.CONFUSED_DEPUTY
    assert [c["name"] for c in report["checks"] if c["status"] == "failed"] == ["alternate_pair"]
    assert next(c for c in report["checks"] if c["name"] == "alternate_pair")["category"] == "confused_deputy"
    assert database.changes == []
    assert database.password_of("app") == "Initial-Password-0001"
    assert (
        json.loads(sm_client.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])["username"]
        == "app_clone"
    )
