"""Rotations of one user's password on every database server kind: the real function module, a real server, the
emulator.

Each test runs once per server kind of every engine and per strategy that changes one user's password
(``db_strategy``: single user everywhere, dual passwords where the kind has them, MySQL 9.7); the engines' own
folders test what only their engine does (statements in the server's log, host patterns, clones).
"""

from __future__ import annotations

from typing import Any

import pytest

from integration.support import DatabaseSetup, create_account, rotate, run_steps, secret_at, stages, unique
from rotation_core.settings import Strategy
from rotation_local import emulator, service

ONE_USER = pytest.mark.strategies("single_user", "dual_password")
KEEPS_PREVIOUS = {"single_user": False, "dual_password": True}  # does the replaced password still log in?


def new_account(db: DatabaseSetup, strategy: str) -> str:
    return create_account(
        db.target, db.server, db.sm_client, db.leak_guard, username=unique("app")[:20],
        login_options=db.target.login_options(Strategy(strategy)),
    ).arn  # fmt: skip


@ONE_USER
@pytest.mark.verifies("tls_verify_full")
def test_database_one_user_rotation_new_password_works_old_per_strategy(
    db: DatabaseSetup, db_strategy: str, db_function: Any
) -> None:
    arn = new_account(db, db_strategy)
    old = secret_at(db.sm_client, arn, "AWSCURRENT")

    token = rotate(db_function(ROTATION_STRATEGY=db_strategy), arn)

    new = secret_at(db.sm_client, arn, "AWSCURRENT")
    assert stages(db.sm_client, arn)[token] == ["AWSCURRENT"]
    assert secret_at(db.sm_client, arn, "AWSPREVIOUS") == old
    assert new["password"] != old["password"]
    assert {k: v for k, v in new.items() if k != "password"} == {k: v for k, v in old.items() if k != "password"}
    assert db.logs_in(new)
    assert db.logs_in(old) is KEEPS_PREVIOUS[db_strategy]


@ONE_USER
def test_database_every_step_invoked_twice_rotation_still_correct(
    db: DatabaseSetup, db_strategy: str, db_function: Any
) -> None:
    arn = new_account(db, db_strategy)
    app = db_function(ROTATION_STRATEGY=db_strategy)
    token = emulator.stage_pending_placeholder(arn)
    for step in service.STEPS:
        run_steps(app, arn, token, step, step)
    emulator.clear_pending(arn)

    assert stages(db.sm_client, arn)[token] == ["AWSCURRENT"]
    assert db.logs_in(secret_at(db.sm_client, arn, "AWSCURRENT"))
    assert db.logs_in(secret_at(db.sm_client, arn, "AWSPREVIOUS")) is KEEPS_PREVIOUS[db_strategy]


@ONE_USER
def test_database_crash_after_password_change_then_retry_completes(
    db: DatabaseSetup, db_strategy: str, db_function: Any
) -> None:
    arn = new_account(db, db_strategy)
    token = emulator.stage_pending_placeholder(arn)
    run_steps(db_function(ROTATION_STRATEGY=db_strategy), arn, token, "createSecret", "setSecret")  # then it dies
    pending = secret_at(db.sm_client, arn, "AWSPENDING")
    assert db.logs_in(pending)
    assert db.logs_in(secret_at(db.sm_client, arn, "AWSCURRENT")) is KEEPS_PREVIOUS[db_strategy]

    rotate(db_function(ROTATION_STRATEGY=db_strategy), arn, token=token)  # the service retries in a new container

    assert secret_at(db.sm_client, arn, "AWSCURRENT") == pending
    assert db.logs_in(pending)
    assert [v for v, s in stages(db.sm_client, arn).items() if "AWSPENDING" in s] == []
