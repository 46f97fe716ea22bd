"""API-key providers: one module per provider behind :class:`~rotation_core.providers.base.ApiKeyProvider`.

Each provider declares itself once in :data:`PROVIDERS`. The **admin secret** (named by the rotated
secret's ``adminarn``) is the source of truth for everything that directs the admin credential: it
names the ``provider`` (nothing else in a secret can make the function load code), pins endpoints
(``base_url``; Twilio's ``api_base_url``), and holds the request description of the generic provider
and the privileges of new keys where the provider cannot tie a key value to its id (SendGrid's
``scopes``, the generic ``create.body``), or their override elsewhere. A rotated secret may repeat the
provider and the endpoints, never choose others, and may not carry the admin-only fields at all.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rotation_core.errors import ConfusedDeputyError, SecretFormatError, describe
from rotation_core.providers.base import (
    AdminSecretFormatError,
    ApiKeyProvider,
    IssuedKey,
    KeyLimitError,
    KeyRecord,
    KeyRef,
    ProviderConfig,
    StoredKey,
    Verdict,
)
from rotation_core.providers.endpoints import Endpoint, EndpointError, parse_endpoint, resolve_endpoint
from rotation_core.providers.http import HttpClient, ProviderError

__all__ = [
    "BUILT_IN",
    "PROVIDERS",
    "AdminSecretFormatError",
    "ApiKeyProvider",
    "Endpoint",
    "EndpointError",
    "IssuedKey",
    "KeyLimitError",
    "KeyRecord",
    "KeyRef",
    "ProviderConfig",
    "ProviderError",
    "ProviderSpec",
    "StoredKey",
    "Verdict",
    "admin_provider",
    "admin_settings",
    "build_provider",
    "parse_endpoint",
]


@dataclass(frozen=True)
class ProviderSpec:
    """One provider, declared once: the rest of the code reads this, never a provider's name."""

    name: str  # the "provider" value in secrets
    display_name: str
    implementation: str  # "module:Class", imported when a rotation first needs it
    endpoints: Mapping[str, str | None]  # endpoint field -> public default (None: must be pinned)
    admin_only: tuple[str, ...] = ()  # fields only the admin secret may hold (privileges, descriptions)
    #: Admin-secret fields that configure rather than authenticate (not registered for redaction).
    admin_settings: tuple[str, ...] = ()


PROVIDERS: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec(
            "datadog",
            "Datadog",
            "rotation_core.providers.datadog:DatadogProvider",
            {"base_url": "https://api.datadoghq.com"},
        ),
        ProviderSpec(
            "sendgrid",
            "SendGrid",
            "rotation_core.providers.sendgrid:SendGridProvider",
            {"base_url": "https://api.sendgrid.com"},
            admin_only=("scopes",),
        ),
        ProviderSpec(
            "twilio",
            "Twilio",
            "rotation_core.providers.twilio:TwilioProvider",
            {"base_url": "https://iam.twilio.com", "api_base_url": "https://api.twilio.com"},
            admin_only=("policy", "verify_path"),
            admin_settings=("account_sid", "verify_path"),
        ),
        ProviderSpec(
            "cloudflare",
            "Cloudflare",
            "rotation_core.providers.cloudflare:CloudflareProvider",
            {"base_url": "https://api.cloudflare.com/client/v4"},
            admin_only=("policies", "lifetime_days"),
            admin_settings=("lifetime_days",),
        ),
        ProviderSpec(
            "http",
            "HTTP provider",
            "rotation_core.providers.generic:GenericHttpProvider",
            {"base_url": None},
            admin_only=("http",),
        ),
    )
}
BUILT_IN = tuple(PROVIDERS)
#: Fields of any admin secret that are configuration, not credentials.
COMMON_ADMIN_SETTINGS = ("provider", "base_url", "api_base_url", "scopes", "policies", "policy", "http")


def admin_provider(admin: Mapping[str, Any]) -> ProviderSpec:
    """The provider the admin secret names; a missing or unknown one is refused with what to write."""
    name = admin.get("provider")
    if name is None:
        raise AdminSecretFormatError(
            'the admin secret (adminarn) has no "provider"; add "provider": "<name>" to it (one of: '
            f"{', '.join(BUILT_IN)}). The admin secret, not the rotated secret, decides which provider its "
            "credential is for"
        )
    if not isinstance(name, str) or name not in PROVIDERS:
        raise AdminSecretFormatError(
            f'the admin secret\'s "provider" {describe(name)} is not one of: {", ".join(BUILT_IN)}'
        )
    return PROVIDERS[name]


def admin_settings(spec: ProviderSpec) -> frozenset[str]:
    """Admin-secret fields that are not credentials (and need no redaction)."""
    return frozenset(COMMON_ADMIN_SETTINGS + spec.admin_settings)


def check_rotated_secret(secret: Mapping[str, Any], spec: ProviderSpec, label: str) -> None:
    """A rotated secret may repeat the admin's provider, never another, and holds no admin-only field."""
    named = secret.get("provider")
    if named is not None and named != spec.name:
        raise ConfusedDeputyError(
            f'the {label} secret\'s "provider" is {describe(named)} but its admin secret is for {spec.name}; '
            '"adminarn" must name the admin secret of this key\'s provider account'
        )
    for name in sorted({*spec.admin_only, "http"}):
        if name in secret:
            raise SecretFormatError(
                f'the {label} secret holds "{name}", which only the admin secret may set (it decides what the admin '
                f'credential does). Move "{name}" into the admin secret named by adminarn and remove it from the '
                "rotated secret"
            )


def build_provider(
    secret: Mapping[str, Any], admin: Mapping[str, Any], http: HttpClient, *, label: str = "current"
) -> ApiKeyProvider:
    """The admin secret's provider, holding its credential and the endpoints it allows for ``secret``."""
    spec = admin_provider(admin)
    check_rotated_secret(secret, spec, label)
    endpoints = {
        field: resolve_endpoint(secret.get(field), admin.get(field), default, field=field, provider=spec.display_name)
        for field, default in spec.endpoints.items()
    }
    module_name, _, class_name = spec.implementation.partition(":")
    provider_type = getattr(importlib.import_module(module_name), class_name)
    provider: ApiKeyProvider = provider_type(http, ProviderConfig(endpoints=endpoints, admin=admin))
    return provider
