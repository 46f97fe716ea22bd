"""What `sam build` produced (.aws-sam/build) rotates real credentials under Python 3.13.

The handlers run through the Docker-free runner with the built layer as /opt/python and the built
function folder as /var/task, on .venv-py313 (Python 3.13 with boto3 only, like the Lambda runtime),
so every other import must come from the build output (see integration/built.py). MySQL and API-key
rotations from the build live beside their fixtures, in integration/mysql and integration/api_keys.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from integration.built import BUILT_FUNCTIONS, Build, run_built
from integration.conftest import secret_at, stages
from rotation_local import service
from rotation_local.postgres_server import PostgresServer


def _can_login(server: PostgresServer, ca_bundle: Path, secret: dict[str, Any]) -> bool:
    try:
        psycopg2.connect(
            host="127.0.0.1", port=server.port, user=secret["username"], password=secret["password"],
            dbname=secret["dbname"], sslmode="verify-full", sslrootcert=str(ca_bundle), connect_timeout=5,
        ).close()  # fmt: skip
    except psycopg2.OperationalError:
        return False
    return True


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


@pytest.mark.verifies("single_user")
def test_built_postgres_single_user_full_rotation_new_password_works(
    build: Build, pg_server: PostgresServer, sm_env: dict[str, str], sm_client: Any, pg_account: Any, ca_bundle: Path
) -> None:
    account = pg_account()
    old = secret_at(sm_client, account.arn, "AWSCURRENT")
    env = {**sm_env, "DB_CA_BUNDLE": str(ca_bundle), "ROTATION_STRATEGY": "single_user"}

    token = service.rotate(account.arn, run_built(build, "PostgresSingleUserFunction", env))

    new = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert stages(sm_client, account.arn)[token] == ["AWSCURRENT"]
    assert new["password"] != old["password"]
    assert _can_login(pg_server, ca_bundle, new)
    assert not _can_login(pg_server, ca_bundle, old)


@pytest.mark.verifies("alternating_users")
def test_built_postgres_alternating_users_two_rotations_alternate(
    build: Build, pg_server: PostgresServer, sm_env: dict[str, str], sm_client: Any, pg_account: Any, ca_bundle: Path
) -> None:
    account = pg_account(with_master=True)
    env = {**sm_env, "DB_CA_BUNDLE": str(ca_bundle), "ROTATION_STRATEGY": "alternating_users"}
    step = run_built(build, "PostgresAlternatingUsersFunction", env)

    service.rotate(account.arn, step)
    first = secret_at(sm_client, account.arn, "AWSCURRENT")
    service.rotate(account.arn, step)
    second = secret_at(sm_client, account.arn, "AWSCURRENT")

    assert first["username"] != account.username
    assert second["username"] == account.username
    assert _can_login(pg_server, ca_bundle, first)
    assert _can_login(pg_server, ca_bundle, second)
