"""Helpers of the preflight integration tests: invoking it, reading its report, proving it wrote nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from helpers import lambda_context
from readonly_guard import READ_OPERATIONS, ReadOnlyGuard, is_write, logged_statements, statement_log_offset
from rotation_local import emulator


def preflight(app: ModuleType, secret_id: str, context: Any = None) -> dict[str, Any]:
    """The report of the function module's handler for ``secret_id`` (as the function the emulator attaches)."""
    report: dict[str, Any] = app.lambda_handler({"Preflight": {"SecretId": secret_id}}, context or lambda_context())
    json.dumps(report)  # what Lambda returns must be JSON
    return report


def check(report: dict[str, Any], name: str) -> dict[str, str]:
    found: dict[str, str] = next(c for c in report["checks"] if c["name"] == name)
    return found


def outcome(report: dict[str, Any], name: str) -> tuple[str, str]:
    """(status, category) of one check."""
    found = check(report, name)
    return found["status"], found["category"]


def failed_names(report: dict[str, Any]) -> list[str]:
    return [c["name"] for c in report["checks"] if c["status"] == "failed"]


@dataclass
class Unchanged:
    """What a preflight must leave as it found it, and what it sent while it ran."""

    guard: ReadOnlyGuard
    stages_before: dict[str, dict[str, list[str]]]
    logs: dict[Path, int]
    statements: list[str] = field(default_factory=list)  # what the servers logged while the block ran

    def assert_nothing_written(self) -> None:
        assert "GetSecretValue" in self.guard.operations  # the guard saw the function's own client
        assert self.guard.refused == []
        assert set(self.guard.operations) <= READ_OPERATIONS
        assert {arn: emulator.version_stages(arn) for arn in self.stages_before} == self.stages_before
        if self.logs:
            assert any(s.upper().startswith(("SELECT", "SHOW")) for s in self.statements)  # the log saw the checks
        assert [s for s in self.statements if is_write(s)] == []


@contextmanager
def nothing_written(
    monkeypatch: pytest.MonkeyPatch,
    arns: list[str],
    statement_logs: list[Path] = (),  # type: ignore[assignment]
) -> Iterator[Unchanged]:
    """Run the block under the read-only guard; afterwards the secrets' versions and the servers' statement
    logs are compared with what they were (call ``assert_nothing_written`` on the result)."""
    guard = ReadOnlyGuard()
    unchanged = Unchanged(guard, {arn: emulator.version_stages(arn) for arn in arns},
                          {path: statement_log_offset(path) for path in statement_logs})  # fmt: skip
    with guard.active(monkeypatch):
        yield unchanged
    for path, offset in unchanged.logs.items():
        unchanged.statements += logged_statements(path, offset)
