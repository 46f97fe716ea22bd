"""The ``<victim>_clone`` attack on alternating users, through the real handler, on every server kind.

An application allowed to create logins plants ``<victim>_clone`` with a password it knows and names it
in its own rotated secret (issue #24, section 2). Every rotation of that secret must stop with
``confused_deputy`` before the master changes anything: the victim's password still works, nothing about
it changed on the server, the attacker's secret still holds only what the attacker wrote, and no pending
value that logs in as the victim was stored. The victims: the master itself, a superuser, another team's
application and, on PostgreSQL 16 and later, an application the master administers. The leak guard
watches every test (the server's statement log included).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from helpers import LeakGuard
from integration.alternating_attacks import AttackLab, Login
from integration.support import Account, rotate, secret_at, stages
from rotation_core.errors import Category, RotationError
from rotation_local.targets import DatabaseTarget

# Each victim, and what the refusal says about it.
REASONS = {
    "master": "the master's own",
    "superuser": "holds superuser-class rights",
    "other_application": "the server does not show it as",
}
VICTIMS = pytest.mark.parametrize("victim_kind", list(REASONS))


@pytest.fixture
def lab(db_target: DatabaseTarget, db_server: Any, sm_client: Any, leak_guard: LeakGuard, ca_bundle: Path) -> AttackLab:
    return AttackLab(db_target, db_server, sm_client, leak_guard, ca_bundle)


def victim_of(lab: AttackLab, kind: str, attacker: Account) -> Login:
    if kind == "master":
        return lab.master_login(attacker)
    if kind == "superuser":
        return lab.superuser()
    return lab.application()


def assert_refused_and_unchanged(
    lab: AttackLab, app: Any, attacker: Account, victim: Login, planted: Login, fingerprint: str
) -> RotationError:
    planted_secret = secret_at(lab.sm_client, attacker.arn, "AWSCURRENT")

    with pytest.raises(RotationError) as raised:
        rotate(app, attacker.arn)

    assert raised.value.category is Category.CONFUSED_DEPUTY
    assert lab.logs_in(victim)
    assert lab.fingerprint(victim) == fingerprint
    assert secret_at(lab.sm_client, attacker.arn, "AWSCURRENT") == planted_secret
    pending = [v for v, labels in stages(lab.sm_client, attacker.arn).items() if labels == ["AWSPENDING"]]
    for version in pending:  # createSecret may have stored a new password: it was never set on the victim
        value = lab.sm_client.get_secret_value(SecretId=attacker.arn, VersionId=version)["SecretString"]
        assert not lab.target.logs_in(lab.server, json.loads(value), lab.ca_bundle)
    assert lab.logs_in(planted)
    return raised.value


@VICTIMS
def test_alternating_victim_clone_planted_by_application_refused_victim_unchanged(
    lab: AttackLab, db_function: Any, victim_kind: str
) -> None:
    attacker = lab.attacker(superuser_master=victim_kind != "master")
    victim = victim_of(lab, victim_kind, attacker)
    fingerprint = lab.fingerprint(victim)
    planted = lab.plant_clone(attacker, victim)
    app = db_function(ROTATION_STRATEGY="alternating_users")

    error = assert_refused_and_unchanged(lab, app, attacker, victim, planted, fingerprint)

    assert victim.username in error.message
    assert REASONS[victim_kind] in error.message


@pytest.mark.servers("postgres-17", "postgres-18")
def test_alternating_victim_clone_of_role_master_administers_refused_victim_unchanged(
    lab: AttackLab, db_function: Any
) -> None:
    attacker = lab.attacker()
    assert attacker.master_user is not None
    victim = lab.application(administered_by=attacker.master_user)  # the master may change its password
    fingerprint = lab.fingerprint(victim)
    planted = lab.plant_clone(attacker, victim)
    app = db_function(ROTATION_STRATEGY="alternating_users")

    assert_refused_and_unchanged(lab, app, attacker, victim, planted, fingerprint)
