"""Logging: one Powertools JSON logger, built on first use, with value redaction.

Code never logs secret values. As a second line of defence, every value the rotation handles
(passwords, derived verifiers) is registered with :func:`register_sensitive` and scrubbed from each
formatted log record, including exception text from drivers. JSON output also means a value with a
newline cannot forge a second log line.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger

SERVICE_NAME = "secrets-rotation"
REDACTED = "***"
_MIN_SENSITIVE_LENGTH = 4
_MAX_REGISTERED = 256

_sensitive: set[str] = set()


def register_sensitive(*values: object) -> None:
    """Remember values that must never be printed; non-strings and very short strings are ignored."""
    for value in values:
        if not isinstance(value, str) or len(value) < _MIN_SENSITIVE_LENGTH:
            continue
        if len(_sensitive) >= _MAX_REGISTERED:
            _sensitive.clear()
        _sensitive.add(value)
        escaped = json.dumps(value)[1:-1]
        if escaped != value:
            _sensitive.add(escaped)


_SENSITIVE_KEY_PARTS = ("password", "secret", "token", "key")


def register_secret(value: Mapping[str, Any]) -> None:
    """Register the values of a secret's password/key/token-like fields (not host or user names)."""
    register_sensitive(
        *(item for name, item in value.items() if any(part in name.lower() for part in _SENSITIVE_KEY_PARTS))
    )


def forget_sensitive() -> None:
    """Drop registered values (called when an invocation ends)."""
    _sensitive.clear()


def redact(text: str) -> str:
    """Replace every registered value in ``text`` with ``***``, longest first."""
    if not _sensitive:
        return text
    for value in sorted(_sensitive, key=len, reverse=True):
        if value in text:
            text = text.replace(value, REDACTED)
    return text


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is at emit time (Lambda, test capture, the local runner)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


@functools.cache
def get_logger() -> Logger:
    """The function's logger; created on first use so nothing reads the environment at import."""
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    class RedactingFormatter(LambdaPowertoolsFormatter):
        def format(self, record: logging.LogRecord) -> str:
            return redact(super().format(record))

    return Logger(service=SERVICE_NAME, logger_handler=_StdoutHandler(), logger_formatter=RedactingFormatter())
