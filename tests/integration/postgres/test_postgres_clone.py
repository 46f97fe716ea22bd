"""PostgreSQL role names with ``%``, the clone's single transaction, and the master's ADMIN OPTION (16+).

Through the real function module, psycopg2 and the server the ``postgres_server`` fixture provides;
version-specific expectations are chosen from the server's own version at run time.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest
from psycopg2 import sql

from integration.postgres.logins import can_login, connect
from integration.support import pending_token, rotate, rotate_in_place, secret_at, stages
from rotation_core.errors import Category, TargetError
from rotation_local.postgres_server import PostgresServer

#: Role-name parts a driver's format template would take for a placeholder or an escape.
PERCENT_PREFIXES = ["dba%team", "a%s", "a%%b", "a%(x)s"]


def roles_tagged(server: PostgresServer, username: str) -> list[str]:
    """Every role whose name holds the account's random tag: a collapsed ``%%`` would show up here."""
    tag = username.rsplit("_", 1)[-1]
    names = server.query_one(
        "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_catalog.pg_roles WHERE strpos(rolname, %s) > 0",
        (tag,),
    )
    return str(names).split(",")


def master_name(sm_client: Any, arn: str) -> str:
    name: str = secret_at(sm_client, secret_at(sm_client, arn, "AWSCURRENT")["masterarn"], "AWSCURRENT")["username"]
    return name


def grant_admin_option(server: PostgresServer, role: str, master: str) -> None:
    server.execute(sql.SQL("GRANT {} TO {} WITH ADMIN OPTION").format(sql.Identifier(role), sql.Identifier(master)))


@pytest.mark.parametrize("prefix", PERCENT_PREFIXES)
def test_postgres_single_user_role_name_with_percent_rotates_that_role(
    postgres_server: PostgresServer, sm_client: Any, pg_account: Any, postgres_function: Any, ca_bundle: Path,
    prefix: str,
) -> None:  # fmt: skip
    account = pg_account(prefix=prefix)

    rotate_in_place(postgres_function(), sm_client, account, partial(can_login, postgres_server, ca_bundle))

    assert roles_tagged(postgres_server, account.username) == [account.username]


@pytest.mark.parametrize("prefix", PERCENT_PREFIXES)
def test_postgres_alternating_role_name_with_percent_clone_acts_as_original(
    postgres_server: PostgresServer, sm_client: Any, pg_account: Any, postgres_function: Any, ca_bundle: Path,
    prefix: str,
) -> None:  # fmt: skip
    account = pg_account(with_master=True, prefix=prefix)
    grant_admin_option(postgres_server, account.username, master_name(sm_client, account.arn))  # needed on 16+
    app = postgres_function(ROTATION_STRATEGY="alternating_users")

    rotate(app, account.arn)  # creates the clone
    clone = secret_at(sm_client, account.arn, "AWSCURRENT")
    with connect(postgres_server, ca_bundle, clone) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT current_user, session_user")
        assert cursor.fetchone() == (account.username, account.username + "_clone")
    rotate(app, account.arn)  # the original's turn

    assert secret_at(sm_client, account.arn, "AWSCURRENT")["username"] == account.username
    assert can_login(postgres_server, ca_bundle, secret_at(sm_client, account.arn, "AWSCURRENT"))
    assert can_login(postgres_server, ca_bundle, secret_at(sm_client, account.arn, "AWSPREVIOUS"))
    assert roles_tagged(postgres_server, account.username) == [account.username, account.username + "_clone"]


