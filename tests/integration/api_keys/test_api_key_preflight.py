"""The API-key preflight against the fake providers over TLS and the emulator over HTTP.

A correct setup passes every check for every provider and changes nothing: no Secrets Manager write
(the read-only guard), no request but GET at the provider (its own request log), no key minted or
revoked. Each cause that can be made locally fails the check that names it: an invalid admin credential,
a key of another account, a revoked key, a provider that does not answer, a certificate from another CA.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from integration.api_keys.support import (
    PROVIDERS,
    VALUE_FIELD,
    ApiKeySecret,
    FakeAndSecret,
    generic_sendgrid_secret,
    secret_with_unstated_privileges,
)
from integration.preflight_support import check, failed_names, nothing_written, outcome, preflight
from rotation_local.fake_providers import FULL_ACCESS_SCOPES, FakeProviderServer
from rotation_local.postgres_server import free_port

MESSAGES_PATH = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
READ_MESSAGES = {"allow": ["/twilio/messaging/messages/read"]}
API_KEY_CHECKS = [
    "function_configuration", "secrets_manager_endpoint", "rotation_function", "rotation_enabled",
    "no_pending_rotation", "kms_decrypt", "secret_json", "admin_secret", "provider_reachable", "provider_tls",
    "admin_credential", "key_binding",
]  # fmt: skip
#: What each fake answers an admin credential it does not know (Datadog 403, the others 401), as a category.
REFUSED_ADMIN = {
    "datadog": "permission",
    "sendgrid": "auth_failed",
    "twilio": "auth_failed",
    "cloudflare": "auth_failed",
}


def wrong_admin(fake: FakeProviderServer) -> dict[str, Any]:
    """The fake's admin secret with every credential value replaced (the provider and endpoints kept)."""
    admin = fake.admin_secret()
    kept = {"provider", "base_url", "api_base_url", "account_sid", "scopes"}
    return {key: value if key in kept else "x" + str(value)[1:] for key, value in admin.items()}


@pytest.mark.parametrize("kind", PROVIDERS)
def test_preflight_api_key_correct_setup_all_ok_nothing_minted_or_written(
    kind: str, fake_and_secret: FakeAndSecret, api_key_function: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, secret = fake_and_secret(kind)
    keys_before = [(key.id, key.revoked) for key in fake.keys]
    requests_before = len(fake.requests)
    app = api_key_function()

    with nothing_written(monkeypatch, [secret.arn, secret.admin_arn]) as unchanged:
        report = preflight(app, secret.arn)

    assert report["ok"] is True, [check(report, name) for name in failed_names(report)]
    assert [c["name"] for c in report["checks"]] == API_KEY_CHECKS
    unchanged.assert_nothing_written()
    sent = fake.requests[requests_before:]
    assert sent
    assert {request.method for request in sent} == {"GET"}
    assert [(key.id, key.revoked) for key in fake.keys] == keys_before


def test_preflight_api_key_generic_http_provider_correct_setup_ok(
    make_fake: Callable[..., FakeProviderServer], sm_client: Any, api_key_function: Any
) -> None:
    fake = make_fake("sendgrid")
    arn, _ = generic_sendgrid_secret(sm_client, fake)

    report = preflight(api_key_function(), arn)

    assert report["ok"] is True, [check(report, name) for name in failed_names(report)]
    assert fake.count("POST", "") == 0


def test_preflight_api_key_admin_credential_invalid_reports_admin_credential_failed(
    provider_fake: FakeProviderServer, api_key_secret: Callable[..., ApiKeySecret], api_key_function: Any
) -> None:
    fake = provider_fake
    secret = api_key_secret(fake, admin=wrong_admin(fake))

    report = preflight(api_key_function(), secret.arn)

    assert failed_names(report) == ["admin_credential"]
    assert outcome(report, "admin_credential") == ("failed", REFUSED_ADMIN[fake.kind])
    assert outcome(report, "provider_reachable") == ("ok", "unreachable")
    assert outcome(report, "key_binding")[0] == "skipped"


def test_preflight_api_key_of_another_account_reports_key_binding_confused_deputy(
    provider_fake: FakeProviderServer, api_key_secret: Callable[..., ApiKeySecret], api_key_function: Any
) -> None:
    fake = provider_fake
    other = fake.add_account()
    secret = api_key_secret(fake, admin=fake.admin_secret(other))  # the key is of the first account

    report = preflight(api_key_function(), secret.arn)

    assert failed_names(report) == ["key_binding"]
    assert outcome(report, "key_binding") == ("failed", "confused_deputy")
    # A Twilio secret names its account (account_sid): the mismatch shows before any request is sent.
    assert outcome(report, "admin_credential")[0] == ("skipped" if fake.kind == "twilio" else "ok")


def test_preflight_api_key_revoked_current_key_reports_key_binding_failed(
    fake_and_secret: FakeAndSecret, api_key_function: Any, sm_client: Any
) -> None:
    fake, secret = fake_and_secret("datadog")
    current = json.loads(sm_client.get_secret_value(SecretId=secret.arn)["SecretString"])
    fake.key_by_value(current[VALUE_FIELD["datadog"]]).revoked = True  # type: ignore[union-attr]

    report = preflight(api_key_function(), secret.arn)

    assert failed_names(report) == ["key_binding"]
    assert "does not accept the current secret's key" in check(report, "key_binding")["fix"]


def test_preflight_api_key_provider_down_reports_provider_reachable_unreachable(
    make_fake: Callable[..., FakeProviderServer], api_key_secret: Callable[..., ApiKeySecret], api_key_function: Any
) -> None:
    fake = make_fake("cloudflare")
    secret = api_key_secret(fake, admin=fake.admin_secret(base_url=f"https://127.0.0.1:{free_port()}/client/v4"))

    report = preflight(api_key_function(API_MAX_ATTEMPTS="1"), secret.arn)

    assert failed_names(report) == ["provider_reachable"]
    assert outcome(report, "provider_reachable") == ("failed", "unreachable")
    assert outcome(report, "admin_credential")[0] == "skipped"


def test_preflight_api_key_provider_certificate_from_other_ca_reports_provider_tls(
    fake_and_secret: FakeAndSecret, api_key_function: Any, tmp_path: Path
) -> None:
    _fake, secret = fake_and_secret("sendgrid")
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))

    report = preflight(api_key_function(API_CA_BUNDLE=str(other_ca), API_MAX_ATTEMPTS="1"), secret.arn)

    assert failed_names(report) == ["provider_tls"]
    assert outcome(report, "provider_tls") == ("failed", "tls")
    assert outcome(report, "provider_reachable") == ("ok", "unreachable")


