"""The `sam build` output and how to run it under Python 3.13 (shared by the built-artifact tests).

A missing or stale build is rebuilt once by `.ci/template-checks.sh build`; if that is impossible the
tests fail. The one exception: outside CI (`CI` unset), on a machine with no Python 3.13 at all, they
are skipped with that reason.
"""

from __future__ import annotations

import filecmp
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import REPO_ROOT
from rotation_core.registry import rotation_functions
from rotation_local.invoke import invoke

BUILD_DIR = REPO_ROOT / ".aws-sam" / "build"
RUNTIME_PYTHON = REPO_ROOT / ".venv-py313" / "bin" / "python"
LAYER_SOURCE = REPO_ROOT / "layers" / "rotation_core"
# Built function folder -> source folder, for every function of the registry.
BUILT_FUNCTIONS = {function.logical_name + "Function": function.folder for function in rotation_functions()}


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


def prepare_build() -> Build:
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


def run_built(build: Build, function: str, env: dict[str, str]) -> Callable[[Any], None]:
    def step(event: Any) -> None:
        result = invoke(build.function(function), event, env=env, python=str(build.python), layer_dir=build.layer)
        assert result.ok, f"{result.error_type}: {result.error_message}\n{result.stderr[-2000:]}"

    return step
