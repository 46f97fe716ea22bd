"""The drain check's decisions: what it counts, what it warns about, and that it never blocks a rotation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from helpers import emf_documents, log_records
from rotation_core import drain
from rotation_core.errors import Category, TargetError
from rotation_core.metrics import InvocationMetrics, invocation_metrics
from rotation_core.providers import KeyRecord
from rotation_core.providers.base import last_use
from rotation_core.settings import MetricsSettings, Settings
from unit.fakes import FakeDatabase, FakeEngine, FakeSession

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def counted(capfd: pytest.CaptureFixture[str]) -> tuple[list[float], list[dict[str, Any]]]:
    out = capfd.readouterr().out
    values = [d["CredentialStillInUse"][0] for d in emf_documents(out) if "CredentialStillInUse" in d]
    return values, [r for r in log_records(out) if r["level"] == "WARNING"]


def recorder() -> InvocationMetrics:
    return InvocationMetrics(MetricsSettings(deployment="stack"), function_name="fn", target="fake")


@pytest.mark.parametrize(("sessions", "warned"), [(3, True), (0, False)])
def test_drain_database_user_sessions_counted_warning_only_when_some(
    sessions: int, warned: bool, capfd: pytest.CaptureFixture[str]
) -> None:
    database = FakeDatabase(sessions={"app_clone": sessions})
    engine = FakeEngine(Settings(), database)

    with invocation_metrics(recorder()):
        assert drain.check_database_user(engine, FakeSession(database, "admin"), "app_clone") == sessions

    values, warnings = counted(capfd)
    assert values == [float(sessions)]
    assert bool(warnings) is warned
    if warned:
        assert "3 open session(s) of 'app_clone'" in warnings[0]["message"]


def test_drain_database_user_cannot_tell_no_metric_no_warning(capfd: pytest.CaptureFixture[str]) -> None:
    engine = FakeEngine(Settings(), FakeDatabase())  # count_sessions answers None: it cannot see them

    with invocation_metrics(recorder()):
        assert drain.check_database_user(engine, FakeSession(FakeDatabase(), "admin"), "app") is None

    values, warnings = counted(capfd)
    assert values == []
    assert warnings == []


def test_drain_database_user_count_failing_never_blocks(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = FakeEngine(Settings(), FakeDatabase())

    def refuse(*_args: Any) -> int:
        raise TargetError("FakeSQL: no access to the process list", category=Category.PERMISSION)

    monkeypatch.setattr(engine, "count_sessions", refuse)
    with invocation_metrics(recorder()):
        assert drain.check_database_user(engine, FakeSession(FakeDatabase(), "admin"), "app") is None

    values, warnings = counted(capfd)
    assert values == []
    assert "could not count" in warnings[0]["message"]


def key(last_used: datetime | None, *, reports_use: bool = True) -> KeyRecord:
    return KeyRecord(id="k1", name="sm-rotation-abc-t1", reports_use=reports_use, last_used=last_used)


@pytest.mark.parametrize(
    ("last_used", "defer_setting", "minted_here", "deferred", "value"),
    [
        (NOW - timedelta(hours=1), False, True, False, 1.0),  # in use, revoked anyway (the default)
        (NOW - timedelta(hours=1), True, True, True, 1.0),  # in use, deferred
        (NOW - timedelta(hours=1), True, False, False, 1.0),  # in use, but nothing would find it again
        (NOW - timedelta(hours=30), True, True, False, 0.0),  # outside KEY_IN_USE_WITHIN_HOURS=24
        (None, True, True, False, 0.0),  # never used
    ],
    ids=["in-use", "in-use-deferred", "in-use-not-minted-here", "used-long-ago", "never-used"],
)
def test_drain_api_key_decision_per_last_use_setting_and_origin(
    last_used: datetime | None, defer_setting: bool, minted_here: bool, deferred: bool, value: float,
    capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    settings = Settings(defer_revoke_if_in_use=defer_setting)

    with invocation_metrics(recorder()):
        result = drain.defer_key_revocation(key(last_used), settings, "the key", minted_here=minted_here, now=NOW)

    values, warnings = counted(capfd)
    assert result is deferred
    assert values == [value]
    assert bool(warnings) is (value == 1.0)


def test_drain_api_key_provider_without_last_use_counts_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    settings = Settings(defer_revoke_if_in_use=True)

    with invocation_metrics(recorder()):
        assert not drain.defer_key_revocation(key(None, reports_use=False), settings, "the key", minted_here=True)

    assert counted(capfd) == ([], [])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, (True, None)),
        ("2020-01-02T12:34:00Z", (True, datetime(2020, 1, 2, 12, 34, tzinfo=UTC))),
        ("2024-05-01T10:00:00.123+02:00", (True, datetime(2024, 5, 1, 8, 0, 0, 123000, tzinfo=UTC))),
        ("yesterday", (False, None)),
        (1714550400, (False, None)),
    ],
)
def test_last_use_reads_rfc3339_or_null_anything_else_not_reported(value: Any, expected: Any) -> None:
    assert last_use(value) == expected
