"""The providers and their fakes held to the providers' published API definitions (no network).

The definitions are extracts of the official OpenAPI documents (``tools/rotation_local/definitions``,
written by ``python -m rotation_local.provider_definitions`` with the repository, commit, file and
operationId of each operation). Every operation a provider uses has a test here that drives the provider's
code through the fake's in-process transport, success and refusal, and fails when a request or an answer
breaks the definition (path, method, parameters, credential, required and read-only fields, undeclared
fields, answer shape, pagination, error shape). The checker itself is shown to catch each kind of break.
"""

from __future__ import annotations

import inspect
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from helpers import LeakGuard
from rotation_core.errors import Category, RotationError
from rotation_core.providers import KeyLimitError, ProviderError, build_provider, cloudflare, twilio
from rotation_core.providers.base import StoredKey
from rotation_core.providers.http import HttpClient
from rotation_local import provider_definitions
from rotation_local.fake_providers import (
    FAKE_PROVIDERS,
    FULL_ACCESS_SCOPES,
    INVENTED_HEADER,
    FakeCloudflare,
    FakeKey,
    FakeProviderServer,
    fake_provider,
)
from rotation_local.provider_definitions import SOURCES, Contract, Exchange, load

KINDS = tuple(SOURCES)
OPERATIONS = [(kind, op["operationId"]) for kind in KINDS for op in load(kind)["operations"]]
MESSAGES_PATH = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
READ_MESSAGES = {"allow": ["/twilio/messaging/messages/read"]}


@pytest.fixture
def fakes(leak_guard: LeakGuard) -> Iterator[Callable[..., FakeProviderServer]]:
    """Fakes used in-process (never started); ``expect_violations`` fakes may break the definition."""
    made: list[tuple[FakeProviderServer, bool]] = []

    def make(kind: str, *, expect_violations: bool = False) -> FakeProviderServer:
        fake = fake_provider(kind)
        made.append((fake, expect_violations))
        leak_guard.add(*fake.admin_values())
        return fake

    yield make
    for fake, _expected in made:
        leak_guard.add(*(key.value for key in fake.keys))
        leak_guard.watch_text(fake.access_log_path.read_text(encoding="utf-8"))
        leak_guard.watch_text("\n".join(fake.contract_violations))
        fake.stop()
    assert [problem for fake, expected in made if not expected for problem in fake.contract_violations] == []


def provider_of(fake: FakeProviderServer, **admin: Any) -> Any:
    http = HttpClient(transport=fake.transport(), sleep=lambda _s: None, max_attempts=1)
    return build_provider(fake.seed_secret("arn:admin"), fake.admin_secret(**admin), http)


def stored(provider: Any, fake: FakeProviderServer, key: FakeKey) -> StoredKey:
    result: StoredKey = provider.stored_key(fake.seed_secret("arn:admin", key=key), "current")
    return result


def with_current_key(fake: FakeProviderServer) -> tuple[Any, StoredKey, Any]:
    """A provider on ``fake``, a key made there as the secret's current one, and the provider's record of that key."""
    provider = provider_of(fake)
    current = stored(provider, fake, fake.create_key())
    return provider, current, provider.lookup(current.id)


def bogus(provider: Any, key: StoredKey) -> StoredKey:
    """``key`` with a value no provider issued (the right shape, the wrong secret)."""
    return StoredKey(label="current", id=key.id, value="x" * len(key.value), secret=key.secret)


def unknown_id(kind: str) -> str:
    return {"twilio": "SK" + "0" * 32, "cloudflare": "0" * 32}.get(kind, "no-such-key-id")


# --- one driver per operation: the provider code that sends it, with a success and a refusal ------------


def drive_create(kind: str, fake: FakeProviderServer) -> None:
    provider, _current, record = with_current_key(fake)
    issued = provider.issue("sm-rotation-contract-1", provider.successor_template(record))
    assert fake.is_valid(issued.value)
    fake.max_keys = len(fake.live_keys())  # the next create hits the account's limit
    with pytest.raises(RotationError) as caught:
        provider.issue("sm-rotation-contract-2", provider.successor_template(record))
    assert caught.value.category is Category.PERMISSION


