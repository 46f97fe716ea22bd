"""Cloudflare user API tokens (``/user/tokens``; verification with ``GET /user/tokens/verify``).

Rotated secret: ``api_token``, ``api_token_id``; optional ``policies`` (the new token's policies;
without it they are copied from the current token). ``base_url`` defaults to
``https://api.cloudflare.com/client/v4``. Admin secret: ``api_token`` of a token with the
"API Tokens Write" user permission.
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
    KeyRef,
    StoredKey,
    admin_field,
    dig,
)
from rotation_core.providers.http import HttpClient

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
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

    def __init__(self, http: HttpClient, base_url: str, admin: Mapping[str, Any]) -> None:
        super().__init__(http, base_url)
        self._admin_headers = {"Authorization": "Bearer " + admin_field(admin, "api_token", self.display_name)}

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

    def _template(self, current: StoredKey) -> dict[str, Any]:
        policies = current.secret.get("policies")
        if policies is not None:
            if not isinstance(policies, list) or not policies:
                raise SecretFormatError('the current secret\'s "policies" must be a non-empty list of token policies')
            return {"policies": policies}
        response = self._send("GET", TOKEN, path_params={"id": current.id}, headers=self._admin_headers)
        result = dig(self._expect_ok(response, "GET", TOKEN, _ADMIN_HINT + " (reading the current token)"), "result")
        if not isinstance(result, dict) or not isinstance(result.get("policies"), list):
            raise self._malformed("GET", TOKEN, "the current token's policies")
        return {key: result[key] for key in _COPIED if result.get(key) is not None}

    def issue(self, name: str, current: StoredKey) -> IssuedKey:
        body = {"name": name, **self._template(current)}
        response = self._send("POST", TOKENS, json_body=body, headers=self._admin_headers)
        if response.status in (400, 403) and b"limit" in response.body.lower():
            raise KeyLimitError(
                "Cloudflare refused to create another API token: the user has reached its token limit. Delete "
                "unused tokens (My Profile > API Tokens) and rotate again"
            )
        return self._issued(response, TOKENS, _ADMIN_HINT, id_path="result.id", value_path="result.value")

    def verify(self, key: StoredKey) -> bool:
        response = self.http.request(
            self.display_name, "GET", self.base_url, VERIFY, headers={"Authorization": "Bearer " + key.value}
        )
        if response.status in (401, 403):
            return False
        data = self._expect_ok(response, "GET", VERIFY, "check base_url points at the Cloudflare API")
        return dig(data, "success") is True and dig(data, "result.status") == "active"

    def revoke(self, key_id: str) -> bool:
        response = self._send("DELETE", TOKEN, path_params={"id": key_id}, headers=self._admin_headers)
        return self._revoke_response(response, "DELETE", TOKEN, _ADMIN_HINT)
