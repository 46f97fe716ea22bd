"""The MySQL function as `sam build` produced it rotates a user of each MySQL-family server kind under Python 3.13."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pymysql
import pytest

from integration.built import Build, run_built
from integration.conftest import secret_at, stages
from rotation_local import service
from rotation_local.mariadb_server import MySQLFamilyServer


def can_login(server: MySQLFamilyServer, ca_bundle: Path, secret: dict[str, Any]) -> bool:
    try:
        pymysql.connect(
            host="127.0.0.1", port=server.port, user=secret["username"], password=secret["password"],
            ssl=ssl.create_default_context(cafile=str(ca_bundle)), connect_timeout=5,
        ).close()  # fmt: skip
    except pymysql.Error:
        return False
    return True


@pytest.mark.verifies("single_user")
def test_built_mysql_single_user_full_rotation_new_password_works(
    build: Build, mysql_server: MySQLFamilyServer, sm_env: dict[str, str], sm_client: Any, mysql_account: Any,
    ca_bundle: Path,
) -> None:  # fmt: skip
    account = mysql_account()
    old = secret_at(sm_client, account.arn, "AWSCURRENT")
    env = {**sm_env, "DB_CA_BUNDLE": str(ca_bundle), "ROTATION_STRATEGY": "single_user"}

    token = service.rotate(account.arn, run_built(build, "MySqlSingleUserFunction", env))

    new = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert stages(sm_client, account.arn)[token] == ["AWSCURRENT"]
    assert can_login(mysql_server, ca_bundle, new)
    assert not can_login(mysql_server, ca_bundle, old)


@pytest.mark.verifies("alternating_users")
def test_built_mysql_alternating_users_two_rotations_alternate(
    build: Build, mysql_server: MySQLFamilyServer, sm_env: dict[str, str], sm_client: Any, mysql_account: Any,
    ca_bundle: Path,
) -> None:  # fmt: skip
    account = mysql_account(with_master=True)
    env = {**sm_env, "DB_CA_BUNDLE": str(ca_bundle), "ROTATION_STRATEGY": "alternating_users"}
    step = run_built(build, "MySqlAlternatingUsersFunction", env)

    service.rotate(account.arn, step)
    first = secret_at(sm_client, account.arn, "AWSCURRENT")
    service.rotate(account.arn, step)
    second = secret_at(sm_client, account.arn, "AWSCURRENT")

    assert first["username"] == f"{account.username}_clone"
    assert second["username"] == account.username
    assert can_login(mysql_server, ca_bundle, first)
    assert can_login(mysql_server, ca_bundle, second)
