"""Hostile and malformed input: each case is a clear error (type, category, what is wrong) and changes nothing.

Complements the cases already in test_rotator.py, test_postgres_engine.py and test_settings.py (not
repeated here). Passwords made of every punctuation character are not hostile: they must rotate.
"""

from __future__ import annotations

import contextlib
import json
import string
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from helpers import LeakGuard, json_lines
from rotation_core.errors import (
    Category,
    ConfusedDeputyError,
    InvalidEventError,
    RotationError,
    RotationStateError,
    SecretFormatError,
)
from rotation_core.handler import database_handler
from rotation_core.rotator import Rotator
from rotation_core.secrets import SecretStore
from rotation_core.settings import Strategy
from rotation_local import emulator, service
from unit.fakes import FAKE_ENGINE, CallCounter, FakeDatabase, FakeEngine, FakeUser, stage_pending, stages, value_at

Steps = Callable[..., Rotator]
MEGABYTE = 1024 * 1024


def snapshot(sm_client: Any, arn: str, database: FakeDatabase) -> tuple[Any, ...]:
    """Everything a failed step must leave as it was."""
    return (
        stages(sm_client, arn),
        {name: (user.password, user.acts_as) for name, user in database.users.items()},
        list(database.changes),
    )


ChangesNothing = Callable[[str], contextlib.AbstractContextManager[None]]


@pytest.fixture
def changes_nothing(sm_client: Any, database: FakeDatabase) -> ChangesNothing:
    """``with changes_nothing(arn):`` asserts that the block leaves the secret and the database as they were."""

    @contextlib.contextmanager
    def check(arn: str) -> Iterator[None]:
        before = snapshot(sm_client, arn, database)
        yield
        assert snapshot(sm_client, arn, database) == before

    return check


# --- events --------------------------------------------------------------------------------------------------------

VALID = {"Step": "createSecret", "SecretId": "s", "ClientRequestToken": "t"}


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({**VALID, "Step": 1}, "Step '1' is not one of"),
        ({**VALID, "Step": "createsecret"}, "is not one of"),
        ({**VALID, "Step": "createSecret\n"}, "is not one of"),
        ({**VALID, "SecretId": ["s"]}, "no valid SecretId"),
        ({**VALID, "SecretId": "s" * 2049}, "no valid SecretId"),
        ({**VALID, "SecretId": "arn:aws:secretsmanager:x\x00"}, "control characters"),
        ({**VALID, "ClientRequestToken": None}, "ClientRequestToken"),
        ({**VALID, "ClientRequestToken": "tökén"}, "ClientRequestToken"),
        ({**VALID, "ClientRequestToken": "../../etc"}, "ClientRequestToken"),
        ({**VALID, "RotationToken": "x" * 35 + "\n"}, "RotationToken"),
        ({**VALID, "RotationToken": "x" * 257}, "RotationToken"),
    ],
    ids=[
        "step_not_a_string", "step_wrong_case", "step_trailing_newline", "secret_id_list", "secret_id_too_long",
        "secret_id_nul", "token_null", "token_unicode", "token_path", "rotation_token_newline", "rotation_token_long",
    ],
)  # fmt: skip
def test_event_hostile_field_raises_event_error_before_any_call(
    event: dict[str, Any], message: str, make_rotator: Steps, call_counter: CallCounter
) -> None:
    with pytest.raises(InvalidEventError, match=message) as raised:
        make_rotator().handle(event)
    assert raised.value.category is Category.EVENT
    assert "\n" not in str(raised.value)
    assert sum(call_counter.take().values()) == 0


def test_event_arn_of_another_secret_raises_protocol_error_and_changes_nothing(
    sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps, changes_nothing: ChangesNothing
) -> None:
    arn = make_secret()
    token = emulator.stage_pending_placeholder(arn)
    other = sm_client.create_secret(Name="other-secret", SecretString=json.dumps({"x": "Other-Value-123"}))["ARN"]
    emulator.enable_rotation(other)
    before_other = stages(sm_client, other)

    with changes_nothing(arn):
        for step in service.STEPS:
            with pytest.raises(RotationStateError, match="is not a version of this secret") as raised:
                make_rotator().handle(service.event(step, other, token))
            assert raised.value.category is Category.PROTOCOL

    assert stages(sm_client, other) == before_other


def test_event_token_of_current_version_in_wrong_stage_previous_raises_protocol_error(
    sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps, changes_nothing: ChangesNothing
) -> None:
    arn = make_secret()
    initial = next(v for v, s in stages(sm_client, arn).items() if "AWSCURRENT" in s)
    service.rotate(arn, make_rotator().handle)  # the initial version is now AWSPREVIOUS
    token = emulator.stage_pending_placeholder(arn)

    with changes_nothing(arn), pytest.raises(RotationStateError, match="is not AWSPENDING \\(stages: AWSPREVIOUS\\)"):
        make_rotator().handle(service.event("setSecret", arn, initial))

    assert stages(sm_client, arn)[token] == ["AWSPENDING"]


