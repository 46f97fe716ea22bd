"""What `sam build` produced (.aws-sam/build) rotates real credentials under Python 3.13.

The handlers run through the Docker-free runner with the built layer as /opt/python and the built
function folder as /var/task, on .venv-py313 (Python 3.13 with boto3 only, like the Lambda runtime),
so every other import must come from the build output (see integration/built.py). Every database
function rotates on every server kind of its engine; the API-key function's built test lives beside
its fixtures, in integration/api_keys.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers import LeakGuard
from integration.built import BUILT_FUNCTIONS, Build, run_built
from integration.support import create_account, secret_at, stages, unique
from rotation_core.registry import rotation_functions
from rotation_core.settings import Strategy
from rotation_local import service
from rotation_local.server_kinds import ServerKind
from rotation_local.targets import DatabaseTarget


def test_built_runtime_python_313_with_boto3_only(build: Build) -> None:
    probe = (
        "import sys, importlib.util as u; print(json.dumps([sys.version_info[:2], "
        "[m for m in ('boto3', 'psycopg2', 'pymysql', 'aws_lambda_powertools', 'rotation_core') if u.find_spec(m)]]))"
    )
    completed = subprocess.run(
        [str(build.python), "-c", f"import json; {probe}"], capture_output=True, text=True, check=True, env={}
    )

    assert json.loads(completed.stdout) == [[3, 13], ["boto3"]]


def test_built_api_key_function_and_layer_ship_no_database_driver(build: Build) -> None:
    shipped = {p.name.lower() for p in build.function("ApiKeyFunction").iterdir()}
    shipped |= {p.name.lower() for p in build.layer.iterdir()}

    assert not {name for name in shipped if name.startswith(("psycopg", "pymysql"))}
    assert not list(build.layer.rglob("*.so"))
    assert list(build.function("PostgresSingleUserFunction").glob("psycopg2/_psycopg.cpython-313-*.so"))


@pytest.mark.parametrize("function", sorted(BUILT_FUNCTIONS))
def test_built_function_imports_under_python_313(build: Build, function: str) -> None:
    completed = subprocess.run(
        [str(build.python), "-c", "import app; assert callable(app.lambda_handler)"],
        cwd=build.function(function), capture_output=True, text=True, check=False,
        env={"PYTHONPATH": f"{build.layer}:{build.function(function)}", "AWS_DEFAULT_REGION": "us-east-1"},
    )  # fmt: skip

    assert completed.returncode == 0, completed.stderr[-2000:]


def test_built_database_function_rotates_on_every_server_kind(
    build: Build, db_kind: ServerKind, db_server: Any, db_target: DatabaseTarget, db_strategy: str,
    sm_env: dict[str, str], sm_client: Any, ca_bundle: Path, leak_guard: LeakGuard,
) -> None:  # fmt: skip
    """Each strategy's built function (those the kind supports), twice: single user changes the password, alternating
    users take turns, dual passwords keep the previous one valid."""
    strategy = Strategy(db_strategy)
    function = next(f for f in rotation_functions() if f.folder == db_kind.family and f.strategy is strategy)
    account = create_account(
        db_target, db_server, sm_client, leak_guard, username=unique("built")[:16],
        master_username=unique("bm")[:16], with_master=strategy is Strategy.ALTERNATING_USERS,
        login_options=db_target.login_options(strategy),
    )  # fmt: skip
    first = secret_at(sm_client, account.arn, "AWSCURRENT")
    env = {**sm_env, "DB_CA_BUNDLE": str(ca_bundle), "ROTATION_STRATEGY": strategy.value}
    step = run_built(build, function.logical_name + "Function", env)

    generations = [first]
    for _ in range(2):
        token = service.rotate(account.arn, step)
        assert stages(sm_client, account.arn)[token] == ["AWSCURRENT"]
        generations.append(secret_at(sm_client, account.arn, "AWSCURRENT"))

    assert db_target.logs_in(db_server, generations[-1], ca_bundle)
    if strategy is Strategy.SINGLE_USER:
        assert len({g["password"] for g in generations}) == 3
        assert not any(db_target.logs_in(db_server, old, ca_bundle) for old in generations[:-1])
    elif strategy is Strategy.DUAL_PASSWORD:
        assert len({g["password"] for g in generations}) == 3
        assert {g["username"] for g in generations} == {account.username}
        assert db_target.logs_in(db_server, generations[-2], ca_bundle)  # the secondary password
        assert not db_target.logs_in(db_server, generations[0], ca_bundle)  # replaced by the second rotation
    else:
        assert db_target.logs_in(db_server, generations[-2], ca_bundle)  # the previous user keeps working
        assert [g["username"] for g in generations] == [account.username, account.username + "_clone", account.username]
