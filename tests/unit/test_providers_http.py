"""The providers' HTTP client: retries, backoff, Retry-After, non-idempotent safety, scrubbing, URLs.

No network: every test injects a transport, a sleep that records, and a clock.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from rotation_core import log
from rotation_core.errors import Category
from rotation_core.providers.endpoints import parse_endpoint
from rotation_core.providers.http import (
    MAX_RESPONSE_BYTES,
    HttpClient,
    HttpRequest,
    HttpResponse,
    ProviderError,
    TransportError,
    error_for,
    retry_after_seconds,
    scrub,
)

NOW = 1_800_000_000.0
API = parse_endpoint("https://api.example", "test")


class ScriptedTransport:
    """Answers with the scripted responses (or raises the scripted errors) in order."""

    def __init__(self, *script: HttpResponse | TransportError) -> None:
        self.script = list(script)
        self.calls: list[tuple[HttpRequest, float]] = []

    def __call__(self, request: HttpRequest, timeout: float) -> HttpResponse:
        self.calls.append((request, timeout))
        item = self.script.pop(0)
        if isinstance(item, TransportError):
            raise item
        return item


def client(transport: ScriptedTransport, waits: list[float], **kwargs: float) -> HttpClient:
    return HttpClient(
        transport=transport, sleep=waits.append, wall_clock=lambda: NOW, jitter=lambda: 1.0, backoff=0.5, **kwargs
    )


def ok() -> HttpResponse:
    return HttpResponse(200, {}, b"{}")


def test_http_client_429_retry_after_seconds_waits_exactly_that() -> None:
    transport = ScriptedTransport(HttpResponse(429, {"Retry-After": "3"}), ok())
    waits: list[float] = []

    response = client(transport, waits).request("Datadog", "GET", API, "/x")

    assert response.status == 200
    assert waits == [3.0]


def test_http_client_429_retry_after_http_date_waits_until_then() -> None:
    when = format_datetime(datetime.fromtimestamp(NOW + 5, UTC), usegmt=True)
    transport = ScriptedTransport(HttpResponse(429, {"retry-after": when}), ok())
    waits: list[float] = []

    client(transport, waits).request("Datadog", "GET", API, "/x")

    assert waits == [5.0]


def test_http_client_5xx_without_retry_after_backs_off_exponentially() -> None:
    transport = ScriptedTransport(HttpResponse(503), HttpResponse(502), HttpResponse(500), ok())
    waits: list[float] = []

    response = client(transport, waits).request("SendGrid", "GET", API, "/x")

    assert response.ok
    assert waits == [0.5, 1.0, 2.0]


def test_http_client_5xx_every_attempt_returns_last_response_after_max_attempts() -> None:
    transport = ScriptedTransport(*(HttpResponse(503) for _ in range(3)))
    waits: list[float] = []

    response = client(transport, waits, max_attempts=3).request("SendGrid", "DELETE", API, "/x")

    assert response.status == 503
    assert len(transport.calls) == 3


def test_http_client_post_5xx_not_retried() -> None:
    transport = ScriptedTransport(HttpResponse(500))
    waits: list[float] = []

    response = client(transport, waits).request("Datadog", "POST", API, "/keys", json_body={})

    assert response.status == 500
    assert waits == []


def test_http_client_post_429_retried_because_nothing_was_created() -> None:
    transport = ScriptedTransport(HttpResponse(429, {"Retry-After": "1"}), HttpResponse(201, {}, b"{}"))
    waits: list[float] = []

    response = client(transport, waits).request("Datadog", "POST", API, "/keys", json_body={})

    assert response.status == 201
    assert waits == [1.0]


def test_http_client_post_connection_refused_retried() -> None:
    transport = ScriptedTransport(TransportError("could not connect", sent=False), HttpResponse(201))
    waits: list[float] = []

    response = client(transport, waits).request("Twilio", "POST", API, "/v1/Keys", form={"a": "b"})

    assert response.status == 201


def test_http_client_post_read_timeout_not_retried_raises_unreachable() -> None:
    transport = ScriptedTransport(TransportError("read timed out", sent=True), HttpResponse(201))
    waits: list[float] = []

    with pytest.raises(ProviderError, match="no response after 1 attempt") as caught:
        client(transport, waits).request("Twilio", "POST", API, "/v1/Keys", form={})

    assert caught.value.category is Category.UNREACHABLE
    assert len(transport.calls) == 1


def test_http_client_get_read_timeout_retried() -> None:
    transport = ScriptedTransport(TransportError("read timed out", sent=True), ok())
    waits: list[float] = []

    assert client(transport, waits).request("Cloudflare", "GET", API, "/v").ok


def test_http_client_retry_after_beyond_cap_fails_without_waiting() -> None:
    transport = ScriptedTransport(HttpResponse(429, {"Retry-After": "3600"}))
    waits: list[float] = []

    with pytest.raises(ProviderError, match="Retry-After of 3600 s"):
        client(transport, waits, max_wait=20).request("Datadog", "GET", API, "/x")

    assert waits == []


def test_http_client_waits_beyond_budget_fail() -> None:
    transport = ScriptedTransport(*(HttpResponse(429, {"Retry-After": "15"}) for _ in range(4)))
    waits: list[float] = []

    with pytest.raises(ProviderError, match="exceed 20 s of waiting"):
        client(transport, waits, wait_budget=20).request("Datadog", "GET", API, "/x")

    assert waits == [15.0]


def test_http_client_url_quotes_path_params_and_sends_json() -> None:
    transport = ScriptedTransport(ok())
    client(transport, []).request(
        "Datadog",
        "DELETE",
        parse_endpoint("https://api.example/prefix/", "test"),
        "/api/v2/api_keys/{id}",
        path_params={"id": "a/b?c"},
        query={"page[size]": "1"},
        headers={"DD-API-KEY": "admin-key-value"},
    )
    request, timeout = transport.calls[0]
    assert (request.method, request.endpoint.host, request.endpoint.port) == ("DELETE", "api.example", 443)
    assert request.target == "/prefix/api/v2/api_keys/a%2Fb%3Fc?page%5Bsize%5D=1"
    assert request.headers["DD-API-KEY"] == "admin-key-value"
    assert timeout == 10.0


def test_http_client_transport_error_message_names_route_not_url() -> None:
    transport = ScriptedTransport(*(TransportError("could not connect", sent=False) for _ in range(4)))
    with pytest.raises(ProviderError) as caught:
        client(transport, []).request("Datadog", "DELETE", API, "/k/{id}", path_params={"id": "key-id-123"})
    assert "DELETE /k/{id}" in caught.value.message
    assert "key-id-123" not in caught.value.message


@pytest.mark.parametrize(("value", "expected"), [("0", 0.0), ("12", 12.0), (None, None), ("soon", None), ("-1", None)])
def test_retry_after_seconds_parses_delta_seconds(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value, NOW) == expected


def test_retry_after_seconds_date_in_past_is_zero() -> None:
    past = format_datetime(datetime.fromtimestamp(NOW - 60, UTC), usegmt=True)
    assert retry_after_seconds(past, NOW) == 0.0


def test_scrub_registered_value_removed() -> None:
    log.register_sensitive("0123456789abcdef-secret-value")
    assert "0123456789abcdef-secret-value" not in scrub("bad key 0123456789abcdef-secret-value here")


def test_scrub_json_credential_fields_and_key_like_runs_removed() -> None:
    body = json.dumps(
        {
            "errors": ["Invalid API key"],
            "api_key": "abc",
            "detail": {"token": "t0k3n", "note": "SG." + "a" * 24 + ".bb"},
        }
    )
    text = scrub(body)
    assert "abc" not in text
    assert "t0k3n" not in text
    assert "SG.aaaa" not in text
    assert "Invalid API key" in text


def test_scrub_newlines_escaped_and_long_text_truncated() -> None:
    text = scrub("line one\nforged line " + "x " * 400)
    assert "\n" not in text
    assert text.endswith("...")
    assert len(text) <= 303


def test_error_for_401_is_auth_failed_and_body_scrubbed() -> None:
    response = HttpResponse(401, {}, b'{"message":"bad credentials","key":"Zm9vYmFyYmF6cXV4cXV1eA=="}')
    error = error_for("SendGrid", "GET", "/v3/api_keys", response, "check the admin key")
    assert error.category is Category.AUTH_FAILED
    assert "Zm9vYmFy" not in error.message
    assert error.message.endswith("check the admin key")


def test_http_client_response_over_one_mib_is_a_provider_error() -> None:
    transport = ScriptedTransport(HttpResponse(200, {}, b"x" * (MAX_RESPONSE_BYTES + 1)))
    with pytest.raises(ProviderError, match="more than 1024 KiB") as caught:
        client(transport, []).request("Datadog", "GET", API, "/x")
    assert caught.value.category is Category.VERIFICATION


def test_http_client_response_of_exactly_one_mib_is_read() -> None:
    transport = ScriptedTransport(HttpResponse(200, {}, b"x" * MAX_RESPONSE_BYTES))
    assert len(client(transport, []).request("Datadog", "GET", API, "/x").body) == MAX_RESPONSE_BYTES
