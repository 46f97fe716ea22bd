"""The sample events under ``events/``, generated from the registry like ``template.yaml``.

One folder of events per function of the template, one event per rotation step in it:
``events/<folder>/<strategy>/<step>.json`` for a database function (``events/postgres/single-user/``),
``events/<folder>/<step>.json`` for a function without strategies (``events/api_key/``), and beside
them ``preflight.json``, the preflight of the same secret (``{"Preflight": {"SecretId": ...}}``). Each event
names its secret by **name**, a valid ``SecretId`` that reads like production: the name matches the
default of the template's ``<Function>Secrets`` parameter (``rotation/postgres/single-user/app``),
and the name of the master or admin secret it points at matches the template's read-only parameter
(``rotation/postgres/master/app``). Each function's events carry a fixed token of their own, which
``python -m rotation_local local-env`` stages as AWSPENDING (see ``local_env.py``).

Also one ``sam local invoke --env-vars`` file with a section per function of the template
(``events/env.json``). ``python -m rotation_local template`` writes them (and removes event files
it no longer renders); ``tests/unit/test_registry_promises.py`` fails when they are out of date.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from pathlib import Path

from rotation_core.registry import FunctionSpec, rotation_functions
from rotation_core.settings import Strategy
from rotation_local.invoke import REPO_ROOT

EVENTS_DIR = REPO_ROOT / "events"
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
PREFLIGHT_EVENT = "preflight"  # the file name (without .json) of each function's preflight event
EVENT_NAMES = (*STEPS, PREFLIGHT_EVENT)
SAMPLE_REGION = "us-east-1"
NAME_LEAF = "app"  # the last part of every sample secret's name
LOCAL_PARAMETERS = {
    "AWS_ENDPOINT_URL_SECRETSMANAGER": "http://127.0.0.1:5000",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": SAMPLE_REGION,
    "POWERTOOLS_LOG_LEVEL": "INFO",
}


def _json(value: object) -> str:
    return json.dumps(value, indent=2) + "\n"


def strategy_words(strategy: Strategy) -> str:
    """``single-user``: how names and folders spell a strategy."""
    return strategy.value.replace("_", "-")


def function_id(function: FunctionSpec) -> str:
    """The template's logical id of the function (``PostgresSingleUserFunction``), as sam names it."""
    return f"{function.logical_name}Function"


def event_folder(function: FunctionSpec) -> Path:
    """Where the function's events live, relative to ``events/``."""
    if function.strategy is None:
        return Path(function.folder)
    return Path(function.folder) / strategy_words(function.strategy)


def secret_name(function: FunctionSpec) -> str:
    """The name of the secret the function's events rotate (within the template's default pattern)."""
    name = "rotation/" + function.folder.replace("_", "-")
    if function.strategy is not None:
        name += "/" + strategy_words(function.strategy)
    return f"{name}/{NAME_LEAF}"


def other_secret_name(function: FunctionSpec) -> str | None:
    """The master (alternating users) or admin (API keys) secret the rotated one names, if any."""
    if function.engine is None:
        return f"rotation/{function.folder.replace('_', '-')}-admin/{NAME_LEAF}"
    if function.strategy is Strategy.ALTERNATING_USERS:
        return f"rotation/{function.engine.name}/master/{NAME_LEAF}"
    return None


def sample_token(function: FunctionSpec) -> str:
    """A fixed token per function (stable across regenerations, different between functions)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"secrets-rotation/events/{function.logical_name}"))


def step_events(function: FunctionSpec, token: str) -> dict[str, dict[str, str]]:
    """The four events of one rotation of the function's secret with ``token``, by step."""
    return {step: {"Step": step, "SecretId": secret_name(function), "ClientRequestToken": token} for step in STEPS}


def preflight_event(function: FunctionSpec) -> dict[str, dict[str, str]]:
    """The preflight of the function's sample secret: the exact event shape the function accepts."""
    return {"Preflight": {"SecretId": secret_name(function)}}


def function_env(function: FunctionSpec) -> dict[str, str]:
    """What distinguishes this function's container from its siblings' (the env-vars file's section)."""
    if function.strategy is not None:
        return {"ROTATION_STRATEGY": function.strategy.value}
    return {setting.env: setting.default for setting in function.settings if setting.env == "REVOKE_POLICY"}


def render_step_events(functions: Iterable[FunctionSpec], token_of: dict[str, str]) -> dict[Path, str]:
    """Event files for ``functions``, each with its token from ``token_of`` (by logical id), by path."""
    files: dict[Path, str] = {}
    for function in functions:
        for step, event in step_events(function, token_of[function_id(function)]).items():
            files[event_folder(function) / f"{step}.json"] = _json(event)
    return files


def render_events() -> dict[Path, str]:
    """Every generated file below ``events/``, by path relative to it."""
    functions = list(rotation_functions())
    files = render_step_events(functions, {function_id(f): sample_token(f) for f in functions})
    for function in functions:
        files[event_folder(function) / f"{PREFLIGHT_EVENT}.json"] = _json(preflight_event(function))
    env: dict[str, dict[str, str]] = {"Parameters": dict(LOCAL_PARAMETERS)}
    for function in functions:
        env[function_id(function)] = function_env(function)
    files[Path("env.json")] = _json(env)
    return files


def write_files(folder: Path, files: dict[Path, str]) -> None:
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _unrendered(folder: Path, rendered: dict[Path, str]) -> list[Path]:
    """JSON files below ``folder`` that the registry no longer renders (an older layout's events)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*.json") if p.relative_to(folder) not in rendered)


def write_events(folder: Path = EVENTS_DIR) -> None:
    files = render_events()
    for path in _unrendered(folder, files):
        path.unlink()
        if not any(path.parent.iterdir()) and path.parent != folder:
            path.parent.rmdir()
    write_files(folder, files)


def stale_events(folder: Path = EVENTS_DIR) -> list[str]:
    """Generated files that are missing or differ from what the registry renders, and files it does not render."""
    files = render_events()
    stale = []
    for relative, text in files.items():
        path = folder / relative
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(str(Path(folder.name) / relative))
    stale += [f"{Path(folder.name) / p.relative_to(folder)} (not generated)" for p in _unrendered(folder, files)]
    return stale
