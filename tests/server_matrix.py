"""The database server matrix of the test suite: which server kinds run, and what passed on each.

Every test that uses the PostgreSQL server (fixture ``postgres_kind``, behind ``postgres_server``) runs once per
selected PostgreSQL kind, every test that uses the MySQL-family server (``mysql_kind``, behind
``mysql_server``) once per selected MariaDB/MySQL kind; the test id names the kind
(``test_x[postgres-17]``). Select kinds with ``--servers=postgres-17,mysql-*`` or
``ROTATION_TEST_SERVERS`` (the option wins; default: every kind of :func:`rotation_local.server_kinds.kinds`).
``@pytest.mark.servers("mariadb-*")`` limits a test to the kinds it applies to. A test that also takes
``db_strategy`` runs once per kind and registry strategy the kind supports (``test_x[mysql-9.7-dual_password]``;
the local target says which, MariaDB has no dual passwords), ``@pytest.mark.strategies(...)`` limiting them.

Kinds that need a private root filesystem cannot run without root (chroot): their tests are skipped
with that reason. As root nothing is skipped: a kind that cannot start fails its tests with the reason.

:class:`Recorder` collects, per kind, the version that ran and how many tests passed or failed per
claim (``@pytest.mark.verifies("single_user")``, see :data:`rotation_local.verified.CLAIMS`), and
writes the record :mod:`rotation_local.verified` renders as the README's table.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rotation_local import server_kinds, verified
from rotation_local.server_kinds import ServerKind

OPTION = "--servers"
ENV_VAR = "ROTATION_TEST_SERVERS"
ANY_ENGINE = "*"
FAULT_MATRIX_MODULE = "test_fault_matrix"  # the fault matrices' modules: test_fault_matrix_<what>.py
#: A test that takes this argument runs once per server kind (db_kind) and registry strategy the kind supports.
STRATEGY_FIXTURE = "db_strategy"


def kind_fixtures() -> dict[str, str]:
    """Fixture whose parameter is the server kind -> the engine whose kinds it takes.

    ``<engine>_kind`` for each local target's engine, and ``db_kind`` for the kinds of every engine.
    """
    from rotation_local.targets import database_targets

    return {**{f"{engine}_kind": engine for engine in database_targets()}, "db_kind": ANY_ENGINE}


def selected_kinds(config: pytest.Config) -> list[ServerKind]:
    spec = config.getoption(OPTION) or os.environ.get(ENV_VAR)
    try:
        return server_kinds.select(spec)
    except ValueError as error:
        raise pytest.UsageError(f"{OPTION} / {ENV_VAR}: {error}") from None


def parametrize_server_kinds(metafunc: pytest.Metafunc) -> None:
    """Run the test once per selected kind of each server family it uses (session-scoped parameters)."""
    patterns = [pattern for mark in metafunc.definition.iter_markers("servers") for pattern in mark.args]
    selected = selected_kinds(metafunc.config)
    for fixture, family in kind_fixtures().items():
        if fixture not in metafunc.fixturenames:
            continue
        family_kinds = [kind for kind in server_kinds.kinds() if family in (ANY_ENGINE, kind.family)]
        applicable = server_kinds.select(",".join(patterns)) if patterns else family_kinds
        kinds = [kind for kind in selected if kind in applicable and kind in family_kinds]
        if fixture == "db_kind":
            kinds = [kind for kind in kinds if _has_wanted_strategy(metafunc, kind)]
        params = [
            pytest.param(
                kind.name, id=kind.name, marks=[pytest.mark.skip(reason=f"{kind.name}: {reason}")] if reason else []
            )
            for kind in kinds
            for reason in [server_kinds.unavailable_reason(kind)]
        ]
        if not params:
            wanted = ", ".join(kind.name for kind in applicable if kind in family_kinds)
            chosen = ", ".join(kind.name for kind in selected) or "none"
            reason = f"applies to {wanted}; none of them is selected ({OPTION} / {ENV_VAR}: {chosen})"
            params = [pytest.param(None, id="no-server-selected", marks=[pytest.mark.skip(reason=reason)])]
        if fixture == "db_kind" and STRATEGY_FIXTURE in metafunc.fixturenames:
            metafunc.parametrize(
                ["db_kind", STRATEGY_FIXTURE], _with_strategies(metafunc, params), indirect=["db_kind"], scope="session"
            )
            continue
        metafunc.parametrize(fixture, params, indirect=True, scope="session")


def _wanted_strategies(metafunc: pytest.Metafunc, kind: ServerKind) -> list[str]:
    """The registry strategies the kind's engine has and the kind supports (the local target says which: MariaDB has
    no dual passwords), limited to those ``@pytest.mark.strategies`` names, if it names any."""
    from rotation_local.targets import database_target

    wanted = {name for mark in metafunc.definition.iter_markers("strategies") for name in mark.args}
    offered = [strategy.value for strategy in database_target(kind.family).strategies(kind)]
    return [strategy for strategy in offered if not wanted or strategy in wanted]


def _has_wanted_strategy(metafunc: pytest.Metafunc, kind: ServerKind) -> bool:
    """A test of one strategy never runs on an engine that does not offer it (Valkey has no alternating users)."""
    return bool(_wanted_strategies(metafunc, kind))


def _with_strategies(metafunc: pytest.Metafunc, params: list[Any]) -> list[Any]:
    """Each kind's parameter once per strategy of :func:`_wanted_strategies`; each counts for its claim."""
    joint = []
    for param in params:
        (name,) = param.values
        if name is None:
            joint.append(pytest.param(None, None, id=param.id, marks=param.marks))
            continue
        for strategy in _wanted_strategies(metafunc, server_kinds.kind_named(name)):
            marks = [*param.marks, pytest.mark.verifies(strategy)]
            joint.append(pytest.param(name, strategy, id=f"{name}-{strategy}", marks=marks))
    return joint


