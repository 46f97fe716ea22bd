"""Datadog API keys (Key Management API v2; validation with v1).

Rotated secret: ``api_key``, ``api_key_id``. Admin secret: ``"provider": "datadog"``, ``api_key`` and
``app_key`` of a user whose role has ``api_keys_read``, ``api_keys_write`` and ``api_keys_delete``; a
``base_url`` in the admin secret picks another site (``https://api.datadoghq.eu`` ...).

Get-by-id returns the key itself, so a stored value is tied to its id in the admin's organisation.
API keys have no scopes: a new key is a plain organisation API key, like the one it replaces.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rotation_core.providers.base import (
    MAX_LIST_PAGES,
    HttpProviderBase,
    IssuedKey,
    KeyLimitError,
    KeyRecord,
    KeyRef,
    ProviderConfig,
    StoredKey,
    Verdict,
    admin_field,
    dig,
)
from rotation_core.providers.http import HttpClient

KEYS = "/api/v2/api_keys"
KEY = "/api/v2/api_keys/{id}"
VALIDATE = "/api/v1/validate"
PAGE_SIZE = 100
_ADMIN_HINT = "check the admin secret's api_key/app_key and that its user's role has api_keys_read/write/delete"


class DatadogProvider(HttpProviderBase):
    name = "datadog"
    display_name = "Datadog"
    value_field = "api_key"
    id_field = "api_key_id"

    def __init__(self, http: HttpClient, config: ProviderConfig) -> None:
        super().__init__(http, config)
        admin = config.admin
        self._admin_headers = {
            "DD-API-KEY": admin_field(admin, "api_key", self.display_name),
            "DD-APPLICATION-KEY": admin_field(admin, "app_key", self.display_name),
        }

    def find(self, name_prefix: str) -> list[KeyRef]:
        found: list[KeyRef] = []
        for page in range(MAX_LIST_PAGES):
            query = {"filter": name_prefix, "page[size]": str(PAGE_SIZE), "page[number]": str(page)}
            response = self._send("GET", KEYS, query=query, headers=self._admin_headers)
            data = self._expect_ok(response, "GET", KEYS, _ADMIN_HINT)
            count, keys = self._page_keys(
                data, "GET", KEYS, items_path="data", id_path="id", name_path="attributes.name", name_prefix=name_prefix
            )
            found += keys
            if count < PAGE_SIZE:
                break
        return found

    def lookup(self, key_id: str) -> KeyRecord | None:
        response = self._send("GET", KEY, path_params={"id": key_id}, headers=self._admin_headers)
        data = self._lookup_response(response, "GET", KEY, _ADMIN_HINT)
        if data is None:
            return None
        found_id, name = dig(data, "data.id"), dig(data, "data.attributes.name")
        value = dig(data, "data.attributes.key")
        if found_id != key_id or not isinstance(name, str):
            raise self._malformed("GET", KEY, "the key's id and name")
        return KeyRecord(id=key_id, name=name, value=value if isinstance(value, str) and value else None)

    def issue(self, name: str, template: Mapping[str, Any]) -> IssuedKey:
        body = {"data": {"type": "api_keys", "attributes": {"name": name}}}
        response = self._send("POST", KEYS, json_body=body, headers=self._admin_headers)
        # A 429 that outlasted the client's retries is rate limiting, reported as such by _issued.
        if response.status in (400, 403) and b"limit" in response.body.lower():
            raise KeyLimitError(
                "Datadog refused to create another API key: the organisation has reached its API key limit. "
                "Revoke unused keys (Organization Settings > API Keys) and rotate again"
            )
        return self._issued(response, KEYS, _ADMIN_HINT, id_path="data.id", value_path="data.attributes.key")

    def verify(self, key: StoredKey) -> Verdict:
        response = self._send("GET", VALIDATE, headers={"DD-API-KEY": key.value})
        if response.status in (401, 403):
            return Verdict(valid=False)
        data = self._expect_ok(response, "GET", VALIDATE, "check base_url points at the Datadog site of the key")
        return Verdict(valid=dig(data, "valid") is True)

    def revoke(self, key_id: str) -> bool:
        response = self._send("DELETE", KEY, path_params={"id": key_id}, headers=self._admin_headers)
        return self._revoke_response(response, "DELETE", KEY, _ADMIN_HINT)
