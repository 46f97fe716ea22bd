"""The leak guard itself must be able to fail, or it proves nothing."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import LeakGuard, sensitive_values


def test_leak_guard_value_in_text_is_reported() -> None:
    guard = LeakGuard()
    guard.add("Very-Secret-Value-1")
    assert guard.find_leaks("log: Very-Secret-Value-1") == ["a value of 19 characters"]
    assert guard.find_leaks("log: nothing here") == []


def test_leak_guard_json_escaped_value_is_reported() -> None:
    guard = LeakGuard()
    value = 'quote"and\\slash'
    guard.add(value)
    assert guard.find_leaks(json.dumps({"m": value})) != []


def test_leak_guard_watched_file_is_scanned(tmp_path: Path) -> None:
    guard = LeakGuard()
    guard.add("Server-Log-Secret-1")
    log = tmp_path / "server.log"
    log.write_text("statement: ALTER ROLE x PASSWORD 'Server-Log-Secret-1'")
    guard.watch_file(log)
    assert guard.find_leaks() != []


def test_sensitive_values_picks_password_and_key_fields_only() -> None:
    text = json.dumps({"username": "app", "password": "P-1", "api_key": "K-1", "api_key_id": "id-1", "host": "h"})
    assert sorted(sensitive_values(text)) == ["K-1", "P-1", "id-1"]
