"""Datadog API keys (Key Management API v2; validation with v1).

Rotated secret: ``api_key``, ``api_key_id``. Admin secret: ``"provider": "datadog"``, ``api_key`` and
``app_key`` of a user whose role has ``api_keys_read``, ``api_keys_write`` and ``api_keys_delete``; a
``base_url`` in the admin secret picks another site (``https://api.datadoghq.eu`` ...).

Get-by-id returns the key itself, so a stored value is tied to its id in the admin's organisation, and when it was
last used (``date_last_used``, null for a key never used), which the drain check reads before a revocation.
API keys have no scopes: a new key is a plain organisation API key, like the one it replaces.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rotation_core.providers import base

KEYS = "/api/v2/api_keys"
KEY = "/api/v2/api_keys/{id}"
VALIDATE = "/api/v1/validate"
PAGE_SIZE = 100
_ADMIN_HINT = "check the admin secret's api_key/app_key and that its user's role has api_keys_read/write/delete"
_KEY_HINT = "check base_url points at the Datadog site of the key"
_KEY_LIMIT_MESSAGE = (
    "Datadog refused to create another API key: the organisation has reached its API key limit. "
    "Revoke unused keys (Organization Settings > API Keys) and rotate again"
)


class DatadogProvider(base.HttpProviderBase):
    name = "datadog"
    display_name = "Datadog"

    def _configure(self, admin: Mapping[str, Any]) -> None:
        self._admin_headers = {
            "DD-API-KEY": base.admin_field(admin, "api_key", self.display_name),
            "DD-APPLICATION-KEY": base.admin_field(admin, "app_key", self.display_name),
        }

    def find(self, name_prefix: str) -> list[base.KeyRef]:
        found: list[base.KeyRef] = []
        for page in range(base.MAX_LIST_PAGES):
            query = {"filter": name_prefix, "page[size]": str(PAGE_SIZE), "page[number]": str(page)}
            data = self._ask_as_admin("GET", KEYS, _ADMIN_HINT, query=query)
            count, keys = self._page_keys(
                data, "GET", KEYS, items_path="data", id_path="id", name_path="attributes.name", name_prefix=name_prefix
            )
            found += keys
            if count < PAGE_SIZE:
                break
        return found

    def lookup(self, key_id: str) -> base.KeyRecord | None:
        data = self._fetch_key(KEY, key_id, _ADMIN_HINT)
        if data is None:
            return None
        found_id, name = base.dig(data, "data.id"), base.dig(data, "data.attributes.name")
        value = base.dig(data, "data.attributes.key")
        if found_id != key_id or not isinstance(name, str):
            raise self._malformed("GET", KEY, "the key's id and name")
        attributes = base.dig(data, "data.attributes")
        reported, last_used = (
            base.last_use(attributes["date_last_used"])
            if isinstance(attributes, dict) and "date_last_used" in attributes
            else (False, None)
        )
        return base.KeyRecord(
            id=key_id,
            name=name,
            value=value if isinstance(value, str) and value else None,
            reports_use=reported,
            last_used=last_used,
        )

    def issue(self, name: str, template: Mapping[str, Any]) -> base.IssuedKey:
        body = {"data": {"type": "api_keys", "attributes": {"name": name}}}
        response = self._send_as_admin("POST", KEYS, json_body=body)
        base.raise_if_key_limit(response, _KEY_LIMIT_MESSAGE)
        return self._issued(response, KEYS, _ADMIN_HINT, id_path="data.id", value_path="data.attributes.key")

    def verify(self, key: base.StoredKey) -> base.Verdict:
        accepted, data = self._ask_with_key("GET", VALIDATE, _KEY_HINT, headers={"DD-API-KEY": key.value})
        if not accepted:
            return base.Verdict(valid=False)
        return base.Verdict(valid=base.dig(data, "valid") is True)

    def revoke(self, key_id: str) -> bool:
        return self._delete_key(KEY, key_id, _ADMIN_HINT)
