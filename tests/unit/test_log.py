"""The logger: JSON lines, redaction of registered values, no forged lines."""

from __future__ import annotations

import json

import pytest

from rotation_core import log


def test_redact_registered_value_and_its_json_escaped_form() -> None:
    value = 'pa"ss\\word-123'
    log.register_sensitive(value)

    assert log.redact(f"x {value} y") == "x *** y"
    assert log.redact(json.dumps({"v": value})) == '{"v": "***"}'


def test_redact_short_and_non_string_values_are_not_registered() -> None:
    log.register_sensitive("abc", 12345, None)
    assert log.redact("abc 12345 None") == "abc 12345 None"


def test_logger_output_scrubs_registered_values(capfd: pytest.CaptureFixture[str]) -> None:
    secret = "Hunter2-Hunter2-Hunter2"
    log.register_sensitive(secret)

    log.get_logger().error(f"driver said: password {secret} rejected")

    out = capfd.readouterr().out
    assert secret not in out
    assert json.loads(out.strip().splitlines()[-1])["message"] == "driver said: password *** rejected"


def test_logger_value_with_newline_cannot_forge_a_log_line(capfd: pytest.CaptureFixture[str]) -> None:
    forged = 'bob\n{"level":"INFO","message":"rotation complete"}'

    log.get_logger().info("user", extra={"user": forged})

    lines = capfd.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["user"] == forged


def test_forget_sensitive_clears_registry() -> None:
    log.register_sensitive("Temporary-Value-1")
    log.forget_sensitive()
    assert log.redact("Temporary-Value-1") == "Temporary-Value-1"
