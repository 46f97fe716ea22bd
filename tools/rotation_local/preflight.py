"""``python -m rotation_local preflight``: the function's preflight of one secret, run locally like ``invoke``.

The handler runs in a child process, exactly as ``invoke`` runs it (the event is the one the deployed
function takes, ``{"Preflight": {"SecretId": ...}}``), against the Secrets Manager the environment names
(the emulator of ``make local-env`` or ``make demo``). The report is printed as a table, or with
``--json`` as the function returned it; the exit code is 0 when every check passed, 1 when one failed,
2 when the invocation itself failed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rotation_local.invoke import Invocation, invoke

Out = Callable[[str], None]
_MARK = {"ok": "ok", "failed": "FAILED", "skipped": "skipped"}


def preflight_event(secret_id: str) -> dict[str, dict[str, str]]:
    return {"Preflight": {"SecretId": secret_id}}


def run_preflight(
    function_dir: Path,
    secret_id: str,
    *,
    env: Mapping[str, str],
    function_name: str | None = None,
    python: str | None = None,
) -> Invocation:
    return invoke(function_dir, preflight_event(secret_id), env=env, python=python, function_name=function_name)


def report_lines(report: Mapping[str, Any], *, indent: str = "  ", only_failed_fixes: bool = False) -> list[str]:
    """The report as lines people read: one per check (status, name, category), the fix under each failure."""
    lines = [f"{indent}preflight: {'every check passed' if report.get('ok') else 'a check FAILED'}"]
    for check in report.get("checks", []):
        status = str(check.get("status"))
        lines.append(f"{indent}  {_MARK.get(status, status):<8} {check.get('name'):<26} {check.get('category')}")
        fix = str(check.get("fix") or "")
        if fix and (status == "failed" or not only_failed_fixes):
            lines.append(f"{indent}           {fix}")
    return lines


def command(
    function_dir: Path,
    secret_id: str,
    *,
    env: Mapping[str, str],
    function_name: str | None,
    python: str | None,
    as_json: bool,
    out: Out = print,
) -> int:
    result = run_preflight(function_dir, secret_id, env=env, function_name=function_name, python=python)
    if not result.ok or not isinstance(result.result, dict):
        out(result.stderr.rstrip())
        out(json.dumps({"errorType": result.error_type, "errorMessage": result.error_message}))
        return 2
    report: dict[str, Any] = result.result
    if as_json:
        out(json.dumps(report, indent=2))
    else:
        for line in report_lines(report, indent=""):
            out(line)
    return 0 if report.get("ok") else 1