def drive_list(kind: str, fake: FakeProviderServer) -> None:
    size = {"datadog": 100, "sendgrid": 100, "twilio": 1000, "cloudflare": 50}[kind]
    wanted = size + 3 if kind in ("datadog", "cloudflare") else 5  # more than a page where it pages by count
    for number in range(wanted):
        fake.create_key(f"sm-rotation-list-{number}")
    fake.create_key("someone-else")
    provider = provider_of(fake)
    if kind == "twilio":  # Twilio pages by next_page_url: make the pages small
        provider_module_page = twilio.PAGE_SIZE
        twilio.PAGE_SIZE = 2
    try:
        found = provider.find("sm-rotation-list-")
    finally:
        if kind == "twilio":
            twilio.PAGE_SIZE = provider_module_page
    assert sorted(key.name for key in found) == sorted(f"sm-rotation-list-{n}" for n in range(wanted))


def drive_get(kind: str, fake: FakeProviderServer) -> None:
    provider, current, record = with_current_key(fake)
    assert record is not None
    assert record.id == current.id
    assert provider.lookup(unknown_id(kind)) is None  # the provider's "no such key" answer


def drive_delete(kind: str, fake: FakeProviderServer) -> None:
    provider = provider_of(fake)
    key = fake.create_key("to-revoke")
    assert provider.revoke(key.id) is True
    assert provider.revoke(key.id) is False  # already gone: the provider's "no such key" answer
    assert not fake.is_valid(key.value)


def drive_verify(kind: str, fake: FakeProviderServer) -> None:
    provider = provider_of(fake)
    current = stored(provider, fake, fake.create_key())
    assert provider.verify(current).valid is True
    assert provider.verify(bogus(provider, current)).valid is False


def drive_sendgrid_get_with_the_key(kind: str, fake: FakeProviderServer) -> None:
    """SendGrid's GetApiKey is also asked with the verified key itself, when it may read keys."""
    drive_get(kind, fake)
    provider = provider_of(fake)
    reader = fake.create_key("reads-keys", scopes=["mail.send", "api_keys.read"])
    assert provider.verify(stored(provider, fake, reader)).same_account is True
    other_account = fake.create_key("another-account", account=fake.add_account(), scopes=list(FULL_ACCESS_SCOPES))
    foreign = StoredKey(label="current", id=reader.id, value=other_account.value, secret={})
    assert provider.verify(foreign).same_account is False


def drive_twilio_restricted_verify(kind: str, fake: FakeProviderServer) -> None:
    provider = provider_of(fake, verify_path=MESSAGES_PATH)
    restricted = stored(provider, fake, fake.create_key("restricted", key_type="restricted", policy=READ_MESSAGES))
    assert provider.verify(restricted).valid is True
    assert provider.verify(bogus(provider, restricted)).valid is False


DRIVERS: dict[tuple[str, str], Callable[[str, FakeProviderServer], None]] = {
    ("datadog", "CreateAPIKey"): drive_create,
    ("datadog", "ListAPIKeys"): drive_list,
    ("datadog", "GetAPIKey"): drive_get,
    ("datadog", "DeleteAPIKey"): drive_delete,
    ("datadog", "Validate"): drive_verify,
    ("sendgrid", "CreateApiKey"): drive_create,
    ("sendgrid", "ListApiKey"): drive_list,
    ("sendgrid", "GetApiKey"): drive_sendgrid_get_with_the_key,
    ("sendgrid", "DeleteApiKey"): drive_delete,
    ("sendgrid", "ListScope"): drive_verify,
    ("twilio", "CreateNewKey"): drive_create,
    ("twilio", "ListGetKeys"): drive_list,
    ("twilio", "FetchKey"): drive_get,
    ("twilio", "DeleteKey"): drive_delete,
    ("twilio", "ListApplication"): drive_verify,
    ("twilio", "ListMessage"): drive_twilio_restricted_verify,
    ("cloudflare", "user-api-tokens-create-token"): drive_create,
    ("cloudflare", "user-api-tokens-list-tokens"): drive_list,
    ("cloudflare", "user-api-tokens-token-details"): drive_get,
    ("cloudflare", "user-api-tokens-delete-token"): drive_delete,
    ("cloudflare", "user-api-tokens-verify-token"): drive_verify,
}


