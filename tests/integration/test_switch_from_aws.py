"""Switching between AWS's rotation functions and ours in the middle of a rotation, both ways, no lockout.

A rotation one function left half-done (AWSPENDING stored by its createSecret, maybe the password already
set by its setSecret) is retried by Secrets Manager with the same token, now reaching the other function.
AWS's side is emulated by ``integration.aws_functions`` (its documented behaviour, not its code). Runs on
every selected PostgreSQL and MariaDB kind (the emulation sends MariaDB's password hashes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from integration.aws_functions import AwsRotationFunction
from integration.support import Account, DatabaseSetup, create_account, rotate, secret_at, stages, unique
from rotation_local import emulator, service
from rotation_local.invoke import load_function

pytestmark = pytest.mark.servers("postgres-*", "mariadb-*")

HALF_DONE = pytest.mark.parametrize(
    "done", [("createSecret",), ("createSecret", "setSecret")], ids=["create", "create+set"]
)


@dataclass(frozen=True)
class Switch:
    """A secret both functions rotate: ours (loaded with ``strategy``) and AWS's emulated one."""

    account: Account
    strategy: str
    ours: Any
    aws: AwsRotationFunction

    def assert_no_lockout(self, db: DatabaseSetup, token: str) -> None:
        arn = self.account.arn
        assert stages(db.sm_client, arn)[token] == ["AWSCURRENT"]
        assert db.logs_in(secret_at(db.sm_client, arn, "AWSCURRENT"))
        if self.strategy == "alternating_users":  # the user clients still hold keeps working
            assert db.logs_in(secret_at(db.sm_client, arn, "AWSPREVIOUS"))
        assert not [v for v, s in stages(db.sm_client, arn).items() if "AWSPENDING" in s and "AWSCURRENT" not in s]


@pytest.fixture(params=["single_user", "alternating_users"])
def switch(
    request: pytest.FixtureRequest, db: DatabaseSetup, sm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Switch:
    strategy = request.param
    monkeypatch.setenv("DB_CA_BUNDLE", str(db.ca_bundle))
    monkeypatch.setenv("ROTATION_STRATEGY", strategy)
    account = create_account(
        db.target, db.server, db.sm_client, db.leak_guard,
        username=unique("app")[:20], master_username=unique("master")[:20], with_master=True,
    )  # fmt: skip
    aws = AwsRotationFunction(
        db.target, db.server, db.sm_client, db.ca_bundle, db.leak_guard, alternating=strategy == "alternating_users"
    )
    return Switch(account, strategy, load_function(db.target.engine), aws)


@HALF_DONE
def test_switch_from_aws_half_done_rotation_finished_by_ours_with_same_token(
    db: DatabaseSetup, switch: Switch, done: tuple[str, ...]
) -> None:
    account, ours, aws = switch.account, switch.ours, switch.aws
    if switch.strategy == "alternating_users":
        aws.rotate(account.arn)  # a full AWS rotation first: the clone exists, made the AWS way
    token = emulator.stage_pending_placeholder(account.arn)
    pending_by_aws = None
    for step in done:
        getattr(aws, {"createSecret": "create_secret", "setSecret": "set_secret"}[step])(account.arn, token)
        pending_by_aws = secret_at(db.sm_client, account.arn, "AWSPENDING")

    rotate(ours, account.arn, token=token)  # Secrets Manager retries the rotation, now with our function

    assert secret_at(db.sm_client, account.arn, "AWSCURRENT") == pending_by_aws  # AWS's value was kept and finished
    switch.assert_no_lockout(db, token)


@HALF_DONE
def test_switch_back_to_aws_half_done_by_ours_finished_by_aws_with_same_token(
    db: DatabaseSetup, switch: Switch, done: tuple[str, ...]
) -> None:
    account, ours, aws = switch.account, switch.ours, switch.aws
    rotate(ours, account.arn)  # a full rotation of ours first (alternating: the clone exists, made our way)
    token = emulator.stage_pending_placeholder(account.arn)
    for step in done:
        ours.lambda_handler(service.event(step, account.arn, token), None)
    pending_by_us = secret_at(db.sm_client, account.arn, "AWSPENDING")

    aws.rotate(account.arn, token)  # the retry reaches AWS's function again

    assert secret_at(db.sm_client, account.arn, "AWSCURRENT") == pending_by_us
    switch.assert_no_lockout(db, token)
    rotate(ours, account.arn)  # and ours takes over again without trouble
    assert db.logs_in(secret_at(db.sm_client, account.arn, "AWSCURRENT"))
