"""What MySQL and MariaDB prove about a pair before the master acts (engines/mysql/pair.py), case by case.

Neither account may hold superuser-class rights, directly or through a role, unless ``ALLOW_PRIVILEGED_USERS``
lists the original; when the alternate is the current login and the original's turn comes, it must already
hold every privilege and role of the original (grant and admin options aside). Each refusal is
``confused_deputy``, changes nothing, and the retry after the recovery it names passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import LeakGuard
from integration.alternating_attacks import refused
from integration.aws_functions import AwsRotationFunction
from integration.mysql.accounts import account_text, create_role, grant_role, ident
from integration.support import Account, pending_token, rotate, secret_at, unique
from rotation_local.mariadb_server import MySQLFamilyServer
from rotation_local.targets.mysql import TARGET


@pytest.mark.parametrize("through_role", [False, True], ids=["direct", "through-role"])
def test_mysql_pair_original_that_may_create_users_refused_unless_listed(
    mysql_server: MySQLFamilyServer, sm_client: Any, account: Account, mysql_function: Any, ca_bundle: Path,
    through_role: bool,
) -> None:  # fmt: skip
    who = account_text(account.username, account.host)
    if through_role:
        role = create_role(mysql_server, unique("admins"))
        mysql_server.execute(f"GRANT CREATE USER ON *.* TO {account_text(role.user, role.host)}")
        grant_role(mysql_server, role, account.username, account.host)
        grant_role(mysql_server, role, account.master_user or "", "127.0.0.1", admin_option=True)
    else:
        mysql_server.execute(f"GRANT CREATE USER ON *.* TO {who}")
    before = secret_at(sm_client, account.arn, "AWSCURRENT")

    error = refused(mysql_function(ROTATION_STRATEGY="alternating_users"), account)

    assert "'CREATE USER ON *.*'" in error.message
    assert ("through the role" in error.message) is through_role
    assert TARGET.logs_in(mysql_server, before, ca_bundle)
    clones = mysql_server.query("SELECT COUNT(*) FROM mysql.user WHERE User = %s", (account.username + "_clone",))
    assert clones == [(0,)]  # nothing was created

    allowed = mysql_function(ROTATION_STRATEGY="alternating_users", ALLOW_PRIVILEGED_USERS=account.username)
    rotate(allowed, account.arn, token=pending_token(sm_client, account.arn))
    assert TARGET.logs_in(mysql_server, secret_at(sm_client, account.arn, "AWSCURRENT"), ca_bundle)


def test_mysql_pair_original_writing_to_the_mysql_schema_refused(
    mysql_server: MySQLFamilyServer, sm_client: Any, account: Account, mysql_function: Any
) -> None:
    mysql_server.execute(f"GRANT UPDATE ON mysql.* TO {account_text(account.username, account.host)}")

    error = refused(mysql_function(ROTATION_STRATEGY="alternating_users"), account)

    assert "'UPDATE ON `mysql`.*'" in error.message


def test_mysql_pair_alternate_lacking_grants_given_to_original_alone_refused_until_given(
    mysql_server: MySQLFamilyServer, sm_client: Any, account: Account, mysql_function: Any, ca_bundle: Path
) -> None:
    """Grants given to the original alone while the alternate is in use: at the original's turn the alternate
    lacks them, which is what a planted clone looks like. The message names them; once the alternate has
    them too the retry completes (and the alternate's next turn copies everything anyway)."""
    app = mysql_function(ROTATION_STRATEGY="alternating_users")
    rotate(app, account.arn)  # the alternate is made and in use
    reports = unique("reports")
    mysql_server.execute(f"CREATE DATABASE {ident(reports)}")
    mysql_server.execute(f"GRANT SELECT ON {ident(reports)}.* TO {account_text(account.username, account.host)}")

    error = refused(app, account)

    assert f"'SELECT ON `{reports}`.*'" in error.message
    assert "give" in error.message
    clone = account_text(account.username + "_clone", account.host)
    mysql_server.execute(f"GRANT SELECT ON {ident(reports)}.* TO {clone}")
    retry = mysql_function(ROTATION_STRATEGY="alternating_users")
    rotate(retry, account.arn, token=pending_token(sm_client, account.arn))
    current = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert current["username"] == account.username
    assert TARGET.logs_in(mysql_server, current, ca_bundle)


@pytest.mark.servers("mariadb-*")  # the emulation of AWS's function sends MariaDB's password hashes
def test_mysql_pair_alternate_made_by_aws_without_grant_option_accepted(
    mysql_server: MySQLFamilyServer, sm_client: Any, account: Account, mysql_function: Any, ca_bundle: Path,
    leak_guard: LeakGuard,
) -> None:  # fmt: skip
    """AWS's function copies grants by replaying SHOW GRANTS up to " TO ", so WITH GRANT OPTION is lost: the
    comparison leaves options out, and ours rotates on from AWS's alternate."""
    who = account_text(account.username, account.host)
    mysql_server.execute(f"GRANT SELECT ON {ident(account.dbname)}.* TO {who} WITH GRANT OPTION")
    AwsRotationFunction(TARGET, mysql_server, sm_client, ca_bundle, leak_guard, alternating=True).rotate(account.arn)
    clone = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert clone["username"] == account.username + "_clone"
    assert not any("GRANT OPTION" in line for line in mysql_server.grants(clone["username"], account.host))

    rotate(mysql_function(ROTATION_STRATEGY="alternating_users"), account.arn)  # the original's turn, as AWS's clone

    current = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert current["username"] == account.username
    assert TARGET.logs_in(mysql_server, current, ca_bundle)
    assert TARGET.logs_in(mysql_server, secret_at(sm_client, account.arn, "AWSPREVIOUS"), ca_bundle)
