"""MySQL-function rotations end to end: the real function module, real MariaDB and MySQL servers, Secrets Manager.

Every test runs on each MySQL-family server kind (``mysql_server``), with the server's general query
log on and the leak guard reading it: no plaintext password the test knows may appear there (MariaDB
receives only mysql_native_password hashes; MySQL receives the password in ``IDENTIFIED BY`` and logs
``<secret>`` instead).
"""

from __future__ import annotations

import json
import secrets
import ssl
from pathlib import Path
from typing import Any

import pymysql
import pytest

from helpers import LeakGuard
from integration.mysql.accounts import (
    account_state,
    account_text,
    create_role,
    grant_role,
    revoke_role,
    set_default_role,
)
from integration.support import Account as SecretAccount
from integration.support import rotate, rotation_log, secret_at, stages, unique
from rotation_core.engines.mysql.grants import Account
from rotation_core.engines.mysql.statements import native_password_hash
from rotation_local.mariadb_server import MySQLFamilyServer

STEPS_BEFORE_FINISH = ("createSecret", "setSecret", "testSecret")


def can_login(server: MySQLFamilyServer, ca_bundle: Path, secret: dict[str, Any], *, host: str = "127.0.0.1") -> bool:
    try:
        pymysql.connect(
            host=host,
            port=server.port,
            user=secret["username"],
            password=secret["password"],
            database=secret.get("dbname"),
            ssl=ssl.create_default_context(cafile=str(ca_bundle)),
            connect_timeout=5,
        ).close()
    except pymysql.err.OperationalError:
        return False
    return True


@pytest.mark.verifies("single_user", "tls_verify_full")
@pytest.mark.parametrize("account_host", ["%", "localhost", "127.0.0.1"])
def test_mysql_single_user_rotation_host_pattern_kept_new_password_works_old_refused(
    mysql_server: MySQLFamilyServer, sm_client: Any, mysql_account: Any, mysql_function: Any, ca_bundle: Path,
    account_host: str,
) -> None:  # fmt: skip
    secret_host = "localhost" if account_host == "localhost" else "127.0.0.1"
    account = mysql_account(host=account_host)
    if secret_host != "127.0.0.1":
        value = {**secret_at(sm_client, account.arn, "AWSCURRENT"), "host": secret_host}
        sm_client.put_secret_value(SecretId=account.arn, SecretString=json.dumps(value))
    old = secret_at(sm_client, account.arn, "AWSCURRENT")

    token = rotate(mysql_function(), account.arn)

    new = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert stages(sm_client, account.arn)[token] == ["AWSCURRENT"]
    assert secret_at(sm_client, account.arn, "AWSPREVIOUS") == old
    assert new["password"] != old["password"]
    assert {k: v for k, v in new.items() if k != "password"} == {k: v for k, v in old.items() if k != "password"}
    assert can_login(mysql_server, ca_bundle, new, host=secret_host)
    assert not can_login(mysql_server, ca_bundle, old, host=secret_host)
    # The account kept its host part: no new account appeared under another host.
    hosts = mysql_server.query("SELECT Host FROM mysql.user WHERE User = %s", (account.username,))
    assert hosts == [(account_host,)]


@pytest.mark.servers("mariadb-*")
def test_mysql_single_user_rotation_general_log_holds_hash_not_plaintext(
    mysql_server: MySQLFamilyServer, sm_client: Any, own_account: SecretAccount, mysql_function: Any
) -> None:

    log = rotation_log(mysql_function(), mysql_server, sm_client, own_account.arn)

    new_password = secret_at(sm_client, own_account.arn, "AWSCURRENT")["password"]
    assert f"SET PASSWORD = '{native_password_hash(new_password)}'" in log


