"""One cold rotation in a fresh process, measured from the inside (run by bench/run.py).

stdin: {"events": [...]}; argv[1]: where to write the measurements (stdout carries the function's logs).
The function folder and the layer are on PYTHONPATH, as in Lambda (/var/task, /opt/python).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import Counter
from typing import Any

HEAVY = ("boto3", "botocore", "aws_lambda_powertools", "psycopg2", "pymysql", "urllib3")
DRIVERS = ("psycopg2", "pymysql")


def _count_calls(calls: Counter[str]) -> None:
    import boto3

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    session = boto3.DEFAULT_SESSION
    assert session is not None
    session.events.register("before-call.secrets-manager.*", lambda model, **_: calls.update([model.name]))


def _count_connections(attempts: Counter[str]) -> None:
    for module_name, attribute in (("psycopg2", "connect"), ("pymysql", "connect")):
        module = sys.modules.get(module_name)
        original = getattr(module, attribute, None)  # None while the package is still initialising
        if original is None or getattr(original, "_bench_wrapped", False):
            continue

        def wrapped(*args: Any, _original: Any = original, _name: str = module_name, **kwargs: Any) -> Any:
            attempts.update([_name])
            return _original(*args, **kwargs)

        wrapped._bench_wrapped = True  # type: ignore[attr-defined]
        setattr(module, attribute, wrapped)


def _watch_driver_imports(attempts: Counter[str]) -> None:
    """Wrap a driver's connect() the moment the handler imports it (drivers load on first use)."""
    import builtins

    real_import = builtins.__import__

    def watching_import(name: str, *args: Any, **kwargs: Any) -> Any:
        module = real_import(name, *args, **kwargs)
        if name in ("psycopg2", "pymysql"):
            _count_connections(attempts)
        return module

    builtins.__import__ = watching_import


def main() -> None:
    request = json.load(sys.stdin)
    started = time.perf_counter()
    import app  # type: ignore[import-not-found]  # the function's module, from PYTHONPATH

    import_seconds = time.perf_counter() - started
    loaded_at_import = [m for m in HEAVY if m in sys.modules]
    calls: Counter[str] = Counter()
    attempts: Counter[str] = Counter()
    _watch_driver_imports(attempts)
    steps = []
    for index, event in enumerate(request["events"]):
        before_calls, before_attempts = Counter(calls), Counter(attempts)
        drivers_before = {m for m in DRIVERS if m in sys.modules}
        step_started = time.perf_counter()
        if index == 0:
            _count_calls(calls)  # imports boto3, which the first step does anyway
        error = None
        try:
            app.lambda_handler(event, None)
        except Exception as exc:  # noqa: BLE001 (reported, not raised)
            error = type(exc).__name__
        steps.append(
            {
                "step": event["Step"],
                "seconds": time.perf_counter() - step_started,
                "calls": dict(calls - before_calls),
                "connections": sum((attempts - before_attempts).values()),
                "drivers_imported": sorted({m for m in DRIVERS if m in sys.modules} - drivers_before),
                "error": error,
            }
        )
    with open(sys.argv[1], "w", encoding="utf-8") as handle:
        json.dump(
            {
                "import_seconds": import_seconds,
                "loaded_at_import": loaded_at_import,
                "rotation_seconds": time.perf_counter() - started,
                "steps": steps,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            },
            handle,
        )


if __name__ == "__main__":
    main()
