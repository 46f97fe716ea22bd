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


def test_logger_output_scrubs_non_ascii_value_as_powertools_writes_it(capfd: pytest.CaptureFixture[str]) -> None:
    secret = 'Grüße-"Schlüssel"-パスワード-1'  # Powertools keeps non-ASCII (ensure_ascii=False), escapes quotes

    log.register_sensitive(secret)
    log.get_logger().error("value seen", extra={"echo": secret, "nested": {"again": secret}})

    out = capfd.readouterr().out
    record = json.loads(out.strip().splitlines()[-1])
    assert record["echo"] == "***"
    assert record["nested"] == {"again": "***"}
    assert json.dumps(secret, ensure_ascii=False)[1:-1] not in out
    assert "Schlüssel" not in out


def test_register_many_values_keeps_every_one() -> None:
    values = [f"Field-Value-{number:04d}" for number in range(1000)]
    log.register_sensitive(*values)
    assert log.redact(" ".join(values)) == " ".join(["***"] * len(values))


def test_invocation_scope_holds_values_for_that_invocation_only() -> None:
    with log.invocation_scope():
        log.register_sensitive("Scoped-Value-0001")
        assert log.redact("Scoped-Value-0001") == "***"
    assert log.redact("Scoped-Value-0001") == "Scoped-Value-0001"


def test_invocation_scopes_in_threads_keep_their_values_apart() -> None:
    import threading

    ready, done = threading.Barrier(2), threading.Event()
    seen: dict[str, str] = {}

    def other_invocation() -> None:
        with log.invocation_scope():
            log.register_sensitive("Other-Thread-Value-1")
            ready.wait()
            done.wait(5)
            seen["other"] = log.redact("Main-Thread-Value-1 Other-Thread-Value-1")

    worker = threading.Thread(target=other_invocation)
    worker.start()
    with log.invocation_scope():
        log.register_sensitive("Main-Thread-Value-1")
        ready.wait()
        seen["main"] = log.redact("Main-Thread-Value-1 Other-Thread-Value-1")
    done.set()  # the main invocation ended first: the other one still holds its value
    worker.join(5)

    assert seen == {"main": "*** Other-Thread-Value-1", "other": "Main-Thread-Value-1 ***"}
