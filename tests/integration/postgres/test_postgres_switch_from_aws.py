"""A clone made by AWS's PostgreSQL multi-user function, owning a table it created, rotated by ours.

AWS's function makes ``<user>_clone`` a plain login role that is a member of ``<user>`` and acts as
itself, so what it creates is its own. Ours never makes such a clone act as the original while it owns
objects: the master moves them (REASSIGN OWNED) when it holds the privileges of both roles; otherwise the
clone is left as it is and a warning gives the exact statements to run. Either way the clone keeps using
its table. The clone is built by ``integration.aws_functions`` (AWS's documented behaviour).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from psycopg2 import sql

from helpers import LeakGuard
from integration.aws_functions import AwsRotationFunction
from integration.postgres.logins import connect, server_major
from integration.support import Account, rotate, secret_at
from rotation_local.postgres_server import PostgresServer
from rotation_local.targets.postgres import TARGET


def aws_made_clone_with_table(
    server: PostgresServer, sm_client: Any, account: Account, ca_bundle: Path, leak_guard: LeakGuard
) -> dict[str, Any]:
    """AWS's function rotates once (the clone is made and becomes AWSCURRENT); the app creates a table as the clone."""
    AwsRotationFunction(TARGET, server, sm_client, ca_bundle, leak_guard, alternating=True).rotate(account.arn)
    clone = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert clone["username"] == account.username + "_clone"
    with connect(server, ca_bundle, clone) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone() == (clone["username"],)  # the AWS way: the clone acts as itself
        cursor.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
        cursor.execute("INSERT INTO orders VALUES (1, 'made by the clone')")
    return clone


def table_owner(server: PostgresServer, dbname: str) -> str:
    return str(server.query_one("SELECT tableowner FROM pg_tables WHERE tablename = 'orders'", database=dbname))


def clone_uses_its_table(server: PostgresServer, ca_bundle: Path, secret: dict[str, Any], row: int) -> tuple[Any, ...]:
    with connect(server, ca_bundle, secret) as conn, conn.cursor() as cursor:
        cursor.execute("INSERT INTO orders VALUES (%s, 'after the switch')", (row,))
        cursor.execute("SELECT current_user, count(*) FROM orders")
        result: tuple[Any, ...] = cursor.fetchone()
    return result


@pytest.fixture
def aws_clone(
    pg_account: Any, postgres_server: PostgresServer, sm_client: Any, ca_bundle: Path, leak_guard: LeakGuard
) -> tuple[Account, str, str]:
    """An account with a master whose clone AWS's function made and which owns a table it created:
    the account, the original's name and the clone's."""
    account: Account = pg_account(with_master=True)
    aws_made_clone_with_table(postgres_server, sm_client, account, ca_bundle, leak_guard)
    return account, account.username, account.username + "_clone"


def test_postgres_aws_made_clone_owning_table_master_may_reassign_objects_move_clone_keeps_using_table(
    aws_clone: tuple[Account, str, str], postgres_server: PostgresServer, sm_client: Any, postgres_function: Any,
    ca_bundle: Path, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    account, user, clone_name = aws_clone
    # The master holds the privileges of both roles, as REASSIGN OWNED requires (on PostgreSQL 16+ the grant
    # a CREATEROLE user gets on a role it creates has INHERIT FALSE, so it is given INHERIT explicitly).
    inherit = sql.SQL(" WITH INHERIT TRUE" if server_major(postgres_server) >= 16 else "")
    postgres_server.execute(
        sql.SQL("GRANT {}, {} TO {}{}").format(
            sql.Identifier(user), sql.Identifier(clone_name), sql.Identifier(account.master_user or ""), inherit
        )
    )
    app = postgres_function(ROTATION_STRATEGY="alternating_users")

    rotate(app, account.arn)  # the original's turn: the clone is not touched
    assert table_owner(postgres_server, account.dbname) == clone_name
    rotate(app, account.arn)  # the clone's turn: its objects move to the original, then it acts as the original

    clone = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert clone["username"] == clone_name
    assert table_owner(postgres_server, account.dbname) == user
    assert clone_uses_its_table(postgres_server, ca_bundle, clone, 2) == (user, 2)
    original = secret_at(sm_client, account.arn, "AWSPREVIOUS")
    assert clone_uses_its_table(postgres_server, ca_bundle, original, 3) == (user, 3)  # now shared by both
    assert f"they now belong to '{user}'" in caplog.text


def test_postgres_aws_made_clone_owning_table_master_may_not_clone_left_as_is_warning_gives_statement(
    aws_clone: tuple[Account, str, str], postgres_server: PostgresServer, sm_client: Any, postgres_function: Any,
    ca_bundle: Path, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    account, user, clone_name = aws_clone
    app = postgres_function(ROTATION_STRATEGY="alternating_users")

    rotate(app, account.arn)
    rotate(app, account.arn)  # the clone's turn: the master may not move its objects

    clone = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert clone["username"] == clone_name
    assert table_owner(postgres_server, account.dbname) == clone_name  # untouched
    assert clone_uses_its_table(postgres_server, ca_bundle, clone, 2) == (clone_name, 2)  # still acts as itself
    settings = postgres_server.query(
        "SELECT setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = %s",
        (clone_name,),
    )
    assert settings == []  # no default role was added
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    statement = f'REASSIGN OWNED BY "{clone_name}" TO "{user}";'
    assert any(statement in text and f'ALTER ROLE "{clone_name}" SET role TO "{user}";' in text for text in warnings)
    assert any(repr(account.dbname) in text for text in warnings)  # in which database to run it

    rotate(app, account.arn)  # the original's turn again: nothing breaks
    assert clone_uses_its_table(postgres_server, ca_bundle, secret_at(sm_client, account.arn, "AWSPREVIOUS"), 3) == (
        clone_name,
        3,
    )