# --- secret values -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "error", "category", "message"),
    [
        ({"username": None}, SecretFormatError, Category.SECRET_FORMAT, 'pending secret has no "username"'),
        ({"username": 42}, SecretFormatError, Category.SECRET_FORMAT, 'pending secret has no "username"'),
        ({"host": ["db.internal.example"]}, SecretFormatError, Category.SECRET_FORMAT, 'pending secret has no "host"'),
        ({"password": None}, SecretFormatError, Category.SECRET_FORMAT, 'pending secret has no "password"'),
        ({"port": 5432.5}, SecretFormatError, Category.SECRET_FORMAT, '"port" must be a number'),
        ({"engine": "mysql"}, SecretFormatError, Category.SECRET_FORMAT, 'pending secret\'s "engine"'),
        ({"engine": "oracle"}, SecretFormatError, Category.SECRET_FORMAT, "engine must be one of"),
        ({"host": "DB.INTERNAL.EXAMPLE.evil.example"}, ConfusedDeputyError, Category.CONFUSED_DEPUTY, "another server"),
        ({"host": "db.internal.example/evil"}, SecretFormatError, Category.SECRET_FORMAT, "not a host name"),
        ({"username": "app "}, ConfusedDeputyError, Category.CONFUSED_DEPUTY, "another user"),
        ({"host": "other-db.example"}, ConfusedDeputyError, Category.CONFUSED_DEPUTY, "another server"),
        ({"port": 6543}, ConfusedDeputyError, Category.CONFUSED_DEPUTY, "another server"),
        ({"engine": "aurora-postgresql"}, SecretFormatError, Category.SECRET_FORMAT, 'pending secret\'s "engine"'),
        ({"username": "admin"}, ConfusedDeputyError, Category.CONFUSED_DEPUTY, "another user"),
    ],
    ids=[
        "username_missing", "username_int", "host_list", "password_null", "port_float", "engine_switched",
        "engine_unknown", "host_suffix_changed", "host_with_slash", "username_trailing_space", "host_other_server",
        "port_other", "engine_aurora", "username_master",
    ],
)  # fmt: skip
def test_set_secret_hostile_pending_value_raises_clear_error_and_changes_nothing(
    change: dict[str, Any], error: type[RotationError], category: Category, message: str, sm_client: Any,
    make_secret: Callable[..., str], make_rotator: Steps, database: FakeDatabase, changes_nothing: ChangesNothing,
) -> None:  # fmt: skip
    arn = make_secret()
    token = stage_pending(
        sm_client, arn, {**value_at(sm_client, arn, "AWSCURRENT"), "password": "Attacker-Chosen-123", **change}
    )

    with changes_nothing(arn), pytest.raises(error, match=message) as raised:
        make_rotator().handle(service.event("setSecret", arn, token))

    assert raised.value.category is category
    assert "Attacker-Chosen-123" not in str(raised.value)
    assert database.changes == []
    assert database.connections == []


@pytest.mark.parametrize(
    ("text", "message"),
    [("not json", "not a JSON object"), ("null", "not a JSON object"), ('"a string"', "not a JSON object")],
    ids=["pending_not_json", "pending_json_null", "pending_json_string"],
)
def test_test_secret_pending_not_a_json_object_raises_format_error_and_changes_nothing(
    text: str, message: str, sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps,
    changes_nothing: ChangesNothing,
) -> None:  # fmt: skip
    arn = make_secret()
    token = stage_pending(sm_client, arn, text)

    with changes_nothing(arn), pytest.raises(SecretFormatError, match=message) as raised:
        make_rotator().handle(service.event("testSecret", arn, token))

    assert raised.value.category is Category.SECRET_FORMAT