def test_contract_every_operation_of_every_definition_has_a_driver_and_no_driver_is_extra() -> None:
    assert set(DRIVERS) == set(OPERATIONS)


@pytest.mark.parametrize(("kind", "operation_id"), OPERATIONS)
def test_contract_provider_requests_and_fake_answers_match_the_definition(
    kind: str, operation_id: str, fakes: Callable[..., FakeProviderServer]
) -> None:
    fake = fakes(kind)

    DRIVERS[(kind, operation_id)](kind, fake)

    assert operation_id in fake.operations_seen
    assert fake.contract_violations == []


@pytest.mark.parametrize("kind", KINDS)
def test_contract_a_rotations_requests_are_all_operations_of_the_definition(
    kind: str, fakes: Callable[..., FakeProviderServer]
) -> None:
    """What a provider sends in one cycle (verify, look up, list, mint, verify, revoke) is all declared."""
    fake = fakes(kind)
    provider, current, record = with_current_key(fake)
    provider.verify(current)
    provider.find("sm-rotation-")
    issued = provider.issue("sm-rotation-cycle", provider.successor_template(record))
    provider.verify(provider.stored_key({**fake.seed_secret("arn:admin"), **issued.fields}, "pending"))
    provider.revoke(current.id)

    declared = {op["operationId"] for op in load(kind)["operations"]}
    assert fake.operations_seen
    assert set(fake.operations_seen) <= declared
    assert len(fake.requests) == len(fake.operations_seen)  # nothing outside the definition was asked


# --- what the checker catches ------------------------------------------------------------------------


def test_contract_cloudflare_create_naming_policy_ids_breaks_the_definition_and_is_refused(
    fakes: Callable[..., FakeProviderServer],
) -> None:
    fake = fakes("cloudflare", expect_violations=True)
    provider = provider_of(fake)
    as_answered = fake.token(fake.create_key())["policies"]  # with the read-only policy ids

    with pytest.raises(ProviderError, match="400"):
        provider.issue("sm-rotation-with-ids", {"policies": as_answered})

    assert any("readOnly" in problem for problem in fake.contract_violations)
    assert fake.keys_named("sm-rotation-with-ids") == []


