"""Single-user rotations on every database server kind: the real function module, a real server, the emulator.

Each test runs once per server kind of every engine (``db_kind``); the engines' own folders test what
only their engine does (statements in the server's log, host patterns, clones).
"""

from __future__ import annotations

from typing import Any

import pytest

from integration.support import DatabaseSetup, create_account, rotate, run_steps, secret_at, stages, unique
from rotation_local import emulator, service


def new_account(db: DatabaseSetup) -> str:
    return create_account(db.target, db.server, db.sm_client, db.leak_guard, username=unique("app")[:20]).arn


@pytest.mark.verifies("single_user", "tls_verify_full")
def test_database_single_user_rotation_new_password_works_old_refused(db: DatabaseSetup, db_function: Any) -> None:
    arn = new_account(db)
    old = secret_at(db.sm_client, arn, "AWSCURRENT")

    token = rotate(db_function(), arn)

    new = secret_at(db.sm_client, arn, "AWSCURRENT")
    assert stages(db.sm_client, arn)[token] == ["AWSCURRENT"]
    assert secret_at(db.sm_client, arn, "AWSPREVIOUS") == old
    assert new["password"] != old["password"]
    assert {k: v for k, v in new.items() if k != "password"} == {k: v for k, v in old.items() if k != "password"}
    assert db.logs_in(new)
    assert not db.logs_in(old)


@pytest.mark.verifies("single_user")
def test_database_every_step_invoked_twice_rotation_still_correct(db: DatabaseSetup, db_function: Any) -> None:
    arn = new_account(db)
    app = db_function()
    token = emulator.stage_pending_placeholder(arn)
    for step in service.STEPS:
        run_steps(app, arn, token, step, step)
    emulator.clear_pending(arn)

    assert stages(db.sm_client, arn)[token] == ["AWSCURRENT"]
    assert db.logs_in(secret_at(db.sm_client, arn, "AWSCURRENT"))
    assert not db.logs_in(secret_at(db.sm_client, arn, "AWSPREVIOUS"))


@pytest.mark.verifies("single_user")
def test_database_crash_after_password_change_then_retry_completes(db: DatabaseSetup, db_function: Any) -> None:
    arn = new_account(db)
    token = emulator.stage_pending_placeholder(arn)
    run_steps(db_function(), arn, token, "createSecret", "setSecret")  # then the container dies
    pending = secret_at(db.sm_client, arn, "AWSPENDING")
    assert db.logs_in(pending)
    assert not db.logs_in(secret_at(db.sm_client, arn, "AWSCURRENT"))

    rotate(db_function(), arn, token=token)  # the service retries in a new container

    assert secret_at(db.sm_client, arn, "AWSCURRENT") == pending
    assert db.logs_in(pending)
    assert [v for v, s in stages(db.sm_client, arn).items() if "AWSPENDING" in s] == []