def test_create_secret_binary_current_value_raises_format_error_without_storing(
    sm_client: Any, make_rotator: Steps
) -> None:
    arn = sm_client.create_secret(Name="binary", SecretBinary=b"\x00\x01binary-secret")["ARN"]
    emulator.enable_rotation(arn)
    token = emulator.stage_pending_placeholder(arn)

    with pytest.raises(SecretFormatError, match="holds binary data") as raised:
        make_rotator().handle(service.event("createSecret", arn, token))

    assert raised.value.category is Category.SECRET_FORMAT
    assert stages(sm_client, arn)[token] == ["AWSPENDING"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"username": "admin"}, "not the current user's alternate"),
        ({"masterarn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:evil-master"}, "different master"),
        ({"masterarn": None}, 'pending secret has no "masterarn"'),
    ],
    ids=["pending_user_is_master", "pending_other_masterarn", "pending_masterarn_missing"],
)
def test_alternating_set_secret_pending_edited_raises_and_never_uses_master(
    change: dict[str, Any], message: str, sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps,
    database: FakeDatabase, changes_nothing: ChangesNothing,
) -> None:  # fmt: skip
    arn = make_secret(with_master=True)
    current = value_at(sm_client, arn, "AWSCURRENT")
    token = stage_pending(
        sm_client, arn, {**current, "username": "app_clone", "password": "Attacker-Chosen-123", **change}
    )

    with changes_nothing(arn), pytest.raises(RotationError, match=message) as raised:
        make_rotator(Strategy.ALTERNATING_USERS).handle(service.event("setSecret", arn, token))

    assert raised.value.category in (Category.CONFUSED_DEPUTY, Category.SECRET_FORMAT)
    assert "admin" not in database.connections


@pytest.mark.parametrize(
    "master_change",
    [{"port": 6432}, {"host": "db.internal.example.", "port": 5432}],
    ids=["master_other_port", "master_host_trailing_dot"],
)
def test_alternating_masterarn_naming_other_server_is_confused_deputy_and_changes_nothing(
    master_change: dict[str, Any],
    sm_client: Any,
    make_secret: Callable[..., str],
    make_rotator: Steps,
    database: FakeDatabase,
    changes_nothing: ChangesNothing,
) -> None:
    arn = make_secret(with_master=True)
    master_arn = value_at(sm_client, arn, "AWSCURRENT")["masterarn"]
    master = value_at(sm_client, master_arn, "AWSCURRENT")
    sm_client.put_secret_value(SecretId=master_arn, SecretString=json.dumps({**master, **master_change}))
    token = emulator.stage_pending_placeholder(arn)
    rotator = make_rotator(Strategy.ALTERNATING_USERS)
    rotator.handle(service.event("createSecret", arn, token))

    with changes_nothing(arn), pytest.raises(ConfusedDeputyError, match="master secret names another server") as raised:
        rotator.handle(service.event("setSecret", arn, token))

    assert raised.value.category is Category.CONFUSED_DEPUTY
    assert "admin" not in database.connections


# --- identifiers ---------------------------------------------------------------------------------------------------

HOSTILE_USERNAMES = {
    "double_quote": 'app"; DROP ROLE admin; --',
    "single_quote": "app'--",
    "semicolon": "app;SELECT 1",
    "backslash": "app\\\\x",
    "newline": 'app\n{"level":"INFO","message":"rotation complete"}',
    "unicode": "äpp-用户-🔑",
    "rtl_override": "app\u202egnp.exe",
}


