"""What an API-key provider implements for the rotation, and the helpers every provider shares.

A provider object is built for one rotated secret: it holds the admin credential (read from the
secret named by ``adminarn``), the endpoints the admin secret allows and the HTTP client. It never
talks to Secrets Manager, and it never decides on its own whether a key may be revoked: the strategy
(:mod:`rotation_core.api_keys`) does that from what :meth:`ApiKeyProvider.lookup` and
:meth:`ApiKeyProvider.verify` report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from rotation_core.errors import Category, SecretFormatError, TargetError
from rotation_core.log import register_sensitive
from rotation_core.providers.endpoints import Endpoint
from rotation_core.providers.http import HttpClient, HttpResponse, error_for

MAX_LIST_PAGES = 20


class KeyLimitError(TargetError):
    """The provider refuses to mint another key: the account holds as many as it allows."""

    category = Category.PERMISSION


@dataclass(frozen=True)
class KeyRef:
    """A key as a listing shows it: its id and name, never its value."""

    id: str = field(repr=False)
    name: str


@dataclass(frozen=True)
class KeyRecord:
    """What the admin credential's account says about one key id.

    ``value`` is set when the provider returns the key itself (Datadog), so the stored value can be
    compared with it; ``template`` holds the key's privileges (scopes, policies), which a successor
    copies and never widens.
    """

    id: str = field(repr=False)
    name: str
    value: str | None = field(default=None, repr=False)
    template: Mapping[str, Any] = field(default_factory=dict, repr=False)
    #: Whether the provider reports the key's last use at all (Datadog, Cloudflare), and when that was (None: never).
    reports_use: bool = False
    last_used: datetime | None = None


@dataclass(frozen=True)
class Verdict:
    """The provider's answer to a key: does it work, which key id it is and what it may do (when it says)."""

    valid: bool
    key_id: str | None = field(default=None, repr=False)
    #: The privileges the key reports about itself (SendGrid's scopes), in :attr:`KeyRecord.template` form.
    template: Mapping[str, Any] | None = field(default=None, repr=False)


def within(granted: Mapping[str, Any], held: Mapping[str, Any]) -> bool:
    """True when privileges ``granted`` are no more than ``held`` (lists compared as sets, others equal)."""
    for name, value in granted.items():
        other = held.get(name)
        if isinstance(value, list):
            if not isinstance(other, list) or not {json.dumps(v, sort_keys=True) for v in value} <= {
                json.dumps(v, sort_keys=True) for v in other
            }:
                return False
        elif value != other:
            return False
    return True


@dataclass(frozen=True)
class IssuedKey:
    """A freshly minted key; ``fields`` are the secret keys to store (value, id, anything else)."""

    id: str = field(repr=False)
    value: str = field(repr=False)
    fields: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class StoredKey:
    """The key held by one version of the rotated secret."""

    label: str  # "current", "pending", "previous"
    id: str = field(repr=False)
    value: str = field(repr=False)
    secret: Mapping[str, Any] = field(repr=False)


class ApiKeyProvider(Protocol):
    """Issue, look up, verify and revoke keys at the account of one admin credential."""

    name: str  # the admin secret's "provider" value
    display_name: str
    value_field: str  # the secret key holding the key value
    id_field: str  # the secret key holding the key id

    def stored_key(self, secret: Mapping[str, Any], label: str) -> StoredKey:
        """The key fields of one version of the secret; raise :class:`SecretFormatError` naming a bad key."""
        ...

    def find(self, name_prefix: str) -> list[KeyRef]:
        """Every key of the account whose name starts with ``name_prefix`` (keys minted for one secret)."""
        ...

    def lookup(self, key_id: str) -> KeyRecord | None:
        """The account's record of ``key_id``; None when the account has no such key."""
        ...

    def successor_template(self, record: KeyRecord) -> Mapping[str, Any]:
        """The privileges of the key that replaces ``record``: its own, or the admin secret's override."""
        ...

    def issue(self, name: str, template: Mapping[str, Any]) -> IssuedKey:
        """Mint a key called ``name`` with the privileges in ``template`` (from :meth:`successor_template`)."""
        ...

    def verify(self, key: StoredKey) -> Verdict:
        """Ask the provider about ``key``: invalid on 401/403; raise on anything unexpected."""
        ...

    def revoke(self, key_id: str) -> bool:
        """Delete the key; False when it was already gone (404 counts as done)."""
        ...


