"""Fixtures shared by unit and integration tests, including the leak guard every test runs under."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from helpers import LeakGuard
from rotation_core import log as rotation_log
from rotation_local import emulator


@pytest.fixture(autouse=True)
def leak_guard(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Iterator[LeakGuard]:
    """Fails any test whose logs, stdout, stderr or watched files contain a secret value it handled."""
    emulator.record_secret_access()
    guard = LeakGuard()
    yield guard
    with contextlib.suppress(Exception):  # no emulator state in this test
        guard.add_from_emulator()
    out, err = capfd.readouterr()
    leaks = guard.find_leaks(out, err, caplog.text)
    LeakGuard.stats["tests"] += 1
    LeakGuard.stats["values"] += len(guard.values)
    # Give the output back to pytest so a failing test still shows it.
    print(out, end="")
    if leaks:
        pytest.fail(f"secret values leaked into test output or logs: {', '.join(leaks)}", pytrace=False)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    stats = LeakGuard.stats
    terminalreporter.write_line(
        f"leak guard: {stats['tests']:.0f} tests checked, {stats['values']:.0f} secret values searched for "
        f"in {stats['bytes_scanned']:,.0f} characters of logs, output and server logs"
    )
    terminalreporter.write_line(f"leak guard: {stats['seconds']:.1f} s spent collecting and searching")


@pytest.fixture(autouse=True)
def _forget_registered_values() -> Iterator[None]:
    yield
    rotation_log.forget_sensitive()
