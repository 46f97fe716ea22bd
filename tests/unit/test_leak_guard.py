"""The leak guard itself must be able to fail, or it proves nothing."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from helpers import LeakGuard, sensitive_values
from rotation_local import emulator


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


def test_leak_guard_value_written_during_the_test_and_printed_is_reported(sm_client: Any) -> None:
    """The guard collects what the emulator was asked about since its last check, writes included."""
    emulator.take_accessed_secrets()  # what earlier tests touched is theirs
    value = "Written-During-This-Test-" + secrets.token_hex(8)
    sm_client.create_secret(Name="written", SecretString=json.dumps({"username": "app", "password": "Initial-1"}))
    sm_client.put_secret_value(SecretId="written", SecretString=json.dumps({"username": "app", "password": value}))

    guard = LeakGuard()
    guard.add_from_emulator()

    assert guard.find_leaks(f"INFO rotated, new password {value}") == [f"a value of {len(value)} characters"]
    assert guard.find_leaks("INFO rotated") == []


def test_leak_guard_collects_secrets_read_since_last_check_not_every_secret(sm_client: Any) -> None:
    untouched = "Untouched-Secret-Value-" + secrets.token_hex(8)
    read = "Read-Secret-Value-" + secrets.token_hex(8)
    read_name = "read-during-the-test"
    sm_client.create_secret(Name="untouched", SecretString=json.dumps({"password": untouched}))
    sm_client.create_secret(Name=read_name, SecretString=json.dumps({"password": read}))
    emulator.take_accessed_secrets()  # an earlier test's check

    sm_client.get_secret_value(SecretId=read_name)  # this test only reads one of them
    guard = LeakGuard()
    guard.add_from_emulator()

    assert read in guard.values
    assert untouched not in guard.values


def test_leak_guard_watched_file_each_part_searched_once_unfinished_line_again(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("LOG: first line Value-In-First-Line\nLOG: unfinished Value-In-Unfinished")
    first = LeakGuard()
    first.add("Value-In-First-Line", "Value-In-Unfinished")
    first.watch_file(log)
    assert len(first.find_leaks()) == 2

    with log.open("a") as handle:
        handle.write(" line\nLOG: appended Value-Appended-Later\n")
    second = LeakGuard()
    second.add("Value-In-First-Line", "Value-In-Unfinished", "Value-Appended-Later")
    second.watch_file(log)
    # The finished first line was searched already; the line unfinished then and the new one are searched now.
    assert len(second.find_leaks()) == 2

    third = LeakGuard()
    third.add("Value-In-First-Line", "Value-In-Unfinished", "Value-Appended-Later")
    third.watch_file(log)
    assert third.find_leaks() == []
