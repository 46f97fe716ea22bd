"""Switching between AWS's rotation functions and ours in the middle of a rotation, both ways, no lockout.

A rotation one function left half-done (AWSPENDING stored by its createSecret, maybe the password already
set by its setSecret) is retried by Secrets Manager with the same token, now reaching the other function.
AWS's side is emulated by ``integration.aws_functions`` (its documented behaviour, not its code). Runs on
every selected PostgreSQL and MariaDB kind (the emulation sends MariaDB's password hashes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import LeakGuard
from integration.aws_functions import AwsRotationFunction
from integration.support import Account, DatabaseSetup, create_account, rotate, secret_at, stages, unique
from rotation_local import emulator, service
from rotation_local.invoke import load_function
from rotation_local.targets import DatabaseTarget

pytestmark = pytest.mark.servers("postgres-*", "mariadb-*")

STRATEGIES = pytest.mark.parametrize("strategy", ["single_user", "alternating_users"])
HALF_DONE = pytest.mark.parametrize(
    "done", [("createSecret",), ("createSecret", "setSecret")], ids=["create", "create+set"]
)


@pytest.fixture
def setup(
    db_target: DatabaseTarget, db_server: Any, sm_env: dict[str, str], sm_client: Any, leak_guard: LeakGuard,
    ca_bundle: Path, monkeypatch: pytest.MonkeyPatch,
) -> Any:  # fmt: skip
    def make(strategy: str) -> tuple[Account, Any, AwsRotationFunction]:
        monkeypatch.setenv("DB_CA_BUNDLE", str(ca_bundle))
        monkeypatch.setenv("ROTATION_STRATEGY", strategy)
        account = create_account(
            db_target, db_server, sm_client, leak_guard,
            username=unique("app")[:20], master_username=unique("master")[:20], with_master=True,
        )  # fmt: skip
        aws = AwsRotationFunction(
            db_target, db_server, sm_client, ca_bundle, leak_guard, alternating=strategy == "alternating_users"
        )
        return account, load_function(db_target.engine), aws

    return make


def assert_no_lockout(db_target: DatabaseTarget, db_server: Any, sm_client: Any, arn: str, token: str, ca: Path,
                      strategy: str) -> None:  # fmt: skip
    assert stages(sm_client, arn)[token] == ["AWSCURRENT"]
    assert db_target.logs_in(db_server, secret_at(sm_client, arn, "AWSCURRENT"), ca)
    if strategy == "alternating_users":  # the user clients still hold keeps working
        assert db_target.logs_in(db_server, secret_at(sm_client, arn, "AWSPREVIOUS"), ca)
    assert not [v for v, s in stages(sm_client, arn).items() if "AWSPENDING" in s and "AWSCURRENT" not in s]


@HALF_DONE
@STRATEGIES
def test_switch_from_aws_half_done_rotation_finished_by_ours_with_same_token(
    db: DatabaseSetup, strategy: str, done: tuple[str, ...], setup: Any
) -> None:
    account, ours, aws = setup(strategy)
    if strategy == "alternating_users":
        aws.rotate(account.arn)  # a full AWS rotation first: the clone exists, made the AWS way
    token = emulator.stage_pending_placeholder(account.arn)
    pending_by_aws = None
    for step in done:
        getattr(aws, {"createSecret": "create_secret", "setSecret": "set_secret"}[step])(account.arn, token)
        pending_by_aws = secret_at(db.sm_client, account.arn, "AWSPENDING")

    rotate(ours, account.arn, token=token)  # Secrets Manager retries the rotation, now with our function

    assert secret_at(db.sm_client, account.arn, "AWSCURRENT") == pending_by_aws  # AWS's value was kept and finished
    assert_no_lockout(db.target, db.server, db.sm_client, account.arn, token, db.ca_bundle, strategy)


@HALF_DONE
@STRATEGIES
def test_switch_back_to_aws_half_done_by_ours_finished_by_aws_with_same_token(
    db: DatabaseSetup, strategy: str, done: tuple[str, ...], setup: Any
) -> None:
    account, ours, aws = setup(strategy)
    rotate(ours, account.arn)  # a full rotation of ours first (alternating: the clone exists, made our way)
    token = emulator.stage_pending_placeholder(account.arn)
    for step in done:
        ours.lambda_handler(service.event(step, account.arn, token), None)
    pending_by_us = secret_at(db.sm_client, account.arn, "AWSPENDING")

    aws.rotate(account.arn, token)  # the retry reaches AWS's function again

    assert secret_at(db.sm_client, account.arn, "AWSCURRENT") == pending_by_us
    assert_no_lockout(db.target, db.server, db.sm_client, account.arn, token, db.ca_bundle, strategy)
    rotate(ours, account.arn)  # and ours takes over again without trouble
    assert db.logs_in(secret_at(db.sm_client, account.arn, "AWSCURRENT"))
