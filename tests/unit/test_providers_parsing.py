"""Provider response parsing and request shapes, through the fakes' in-process transport (no sockets)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from helpers import LeakGuard
from rotation_core.errors import Category, ConfusedDeputyError, SecretFormatError, TargetError
from rotation_core.providers import KeyRecord, build_provider, twilio
from rotation_core.providers.base import KeyLimitError, StoredKey, dig
from rotation_core.providers.http import HttpClient, HttpRequest, HttpResponse
from rotation_local.fake_providers import FakeProviderServer, fake_provider

Transport = Callable[[HttpRequest, float], HttpResponse]


@pytest.fixture
def fake(request: pytest.FixtureRequest, leak_guard: LeakGuard) -> Iterator[FakeProviderServer]:
    server = fake_provider(request.param)
    leak_guard.add(*server.admin_values())
    yield server
    leak_guard.add(*(key.value for key in server.keys))
    leak_guard.watch_text(server.access_log_path.read_text(encoding="utf-8"))
    server.stop()


def provider_for(fake: FakeProviderServer, transport: Transport | None = None, **admin_extra: Any) -> Any:
    http = HttpClient(transport=transport or fake.transport(), sleep=lambda _s: None)
    return build_provider(fake.seed_secret("arn:admin"), fake.admin_secret(**admin_extra), http)


def current(provider: Any, fake: FakeProviderServer) -> StoredKey:
    stored: StoredKey = provider.stored_key(fake.seed_secret("arn:admin"), "current")
    return stored


def template_of(provider: Any, key: StoredKey) -> Any:
    record = provider.lookup(key.id)
    assert record is not None
    return provider.successor_template(record)


@pytest.mark.parametrize("fake", ["datadog", "sendgrid", "twilio", "cloudflare"], indirect=True)
def test_provider_issue_find_lookup_verify_revoke_round_trip(fake: FakeProviderServer) -> None:
    provider = provider_for(fake)
    first = current(provider, fake)
    issued = provider.issue("sm-rotation-abc-token1", template_of(provider, first))
    stored = provider.stored_key({**fake.seed_secret("arn:admin"), **issued.fields}, "pending")

    assert [key.name for key in provider.find("sm-rotation-abc-")] == ["sm-rotation-abc-token1"]
    assert provider.verify(stored).valid is True
    record = provider.lookup(issued.id)
    assert isinstance(record, KeyRecord)
    assert record.name == "sm-rotation-abc-token1"
    assert provider.revoke(issued.id) is True
    assert provider.verify(stored).valid is False
    assert provider.lookup(issued.id) is None
    assert provider.revoke(issued.id) is False  # 404: already gone counts as done


@pytest.mark.parametrize(
    ("fake", "ties"), [("datadog", "value"), ("cloudflare", "id"), ("twilio", "id"), ("sendgrid", None)],
    indirect=["fake"],
)  # fmt: skip
def test_provider_says_how_it_ties_a_value_to_its_id(fake: FakeProviderServer, ties: str | None) -> None:
    provider = provider_for(fake)
    key = current(provider, fake)
    record, verdict = provider.lookup(key.id), provider.verify(key)
    assert record is not None
    assert (record.value == key.value) is (ties == "value")
    assert (verdict.key_id == key.id) is (ties == "id")


@pytest.mark.parametrize("fake", ["datadog"], indirect=True)
def test_datadog_create_request_shape_and_admin_headers(fake: FakeProviderServer) -> None:
    seen: list[HttpRequest] = []
    inner = fake.transport()

    def spy(request: HttpRequest, timeout: float) -> HttpResponse:
        seen.append(request)
        response: HttpResponse = inner(request, timeout)
        return response

    provider = provider_for(fake, spy)
    provider.issue("name-1", {})

    request = seen[0]
    assert (request.method, request.endpoint.port, request.target) == ("POST", fake.port, "/api/v2/api_keys")
    assert set(request.headers) >= {"DD-API-KEY", "DD-APPLICATION-KEY"}
    assert json.loads(request.body or b"") == {"data": {"type": "api_keys", "attributes": {"name": "name-1"}}}


@pytest.mark.parametrize("fake", ["datadog", "sendgrid", "twilio", "cloudflare"], indirect=True)
def test_provider_create_response_without_key_raises_clear_error(fake: FakeProviderServer) -> None:
    def empty(request: HttpRequest, timeout: float) -> HttpResponse:
        return HttpResponse(201 if request.method == "POST" else 200, {}, b'{"result": {"policies": []}, "data": {}}')

    provider = provider_for(fake, empty)
    with pytest.raises(TargetError, match="answered without") as caught:
        provider.issue("name-1", {"scopes": ["mail.send"], "policies": [{}]})
    assert caught.value.category is Category.VERIFICATION


@pytest.mark.parametrize("fake", ["sendgrid"], indirect=True)
def test_sendgrid_new_key_gets_the_current_keys_scopes_as_sendgrid_reports_them(fake: FakeProviderServer) -> None:
    provider = provider_for(fake)
    seeded = fake.create_key()
    seeded.extra["scopes"] = ["mail.send", "stats.read"]
    key = provider.stored_key(fake.seed_secret("arn:admin", key=seeded), "current")

    issued = provider.issue("name-2", template_of(provider, key))

    assert fake.key_by_value(issued.value).extra["scopes"] == ["mail.send", "stats.read"]  # type: ignore[union-attr]


@pytest.mark.parametrize("fake", ["sendgrid"], indirect=True)
def test_sendgrid_scopes_override_only_from_admin_secret(fake: FakeProviderServer) -> None:
    provider = provider_for(fake, scopes=["mail.send"])
    issued = provider.issue("name-3", template_of(provider, current(provider, fake)))
    assert fake.key_by_value(issued.value).extra["scopes"] == ["mail.send"]  # type: ignore[union-attr]
    with pytest.raises(SecretFormatError, match='"scopes"'):
        provider_for(fake, scopes="all")


@pytest.mark.parametrize("fake", ["sendgrid"], indirect=True)
def test_sendgrid_never_mints_without_scopes(fake: FakeProviderServer) -> None:
    provider = provider_for(fake)
    with pytest.raises(SecretFormatError, match="no scopes are known"):
        provider.issue("name-4", {})
    assert fake.count("POST", "") == 0


@pytest.mark.parametrize("fake", ["cloudflare"], indirect=True)
def test_cloudflare_new_token_copies_current_token_policies(fake: FakeProviderServer) -> None:
    provider = provider_for(fake)
    seeded = fake.create_key()
    seeded.extra["policies"] = [{"effect": "allow", "resources": {"zone": "*"}, "permission_groups": [{"id": "p1"}]}]
    key = provider.stored_key(fake.seed_secret("arn:admin", key=seeded), "current")
    issued = provider.issue("name-5", template_of(provider, key))
    new_key = fake.key_by_value(issued.value)
    assert new_key is not None
    assert new_key.extra["policies"] == seeded.extra["policies"]


@pytest.mark.parametrize("fake", ["twilio"], indirect=True)
def test_twilio_restricted_key_successor_is_restricted_with_the_same_policy(fake: FakeProviderServer) -> None:
    provider = provider_for(fake)
    seeded = fake.create_key()
    seeded.extra["policy"] = {"allow": ["/twilio/messaging/messages/read"]}
    key = provider.stored_key(fake.seed_secret("arn:admin", key=seeded), "current")

    issued = provider.issue("name-6", template_of(provider, key))

    assert fake.key_by_value(issued.value).extra["policy"] == seeded.extra["policy"]  # type: ignore[union-attr]


@pytest.mark.parametrize("fake", ["sendgrid"], indirect=True)
def test_sendgrid_key_limit_raises_key_limit_error(fake: FakeProviderServer) -> None:
    for number in range(100):
        fake.create_key(f"other-{number}")
    provider = provider_for(fake)
    with pytest.raises(KeyLimitError, match="100 keys"):
        provider.issue("name-7", {"scopes": ["mail.send"]})


@pytest.mark.parametrize("fake", ["datadog"], indirect=True)
def test_datadog_create_rate_limited_past_retries_is_not_reported_as_key_limit(fake: FakeProviderServer) -> None:
    fake.fail_next(429, times=10, method="POST", retry_after="0", body={"errors": ["Rate limit exceeded"]})
    provider = provider_for(fake)
    with pytest.raises(TargetError) as caught:
        provider.issue("name-8", {})
    assert not isinstance(caught.value, KeyLimitError)
    assert "429" in str(caught.value)
    assert fake.keys_named("name-8") == []  # nothing was minted


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


@pytest.mark.parametrize(
    "next_url",
    [
        "https://attacker.example/v1/Keys?Page=1",
        "https://127.0.0.1:1/v1/Keys?Page=1",
        "{base}/v1/Accounts?Page=1",
        "{base}\\@attacker.example/v1/Keys?Page=1",
    ],
)
@pytest.mark.parametrize("fake", ["twilio"], indirect=True)
def test_twilio_next_page_elsewhere_is_never_followed(fake: FakeProviderServer, next_url: str) -> None:
    seen: list[HttpRequest] = []
    inner = fake.transport()

    def hostile(request: HttpRequest, timeout: float) -> HttpResponse:
        seen.append(request)
        page = {"keys": [], "meta": {"next_page_url": next_url.format(base=fake.base_url)}}
        return HttpResponse(200, {}, json.dumps(page).encode()) if len(seen) == 1 else inner(request, timeout)

    provider = provider_for(fake, hostile)
    with pytest.raises(TargetError, match="next_page_url points somewhere else") as caught:
        provider.find("sm-rotation-")
    assert caught.value.category is Category.CONFUSED_DEPUTY
    assert len(seen) == 1


def test_dig_follows_dotted_paths_and_list_indexes() -> None:
    data = {"a": {"b": [{"c": "x"}]}}
    assert dig(data, "a.b.0.c") == "x"
    assert dig(data, "a.b.1.c") is None
    assert dig(data, "a.z") is None
    assert dig(data, "") == data


def test_build_provider_secret_format_errors_name_the_key() -> None:
    http = HttpClient(transport=lambda *_a: HttpResponse(200))
    with pytest.raises(SecretFormatError, match='admin secret \\(adminarn\\) has no "provider"'):
        build_provider({"adminarn": "a"}, {}, http)
    with pytest.raises(SecretFormatError, match="pin one"):
        build_provider({"provider": "http"}, {"provider": "http"}, http)
    with pytest.raises(SecretFormatError, match='"api_token"'):
        build_provider({"provider": "cloudflare"}, {"provider": "cloudflare"}, http)
