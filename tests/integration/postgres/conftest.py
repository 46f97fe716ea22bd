"""PostgreSQL fixtures: the server of this test's kind (``postgres_kind``), accounts on it, the function.

The servers come from the session's pool (TLS on, ``log_statement=all``); the accounts from the local
target (``rotation_local.targets.postgres``), as the demo, the benchmarks and the fault matrix make them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from helpers import LeakGuard
from integration.support import Account, create_account, unique
from rotation_local.postgres_server import PostgresServer
from rotation_local.targets.postgres import TARGET


@pytest.fixture
def pg_account(postgres_server: PostgresServer, sm_client: Any, leak_guard: LeakGuard) -> Callable[..., Account]:
    """A login role ``<prefix>_<random>`` owning a database, and its secret (rotation enabled).

    ``admin_option``: on PostgreSQL 16+, give the master ADMIN OPTION on the user (it needs it);
    ``master_options``: make the master a plain login with these role options instead.
    """

    def make(
        *,
        with_master: bool = False,
        master_options: str | None = None,
        admin_option: bool = True,
        prefix: str = "app",
        **overrides: Any,
    ) -> Account:
        return create_account(
            TARGET, postgres_server, sm_client, leak_guard,
            username=unique(prefix), master_username=unique("master"), with_master=with_master,
            allow_master=admin_option, master_role_options=master_options, **overrides,
        )  # fmt: skip

    return make


@pytest.fixture
def account(pg_account: Callable[..., Account]) -> Account:
    """The account most tests rotate: a login role ``app_<random>`` with its database and no master secret."""
    return pg_account()
