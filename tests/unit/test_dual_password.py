"""The dual-password strategy on the in-memory engine, and MySQL's statements and stored strings for it.

The in-memory server keeps a primary and a secondary password per user as MySQL 8.0.14+ does; the
statements and the ``caching_sha2_password`` strings are checked as PyMySQL would send them, and against the
SHA-256 crypt specification's published example.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from rotation_core.engines.mysql.auth_strings import (
    caching_sha2_hash,
    caching_sha2_matches,
    sha256_crypt_digest,
)
from rotation_core.engines.mysql.dual_password import (
    admin_statement,
    lock_name,
    own_statement,
    require_dual_passwords,
)
from rotation_core.engines.mysql.grants import Account
from rotation_core.engines.mysql.statements import ServerVersion
from rotation_core.errors import Category, ConfusedDeputyError, SecretFormatError, TargetError
from rotation_core.rotator import Rotator
from rotation_core.settings import Settings, Strategy
from rotation_local import emulator, service
from unit.fakes import FakeDatabase, run_steps, stages, value_at
from unit.pymysql_offline import sent_text

Steps = Callable[..., Rotator]
DUAL = Strategy.DUAL_PASSWORD


def logs_in(database: FakeDatabase, password: str) -> bool:
    user = database.users["app"]
    return password in (user.password, user.secondary)


# --- the strategy ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_master", [False, True], ids=["own-login", "master"])
def test_dual_password_rotation_new_primary_current_kept_as_secondary(
    with_master: bool, sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps, database: FakeDatabase
) -> None:
    arn = make_secret(with_master=with_master)
    old = value_at(sm_client, arn, "AWSCURRENT")

    token = service.rotate(arn, make_rotator(DUAL).handle)

    new = value_at(sm_client, arn, "AWSCURRENT")
    assert stages(sm_client, arn)[token] == ["AWSCURRENT"]
    assert new["password"] != old["password"]
    assert {k: v for k, v in new.items() if k != "password"} == {k: v for k, v in old.items() if k != "password"}
    assert database.users["app"].password == new["password"]
    assert database.users["app"].secondary == old["password"]
    assert database.changes == (["dual-admin:app"] if with_master else ["dual-self:app"])


def test_dual_password_second_rotation_replaces_the_secondary_with_the_last_current(
    sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps, database: FakeDatabase
) -> None:
    arn = make_secret()
    rotator = make_rotator(DUAL)
    first = value_at(sm_client, arn, "AWSCURRENT")["password"]
    service.rotate(arn, rotator.handle)
    second = value_at(sm_client, arn, "AWSCURRENT")["password"]

    service.rotate(arn, rotator.handle)

    third = value_at(sm_client, arn, "AWSCURRENT")["password"]
    assert (database.users["app"].password, database.users["app"].secondary) == (third, second)
    assert not logs_in(database, first)
    assert value_at(sm_client, arn, "AWSPREVIOUS")["password"] == second


@pytest.mark.parametrize("with_master", [False, True], ids=["own-login", "master"])
def test_dual_password_set_secret_retried_never_retains_pending_as_secondary(
    with_master: bool, sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps, database: FakeDatabase
) -> None:
    arn = make_secret(with_master=with_master)
    current = value_at(sm_client, arn, "AWSCURRENT")["password"]
    token = emulator.stage_pending_placeholder(arn)
    run_steps(make_rotator(DUAL), arn, token, "createSecret", "setSecret")

    run_steps(make_rotator(DUAL), arn, token, "setSecret", "setSecret")  # retries, in new containers

    pending = value_at(sm_client, arn, "AWSPENDING")["password"]
    assert (database.users["app"].password, database.users["app"].secondary) == (pending, current)
    assert len(database.changes) == 1


def test_dual_password_master_secondary_lost_restores_current_before_retaining(
    sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps, database: FakeDatabase
) -> None:
    arn = make_secret(with_master=True)
    current = value_at(sm_client, arn, "AWSCURRENT")["password"]
    token = emulator.stage_pending_placeholder(arn)
    run_steps(make_rotator(DUAL), arn, token, "createSecret")
    pending = value_at(sm_client, arn, "AWSPENDING")["password"]
    # Someone set the primary to another password, keeping the current one as the secondary.
    database.users["app"].password, database.users["app"].secondary = "Set-Outside-0001", current

    run_steps(make_rotator(DUAL), arn, token, "setSecret", "testSecret", "finishSecret")

    assert (database.users["app"].password, database.users["app"].secondary) == (pending, current)


def test_dual_password_own_login_primary_changed_outside_fails_auth_and_keeps_current(
    sm_client: Any, pending: tuple[str, str], make_rotator: Steps, database: FakeDatabase
) -> None:
    arn, token = pending
    current = value_at(sm_client, arn, "AWSCURRENT")["password"]
    run_steps(make_rotator(DUAL), arn, token, "createSecret")
    database.users["app"].password, database.users["app"].secondary = "Set-Outside-0001", current

    with pytest.raises(TargetError, match="neither AWSCURRENT's") as raised:
        run_steps(make_rotator(DUAL), arn, token, "setSecret")

    assert raised.value.category is Category.AUTH_FAILED
    assert logs_in(database, current)
    assert database.changes == []


def test_dual_password_secondary_discarded_after_set_retry_finishes_with_pending(
    sm_client: Any, pending: tuple[str, str], make_rotator: Steps, database: FakeDatabase
) -> None:
    arn, token = pending
    run_steps(make_rotator(DUAL), arn, token, "createSecret", "setSecret")
    database.users["app"].secondary = None  # ALTER USER ... DISCARD OLD PASSWORD, outside the rotation

    run_steps(make_rotator(DUAL), arn, token, "setSecret", "testSecret", "finishSecret")

    assert "AWSCURRENT" in stages(sm_client, arn)[token]
    assert logs_in(database, value_at(sm_client, arn, "AWSCURRENT")["password"])


def test_dual_password_server_without_dual_passwords_refused_before_any_change(
    sm_client: Any, pending: tuple[str, str], make_rotator: Steps, database: FakeDatabase
) -> None:
    database.dual_passwords = False  # MariaDB
    arn, token = pending
    before = database.password_of("app")
    run_steps(make_rotator(DUAL), arn, token, "createSecret")

    with pytest.raises(TargetError) as raised:
        run_steps(make_rotator(DUAL), arn, token, "setSecret")

    assert raised.value.category is Category.CONFIGURATION
    assert database.password_of("app") == before
    assert stages(sm_client, arn)[token] == ["AWSPENDING"]


def test_dual_password_own_login_without_privilege_fails_permission_changes_nothing(
    sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps, database: FakeDatabase
) -> None:
    database.may_retain_own.clear()
    arn = make_secret()
    before = database.password_of("app")

    with pytest.raises(TargetError) as raised:
        service.rotate(arn, make_rotator(DUAL).handle)

    assert raised.value.category is Category.PERMISSION
    assert database.password_of("app") == before


def test_dual_password_pending_names_another_user_refused_as_confused_deputy(
    sm_client: Any, pending: tuple[str, str], make_rotator: Steps, database: FakeDatabase
) -> None:
    arn, token = pending
    current = value_at(sm_client, arn, "AWSCURRENT")
    pending = {**current, "username": "admin", "password": "Attacker-Chosen-001"}
    sm_client.put_secret_value(
        SecretId=arn, ClientRequestToken=token, SecretString=json.dumps(pending), VersionStages=["AWSPENDING"]
    )

    with pytest.raises(ConfusedDeputyError):
        run_steps(make_rotator(DUAL), arn, token, "setSecret")

    assert database.changes == []


def test_dual_password_masterarn_not_a_string_refused_as_secret_format(
    make_secret: Callable[..., str], make_rotator: Steps
) -> None:
    arn = make_secret(masterarn=42)

    with pytest.raises(SecretFormatError, match="masterarn"):
        service.rotate(arn, make_rotator(DUAL).handle)


# --- MySQL statements and stored strings ---------------------------------------------------------------------


def test_sha256_crypt_digest_matches_the_specification_example() -> None:
    # Drepper's "Unix crypt using SHA-256 and SHA-512", first example: $5$saltstring, "Hello world!".
    assert sha256_crypt_digest(b"Hello world!", b"saltstring", 5000) == "5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"


@pytest.mark.parametrize("rounds", [5000, 10000])
def test_caching_sha2_hash_round_trip_and_format(rounds: int) -> None:
    stored = caching_sha2_hash("Pässword-with-ünicode-1", rounds)

    assert stored.startswith(f"$A${rounds // 1000:03X}$")
    assert len(stored) == 70
    assert caching_sha2_matches("Pässword-with-ünicode-1", stored)
    assert not caching_sha2_matches("Password-with-unicode-1", stored)


def test_caching_sha2_matches_a_string_with_control_characters_in_its_salt() -> None:
    salt = "ab(:<L\x08Nw)\x18dF;\x16}\x7f^.\x0b"  # MySQL's own salts may hold any byte but NUL and '$'
    stored = caching_sha2_hash("secret-value-0001", 5000, salt=salt)

    assert caching_sha2_matches("secret-value-0001", stored)


@pytest.mark.parametrize(
    "stored", [None, "", "*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9", "$A$005$short", "$A$000$" + "x" * 63]
)
def test_caching_sha2_matches_other_formats_false(stored: str | None) -> None:
    assert not caching_sha2_matches("secret-value-0001", stored)


def test_own_statement_replace_checks_current_and_retains_it_values_bound() -> None:
    text = sent_text(own_statement("Current-Pass-0001", "New-Pass-000002"))

    assert text == (
        "ALTER USER USER() IDENTIFIED BY 'New-Pass-000002' REPLACE 'Current-Pass-0001' RETAIN CURRENT PASSWORD"
    )


@pytest.mark.parametrize("retain", [True, False])
def test_admin_statement_sends_the_hash_never_the_password(retain: bool) -> None:
    stored = caching_sha2_hash("New-Pass-000002")

    text = sent_text(admin_statement(Account("app'x", "10.%"), stored, retain=retain))

    assert "New-Pass-000002" not in text
    assert text.startswith(f"ALTER USER 'app\\'x'@'10.%' IDENTIFIED WITH caching_sha2_password AS '{stored}'")
    assert text.endswith(" RETAIN CURRENT PASSWORD") is retain


def test_lock_name_fits_get_lock_and_holds_no_user_text() -> None:
    name = lock_name(Account("app_with_a_very_long_name_of_32c", "%"))

    assert len(name) <= 64
    assert "app" not in name


@pytest.mark.parametrize(
    ("version", "refused"),
    [("10.11.6-MariaDB", True), ("11.8.2-MariaDB-1", True), ("8.0.13", True), ("8.0.14", False), ("9.7.4", False)],
)
def test_require_dual_passwords_mariadb_and_old_mysql_refused_naming_the_server(version: str, refused: bool) -> None:
    server = ServerVersion.parse(version)
    if not refused:
        require_dual_passwords(server)
        return
    with pytest.raises(TargetError) as raised:
        require_dual_passwords(server)
    assert raised.value.category is Category.CONFIGURATION
    assert str(server) in raised.value.message
    assert "single_user or alternating_users" in raised.value.message


# --- the master's decision on MySQL, from the account's stored strings (PyMySQL's own formatting) --------------

CURRENT, NEW, OTHER = "Current-Pass-0001", "New-Pass-000002", "Someone-Elses-03"


def admin_statements(primary: str | None, secondary: str | None) -> list[str]:
    """What set_dual_password_as_admin sends when mysql.user holds these passwords' strings."""
    import json

    from rotation_core.engines.base import DualPasswordRequest
    from rotation_core.engines.mysql.engine import MySQLEngine, MySQLSession
    from unit.pymysql_offline import OfflineConnection

    stored = {name: caching_sha2_hash(name, 10000) for name in (CURRENT, NEW, OTHER)}
    attributes = json.dumps({"additional_password": stored[secondary]}) if secondary else None

    def answer(sql: str) -> list[tuple[Any, ...]]:
        if sql.startswith("SELECT plugin, authentication_string"):
            return [("caching_sha2_password", stored[primary] if primary else "", attributes)]
        if sql.startswith("SELECT GET_LOCK"):
            return [(1,)]
        if sql.startswith("SELECT @@GLOBAL.caching_sha2_password_digest_rounds"):
            return [(10000,)]
        return [(1,)] if sql.startswith("SELECT RELEASE_LOCK") else []

    server = ServerVersion.parse("9.7.4")
    admin = MySQLSession(conn=OfflineConnection(answer), account=Account("master", "%"), server=server)
    caller = MySQLSession(conn=OfflineConnection(answer), account=Account("app", "10.0.%"), server=server)
    request = DualPasswordRequest(caller=caller, current_password=CURRENT, new_password=NEW)
    MySQLEngine(Settings(strategy=Strategy.DUAL_PASSWORD)).set_dual_password_as_admin(admin, request)
    sent = admin.conn.sent  # type: ignore[attr-defined]
    assert sent[0].startswith("SELECT GET_LOCK(")
    assert sent[-1].startswith("SELECT RELEASE_LOCK(")
    assert not any(password in sql for sql in sent for password in (CURRENT, NEW))
    return [sql for sql in sent if sql.startswith("ALTER USER")]


def test_dual_password_master_current_primary_one_statement_retaining_it() -> None:
    (statement,) = admin_statements(CURRENT, None)

    assert statement.startswith("ALTER USER 'app'@'10.0.%' IDENTIFIED WITH caching_sha2_password AS '$A$00A$")
    assert statement.endswith(" RETAIN CURRENT PASSWORD")


def test_dual_password_master_already_set_by_an_earlier_attempt_sends_nothing() -> None:
    assert admin_statements(NEW, CURRENT) == []


@pytest.mark.parametrize(("primary", "secondary"), [(NEW, None), (OTHER, CURRENT), (NEW, OTHER)])
def test_dual_password_master_current_not_primary_made_primary_first_then_retained(
    primary: str, secondary: str | None
) -> None:
    restore, retain = admin_statements(primary, secondary)

    assert " AS '$A$" in restore
    assert not restore.endswith("RETAIN CURRENT PASSWORD")
    assert retain.endswith(" RETAIN CURRENT PASSWORD")
