"""The API-key strategy on moto in-process and the fake providers' in-process transport (no sockets)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from helpers import LeakGuard
from rotation_core.api_keys import KEY_NAME_PREFIX, ApiKeyRotation, key_name, key_name_prefix
from rotation_core.errors import (
    Category,
    ConfigurationError,
    ConfusedDeputyError,
    RotationError,
    SecretFormatError,
    TargetError,
)
from rotation_core.providers import BUILT_IN, build_provider
from rotation_core.providers.http import HttpClient
from rotation_core.rotator import Rotator
from rotation_core.secrets import SecretStore
from rotation_core.settings import REVOKE_POLICY, RevokePolicy, Settings
from rotation_local import emulator, service
from rotation_local.fake_providers import FakeProviderServer, fake_provider
from unit.fakes import CallCounter

ARN_PREFIX = "arn:aws:secretsmanager:us-east-1:123456789012:secret:"


@pytest.fixture
def fakes(leak_guard: LeakGuard) -> Iterator[Callable[[str], FakeProviderServer]]:
    """Fake providers used in-process through their transport (never started), held to their definitions."""
    made: list[FakeProviderServer] = []

    def make(kind: str) -> FakeProviderServer:
        fake = fake_provider(kind)
        made.append(fake)
        leak_guard.add(*fake.admin_values())
        return fake

    yield make
    for fake in made:
        leak_guard.add(*(key.value for key in fake.keys))
        leak_guard.watch_text(fake.access_log_path.read_text(encoding="utf-8"))
        fake.stop()
    assert [problem for fake in made for problem in fake.contract_violations] == []


def make_rotator(
    sm_client: Any, fake: FakeProviderServer, policy: RevokePolicy = RevokePolicy.PREVIOUS_AT_NEXT_ROTATION
) -> Rotator:
    settings = Settings(revoke_policy=policy, api_verify_delay=0)
    http = HttpClient(transport=fake.transport(), sleep=lambda _s: None)
    return Rotator(SecretStore(sm_client), ApiKeyRotation(settings, http=http, sleep=lambda _s: None))


def make_secret(sm_client: Any, fake: FakeProviderServer, **overrides: Any) -> str:
    admin_arn = sm_client.create_secret(Name="admin", SecretString=json.dumps(fake.admin_secret()))["ARN"]
    value = {**fake.seed_secret(admin_arn, team="payments"), **overrides}
    arn: str = sm_client.create_secret(Name="api-key", SecretString=json.dumps(value))["ARN"]
    emulator.enable_rotation(arn)
    return arn


def current_value(sm_client: Any, arn: str, stage: str = "AWSCURRENT") -> dict[str, Any]:
    result: dict[str, Any] = json.loads(sm_client.get_secret_value(SecretId=arn, VersionStage=stage)["SecretString"])
    return result


@pytest.mark.parametrize("kind", ["datadog", "sendgrid", "twilio", "cloudflare"])
def test_api_key_rotation_keeps_unknown_keys_and_two_valid_keys(
    kind: str, sm_client: Any, fakes: Callable[[str], FakeProviderServer]
) -> None:
    fake = fakes(kind)
    arn = make_secret(sm_client, fake)
    before = current_value(sm_client, arn)
    rotator = make_rotator(sm_client, fake)

    service.rotate(arn, rotator.handle)
    service.rotate(arn, rotator.handle)

    after = current_value(sm_client, arn)
    assert (after["team"], after["provider"], after["adminarn"]) == ("payments", kind, before["adminarn"])
    minted = [key for key in fake.live_keys() if key.name.startswith(key_name_prefix(arn))]
    assert len(minted) == 2
    # The console-made first key is revoked only where the provider ties its value to its id; SendGrid
    # cannot, so that key is left for an operator (with a warning), never revoked on the secret's word.
    console_left = [key.name for key in fake.live_keys() if key not in minted]
    assert console_left == (["created-in-console"] if kind == "sendgrid" else [])


def test_api_key_rotation_writes_once_and_proves_the_binding_before_minting(
    sm_client: Any, fakes: Callable[[str], FakeProviderServer], call_counter: CallCounter
) -> None:
    fake = fakes("datadog")
    arn = make_secret(sm_client, fake)
    rotator = make_rotator(sm_client, fake)
    token = emulator.stage_pending_placeholder(arn)
    call_counter.take()
    per_step = {}
    for step in service.STEPS:
        rotator.handle(service.event(step, arn, token))
        per_step[step] = dict(call_counter.take())

    # Writes only where the protocol needs them; the admin secret is read, never written.
    writes = {
        step: {k: v for k, v in calls.items() if not k.startswith(("Get", "Describe"))}
        for step, calls in per_step.items()
    }
    assert writes == {
        "createSecret": {"PutSecretValue": 1},
        "setSecret": {},
        "testSecret": {},
        "finishSecret": {"UpdateSecretVersionStage": 1},
    }
    assert all(calls.get("GetSecretValue", 0) <= 3 for calls in per_step.values())
    # Provider calls: the current key validates and its id returns it in the admin's organisation (the
    # binding), then list (orphans), create; verify the new key; nothing at setSecret and finishSecret.
    assert [(r.method, r.route) for r in fake.requests] == [
        ("GET", "/api/v1/validate"),
        ("GET", "/api/v2/api_keys/{id}"),
        ("GET", "/api/v2/api_keys"),
        ("POST", "/api/v2/api_keys"),
        ("GET", "/api/v1/validate"),
    ]


def test_api_key_rotated_secret_naming_another_provider_refused_before_any_call(
    sm_client: Any, fakes: Callable[[str], FakeProviderServer]
) -> None:
    fake = fakes("datadog")
    arn = make_secret(sm_client, fake, provider="rotation_core.engines.postgres")
    token = emulator.stage_pending_placeholder(arn)

    with pytest.raises(ConfusedDeputyError, match="its admin secret is for datadog"):
        make_rotator(sm_client, fake).handle(service.event("createSecret", arn, token))

    assert fake.requests == []


@pytest.mark.parametrize("provider", [None, "rotation_core.engines.postgres", ["datadog"]])
def test_api_key_admin_secret_without_known_provider_refused_before_any_call(
    provider: Any, sm_client: Any, fakes: Callable[[str], FakeProviderServer]
) -> None:
    fake = fakes("datadog")
    admin = {k: v for k, v in fake.admin_secret().items() if k != "provider"}
    if provider is not None:
        admin["provider"] = provider
    admin_arn = sm_client.create_secret(Name="bare-admin", SecretString=json.dumps(admin))["ARN"]
    arn = make_secret(sm_client, fake, adminarn=admin_arn)
    token = emulator.stage_pending_placeholder(arn)

    expected = 'add "provider"' if provider is None else "one of: datadog, sendgrid, twilio, cloudflare, http"
    with pytest.raises(SecretFormatError, match=expected):
        make_rotator(sm_client, fake).handle(service.event("createSecret", arn, token))

    assert fake.requests == []


def test_api_key_adminarn_missing_or_self_refused(sm_client: Any, fakes: Callable[[str], FakeProviderServer]) -> None:
    fake = fakes("sendgrid")
    arn = make_secret(sm_client, fake, adminarn=None)
    token = emulator.stage_pending_placeholder(arn)
    with pytest.raises(SecretFormatError, match='no "adminarn"'):
        make_rotator(sm_client, fake).handle(service.event("createSecret", arn, token))

    value = current_value(sm_client, arn)
    sm_client.put_secret_value(SecretId=arn, SecretString=json.dumps({**value, "adminarn": arn}))
    emulator.drop_pending(arn)
    token = emulator.stage_pending_placeholder(arn)
    with pytest.raises(ConfusedDeputyError, match="names the rotated secret itself"):
        make_rotator(sm_client, fake).handle(service.event("createSecret", arn, token))


def test_api_key_pending_pointing_elsewhere_refused_in_test_secret(
    sm_client: Any, fakes: Callable[[str], FakeProviderServer]
) -> None:
    fake = fakes("datadog")
    arn = make_secret(sm_client, fake)
    token = emulator.stage_pending_placeholder(arn)
    pending = {**current_value(sm_client, arn), "base_url": "https://attacker.example"}
    sm_client.put_secret_value(
        SecretId=arn, ClientRequestToken=token, SecretString=json.dumps(pending), VersionStages=["AWSPENDING"]
    )

    with pytest.raises(ConfusedDeputyError, match="is not the URL pinned in the admin secret"):
        make_rotator(sm_client, fake).handle(service.event("testSecret", arn, token))

    assert fake.requests == []


def test_api_key_base_url_differs_from_admin_pin_refused(
    sm_client: Any, fakes: Callable[[str], FakeProviderServer]
) -> None:
    fake = fakes("cloudflare")
    secret = fake.seed_secret("arn:admin", base_url="https://api.cloudflare.com/client/v4")
    with pytest.raises(ConfusedDeputyError, match="pinned in the admin secret"):
        build_provider(secret, fake.admin_secret(), HttpClient(transport=fake.transport()))


def test_api_key_admin_secret_missing_field_names_it(fakes: Callable[[str], FakeProviderServer]) -> None:
    fake = fakes("datadog")
    admin = {"provider": "datadog", "base_url": fake.base_url, "api_key": "only-half"}
    with pytest.raises(SecretFormatError, match='"app_key"'):
        build_provider(fake.seed_secret("arn:admin"), admin, HttpClient(transport=fake.transport()))


def test_api_key_error_body_with_key_is_scrubbed_from_the_exception(
    sm_client: Any, fakes: Callable[[str], FakeProviderServer]
) -> None:
    fake = fakes("sendgrid")
    arn = make_secret(sm_client, fake)
    admin_key = fake.admin_secret()["api_key"]
    fake.fail_next(400, method="POST", body={"errors": [{"message": "bad request", "echo": "Bearer " + admin_key}]})
    token = emulator.stage_pending_placeholder(arn)

    with pytest.raises(TargetError) as caught:
        make_rotator(sm_client, fake).handle(service.event("createSecret", arn, token))

    assert admin_key not in str(caught.value)
    assert admin_key.split(".")[1] not in str(caught.value)
    assert "bad request" in str(caught.value)


GENERIC_KEY = {"provider": "http", "adminarn": "arn:admin", "api_key": "current-key-value", "api_key_id": "id-1"}


def generic_admin(description: Any) -> dict[str, Any]:
    return {"provider": "http", "base_url": "https://keys.example.com", "api_key": "admin-key-value",
            "http": description}  # fmt: skip


def test_api_key_generic_http_config_missing_list_refused(fakes: Callable[[str], FakeProviderServer]) -> None:
    fake = fakes("sendgrid")
    description = {
        "auth": {"scheme": "bearer"},
        "create": {"path": "/keys", "value_path": "key", "id_path": "id"},
        "revoke": {"path": "/keys/{id}"},
        "verify": {"path": "/me"},
    }
    with pytest.raises(SecretFormatError, match='no "list" object'):
        build_provider(GENERIC_KEY, generic_admin(description), HttpClient(transport=fake.transport()))


def test_api_key_generic_http_unknown_path_placeholder_refused(fakes: Callable[[str], FakeProviderServer]) -> None:
    fake = fakes("sendgrid")
    description = {
        "auth": {"scheme": "header", "header": "X-Api-Key"},
        "create": {"path": "/keys", "value_path": "key", "id_path": "id"},
        "list": {"path": "/keys"},
        "revoke": {"path": "/keys/{secret}"},
        "verify": {"path": "/me"},
    }
    with pytest.raises(SecretFormatError, match="unknown placeholder"):
        build_provider(GENERIC_KEY, generic_admin(description), HttpClient(transport=fake.transport()))


@pytest.mark.parametrize(
    ("field", "value"),
    [("http", {"auth": {"scheme": "bearer"}}), ("scopes", ["mail.send"]), ("policies", []), ("policy", {})],
)
def test_api_key_rotated_secret_with_admin_only_field_refused_with_migration_hint(field: str, value: Any) -> None:
    provider = {"http": "http", "scopes": "sendgrid", "policies": "cloudflare", "policy": "twilio"}[field]
    secret = {**GENERIC_KEY, "provider": provider, field: value}
    with pytest.raises(SecretFormatError, match=f'Move "{field}" into the admin secret'):
        build_provider(secret, {"provider": provider}, HttpClient())


@pytest.mark.parametrize(
    ("provider", "base_url"),
    [
        ("datadog", "https://api.datadoghq.com.attacker.example"),
        ("datadog", "https://attacker.example/api.datadoghq.com"),
        ("datadog", "https://api.datadoghq.eu"),  # a Datadog site, but only the admin secret may choose it
        ("sendgrid", "https://api.sendgrid.com.evil.example"),
        ("cloudflare", "https://evilcloudflare.com"),
        ("twilio", "http://127.0.0.1:8080"),
    ],
)
def test_api_key_unpinned_base_url_other_than_public_endpoint_is_refused(provider: str, base_url: str) -> None:
    """Whoever may only edit the rotated secret cannot send the admin credential to a server of their choosing."""
    secret = {"provider": provider, "adminarn": "arn:admin", "base_url": base_url, "api_key": "k-1", "api_key_id": "1"}
    admin = {"provider": provider, "api_key": "admin-key-value", "app_key": "app-key-value"}
    with pytest.raises(ConfusedDeputyError, match="move it into the admin secret"):
        build_provider(secret, admin, HttpClient())


@pytest.mark.parametrize(
    ("provider", "base_url"),
    [
        ("datadog", "https://api.datadoghq.eu"),
        ("datadog", "https://api.us5.datadoghq.com"),
        ("sendgrid", "https://api.eu.sendgrid.com"),
        ("twilio", "https://iam.twilio.com"),
    ],
)
def test_api_key_regional_endpoint_pinned_in_admin_secret_is_used(provider: str, base_url: str) -> None:
    secret = {"provider": provider, "adminarn": "arn:admin", "api_key": "k-1", "api_key_id": "1",
              "account_sid": "AC" + "1" * 32, "api_key_sid": "SK" + "1" * 32, "api_key_secret": "s-1"}  # fmt: skip
    admin = {"provider": provider, "base_url": base_url, "api_key": "admin-key-value", "app_key": "app-key-value",
             "account_sid": "AC" + "1" * 32, "auth_token": "t-1", "scopes": ["mail.send"]}  # fmt: skip
    built = build_provider(secret, admin, HttpClient())
    assert str(built.base_url) == base_url  # type: ignore[attr-defined]
    assert build_provider({**secret, "base_url": base_url + "/"}, admin, HttpClient()) is not None


def test_key_name_deterministic_and_within_twilio_limit() -> None:
    arn = ARN_PREFIX + "name-AbCdEf"
    token = "a3c2f0de-5a6b-4c1d-9e8f-0123456789ab"
    assert key_name(arn, token) == key_name(arn, token)
    assert key_name(arn, token).startswith(KEY_NAME_PREFIX)
    assert key_name(arn, token).endswith(token)
    assert len(key_name(arn, "x" * 64)) <= 64
    assert key_name(arn, token) != key_name(ARN_PREFIX + "other-AbCdEf", token)


def test_settings_revoke_policy_default_and_invalid_names_variable() -> None:
    assert Settings.from_env({}).revoke_policy is RevokePolicy.PREVIOUS_AT_NEXT_ROTATION
    assert Settings.from_env({REVOKE_POLICY: "never"}).revoke_policy is RevokePolicy.NEVER
    with pytest.raises(ConfigurationError, match="REVOKE_POLICY"):
        Settings.from_env({REVOKE_POLICY: "sometimes"})
    with pytest.raises(ConfigurationError, match="API_VERIFY_ATTEMPTS"):
        Settings.from_env({"API_VERIFY_ATTEMPTS": "0"})


def test_built_in_providers_are_exactly_the_documented_list() -> None:
    assert BUILT_IN == ("datadog", "sendgrid", "twilio", "cloudflare", "http")


def test_api_key_revoke_failure_category_reported_not_raised(
    sm_client: Any, fakes: Callable[[str], FakeProviderServer], caplog: pytest.LogCaptureFixture
) -> None:
    fake = fakes("twilio")
    arn = make_secret(sm_client, fake)
    rotator = make_rotator(sm_client, fake, RevokePolicy.PREVIOUS_AT_FINISH)
    fake.fail_next(403, method="DELETE", body={"code": 20003, "message": "Permission denied"})

    service.rotate(arn, rotator.handle)

    failures = [r for r in caplog.records if getattr(r, "revoke_failed", False)]
    assert [getattr(r, "category", None) for r in failures] == [Category.PERMISSION.value]
    assert len(fake.live_keys()) == 2


def test_api_key_rotation_error_is_rotation_error(sm_client: Any, fakes: Callable[[str], FakeProviderServer]) -> None:
    fake = fakes("cloudflare")
    arn = make_secret(sm_client, fake)
    fake.fail_next(401, method="POST")
    token = emulator.stage_pending_placeholder(arn)
    with pytest.raises(RotationError) as caught:
        make_rotator(sm_client, fake).handle(service.event("createSecret", arn, token))
    assert caught.value.category is Category.AUTH_FAILED
