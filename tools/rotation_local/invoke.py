"""Run a function's handler on an event in a fresh Python process, as Lambda would (no Docker).

The child process sees only the layer's source root and the function's folder on its path (Lambda's
``/opt/python`` and ``/var/task``), the environment given, and a Lambda-like context object: its
function name is ``AWS_LAMBDA_FUNCTION_NAME`` when the environment sets it (as Lambda does), else the
one given, else the folder's name, and its ARN is that function's in the emulator's account and region.
What the handler returns (a preflight's report) comes back as :attr:`Invocation.result`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYER_DIR = REPO_ROOT / "layers" / "rotation_core"

# Runs inside the child. argv: result file, function name.
_CHILD = r"""
import json, os, sys, time, types, uuid
result_path = sys.argv[1]
function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or sys.argv[2]
event = json.load(sys.stdin)
deadline = time.monotonic() + 300
context = types.SimpleNamespace(
    function_name=function_name, function_version="$LATEST", memory_limit_in_mb=128,
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:" + function_name,
    aws_request_id=str(uuid.uuid4()), log_group_name="/aws/lambda/" + function_name,
    log_stream_name="local", get_remaining_time_in_millis=lambda: int((deadline - time.monotonic()) * 1000),
)
outcome = {}
try:
    import app
    outcome["result"] = app.lambda_handler(event, context)
except Exception as error:
    outcome = {"errorType": type(error).__name__, "errorMessage": str(error)}
with open(result_path, "w") as handle:
    json.dump(outcome, handle)
"""


@dataclass(frozen=True)
class Invocation:
    ok: bool
    error_type: str | None
    error_message: str | None
    stdout: str
    stderr: str
    returncode: int
    result: Any = None  # what the handler returned (None for a rotation step)


def invoke(
    function_dir: Path,
    event: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    python: str | None = None,
    layer_dir: Path = LAYER_DIR,
    timeout: float = 300,
    function_name: str | None = None,
) -> Invocation:
    """Invoke ``app.lambda_handler`` of ``function_dir`` with ``event`` in a child process.

    ``function_name`` names the function in the Lambda context (default: the folder's name).
    """
    child_env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    child_env.update(env or {})
    child_env["PYTHONPATH"] = os.pathsep.join([str(layer_dir), str(function_dir)])
    child_env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    child_env.setdefault("AWS_REGION", child_env["AWS_DEFAULT_REGION"])
    with tempfile.TemporaryDirectory(prefix="rotation-invoke-") as scratch:
        result_path = Path(scratch) / "result.json"
        completed = subprocess.run(
            [python or sys.executable, "-c", _CHILD, str(result_path), function_name or function_dir.name],
            input=json.dumps(dict(event)),
            capture_output=True,
            text=True,
            env=child_env,
            cwd=function_dir,
            timeout=timeout,
            check=False,
        )
        outcome: dict[str, Any] = (
            json.loads(result_path.read_text())
            if result_path.exists()
            else {
                "errorType": "ProcessExited",
                "errorMessage": f"the handler process exited with code {completed.returncode} before returning",
            }
        )
    return Invocation(
        ok="errorType" not in outcome,
        error_type=outcome.get("errorType"),
        error_message=outcome.get("errorMessage"),
        stdout=completed.stdout,
        stderr=completed.stderr,
        returncode=completed.returncode,
        result=outcome.get("result"),
    )


def load_env_vars(path: Path, function_name: str | None = None) -> dict[str, str]:
    """Read a ``sam local invoke --env-vars`` file: ``{"Parameters": {...}}`` and/or per-function maps."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    merged: dict[str, Any] = dict(data.get("Parameters", {}))
    if function_name and function_name in data:
        merged.update(data[function_name])
    elif function_name is None:
        sections = [value for key, value in data.items() if key != "Parameters" and isinstance(value, dict)]
        if len(sections) == 1:
            merged.update(sections[0])
    return {key: str(value) for key, value in merged.items()}


def load_function(name: str) -> ModuleType:
    """A separate in-process instance of ``functions/<name>/app.py``, as a separate container would have.

    Its handler builds its settings and clients on its first call, from the environment of that moment.
    """
    path = REPO_ROOT / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"function_{name}_{uuid.uuid4().hex}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
