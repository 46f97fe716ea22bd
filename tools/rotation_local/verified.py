"""The "verified against" table: which server kind passed which claim in a real test run.

The test suite (``tests/server_matrix.py``) writes a JSON record at the end of every run that used a
database server: per server kind, the version that ran and, per claim (a test marker
``@pytest.mark.verifies(...)``), how many tests passed and failed; and for the whole run the test
counts, the fault matrix's cases and the leak guard's figures. ``python -m rotation_local
verified-table`` renders the table; with ``--docs docs`` it keeps a copy of the record as
:data:`DOCS_RECORD` and writes the generated blocks of ``docs/verified.md`` (the table) and
``docs/security.md`` (the suite's figures) from it (:mod:`rotation_local.figures`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rotation_local.figures import block_in, replace_block
from rotation_local.server_kinds import kinds as all_kinds

# Marker argument -> column heading.
CLAIMS: dict[str, str] = {
    "single_user": "single user",
    "alternating_users": "alternating users",
    "dual_password": "dual passwords",
    "tls_verify_full": "TLS verify-full (host name checked)",
    "tls_wrong_ca": "wrong CA refused",
    "tls_absent": 'server without TLS refused, `"ssl": false` opt-out',
    "user_binding": "a secret's editor cannot choose the user (attacks refused)",
}
TABLE_BLOCK, FIGURES_BLOCK = "verified-table", "suite-figures"
DOCS_RECORD = Path("figures") / "test-run.json"  # below docs/: the record the generated blocks come from
SOURCE = "docs/figures/test-run.json, the record of a full `make test`, by `make verified-table`"


def default_path(repo_root: Path) -> Path:
    """Where the test run writes its record: ``$ROTATION_VERIFIED_JSON`` or ``.pytest_cache/``."""
    configured = os.environ.get("ROTATION_VERIFIED_JSON")
    return Path(configured) if configured else repo_root / ".pytest_cache" / "rotation-verified.json"


def _cell(counts: Mapping[str, int] | None) -> str:
    if not counts or not (counts.get("passed", 0) or counts.get("failed", 0)):
        return "not run"
    passed, failed = counts.get("passed", 0), counts.get("failed", 0)
    if failed:
        return f"✗ {failed} of {passed + failed} failed"
    return f"✓ {passed}"


def render_table(record: Mapping[str, Any]) -> str:
    """Markdown: a row per server kind that ran, a column per claim (number of passing tests)."""
    kinds: Mapping[str, Any] = record.get("kinds", {})
    head = ["server", "version", *CLAIMS.values(), "all its tests"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for kind in all_kinds():
        entry = kinds.get(kind.name)
        if entry is None:
            continue
        cells = [f"`{kind.name}`", str(entry.get("version") or "?")]
        cells += [_cell(entry.get("claims", {}).get(claim)) for claim in CLAIMS]
        cells.append(_cell(entry.get("tests")))
        lines.append("| " + " | ".join(cells) + " |")
    failed = [(kind.name, test) for kind in all_kinds() for test in kinds.get(kind.name, {}).get("failed_tests", [])]
    run = record.get("run", {})
    lines.append("")
    totals = f"{run.get('passed', '?')} passed, {run.get('failed', '?')} failed, {run.get('skipped', '?')} skipped"
    lines.append(
        f"Numbers are passing tests, from the run of {run.get('finished_at', '?')} "
        f"(Python {run.get('python', '?')}; the whole run: {totals})."
    )
    if failed:
        lines.append("")
        lines.append("Failed in that run:")
        lines.append("")
        lines += [f"- `{kind}`: `{test}`" for kind, test in failed]
    return "\n".join(lines)


def render_suite_figures(record: Mapping[str, Any]) -> str:
    """Markdown: what the whole run did (tests, fault-matrix cases, leak guard), from the run's record."""
    run: Mapping[str, Any] = record.get("run", {})
    kinds = list(record.get("kinds", {}))
    matrix: Mapping[str, Any] = run.get("fault_matrix", {})
    guard: Mapping[str, Any] = run.get("leak_guard", {})
    minutes = f", {run['seconds'] / 60:.0f} minutes" if "seconds" in run else ""
    lines = [
        "| what | figure |",
        "|---|---|",
        f"| tests in the run of {run.get('finished_at', '?')} (Python {run.get('python', '?')}) | "
        f"{run.get('passed', '?')} passed, {run.get('failed', '?')} failed, {run.get('skipped', '?')} skipped; "
        f"the database tests on {len(kinds)} server kinds{minutes} |",
    ]
    if matrix:
        lines.append(
            f"| fault-matrix cases (each followed by the service's retry) | {matrix.get('passed', 0)} passed, "
            f"{matrix.get('failed', 0)} failed: every failed case is a lockout, a lost version or a stale AWSPENDING |"
        )
    if guard:
        lines.append(
            f"| leak guard | {guard.get('tests', 0):,.0f} tests checked, {guard.get('values', 0):,.0f} secret values "
            f"searched for in {guard.get('bytes_scanned', 0):,.0f} characters of logs, output and server logs, "
            f"{guard.get('seconds', 0):.1f} s |"
        )
    return "\n".join(lines)


def write_docs(record: Mapping[str, Any], docs: Path) -> list[Path]:
    """Keep the record below ``docs`` and write the blocks it feeds; returns the files written."""
    copy = docs / DOCS_RECORD
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    written = [copy]
    for name, block, content in (
        ("verified.md", TABLE_BLOCK, render_table(record)),
        ("security.md", FIGURES_BLOCK, render_suite_figures(record)),
    ):
        path = docs / name
        path.write_text(replace_block(path.read_text(encoding="utf-8"), block, SOURCE, content), encoding="utf-8")
        written.append(path)
    return written


def stale_blocks(docs: Path) -> list[str]:
    """The generated blocks below ``docs`` that differ from what the kept record renders to."""
    record = load(docs / DOCS_RECORD)
    stale = []
    for name, block, content in (
        ("verified.md", TABLE_BLOCK, render_table(record)),
        ("security.md", FIGURES_BLOCK, render_suite_figures(record)),
    ):
        if block_in((docs / name).read_text(encoding="utf-8"), block).strip() != content.strip():
            stale.append(f"docs/{name} ({block})")
    return stale


def missing_kinds(record: Mapping[str, Any]) -> list[str]:
    """Server kinds the run did not test (a partial run must not become the docs' figures)."""
    ran = record.get("kinds", {})
    return [kind.name for kind in all_kinds() if kind.name not in ran]


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a verified-table record")
    return data
