"""Provider response parsing and request shapes, through the fakes' in-process transport (no sockets)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from helpers import LeakGuard
from rotation_core.errors import Category, ConfusedDeputyError, SecretFormatError, TargetError
from rotation_core.providers import build_provider, twilio
from rotation_core.providers.base import KeyLimitError, StoredKey, dig
from rotation_core.providers.http import HttpClient, HttpResponse
from rotation_local.fake_providers import FakeProviderServer


@pytest.fixture
def fake(request: pytest.FixtureRequest, leak_guard: LeakGuard) -> Iterator[FakeProviderServer]:
    server = FakeProviderServer(request.param)
    leak_guard.add(*server.admin_values())
    yield server
    leak_guard.add(*(key.value for key in server.keys))
    leak_guard.watch_text(server.access_log_path.read_text(encoding="utf-8"))
    server.stop()


def provider_for(fake: FakeProviderServer, transport: Callable[..., HttpResponse] | None = None) -> Any:
    http = HttpClient(transport=transport or fake.transport(), sleep=lambda _s: None)
    return build_provider(fake.seed_secret("arn:admin"), fake.admin_secret(), http)


def current(provider: Any, fake: FakeProviderServer) -> StoredKey:
    stored: StoredKey = provider.stored_key(fake.seed_secret("arn:admin"), "current")
    return stored


@pytest.mark.parametrize("fake", ["datadog", "sendgrid", "twilio", "cloudflare"], indirect=True)
def test_provider_issue_find_verify_revoke_round_trip(fake: FakeProviderServer) -> None:
    provider = provider_for(fake)
    issued = provider.issue("sm-rotation-abc-token1", current(provider, fake))
    stored = provider.stored_key({**fake.seed_secret("arn:admin"), **issued.fields}, "pending")

    assert [key.name for key in provider.find("sm-rotation-abc-")] == ["sm-rotation-abc-token1"]
    assert provider.verify(stored) is True
    assert provider.revoke(issued.id) is True
    assert provider.verify(stored) is False
    assert provider.revoke(issued.id) is False  # 404: already gone counts as done


@pytest.mark.parametrize("fake", ["datadog"], indirect=True)
def test_datadog_create_request_shape_and_admin_headers(fake: FakeProviderServer) -> None:
    seen: list[tuple[str, str, dict[str, str], bytes | None]] = []
    inner = fake.transport()

    def spy(method: str, url: str, headers: Any, body: bytes | None, timeout: float) -> HttpResponse:
        seen.append((method, url, dict(headers), body))
        response: HttpResponse = inner(method, url, headers, body, timeout)
        return response

    provider = provider_for(fake, spy)
    provider.issue("name-1", current(provider, fake))

    method, url, headers, body = seen[0]
    assert (method, url) == ("POST", fake.base_url + "/api/v2/api_keys")
    assert set(headers) >= {"DD-API-KEY", "DD-APPLICATION-KEY"}
    assert json.loads(body or b"") == {"data": {"type": "api_keys", "attributes": {"name": "name-1"}}}


@pytest.mark.parametrize("fake", ["datadog", "sendgrid", "twilio", "cloudflare"], indirect=True)
def test_provider_create_response_without_key_raises_clear_error(fake: FakeProviderServer) -> None:
    def empty(method: str, url: str, headers: Any, body: bytes | None, timeout: float) -> HttpResponse:
        return HttpResponse(201 if method == "POST" else 200, {}, b'{"result": {"policies": []}, "data": {}}')

    provider = provider_for(fake, empty)
    with pytest.raises(TargetError, match="answered without") as caught:
        provider.issue("name-1", provider.stored_key({**fake.seed_secret("arn:admin"), "policies": [{}]}, "current"))
    assert caught.value.category is Category.VERIFICATION


@pytest.mark.parametrize("fake", ["sendgrid"], indirect=True)
def test_sendgrid_scopes_of_current_secret_passed_to_new_key(fake: FakeProviderServer) -> None:
    provider = provider_for(fake)
    secret = {**fake.seed_secret("arn:admin"), "scopes": ["mail.send", "alerts.read"]}
    issued = provider.issue("name-2", provider.stored_key(secret, "current"))
    assert fake.key_by_value(issued.value).extra["scopes"] == ["mail.send", "alerts.read"]  # type: ignore[union-attr]


@pytest.mark.parametrize("fake", ["sendgrid"], indirect=True)
def test_sendgrid_scopes_not_a_list_refused(fake: FakeProviderServer) -> None:
    provider = provider_for(fake)
    with pytest.raises(SecretFormatError, match='"scopes"'):
        provider.issue("n", provider.stored_key({**fake.seed_secret("arn:admin"), "scopes": "all"}, "current"))


@pytest.mark.parametrize("fake", ["cloudflare"], indirect=True)
def test_cloudflare_new_token_copies_current_token_policies(fake: FakeProviderServer) -> None:
    provider = provider_for(fake)
    seeded = fake.create_key()
    seeded.extra["policies"] = [{"effect": "allow", "resources": {"zone": "*"}, "permission_groups": [{"id": "p1"}]}]
    issued = provider.issue("name-3", provider.stored_key(fake.seed_secret("arn:admin", key=seeded), "current"))
    new_key = fake.key_by_value(issued.value)
    assert new_key is not None
    assert new_key.extra["policies"] == seeded.extra["policies"]


@pytest.mark.parametrize("fake", ["sendgrid"], indirect=True)
def test_sendgrid_key_limit_raises_key_limit_error(fake: FakeProviderServer) -> None:
    for number in range(100):
        fake.create_key(f"other-{number}")
    provider = provider_for(fake)
    with pytest.raises(KeyLimitError, match="100 keys"):
        provider.issue("name-4", provider.stored_key(fake.seed_secret("arn:admin", key=fake.keys[0]), "current"))


@pytest.mark.parametrize("fake", ["datadog"], indirect=True)
def test_datadog_create_rate_limited_past_retries_is_not_reported_as_key_limit(fake: FakeProviderServer) -> None:
    fake.fail_next(429, times=10, method="POST", retry_after="0", body={"errors": ["Rate limit exceeded"]})
    provider = provider_for(fake)
    with pytest.raises(TargetError) as caught:
        provider.issue("name-5", current(provider, fake))
    assert not isinstance(caught.value, KeyLimitError)
    assert "429" in str(caught.value)
    assert fake.keys_named("name-5") == []  # nothing was minted


@pytest.mark.parametrize("fake", ["twilio"], indirect=True)
def test_twilio_account_mismatch_between_secret_and_admin_refused(fake: FakeProviderServer) -> None:
    provider = provider_for(fake)
    secret = {**fake.seed_secret("arn:admin"), "account_sid": "AC" + "0" * 32}
    with pytest.raises(ConfusedDeputyError, match="account_sid"):
        provider.stored_key(secret, "current")


@pytest.mark.parametrize("fake", ["twilio"], indirect=True)
def test_twilio_list_follows_next_page(fake: FakeProviderServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for number in range(3):
        fake.create_key(f"sm-rotation-x-{number}")
    provider = provider_for(fake)
    monkeypatch.setattr(twilio, "PAGE_SIZE", 2)

    names = [key.name for key in provider.find("sm-rotation-x-")]

    assert fake.count("GET", "/v1/Keys") == 2
    assert names == ["sm-rotation-x-0", "sm-rotation-x-1", "sm-rotation-x-2"]


def test_dig_follows_dotted_paths_and_list_indexes() -> None:
    data = {"a": {"b": [{"c": "x"}]}}
    assert dig(data, "a.b.0.c") == "x"
    assert dig(data, "a.b.1.c") is None
    assert dig(data, "a.z") is None
    assert dig(data, "") == data


def test_build_provider_secret_format_errors_name_the_key() -> None:
    http = HttpClient(transport=lambda *_a: HttpResponse(200))
    with pytest.raises(SecretFormatError, match='"provider"'):
        build_provider({"adminarn": "a"}, {}, http)
    with pytest.raises(SecretFormatError, match='"base_url"'):
        build_provider({"provider": "http"}, {}, http)
    with pytest.raises(SecretFormatError, match='"api_token"'):
        build_provider({"provider": "cloudflare"}, {}, http)
