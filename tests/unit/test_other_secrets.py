"""A master or admin secret that this very function rotates is refused (issue #24, section 3).

The function's role may read every secret whose rotation function is that function, so a rotated secret
could name another team's rotated secret as its ``masterarn`` / ``adminarn`` and have the function act
with that team's credential. :meth:`RotationContext.other_secret`, the one place both database masters and
API-key admin secrets are read, describes the other secret first and refuses it, before reading its value,
when its rotation function is the one rotating this secret. Both paths run through the real rotator here:
the alternating-users strategy on the fake database, the API-key rotation on the fake providers' in-process
transport.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest

from helpers import lambda_context
from rotation_core.api_keys import ApiKeyRotation
from rotation_core.errors import Category, ConfusedDeputyError
from rotation_core.handler import RotationHandler, api_key_handler
from rotation_core.providers.http import HttpClient
from rotation_core.rotator import RotationContext, RotationEvent, Rotator, same_function
from rotation_core.secrets import SecretStore
from rotation_core.settings import Settings, Strategy
from rotation_local import emulator, service
from rotation_local.fake_providers import FakeProviderServer, fake_provider
from unit.fakes import FakeDatabase, stages

THIS_FUNCTION = emulator.function_arn(emulator.LOCAL_FUNCTION)
SERVER = {"engine": "postgres", "host": "db.internal.example", "port": 5432}  # the fake database's


class ReadLog:
    """The SecretId of every GetSecretValue a client sends."""

    def __init__(self, client: Any) -> None:
        self.read: list[str] = []
        client.meta.events.register("before-parameter-build.secrets-manager.GetSecretValue", self._record)

    def _record(self, params: dict[str, Any], **_kwargs: Any) -> None:
        self.read.append(str(params["SecretId"]))


def other_team_secret(sm_client: Any, value: dict[str, Any], *, rotated_by: str | None) -> str:
    """Another team's secret; ``rotated_by``: the rotation function attached to it (None: no rotation)."""
    arn: str = sm_client.create_secret(Name="other-team", SecretString=json.dumps(value))["ARN"]
    if rotated_by is not None:
        emulator.enable_rotation(arn, lambda_arn=rotated_by)
    return arn


# --- the shared check -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        (THIS_FUNCTION, THIS_FUNCTION, True),
        (THIS_FUNCTION, THIS_FUNCTION + ":live", True),
        (THIS_FUNCTION + ":3", THIS_FUNCTION + ":$LATEST", True),
        (THIS_FUNCTION, emulator.function_arn("another-rotation"), False),
        (THIS_FUNCTION, emulator.function_arn(emulator.LOCAL_FUNCTION, account_id="210987654321"), False),
    ],
)
def test_same_function_qualifier_ignored_other_name_or_account_differs(first: str, second: str, same: bool) -> None:
    assert same_function(first, second) is same


def test_other_secret_rotated_by_this_function_refused_before_its_value_is_read(
    sm_client: Any, make_secret: Callable[..., str]
) -> None:
    arn = make_secret()
    other = other_team_secret(sm_client, {"username": "b", "password": "Team-B-Password-1"}, rotated_by=THIS_FUNCTION)
    reads = ReadLog(sm_client)
    store = SecretStore(sm_client)
    context = RotationContext(
        event=RotationEvent.parse(service.event("setSecret", arn, "t" * 32)), metadata=store.describe(arn), store=store
    )

    with pytest.raises(ConfusedDeputyError, match="is itself rotated by this function") as raised:
        context.other_secret(other)

    assert raised.value.category is Category.CONFUSED_DEPUTY
    assert reads.read == []


@pytest.mark.parametrize("rotated_by", [None, emulator.function_arn("master-single-user-rotation")])
def test_other_secret_not_rotated_or_rotated_elsewhere_is_read(
    sm_client: Any, make_secret: Callable[..., str], rotated_by: str | None
) -> None:
    arn = make_secret()
    other = other_team_secret(sm_client, {"username": "m", "password": "Master-Password-1"}, rotated_by=rotated_by)
    store = SecretStore(sm_client)
    context = RotationContext(
        event=RotationEvent.parse(service.event("setSecret", arn, "t" * 32)), metadata=store.describe(arn), store=store
    )

    assert context.other_secret(other)["username"] == "m"


# --- database masters (alternating users) ---------------------------------------------------------------


def test_alternating_master_secret_rotated_by_this_function_refused_nothing_changed(
    sm_client: Any, make_secret: Callable[..., str], make_rotator: Callable[..., Rotator], database: FakeDatabase
) -> None:
    # Team B's secret holds a login that may manage users; team A's secret names it as its master.
    team_b = {**SERVER, "username": "admin", "password": database.password_of("admin")}
    other = other_team_secret(sm_client, team_b, rotated_by=THIS_FUNCTION)
    arn = make_secret(masterarn=other)
    rotator = make_rotator(Strategy.ALTERNATING_USERS)
    reads = ReadLog(sm_client)
    token = emulator.stage_pending_placeholder(arn)

    rotator.handle(service.event("createSecret", arn, token))
    with pytest.raises(ConfusedDeputyError, match="is itself rotated by this function") as raised:
        rotator.handle(service.event("setSecret", arn, token))

    assert raised.value.category is Category.CONFUSED_DEPUTY
    assert other not in reads.read
    assert database.changes == []
    assert "admin" not in database.connections  # the master never logged in
    assert stages(sm_client, arn)[token] == ["AWSPENDING"]