@pytest.mark.verifies("single_user")
def test_mysql_single_user_crash_before_finish_retry_same_token_completes(
    mysql_server: MySQLFamilyServer, sm_client: Any, own_account: SecretAccount, mysql_function: Any, ca_bundle: Path
) -> None:
    old = secret_at(sm_client, own_account.arn, "AWSCURRENT")
    app = mysql_function()
    token = rotate(app, own_account.arn, steps=STEPS_BEFORE_FINISH)
    pending = secret_at(sm_client, own_account.arn, "AWSPENDING")
    assert can_login(mysql_server, ca_bundle, pending)
    assert not can_login(mysql_server, ca_bundle, old)

    # Secrets Manager retries the whole rotation with the same token, in a fresh Lambda container.
    rotate(mysql_function(), own_account.arn, token=token)

    assert stages(sm_client, own_account.arn)[token] == ["AWSCURRENT"]
    assert secret_at(sm_client, own_account.arn, "AWSCURRENT") == pending
    assert can_login(mysql_server, ca_bundle, pending)


@pytest.mark.verifies("single_user")
def test_mysql_single_user_previous_rotation_died_after_change_new_rotation_uses_previous(
    mysql_server: MySQLFamilyServer, sm_client: Any, own_account: SecretAccount, mysql_function: Any, ca_bundle: Path
) -> None:
    app = mysql_function()
    rotate(app, own_account.arn)
    promoted = secret_at(sm_client, own_account.arn, "AWSCURRENT")
    # An operator moves AWSCURRENT back to the old value while the database keeps the new password:
    # the service makes the newer version AWSPREVIOUS, and only that one still logs in.
    previous_version = next(v for v, s in stages(sm_client, own_account.arn).items() if "AWSPREVIOUS" in s)
    current_version = next(v for v, s in stages(sm_client, own_account.arn).items() if "AWSCURRENT" in s)
    sm_client.update_secret_version_stage(
        SecretId=own_account.arn, VersionStage="AWSCURRENT", MoveToVersionId=previous_version,
        RemoveFromVersionId=current_version,
    )  # fmt: skip
    assert "AWSPREVIOUS" in stages(sm_client, own_account.arn)[current_version]

    rotate(app, own_account.arn)

    final = secret_at(sm_client, own_account.arn, "AWSCURRENT")
    assert can_login(mysql_server, ca_bundle, final)
    assert not can_login(mysql_server, ca_bundle, promoted)


def _grant_two_databases(server: MySQLFamilyServer, account: Any) -> tuple[str, str, Account]:
    """Grants on two databases (one WITH GRANT OPTION), a column grant, a role as default, TLS and a limit.

    The master gets ADMIN OPTION on the role: MariaDB requires it to grant the role to the clone (MySQL's
    ALL PRIVILEGES holds ROLE_ADMIN, which is enough there).
    """
    user, host = account.username, account.host
    db_a, db_b, role = unique("dba"), unique("dbb"), unique("role")
    server.execute(f"CREATE DATABASE `{db_a}`")
    server.execute(f"CREATE DATABASE `{db_b}`")
    server.execute(f"CREATE TABLE `{db_b}`.`orders` (id INT PRIMARY KEY, note TEXT, total INT)")
    server.execute(f"GRANT SELECT, INSERT, UPDATE ON `{db_a}`.* TO %s@%s WITH GRANT OPTION", (user, host))
    server.execute(f"GRANT SELECT ON `{db_b}`.* TO %s@%s", (user, host))
    server.execute(f"GRANT UPDATE (`note`) ON `{db_b}`.`orders` TO %s@%s", (user, host))
    role_account = create_role(server, role)
    server.execute(f"GRANT DELETE ON `{db_b}`.* TO {account_text(role_account.user, role_account.host)}")
    grant_role(server, role_account, user, host)
    grant_role(server, role_account, account.master_user, "127.0.0.1", admin_option=True)
    set_default_role(server, role_account, user, host)
    server.execute("ALTER USER %s@%s REQUIRE SSL WITH MAX_USER_CONNECTIONS 20", (user, host))
    return db_a, db_b, role_account


