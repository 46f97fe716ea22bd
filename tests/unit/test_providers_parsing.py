"""Provider response parsing and request shapes, through the fakes' in-process transport (no sockets)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from helpers import LeakGuard
from rotation_core.errors import Category, ConfusedDeputyError, SecretFormatError, TargetError
from rotation_core.providers import AdminSecretFormatError, KeyRecord, build_provider, twilio
from rotation_core.providers.base import KeyLimitError, StoredKey, dig
from rotation_core.providers.http import HttpClient, HttpRequest, HttpResponse
from rotation_local.fake_providers import DEFAULT_POLICIES, FakeProviderServer, fake_provider

Transport = Callable[[HttpRequest, float], HttpResponse]


@pytest.fixture
def fake(request: pytest.FixtureRequest, leak_guard: LeakGuard) -> Iterator[FakeProviderServer]:
    """The fake of ``request.param``; a test fails when the exchanges break the provider's definition."""
    server = fake_provider(request.param)
    leak_guard.add(*server.admin_values())
    yield server
    leak_guard.add(*(key.value for key in server.keys))
    leak_guard.watch_text(server.access_log_path.read_text(encoding="utf-8"))
    server.stop()
    assert server.contract_violations == []


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
        provider.issue("name-1", {"scopes": ["mail.send"], "policies": DEFAULT_POLICIES})
    assert caught.value.category is Category.VERIFICATION


@pytest.mark.parametrize("fake", ["sendgrid"], indirect=True)
def test_sendgrid_new_key_gets_the_admin_secrets_scopes_whatever_the_stored_ids_record_says(
    fake: FakeProviderServer,
) -> None:
    provider = provider_for(fake, scopes=["mail.send"])
    seeded = fake.create_key(scopes=["mail.send", "api_keys.create", "api_keys.read", "api_keys.delete"])
    key = provider.stored_key(fake.seed_secret("arn:admin", key=seeded), "current")

    issued = provider.issue("name-2", template_of(provider, key))

    assert fake.key_by_value(issued.value).extra["scopes"] == ["mail.send"]  # type: ignore[union-attr]


@pytest.mark.parametrize("fake", ["sendgrid"], indirect=True)
@pytest.mark.parametrize("scopes", [None, "all", [], ["mail.send", ""]])
def test_sendgrid_admin_secret_without_a_scopes_list_refused_naming_the_field(
    fake: FakeProviderServer, scopes: Any
) -> None:
    admin = {k: v for k, v in fake.admin_secret().items() if k != "scopes"}
    if scopes is not None:
        admin["scopes"] = scopes
    http = HttpClient(transport=fake.transport(), sleep=lambda _s: None)

    with pytest.raises(AdminSecretFormatError, match='"scopes"') as caught:
        build_provider(fake.seed_secret("arn:admin"), admin, http)

    assert caught.value.category is Category.SECRET_FORMAT
    assert fake.requests == []


@pytest.mark.parametrize("fake", ["sendgrid"], indirect=True)
def test_sendgrid_never_mints_without_scopes(fake: FakeProviderServer) -> None:
    provider = provider_for(fake)
    with pytest.raises(SecretFormatError, match='"scopes"'):
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
    seeded = fake.create_key(key_type="restricted", policy={"allow": ["/twilio/messaging/messages/read"]})
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


# --- Cloudflare: policies as the create request takes them, lifetimes, pages, unknown ids (issue #21) ------

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def cloudflare_at(fake: FakeProviderServer, now: dt.datetime = NOW, **admin_extra: Any) -> Any:
    provider = provider_for(fake, **admin_extra)
    provider.config = dataclasses.replace(provider.config, clock=lambda: now)
    return provider


def stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("fake", ["cloudflare"], indirect=True)
def test_cloudflare_successor_policies_leave_out_read_only_ids_and_names(fake: FakeProviderServer) -> None:
    provider = cloudflare_at(fake)
    groups = [{"id": "p1", "meta": {"key": "k", "value": "v"}}]
    key = fake.create_key(policies=[{"effect": "allow", "resources": {"zone": "*"}, "permission_groups": groups}])
    record = provider.lookup(key.id)

    template = provider.successor_template(record)

    assert [policy.get("id") for policy in record.template["policies"]] != [None]  # Cloudflare's answer has ids
    assert template["policies"] == [{"effect": "allow", "resources": {"zone": "*"}, "permission_groups": groups}]
    assert "id" not in template["policies"][0]
    assert "name" not in template["policies"][0]["permission_groups"][0]


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        # issued 10 days ago, expires in 20: a 30-day lifetime, counted from now
        ({"issued_on": NOW - dt.timedelta(days=10), "expires_on": NOW + dt.timedelta(days=20)},
         {"expires_on": NOW + dt.timedelta(days=30)}),
        # not_before counts before issued_on
        ({"issued_on": NOW - dt.timedelta(days=40), "not_before": NOW - dt.timedelta(days=5),
          "expires_on": NOW + dt.timedelta(days=2)}, {"expires_on": NOW + dt.timedelta(days=7)}),
        # not valid yet: neither is the successor, with the same lifetime from the same start
        ({"not_before": NOW + dt.timedelta(days=1), "expires_on": NOW + dt.timedelta(days=4)},
         {"not_before": NOW + dt.timedelta(days=1), "expires_on": NOW + dt.timedelta(days=4)}),
        # no start known: what is left of the current token's lifetime
        ({"expires_on": NOW + dt.timedelta(hours=6)}, {"expires_on": NOW + dt.timedelta(hours=6)}),
        # never expires: neither does the successor (it is no wider)
        ({"issued_on": NOW - dt.timedelta(days=400)}, {}),
    ],
)  # fmt: skip
@pytest.mark.parametrize("fake", ["cloudflare"], indirect=True)
def test_cloudflare_successor_lifetime_is_never_longer_than_the_current_tokens(
    fake: FakeProviderServer, times: dict[str, dt.datetime], expected: dict[str, dt.datetime]
) -> None:
    key = fake.create_key(**{field: stamp(moment) for field, moment in times.items()})
    provider = cloudflare_at(fake)

    template = provider.successor_template(provider.lookup(key.id))
    issued = provider.issue("sm-rotation-lifetime", template)

    assert {k: v for k, v in template.items() if k in ("expires_on", "not_before")} == {
        field: stamp(moment) for field, moment in expected.items()
    }
    minted = fake.key_by_value(issued.value)
    assert minted is not None
    assert minted.extra.get("expires_on") == template.get("expires_on")


@pytest.mark.parametrize("fake", ["cloudflare"], indirect=True)
def test_cloudflare_admin_lifetime_days_wins_and_an_expired_token_mints_nothing(fake: FakeProviderServer) -> None:
    key = fake.create_key(expires_on=stamp(NOW - dt.timedelta(minutes=1)))
    pinned = cloudflare_at(fake, lifetime_days=30)
    assert pinned.successor_template(pinned.lookup(key.id))["expires_on"] == stamp(NOW + dt.timedelta(days=30))

    provider = cloudflare_at(fake)
    with pytest.raises(TargetError, match="has expired") as caught:
        provider.successor_template(provider.lookup(key.id))
    assert caught.value.category is Category.VERIFICATION
    for bad in (0, -1, 4000, "30", True, 1.5):
        with pytest.raises(AdminSecretFormatError, match='"lifetime_days"'):
            cloudflare_at(fake, lifetime_days=bad)


