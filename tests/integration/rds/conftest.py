"""RDS fixtures: moto's RDS on the session's emulator (the same HTTP server as Secrets Manager).

The functions reach it through ``AWS_ENDPOINT_URL_RDS`` (boto3's own variable), as they would reach an
RDS VPC endpoint; its answers name the loopback server of the test's kind (``rotation_local.rds_emulator``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

from helpers import LeakGuard
from integration.rds.support import RdsSetup
from rotation_local import emulator, rds_emulator
from rotation_local.invoke import load_function
from rotation_local.targets import DatabaseTarget


@pytest.fixture
def rds_client(
    sm_env: dict[str, str], sm_server: emulator.EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """An RDS client on the emulator; the region's instances and clusters are this test's alone.

    Every database of every test names the same loopback server, which real RDS endpoints never share.
    """
    monkeypatch.setenv("AWS_ENDPOINT_URL_RDS", sm_server.endpoint_url)
    rds_emulator.reset()
    yield boto3.client("rds", endpoint_url=sm_server.endpoint_url, region_name=emulator.DEFAULT_REGION)
    rds_emulator.reset()


@pytest.fixture
def alternating_function(
    rds_client: Any, db_target: DatabaseTarget, ca_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., ModuleType]:
    """A fresh copy of the test's engine function, alternating users, reaching moto's RDS over HTTP."""

    def load(**env: str) -> ModuleType:
        for name, value in {"ROTATION_STRATEGY": "alternating_users", "DB_CA_BUNDLE": str(ca_bundle), **env}.items():
            monkeypatch.setenv(name, value)
        return load_function(db_target.engine)

    return load


@pytest.fixture
def rds(
    db_target: DatabaseTarget, db_server: Any, sm_client: Any, rds_client: Any, leak_guard: LeakGuard,
    alternating_function: Callable[..., ModuleType], ca_bundle: Path,
) -> RdsSetup:  # fmt: skip
    return RdsSetup(db_target, db_server, sm_client, rds_client, leak_guard, alternating_function, ca_bundle)