@pytest.mark.verifies("alternating_users")
@pytest.mark.parametrize("account_host", ["%", "127.0.0.1"])
def test_mysql_alternating_three_rotations_both_users_work_with_identical_grants(
    mysql_server: MySQLFamilyServer, sm_client: Any, mysql_account: Any, mysql_function: Any, ca_bundle: Path,
    account_host: str,
) -> None:  # fmt: skip
    account = mysql_account(host=account_host, with_master=True)
    clone = account.username + "_clone"
    db_a, db_b, _role = _grant_two_databases(mysql_server, account)
    app = mysql_function(ROTATION_STRATEGY="alternating_users")

    for round_number in range(1, 4):
        rotate(app, account.arn)
        current = secret_at(sm_client, account.arn, "AWSCURRENT")
        previous = secret_at(sm_client, account.arn, "AWSPREVIOUS")
        assert current["username"] == (clone if round_number % 2 else account.username)
        assert previous["username"] != current["username"]
        assert can_login(mysql_server, ca_bundle, current)
        assert can_login(mysql_server, ca_bundle, previous)
        assert account_state(mysql_server, clone, account_host) == account_state(
            mysql_server, account.username, account_host
        )
        assert current["masterarn"] == account.master_arn
        assert current["owner_team"] == "payments"

    # The clone uses its privileges for real: the column grant and the default role.
    clone_secret = next(secret for secret in (current, previous) if secret["username"] == clone)
    conn = pymysql.connect(
        host="127.0.0.1", port=mysql_server.port, user=clone, password=clone_secret["password"],
        database=db_b, ssl=ssl.create_default_context(cafile=str(ca_bundle)), autocommit=True,
    )  # fmt: skip
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM orders")
            cursor.execute("DELETE FROM orders WHERE id = 0")  # through the default role
            cursor.execute("UPDATE orders SET note = 'y' WHERE id = 0")  # column privilege
            with pytest.raises(pymysql.err.OperationalError):
                cursor.execute("UPDATE orders SET total = 2 WHERE id = 0")
        assert mysql_server.query("SELECT User, Host FROM mysql.user WHERE User = %s", (clone,)) == [
            (clone, account_host)
        ]
        # ... and its grant option on the first database.
        other = unique("grantee")[:20]
        mysql_server.execute("CREATE USER %s@'%%'", (other,))
        with conn.cursor() as cursor:
            cursor.execute(f"GRANT SELECT ON `{db_a}`.* TO %s@'%%'", (other,))
    finally:
        conn.close()


@pytest.mark.verifies("alternating_users")
def test_mysql_alternating_grant_changes_on_original_reach_clone_next_time(
    mysql_server: MySQLFamilyServer, sm_client: Any, account: SecretAccount, mysql_function: Any
) -> None:
    user, host, clone = account.username, account.host, account.username + "_clone"
    db_a, db_b, role = _grant_two_databases(mysql_server, account)
    app = mysql_function(ROTATION_STRATEGY="alternating_users")
    rotate(app, account.arn)  # creates the clone
    rotate(app, account.arn)  # back to the original
    mysql_server.execute(f"REVOKE GRANT OPTION ON `{db_a}`.* FROM %s@%s", (user, host))
    mysql_server.execute(f"REVOKE INSERT ON `{db_a}`.* FROM %s@%s", (user, host))
    revoke_role(mysql_server, role, user, host)
    mysql_server.execute(f"GRANT CREATE ON `{db_b}`.* TO %s@%s", (user, host))
    mysql_server.execute("ALTER USER %s@%s REQUIRE NONE", (user, host))

    rotate(app, account.arn)  # the clone again: re-synchronised

    clone_grants = account_state(mysql_server, clone, host)
    assert clone_grants == account_state(mysql_server, user, host)
    assert not clone_grants["roles"]
    assert not clone_grants["default_roles"]
    assert clone_grants["account"]["ssl_type"] == ""
    assert not any(
        p.name in ("INSERT", "GRANT OPTION") and p.target.database == db_a for p in clone_grants["privileges"]
    )


@pytest.mark.verifies("alternating_users")
def test_mysql_alternating_crash_before_finish_retry_completes(
    mysql_server: MySQLFamilyServer, sm_client: Any, account: SecretAccount, mysql_function: Any, ca_bundle: Path
) -> None:
    original = secret_at(sm_client, account.arn, "AWSCURRENT")
    token = rotate(mysql_function(ROTATION_STRATEGY="alternating_users"), account.arn, steps=STEPS_BEFORE_FINISH)

    rotate(mysql_function(ROTATION_STRATEGY="alternating_users"), account.arn, token=token)

    current = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert stages(sm_client, account.arn)[token] == ["AWSCURRENT"]
    assert current["username"] == account.username + "_clone"
    assert can_login(mysql_server, ca_bundle, current)
    assert can_login(mysql_server, ca_bundle, original)