def test_contract_cloudflare_list_answer_with_total_pages_breaks_the_definition(
    fakes: Callable[..., FakeProviderServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fake used to page with ``result_info.total_pages``, which Cloudflare does not send."""
    fake = fakes("cloudflare", expect_violations=True)
    route = FakeCloudflare.route

    def with_total_pages(self: FakeCloudflare, *args: Any) -> Any:
        reply = route(self, *args)
        if isinstance(reply.payload, dict) and "result_info" in reply.payload:
            reply.payload["result_info"]["total_pages"] = 1
        return reply

    monkeypatch.setattr(FakeCloudflare, "route", with_total_pages)
    provider_of(fake).find("sm-rotation-")

    assert fake.contract_violations == [
        "answered: user-api-tokens-list-tokens: 200 answer at result_info/total_pages: a field the definition does "
        "not declare"
    ]


EXCHANGES = [
    # (provider, request, answer status or None, answer, the problem the checker must name)
    ("cloudflare", ("PATCH", "/client/v4/user/tokens", {"Authorization": "Bearer t"}, b""), None, None,
     "no operation of the definition"),
    ("cloudflare", ("GET", "/client/v4/user/tokens?page=1&per_page=100", {"Authorization": "Bearer t"}, b""), None,
     None, "'maximum'"),
    ("cloudflare", ("GET", "/client/v4/user/tokens?pages=2", {"Authorization": "Bearer t"}, b""), None, None,
     "query parameter pages is not declared"),
    ("cloudflare", ("GET", "/client/v4/user/tokens", {}, b""), None, None, "no credential"),
    ("cloudflare", ("DELETE", "/client/v4/user/tokens/abc", {"Authorization": "Bearer t"}, b""), None, None,
     "sends no body, which the definition requires"),
    ("cloudflare", ("GET", "/client/v4/user/tokens/verify", {"Authorization": "Bearer t"}, b""), 200,
     {"success": True, "errors": [], "messages": [], "result": {"id": "abc"}}, "'required'"),
    ("cloudflare", ("GET", "/client/v4/user/tokens/verify", {"Authorization": "Bearer t"}, b""), 401,
     {"errors": [{"code": 1000, "message": "Invalid"}]}, "'required'"),
    ("twilio", ("GET", "/v1/Keys?PageSize=5", {"Authorization": "Basic eDp5"}, b""), None, None,
     "required query parameter AccountSid is missing"),
    ("twilio", ("GET", "/v1/Keys/SK123", {"Authorization": "Basic eDp5"}, b""), None, None, "'pattern'"),
    ("twilio", ("GET", "/v1/Keys/SK" + "0" * 32, {"Authorization": "Basic eDp5"}, b""), 200,
     {"sid": "SK" + "0" * 32, "friendly_name": "k", "secret": "s"}, "a field the definition does not declare"),
    ("sendgrid", ("POST", "/v3/api_keys", {"Authorization": "Bearer t", "Content-Type": "application/json"},
                  b'{"scopes": ["mail.send"]}'), None, None, "'required'"),
    ("sendgrid", ("POST", "/v3/api_keys", {"Authorization": "Bearer t", "Content-Type": "application/json"},
                  b'{"name": "n", "expires": 1}'), None, None, "a field the definition does not declare"),
    ("sendgrid", ("GET", "/v3/scopes", {"Authorization": "Bearer t"}, b""), 418, {}, "does not declare"),
    ("sendgrid", ("GET", "/v3/scopes", {"Authorization": "Bearer t"}, b""), 200, {"scope": []}, "'required'"),
    ("datadog", ("POST", "/api/v2/api_keys", {"DD-API-KEY": "a", "DD-APPLICATION-KEY": "b",
                                              "Content-Type": "application/json"},
                 b'{"data": {"type": "keys", "attributes": {"name": "n"}}}'), None, None, "'enum'"),
    ("datadog", ("GET", "/api/v1/validate", {}, b""), None, None, "no credential"),
    ("datadog", ("DELETE", "/api/v2/api_keys/abc", {"DD-API-KEY": "a", "DD-APPLICATION-KEY": "b"}, b""), 204,
     {"deleted": True}, "with a body"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "request_", "status", "answer", "problem"), EXCHANGES)
def test_contract_checker_names_what_breaks_the_definition(
    kind: str, request_: tuple[str, str, dict[str, str], bytes], status: int | None, answer: Any, problem: str
) -> None:
    contract = Contract(kind)
    method, target, headers, body = request_
    exchange = Exchange(method, target, headers, body)

    operation, problems = contract.check_request(exchange)
    if status is not None:
        assert operation is not None
        exchange.status, exchange.answer = status, json.dumps(answer).encode()
        problems = contract.check_response(operation, exchange)

    assert any(problem in found for found in problems), problems


def test_contract_messages_name_fields_never_values() -> None:
    value = "SG.this-value-must-not-be-echoed.0123456789abcdef"
    exchange = Exchange(
        "POST", "/v3/api_keys", {"Authorization": "Bearer t", "Content-Type": "application/json"},
        json.dumps({"name": value, "scopes": value, "extra": value}).encode(),
    )  # fmt: skip

    _operation, problems = Contract("sendgrid").check_request(exchange)

    assert problems
    assert not [p for p in problems if "this-value" in p]


def test_contract_datadog_answers_recorded_from_the_real_api_match_the_definition() -> None:
    """Datadog's client records real answers (cassettes); the extract and the checker accept every one."""
    contract = Contract("datadog", strict=False)  # the real API also sends fields the definition lags behind
    answers = [answer for record in contract.extract["recorded"] for answer in record["answers"]]
    assert len(answers) >= 10

    for answer in answers:
        found = contract.operation(answer["method"], answer["path"])
        assert found is not None, answer["path"]
        body = b"" if answer["body"] is None else json.dumps(answer["body"]).encode()
        exchange = Exchange(answer["method"], answer["path"], {}, status=answer["status"], answer=body)
        assert contract.check_response(found[0], exchange) == []


# --- SendGrid's two shapes, and the labelled inventions --------------------------------------------------


def test_contract_sendgrid_key_answer_in_both_shapes_is_read_and_the_undocumented_one_flagged(
    fakes: Callable[..., FakeProviderServer],
) -> None:
    fake = fakes("sendgrid", expect_violations=True)
    provider = provider_of(fake)
    current = stored(provider, fake, fake.create_key(scopes=["mail.send"]))

    documented = provider.lookup(current.id)
    assert fake.contract_violations == []
    fake.bare_key_answers = True
    bare = provider.lookup(current.id)

    assert documented == bare
    assert documented.template == {"scopes": ["mail.send"]}
    assert fake.contract_violations  # the bare object is not what the definition documents
    assert all("GetApiKey: 200 answer" in problem for problem in fake.contract_violations)


@pytest.mark.parametrize(
    ("kind", "entry"),
    [("datadog", "key-limit"), ("twilio", "key-limit"), ("cloudflare", "token-limit")],
)
def test_contract_invented_key_limit_answers_are_labelled_and_fail_closed_as_key_limit(
    kind: str, entry: str, fakes: Callable[..., FakeProviderServer]
) -> None:
    fake = fakes(kind)
    provider, _current, record = with_current_key(fake)
    fake.max_keys = len(fake.live_keys())
    seen: list[dict[str, str]] = []
    inner = fake.transport()
    provider.http = HttpClient(transport=lambda r, t: _keep_headers(inner(r, t), seen), sleep=lambda _s: None)

    with pytest.raises(KeyLimitError) as caught:
        provider.issue("sm-rotation-full", provider.successor_template(record))

    assert caught.value.category is Category.PERMISSION
    assert {INVENTED_HEADER: entry}.items() <= seen[-1].items()
    assert entry in type(fake).INVENTED


def _keep_headers(response: Any, seen: list[dict[str, str]]) -> Any:
    seen.append(dict(response.headers))
    return response


@pytest.mark.parametrize("kind", ["datadog", "twilio", "cloudflare"])
@pytest.mark.parametrize("body", [b'{"errors": ["quota exceeded"]}', b"<html>no</html>", b""])
def test_contract_undocumented_refusal_of_a_create_fails_closed_with_a_clear_category(
    kind: str, body: bytes, fakes: Callable[..., FakeProviderServer]
) -> None:
    """A refusal the provider's code does not recognise is reported with its status, never as an internal error."""
    fake = fakes(kind)
    provider, _current, record = with_current_key(fake)
    fake.fail_next(400, method="POST", body=body)

    with pytest.raises(ProviderError) as caught:
        provider.issue("sm-rotation-refused", provider.successor_template(record))

    assert caught.value.category is Category.PERMISSION
    assert "400" in caught.value.message
    assert "delete unused keys" in caught.value.message
    assert fake.keys_named("sm-rotation-refused") == []


@pytest.mark.parametrize("kind", list(FAKE_PROVIDERS))
def test_contract_every_invented_answer_of_a_fake_is_listed_and_used(kind: str) -> None:
    fake_type = FAKE_PROVIDERS[kind]
    source = inspect.getsource(fake_type)
    used = set(re.findall(r'invented\(\s*"([a-z-]+)"', source)) | set(
        re.findall(r'_error\([^()]*,\s*"([a-z-]+)"\)', source)
    )
    assert used <= set(fake_type.INVENTED)
    for entry, why in fake_type.INVENTED.items():
        assert source.count(f'"{entry}"') >= 2, f"{kind}: {entry} is listed but never answered"
        assert len(why) > 40  # each says what is invented and why


# --- the extracts and where they come from ---------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_contract_extract_names_repository_commit_file_and_operation_of_each_operation(kind: str) -> None:
    extract = load(kind)
    wanted = {(method, path): source.repository for source in SOURCES[kind].files for method, path in source.operations}

    assert {(op["method"], op["path"]) for op in extract["operations"]} == set(wanted)
    for operation in extract["operations"]:
        source = extract["sources"][operation["source"]]
        assert source["repository"] == wanted[(operation["method"], operation["path"])]
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
        assert source["file"] in {f.path for f in SOURCES[kind].files}
        assert operation["operationId"]
    for correction in extract["corrections"]:
        assert correction["operationId"] in {op["operationId"] for op in extract["operations"]}
        assert len(correction["reason"]) > 40
    texts = [text for operation in extract["operations"] for text in _strings(operation)]
    assert max(len(text) for text in texts) < 120  # shapes only: no prose carried over
    assert not [key for operation in extract["operations"] for key in operation if key in provider_definitions.PROSE]


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def test_contract_refresh_offline_fails_clearly_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    before = {path.name: path.read_bytes() for path in provider_definitions.DEFINITIONS.glob("*.json")}

    def offline(*_args: Any, **_kwargs: Any) -> Any:
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    status = provider_definitions.main([])

    assert status == 1
    assert "nothing was changed" in capfd.readouterr().err
    assert {path.name: path.read_bytes() for path in provider_definitions.DEFINITIONS.glob("*.json")} == before


class DictFetcher(provider_definitions.Fetcher):
    """Files from a mapping instead of GitHub or git."""

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__()
        self.files = files

    def commit_for(self, repository: str, path: str, branch: str) -> str:
        return "a" * 40

    def read(self, repository: str, path: str, commit: str) -> bytes:
        return self.files[path]


def test_contract_extract_resolves_references_merges_path_parameters_and_leaves_prose_out() -> None:
    document = {
        "openapi": "3.0.0",
        "info": {"version": "1"},
        "servers": [{"url": "https://api.example.com/v9"}],
        "security": [{"bearer": []}],
        "paths": {
            "/things/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "get": {
                    "operationId": "GetThing",
                    "description": "Prose that stays out.",
                    "parameters": [{"$ref": "#/components/parameters/Verbose"}],
                    "responses": {"200": {"description": "x", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Thing"}}}}},
                },
            }
        },
        "components": {
            "parameters": {"Verbose": {"name": "verbose", "in": "query", "schema": {"type": "boolean"}}},
            "schemas": {"Thing": {"type": "object", "example": {"id": "1"}, "properties": {
                "id": {"type": "string", "readOnly": True, "description": "no"},
                "child": {"$ref": "#/components/schemas/Thing"}}}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "no"}},
        },
    }  # fmt: skip
    sources = provider_definitions.ProviderSources(
        "example", (provider_definitions.SourceFile("o/n", "d.json", (("GET", "/things/{id}"),)),)
    )

    extract = provider_definitions.build_extract(sources, DictFetcher({"d.json": json.dumps(document).encode()}))

    operation = extract["operations"][0]
    assert operation["servers"] == ["/v9"]
    assert [(p["in"], p["name"]) for p in operation["parameters"]] == [("path", "id"), ("query", "verbose")]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["properties"]["id"] == {"type": "string", "readOnly": True}
    assert schema["properties"]["child"] == {"x-cycle": "#/components/schemas/Thing"}  # a cycle, cut
    assert operation["security"] == [{"bearer": {"type": "http", "scheme": "bearer"}}]
    assert "Prose" not in json.dumps(extract)
    assert extract["sources"] == [{"repository": "o/n", "commit": "a" * 40, "file": "d.json", "openapi": "3.0.0",
                                   "info_version": "1"}]  # fmt: skip


def test_contract_cloudflare_corrections_are_recorded_with_their_source() -> None:
    corrections = load("cloudflare")["corrections"]

    assert {c["operationId"] for c in corrections} == {op["operationId"] for op in load("cloudflare")["operations"]}
    assert any("cloudflare/cloudflare-python@" in c["reason"] for c in corrections)
    assert cloudflare.PAGE_SIZE == 50  # the definition's maximum per_page