def test_postgres_alternating_grant_fails_after_create_role_nothing_left_retry_after_fix_completes(
    postgres_server: PostgresServer, sm_client: Any, pg_account: Any, postgres_function: Any, ca_bundle: Path
) -> None:
    """A superuser original the operator allows (ALLOW_PRIVILEGED_USERS): the master's CREATE ROLE succeeds,
    the GRANT after it is refused."""
    account = pg_account(with_master=True)
    user, clone = account.username, account.username + "_clone"
    grant_admin_option(postgres_server, user, master_name(sm_client, account.arn))
    postgres_server.execute(sql.SQL("ALTER ROLE {} SUPERUSER").format(sql.Identifier(user)))
    original = secret_at(sm_client, account.arn, "AWSCURRENT")
    app = postgres_function(ROTATION_STRATEGY="alternating_users", ALLOW_PRIVILEGED_USERS=user)
    log_start = len(postgres_server.log_text())

    with pytest.raises(TargetError) as raised:
        rotate(app, account.arn)

    assert raised.value.category is Category.PERMISSION
    log = postgres_server.log_text()[log_start:]
    assert f'CREATE ROLE "{clone}" WITH LOGIN PASSWORD' in log  # it ran, then the GRANT failed ...
    assert f'GRANT "{user}" TO "{clone}"' in log
    assert roles_tagged(postgres_server, user) == [user]  # ... and the rollback took the role away again
    assert can_login(postgres_server, ca_bundle, original)

    postgres_server.execute(sql.SQL("ALTER ROLE {} NOSUPERUSER").format(sql.Identifier(user)))
    token = pending_token(sm_client, account.arn)
    rotate(postgres_function(ROTATION_STRATEGY="alternating_users"), account.arn, token=token)

    assert stages(sm_client, account.arn)[token] == ["AWSCURRENT"]
    current = secret_at(sm_client, account.arn, "AWSCURRENT")
    with connect(postgres_server, ca_bundle, current) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT current_user, session_user")
        assert cursor.fetchone() == (user, clone)
    assert can_login(postgres_server, ca_bundle, original)


def test_postgres_alternating_master_with_admin_option_rotates_both_turns(
    postgres_server: PostgresServer, sm_client: Any, pg_account: Any, postgres_function: Any, ca_bundle: Path
) -> None:
    """The documented master (CREATEROLE plus ADMIN OPTION on the original) works on every version."""
    account = pg_account(with_master=True)
    grant_admin_option(postgres_server, account.username, master_name(sm_client, account.arn))
    app = postgres_function(ROTATION_STRATEGY="alternating_users")

    rotate(app, account.arn)
    rotate(app, account.arn)

    assert secret_at(sm_client, account.arn, "AWSCURRENT")["username"] == account.username
    assert can_login(postgres_server, ca_bundle, secret_at(sm_client, account.arn, "AWSCURRENT"))
    assert can_login(postgres_server, ca_bundle, secret_at(sm_client, account.arn, "AWSPREVIOUS"))


@pytest.mark.servers("postgres-17", "postgres-18")  # before 16, CREATEROLE alone may grant any non-superuser role
def test_postgres16_alternating_master_without_admin_option_refused_nothing_left_then_grant_completes(
    postgres_server: PostgresServer, sm_client: Any, pg_account: Any, postgres_function: Any, ca_bundle: Path
) -> None:
    account = pg_account(with_master=True, admin_option=False)
    original = secret_at(sm_client, account.arn, "AWSCURRENT")

    with pytest.raises(TargetError) as raised:
        rotate(postgres_function(ROTATION_STRATEGY="alternating_users"), account.arn)

    assert raised.value.category is Category.PERMISSION
    assert "ADMIN OPTION" in raised.value.message
    assert roles_tagged(postgres_server, account.username) == [account.username]
    assert can_login(postgres_server, ca_bundle, original)

    grant_admin_option(postgres_server, account.username, master_name(sm_client, account.arn))
    token = pending_token(sm_client, account.arn)
    rotate(postgres_function(ROTATION_STRATEGY="alternating_users"), account.arn, token=token)

    assert stages(sm_client, account.arn)[token] == ["AWSCURRENT"]
    assert can_login(postgres_server, ca_bundle, secret_at(sm_client, account.arn, "AWSCURRENT"))
    assert can_login(postgres_server, ca_bundle, original)
