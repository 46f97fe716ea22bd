"""The fault matrix, MySQL/MariaDB part (single user and alternating users on each MySQL-family server kind).

The cases, the injection and the checks are those of ``integration/test_fault_matrix.py``; this module
only supplies the MariaDB/MySQL targets, whose fixtures live in this folder.
"""

from __future__ import annotations

import json
import secrets
import ssl
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pymysql
import pytest

from helpers import LeakGuard
from integration.mysql.conftest import secret_engine, short_name
from integration.test_fault_matrix import (
    CASE_IDS,
    CASES,
    STRATEGY_NAMES,
    Case,
    Result,
    Target,
    check,
    connect_redirected,
    crash_after_method,
    print_matrix,
    run_case,
    sm_client_for,
)
from rotation_core.engines.mysql.engine import MySQLEngine
from rotation_core.handler import RotationHandler, database_handler
from rotation_core.secrets import SecretStore
from rotation_local import emulator
from rotation_local.mariadb_server import MySQLFamilyServer
from rotation_local.server_kinds import ServerKind

RESULTS: list[Result] = []
STRATEGIES = [pytest.param(strategy, marks=pytest.mark.verifies(strategy)) for strategy in STRATEGY_NAMES]


@pytest.fixture(scope="module", autouse=True)
def _print_mysql_matrix(request: pytest.FixtureRequest, mysql_kind: ServerKind) -> Iterator[None]:
    """The matrix of this server kind, once its tests ran."""
    yield
    print_matrix(request, [f"{mysql_kind.name} {strategy}" for strategy in STRATEGY_NAMES], RESULTS)


def mysql_can_login(server: MySQLFamilyServer, ca_bundle: Path, secret: Mapping[str, Any]) -> bool:
    try:
        pymysql.connect(
            host="127.0.0.1",
            port=server.port,
            user=secret["username"],
            password=secret["password"],
            ssl=ssl.create_default_context(cafile=str(ca_bundle)),
            connect_timeout=5,
        ).close()
    except pymysql.err.OperationalError:
        return False
    return True


@pytest.fixture(scope="module")
def mysql_master(mysql_server: MySQLFamilyServer, sm_server: emulator.EmulatorServer) -> str:
    """One admin secret shared by the module's alternating-users secrets."""
    client = sm_client_for(sm_server.endpoint_url)
    user, password = short_name("fmmaster"), secrets.token_urlsafe(24)
    mysql_server.create_login(user, "127.0.0.1", password)
    mysql_server.execute("GRANT ALL PRIVILEGES ON *.* TO %s@'127.0.0.1' WITH GRANT OPTION", (user,))
    value = {"engine": secret_engine(mysql_server), "host": "127.0.0.1", "port": mysql_server.port, "username": user,
             "password": password}  # fmt: skip
    arn: str = client.create_secret(Name=short_name("fm-master"), SecretString=json.dumps(value))["ARN"]
    return arn


@pytest.fixture(scope="module", params=STRATEGIES)
def mysql_target(
    request: pytest.FixtureRequest,
    mysql_kind: ServerKind,
    mysql_server: MySQLFamilyServer,
    sm_server: emulator.EmulatorServer,
    ca_bundle: Path,
    mysql_master: str,
) -> Target:
    strategy: str = request.param
    client = sm_client_for(sm_server.endpoint_url)
    passwords: list[str] = []
    environ = {"ROTATION_STRATEGY": strategy, "DB_CA_BUNDLE": str(ca_bundle), "DB_CONNECT_TIMEOUT": "2"}

    def new_container() -> RotationHandler:
        return database_handler("mysql", store=SecretStore(client), environ=environ)

    def new_secret() -> str:
        username, password = short_name("fm"), secrets.token_urlsafe(24)
        passwords.append(password)
        mysql_server.create_login(username, "%", password)
        value: dict[str, Any] = {"engine": secret_engine(mysql_server), "host": "127.0.0.1", "port": mysql_server.port,
                                 "username": username, "password": password, "owner_team": "payments"}  # fmt: skip
        if strategy == "alternating_users":
            value["masterarn"] = mysql_master
        arn: str = client.create_secret(Name=short_name("fm"), SecretString=json.dumps(value))["ARN"]
        emulator.enable_rotation(arn)
        return arn

    def check_after(_arn: str, current: dict[str, Any], original: dict[str, Any]) -> str:
        kept = {k: v for k, v in current.items() if k not in ("username", "password")}
        if kept != {k: v for k, v in original.items() if k not in ("username", "password")}:
            return "keys of the secret changed"
        if strategy == "alternating_users" and not mysql_can_login(mysql_server, ca_bundle, original):
            return "alternating users: the previous credentials stopped working"
        return ""

    method = "set_clone_password" if strategy == "alternating_users" else "set_own_password"
    return Target(
        name=f"{mysql_kind.name} {strategy}",
        client=client,
        new_container=new_container,
        new_secret=new_secret,
        logs_in=lambda secret: mysql_can_login(mysql_server, ca_bundle, secret),
        unreachable=lambda: connect_redirected(pymysql),
        crash_after_change=lambda: crash_after_method(MySQLEngine, method),
        check_after=check_after,
        passwords=passwords,
    )


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_fault_matrix_mysql_fault_then_retry_completes_without_lockout(
    case: Case, mysql_target: Target, leak_guard: LeakGuard
) -> None:
    result = run_case(mysql_target, case)
    leak_guard.add(*mysql_target.passwords)
    RESULTS.append(result)
    check(result)
