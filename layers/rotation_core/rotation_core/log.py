"""Logging: one Powertools JSON logger, built on first use, with value redaction scoped to an invocation.

Code never logs secret values. As a second line of defence, every value the rotation handles
(passwords, keys, derived verifiers) is registered with :func:`register_sensitive` and scrubbed from
each formatted log record, including exception text from drivers. Registration covers the forms the
log writer emits: the raw text and its JSON escapes (Powertools serialises with ``ensure_ascii=False``,
so non-ASCII characters stay as they are while quotes and control characters are escaped). JSON output
also means a value with a newline cannot forge a second log line.

Registered values live in a :class:`Redactor` held by a context variable: the handler opens one
:func:`invocation_scope` per invocation, so concurrent invocations in one process (threads of the local
runner) never see or drop each other's values, and nothing is forgotten while an invocation runs.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger

SERVICE_NAME = "secrets-rotation"
REDACTED = "***"
_MIN_SENSITIVE_LENGTH = 4


class Redactor:
    """The values one invocation must never print, in every form the log writer can emit them."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._ordered: list[str] | None = None

    def register(self, value: str) -> None:
        forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
        if not forms <= self._values:
            self._values |= forms
            self._ordered = None

    def redact(self, text: str) -> str:
        if not self._values:
            return text
        if self._ordered is None:
            self._ordered = sorted(self._values, key=len, reverse=True)
        for value in self._ordered:
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def clear(self) -> None:
        self._values.clear()
        self._ordered = None

    def __len__(self) -> int:
        return len(self._values)


_current: contextvars.ContextVar[Redactor | None] = contextvars.ContextVar("rotation_redactor", default=None)


def current_redactor() -> Redactor:
    """The active invocation's redactor; outside any scope (a test calling code directly), one for this context."""
    redactor = _current.get()
    if redactor is None:
        redactor = Redactor()
        _current.set(redactor)
    return redactor


@contextlib.contextmanager
def invocation_scope() -> Iterator[Redactor]:
    """A fresh redactor for one invocation; the values it holds are dropped when the invocation ends."""
    redactor = Redactor()
    token = _current.set(redactor)
    try:
        yield redactor
    finally:
        _current.reset(token)
        redactor.clear()


def register_sensitive(*values: object) -> None:
    """Remember values that must never be printed; non-strings and very short strings are ignored."""
    redactor = current_redactor()
    for value in values:
        if isinstance(value, str) and len(value) >= _MIN_SENSITIVE_LENGTH:
            redactor.register(value)


_SENSITIVE_KEY_PARTS = ("password", "secret", "token", "key")


def register_secret(value: Mapping[str, Any]) -> None:
    """Register the values of a secret's password/key/token-like fields (not host or user names)."""
    register_sensitive(
        *(item for name, item in value.items() if any(part in name.lower() for part in _SENSITIVE_KEY_PARTS))
    )


def forget_sensitive() -> None:
    """Drop the values registered in the current scope."""
    current_redactor().clear()


def redact(text: str) -> str:
    """Replace every registered value in ``text`` with ``***``, longest first."""
    return current_redactor().redact(text)


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
