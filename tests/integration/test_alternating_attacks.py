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
from integration.preflight_support import failed_names, outcome, preflight
from integration.support import Account, rotate, secret_at, stages
from rotation_core.errors import Category, RotationError
from rotation_local import emulator, service
from rotation_local.targets import DatabaseTarget

# Alternating users only: the kinds whose engine offers it (not Valkey/Redis). Each test is an attack on the pair a
# secret's editor may aim the master at, so each counts for that claim of the verified-against table.
pytestmark = [pytest.mark.strategies("alternating_users"), pytest.mark.verifies("user_binding")]

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


def test_alternating_victim_clone_preflight_and_configuration_test_report_confused_deputy_change_nothing(
    lab: AttackLab, db_function: Any
) -> None:
    attacker = lab.attacker(superuser_master=True)
    victim = lab.application()
    fingerprint = lab.fingerprint(victim)
    planted = lab.plant_clone(attacker, victim)
    app = db_function(ROTATION_STRATEGY="alternating_users")

    report = preflight(app, attacker.arn)
    with pytest.raises(RotationError) as raised:
        service.configuration_test(attacker.arn, lambda event: app.lambda_handler(dict(event), None), copy_current=True)

    assert outcome(report, "alternate_pair") == ("failed", "confused_deputy")
    assert failed_names(report) == ["alternate_pair"]
    assert raised.value.category is Category.CONFUSED_DEPUTY
    assert lab.logs_in(victim)
    assert lab.logs_in(planted)
    assert lab.fingerprint(victim) == fingerprint


def test_alternating_privileged_pair_rotates_only_when_the_operator_lists_it(lab: AttackLab, db_function: Any) -> None:
    """A legitimate superuser-class application pair: refused by default, rotated once ALLOW_PRIVILEGED_USERS
    (the function's environment) lists it, both ways round; a planted clone of it stays refused."""
    owner = lab.privileged_application()
    fingerprint = lab.fingerprint(owner.login)

    with pytest.raises(RotationError) as raised:
        rotate(db_function(ROTATION_STRATEGY="alternating_users"), owner.account.arn)
    assert raised.value.category is Category.CONFUSED_DEPUTY
    assert "ALLOW_PRIVILEGED_USERS" in raised.value.message
    assert lab.fingerprint(owner.login) == fingerprint
    stale = [v for v, labels in stages(lab.sm_client, owner.account.arn).items() if labels == ["AWSPENDING"]]

    listed = f"someone, {owner.login.username}"
    allowed = db_function(ROTATION_STRATEGY="alternating_users", ALLOW_PRIVILEGED_USERS=listed)
    rotate(allowed, owner.account.arn, token=stale[0])  # the clone's turn (the retry of the refused rotation)
    rotate(allowed, owner.account.arn)  # the original's turn, as the clone

    current = secret_at(lab.sm_client, owner.account.arn, "AWSCURRENT")
    assert current["username"] == owner.login.username
    assert lab.target.logs_in(lab.server, current, lab.ca_bundle)
    assert lab.target.logs_in(lab.server, secret_at(lab.sm_client, owner.account.arn, "AWSPREVIOUS"), lab.ca_bundle)

    attacker = lab.attacker(superuser_master=True)
    victim = lab.privileged_application().login
    victim_fingerprint = lab.fingerprint(victim)
    planted = lab.plant_clone(attacker, victim)
    app = db_function(ROTATION_STRATEGY="alternating_users", ALLOW_PRIVILEGED_USERS=victim.username)
    assert_refused_and_unchanged(lab, app, attacker, victim, planted, victim_fingerprint)


def test_alternating_master_listed_as_privileged_user_still_refused(lab: AttackLab, db_function: Any) -> None:
    attacker = lab.attacker()
    victim = lab.master_login(attacker)
    fingerprint = lab.fingerprint(victim)
    planted = lab.plant_clone(attacker, victim)
    app = db_function(ROTATION_STRATEGY="alternating_users", ALLOW_PRIVILEGED_USERS=victim.username)

    error = assert_refused_and_unchanged(lab, app, attacker, victim, planted, fingerprint)

    assert "the master's own" in error.message


def test_alternating_master_secret_rotated_by_this_function_refused_master_unchanged(
    lab: AttackLab, db_function: Any
) -> None:
    """Issue #24 section 3: a "master" secret that is itself rotated by this function (another team's rotated
    secret) is refused before its value is read; nobody's password changes."""
    account = lab.attacker(superuser_master=True)
    assert account.master_arn is not None
    emulator.enable_rotation(account.master_arn)  # the same function as the one rotating the secret
    master = lab.master_login(account)
    fingerprint = lab.fingerprint(master)
    before = secret_at(lab.sm_client, account.arn, "AWSCURRENT")

    with pytest.raises(RotationError) as raised:
        rotate(db_function(ROTATION_STRATEGY="alternating_users"), account.arn)

    assert raised.value.category is Category.CONFUSED_DEPUTY
    assert "is itself rotated by this function" in raised.value.message
    assert lab.fingerprint(master) == fingerprint
    assert secret_at(lab.sm_client, account.arn, "AWSCURRENT") == before
    assert lab.target.logs_in(lab.server, before, lab.ca_bundle)
    alternate = {**before, "username": before["username"] + "_clone"}
    assert not lab.target.logs_in(lab.server, alternate, lab.ca_bundle)  # never created