def test_preflight_api_key_admin_secret_unreadable_reports_admin_secret_failed(
    fake_and_secret: FakeAndSecret, api_key_function: Any, sm_client: Any
) -> None:
    _fake, secret = fake_and_secret("datadog")
    sm_client.delete_secret(SecretId=secret.admin_arn, ForceDeleteWithoutRecovery=True)

    report = preflight(api_key_function(), secret.arn)

    assert failed_names(report) == ["admin_secret"]
    assert outcome(report, "admin_secret") == ("failed", "secrets_manager")
    assert outcome(report, "secret_json")[0] == "skipped"


@pytest.mark.parametrize("provider", ["sendgrid", "http"])
def test_preflight_api_key_admin_secret_stating_no_privileges_reports_admin_secret_secret_format(
    provider: str, make_fake: Callable[..., FakeProviderServer], sm_client: Any, api_key_function: Any
) -> None:
    """Where no value is tied to an id (SendGrid; the generic provider without verify.id_path), the admin secret
    must state the new key's privileges: its ``scopes``, or the generic description's ``create.body``."""
    fake = make_fake("sendgrid")
    arn, _ = secret_with_unstated_privileges(sm_client, fake, provider)

    report = preflight(api_key_function(), arn)

    assert failed_names(report) == ["admin_secret"]
    assert outcome(report, "admin_secret") == ("failed", "secret_format")
    assert ('"scopes"' if provider == "sendgrid" else '"http.create.body"') in check(report, "admin_secret")["fix"]
    assert fake.requests == []


def test_preflight_api_key_sendgrid_foreign_value_with_company_id_reports_key_binding_confused_deputy(
    make_fake: Callable[..., FakeProviderServer], api_key_secret: Callable[..., ApiKeySecret], api_key_function: Any
) -> None:
    fake = make_fake("sendgrid")
    privileged = fake.create_key("company-admin-key", scopes=["api_keys.create", "api_keys.read", "api_keys.delete"])
    foreign = fake.create_key("editors-full-access", account=fake.add_account(), scopes=list(FULL_ACCESS_SCOPES))
    secret = api_key_secret(fake, api_key=foreign.value, api_key_id=privileged.id)

    report = preflight(api_key_function(), secret.arn)

    assert failed_names(report) == ["key_binding"]
    assert outcome(report, "key_binding") == ("failed", "confused_deputy")
    assert "different accounts" in check(report, "key_binding")["fix"]
    assert fake.count("POST", "") == 0


def test_preflight_api_key_twilio_restricted_key_without_verify_path_reports_key_binding(
    make_fake: Callable[..., FakeProviderServer], api_key_secret: Callable[..., ApiKeySecret], api_key_function: Any
) -> None:
    fake = make_fake("twilio")
    restricted = fake.create_key("restricted", key_type="restricted", policy=READ_MESSAGES)
    secret = api_key_secret(fake, **fake.key_fields(restricted))

    refused = preflight(api_key_function(), secret.arn)
    fixed = api_key_secret(fake, admin=fake.admin_secret(verify_path=MESSAGES_PATH), **fake.key_fields(restricted))
    passed = preflight(api_key_function(), fixed.arn)

    assert failed_names(refused) == ["key_binding"]
    assert outcome(refused, "key_binding") == ("failed", "confused_deputy")
    assert '"verify_path"' in check(refused, "key_binding")["fix"]
    assert passed["ok"] is True, [check(passed, name) for name in failed_names(passed)]


@pytest.mark.parametrize("status", [400, 404, 422])
def test_preflight_api_key_cloudflare_unknown_token_id_reports_key_binding_whatever_4xx_it_answers(
    status: int, fake_and_secret: FakeAndSecret, api_key_function: Any, sm_client: Any
) -> None:
    """The definition documents only "4XX" for a token id Cloudflare does not know: each fails closed."""
    fake, secret = fake_and_secret("cloudflare")
    token_id = json.loads(sm_client.get_secret_value(SecretId=secret.arn)["SecretString"])["api_token_id"]
    fake.fail_next(status, method="GET", route=f"/user/tokens/{token_id}", body={"success": False, "errors": [
        {"code": 1003, "message": "Invalid token"}], "messages": [], "result": None})  # fmt: skip

    report = preflight(api_key_function(), secret.arn)

    assert failed_names(report) == ["key_binding"]
    assert outcome(report, "key_binding") == ("failed", "confused_deputy")
    assert "has no key with the current secret's key id" in check(report, "key_binding")["fix"]
