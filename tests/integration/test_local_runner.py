"""The Docker-free runner: the README's main command, and `make invoke` for machines without Docker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from helpers import REPO_ROOT, LeakGuard
from integration.support import create_account, unique
from rotation_core.registry import engine
from rotation_core.settings import Strategy
from rotation_local import demo, emulator
from rotation_local.invoke import load_env_vars
from rotation_local.server_kinds import ServerKind
from rotation_local.targets import DatabaseTarget, database_targets

DATABASES = tuple(database_targets())
# Engines whose first strategy is single user (the demo's default); the others run their first one (Valkey: dual
# passwords, after which the previous password still logs in).
SINGLE_USER_FIRST = tuple(e for e in DATABASES if engine(e).strategies[0] is Strategy.SINGLE_USER)
ALTERNATING = tuple(e for e in DATABASES if Strategy.ALTERNATING_USERS in engine(e).strategies)


def test_demo_default_rotates_every_database_target_and_api_key_without_printing_values() -> None:
    lines: list[str] = []

    assert demo.run(out=lines.append) == 0

    text = "\n".join(lines)
    headings = [line.strip().split(":")[0] for line in lines if line.strip().startswith("== ")]
    assert headings == [f"== {engine}" for engine in (*DATABASES, "api_key")]
    assert DATABASES == ("mysql", "postgres", "valkey")  # every engine of the registry has a local target
    assert text.count("new AWSCURRENT as app_user works: yes") == 2 * len(DATABASES)  # two rotations each
    assert text.count("old password refused: yes") == 2 * len(SINGLE_USER_FIRST)
    kept = "previous credentials still work (kept until the next rotation): yes"
    assert text.count(kept) == 2 * (len(DATABASES) - len(SINGLE_USER_FIRST)) + 2  # and the API key's
    assert text.count("new AWSCURRENT works: yes") == 2  # the API key
    assert text.count("key from two generations ago revoked: yes") == 1
    assert "NO" not in text
    assert "0 found" in lines[-1]
    # A passing preflight before each target's rotations, a failing one for a second secret of the first.
    preflights = [line.split()[1] for line in lines if line.strip().startswith("preflight ")]
    assert preflights == ["ok", "FAILED", *["ok"] * len(DATABASES)]
    assert "failed: current_login (auth_failed)" in text


def test_demo_alternating_users_three_rotations_alternate_on_every_database() -> None:
    lines: list[str] = []

    assert demo.run(engines=ALTERNATING, strategy="alternating_users", rotations=3, out=lines.append) == 0

    users = [line.split(" as ")[1].split()[0] for line in lines if "new AWSCURRENT as" in line]
    assert users == ["app_user_clone", "app_user", "app_user_clone"] * len(ALTERNATING)
    assert "previous credentials still work (kept until the next rotation): yes" in "\n".join(lines)


def test_preflight_cli_correct_setup_exits_zero_with_report(
    db_kind: ServerKind, db_server: Any, db_target: DatabaseTarget, sm_client: Any, sm_env: dict[str, str],
    ca_bundle: Path, leak_guard: LeakGuard, tmp_path: Path,
) -> None:  # fmt: skip
    account = create_account(db_target, db_server, sm_client, leak_guard, username=unique("cli")[:16])
    env_file = tmp_path / "env.json"
    strategy = db_target.strategies(db_kind)[0].value  # the kind's first: single user where the engine has it
    env = {**sm_env, "DB_CA_BUNDLE": str(ca_bundle), "ROTATION_STRATEGY": strategy}
    env_file.write_text(json.dumps({"Parameters": env}))

    result = run_cli("preflight", "--function", f"functions/{db_target.engine}", "--secret-id", account.arn,
                     "--env-vars", str(env_file), "--function-name", emulator.LOCAL_FUNCTION, "--json")  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    # Dual passwords skip either the master's checks or the user's own change, and say which applies.
    not_applicable = [c for c in report["checks"] if c["status"] == "skipped" and "master" in c["fix"]]
    assert {c["status"] for c in report["checks"] if c not in not_applicable} == {"ok"}
    assert bool(not_applicable) is (strategy == "dual_password")


def test_preflight_cli_failed_check_exits_one_and_names_it(sm_env: dict[str, str], sm_client: Any) -> None:
    arn = sm_client.create_secret(Name=unique("cli"), SecretString=json.dumps({"host": "db.example"}))["ARN"]

    result = run_cli("preflight", "--function", "functions/postgres", "--secret-id", arn,
                     "--endpoint", sm_env["AWS_ENDPOINT_URL_SECRETSMANAGER"])  # fmt: skip

    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == "preflight: a check FAILED"
    failed = [line.split()[1] for line in result.stdout.splitlines() if line.strip().startswith("FAILED")]
    assert failed == ["rotation_function", "rotation_enabled", "secret_json"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rotation_local", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO_ROOT / 'tools'}", "AWS_ACCESS_KEY_ID": "testing",
             "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": emulator.DEFAULT_REGION},
    )  # fmt: skip


def test_invoke_cli_failure_exits_non_zero_with_error_json(sm_env: dict[str, str], tmp_path: Path) -> None:
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps({"Step": "rotateEverything", "SecretId": "x", "ClientRequestToken": "t"}))
    result = subprocess.run(
        [sys.executable, "-m", "rotation_local", "invoke", "--function", "functions/postgres",
         "--event", str(event_file), "--endpoint", sm_env["AWS_ENDPOINT_URL_SECRETSMANAGER"]],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO_ROOT / 'tools'}"},
    )  # fmt: skip
    assert result.returncode == 1
    assert json.loads(result.stdout.strip().splitlines()[-1])["errorType"] == "InvalidEventError"


def test_load_env_vars_merges_parameters_and_function_section() -> None:
    env = load_env_vars(REPO_ROOT / "events" / "env.json", "PostgresAlternatingUsersFunction")
    assert env["ROTATION_STRATEGY"] == "alternating_users"
    assert env["AWS_ENDPOINT_URL_SECRETSMANAGER"].startswith("http://127.0.0.1")
