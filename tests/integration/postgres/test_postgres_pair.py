"""What PostgreSQL proves about a pair before the master acts (engines/postgres/pair.py), case by case.

The alternate must be a member of the original through a grant the master (or a superuser) made, and a
member of nothing the original is not; neither user may hold superuser-class rights (attributes or a
privileged role, through any membership) unless ``ALLOW_PRIVILEGED_USERS`` lists the original. Each
refusal is ``confused_deputy``, changes nothing, and the step after the recovery it names passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg2
import pytest
from psycopg2 import sql

from helpers import LeakGuard
from integration.alternating_attacks import AttackLab, refused
from integration.postgres.logins import connect, server_major
from integration.support import pending_token, rotate, secret_at
from rotation_local.postgres_server import PostgresServer
from rotation_local.targets.postgres import TARGET


@pytest.fixture
def lab(postgres_server: PostgresServer, sm_client: Any, leak_guard: LeakGuard, ca_bundle: Path) -> AttackLab:
    return AttackLab(TARGET, postgres_server, sm_client, leak_guard, ca_bundle)


def run(server: PostgresServer, statement: str, *names: str) -> None:
    server.execute(sql.SQL(statement).format(*(sql.Identifier(name) for name in names)))


def test_postgres_pair_membership_granted_by_the_planting_role_refused(
    lab: AttackLab, postgres_server: PostgresServer, postgres_function: Any, ca_bundle: Path
) -> None:
    """PostgreSQL 15 lets a CREATEROLE role grant membership in any non-superuser role, so the planted clone
    can be made a member of its victim: the grant's recorded grantor is the planting role, not the master,
    and the pair is refused. From 16 on the server refuses that grant itself (ADMIN OPTION needed)."""
    attacker = lab.attacker(superuser_master=True)
    own = lab.login_of(attacker)
    victim = lab.application()
    planted = lab.plant_clone(attacker, victim)
    fingerprint = lab.fingerprint(victim)
    grant = sql.SQL("GRANT {} TO {}").format(sql.Identifier(victim.username), sql.Identifier(planted.username))
    with connect(postgres_server, ca_bundle, own.secret(TARGET, postgres_server)) as conn, conn.cursor() as cursor:
        if server_major(postgres_server) >= 16:
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cursor.execute(grant)
        else:
            cursor.execute(grant)

    error = refused(postgres_function(ROTATION_STRATEGY="alternating_users"), attacker)

    if server_major(postgres_server) < 16:
        assert f"granted by '{attacker.username}'" in error.message
    assert lab.logs_in(victim)
    assert lab.fingerprint(victim) == fingerprint


def test_postgres_pair_alternate_member_of_another_role_refused_until_revoked(
    pg_account: Any, postgres_server: PostgresServer, postgres_function: Any, sm_client: Any, ca_bundle: Path
) -> None:
    account = pg_account(with_master=True)
    other = pg_account()
    app = postgres_function(ROTATION_STRATEGY="alternating_users")
    rotate(app, account.arn)  # the clone is made; it is the current login now
    clone = account.username + "_clone"
    run(postgres_server, "GRANT {} TO {}", other.username, clone)

    error = refused(app, account)  # the original's turn, as the clone

    assert f"member of '{other.username}'" in error.message
    run(postgres_server, "REVOKE {} FROM {}", other.username, clone)
    retry = postgres_function(ROTATION_STRATEGY="alternating_users")
    rotate(retry, account.arn, token=pending_token(sm_client, account.arn))
    current = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert current["username"] == account.username
    assert TARGET.logs_in(postgres_server, current, ca_bundle)


@pytest.mark.parametrize("privilege", ["pg_read_all_data", "pg_write_server_files", "REPLICATION", "BYPASSRLS"])
def test_postgres_pair_privileged_original_refused_unless_listed(
    pg_account: Any, postgres_server: PostgresServer, postgres_function: Any, sm_client: Any, ca_bundle: Path,
    privilege: str,
) -> None:  # fmt: skip
    account = pg_account(with_master=True, master_options="SUPERUSER")
    if privilege.isupper():
        run(postgres_server, f"ALTER ROLE {{}} {privilege}", account.username)
    else:
        run(postgres_server, "GRANT {} TO {}", privilege, account.username)
    before = secret_at(sm_client, account.arn, "AWSCURRENT")

    error = refused(postgres_function(ROTATION_STRATEGY="alternating_users"), account)

    assert "ALLOW_PRIVILEGED_USERS" in error.message
    assert (f"'{privilege}'" if privilege.startswith("pg_") else privilege) in error.message
    assert TARGET.logs_in(postgres_server, before, ca_bundle)
    assert not TARGET.logs_in(postgres_server, {**before, "username": account.username + "_clone"}, ca_bundle)

    allowed = postgres_function(ROTATION_STRATEGY="alternating_users", ALLOW_PRIVILEGED_USERS=account.username)
    rotate(allowed, account.arn, token=pending_token(sm_client, account.arn))
    assert TARGET.logs_in(postgres_server, secret_at(sm_client, account.arn, "AWSCURRENT"), ca_bundle)


def test_postgres_pair_alternate_granted_by_another_admin_refused_then_adopted_by_the_masters_grant(
    pg_account: Any, postgres_server: PostgresServer, postgres_function: Any, sm_client: Any, ca_bundle: Path,
    lab: AttackLab,
) -> None:  # fmt: skip
    """An alternate some other administrator made (not the master, not a superuser) is refused; the operator
    step the message names — the master's own grant — adopts it, and rotations go on."""
    account = pg_account(with_master=True)
    clone = account.username + "_clone"
    helper = lab.login_of(lab.attacker())  # a CREATEROLE login other than the master
    if server_major(postgres_server) >= 16:  # it needs ADMIN OPTION on the original to grant it
        run(postgres_server, "GRANT {} TO {} WITH ADMIN OPTION", account.username, helper.username)
    with connect(postgres_server, ca_bundle, helper.secret(TARGET, postgres_server)) as conn, conn.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(clone)))
        cursor.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(account.username), sql.Identifier(clone)))
    app = postgres_function(ROTATION_STRATEGY="alternating_users")

    error = refused(app, account)

    assert f"granted by '{helper.username}'" in error.message
    master = secret_at(sm_client, account.master_arn or "", "AWSCURRENT")
    statements = [f'GRANT "{account.username}" TO "{clone}"']
    if server_major(postgres_server) >= 16:  # what the docs ask for an existing clone: ADMIN OPTION on it
        run(postgres_server, "GRANT {} TO {} WITH ADMIN OPTION", clone, master["username"])
    else:
        statements.insert(0, f'REVOKE "{account.username}" FROM "{clone}"')
    with connect(postgres_server, ca_bundle, master, "postgres") as conn, conn.cursor() as cursor:
        for statement in statements:
            assert statement in error.message
            cursor.execute(statement)  # the recovery the message gives (trusted test names)

    retry = postgres_function(ROTATION_STRATEGY="alternating_users")
    rotate(retry, account.arn, token=pending_token(sm_client, account.arn))
    current = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert current["username"] == clone
    assert TARGET.logs_in(postgres_server, current, ca_bundle)
