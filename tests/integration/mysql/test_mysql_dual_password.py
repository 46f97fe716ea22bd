"""Dual passwords (ROTATION_STRATEGY=dual_password) on real servers: MySQL 9.7 keeps both, MariaDB refuses the strategy.

What the shared suites (fault matrix, crash and retry, configuration test, TLS) do not: which statement reached the
general log (the user's own login: ``<secret>`` for both passwords; a master: the caching_sha2_password string,
never the password), a master's retried and concurrent setSecret, the secondary replaced by the next rotation, the
privileges and the preflight, and MariaDB's refusal before anything changes.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from helpers import LeakGuard
from integration.mysql.accounts import add_master
from integration.preflight_support import check, failed_names, nothing_written, outcome, preflight
from integration.support import Account, rotate, run_steps, secret_at, stages
from rotation_core.errors import Category, RotationError
from rotation_local import emulator, service
from rotation_local.mariadb_server import MySQLFamilyServer
from rotation_local.targets.mysql import DUAL_PASSWORD_PRIVILEGE, TARGET

MYSQL = pytest.mark.servers("mysql-*")
DUAL = {"ROTATION_STRATEGY": "dual_password"}


def logs_in(server: MySQLFamilyServer, ca_bundle: Any, secret: dict[str, Any]) -> bool:
    return TARGET.logs_in(server, secret, ca_bundle)


def new_log(server: MySQLFamilyServer, since: int) -> str:
    return server.log_path.read_bytes()[since:].decode("utf-8", errors="replace")


def dual_account(mysql_account: Any, with_master: bool) -> Any:
    """An account that may rotate with dual passwords: through a master, or an own login with the privilege."""
    return mysql_account(with_master=with_master, privileges="" if with_master else DUAL_PASSWORD_PRIVILEGE)


@MYSQL
@pytest.mark.verifies("dual_password")
@pytest.mark.parametrize(
    ("with_master", "require_current", "statement"),
    [
        (False, False, "IDENTIFIED BY <secret> REPLACE <secret> RETAIN CURRENT PASSWORD"),
        # REPLACE names the current password: the requirement is met
        (False, True, "IDENTIFIED BY <secret> REPLACE <secret> RETAIN CURRENT PASSWORD"),
        (True, False, "IDENTIFIED WITH caching_sha2_password AS '$A$"),  # the hash, never the password
    ],
    ids=["own-login", "own-login-password-require-current", "master"],
)
def test_mysql_dual_password_rotation_both_log_in_and_log_holds_no_password(
    mysql_server: MySQLFamilyServer, mysql_account: Any, mysql_function: Any, sm_client: Any, ca_bundle: Any,
    with_master: bool, require_current: bool, statement: str,
) -> None:  # fmt: skip
    account = dual_account(mysql_account, with_master)
    if require_current:
        mysql_server.execute("ALTER USER %s@'%%' PASSWORD REQUIRE CURRENT", (account.username,))
    old = secret_at(sm_client, account.arn, "AWSCURRENT")
    since = mysql_server.log_path.stat().st_size

    rotate(mysql_function(**DUAL), account.arn)

    new = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert logs_in(mysql_server, ca_bundle, new)
    assert logs_in(mysql_server, ca_bundle, old)
    log = new_log(mysql_server, since)
    assert statement in log
    assert "RETAIN CURRENT PASSWORD" in log
    assert new["password"] not in log
    assert old["password"] not in log
    if with_master:
        (stored,) = mysql_server.query(
            "SELECT authentication_string FROM mysql.user WHERE User = %s", (account.username,)
        )
        assert f"AS '{stored[0]}' RETAIN CURRENT PASSWORD" in log  # the string computed by the function, kept as sent


@MYSQL
@pytest.mark.verifies("dual_password")
@pytest.mark.parametrize("with_master", [False, True], ids=["own-login", "master"])
def test_mysql_dual_password_next_rotation_replaces_the_secondary(
    mysql_server: MySQLFamilyServer, mysql_account: Any, mysql_function: Any, sm_client: Any, ca_bundle: Any,
    with_master: bool,
) -> None:  # fmt: skip
    account = dual_account(mysql_account, with_master)
    first = secret_at(sm_client, account.arn, "AWSCURRENT")
    app = mysql_function(**DUAL)
    rotate(app, account.arn)
    second = secret_at(sm_client, account.arn, "AWSCURRENT")

    rotate(app, account.arn)

    assert logs_in(mysql_server, ca_bundle, secret_at(sm_client, account.arn, "AWSCURRENT"))
    assert logs_in(mysql_server, ca_bundle, second)
    assert not logs_in(mysql_server, ca_bundle, first)


@MYSQL
@pytest.mark.verifies("dual_password")
def test_mysql_dual_password_master_set_secret_retried_and_concurrent_keeps_current(
    mysql_server: MySQLFamilyServer, account: Account, mysql_function: Any, sm_client: Any, ca_bundle: Any
) -> None:
    current = secret_at(sm_client, account.arn, "AWSCURRENT")
    token = emulator.stage_pending_placeholder(account.arn)
    run_steps(mysql_function(**DUAL), account.arn, token, "createSecret")
    containers = [mysql_function(**DUAL), mysql_function(**DUAL)]
    errors: list[BaseException] = []

    def set_secret(app: Any) -> None:
        try:
            run_steps(app, account.arn, token, "setSecret")
        except BaseException as error:  # noqa: BLE001 (reported below)
            errors.append(error)

    threads = [threading.Thread(target=set_secret, args=(app,)) for app in containers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    run_steps(mysql_function(**DUAL), account.arn, token, "setSecret")  # and once more, later

    assert errors == []
    pending = secret_at(sm_client, account.arn, "AWSPENDING")
    assert logs_in(mysql_server, ca_bundle, pending)
    assert logs_in(mysql_server, ca_bundle, current)
    rotate(mysql_function(**DUAL), account.arn, token=token)
    assert stages(sm_client, account.arn)[token] == ["AWSCURRENT"]


@MYSQL
def test_mysql_dual_password_own_login_without_privilege_names_it_and_changes_nothing(
    mysql_server: MySQLFamilyServer, own_account: Account, mysql_function: Any, sm_client: Any, ca_bundle: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    old = secret_at(sm_client, own_account.arn, "AWSCURRENT")
    app = mysql_function(**DUAL)

    with nothing_written(monkeypatch, [own_account.arn], [TARGET.statement_log(mysql_server)]) as unchanged:
        report = preflight(app, own_account.arn)
    unchanged.assert_nothing_written()
    with pytest.raises(RotationError) as raised:
        rotate(app, own_account.arn)

    assert failed_names(report) == ["own_password_change"]
    assert outcome(report, "dual_password") == ("ok", "configuration")
    assert "APPLICATION_PASSWORD_ADMIN" in check(report, "own_password_change")["fix"]
    assert raised.value.category is Category.PERMISSION
    assert "APPLICATION_PASSWORD_ADMIN" in raised.value.message
    assert logs_in(mysql_server, ca_bundle, old)
    emulator.drop_pending(own_account.arn)


@MYSQL
@pytest.mark.parametrize("with_master", [False, True], ids=["own-login", "master"])
def test_preflight_mysql_dual_password_correct_setup_all_ok_nothing_written(
    mysql_server: MySQLFamilyServer, mysql_account: Any, mysql_function: Any, sm_client: Any, ca_bundle: Any,
    monkeypatch: pytest.MonkeyPatch, with_master: bool,
) -> None:  # fmt: skip
    account = dual_account(mysql_account, with_master)
    arns = [account.arn] + ([account.master_arn] if account.master_arn else [])

    with nothing_written(monkeypatch, arns, [TARGET.statement_log(mysql_server)]) as unchanged:
        report = preflight(mysql_function(**DUAL), account.arn)

    unchanged.assert_nothing_written()
    assert report["ok"] is True, [check(report, name) for name in failed_names(report)]
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["dual_password"] == "ok"
    if with_master:
        assert statuses["own_password_change"] == "skipped"
        assert [statuses[n] for n in ("master_secret", "master_login", "master_privileges")] == ["ok"] * 3
    else:
        assert statuses["own_password_change"] == "ok"
        assert {statuses[n] for n in ("master_secret", "master_login", "master_privileges")} == {"skipped"}


@MYSQL
def test_preflight_mysql_dual_password_master_without_create_user_fails_master_privileges(
    mysql_server: MySQLFamilyServer, own_account: Account, mysql_function: Any, sm_client: Any, leak_guard: LeakGuard
) -> None:
    add_master(mysql_server, sm_client, leak_guard, own_account.arn, "SELECT ON mysql.*")

    report = preflight(mysql_function(**DUAL), own_account.arn)

    assert failed_names(report) == ["master_privileges"]
    assert "CREATE USER" in check(report, "master_privileges")["fix"]


@pytest.mark.servers("mariadb-*")
def test_mysql_dual_password_on_mariadb_refused_naming_server_preflight_reports_it(
    mysql_server: MySQLFamilyServer, own_account: Account, mysql_function: Any, sm_client: Any, ca_bundle: Any
) -> None:
    old = secret_at(sm_client, own_account.arn, "AWSCURRENT")
    app = mysql_function(**DUAL)

    report = preflight(app, own_account.arn)
    token = emulator.stage_pending_placeholder(own_account.arn)
    run_steps(app, own_account.arn, token, "createSecret")
    with pytest.raises(RotationError) as raised:
        app.lambda_handler(service.event("setSecret", own_account.arn, token), None)

    assert failed_names(report) == ["dual_password"]
    assert outcome(report, "dual_password") == ("failed", "configuration")
    assert "MariaDB" in check(report, "dual_password")["fix"]
    assert raised.value.category is Category.CONFIGURATION
    assert "has no dual passwords" in raised.value.message
    assert "MariaDB" in raised.value.message
    assert logs_in(mysql_server, ca_bundle, old)
    assert stages(sm_client, own_account.arn)[token] == ["AWSPENDING"]
    emulator.drop_pending(own_account.arn)
