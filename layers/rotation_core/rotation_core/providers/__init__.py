"""API-key providers: one module per provider behind :class:`~rotation_core.providers.base.ApiKeyProvider`.

The provider is chosen only by the secret's ``provider`` key, checked against :data:`BUILT_IN`;
nothing else in a secret can make the function load code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from rotation_core.errors import ConfusedDeputyError, SecretFormatError, describe
from rotation_core.providers.base import ApiKeyProvider, IssuedKey, KeyLimitError, KeyRef, StoredKey
from rotation_core.providers.http import HttpClient, ProviderError, check_base_url

__all__ = [
    "BUILT_IN",
    "DEFAULT_BASE_URLS",
    "ApiKeyProvider",
    "IssuedKey",
    "KeyLimitError",
    "KeyRef",
    "ProviderError",
    "StoredKey",
    "build_provider",
    "provider_name",
    "resolve_base_url",
]

BUILT_IN = ("datadog", "sendgrid", "twilio", "cloudflare", "http")

# Hosts (and their subdomains) a rotated secret may name as base_url without a pin in the admin secret.
_PUBLIC_HOSTS: dict[str, tuple[str, ...]] = {
    "datadog": ("datadoghq.com", "datadoghq.eu", "ddog-gov.com"),
    "sendgrid": ("api.sendgrid.com", "api.eu.sendgrid.com"),
    "twilio": ("twilio.com",),
    "cloudflare": ("api.cloudflare.com",),
}
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

DEFAULT_BASE_URLS = {
    "datadog": "https://api.datadoghq.com",
    "sendgrid": "https://api.sendgrid.com",
    "twilio": "https://iam.twilio.com",
    "cloudflare": "https://api.cloudflare.com/client/v4",
}


def provider_name(secret: Mapping[str, Any], label: str) -> str:
    name = secret.get("provider")
    if not isinstance(name, str) or name not in BUILT_IN:
        shown = "missing" if name is None else describe(name)
        raise SecretFormatError(f'the {label} secret\'s "provider" is {shown}; set it to one of: {", ".join(BUILT_IN)}')
    return name


def resolve_base_url(secret: Mapping[str, Any], admin: Mapping[str, Any], name: str, label: str) -> str:
    """The secret's ``base_url`` or the provider's public endpoint; an admin secret's ``base_url`` pins it."""
    raw = secret.get("base_url")
    if raw is None:
        if name not in DEFAULT_BASE_URLS:
            raise SecretFormatError(f'the {label} secret needs a "base_url" for the "{name}" provider')
        raw = DEFAULT_BASE_URLS[name]
    if not isinstance(raw, str):
        raise SecretFormatError(f'the {label} secret\'s "base_url" must be a string')
    base_url = check_base_url(raw, f"{label} secret's")
    pinned = admin.get("base_url")
    if pinned is not None:
        if not isinstance(pinned, str) or pinned.rstrip("/") != base_url:
            raise ConfusedDeputyError(
                f'the {label} secret\'s "base_url" differs from the one pinned in the admin secret; the admin '
                "credential is only ever sent to the pinned URL. Correct the rotated secret's base_url"
            )
        return base_url
    # Someone who may only edit the rotated secret must not be able to send the admin credential to a
    # server of their choosing: without a pin, only the provider's own endpoints (or loopback) qualify.
    host = (urlsplit(base_url).hostname or "").lower()
    allowed = _PUBLIC_HOSTS.get(name, ())
    if host not in _LOOPBACK_HOSTS and not any(host == h or host.endswith("." + h) for h in allowed):
        raise ConfusedDeputyError(
            f'the {label} secret\'s "base_url" host {describe(host)} is not a public endpoint of {name}; to use '
            'another endpoint, pin it with "base_url" in the admin secret (only its editors may choose where '
            "the admin credential goes)"
        )
    return base_url


def build_provider(
    secret: Mapping[str, Any], admin: Mapping[str, Any], http: HttpClient, *, label: str = "current"
) -> ApiKeyProvider:
    """The provider named by ``secret["provider"]``, holding the admin credential and the base URL."""
    name = provider_name(secret, label)
    base_url = resolve_base_url(secret, admin, name, label)
    if name == "datadog":
        from rotation_core.providers.datadog import DatadogProvider

        return DatadogProvider(http, base_url, admin)
    if name == "sendgrid":
        from rotation_core.providers.sendgrid import SendGridProvider

        return SendGridProvider(http, base_url, admin)
    if name == "twilio":
        from rotation_core.providers.twilio import TwilioProvider

        return TwilioProvider(http, base_url, admin)
    if name == "cloudflare":
        from rotation_core.providers.cloudflare import CloudflareProvider

        return CloudflareProvider(http, base_url, admin)
    from rotation_core.providers.generic import GenericHttpProvider

    return GenericHttpProvider(http, base_url, admin, secret)
