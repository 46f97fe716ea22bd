"""Figures in the docs that measurements produce: generated blocks between markers, never typed by hand.

A block is the text between ``<!-- <name>:start ... -->`` and ``<!-- <name>:end -->`` in a Markdown file.
``bench/run.py`` writes the ``bench`` block of ``docs/performance.md`` from the report it has just
written; ``python -m rotation_local verified-table`` writes the blocks the test suite's record feeds
(:mod:`rotation_local.verified`). ``tests/unit/test_docs_figures.py`` fails when a block differs from
what its committed source renders to.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rotation_local.invoke import REPO_ROOT

PERFORMANCE_DOC = REPO_ROOT / "docs" / "performance.md"
CONSUMERS_DOC = REPO_ROOT / "docs" / "consumers.md"
BENCH_RESULTS = REPO_ROOT / "bench" / "results"
BENCH_BLOCK = "bench"
CONSUMERS_BLOCK = "consumers"
CONSUMERS_RESULTS = "consumers.json"


def start_mark(name: str, source: str) -> str:
    return f"<!-- {name}:start (generated from {source}; do not edit by hand) -->"


def end_mark(name: str) -> str:
    return f"<!-- {name}:end -->"


def block_in(text: str, name: str) -> str:
    """The content of the block called ``name`` (without its markers).

    Raises:
        ValueError: the file has no such block.
    """
    match = re.search(rf"<!-- {re.escape(name)}:start [^\n]*-->\n(.*?)\n?<!-- {re.escape(name)}:end -->", text, re.S)
    if match is None:
        raise ValueError(f"no generated block {name!r}: add the markers {end_mark(name)!r} and its start mark")
    return match.group(1)


def replace_block(text: str, name: str, source: str, content: str) -> str:
    """``text`` with the block called ``name`` holding ``content``.

    Raises:
        ValueError: the file has no such block.
    """
    block_in(text, name)  # raises when absent
    pattern = rf"<!-- {re.escape(name)}:start [^\n]*-->\n.*?<!-- {re.escape(name)}:end -->"
    replacement = f"{start_mark(name, source)}\n{content.rstrip()}\n{end_mark(name)}"
    return re.sub(pattern, lambda _match: replacement, text, count=1, flags=re.S)


def _display_name(function: str) -> str:
    from rotation_core.registry import engines

    spec = engines().get(function)
    return spec.display_name if spec is not None else function


def _ms(value: float) -> str:
    return f"{value:.0f} ms"


def render_performance(report: Mapping[str, Any], latency: Mapping[str, Any] | None = None) -> str:
    """The Performance page's tables, from ``bench/results/latest.json`` (and the added-latency run)."""
    rotations: Mapping[str, Any] = report["single_user_rotations"]
    imports: Mapping[str, Any] = report["imports"]
    reference: Mapping[str, Any] = report.get("aws_template_reference", {})
    machine: Mapping[str, Any] = report["machine"]
    functions = list(rotations)
    names = [_display_name(f) for f in functions]
    aws_cold = ", ".join(
        f"{name} {str(reference[f'{f}_cold_rotation_ms']).replace('-', '–')} ms"
        for f, name in zip(functions, names, strict=True)
        if f"{f}_cold_rotation_ms" in reference
    )
    aws_import = str(reference.get("handler_import_ms", "")).replace("-", "–")
    medians = f", medians of {machine['repeats']}" if "repeats" in machine else ""
    lines = [
        f"Python {machine['python']}, {machine['cpus']} CPUs{medians}, {machine['latency_ms']:g} ms added per "
        "Secrets Manager call.",
        "",
        "| measure | " + " | ".join(names) + " | AWS's single-user templates |",
        "|---|" + "---|" * len(names) + "---|",
        "| Secrets Manager calls per rotation: one warm container / every step in a new one | "
        + " | ".join(f"{r['calls_per_rotation']} / {r['split_calls_per_rotation']}" for r in rotations.values())
        + f" | {reference.get('calls_per_rotation', '—')} |",
        "| cold import + full rotation in a fresh process | "
        + " | ".join(_ms(r["cold_rotation_ms"]) for r in rotations.values())
        + f" | rotation alone: {aws_cold or '—'} (plus import {aws_import} ms) |",
        "| warm rotation (container reused) | " + " | ".join(_ms(r["warm_rotation_ms"]) for r in rotations.values())
        + " | — |",
        "| peak RSS of a cold rotation | " + " | ".join(f"{r['peak_rss_mib']:.0f} MiB" for r in rotations.values())
        + " | — |",
        f"| handler import in a fresh process (boto3 alone: {imports['boto3_ms']:.0f} ms, Powertools' logger "
        f"alone: {imports['powertools_logging_ms']:.0f} ms) | "
        + " | ".join(_ms(imports.get(f"{f}_handler_ms", float("nan"))) for f in functions)
        + f" | {aws_import} ms |",
    ]  # fmt: skip
    if "api_key_handler_ms" in imports:
        lines.append(f"| API-key handler import in a fresh process | {_ms(imports['api_key_handler_ms'])} | | |")
    for function, name in zip(functions, names, strict=True):
        lines += [
            "",
            f"Per step, {name}:",
            "",
            "| step | calls in a warm container | DB connections | cold ms within a rotation "
            "| alone in a new container: calls, ms, driver imported |",
            "|---|---|---|---|---|",
        ]
        for step, data in rotations[function]["steps"].items():
            calls = ", ".join(sorted(data["calls"]))
            drivers = ", ".join(data["alone_drivers_imported"]) or "none"
            lines.append(
                f"| {step} | {calls} | {data['connections']} | {data['cold_ms']:.0f} | "
                f"{sum(data['alone_calls'].values())}, {data['alone_cold_ms']:.0f} ms, {drivers} |"
            )
    fleet = report.get("fleet") or []
    if fleet:
        who = _display_name(str(fleet[0].get("function", "postgres")))
        lines += [
            "",
            f"Fleet: {who} single-user rotations, {fleet[0]['concurrency']} at a time "
            f"({fleet[0]['sm_calls_per_rotation']:g} Secrets Manager calls each):",
            "",
            "| secrets | wall | per rotation | median latency | Secrets Manager writes/s |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {row['secrets']:,} | {row['wall_s']:.2f} s | {row['ms_per_rotation']:.0f} ms | "
            f"{row['median_latency_ms']:.0f} ms | {row['sm_writes_per_s']:.0f} |"
            for row in fleet
        ]
    if latency and latency.get("fleet"):
        last = latency["fleet"][-1]
        lines += [
            "",
            f"With {latency['machine']['latency_ms']:g} ms added to every Secrets Manager call (an in-region round "
            f"trip; `bench/results/latency-{latency['machine']['latency_ms']:g}ms.json`): "
            f"{last['ms_per_rotation']:.0f} ms per rotation and {last['sm_writes_per_s']:.0f} writes/s "
            f"for {last['secrets']:,} secrets.",
        ]
    return "\n".join(lines)


