"""SendGrid API keys (``/v3/api_keys``; verification with ``GET /v3/scopes``).

Rotated secret: ``api_key``, ``api_key_id``, optional ``scopes`` (a list, given to each new key; without
it SendGrid grants the key full access). Admin secret: ``api_key`` of a key holding the
``api_keys.create``, ``api_keys.read`` and ``api_keys.delete`` scopes. An account holds at most 100 keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rotation_core.errors import SecretFormatError
from rotation_core.providers.base import HttpProviderBase, IssuedKey, KeyLimitError, KeyRef, StoredKey, admin_field, dig
from rotation_core.providers.http import HttpClient

DEFAULT_BASE_URL = "https://api.sendgrid.com"
KEYS = "/v3/api_keys"
KEY = "/v3/api_keys/{id}"
SCOPES = "/v3/scopes"
KEY_LIMIT = 100
_ADMIN_HINT = "check the admin secret's api_key and that it holds the api_keys.create/read/delete scopes"


class SendGridProvider(HttpProviderBase):
    name = "sendgrid"
    display_name = "SendGrid"
    value_field = "api_key"
    id_field = "api_key_id"

    def __init__(self, http: HttpClient, base_url: str, admin: Mapping[str, Any]) -> None:
        super().__init__(http, base_url)
        self._admin_headers = {"Authorization": "Bearer " + admin_field(admin, "api_key", self.display_name)}

    def _list(self) -> list[KeyRef]:
        response = self._send("GET", KEYS, query={"limit": str(KEY_LIMIT)}, headers=self._admin_headers)
        items = dig(self._expect_ok(response, "GET", KEYS, _ADMIN_HINT), "result")
        if not isinstance(items, list):
            raise self._malformed("GET", KEYS, "a result list")
        return [
            KeyRef(id=item["api_key_id"], name=item["name"])
            for item in items
            if isinstance(item, dict) and isinstance(item.get("api_key_id"), str) and isinstance(item.get("name"), str)
        ]

    def find(self, name_prefix: str) -> list[KeyRef]:
        return [key for key in self._list() if key.name.startswith(name_prefix)]

    def issue(self, name: str, current: StoredKey) -> IssuedKey:
        body: dict[str, Any] = {"name": name}
        scopes = current.secret.get("scopes")
        if scopes is not None:
            if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
                raise SecretFormatError('the current secret\'s "scopes" must be a list of SendGrid scope names')
            body["scopes"] = scopes
        response = self._send("POST", KEYS, json_body=body, headers=self._admin_headers)
        if response.status == 403 and len(self._list()) >= KEY_LIMIT:
            raise KeyLimitError(
                f"SendGrid refused to create an API key: the account already holds {KEY_LIMIT} keys, SendGrid's "
                "limit. Delete unused keys (Settings > API Keys) and rotate again"
            )
        return self._issued(response, KEYS, _ADMIN_HINT, id_path="api_key_id", value_path="api_key")

    def verify(self, key: StoredKey) -> bool:
        response = self._send("GET", SCOPES, headers={"Authorization": "Bearer " + key.value})
        if response.status in (401, 403):
            return False
        data = self._expect_ok(response, "GET", SCOPES, "check base_url points at the SendGrid API")
        return isinstance(dig(data, "scopes"), list)

    def revoke(self, key_id: str) -> bool:
        response = self._send("DELETE", KEY, path_params={"id": key_id}, headers=self._admin_headers)
        return self._revoke_response(response, "DELETE", KEY, _ADMIN_HINT)
