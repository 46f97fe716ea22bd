"""The sample events under ``events/``, generated from the registry like ``template.yaml``.

One event per rotation step for every function folder (``events/<folder>/<step>.json``) and one
``sam local invoke --env-vars`` file with a section per function of the template (``events/env.json``).
``python -m rotation_local template`` writes them; ``tests/unit/test_registry_promises.py`` fails when
they are out of date.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from rotation_core.registry import FunctionSpec, rotation_functions
from rotation_local.invoke import REPO_ROOT

EVENTS_DIR = REPO_ROOT / "events"
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
SAMPLE_ACCOUNT = "123456789012"
SAMPLE_REGION = "us-east-1"
LOCAL_PARAMETERS = {
    "AWS_ENDPOINT_URL_SECRETSMANAGER": "http://127.0.0.1:5000",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": SAMPLE_REGION,
    "POWERTOOLS_LOG_LEVEL": "INFO",
}


def _json(value: object) -> str:
    return json.dumps(value, indent=2) + "\n"


def sample_secret_id(folder: str) -> str:
    return f"arn:aws:secretsmanager:{SAMPLE_REGION}:{SAMPLE_ACCOUNT}:secret:demo/{folder}/app-AbCdEf"


def sample_token(folder: str) -> str:
    """A fixed token per folder (stable across regenerations, different between functions)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"secrets-rotation/events/{folder}"))


def function_env(function: FunctionSpec) -> dict[str, str]:
    """What distinguishes this function's container from its siblings' (the env-vars file's section)."""
    if function.strategy is not None:
        return {"ROTATION_STRATEGY": function.strategy.value}
    return {setting.env: setting.default for setting in function.settings if setting.env == "REVOKE_POLICY"}


def render_events() -> dict[Path, str]:
    """Every generated file below ``events/``, by path relative to it."""
    files: dict[Path, str] = {}
    env: dict[str, dict[str, str]] = {"Parameters": dict(LOCAL_PARAMETERS)}
    for function in rotation_functions():
        env[f"{function.logical_name}Function"] = function_env(function)
        for step in STEPS:
            event = {
                "Step": step,
                "SecretId": sample_secret_id(function.folder),
                "ClientRequestToken": sample_token(function.folder),
            }
            files[Path(function.folder) / f"{step}.json"] = _json(event)
    files[Path("env.json")] = _json(env)
    return files


def write_events(folder: Path = EVENTS_DIR) -> None:
    for relative, text in render_events().items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def stale_events(folder: Path = EVENTS_DIR) -> list[str]:
    """Generated files that are missing or differ from what the registry renders."""
    stale = []
    for relative, text in render_events().items():
        path = folder / relative
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(str(Path(folder.name) / relative))
    return stale