def bench_sources(results: Path = BENCH_RESULTS) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The committed benchmark report and, if present, the added-latency run."""
    report = json.loads((results / "latest.json").read_text(encoding="utf-8"))
    latency_files = sorted(results.glob("latency-*ms.json"))
    latency = json.loads(latency_files[0].read_text(encoding="utf-8")) if latency_files else None
    return report, latency


def write_performance_doc(results: Path = BENCH_RESULTS, doc: Path = PERFORMANCE_DOC) -> Path:
    report, latency = bench_sources(results)
    source = "bench/results/latest.json by `make bench`"
    doc.write_text(
        replace_block(doc.read_text(encoding="utf-8"), BENCH_BLOCK, source, render_performance(report, latency))
    )
    return doc


_STRATEGY_ORDER = ("single_user", "alternating_users", "dual_password")


def _consumer_row_key(row: Mapping[str, Any]) -> tuple[str, str, int, int]:
    strategy = str(row["strategy"])
    order = _STRATEGY_ORDER.index(strategy) if strategy in _STRATEGY_ORDER else len(_STRATEGY_ORDER)
    return (
        str(row["engine"]),
        str(row["kind"]),
        order,
        int(row["function"] == "aws"),
    )


def _consumer_function(row: Mapping[str, Any]) -> str:
    words = str(row["strategy"]).replace("_", " ")
    if row["function"] == "aws":
        return f"AWS's {words} (emulated)"
    return words


def _median_ms(values: list[float]) -> str:
    if not values:
        return "—"
    ordered = sorted(values)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return f"{median:.0f} ms"


def render_consumers(report: Mapping[str, Any]) -> str:
    """The consumer benchmark's table (``bench/results/consumers.json``): one row per server kind and function."""
    settings: Mapping[str, Any] = report["settings"]
    machine: Mapping[str, Any] = report["machine"]
    rows: list[Mapping[str, Any]] = sorted(report["rows"], key=_consumer_row_key)
    resolutions = [float(row["probe_resolution_ms"]) for row in rows if row.get("probe_resolution_ms")]
    lines = [
        f"Python {machine['python']}, {machine['cpus']} CPUs. {settings['consumers']} consumers per row, each a cached "
        f"secret (max_age {settings['max_age']} s) sending a request every {settings['think_time'] * 1000:.0f} ms, "
        f"every other one on a new connection; {settings['rotations']} rotations per row, "
        f"{settings['step_gap'] * 1000:.0f} ms between the service's step invocations, "
        f"{settings['settle']:g} s of traffic before and after each. The windows come from a prober that fetched "
        f"AWSCURRENT and logged in with it about every {_median_ms(resolutions).removesuffix(' ms')} ms (median), "
        "so they are known to within about that.",
        "",
        "| server | function | requests (new connection / pooled) | consumer-visible failures | absorbed by the "
        "retry | longest window (median) | rotations completed |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for row in rows:
        windows = [float(w) for w in row["windows_ms"]]
        window = "none" if not windows else f"{max(windows):.0f} ms ({_median_ms(windows)})"
        lines.append(
            f"| `{row['kind']}` | {_consumer_function(row)} | {row['requests']:,} ({row['new_connection']:,} / "
            f"{row['pooled']:,}) | {row['visible']} | {row['absorbed']} | {window} | "
            f"{row['completed']} of {row['rotations']} |"
        )
    return "\n".join(lines)


def consumer_source(results: Path = BENCH_RESULTS) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((results / CONSUMERS_RESULTS).read_text(encoding="utf-8"))
    return report


def write_consumer_docs(
    results: Path = BENCH_RESULTS, docs: tuple[Path, ...] = (PERFORMANCE_DOC, CONSUMERS_DOC)
) -> list[Path]:
    """The consumer table into every page that shows it."""
    report = consumer_source(results)
    source = f"bench/results/{CONSUMERS_RESULTS} by `make bench`"
    for doc in docs:
        doc.write_text(
            replace_block(doc.read_text(encoding="utf-8"), CONSUMERS_BLOCK, source, render_consumers(report))
        )
    return list(docs)
