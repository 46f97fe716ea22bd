"""MySQL-family fixtures: a real MariaDB or Oracle MySQL server with TLS and the general query log, and accounts.

Every test here runs once per selected MySQL-family kind (mariadb-10.11, mariadb-11.8, mysql-9.7; see
``server_matrix.py``); ``mysql_kind`` is that kind and ``mysql_server`` its server, started once per
session on 127.0.0.1 and a free port. The general log records every statement the server receives;
each test's leak guard reads it, because the README claims that no plaintext password reaches it
(MariaDB receives mysql_native_password hashes, MySQL writes ``<secret>`` in their place). Accounts
come from the local target (``rotation_local.targets.mysql``), as the demo and the fault matrix make them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from helpers import LeakGuard
from integration.mysql.accounts import short_name
from integration.support import Account, create_account
from rotation_local.mariadb_server import MySQLFamilyServer
from rotation_local.targets.mysql import TARGET


@pytest.fixture
def mysql_account(mysql_server: MySQLFamilyServer, sm_client: Any, leak_guard: LeakGuard) -> Callable[..., Account]:
    """Create ``<prefix>_<random>@host`` with a database it may use (and global ``privileges``), and its secret
    (rotation enabled)."""

    def make(
        *, host: str = "%", with_master: bool = False, require: str = "", prefix: str = "app", privileges: str = "",
        **overrides: Any,
    ) -> Account:  # fmt: skip
        return create_account(
            TARGET, mysql_server, sm_client, leak_guard,
            username=short_name(prefix), master_username=short_name("master"), with_master=with_master,
            login_options={"host": host, "require": require, "privileges": privileges}, **overrides,
        )  # fmt: skip

    return make


@pytest.fixture
def account(mysql_account: Callable[..., Account]) -> Account:
    """The account most tests rotate: ``app_<random>@%`` with a database and a master secret (``masterarn``)."""
    return mysql_account(with_master=True)


@pytest.fixture
def own_account(mysql_account: Callable[..., Account]) -> Account:
    """An account without a master secret (``app_<random>@%`` with a database): it changes its own password."""
    return mysql_account()