@pytest.mark.verifies("alternating_users")
def test_mysql_alternating_user_with_two_hosts_clone_copies_the_matched_account(
    mysql_server: MySQLFamilyServer, sm_client: Any, mysql_account: Any, mysql_function: Any, ca_bundle: Path,
    leak_guard: LeakGuard,
) -> None:  # fmt: skip
    account = mysql_account(host="127.0.0.1", with_master=True)
    # The same name also exists for every other host, with another password and other grants.
    wide_password = secrets.token_urlsafe(24)
    leak_guard.add(wide_password)
    mysql_server.create_login(account.username, "%", wide_password)
    wide_db = unique("wide")
    mysql_server.execute(f"CREATE DATABASE `{wide_db}`")
    mysql_server.execute(f"GRANT SELECT ON `{wide_db}`.* TO %s@'%%'", (account.username,))

    rotate(mysql_function(ROTATION_STRATEGY="alternating_users"), account.arn)

    clone = account.username + "_clone"
    assert mysql_server.query("SELECT Host FROM mysql.user WHERE User = %s", (clone,)) == [("127.0.0.1",)]
    assert account_state(mysql_server, clone, "127.0.0.1") == account_state(mysql_server, account.username, "127.0.0.1")
    assert can_login(mysql_server, ca_bundle, secret_at(sm_client, account.arn, "AWSCURRENT"))


@pytest.mark.servers("mysql-*")
def test_mysql_general_log_single_user_password_logged_as_secret_placeholder(
    mysql_server: MySQLFamilyServer, sm_client: Any, own_account: SecretAccount, mysql_function: Any
) -> None:
    """MySQL: the password travels in ``IDENTIFIED BY`` (over TLS); the server logs ``<secret>`` instead."""
    log_before = len(mysql_server.log_text())

    rotate(mysql_function(), own_account.arn)

    log = mysql_server.log_text()[log_before:]
    assert f"ALTER USER '{own_account.username}'@'%' IDENTIFIED BY <secret>" in log
    assert secret_at(sm_client, own_account.arn, "AWSCURRENT")["password"] not in log


@pytest.mark.verifies("alternating_users")
def test_mysql_general_log_alternating_statements_carry_no_plaintext(
    mysql_server: MySQLFamilyServer, sm_client: Any, account: SecretAccount, mysql_function: Any
) -> None:
    """MariaDB receives the mysql_native_password hash; MySQL the password, which it logs as ``<secret>``."""
    app = mysql_function(ROTATION_STRATEGY="alternating_users")
    log_before = len(mysql_server.log_text())

    rotate(app, account.arn)  # creates the clone
    rotate(app, account.arn)  # the original's new password

    log = mysql_server.log_text()[log_before:]
    clone = f"{account.username}_clone"
    clone_password = secret_at(sm_client, account.arn, "AWSPREVIOUS")["password"]
    original_password = secret_at(sm_client, account.arn, "AWSCURRENT")["password"]
    if mysql_server.flavour == "mariadb":
        assert f"CREATE USER '{clone}'@'%' IDENTIFIED BY PASSWORD '{native_password_hash(clone_password)}'" in log
        original_hash = native_password_hash(original_password)
        assert f"ALTER USER '{account.username}'@'%' IDENTIFIED BY PASSWORD '{original_hash}'" in log
    else:
        assert f"CREATE USER '{clone}'@'%' IDENTIFIED WITH 'caching_sha2_password' BY <secret>" in log
        assert f"ALTER USER '{account.username}'@'%' IDENTIFIED BY <secret>" in log
        plugins = mysql_server.query("SELECT plugin FROM mysql.user WHERE User = %s", (clone,))
        assert plugins == [("caching_sha2_password",)]
    assert clone_password not in log
    assert original_password not in log
