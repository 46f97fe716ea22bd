"""The Docker-free runner invoking the PostgreSQL function, in a child process and from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from helpers import FUNCTIONS_DIR, REPO_ROOT, log_records
from integration.support import Account, secret_at, stages
from rotation_local import emulator, service
from rotation_local.invoke import invoke


def test_invoke_child_process_runs_every_step_like_lambda(
    sm_env: dict[str, str], sm_client: Any, account: Account, ca_bundle: Path
) -> None:
    env = {**sm_env, "DB_CA_BUNDLE": str(ca_bundle)}
    outputs: list[str] = []

    def step(event: Any) -> None:
        result = invoke(FUNCTIONS_DIR / "postgres", event, env=env)
        outputs.append(result.stdout + result.stderr)
        assert result.ok, result.error_message

    token = service.rotate(account.arn, step)

    assert stages(sm_client, account.arn)[token] == ["AWSCURRENT"]
    records = [record for text in outputs for record in log_records(text)]
    assert {r["step"] for r in records} == set(service.STEPS)
    assert all(r["service"] == "secrets-rotation" and r["secret_arn"] == account.arn for r in records)
    assert all(r["function_request_id"] for r in records)


def test_invoke_cli_with_event_and_env_vars_files(
    sm_env: dict[str, str], sm_client: Any, account: Account, ca_bundle: Path, tmp_path: Path
) -> None:
    token = emulator.stage_pending_placeholder(account.arn)
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(service.event("createSecret", account.arn, token)))
    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps({"Parameters": {**sm_env, "DB_CA_BUNDLE": str(ca_bundle)}}))

    result = subprocess.run(
        [sys.executable, "-m", "rotation_local", "invoke", "--function", "functions/postgres",
         "--event", str(event_file), "--env-vars", str(env_file)],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO_ROOT / 'tools'}"},
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"status": "ok"}
    assert secret_at(sm_client, account.arn, "AWSPENDING")["username"] == account.username
