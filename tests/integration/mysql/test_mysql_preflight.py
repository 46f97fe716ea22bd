"""The MySQL-family preflight's own checks against real servers, each compared with what a rotation then does.

The master's rights are read from its own grants and the original account's (through the engine's
readers): a master without GRANT OPTION on what it must copy fails ``master_privileges`` naming the
privilege, and the rotation then fails; with the option granted both pass. MariaDB accounts with more
than one authentication plugin fail ``own_password_change``, as setSecret does.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from helpers import LeakGuard
from integration.mysql.accounts import add_master, ident, short_name
from integration.preflight_support import check, failed_names, nothing_written, outcome, preflight
from integration.support import Account, rotate, unique
from rotation_core.engines.mysql.statements import native_password_hash
from rotation_core.errors import Category, RotationError
from rotation_local import emulator
from rotation_local.mariadb_server import MySQLFamilyServer
from rotation_local.targets.mysql import TARGET


def test_preflight_mysql_master_without_grant_option_names_privilege_as_rotation_fails(
    mysql_server: MySQLFamilyServer, own_account: Account, mysql_function: Any, sm_client: Any, leak_guard: LeakGuard,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    master, master_arn = add_master(
        mysql_server, sm_client, leak_guard, own_account.arn,
        "CREATE USER ON *.*", "SELECT ON mysql.*", f"ALL PRIVILEGES ON {ident(own_account.dbname)}.*",
    )  # fmt: skip
    app = mysql_function(ROTATION_STRATEGY="alternating_users")

    with nothing_written(monkeypatch, [own_account.arn, master_arn], [TARGET.statement_log(mysql_server)]) as unchanged:
        report = preflight(app, own_account.arn)

    unchanged.assert_nothing_written()
    assert failed_names(report) == ["master_privileges"]
    fix = check(report, "master_privileges")["fix"]
    assert f"ALL PRIVILEGES WITH GRANT OPTION on '`{own_account.dbname}`.*'" in fix
    assert "CREATE USER" not in fix.split("lacks", 1)[1]
    with pytest.raises(RotationError) as raised:
        rotate(app, own_account.arn)
    assert raised.value.category is Category.PERMISSION
    emulator.drop_pending(own_account.arn)

    mysql_server.execute(
        f"GRANT ALL PRIVILEGES ON {ident(own_account.dbname)}.* TO %s@'127.0.0.1' WITH GRANT OPTION", (master,)
    )
    assert preflight(app, own_account.arn)["ok"] is True
    rotate(app, own_account.arn)


def test_preflight_mysql_master_without_mysql_schema_access_reports_it(
    mysql_server: MySQLFamilyServer, own_account: Account, mysql_function: Any, sm_client: Any, leak_guard: LeakGuard
) -> None:
    add_master(mysql_server, sm_client, leak_guard, own_account.arn, f"ALL PRIVILEGES ON {ident(own_account.dbname)}.*")

    report = preflight(mysql_function(ROTATION_STRATEGY="alternating_users"), own_account.arn)

    assert outcome(report, "master_privileges") == ("failed", "permission")
    assert "SELECT on the mysql schema" in check(report, "master_privileges")["fix"]


@pytest.mark.servers("mariadb-*")
def test_preflight_mariadb_account_with_two_plugins_reports_own_password_change_as_rotation_fails(
    mysql_server: MySQLFamilyServer, mysql_function: Any, sm_client: Any, leak_guard: LeakGuard
) -> None:
    username, password = short_name("two"), secrets.token_urlsafe(24)
    leak_guard.add(password)
    mysql_server.execute(
        "CREATE USER %s@'%%' IDENTIFIED VIA mysql_native_password USING %s OR unix_socket",
        (username, native_password_hash(password)),
    )
    arn = sm_client.create_secret(
        Name=unique("two"), SecretString=json.dumps(TARGET.secret(mysql_server, username, password))
    )["ARN"]
    emulator.enable_rotation(arn)
    app = mysql_function()

    report = preflight(app, arn)

    assert failed_names(report) == ["own_password_change"]
    assert outcome(report, "own_password_change") == ("failed", "permission")
    assert "several ways" in check(report, "own_password_change")["fix"]
    with pytest.raises(RotationError, match="several ways"):
        rotate(app, arn)
    emulator.drop_pending(arn)
