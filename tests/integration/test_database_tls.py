"""TLS and reachability on every database server kind: verified by default, never a silent plaintext retry.

Each test runs once per server kind of every engine and strategy that changes one user's password (``db_strategy``:
single user, and dual passwords where the kind has them), through the engine's real function module and its local
target: a certificate from another CA, a certificate for another host name, a
server without TLS (refused unless the secret opts out with ``"ssl": false``), and a server that is down.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from helpers import LeakGuard
from integration.support import create_account, rotate, run_steps, secret_at, stages, unique
from rotation_core.errors import Category, TargetError
from rotation_core.settings import Strategy
from rotation_local import emulator
from rotation_local.postgres_server import free_port
from rotation_local.server_kinds import ServerKind, start_server
from rotation_local.targets import DatabaseTarget
from rotation_local.tls import material_from

MISNAMED_HOST = "db.example.internal"


@pytest.fixture(scope="module")
def misnamed_server(db_kind: ServerKind, tls_ca: trustme.CA) -> Iterator[Any]:
    """A second server of this kind whose certificate, from the trusted CA, names another host than 127.0.0.1."""
    server = start_server(db_kind, tls=material_from(tls_ca, MISNAMED_HOST))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def plain_server(db_kind: ServerKind) -> Iterator[Any]:
    """A second server of this kind without TLS at all."""
    server = start_server(db_kind, tls=None)
    yield server
    server.stop()


ONE_USER = pytest.mark.strategies("single_user", "dual_password")


def refused_tls(app: Any, arn: str) -> str:
    """Rotate ``arn``: the function refuses it as a TLS failure (the half-made AWSPENDING is dropped); its message."""
    with pytest.raises(TargetError) as raised:
        rotate(app, arn)
    emulator.drop_pending(arn)
    assert raised.value.category is Category.TLS
    return raised.value.message


@dataclass(frozen=True)
class ExtraAccount:
    """A login on one of this module's extra servers: its secret's ARN and AWSCURRENT value before the rotation."""

    arn: str
    old: dict[str, Any]


@pytest.fixture
def account_on(
    db_target: DatabaseTarget, sm_client: Any, leak_guard: LeakGuard, db_strategy: str
) -> Callable[..., ExtraAccount]:
    """Make a login for this test's strategy on ``server`` and its secret (rotation enabled, ``extra`` fields)."""

    def make(server: Any, **extra: Any) -> ExtraAccount:
        leak_guard.watch_file(db_target.statement_log(server))
        leak_guard.add(server.admin_password)
        options = db_target.login_options(Strategy(db_strategy))
        arn = create_account(
            db_target, server, sm_client, leak_guard, username=unique("acct")[:16], login_options=options, **extra
        ).arn
        return ExtraAccount(arn, secret_at(sm_client, arn, "AWSCURRENT"))

    return make


@pytest.fixture
def app(db_function: Any, db_strategy: str) -> Any:
    """This kind's function, rotating with this test's strategy."""
    return db_function(ROTATION_STRATEGY=db_strategy)


@ONE_USER
@pytest.mark.verifies("tls_wrong_ca")
def test_database_wrong_ca_fails_tls_without_fallback_and_changes_nothing(
    db_strategy: str,
    db_server: Any, db_target: DatabaseTarget, sm_client: Any, db_function: Any, ca_bundle: Path,
    leak_guard: LeakGuard, tmp_path: Path,
) -> None:  # fmt: skip
    account = create_account(
        db_target, db_server, sm_client, leak_guard, username=unique("ca")[:16],
        login_options=db_target.login_options(Strategy(db_strategy)),
    )  # fmt: skip
    old = secret_at(sm_client, account.arn, "AWSCURRENT")
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    app = db_function(DB_CA_BUNDLE=str(other_ca), ROTATION_STRATEGY=db_strategy)
    log = db_target.statement_log(db_server)
    logged_before = log.stat().st_size

    message = refused_tls(app, account.arn)

    assert "DB_CA_BUNDLE" in message
    # No login reached the server at all: no retry without TLS or without verification.
    assert account.username not in log.read_text(encoding="utf-8", errors="replace")[logged_before:]
    assert db_target.logs_in(db_server, old, ca_bundle)


@ONE_USER
@pytest.mark.verifies("tls_verify_full")
def test_database_verify_full_host_not_in_certificate_fails(
    misnamed_server: Any, account_on: Callable[..., ExtraAccount], app: Any
) -> None:
    assert "host name" in refused_tls(app, account_on(misnamed_server).arn)


@ONE_USER
def test_database_explicit_verify_ca_skips_host_check_rotates(
    db_strategy: str, misnamed_server: Any, db_target: DatabaseTarget, sm_client: Any,
    account_on: Callable[..., ExtraAccount], app: Any, ca_bundle: Path,
) -> None:  # fmt: skip
    account = account_on(misnamed_server, sslmode="verify-ca")

    rotate(app, account.arn)

    new = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert new["password"] != account.old["password"]
    assert new["sslmode"] == "verify-ca"
    assert db_target.logs_in(misnamed_server, new, ca_bundle, check_host_name=False)
    old_logs_in = db_target.logs_in(misnamed_server, account.old, ca_bundle, check_host_name=False)
    assert old_logs_in is (db_strategy == "dual_password")


@ONE_USER
@pytest.mark.verifies("tls_absent")
def test_database_server_without_tls_default_refused_with_opt_out_hint(
    plain_server: Any, db_target: DatabaseTarget, account_on: Callable[..., ExtraAccount], app: Any
) -> None:
    account = account_on(plain_server)

    message = refused_tls(app, account.arn)

    assert '"ssl": false' in message
    assert db_target.logs_in(plain_server, account.old, None)


@ONE_USER
@pytest.mark.verifies("tls_absent")
def test_database_server_without_tls_ssl_false_rotates(
    db_strategy: str, plain_server: Any, db_target: DatabaseTarget, sm_client: Any,
    account_on: Callable[..., ExtraAccount], app: Any,
) -> None:  # fmt: skip
    account = account_on(plain_server, ssl=False)

    token = rotate(app, account.arn)

    new = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert stages(sm_client, account.arn)[token] == ["AWSCURRENT"]
    assert new["password"] != account.old["password"]
    assert new["ssl"] is False
    assert db_target.logs_in(plain_server, new, None)
    assert db_target.logs_in(plain_server, account.old, None) is (db_strategy == "dual_password")  # the secondary


@ONE_USER
def test_database_unreachable_server_fails_fast_with_category(
    db_strategy: str, db_server: Any, db_target: DatabaseTarget, sm_client: Any, db_function: Any, leak_guard: LeakGuard
) -> None:
    password = secrets.token_urlsafe(24)
    leak_guard.add(password)
    value = {**db_target.secret(db_server, "app", password), "port": free_port()}
    arn = sm_client.create_secret(Name=unique("down"), SecretString=json.dumps(value))["ARN"]
    emulator.enable_rotation(arn)
    app = db_function(DB_CONNECT_TIMEOUT="2", ROTATION_STRATEGY=db_strategy)
    token = emulator.stage_pending_placeholder(arn)
    run_steps(app, arn, token, "createSecret")

    with pytest.raises(TargetError, match="unreachable") as raised:
        run_steps(app, arn, token, "setSecret")

    assert raised.value.category is Category.UNREACHABLE
    assert stages(sm_client, arn)[token] == ["AWSPENDING"]