def text_field(secret: Mapping[str, Any], key: str, label: str, *, what: str = "secret") -> str:
    value = secret.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SecretFormatError(
            f'the {label} {what} has no "{key}" string; add it (see the README\'s API-key secret formats)'
        )
    if any(ord(c) < 32 for c in value):
        raise SecretFormatError(f'the {label} {what}\'s "{key}" contains control characters')
    return value


def stored_key_from(value_field: str, id_field: str, secret: Mapping[str, Any], label: str) -> StoredKey:
    value = text_field(secret, value_field, label)
    key_id = text_field(secret, id_field, label)
    register_sensitive(value)
    return StoredKey(label=label, id=key_id, value=value, secret=secret)


def raise_if_key_limit(response: HttpResponse, message: str) -> None:
    """Raise :class:`KeyLimitError` with ``message`` when a create request was refused (400/403) for a key limit.

    A 429 that outlasted the client's retries is rate limiting instead, reported as such by
    :meth:`HttpProviderBase._issued`.
    """
    if response.status in (400, 403) and b"limit" in response.body.lower():
        raise KeyLimitError(message)


def admin_field(admin: Mapping[str, Any], key: str, provider: str) -> str:
    """A field of the admin secret; every admin value is registered as sensitive by the strategy."""
    return text_field(admin, key, f"{provider} admin", what="secret (adminarn)")


@dataclass(frozen=True)
class ProviderConfig:
    """What the admin secret decides for one provider account: where requests go, and the credential.

    ``endpoints`` maps an endpoint field (``base_url``; Twilio also ``api_base_url``) to where it
    resolved (:func:`rotation_core.providers.endpoints.resolve_endpoint`).
    """

    endpoints: Mapping[str, Endpoint]
    admin: Mapping[str, Any] = field(repr=False)

    @property
    def base(self) -> Endpoint:
        return self.endpoints["base_url"]


