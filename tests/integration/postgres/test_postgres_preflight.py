"""The PostgreSQL preflight's own checks against real servers, each compared with what a rotation then does.

What the preflight predicts must be what happens: a check it fails makes the rotation fail at that
point, a check it passes lets the rotation through. Version-specific expectations (ADMIN OPTION from
PostgreSQL 16) come from the server's own version at run time.
"""

from __future__ import annotations

from typing import Any

import pytest
from psycopg2 import sql

from integration.postgres.logins import server_major
from integration.preflight_support import check, failed_names, nothing_written, outcome, preflight
from integration.support import Account, rotate
from rotation_core.errors import Category, RotationError
from rotation_local import emulator
from rotation_local.postgres_server import PostgresServer
from rotation_local.targets.postgres import TARGET


def test_preflight_postgres_user_read_only_by_default_reports_own_password_change_as_rotation_fails(
    postgres_server: PostgresServer, account: Account, postgres_function: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    postgres_server.execute(
        sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(sql.Identifier(account.username))
    )
    app = postgres_function()

    with nothing_written(monkeypatch, [account.arn], [TARGET.statement_log(postgres_server)]) as unchanged:
        report = preflight(app, account.arn)

    unchanged.assert_nothing_written()
    assert failed_names(report) == ["own_password_change"]
    assert outcome(report, "own_password_change") == ("failed", "permission")
    assert "default_transaction_read_only" in check(report, "own_password_change")["fix"]
    with pytest.raises(RotationError) as raised:
        rotate(app, account.arn)
    assert raised.value.category is Category.PERMISSION
    assert "read-only transaction" in raised.value.message
    emulator.drop_pending(account.arn)


def test_preflight_postgres_master_without_admin_option_predicts_rotation_by_version(
    postgres_server: PostgresServer, pg_account: Any, postgres_function: Any
) -> None:
    account = pg_account(with_master=True, admin_option=False)
    app = postgres_function(ROTATION_STRATEGY="alternating_users")

    report = preflight(app, account.arn)

    if server_major(postgres_server) >= 16:
        assert failed_names(report) == ["master_privileges"]
        assert "ADMIN OPTION" in check(report, "master_privileges")["fix"]
        with pytest.raises(RotationError) as raised:
            rotate(app, account.arn)
        assert raised.value.category is Category.PERMISSION
        emulator.drop_pending(account.arn)
    else:  # CREATEROLE alone manages other roles before 16
        assert report["ok"] is True, failed_names(report)
        rotate(app, account.arn)


def test_preflight_postgres_master_without_createrole_names_it(pg_account: Any, postgres_function: Any) -> None:
    account = pg_account(with_master=True, master_options="")

    report = preflight(postgres_function(ROTATION_STRATEGY="alternating_users"), account.arn)

    assert outcome(report, "master_privileges") == ("failed", "permission")
    assert "CREATEROLE" in check(report, "master_privileges")["fix"]
