"""The read-only guard of the preflight tests: what the preflight sends is watched on every side, and a write fails.

* Every botocore client created while the guard is active (the function's own, built on its first
  invocation) and every client handed to :meth:`ReadOnlyGuard.watch_client` gets a ``before-call`` event
  hook that records the operation and refuses any but DescribeSecret, GetSecretValue, the two RDS
  Describe calls that locate an RDS-managed master's database, and the ElastiCache/MemoryDB calls that read a
  managed user and its tags (DescribeUsers, ListTagsForResource, ListTags).
* The emulator's backend (moto, serving in-process and over HTTP to child processes) refuses every
  operation that changes a secret, so a write from another process fails too.
* :func:`written_statements` reads what a database server logged and returns the statements that could
  change it (accounts, grants, data), so a test can assert there were none; the fake providers count
  their requests by method.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

READ_OPERATIONS = frozenset({
    "DescribeSecret", "GetSecretValue", "DescribeDBClusters", "DescribeDBInstances",
    "DescribeUsers", "ListTagsForResource", "ListTags",
})  # fmt: skip
# Every SecretsManagerBackend method that changes a secret (moto's names).
BACKEND_WRITES = (
    "create_secret", "put_secret_value", "update_secret", "update_secret_version_stage", "rotate_secret",
    "cancel_rotate_secret", "delete_secret", "restore_secret", "tag_resource", "untag_resource",
    "put_resource_policy", "delete_resource_policy", "replicate_secret_to_regions", "remove_regions_from_replication",
    "stop_replication_to_replica",
)  # fmt: skip
# Statements that change a database server, as its statement log shows them (first words).
_WRITE_STATEMENT = re.compile(
    r"^\s*(?:ALTER|CREATE|DROP|GRANT|REVOKE|INSERT|UPDATE|DELETE|REPLACE|RENAME|TRUNCATE|SET\s+PASSWORD|"
    r"SET\s+DEFAULT\s+ROLE|FLUSH|LOAD|COPY|COMMENT|SECURITY\s+LABEL|REASSIGN)\b",
    re.IGNORECASE,
)
# Where a statement starts in a log line: PostgreSQL's "statement: ", the MySQL-family general log's "Query".
_STATEMENT_START = re.compile(r"(?:\bstatement: |\tQuery\t|\sQuery\s+)(.*)$")


class WriteRefusedError(AssertionError):
    """The preflight tried to change something."""


class ReadOnlyGuard:
    def __init__(self) -> None:
        self.operations: list[str] = []  # every operation a watched client sent
        self.refused: list[str] = []  # what was refused, on any side
        self._on = False  # the hooks stay on their clients; they watch only while the guard is active

    def watch_client(self, client: Any) -> Any:
        client.meta.events.register("before-call", self._before_call)
        return client

    def _before_call(self, model: Any, **_kwargs: Any) -> None:
        if not self._on:
            return
        self.operations.append(model.name)
        if model.name not in READ_OPERATIONS:
            self.refused.append(model.name)
            raise WriteRefusedError(f"the preflight sent {model.name}, which writes")

    @contextmanager
    def active(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[ReadOnlyGuard]:
        """Guard every client created from now on and the emulator's backend, until the block ends."""
        from botocore.client import ClientCreator
        from moto.secretsmanager.models import SecretsManagerBackend

        create_client = ClientCreator.create_client
        guard = self

        def creating(creator: Any, *args: Any, **kwargs: Any) -> Any:
            return guard.watch_client(create_client(creator, *args, **kwargs))

        with monkeypatch.context() as patch:
            patch.setattr(ClientCreator, "create_client", creating)
            for name in BACKEND_WRITES:
                if hasattr(SecretsManagerBackend, name):
                    patch.setattr(SecretsManagerBackend, name, self._refusing(name))
            self._on = True
            try:
                yield self
            finally:
                self._on = False

    def _refusing(self, name: str) -> Any:
        def refuse(*_args: Any, **_kwargs: Any) -> Any:
            self.refused.append(f"emulator:{name}")
            raise WriteRefusedError(f"the emulator was asked to {name} during the preflight")

        return refuse


def statement_log_offset(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def logged_statements(path: Path, since: int) -> list[str]:
    """The statements logged in ``path`` after byte ``since`` (their first 80 characters)."""
    with open(path, "rb") as handle:
        handle.seek(since)
        text = handle.read().decode("utf-8", errors="replace")
    return [match.group(1)[:80] for line in text.splitlines() if (match := _STATEMENT_START.search(line))]


def is_write(statement: str) -> bool:
    """Could the statement change the server (accounts, grants, data)?"""
    return _WRITE_STATEMENT.match(statement) is not None
