"""Test support shared by unit and integration tests: the leak guard."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

REPO_ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS_DIR = REPO_ROOT / "functions"
_SENSITIVE_KEY_PARTS = ("password", "secret", "token", "api_key", "app_key")
_MIN_CHECKED_LENGTH = 6


def sensitive_values(secret_string: str) -> list[str]:
    """The secret values inside a stored secret: every string under a password/key/token-like key."""
    try:
        data = json.loads(secret_string)
    except ValueError:
        return [secret_string]
    if not isinstance(data, dict):
        return [secret_string]
    return [
        value
        for key, value in data.items()
        if isinstance(value, str) and any(part in key.lower() for part in _SENSITIVE_KEY_PARTS)
    ]


class LeakGuard:
    """Collects every secret value a test handles and fails the test if one appears in its output.

    What a test handles: the values it registers with :meth:`add`, and every stored version of every
    secret a Secrets Manager call named since the previous test's check (the emulator records them,
    for calls from this process and from child processes alike). Watched files (server logs) are read
    from where the previous check of that file stopped, so each part of a log is searched once, with
    the values of the test that was running while it was written. Neither the number of values nor
    the text searched per test grows with the number of tests before it.
    """

    stats: ClassVar[dict[str, float]] = {"tests": 0, "values": 0, "bytes_scanned": 0, "seconds": 0.0}
    # Watched file -> bytes searched for good (up to the end of a line; a last, unfinished line is
    # searched again next time, when it may be complete).
    _searched_until: ClassVar[dict[Path, int]] = {}

    def __init__(self) -> None:
        self.values: set[str] = set()
        self.files: list[Path] = []
        self.texts: list[str] = []

    def add(self, *values: str) -> None:
        self.values.update(v for v in values if isinstance(v, str) and len(v) >= _MIN_CHECKED_LENGTH)

    def add_from_emulator(self) -> None:
        """Remember the values of every secret the (in-process) Secrets Manager emulator was asked about
        since the last call."""
        from rotation_local import emulator

        started = time.perf_counter()
        for text in emulator.take_accessed_secrets():
            self.add(*sensitive_values(text))
        LeakGuard.stats["seconds"] += time.perf_counter() - started

    def watch_file(self, path: Path) -> None:
        if path not in self.files:
            self.files.append(path)

    def watch_text(self, text: str) -> None:
        self.texts.append(text)

    def _unsearched_part(self, path: Path) -> str:
        """The part of the file not searched yet; marks its complete lines searched."""
        try:
            with open(path, "rb") as handle:
                size = handle.seek(0, 2)
                start = LeakGuard._searched_until.get(path, 0)
                if start > size:  # the file was replaced or truncated
                    start = 0
                handle.seek(start)
                data = handle.read(size - start)
        except FileNotFoundError:
            return ""
        LeakGuard._searched_until[path] = start + data.rfind(b"\n") + 1
        return data.decode("utf-8", errors="replace")

    def find_leaks(self, *texts: str) -> list[str]:
        started = time.perf_counter()
        corpus = list(texts) + self.texts + [self._unsearched_part(path) for path in self.files]
        LeakGuard.stats["bytes_scanned"] += sum(len(text) for text in corpus)
        leaks = []
        for value in self.values:
            # As written, as JSON with \u escapes, and as JSON that keeps non-ASCII characters.
            forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
            if any(form in text for form in forms for text in corpus):
                leaks.append(f"a value of {len(value)} characters")
        LeakGuard.stats["seconds"] += time.perf_counter() - started
        return leaks


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line of ``text`` as one whole JSON object (a line that is not one fails the test)."""
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all(isinstance(record, dict) for record in records)
    return records


def log_records(text: str) -> list[dict[str, Any]]:
    """The function's log records among the JSON lines of ``text`` (EMF metric documents left out)."""
    return [r for r in _json_objects(text) if "level" in r and "_aws" not in r]


def emf_documents(text: str) -> list[dict[str, Any]]:
    """The CloudWatch Embedded Metric Format documents among the JSON lines of ``text``."""
    return [r for r in _json_objects(text) if isinstance(r.get("_aws"), dict)]


def _json_objects(text: str) -> list[dict[str, Any]]:
    found = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            found.append(record)
    return found


def lambda_context(function_name: str | None = None) -> SimpleNamespace:
    """A Lambda context as the runtime passes it: the function's name and ARN (by default the function the
    emulator's ``enable_rotation`` attaches)."""
    from rotation_local import emulator

    name = function_name or emulator.LOCAL_FUNCTION
    return SimpleNamespace(
        function_name=name, invoked_function_arn=emulator.function_arn(name), aws_request_id=str(uuid.uuid4())
    )