@pytest.mark.parametrize("username", HOSTILE_USERNAMES.values(), ids=HOSTILE_USERNAMES.keys())
def test_alternating_hostile_username_rotates_as_a_plain_name_and_log_lines_stay_single(
    username: str,
    sm_client: Any,
    make_secret: Callable[..., str],
    database: FakeDatabase,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A name with quotes, semicolons, newlines or unicode is data: it rotates (or fails) and forges no log line."""
    database.users[username] = FakeUser(password="Hostile-Name-Password-1")
    arn = make_secret(with_master=True, username=username, password="Hostile-Name-Password-1")
    handler = database_handler(
        FAKE_ENGINE,
        engine_factory=lambda settings: FakeEngine(settings, database),
        store=SecretStore(sm_client),
        environ={"ROTATION_STRATEGY": "alternating_users"},
    )

    service.rotate(arn, lambda event: handler(dict(event), None))

    current = value_at(sm_client, arn, "AWSCURRENT")
    assert current["username"] == username + "_clone"
    assert database.users[username + "_clone"].acts_as == username
    assert database.password_of(username) == "Hostile-Name-Password-1"
    records = [r for r in json_lines(capfd.readouterr().out) if "level" in r]  # every line is one whole JSON record
    assert [r["message"] for r in records if r["message"] == "rotation complete"] == []
    assert all(r.get("user") in (None, username + "_clone") for r in records)


@pytest.mark.parametrize(
    ("username", "message"),
    [
        ("u" * MEGABYTE, "longer than FakeSQL's limit of 63 bytes"),
        ("ü" * 32, "longer than FakeSQL's limit of 63 bytes"),
        ("app\ud800", "not valid Unicode"),
    ],
    ids=["username_1mb", "username_64_bytes_of_umlauts", "username_lone_surrogate"],
)
def test_create_secret_over_length_username_raises_format_error_without_echoing_it(
    username: str, message: str, sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps
) -> None:
    arn = make_secret(username=username)
    token = emulator.stage_pending_placeholder(arn)

    with pytest.raises(SecretFormatError, match=message) as raised:
        make_rotator().handle(service.event("createSecret", arn, token))

    assert len(str(raised.value)) < 400
    assert stages(sm_client, arn)[token] == ["AWSPENDING"]


def test_set_secret_username_with_newline_refused_login_error_is_one_log_line(
    sm_client: Any,
    make_secret: Callable[..., str],
    database: FakeDatabase,
    changes_nothing: ChangesNothing,
    capfd: pytest.CaptureFixture[str],
) -> None:
    forged = 'a\n{"level":"INFO","message":"forged"}'
    database.users[forged] = FakeUser(password="Somebody-Changed-It-1")
    arn = make_secret(username=forged, password="Not-The-Password-1")
    token = emulator.stage_pending_placeholder(arn)
    handler = database_handler(
        FAKE_ENGINE,
        engine_factory=lambda settings: FakeEngine(settings, database),
        store=SecretStore(sm_client),
        environ={},
    )
    handler(service.event("createSecret", arn, token), None)

    with changes_nothing(arn), pytest.raises(RotationError, match="neither the current") as raised:
        handler(service.event("setSecret", arn, token), None)

    assert raised.value.category is Category.AUTH_FAILED
    assert "\n" not in str(raised.value)
    records = [r for r in json_lines(capfd.readouterr().out) if "level" in r]  # every line is one whole JSON record
    assert [r["level"] for r in records if r["message"] == "forged"] == []
    assert sum(1 for r in records if r["level"] == "ERROR") == 1


# --- passwords and huge values -------------------------------------------------------------------------------------

PUNCTUATION_PASSWORDS = {
    "all_punctuation": string.punctuation + "Aa1",
    "quotes_and_backslashes": "'\"\\'\\\"\\\\-Aa1-" * 3,
    "sql_and_json_syntax": '\'); DROP ROLE app; --{"a":1}\\u0000%s%%Aa1',
    "whitespace_and_unicode": " pass\tword ünïcødé 🔑 Aa1 ",
}


@pytest.mark.parametrize("password", PUNCTUATION_PASSWORDS.values(), ids=PUNCTUATION_PASSWORDS.keys())
@pytest.mark.parametrize("strategy", [Strategy.SINGLE_USER, Strategy.ALTERNATING_USERS])
def test_rotation_current_password_of_every_punctuation_character_succeeds(
    password: str,
    strategy: Strategy,
    sm_client: Any,
    make_secret: Callable[..., str],
    make_rotator: Steps,
    database: FakeDatabase,
    leak_guard: LeakGuard,
) -> None:
    leak_guard.add(password)
    database.users["app"].password = password
    database.users["admin"].password = password + "-admin"
    arn = make_secret(with_master=strategy is Strategy.ALTERNATING_USERS, password=password)
    if strategy is Strategy.ALTERNATING_USERS:
        master_arn = value_at(sm_client, arn, "AWSCURRENT")["masterarn"]
        master = value_at(sm_client, master_arn, "AWSCURRENT")
        sm_client.put_secret_value(
            SecretId=master_arn, SecretString=json.dumps({**master, "password": password + "-admin"})
        )

    token = service.rotate(arn, make_rotator(strategy).handle)

    current = value_at(sm_client, arn, "AWSCURRENT")
    assert stages(sm_client, arn)[token] == ["AWSCURRENT"]
    assert database.password_of(current["username"]) == current["password"]
    assert value_at(sm_client, arn, "AWSPREVIOUS")["password"] == password


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"password": "p" * MEGABYTE}, "over 4096 characters"),
        ({"dbname": "d\x00" * (MEGABYTE // 2)}, '"dbname" must be a non-empty string'),
        ({"host": "h" * MEGABYTE + "\n"}, '"host"'),
    ],
    ids=["password_1mb", "dbname_1mb_with_nul", "host_1mb_with_newline"],
)
def test_create_secret_huge_field_raises_short_format_error_without_storing(
    change: dict[str, Any], message: str, sm_client: Any, make_secret: Callable[..., str], make_rotator: Steps
) -> None:
    arn = make_secret(**change)
    token = emulator.stage_pending_placeholder(arn)

    with pytest.raises(SecretFormatError, match=message) as raised:
        make_rotator().handle(service.event("createSecret", arn, token))

    assert raised.value.category is Category.SECRET_FORMAT
    assert len(str(raised.value)) < 400
    assert stages(sm_client, arn)[token] == ["AWSPENDING"]
