"""The one URL parser that decides where a credential goes, and the pinning rule of the admin secret."""

from __future__ import annotations

import pytest

from rotation_core.errors import Category, ConfusedDeputyError, TargetError
from rotation_core.providers.endpoints import Endpoint, EndpointError, parse_endpoint, resolve_endpoint

DEFAULT = "https://api.datadoghq.com"

# Each string is read differently by at least two common URL parsers (urlsplit, urllib3, WHATWG):
# a host check on one parse and a connection on another would disagree about where the request goes.
PARSER_DIFFERENTIALS = [
    "https://attacker.example\\.datadoghq.com",
    "https://attacker.example\\@api.datadoghq.com",
    "https://api.datadoghq.com@attacker.example",
    "https://user:pw@api.datadoghq.com",
    "https://attacker.example#.datadoghq.com",
    "https://attacker.example?.datadoghq.com",
    "https://attacker.example%2f.datadoghq.com",
    "https://attacker.example%00.datadoghq.com",
    "https://attacker.example\t.datadoghq.com",
    "https://attacker.example .datadoghq.com",
    "https://attacker.example\r\n.datadoghq.com",
    "https://аpi.datadoghq.com",  # Cyrillic a
    "https://api.datadoghq.com\u3002attacker.example",  # ideographic full stop
    "https://api..datadoghq.com",
    "https://api.datadoghq.com.",
    "https://.api.datadoghq.com",
    "https://-api.datadoghq.com",
    "https://api_datadoghq.com",
    "https://0x7f.0.0.1",
    "https://0177.0.0.1",
    "https://2130706433",
    "https://127.1",
    "https://1.2.3.4.5",
    "https://api.datadoghq.123",
    "https://[::1",
    "https://[::1%25eth0]",
    "https://[not-an-address]",
    "https://api.datadoghq.com:",
    "https://api.datadoghq.com:+443",
    "https://api.datadoghq.com:65536",
    "https://api.datadoghq.com:0",
    "https://api.datadoghq.com/../attacker",
    "https://api.datadoghq.com/./x",
    "https://api.datadoghq.com//attacker.example",
    "https:/api.datadoghq.com",
    "https:api.datadoghq.com",
    "//api.datadoghq.com",
    "ftp://api.datadoghq.com",
    "javascript://api.datadoghq.com",
    "",
    "https://" + "a" * 250 + ".com",
]


@pytest.mark.parametrize("text", PARSER_DIFFERENTIALS)
def test_parse_endpoint_ambiguous_or_unusual_url_refused_without_echoing_it(text: str) -> None:
    with pytest.raises(EndpointError) as caught:
        parse_endpoint(text, "the rotated secret's base_url")
    assert caught.value.category is Category.SECRET_FORMAT
    assert "attacker" not in caught.value.message
    assert caught.value.message.startswith("the rotated secret's base_url")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://api.datadoghq.com", Endpoint("https", "api.datadoghq.com", 443)),
        ("HTTPS://API.DatadogHQ.com:443/", Endpoint("https", "api.datadoghq.com", 443)),
        ("https://api.cloudflare.com/client/v4/", Endpoint("https", "api.cloudflare.com", 443, "/client/v4")),
        ("https://127.0.0.1:8443", Endpoint("https", "127.0.0.1", 8443)),
        ("https://[::1]:8443/x", Endpoint("https", "::1", 8443, "/x")),
        ("https://[0:0:0:0:0:0:0:1]", Endpoint("https", "::1", 443)),
        ("http://localhost:80", Endpoint("http", "localhost", 80)),
        ("https://xn--bcher-kva.example", Endpoint("https", "xn--bcher-kva.example", 443)),
    ],
)
def test_parse_endpoint_plain_urls_normalised(text: str, expected: Endpoint) -> None:
    assert parse_endpoint(text, "base_url") == expected


def test_parse_endpoint_non_string_refused() -> None:
    with pytest.raises(EndpointError, match="must be a URL string"):
        parse_endpoint(["https://api.datadoghq.com"], "base_url")


def test_resolve_endpoint_without_pin_is_the_public_endpoint() -> None:
    assert resolve_endpoint(None, None, DEFAULT, field="base_url", provider="Datadog") == parse_endpoint(DEFAULT, "x")


@pytest.mark.parametrize("repeated", [DEFAULT, DEFAULT + "/", "https://API.datadoghq.com:443"])
def test_resolve_endpoint_rotated_secret_may_repeat_the_effective_url(repeated: str) -> None:
    assert resolve_endpoint(repeated, None, DEFAULT, field="base_url", provider="Datadog").host == "api.datadoghq.com"


@pytest.mark.parametrize(
    "other",
    [
        "https://api.datadoghq.eu",  # a real Datadog site, but not pinned: the admin secret decides
        "https://api.datadoghq.com:8443",
        "https://api.datadoghq.com/api",
        "http://api.datadoghq.com",
        "http://127.0.0.1:8080",
        "https://127.0.0.1:8443",
    ],
)
def test_resolve_endpoint_rotated_secret_naming_another_url_is_confused_deputy(other: str) -> None:
    with pytest.raises(ConfusedDeputyError, match="move it into the admin secret"):
        resolve_endpoint(other, None, DEFAULT, field="base_url", provider="Datadog")


def test_resolve_endpoint_admin_pin_wins_and_rotated_may_only_repeat_it() -> None:
    pin = "https://api.datadoghq.eu"
    assert resolve_endpoint(None, pin, DEFAULT, field="base_url", provider="Datadog").host == "api.datadoghq.eu"
    assert resolve_endpoint(pin + "/", pin, DEFAULT, field="base_url", provider="Datadog").host == "api.datadoghq.eu"
    with pytest.raises(ConfusedDeputyError, match="pinned in the admin secret"):
        resolve_endpoint(DEFAULT, pin, DEFAULT, field="base_url", provider="Datadog")


def test_resolve_endpoint_plain_http_only_when_pinned_for_loopback() -> None:
    assert resolve_endpoint(None, "http://127.0.0.1:9000", DEFAULT, field="base_url", provider="Datadog").port == 9000
    with pytest.raises(TargetError) as caught:
        resolve_endpoint(None, "http://keys.example.com", DEFAULT, field="base_url", provider="Datadog")
    assert caught.value.category is Category.TLS


def test_resolve_endpoint_provider_without_public_endpoint_needs_a_pin() -> None:
    with pytest.raises(EndpointError, match="pin one"):
        resolve_endpoint("https://keys.example.com", None, None, field="base_url", provider="HTTP provider")


def test_resolve_endpoint_malformed_pin_is_reported_as_the_admin_secrets() -> None:
    with pytest.raises(EndpointError, match="admin secret's"):
        resolve_endpoint(None, "https://keys.example.com\\@x", DEFAULT, field="base_url", provider="Datadog")
