"""SendGrid API keys (``/v3/api_keys``; verification with ``GET /v3/scopes``).

Rotated secret: ``api_key``, ``api_key_id``. Admin secret: ``"provider": "sendgrid"`` and ``api_key`` of
a key holding the ``api_keys.create``, ``api_keys.read`` and ``api_keys.delete`` scopes (and every scope
it hands out); optional ``scopes`` (a list) to give new keys other scopes than the current key's. An
account holds at most 100 keys.

A new key gets the scopes SendGrid reports for the current key (``GET /v3/api_keys/{id}``), never
more: SendGrid grants full access to a key created without scopes, so a key is never created without.
SendGrid cannot tie a key's value to its id; the binding proof is weaker here: the key validates, the
admin's account lists its id, and the scopes recorded for that id are no more than the key itself
reports (``GET /v3/scopes``), so swapping in another key's id can never widen the new key. Keys not
named for this secret are never revoked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rotation_core.errors import SecretFormatError
from rotation_core.providers import base

KEYS = "/v3/api_keys"
KEY = "/v3/api_keys/{id}"
SCOPES = "/v3/scopes"
KEY_LIMIT = 100
_ADMIN_HINT = "check the admin secret's api_key and that it holds the api_keys.create/read/delete scopes"
_KEY_HINT = "check base_url points at the SendGrid API"


def _scopes(value: Any) -> list[str] | None:
    if isinstance(value, list) and value and all(isinstance(scope, str) and scope for scope in value):
        return list(value)
    return None


class SendGridProvider(base.HttpProviderBase):
    name = "sendgrid"
    display_name = "SendGrid"

    def _configure(self, admin: Mapping[str, Any]) -> None:
        self._admin_headers = {"Authorization": "Bearer " + base.admin_field(admin, "api_key", self.display_name)}
        override = admin.get("scopes")
        self._scopes_override = _scopes(override)
        if override is not None and self._scopes_override is None:
            raise SecretFormatError('the admin secret\'s "scopes" must be a non-empty list of SendGrid scope names')

    def _list(self) -> list[base.KeyRef]:
        data = self._ask_as_admin("GET", KEYS, _ADMIN_HINT, query={"limit": str(KEY_LIMIT)})
        items = base.dig(data, "result")
        if not isinstance(items, list):
            raise self._malformed("GET", KEYS, "a result list")
        return [
            base.KeyRef(id=item["api_key_id"], name=item["name"])
            for item in items
            if isinstance(item, dict) and isinstance(item.get("api_key_id"), str) and isinstance(item.get("name"), str)
        ]

    def find(self, name_prefix: str) -> list[base.KeyRef]:
        return [key for key in self._list() if key.name.startswith(name_prefix)]

    def lookup(self, key_id: str) -> base.KeyRecord | None:
        data = self._fetch_key(KEY, key_id, _ADMIN_HINT)
        if data is None:
            return None
        # Documented as {"result": [{...}]}; a bare object is accepted too.
        items = data.get("result") if isinstance(data, dict) and "result" in data else [data]
        item = next((i for i in items or [] if isinstance(i, dict) and i.get("api_key_id") == key_id), None)
        scopes = _scopes(item.get("scopes")) if item is not None else None
        if item is None or not isinstance(item.get("name"), str) or scopes is None:
            raise self._malformed("GET", KEY, "the key's name and scopes")
        return base.KeyRecord(id=key_id, name=item["name"], template={"scopes": scopes})

    def successor_template(self, record: base.KeyRecord) -> Mapping[str, Any]:
        return {"scopes": self._scopes_override} if self._scopes_override else record.template

    def issue(self, name: str, template: Mapping[str, Any]) -> base.IssuedKey:
        scopes = _scopes(template.get("scopes"))
        if scopes is None:  # without scopes SendGrid would grant full access
            raise SecretFormatError("no scopes are known for the new SendGrid key; it is not created")
        response = self._send_as_admin("POST", KEYS, json_body={"name": name, "scopes": scopes})
        if response.status == 403 and len(self._list()) >= KEY_LIMIT:
            raise base.KeyLimitError(
                f"SendGrid refused to create an API key: the account already holds {KEY_LIMIT} keys, SendGrid's "
                "limit. Delete unused keys (Settings > API Keys) and rotate again"
            )
        return self._issued(response, KEYS, _ADMIN_HINT, id_path="api_key_id", value_path="api_key")

    def verify(self, key: base.StoredKey) -> base.Verdict:
        accepted, data = self._ask_with_key("GET", SCOPES, _KEY_HINT, headers={"Authorization": "Bearer " + key.value})
        if not accepted:
            return base.Verdict(valid=False)
        scopes = _scopes(base.dig(data, "scopes"))
        return base.Verdict(valid=scopes is not None, template=None if scopes is None else {"scopes": scopes})

    def revoke(self, key_id: str) -> bool:
        return self._delete_key(KEY, key_id, _ADMIN_HINT)
