"""PostgreSQL rotations end to end: the real function module, a real server, Secrets Manager over HTTP."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from integration.postgres.logins import can_login, connect
from integration.support import Account, rotate, rotation_log, run_steps, secret_at, stages, unique
from rotation_core.errors import Category, PendingNotReadyError, RotationError, TargetError
from rotation_local import emulator, service
from rotation_local.postgres_server import PostgresServer


def test_postgres_server_log_has_verifier_never_plaintext(
    postgres_server: PostgresServer, sm_client: Any, account: Account, postgres_function: Any
) -> None:
    """log_statement=all is on: the ALTER ROLE is logged, with a SCRAM verifier instead of the password."""

    log = rotation_log(postgres_function(), postgres_server, sm_client, account.arn)

    statements = re.findall(rf'ALTER ROLE "{account.username}" PASSWORD \'([^\']*)\'', log)
    assert len(statements) == 1
    assert statements[0].startswith("SCRAM-SHA-256$4096:")


@pytest.mark.verifies("single_user")
def test_postgres_database_still_on_previous_password_rotation_recovers(
    postgres_server: PostgresServer, sm_client: Any, account: Account, postgres_function: Any, ca_bundle: Path
) -> None:
    app = postgres_function()
    rotate(app, account.arn)
    previous = secret_at(sm_client, account.arn, "AWSPREVIOUS")
    postgres_server.create_login(unique("unused"), "x" * 12)  # unrelated activity on the server
    from psycopg2 import extensions, sql

    conn = postgres_server.admin_connect()
    conn.autocommit = True
    verifier = extensions.encrypt_password(previous["password"], account.username, conn, "scram-sha-256")
    with conn.cursor() as cursor:  # e.g. the database was restored from a snapshot
        cursor.execute(sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(account.username)), (verifier,))
    conn.close()

    rotate(app, account.arn)

    assert can_login(postgres_server, ca_bundle, secret_at(sm_client, account.arn, "AWSCURRENT"))


def test_postgres_test_secret_before_set_secret_fails_clearly_changes_nothing(
    postgres_server: PostgresServer, sm_client: Any, account: Account, postgres_function: Any, ca_bundle: Path
) -> None:
    app = postgres_function()
    token = emulator.stage_pending_placeholder(account.arn)
    run_steps(app, account.arn, token, "createSecret")
    before = stages(sm_client, account.arn)

    with pytest.raises(PendingNotReadyError, match="setSecret has not run"):
        run_steps(app, account.arn, token, "testSecret")

    assert stages(sm_client, account.arn) == before
    assert can_login(postgres_server, ca_bundle, secret_at(sm_client, account.arn, "AWSCURRENT"))
    assert not can_login(postgres_server, ca_bundle, secret_at(sm_client, account.arn, "AWSPENDING"))


def test_postgres_rotate_immediately_false_test_secret_on_placeholder_tests_configuration_changes_nothing(
    sm_client: Any, account: Account, postgres_function: Any, caplog: pytest.LogCaptureFixture
) -> None:
    token = emulator.stage_pending_placeholder(account.arn)
    run_steps(postgres_function(), account.arn, token, "testSecret")
    assert stages(sm_client, account.arn)[token] == ["AWSPENDING"]
    assert "configuration test (RotateImmediately=false)" in caplog.text


def test_postgres_rotation_disabled_every_step_refused(
    sm_client: Any, postgres_server: PostgresServer, postgres_function: Any, leak_guard: Any
) -> None:
    username = unique("app")
    value = {"engine": "postgres", "host": "127.0.0.1", "port": postgres_server.port, "username": username,
             "password": "Not-Used-Password-1", "dbname": "postgres"}  # fmt: skip
    arn = sm_client.create_secret(Name=unique("disabled"), SecretString=json.dumps(value))["ARN"]
    token = emulator.stage_pending_placeholder(arn)
    for step in service.STEPS:
        with pytest.raises(RotationError, match="rotation is not enabled"):
            run_steps(postgres_function(), arn, token, step)
    assert stages(sm_client, arn)[token] == ["AWSPENDING"]


def test_postgres_probe_query_is_configurable_and_read_only(
    postgres_server: PostgresServer, sm_client: Any, account: Account, postgres_function: Any
) -> None:
    app = postgres_function(TEST_QUERY="CREATE TABLE probe_side_effect (id int)")
    token = emulator.stage_pending_placeholder(account.arn)
    run_steps(app, account.arn, token, "createSecret", "setSecret")

    with pytest.raises(TargetError, match="read-only transaction") as raised:
        run_steps(app, account.arn, token, "testSecret")
    assert raised.value.category is Category.VERIFICATION

    app = postgres_function(TEST_QUERY="SELECT count(*) FROM pg_catalog.pg_tables")
    run_steps(app, account.arn, token, "testSecret", "finishSecret")
    assert "AWSCURRENT" in stages(sm_client, account.arn)[token]


@pytest.mark.verifies("alternating_users")
def test_postgres_alternating_users_twice_both_users_work_and_clone_acts_as_original(
    postgres_server: PostgresServer, sm_client: Any, pg_account: Any, postgres_function: Any, ca_bundle: Path
) -> None:
    account = pg_account(with_master=True)
    app = postgres_function(ROTATION_STRATEGY="alternating_users")

    rotate(app, account.arn)
    clone = secret_at(sm_client, account.arn, "AWSCURRENT")
    original = secret_at(sm_client, account.arn, "AWSPREVIOUS")
    assert clone["username"] == f"{account.username}_clone"
    assert clone["masterarn"] == original["masterarn"]

    # The clone acts as the original: what it creates belongs to the original, which can use it.
    with connect(postgres_server, ca_bundle, clone) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT current_user, session_user")
        assert cursor.fetchone() == (account.username, clone["username"])
        cursor.execute("CREATE TABLE made_by_clone (id int)")
        cursor.execute("INSERT INTO made_by_clone VALUES (1)")
    with connect(postgres_server, ca_bundle, original) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'made_by_clone'")
        assert cursor.fetchone() == (account.username,)
        cursor.execute("INSERT INTO made_by_clone VALUES (2)")
        cursor.execute("DROP TABLE made_by_clone")

    rotate(app, account.arn)
    current = secret_at(sm_client, account.arn, "AWSCURRENT")
    previous = secret_at(sm_client, account.arn, "AWSPREVIOUS")
    assert current["username"] == account.username
    assert previous == clone
    assert can_login(postgres_server, ca_bundle, current)
    assert can_login(postgres_server, ca_bundle, previous)
    assert not can_login(postgres_server, ca_bundle, original)  # the original's password did change


def test_postgres_alternating_master_without_createrole_fails_clearly_and_changes_nothing(
    postgres_server: PostgresServer, sm_client: Any, pg_account: Any, postgres_function: Any, ca_bundle: Path
) -> None:
    account = pg_account(with_master=True, master_options="NOCREATEROLE")
    app = postgres_function(ROTATION_STRATEGY="alternating_users")

    with pytest.raises(TargetError, match="CREATEROLE") as raised:
        rotate(app, account.arn)

    assert raised.value.category is Category.PERMISSION
    clone = f"{account.username}_clone"
    assert postgres_server.query_one("SELECT count(*) FROM pg_roles WHERE rolname = %s", (clone,)) == 0
    assert can_login(postgres_server, ca_bundle, secret_at(sm_client, account.arn, "AWSCURRENT"))


def test_postgres_alternating_master_pointing_at_other_server_is_refused(
    postgres_server: PostgresServer, sm_client: Any, pg_account: Any, postgres_function: Any
) -> None:
    account = pg_account(with_master=True)
    master_arn = secret_at(sm_client, account.arn, "AWSCURRENT")["masterarn"]
    master = secret_at(sm_client, master_arn, "AWSCURRENT")
    sm_client.put_secret_value(SecretId=master_arn, SecretString=json.dumps({**master, "port": master["port"] + 1}))

    with pytest.raises(RotationError, match="master secret names another server"):
        rotate(postgres_function(ROTATION_STRATEGY="alternating_users"), account.arn)
