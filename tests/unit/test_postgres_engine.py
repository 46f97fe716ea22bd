"""PostgreSQL engine without a server: secret parsing, TLS mode, error classification."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from psycopg2 import sql

from rotation_core.engines.base import TlsMode
from rotation_core.engines.postgres.connection import run
from rotation_core.engines.postgres.engine import PostgresEngine
from rotation_core.engines.postgres.statements import own_password, role_exists
from rotation_core.engines.tls import resolve_ca_bundle
from rotation_core.errors import Category, ConfigurationError, SecretFormatError, StatementError
from rotation_core.settings import Settings

SECRET = {"engine": "postgres", "host": "db.example", "username": "app", "password": "Pw-123456"}


@pytest.fixture
def engine() -> PostgresEngine:
    return PostgresEngine(Settings())


def test_parse_login_defaults_port_and_verify_full(engine: PostgresEngine) -> None:
    login = engine.parse_login(SECRET, "current")
    assert (login.host, login.port, login.username, login.dbname) == ("db.example", 5432, "app", None)
    assert login.tls is TlsMode.VERIFY_FULL
    assert "Pw-123456" not in repr(login)


@pytest.mark.parametrize(
    ("extra", "mode"),
    [
        ({"ssl": True}, TlsMode.VERIFY_FULL),
        ({"ssl": "true"}, TlsMode.VERIFY_FULL),
        ({"ssl": False}, TlsMode.DISABLE),
        ({"ssl": "False"}, TlsMode.DISABLE),
        ({"sslmode": "require"}, TlsMode.REQUIRE),
        ({"ssl": False, "sslmode": "verify-ca"}, TlsMode.VERIFY_CA),
    ],
)
def test_parse_login_tls_only_weakened_explicitly(engine: PostgresEngine, extra: dict[str, Any], mode: TlsMode) -> None:
    assert engine.parse_login({**SECRET, **extra}, "current").tls is mode


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"engine": "mysql"}, '"engine"'),
        ({"engine": "aurora-postgresql"}, None),
        ({"host": ""}, '"host"'),
        ({"host": "db.example\nx"}, '"host"'),
        ({"host": "a" * 254}, '"host"'),
        ({"host": "a" * 253}, None),
        ({"host": 5}, '"host"'),
        ({"username": None}, '"username"'),
        ({"username": "a" * 64}, "63 bytes"),
        ({"username": "é" * 32}, "63 bytes"),
        ({"username": "a\x00b"}, "NUL"),
        ({"password": ""}, '"password"'),
        ({"password": "a\x00b-long"}, "NUL"),
        ({"port": 0}, '"port"'),
        ({"port": 70000}, '"port"'),
        ({"port": True}, '"port"'),
        ({"port": "5432"}, None),
        ({"port": "٥٤٣٢"}, '"port"'),
        ({"dbname": ""}, '"dbname"'),
        ({"dbname": 3}, '"dbname"'),
        ({"ssl": "sometimes"}, '"ssl"'),
        ({"sslmode": "verify"}, '"sslmode"'),
    ],
)
def test_parse_login_bad_field_raises_error_naming_key(
    engine: PostgresEngine, change: dict[str, Any], message: str | None
) -> None:
    secret = {**SECRET, **change}
    if message is None:
        engine.parse_login(secret, "current")
        return
    with pytest.raises(SecretFormatError, match=message) as raised:
        engine.parse_login(secret, "current")
    assert "Pw-123456" not in str(raised.value)


@pytest.mark.parametrize(
    ("driver_message", "category", "hint"),
    [
        ('FATAL:  password authentication failed for user "app"', Category.AUTH_FAILED, "refused"),
        ("server does not support SSL, but SSL was required", Category.TLS, '"ssl": false'),
        ("SSL error: certificate verify failed", Category.TLS, "DB_CA_BUNDLE"),
        ('could not connect to server: Connection refused\n\tIs the server running on host "db"', Category.UNREACHABLE,
         "DB_CONNECT_TIMEOUT"),
        ("timeout expired", Category.UNREACHABLE, "security groups"),
        ('FATAL:  no pg_hba.conf entry for host "10.0.0.1", user "app"', Category.PERMISSION, "not permitted"),
    ],
)  # fmt: skip
def test_login_error_classifies_driver_message(
    engine: PostgresEngine, driver_message: str, category: Category, hint: str
) -> None:
    login = engine.parse_login(SECRET, "current")
    error = engine._login_error(login, Exception(driver_message), "/etc/ssl/ca.pem")
    assert error.category is category
    assert hint in str(error)
    assert "\n" not in str(error)


def test_resolve_ca_bundle_missing_configured_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="DB_CA_BUNDLE"):
        resolve_ca_bundle(str(tmp_path / "missing.pem"))


def test_resolve_ca_bundle_configured_file_is_used(tmp_path: Path) -> None:
    bundle = tmp_path / "rds.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert resolve_ca_bundle(str(bundle)) == str(bundle)


@dataclass
class RecordingConnection:
    """Stands in for a psycopg2 connection: records how statements are executed."""

    fail_with: Exception | None = None
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    committed: bool = False
    rolled_back: bool = False

    def cursor(self) -> RecordingConnection:
        return self

    def __enter__(self) -> RecordingConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    description = None

    def execute(self, *args: Any) -> None:
        self.calls.append(args)
        if self.fail_with is not None:
            raise self.fail_with

    def commit(self) -> None:
        self.committed = True

    def rollback(self) -> None:
        self.rolled_back = True


def test_postgres_connection_run_sends_composed_statements_without_parameters() -> None:
    """No parameters means psycopg2 does no %-formatting: a role named a%s reaches the server as it is."""
    statements = own_password("a%s", "SCRAM-SHA-256$x")
    conn = RecordingConnection()

    run(conn, statements, action="change a password")  # type: ignore[arg-type]

    composed = sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier("a%s"), sql.Literal("SCRAM-SHA-256$x"))
    assert conn.calls == [(sql.SQL("SET ROLE NONE").format(),), (composed,)]
    assert conn.committed


@pytest.mark.parametrize(
    "error", [IndexError("tuple index out of range"), ValueError("A string literal cannot contain NUL")]
)
def test_postgres_connection_run_driver_side_failure_statement_error_rolled_back(error: Exception) -> None:
    conn = RecordingConnection(fail_with=error)

    with pytest.raises(StatementError) as raised:
        run(conn, [role_exists("a")], action="look up a role")  # type: ignore[arg-type]

    assert raised.value.category is Category.STATEMENT
    assert conn.rolled_back
    assert not conn.committed
