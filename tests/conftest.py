"""Fixtures shared by unit and integration tests, including the leak guard every test runs under.

Also the command-line side of the server matrix (``--servers``, see ``server_matrix.py``) and the
record of what passed on which server (``rotation_local.verified``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from helpers import REPO_ROOT, LeakGuard
from rotation_core import log as rotation_log
from rotation_local import emulator, verified
from server_matrix import ENV_VAR, OPTION, RECORDER, selected_kinds


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        OPTION,
        default=None,
        help=f"database server kinds to run the integration tests on, comma-separated names or patterns "
        f"(postgres-17,mysql-*); default: ${ENV_VAR}, else all",
    )


def pytest_configure(config: pytest.Config) -> None:
    selected_kinds(config)  # an unknown server name is a usage error before anything runs


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    RECORDER.record(item, report)
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    RECORDER.write(verified.default_path(REPO_ROOT), session, {"leak_guard": dict(LeakGuard.stats)})


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
    for line in RECORDER.summary_lines():
        terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def _forget_registered_values() -> Iterator[None]:
    yield
    rotation_log.forget_sensitive()
