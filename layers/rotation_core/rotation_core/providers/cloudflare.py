"""Cloudflare user API tokens (``/user/tokens``; verification with ``GET /user/tokens/verify``).

Rotated secret: ``api_token``, ``api_token_id``. Admin secret: ``"provider": "cloudflare"`` and
``api_token`` of a token with the "API Tokens Write" user permission; optional ``policies`` to give new
tokens other policies than the current token's; ``base_url`` defaults to
``https://api.cloudflare.com/client/v4``.

A new token copies the current token's policies and condition as Cloudflare reports them, never more.
The verify answer names the token's id, which ties a stored value to its id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rotation_core.errors import SecretFormatError
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

TOKENS = "/user/tokens"
# Not a secret: a URL route (flagged by its wording).
TOKEN = "/user/tokens/{id}"  # noqa: S105  # nosec B105
VERIFY = "/user/tokens/verify"
PAGE_SIZE = 50
_ADMIN_HINT = 'check the admin secret\'s api_token and that it has the "API Tokens Write" permission'
_COPIED = ("policies", "condition")


class CloudflareProvider(HttpProviderBase):
    name = "cloudflare"
    display_name = "Cloudflare"
    value_field = "api_token"
    id_field = "api_token_id"

    def __init__(self, http: HttpClient, config: ProviderConfig) -> None:
        super().__init__(http, config)
        admin = config.admin
        self._admin_headers = {"Authorization": "Bearer " + admin_field(admin, "api_token", self.display_name)}
        override = admin.get("policies")
        if override is not None and (not isinstance(override, list) or not override):
            raise SecretFormatError('the admin secret\'s "policies" must be a non-empty list of token policies')
        self._policies_override = override

    def find(self, name_prefix: str) -> list[KeyRef]:
        found: list[KeyRef] = []
        for page in range(1, MAX_LIST_PAGES + 1):
            query = {"page": str(page), "per_page": str(PAGE_SIZE)}
            response = self._send("GET", TOKENS, query=query, headers=self._admin_headers)
            data = self._expect_ok(response, "GET", TOKENS, _ADMIN_HINT)
            found += self._page_keys(
                data, "GET", TOKENS, items_path="result", id_path="id", name_path="name", name_prefix=name_prefix
            )[1]
            total_pages = dig(data, "result_info.total_pages")
            if not isinstance(total_pages, int) or page >= total_pages:
                break
        return found

    def lookup(self, key_id: str) -> KeyRecord | None:
        response = self._send("GET", TOKEN, path_params={"id": key_id}, headers=self._admin_headers)
        data = self._lookup_response(response, "GET", TOKEN, _ADMIN_HINT)
        if data is None:
            return None
        result = dig(data, "result")
        if not isinstance(result, dict) or result.get("id") != key_id or not isinstance(result.get("name"), str):
            raise self._malformed("GET", TOKEN, "the token's id and name")
        if not isinstance(result.get("policies"), list) or not result["policies"]:
            raise self._malformed("GET", TOKEN, "the token's policies")
        template = {key: result[key] for key in _COPIED if result.get(key) is not None}
        return KeyRecord(id=key_id, name=result["name"], template=template)

    def successor_template(self, record: KeyRecord) -> Mapping[str, Any]:
        if self._policies_override is not None:
            return {"policies": self._policies_override}
        return record.template

    def issue(self, name: str, template: Mapping[str, Any]) -> IssuedKey:
        if not isinstance(template.get("policies"), list) or not template["policies"]:
            raise SecretFormatError("no policies are known for the new Cloudflare token; it is not created")
        body = {"name": name, **{key: template[key] for key in _COPIED if key in template}}
        response = self._send("POST", TOKENS, json_body=body, headers=self._admin_headers)
        if response.status in (400, 403) and b"limit" in response.body.lower():
            raise KeyLimitError(
                "Cloudflare refused to create another API token: the user has reached its token limit. Delete "
                "unused tokens (My Profile > API Tokens) and rotate again"
            )
        return self._issued(response, TOKENS, _ADMIN_HINT, id_path="result.id", value_path="result.value")

    def verify(self, key: StoredKey) -> Verdict:
        response = self._send("GET", VERIFY, headers={"Authorization": "Bearer " + key.value})
        if response.status in (401, 403):
            return Verdict(valid=False)
        data = self._expect_ok(response, "GET", VERIFY, "check base_url points at the Cloudflare API")
        token_id = dig(data, "result.id")
        valid = dig(data, "success") is True and dig(data, "result.status") == "active"
        return Verdict(valid=valid, key_id=token_id if isinstance(token_id, str) and token_id else None)

    def revoke(self, key_id: str) -> bool:
        response = self._send("DELETE", TOKEN, path_params={"id": key_id}, headers=self._admin_headers)
        return self._revoke_response(response, "DELETE", TOKEN, _ADMIN_HINT)
