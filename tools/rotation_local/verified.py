"""The "verified against" table: which server kind passed which claim in a real test run.

The test suite (``tests/server_matrix.py``) writes a JSON record at the end of every run that used a
database server: per server kind, the version that ran and, per claim (a test marker
``@pytest.mark.verifies(...)``), how many tests passed and failed. ``python -m rotation_local
verified-table`` renders it as Markdown, and with ``--readme README.md`` replaces the table between
the README's ``verified-table`` markers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rotation_local.server_kinds import kinds as all_kinds

# Marker argument -> column heading.
CLAIMS: dict[str, str] = {
    "single_user": "single user",
    "alternating_users": "alternating users",
    "tls_verify_full": "TLS verify-full (host name checked)",
    "tls_wrong_ca": "wrong CA refused",
    "tls_absent": 'server without TLS refused, `"ssl": false` opt-out',
}
START_MARK = "<!-- verified-table:start (python -m rotation_local verified-table --readme README.md) -->"
END_MARK = "<!-- verified-table:end -->"


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


def replace_in(text: str, table: str) -> str:
    """``text`` with the block between the markers replaced by ``table``.

    Raises:
        ValueError: the markers are missing.
    """
    start, end = text.find(START_MARK), text.find(END_MARK)
    if start < 0 or end < start:
        raise ValueError(f"the markers {START_MARK!r} ... {END_MARK!r} are not in the file")
    return text[: start + len(START_MARK)] + "\n" + table + "\n" + text[end:]


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a verified-table record")
    return data
