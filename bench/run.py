"""Benchmarks: cold start, Secrets Manager calls, DB connections, latency, memory, size, fleet scaling, and what
applications see while a secret rotates (the consumer benchmark, ``bench/consumer_load.py``).

Run with `make bench` (or `PYTHONPATH=layers/rotation_core:tools python bench/run.py --help`).
Starts a server of every local database target (``rotation_local.targets``; TLS, verify-full as in
production; the consumer benchmark: every server kind) and a Secrets Manager emulator on 127.0.0.1, prints a
table and writes bench/results/latest.json, bench/results/fleet.png and bench/results/consumers.json, and the
generated blocks of docs/performance.md and docs/consumers.md. ``--parts consumers`` runs the consumer benchmark
alone, ``--parts rotations`` the rest.
Nothing here is a test: figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rotation_local import emulator, figures, server_kinds, service
from rotation_local.invoke import load_function
from rotation_local.targets import DatabaseTarget, database_targets
from rotation_local.tls import LocalCA

REPO = Path(__file__).resolve().parents[1]

LAYER = REPO / "layers" / "rotation_core"
RESULTS = REPO / "bench" / "results"
CHILD = REPO / "bench" / "child.py"
WRITE_OPERATIONS = ("PutSecretValue", "UpdateSecretVersionStage")
# AWS's own single-user templates, from the benchmark issue (2-core machine like this one; not re-run here).
AWS_TEMPLATE_REFERENCE = {
    "calls_per_rotation": 14,
    "postgres_cold_rotation_ms": "145-185",
    "mysql_cold_rotation_ms": "195-350",
    "handler_import_ms": "170-195",
}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fresh_process_seconds(code: str, env: dict[str, str]) -> float:
    """Run ``code`` in a new interpreter; it prints the seconds it measured."""
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def function_env(function: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join([str(LAYER), str(REPO / "functions" / function)])
    env.update(extra or {})
    return env


def measure_imports(functions: list[str], repeats: int) -> dict[str, Any]:
    timer = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    baseline = [fresh_process_seconds(timer.format(module="boto3"), function_env("postgres")) for _ in range(repeats)]
    powertools = [
        fresh_process_seconds(timer.format(module="aws_lambda_powertools.logging"), function_env("postgres"))
        for _ in range(repeats)
    ]
    result: dict[str, Any] = {
        "boto3_ms": median(baseline) * 1000,
        "powertools_logging_ms": median(powertools) * 1000,
    }
    for function in functions:
        samples = [fresh_process_seconds(timer.format(module="app"), function_env(function)) for _ in range(repeats)]
        result[f"{function}_handler_ms"] = median(samples) * 1000
    return result


SERVER_CALLS: Counter[str] = Counter()
_SERVER_LOCK = threading.Lock()


def instrument_emulator(latency_ms: float) -> None:
    """Count every API call the emulator serves and optionally delay it (an in-region round trip)."""
    from moto.core.responses import BaseResponse

    original = BaseResponse.call_action

    def instrumented(self: Any) -> Any:
        with _SERVER_LOCK:
            SERVER_CALLS[self._get_action()] += 1
        if latency_ms > 0:
            time.sleep(latency_ms / 1000)
        return original(self)

    BaseResponse.call_action = instrumented  # type: ignore[method-assign]


class Bench:
    """Rotations of one function against one server, driven through the emulator."""

    def __init__(
        self,
        sm: emulator.EmulatorServer,
        function: str,
        ca_path: Path,
        make_value: Callable[[str, str], dict[str, Any]],
    ) -> None:
        self.function = function
        self.make_value = make_value  # (username, password) -> secret value, after creating the login
        self.client = sm.client()
        self.env = {
            "AWS_ENDPOINT_URL_SECRETSMANAGER": sm.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": emulator.DEFAULT_REGION,
            "DB_CA_BUNDLE": str(ca_path),
        }

    def new_secret(self, prefix: str) -> str:
        username = f"{prefix}_{secrets.token_hex(4)}"
        value = self.make_value(username, secrets.token_urlsafe(24))
        arn: str = self.client.create_secret(Name=username, SecretString=json.dumps(value))["ARN"]
        emulator.enable_rotation(arn)
        return arn

    def cold_rotation(self, arn: str) -> dict[str, Any]:
        """Import + four steps in one fresh process (a cold container handling a whole rotation)."""
        token = emulator.stage_pending_placeholder(arn)
        measured = self._child([service.event(step, arn, token) for step in service.STEPS])
        emulator.clear_pending(arn)
        return measured

    def split_rotation(self, arn: str) -> list[dict[str, Any]]:
        """Each step in its own fresh process: Lambda may send every step to a different container."""
        token = emulator.stage_pending_placeholder(arn)
        measured = [self._child([service.event(step, arn, token)]) for step in service.STEPS]
        emulator.clear_pending(arn)
        return measured

    def _child(self, events: list[dict[str, str]]) -> dict[str, Any]:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            child = subprocess.run(
                [sys.executable, str(CHILD), out.name],
                input=json.dumps({"events": events}),
                env=function_env(self.function, self.env),
                capture_output=True,
                text=True,
                check=True,
            )
            measured: dict[str, Any] = json.loads(Path(out.name).read_text())
        failed = [s["step"] for s in measured["steps"] if s["error"]]
        if failed:
            errors = [line for line in child.stdout.splitlines() if '"level":"ERROR"' in line]
            raise RuntimeError(f"cold rotation failed at {failed}: {errors[:1]}")
        return measured

    def warm_handler(self) -> tuple[service.StepInvoker, Counter[str]]:
        """An in-process handler whose container is already warm, with a call counter on its client."""
        for name, value in self.env.items():
            os.environ[name] = value
        app = load_function(self.function)
        warmup = self.new_secret("warmup")
        service.rotate(warmup, lambda event: app.lambda_handler(dict(event), None))
        calls: Counter[str] = Counter()
        app.lambda_handler._rotator.store.client.meta.events.register(
            "before-call.secrets-manager.*", lambda model, **_: calls.update([model.name])
        )
        return (lambda event: app.lambda_handler(dict(event), None)), calls


def measure_rotations(bench: Bench, repeats: int) -> dict[str, Any]:
    arn = bench.new_secret("cold")
    cold = [bench.cold_rotation(arn) for _ in range(repeats)]
    per_step: dict[str, dict[str, Any]] = {}
    for step in service.STEPS:
        samples = [next(s for s in run["steps"] if s["step"] == step) for run in cold]
        per_step[step] = {
            "cold_ms": median([s["seconds"] for s in samples]) * 1000,
            "calls": samples[0]["calls"],
            "connections": samples[0]["connections"],
            "drivers_imported": samples[0]["drivers_imported"],
        }
    split = bench.split_rotation(arn)
    for step, run in zip(service.STEPS, split, strict=True):
        per_step[step]["alone_cold_ms"] = run["rotation_seconds"] * 1000
        per_step[step]["alone_drivers_imported"] = run["steps"][0]["drivers_imported"]
        per_step[step]["alone_calls"] = run["steps"][0]["calls"]
    handler, calls = bench.warm_handler()
    warm_arn = bench.new_secret("warm")
    warm_times = []
    for _ in range(repeats):
        started = time.perf_counter()
        service.rotate(warm_arn, handler)
        warm_times.append(time.perf_counter() - started)
    return {
        "cold_rotation_ms": median([run["rotation_seconds"] for run in cold]) * 1000,
        "cold_import_ms": median([run["import_seconds"] for run in cold]) * 1000,
        "warm_rotation_ms": median(warm_times) * 1000,
        "calls_per_rotation": sum(sum(step["calls"].values()) for step in per_step.values()),
        "split_calls_per_rotation": sum(sum(step["alone_calls"].values()) for step in per_step.values()),
        "warm_calls_per_rotation": sum(calls.values()) / repeats,
        "peak_rss_mib": max(run["peak_rss_mib"] for run in cold),
        "loaded_at_import": cold[0]["loaded_at_import"],
        "steps": per_step,
    }


class FleetWorkers:
    """Rotates secrets on worker threads, each holding one warm function instance (one container)."""

    def __init__(self, function: str) -> None:
        self.function = function
        self._local = threading.local()

    def rotate(self, arn: str) -> float:
        if not hasattr(self._local, "app"):
            self._local.app = load_function(self.function)
        app = self._local.app
        started = time.perf_counter()
        service.rotate(arn, lambda event: app.lambda_handler(dict(event), None))
        return time.perf_counter() - started


def measure_fleet(bench: Bench, sizes: list[int], concurrency: int) -> list[dict[str, Any]]:
    results = []
    for size in sizes:
        arns = [bench.new_secret("fleet") for _ in range(size)]
        workers = FleetWorkers(bench.function)
        SERVER_CALLS.clear()
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), ThreadPoolExecutor(max_workers=concurrency) as pool:
            latencies = list(pool.map(workers.rotate, arns))
        wall = time.perf_counter() - started
        writes = sum(SERVER_CALLS[operation] for operation in WRITE_OPERATIONS)
        results.append(
            {
                "function": bench.function,
                "secrets": size,
                "concurrency": concurrency,
                "wall_s": wall,
                "ms_per_rotation": wall / size * 1000,
                "median_latency_ms": median(latencies) * 1000,
                "sm_calls_per_rotation": sum(SERVER_CALLS.values()) / size,
                "sm_writes_per_s": writes / wall,
            }
        )
        print(f"  fleet {size:>5}: {wall:7.2f} s, {wall / size * 1000:6.1f} ms per rotation", flush=True)
    return results


def measure_sizes() -> dict[str, Any]:
    build = REPO / ".aws-sam" / "build"
    if not build.is_dir():
        return {"note": "no .aws-sam/build: run `sam build` (see the README) to measure artifact sizes"}
    sizes: dict[str, Any] = {}
    for folder in sorted(p for p in build.iterdir() if p.is_dir()):
        files = [f for f in folder.rglob("*") if f.is_file()]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in files:
                archive.write(file, file.relative_to(folder))
        sizes[folder.name] = {
            "unzipped_mib": sum(f.stat().st_size for f in files) / 2**20,
            "zipped_mib": len(buffer.getvalue()) / 2**20,
        }
    return sizes


def plot(fleet: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    ax.plot([r["secrets"] for r in fleet], [r["ms_per_rotation"] for r in fleet], marker="o", label="wall / secrets")
    ax.plot([r["secrets"] for r in fleet], [r["median_latency_ms"] for r in fleet], marker="s", label="median latency")
    ax.set_xscale("log")
    ax.set_xlabel("secrets rotated")
    ax.set_ylabel("ms per rotation")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{fleet[0]['function']} single-user rotations, {fleet[0]['concurrency']} concurrent")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    return True


def _database_bench(target: DatabaseTarget, ca: LocalCA) -> tuple[Any, Callable[[str, str], dict[str, Any]]]:
    """A server of the target's first kind (the host's packages), TLS on, without a statement log."""
    server = server_kinds.start_server(target.kinds[0], tls=ca.server_material(), log_statements=False)

    def make_value(username: str, password: str) -> dict[str, Any]:
        target.create_login(server, username, password)
        return target.secret(server, username, password)

    return server, make_value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7, help="samples per median (default 7)")
    parser.add_argument("--latency-ms", type=float, default=0, help="added to every emulated API call")
    parser.add_argument("--fleet", default="1,10,100,1000", help="fleet sizes, comma separated")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--fleet-engine", default="postgres", choices=sorted(database_targets()))
    parser.add_argument("--name", default="latest", help="results file: bench/results/<name>.json (and .png)")
    parser.add_argument("--parts", default="rotations,consumers", help="rotations, consumers or both (default)")
    parser.add_argument("--consumers", type=int, default=8, help="consumer benchmark: consumers (default 8)")
    parser.add_argument("--consumer-rotations", type=int, default=5, help="rotations per row (default 5)")
    parser.add_argument("--step-gap-ms", type=float, default=300, help="between step invocations (default 300)")
    parser.add_argument("--think-ms", type=float, default=100, help="a consumer's pause between requests (default 100)")
    parser.add_argument("--consumer-kinds", default="all", help="server kinds, e.g. postgres-15,mysql-* (default all)")
    parser.add_argument("--consumer-strategies", default="", help="only these strategies, e.g. single_user")
    parser.add_argument("--consumer-functions", default="ours,aws", help="ours, aws (AWS's emulated) or both")
    parser.add_argument(
        "--consumer-results",
        default="consumers",
        help="bench/results/<name>.json (default consumers; the docs' tables come from consumers.json only)",
    )
    parser.add_argument(
        "--consumer-merge",
        action="store_true",
        help="replace only the selected kinds' rows in the results file and keep the others (same settings only)",
    )
    args = parser.parse_args()
    parts = {part.strip() for part in args.parts.split(",") if part.strip()}
    if "consumers" in parts:
        run_consumers(args)
    if "rotations" not in parts:
        return 0

    functions = sorted(p.name for p in (REPO / "functions").iterdir() if (p / "app.py").is_file())
    print(f"cold imports ({args.repeats} fresh processes each): {', '.join(functions)}", flush=True)
    imports = measure_imports(functions, args.repeats)

    instrument_emulator(args.latency_ms)
    sm = emulator.EmulatorServer().start()
    rotations: dict[str, Any] = {}
    fleet: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
            ca = LocalCA.create(Path(scratch))
            for function, target in database_targets().items():
                server, make_value = _database_bench(target, ca)
                try:
                    bench = Bench(sm, function, ca.bundle_path, make_value)
                    # The target's first strategy (single user where the engine has one; Valkey: dual passwords).
                    bench.env["ROTATION_STRATEGY"] = target.strategies(target.kinds[0])[0].value
                    print(f"{function}: {args.repeats} cold, {args.repeats} split and {args.repeats} warm rotations")
                    # In-process handlers log to stdout like in Lambda; keep their lines out of the report.
                    with contextlib.redirect_stdout(io.StringIO()):
                        rotations[function] = measure_rotations(bench, args.repeats)
                    if function == args.fleet_engine:
                        fleet = measure_fleet(bench, [int(n) for n in args.fleet.split(",") if n], args.concurrency)
                finally:
                    server.stop()
    finally:
        sm.stop()

    report = {
        "machine": {
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "latency_ms": args.latency_ms,
            "repeats": args.repeats,
            "concurrency": args.concurrency,
        },
        "imports": imports,
        "single_user_rotations": rotations,
        "fleet": fleet,
        "sizes": measure_sizes(),
        "aws_template_reference": AWS_TEMPLATE_REFERENCE,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_name = "fleet.png" if args.name == "latest" else f"{args.name}-fleet.png"
    plotted = plot(fleet, RESULTS / plot_name) if fleet else False
    print_table(report, f"bench/results/{args.name}.json" + (f" and bench/results/{plot_name}" if plotted else ""))
    if (RESULTS / "latest.json").is_file():
        print(f"tables written to {figures.write_performance_doc(RESULTS).relative_to(REPO)}")
    return 0


def run_consumers(args: argparse.Namespace) -> None:
    """The consumer benchmark on the selected server kinds; writes consumers.json and the docs' tables."""
    from consumer_load import measure_consumers

    from rotation_local.consumers import LoadSettings

    selected = {kind.name for kind in server_kinds.select(args.consumer_kinds)}
    settings = LoadSettings(
        consumers=args.consumers,
        rotations=args.consumer_rotations,
        step_gap=args.step_gap_ms / 1000,
        think_time=args.think_ms / 1000,
    )
    kinds = ", ".join(sorted(selected))
    print(f"consumers: {settings.consumers} per row, {settings.rotations} rotations each, on {kinds}")
    strategies = {name.strip() for name in args.consumer_strategies.split(",") if name.strip()}
    functions = {name.strip() for name in args.consumer_functions.split(",") if name.strip()}
    report = measure_consumers(
        settings,
        kinds=lambda kind: kind.name in selected,
        runs=lambda function, strategy: function in functions and (not strategies or strategy in strategies),
        say=lambda line: print(line, flush=True),
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{args.consumer_results}.json"
    if args.consumer_merge:
        report = _merged_consumer_rows(path, report, selected)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print("\n" + figures.render_consumers(report))
    written = figures.write_consumer_docs(RESULTS)
    print(f"tables written to {', '.join(str(path.relative_to(REPO)) for path in written)}")


def _merged_consumer_rows(path: Path, report: dict[str, Any], selected: set[str]) -> dict[str, Any]:
    """``report``'s rows beside the rows of the other kinds already in ``path``, measured the same way."""
    kept = json.loads(path.read_text())
    for field in ("settings", "machine"):
        if kept[field] != report[field]:
            raise SystemExit(
                f"--consumer-merge: {path.name} was measured with other {field} ({kept[field]}); run every kind "
                "with these settings instead, or merge with the settings it was made with"
            )
    others = [row for row in kept["rows"] if row["kind"] not in selected]
    print(f"--consumer-merge: kept {len(others)} rows of other kinds from {path.name}")
    return {**report, "rows": others + report["rows"]}


def print_table(report: dict[str, Any], written: str) -> None:
    imports, rotations = report["imports"], report["single_user_rotations"]
    reference = {
        "postgres": "315-380 ms (import 170-195 + rotation 145-185)",
        "mysql": "365-545 ms (import 170-195 + rotation 195-350)",
    }
    print("\n| measure | ours | AWS template (issue's reference) |\n|---|---|---|")
    for function, rot in rotations.items():
        print(f"| {function}: Secrets Manager calls, one warm container / each step in a new one | "
              f"{rot['calls_per_rotation']} / {rot['split_calls_per_rotation']} | 14 |")  # fmt: skip
        print(f"| {function}: cold import + rotation (4 steps, fresh process) | {rot['cold_rotation_ms']:.0f} ms "
              f"| {reference.get(function, '-')} |")  # fmt: skip
        print(f"| {function}: warm rotation (container reused) | {rot['warm_rotation_ms']:.0f} ms | - |")
        print(f"| {function}: peak RSS of a cold rotation | {rot['peak_rss_mib']:.0f} MiB | - |")
    for name, value in imports.items():
        print(f"| import {name.removesuffix('_ms')} (fresh process) | {value:.0f} ms | - |")
    for function, rot in rotations.items():
        print(f"\n{function}\n| step | calls (warm container) | DB connections | cold ms (in a rotation) "
              "| alone in a fresh process: calls, ms, driver imported |\n|---|---|---|---|---|")  # fmt: skip
        for step, data in rot["steps"].items():
            calls = ", ".join(f"{k} {v}" for k, v in sorted(data["calls"].items()))
            alone = sum(data["alone_calls"].values())
            drivers = ",".join(data["alone_drivers_imported"]) or "none"
            print(f"| {step} | {calls} | {data['connections']} | {data['cold_ms']:.0f} | {alone}, "
                  f"{data['alone_cold_ms']:.0f} ms, {drivers} |")  # fmt: skip
    if report["fleet"]:
        print(f"\n{report['fleet'][0].get('function', '')} fleet\n| secrets | wall s | ms per rotation "
              "| median latency ms | SM calls per rotation | SM writes/s |\n|---|---|---|---|---|---|")  # fmt: skip
        for row in report["fleet"]:
            print(f"| {row['secrets']} | {row['wall_s']:.2f} | {row['ms_per_rotation']:.1f} | "
                  f"{row['median_latency_ms']:.1f} | {row['sm_calls_per_rotation']:.1f} | "
                  f"{row['sm_writes_per_s']:.1f} |")  # fmt: skip
    sizes = report["sizes"]
    if "note" in sizes:
        print(f"\nsizes: {sizes['note']}")
    else:
        print("\n| sam build output | unzipped | zipped |\n|---|---|---|")
        for name, size in sizes.items():
            print(f"| {name} | {size['unzipped_mib'] * 1024:.0f} KiB | {size['zipped_mib'] * 1024:.0f} KiB |")
    print(f"written: {written}")


if __name__ == "__main__":
    sys.exit(main())