def kind_of(request: pytest.FixtureRequest) -> ServerKind:
    name = getattr(request, "param", None)
    if name is None:
        raise pytest.UsageError(f"the fixture {request.fixturename} is only usable through pytest_generate_tests")
    return server_kinds.kind_named(name)


def item_kind(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    for fixture in kind_fixtures():
        name = callspec.params.get(fixture)
        if isinstance(name, str):
            return name
    return None


@dataclass
class _Outcome:
    failed: bool = False
    called: bool = False
    skipped: bool = False
    seconds: float = 0.0


@dataclass
class Recorder:
    """Per kind: the server version, tests passed/failed, per claim; plus the time spent per kind."""

    versions: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, _Outcome] = field(default_factory=lambda: defaultdict(_Outcome))
    items: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)  # nodeid -> kind, claims
    skipped_kinds: dict[str, str] = field(default_factory=dict)
    write_error: str = ""
    started: float = field(default_factory=time.monotonic)

    def record(self, item: pytest.Item, report: pytest.TestReport) -> None:
        kind = item_kind(item)
        if kind is None:
            return
        claims = tuple(claim for mark in item.iter_markers("verifies") for claim in mark.args)
        unknown = [claim for claim in claims if claim not in verified.CLAIMS]
        if unknown:
            raise pytest.UsageError(f"{item.nodeid}: unknown verifies claim {unknown}; known: {list(verified.CLAIMS)}")
        self.items[item.nodeid] = (kind, claims)
        outcome = self.outcomes[item.nodeid]
        outcome.seconds += report.duration
        if report.failed:
            outcome.failed = True
        elif report.skipped:
            outcome.skipped = True
            if report.when == "setup" and isinstance(report.longrepr, tuple):
                reason = str(report.longrepr[2]).removeprefix("Skipped: ").removeprefix(f"{kind}: ")
                self.skipped_kinds.setdefault(kind, reason)
        elif report.when == "call":
            outcome.called = True

    def per_kind(self) -> dict[str, dict[str, Any]]:
        kinds: dict[str, dict[str, Any]] = {}
        for nodeid, (kind, claims) in self.items.items():
            outcome = self.outcomes[nodeid]
            if outcome.skipped and not outcome.failed:
                continue
            passed = outcome.called and not outcome.failed
            entry = kinds.setdefault(
                kind, {"version": self.versions.get(kind, ""), "tests": {"passed": 0, "failed": 0}, "claims": {},
                       "seconds": 0.0, "failed_tests": []},
            )  # fmt: skip
            key = "passed" if passed else "failed"
            entry["tests"][key] += 1
            if not passed:
                entry["failed_tests"].append(nodeid)
            entry["seconds"] += outcome.seconds
            for claim in claims:
                entry["claims"].setdefault(claim, {"passed": 0, "failed": 0})[key] += 1
        return kinds

    def write(self, path: Path, session: pytest.Session, extra: Mapping[str, Any] | None = None) -> Path | None:
        """Write the run's record (``extra``: more figures of the whole run, e.g. the leak guard's)."""
        kinds = self.per_kind()
        if not kinds:
            return None
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        stats = getattr(reporter, "stats", {})

        def fault_matrix(outcome: str) -> int:
            return sum(1 for report in stats.get(outcome, []) if FAULT_MATRIX_MODULE in getattr(report, "nodeid", ""))

        record = {
            "run": {
                "finished_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "python": platform.python_version(),
                "passed": len(stats.get("passed", [])),
                "failed": len(stats.get("failed", [])) + len(stats.get("error", [])),
                "skipped": len(stats.get("skipped", [])),
                "seconds": round(time.monotonic() - self.started, 1),
                "fault_matrix": {
                    "passed": fault_matrix("passed"),
                    "failed": fault_matrix("failed") + fault_matrix("error"),
                },
                **(extra or {}),
            },
            "kinds": kinds,
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        except OSError as error:
            self.write_error = f"servers: the verified-against record was not written: {error}"
            return None
        return path

    def summary_lines(self) -> list[str]:
        lines = []
        for kind, entry in self.per_kind().items():
            tests = entry["tests"]
            lines.append(
                f"servers: {kind} ({entry['version'] or '?'}): {tests['passed']} passed, {tests['failed']} failed, "
                f"{entry['seconds']:.1f} s in its tests"
            )
        for kind, reason in self.skipped_kinds.items():
            lines.append(f"servers: {kind} skipped: {reason}")
        if self.write_error:
            lines.append(self.write_error)
        return lines


RECORDER = Recorder()
