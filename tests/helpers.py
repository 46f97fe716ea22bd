"""Test support shared by unit and integration tests: the leak guard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

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
    """Collects every secret value a test handles and fails the test if one appears in its output."""

    stats: ClassVar[dict[str, int]] = {"tests": 0, "values": 0, "bytes_scanned": 0}

    def __init__(self) -> None:
        self.values: set[str] = set()
        self.files: list[Path] = []
        self.texts: list[str] = []

    def add(self, *values: str) -> None:
        self.values.update(v for v in values if isinstance(v, str) and len(v) >= _MIN_CHECKED_LENGTH)

    def add_from_emulator(self) -> None:
        """Remember every value stored in the (in-process) Secrets Manager emulator right now."""
        from rotation_local import emulator

        for text in emulator.all_secret_strings():
            self.add(*sensitive_values(text))

    def watch_file(self, path: Path) -> None:
        self.files.append(path)

    def watch_text(self, text: str) -> None:
        self.texts.append(text)

    def find_leaks(self, *texts: str) -> list[str]:
        corpus = list(texts) + self.texts
        for path in self.files:
            if path.exists():
                corpus.append(path.read_text(encoding="utf-8", errors="replace"))
        LeakGuard.stats["bytes_scanned"] += sum(len(text) for text in corpus)
        leaks = []
        for value in self.values:
            forms = {value, json.dumps(value)[1:-1]}
            if any(form in text for form in forms for text in corpus):
                leaks.append(f"a value of {len(value)} characters")
        return leaks