class HttpProviderBase:
    """Plumbing shared by the built-in providers: the client, the endpoint and response checks.

    A provider names itself, overrides ``value_field``/``id_field`` when its secret does not hold
    ``api_key``/``api_key_id``, and reads its admin credential and settings in :meth:`_configure`.
    """

    name = ""
    display_name = ""
    value_field = "api_key"
    id_field = "api_key_id"
    #: The headers that carry the admin credential, set by :meth:`_configure`.
    _admin_headers: Mapping[str, str]

    def __init__(self, http: HttpClient, config: ProviderConfig) -> None:
        self.http = http
        self.config = config
        self.base_url = config.base
        self._configure(config.admin)

    def _configure(self, admin: Mapping[str, Any]) -> None:
        """Read the admin secret (credential, privilege overrides); called once, last, by ``__init__``."""

    def stored_key(self, secret: Mapping[str, Any], label: str) -> StoredKey:
        return stored_key_from(self.value_field, self.id_field, secret, label)

    def successor_template(self, record: KeyRecord) -> Mapping[str, Any]:
        return record.template

    def _send(self, method: str, route: str, **kwargs: Any) -> HttpResponse:
        return self.http.request(self.display_name, method, self.base_url, route, **kwargs)

    def _send_as_admin(self, method: str, route: str, **kwargs: Any) -> HttpResponse:
        """Send a request that carries the admin credential."""
        return self._send(method, route, headers=self._admin_headers, **kwargs)

    def _expect_ok(self, response: HttpResponse, method: str, route: str, hint: str) -> Any:
        if not response.ok:
            raise error_for(self.display_name, method, route, response, hint)
        return response.json()

    def _ask_as_admin(self, method: str, route: str, hint: str, **kwargs: Any) -> Any:
        """The JSON answer of a request asked as admin; an answer other than 2xx raises."""
        return self._expect_ok(self._send_as_admin(method, route, **kwargs), method, route, hint)

    def _ask_with_key(
        self,
        method: str,
        route: str,
        hint: str,
        *,
        headers: Mapping[str, str],
        endpoint: Endpoint | None = None,
        **kwargs: Any,
    ) -> tuple[bool, Any]:
        """Send a request that authenticates with the key being verified (to ``endpoint``, by default base_url).

        ``(False, None)`` when the provider refuses the key (401/403), else ``(True, its JSON answer)``; any
        other answer than 2xx raises.
        """
        target = self.base_url if endpoint is None else endpoint
        response = self.http.request(self.display_name, method, target, route, headers=headers, **kwargs)
        if response.status in (401, 403):
            return False, None
        return True, self._expect_ok(response, method, route, hint)

    def _fetch_key(self, route: str, key_id: str, hint: str) -> Any:
        """The JSON answer of ``GET route`` for ``key_id``, asked as admin; None when the account has no such key."""
        response = self._send_as_admin("GET", route, path_params={"id": key_id})
        if response.status == 404:
            return None
        data = self._expect_ok(response, "GET", route, hint)
        if data is None:
            raise self._malformed("GET", route, "a JSON body")
        return data

    def _delete_key(self, route: str, key_id: str, hint: str, *, method: str = "DELETE") -> bool:
        """Revoke ``key_id`` with ``method route``, asked as admin; False when it was already gone (404)."""
        response = self._send_as_admin(method, route, path_params={"id": key_id})
        if response.status == 404:
            return False
        self._expect_ok(response, method, route, hint)
        return True

    def _issued(
        self,
        response: HttpResponse,
        route: str,
        hint: str,
        *,
        id_path: str,
        value_path: str,
        extra_fields: Mapping[str, str] | None = None,
    ) -> IssuedKey:
        """The key a create request returned; a refusal or an answer without both fields raises."""
        data = self._expect_ok(response, "POST", route, hint)
        key_id, value = dig(data, id_path), dig(data, value_path)
        if not isinstance(key_id, str) or not isinstance(value, str) or not key_id or not value:
            raise self._malformed("POST", route, f"{id_path} and {value_path}")
        fields = {self.value_field: value, self.id_field: key_id, **(extra_fields or {})}
        return IssuedKey(id=key_id, value=value, fields=fields)

    def _page_keys(
        self, data: Any, method: str, route: str, *, items_path: str, id_path: str, name_path: str, name_prefix: str
    ) -> tuple[int, list[KeyRef]]:
        """One page of a list answer: how many items it held, and the keys whose name has the prefix."""
        items = dig(data, items_path)
        if not isinstance(items, list):
            raise self._malformed(method, route, f'a list at "{items_path}"')
        found = []
        for item in items:
            key_id, name = dig(item, id_path), dig(item, name_path)
            if isinstance(key_id, str | int) and isinstance(name, str) and name.startswith(name_prefix):
                found.append(KeyRef(id=str(key_id), name=name))
        return len(items), found

    def _malformed(self, method: str, route: str, what: str) -> TargetError:
        return TargetError(
            f"{self.display_name} {method} {route} answered without {what}; check base_url points at the "
            f"{self.display_name} API",
            category=Category.VERIFICATION,
        )


def last_use(value: Any) -> tuple[bool, datetime | None]:
    """A provider's "last used" field: (reported, when). ``null`` is "never"; anything but an RFC 3339 date-time
    (or null) counts as not reported."""
    if value is None:
        return True, None
    if not isinstance(value, str):
        return False, None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False, None
    return True, when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def dig(data: Any, path: str) -> Any:
    """``data["a"]["b"]`` for ``"a.b"`` (list indexes as digits); None when any step is missing."""
    current = data
    for part in path.split(".") if path else []:
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current
