"""Valkey/Redis fixtures: real Redis 7 and Valkey 8 servers with TLS and a MONITOR log, reached three ways.

Every test here runs once per selected Valkey kind (``redis-7``, ``valkey-8`` self-managed; ``*-elasticache`` and
``*-memorydb`` behind the emulated APIs, see ``rotation_local.targets.valkey``); ``valkey_kind`` is that kind and
``valkey_server`` its server, started once per session on 127.0.0.1. The functions reach ElastiCache and MemoryDB
through the emulator (``AWS_ENDPOINT_URL``), which applies user changes to the server's ACL. Accounts come from the
local target, as the shared suites make them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from helpers import LeakGuard
from integration.support import Account, create_account, unique
from rotation_local.targets.valkey import TARGET, ValkeyServer


@pytest.fixture
def valkey_account(valkey_server: ValkeyServer, sm_client: Any, leak_guard: LeakGuard) -> Callable[..., Account]:
    """A user with keys of its own and its secret (rotation enabled; a managed user tagged with the secret's ARN)."""

    def make(*, with_master: bool = False, **overrides: Any) -> Account:
        return create_account(
            TARGET, valkey_server, sm_client, leak_guard, username=unique("app")[:20],
            master_username=unique("master")[:20], with_master=with_master, **overrides,
        )  # fmt: skip

    return make


@pytest.fixture
def account(valkey_account: Callable[..., Account]) -> Account:
    """The one user (and secret) a test rotates or checks, as ``valkey_account()`` makes it."""
    return valkey_account()
