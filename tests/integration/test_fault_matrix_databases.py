"""The fault matrix of every database engine: each local target, on each server kind, with every registry strategy
the kind supports (``db_strategy``: single user, alternating users, and on MySQL 9.7 dual passwords).

The cases, the fault injection and the checks are in ``integration/fault_matrix.py``; what is
engine-specific comes from the engine's local target (``rotation_local.targets``) and the registry:
the handler (``database_handler(<engine>)``), where the credential changes (the engine class's
``set_own_password`` / ``set_clone_password`` / ``set_dual_password``), and the driver whose connects are sent
to a closed port.
"""

from __future__ import annotations

import importlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import LeakGuard
from integration.fault_matrix import (
    CASE_IDS,
    CASES,
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
from integration.support import unique
from rotation_core.handler import RotationHandler, database_handler
from rotation_core.registry import engine as engine_spec
from rotation_core.secrets import SecretStore
from rotation_core.settings import Strategy
from rotation_local import emulator
from rotation_local.server_kinds import ServerKind
from rotation_local.targets import DatabaseTarget

RESULTS: list[Result] = []
# Where each strategy changes the credential (the crash-after-change case dies right after it): dual passwords are
# set by the user itself or a service (set_dual_password) or by a master (set_dual_password_as_admin).
CHANGES_CREDENTIAL = {
    "single_user": ("set_own_password",),
    "alternating_users": ("set_clone_password",),
    "dual_password": ("set_dual_password", "set_dual_password_as_admin"),
}
# Strategies after which the credentials the rotation replaced still log in.
KEEPS_PREVIOUS = frozenset({"alternating_users", "dual_password"})


@pytest.fixture(scope="module", autouse=True)
def _print_database_matrices(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    names = sorted({result.function for result in RESULTS})
    print_matrix(request, names, RESULTS)


@pytest.fixture(scope="session")
def fm_master(
    db_kind: ServerKind, db_server: Any, db_target: DatabaseTarget, sm_server: emulator.EmulatorServer
) -> tuple[str, str]:
    """One master per server, shared by the alternating-users secrets there: its secret's ARN and user name."""
    client = sm_client_for(sm_server.endpoint_url)
    user, password = unique("fmm")[:16], secrets.token_urlsafe(24)
    db_target.create_master(db_server, user, password)
    value = db_target.secret(db_server, user, password)
    arn: str = client.create_secret(Name=unique("fm-master"), SecretString=json.dumps(value))["ARN"]
    return arn, user


@pytest.fixture
def fm_target(
    db_strategy: str,
    db_kind: ServerKind,
    db_server: Any,
    db_target: DatabaseTarget,
    sm_server: emulator.EmulatorServer,
    ca_bundle: Path,
    fm_master: tuple[str, str],
    sm_env: dict[str, str],  # every other AWS API the function calls (RDS, ElastiCache, MemoryDB): the emulator
) -> Target:
    strategy = db_strategy
    client = sm_client_for(sm_server.endpoint_url)
    passwords: list[str] = []
    environ = {"ROTATION_STRATEGY": strategy, "DB_CA_BUNDLE": str(ca_bundle), "DB_CONNECT_TIMEOUT": "2"}
    engine = engine_spec(db_target.engine)

    def new_container() -> RotationHandler:
        return database_handler(engine, store=SecretStore(client), environ=environ)

    def new_secret() -> str:
        username, password = unique("fm")[:16], secrets.token_urlsafe(24)
        passwords.append(password)
        db_target.create_login(db_server, username, password, **db_target.login_options(Strategy(strategy)))
        value = db_target.secret(db_server, username, password, owner_team="payments")
        if strategy == "alternating_users":
            value["masterarn"], master_user = fm_master
            db_target.allow_master(db_server, master_user, username)
        arn: str = client.create_secret(Name=unique("fm"), SecretString=json.dumps(value))["ARN"]
        db_target.secret_created(db_server, value, arn)
        emulator.enable_rotation(arn)
        return arn

    def check_after(_arn: str, current: dict[str, Any], original: dict[str, Any]) -> str:
        kept = {k: v for k, v in current.items() if k not in ("username", "password")}
        if kept != {k: v for k, v in original.items() if k not in ("username", "password")}:
            return "keys of the secret changed"
        if strategy in KEEPS_PREVIOUS and not db_target.logs_in(db_server, original, ca_bundle):
            return f"{strategy}: the previous credentials stopped working"
        return ""

    methods = CHANGES_CREDENTIAL[strategy]
    driver = importlib.import_module(db_target.driver_module)
    return Target(
        name=f"{db_kind.name} {strategy}",
        client=client,
        new_container=new_container,
        new_secret=new_secret,
        logs_in=lambda secret: db_target.logs_in(db_server, secret, ca_bundle),
        unreachable=lambda: connect_redirected(driver, db_target.driver_connect),
        crash_after_change=lambda: crash_after_method(engine.load(), *methods),
        check_after=check_after,
        passwords=passwords,
    )


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_fault_matrix_database_fault_then_retry_completes_without_lockout(
    case: Case, db_strategy: str, fm_target: Target, leak_guard: LeakGuard
) -> None:
    result = run_case(fm_target, case)
    leak_guard.add(*fm_target.passwords)
    RESULTS.append(result)
    check(result)