def test_alternating_master_secret_rotated_by_this_function_preflight_reports_master_secret(
    sm_client: Any,
    make_secret: Callable[..., str],
    make_handler: Callable[..., RotationHandler],
    database: FakeDatabase,
) -> None:
    team_b = {**SERVER, "username": "admin", "password": database.password_of("admin")}
    other = other_team_secret(sm_client, team_b, rotated_by=THIS_FUNCTION)
    arn = make_secret(masterarn=other)
    handler = make_handler(ROTATION_STRATEGY="alternating_users")

    report = handler({"Preflight": {"SecretId": arn}}, lambda_context())

    check = next(c for c in report["checks"] if c["name"] == "master_secret")
    assert (check["status"], check["category"]) == ("failed", "confused_deputy")
    assert "is itself rotated by this function" in check["fix"]
    assert report["ok"] is False


# --- API-key admin secrets ------------------------------------------------------------------------------


@pytest.fixture
def datadog(leak_guard: Any) -> Iterator[FakeProviderServer]:
    fake = fake_provider("datadog")
    leak_guard.add(*fake.admin_values())
    yield fake
    leak_guard.add(*(key.value for key in fake.keys))
    fake.stop()


def api_key_rotator(sm_client: Any, fake: FakeProviderServer) -> Rotator:
    http = HttpClient(transport=fake.transport(), sleep=lambda _s: None)
    rotation = ApiKeyRotation(Settings(api_verify_delay=0), http=http, sleep=lambda _s: None)
    return Rotator(SecretStore(sm_client), rotation)


class ApiKeySecret(NamedTuple):
    """What :func:`api_key_secret` made."""

    arn: str
    admin: str  # the admin secret's ARN
    value: dict[str, Any]


def api_key_secret(sm_client: Any, datadog: FakeProviderServer, *, admin_rotated_by: str | None) -> ApiKeySecret:
    """A rotation-enabled Datadog API-key secret whose admin secret is another team's, rotated by
    ``admin_rotated_by`` (None: not rotated)."""
    admin = other_team_secret(sm_client, datadog.admin_secret(), rotated_by=admin_rotated_by)
    value = datadog.seed_secret(admin, team="payments")
    arn = sm_client.create_secret(Name="api-key", SecretString=json.dumps(value))["ARN"]
    emulator.enable_rotation(arn)
    return ApiKeySecret(arn, admin, value)


def test_api_key_admin_secret_rotated_by_this_function_refused_nothing_minted(
    sm_client: Any, datadog: FakeProviderServer
) -> None:
    # Another team's rotated API-key secret, attached to this very function, named as the admin secret.
    arn, other, value = api_key_secret(sm_client, datadog, admin_rotated_by=THIS_FUNCTION)
    reads = ReadLog(sm_client)
    keys_before = list(datadog.keys)
    token = emulator.stage_pending_placeholder(arn)

    with pytest.raises(ConfusedDeputyError, match="is itself rotated by this function") as raised:
        api_key_rotator(sm_client, datadog).handle(service.event("createSecret", arn, token))

    assert raised.value.category is Category.CONFUSED_DEPUTY
    assert other not in reads.read
    assert datadog.requests == []  # not a single call to the provider with that credential
    assert datadog.keys == keys_before
    assert stages(sm_client, arn)[token] == ["AWSPENDING"]
    assert sm_client.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"] == json.dumps(value)


def test_api_key_admin_secret_rotated_by_this_function_preflight_reports_admin_secret(
    sm_client: Any, datadog: FakeProviderServer
) -> None:
    arn = api_key_secret(sm_client, datadog, admin_rotated_by=THIS_FUNCTION).arn
    handler = api_key_handler(
        store=SecretStore(sm_client), http=HttpClient(transport=datadog.transport(), sleep=lambda _s: None), environ={}
    )

    report = handler({"Preflight": {"SecretId": arn}}, lambda_context())

    checks = {check["name"]: check for check in report["checks"]}
    assert (checks["admin_secret"]["status"], checks["admin_secret"]["category"]) == ("failed", "confused_deputy")
    assert "is itself rotated by this function" in checks["admin_secret"]["fix"]
    assert checks["secret_json"]["status"] == "skipped"  # the admin secret names the provider the key belongs to
    assert checks["key_binding"]["status"] == "skipped"
    assert report["ok"] is False
    assert datadog.requests == []


def test_api_key_admin_secret_not_rotated_still_rotates(sm_client: Any, datadog: FakeProviderServer) -> None:
    arn = api_key_secret(sm_client, datadog, admin_rotated_by=None).arn

    token = service.rotate(arn, api_key_rotator(sm_client, datadog).handle)

    assert stages(sm_client, arn)[token] == ["AWSCURRENT"]
