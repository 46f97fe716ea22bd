"""Figures in the docs come from the suite and the benchmarks: each generated block is what its source renders."""

from __future__ import annotations

import json
import re

import pytest

from helpers import REPO_ROOT
from rotation_local import figures, verified

DOCS = REPO_ROOT / "docs"


def test_performance_doc_block_matches_committed_benchmark_results() -> None:
    report, latency = figures.bench_sources()
    block = figures.block_in((DOCS / "performance.md").read_text(encoding="utf-8"), figures.BENCH_BLOCK)

    assert block.strip() == figures.render_performance(report, latency).strip(), "run `make bench`"


@pytest.mark.parametrize("page", ["performance.md", "consumers.md"])
def test_consumer_table_blocks_match_committed_consumer_benchmark(page: str) -> None:
    report = figures.consumer_source()
    text = (DOCS / page).read_text(encoding="utf-8")

    assert figures.block_in(text, figures.CONSUMERS_BLOCK).strip() == figures.render_consumers(report).strip()


def test_verified_and_suite_figure_blocks_match_committed_test_run_record() -> None:
    assert verified.stale_blocks(DOCS) == [], "run `make test` (whole suite, as root), then `make verified-table`"


def test_committed_test_run_record_covers_every_server_kind() -> None:
    record = verified.load(DOCS / verified.DOCS_RECORD)

    assert verified.missing_kinds(record) == []
    assert record["run"]["passed"] > 0


def test_docs_name_no_test_count_outside_generated_blocks() -> None:
    """Hand-typed suite figures go stale (the README once said 682 tests where 683 ran)."""
    for page in [REPO_ROOT / "README.md", *DOCS.rglob("*.md")]:
        text = page.read_text(encoding="utf-8")
        for name in ("verified-table", "suite-figures", figures.BENCH_BLOCK, figures.CONSUMERS_BLOCK):
            try:
                text = text.replace(figures.block_in(text, name), "")
            except ValueError:
                continue
        assert re.findall(r"\b\d[\d,]* (?:tests|cases)\b", text) == [], page


def test_replace_block_rewrites_only_the_named_block() -> None:
    text = f"intro\n<!-- a:start -->\nold\n{figures.end_mark('a')}\nmiddle\n<!-- b:start x -->\nkeep\n<!-- b:end -->\n"

    result = figures.replace_block(text, "a", "the source", "NEW")

    assert result.startswith(f"intro\n{figures.start_mark('a', 'the source')}\nNEW\n{figures.end_mark('a')}\nmiddle\n")
    assert figures.block_in(result, "b") == "keep"
    with pytest.raises(ValueError, match="no generated block"):
        figures.replace_block("no markers here", "a", "s", "NEW")


def test_suite_figures_render_counts_fault_matrix_and_leak_guard() -> None:
    record = {
        "run": {"finished_at": "2026-01-01 00:00 UTC", "python": "3.11.2", "passed": 10, "failed": 1, "skipped": 2,
                "seconds": 600.0, "fault_matrix": {"passed": 7, "failed": 1},
                "leak_guard": {"tests": 13, "values": 1234, "bytes_scanned": 5678901, "seconds": 0.25}},
        "kinds": {"postgres-15": {}, "mariadb-10.11": {}},
    }  # fmt: skip

    text = verified.render_suite_figures(json.loads(json.dumps(record)))

    assert "10 passed, 1 failed, 2 skipped; the database tests on 2 server kinds, 10 minutes" in text
    assert "| 7 passed, 1 failed:" in text
    assert "13 tests checked, 1,234 secret values searched for in 5,678,901 characters" in text


def test_readme_call_counts_are_the_benchmarks() -> None:
    report, _latency = figures.bench_sources()
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for rotation in report["single_user_rotations"].values():
        claim = (
            f"{rotation['calls_per_rotation']} Secrets Manager calls per single-user rotation in a warm function, "
            f"{rotation['split_calls_per_rotation']} at most"
        )
        assert claim in " ".join(readme.split())