@pytest.mark.parametrize("fake", ["cloudflare"], indirect=True)
@pytest.mark.parametrize("with_total", [True, False])
def test_cloudflare_list_pages_by_count_and_total_count_only(
    fake: FakeProviderServer, with_total: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(120):
        fake.create_key(f"sm-rotation-page-{number}")
    if not with_total:  # an answer without total_count: the short last page ends the listing
        route = type(fake).route

        def without_total(self: Any, *args: Any) -> Any:
            reply = route(self, *args)
            if isinstance(reply.payload, dict) and "result_info" in reply.payload:
                del reply.payload["result_info"]["total_count"]
            return reply

        monkeypatch.setattr(type(fake), "route", without_total)

    found = cloudflare_at(fake).find("sm-rotation-page-")

    assert len(found) == 120
    assert fake.count("GET", "/user/tokens") == 3  # 50 + 50 + 20


@pytest.mark.parametrize("fake", ["cloudflare"], indirect=True)
@pytest.mark.parametrize("status", [400, 404, 410, 422])
def test_cloudflare_unknown_token_id_answered_with_any_4xx_is_no_such_token(
    fake: FakeProviderServer, status: int
) -> None:
    body = {"success": False, "errors": [{"code": 1003, "message": "Invalid"}], "messages": [], "result": None}
    fake.fail_next(status, method="GET", route="/user/tokens/" + "0" * 32, body=body)

    assert cloudflare_at(fake).lookup("0" * 32) is None


@pytest.mark.parametrize("fake", ["cloudflare"], indirect=True)
@pytest.mark.parametrize("status", [401, 403])
def test_cloudflare_lookup_refused_for_the_admin_is_an_error_not_a_missing_token(
    fake: FakeProviderServer, status: int
) -> None:
    fake.fail_next(status, method="GET", route="/user/tokens/" + "0" * 32, body={"success": False})

    with pytest.raises(TargetError) as caught:
        cloudflare_at(fake).lookup("0" * 32)

    assert caught.value.category in {Category.AUTH_FAILED, Category.PERMISSION}


# --- Twilio: the proof for standard, restricted and subaccount keys (issue #21) -----------------------------

READ_MESSAGES = {"allow": ["/twilio/messaging/messages/read"]}
MESSAGES_PATH = "/2010-04-01/Accounts/{AccountSid}/Messages.json"


@pytest.mark.parametrize("fake", ["twilio"], indirect=True)
def test_twilio_restricted_key_proven_only_with_a_verify_path_its_policy_allows(fake: FakeProviderServer) -> None:
    restricted = fake.create_key("restricted", key_type="restricted", policy=READ_MESSAGES)
    default = provider_for(fake)
    pinned = provider_for(fake, verify_path=MESSAGES_PATH)

    refused = default.verify(default.stored_key(fake.seed_secret("arn:admin", key=restricted), "current"))
    proven = pinned.verify(pinned.stored_key(fake.seed_secret("arn:admin", key=restricted), "current"))

    assert (refused.valid, '"verify_path"' in refused.hint) == (False, True)
    assert (proven.valid, proven.key_id) == (True, restricted.id)


@pytest.mark.parametrize("fake", ["twilio"], indirect=True)
@pytest.mark.parametrize("key_type", ["standard", "main"])
def test_twilio_standard_and_main_keys_proven_with_the_default_request(fake: FakeProviderServer, key_type: str) -> None:
    key = fake.create_key(key_type=key_type)
    provider = provider_for(fake)

    verdict = provider.verify(provider.stored_key(fake.seed_secret("arn:admin", key=key), "current"))

    assert (verdict.valid, verdict.key_id) == (True, key.id)
    assert fake.operations_seen[-1] == "ListApplication"


@pytest.mark.parametrize("fake", ["twilio"], indirect=True)
def test_twilio_subaccount_key_proven_with_the_subaccounts_admin_secret(fake: FakeProviderServer) -> None:
    subaccount = fake.add_account(parent=fake.account)
    key = fake.create_key(account=subaccount)
    http = HttpClient(transport=fake.transport(), sleep=lambda _s: None)
    provider = build_provider(fake.seed_secret("arn:admin", key=key), fake.admin_secret(subaccount), http)

    verdict = provider.verify(provider.stored_key(fake.seed_secret("arn:admin", key=key), "current"))
    record = provider.lookup(key.id)

    assert verdict.valid is True
    assert record is not None


@pytest.mark.parametrize("fake", ["twilio"], indirect=True)
@pytest.mark.parametrize("refusal", [(401, "Authenticate"), (403, "Permission Denied")])
def test_twilio_forbidden_and_wrong_secret_both_prove_nothing(
    fake: FakeProviderServer, refusal: tuple[int, str]
) -> None:
    """Twilio documents error 20003 for both; a 403 never counts as "valid but forbidden"."""
    status, message = refusal
    provider = provider_for(fake)
    fake.fail_next(status, method="GET", route="/Applications.json", body={"code": 20003, "message": message})

    assert provider.verify(current(provider, fake)).valid is False


@pytest.mark.parametrize("fake", ["twilio"], indirect=True)
def test_twilio_key_sid_and_verify_path_outside_the_definitions_formats_refused_before_sending(
    fake: FakeProviderServer,
) -> None:
    provider = provider_for(fake)
    with pytest.raises(SecretFormatError, match="API key sid"):
        provider.stored_key({**fake.seed_secret("arn:admin"), "api_key_sid": "SK../../Accounts"}, "current")
    assert provider.lookup("not-a-sid") is None
    assert provider.revoke("not-a-sid") is False
    for path in ("Messages.json", "/2010-04-01/Accounts/{Sid}/Messages.json", "/a?b=c", "/a/../b", "//x"):
        with pytest.raises(AdminSecretFormatError, match='"verify_path"'):
            provider_for(fake, verify_path=path)
    assert fake.requests == []


# --- the generic provider: privileges from the admin secret where nothing ties a value to its id (#24) -----


def test_generic_provider_without_verify_id_path_needs_an_explicit_create_body() -> None:
    description: dict[str, Any] = {
        "auth": {"scheme": "bearer"},
        "create": {"path": "/keys", "value_path": "key", "id_path": "id"},
        "list": {"path": "/keys"},
        "revoke": {"path": "/keys/{id}"},
        "verify": {"path": "/me"},
    }
    admin = {"provider": "http", "base_url": "https://keys.example.com", "api_key": "admin-key-value"}
    secret = {"provider": "http", "adminarn": "arn:admin", "api_key": "k", "api_key_id": "1"}
    http = HttpClient(transport=lambda *_a: HttpResponse(200))

    with pytest.raises(AdminSecretFormatError, match=r'"http\.create\.body"'):
        build_provider(secret, {**admin, "http": description}, http)
    with_body = {**description, "create": {**description["create"], "body": {"name": "{name}", "scopes": ["read"]}}}
    with_tie = {**description, "verify": {"path": "/me", "id_path": "key.id"}}
    assert build_provider(secret, {**admin, "http": with_body}, http) is not None
    assert build_provider(secret, {**admin, "http": with_tie}, http) is not None
