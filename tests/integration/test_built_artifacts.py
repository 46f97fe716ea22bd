"""What `sam build` produced (.aws-sam/build) rotates real credentials under Python 3.13.

The handlers run through the Docker-free runner with the built layer as /opt/python and the built
function folder as /var/task, on .venv-py313 (Python 3.13 with boto3 only, like the Lambda runtime),
so every other import must come from the build output. A missing or stale build is rebuilt once by
`.ci/template-checks.sh build`; if that is impossible the tests fail. The one exception: outside CI
(`CI` unset), on a machine with no Python 3.13 at all, they are skipped with that reason.
"""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from helpers import REPO_ROOT
from integration.conftest import secret_at, stages
from rotation_local import service
from rotation_local.invoke import invoke
from rotation_local.postgres_server import PostgresServer

BUILD_DIR = REPO_ROOT / ".aws-sam" / "build"
RUNTIME_PYTHON = REPO_ROOT / ".venv-py313" / "bin" / "python"
LAYER_SOURCE = REPO_ROOT / "layers" / "rotation_core"
# Built function folder -> source folder.
BUILT_FUNCTIONS = {
    "PostgresSingleUserFunction": "postgres",
    "PostgresAlternatingUsersFunction": "postgres",
    "MySqlSingleUserFunction": "mysql",
    "MySqlAlternatingUsersFunction": "mysql",
    "ApiKeyFunction": "api_key",
}


@dataclass(frozen=True)
class Build:
    layer: Path  # what Lambda mounts as /opt/python
    python: Path

    def function(self, name: str) -> Path:
        return BUILD_DIR / name


def _stale_reasons() -> list[str]:
    """Why the build output does not match the sources (empty when it does)."""
    layer = BUILD_DIR / "RotationCoreLayer" / "python"
    if not layer.is_dir() or not RUNTIME_PYTHON.exists():
        return ["no build output (or no .venv-py313)"]
    reasons = []
    pending = [(LAYER_SOURCE / "rotation_core", layer / "rotation_core")]
    while pending:
        source, built = pending.pop()
        comparison = filecmp.dircmp(source, built, ignore=["__pycache__"])
        reasons += [f"{source.name}/{name}" for name in comparison.left_only + comparison.diff_files]
        reasons += [f"{source.name}/{name} (removed)" for name in comparison.right_only]
        pending += [(source / name, built / name) for name in comparison.common_dirs]
    for built_name, source_name in BUILT_FUNCTIONS.items():
        for file in ("app.py", "requirements.txt"):
            source_file, built_file = REPO_ROOT / "functions" / source_name / file, BUILD_DIR / built_name / file
            if not built_file.exists() or not filecmp.cmp(source_file, built_file, shallow=False):
                reasons.append(f"{built_name}/{file}")
    return reasons


def _python313_missing() -> bool:
    """True when `.ci/template-checks.sh` would find no Python 3.13 to build for the runtime with."""
    probe = subprocess.run(
        ["bash", "-c", f"source <(sed -n '/^find_python313()/,/^}}/p' {REPO_ROOT / '.ci' / 'template-checks.sh'})"
         " && find_python313"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return probe.returncode != 0


@pytest.fixture(scope="session")
def build() -> Build:
    reasons = _stale_reasons()
    if reasons and _python313_missing() and not os.environ.get("CI"):
        # A newcomer's machine (Debian 12, Ubuntu 24.04) has no Python 3.13; CI has one and never skips.
        pytest.skip("the built-artifact tests need a Python 3.13 (e.g. `pyenv install 3.13.0`); CI runs them")
    if reasons:
        completed = subprocess.run(
            ["bash", str(REPO_ROOT / ".ci" / "template-checks.sh"), "build"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        if completed.returncode != 0 or _stale_reasons():
            pytest.fail(
                "the SAM build output is missing or stale and `.ci/template-checks.sh build` could not "
                f"rebuild it (stale: {', '.join(reasons[:5])}):\n{completed.stderr[-3000:]}",
                pytrace=False,
            )
    return Build(layer=BUILD_DIR / "RotationCoreLayer" / "python", python=RUNTIME_PYTHON)


def _run_built(build: Build, function: str, env: dict[str, str]) -> Callable[[Any], None]:
    def step(event: Any) -> None:
        result = invoke(build.function(function), event, env=env, python=str(build.python), layer_dir=build.layer)
        assert result.ok, f"{result.error_type}: {result.error_message}\n{result.stderr[-2000:]}"

    return step


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


def test_built_postgres_single_user_full_rotation_new_password_works(
    build: Build, pg_server: PostgresServer, sm_env: dict[str, str], sm_client: Any, pg_account: Any, ca_bundle: Path
) -> None:
    account = pg_account()
    old = secret_at(sm_client, account.arn, "AWSCURRENT")
    env = {**sm_env, "DB_CA_BUNDLE": str(ca_bundle), "ROTATION_STRATEGY": "single_user"}

    token = service.rotate(account.arn, _run_built(build, "PostgresSingleUserFunction", env))

    new = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert stages(sm_client, account.arn)[token] == ["AWSCURRENT"]
    assert new["password"] != old["password"]
    assert _can_login(pg_server, ca_bundle, new)
    assert not _can_login(pg_server, ca_bundle, old)


def test_built_postgres_alternating_users_two_rotations_alternate(
    build: Build, pg_server: PostgresServer, sm_env: dict[str, str], sm_client: Any, pg_account: Any, ca_bundle: Path
) -> None:
    account = pg_account(with_master=True)
    env = {**sm_env, "DB_CA_BUNDLE": str(ca_bundle), "ROTATION_STRATEGY": "alternating_users"}
    step = _run_built(build, "PostgresAlternatingUsersFunction", env)

    service.rotate(account.arn, step)
    first = secret_at(sm_client, account.arn, "AWSCURRENT")
    service.rotate(account.arn, step)
    second = secret_at(sm_client, account.arn, "AWSCURRENT")

    assert first["username"] != account.username
    assert second["username"] == account.username
    assert _can_login(pg_server, ca_bundle, first)
    assert _can_login(pg_server, ca_bundle, second)
