"""Cloudflare user API tokens (``/user/tokens``; verification with ``GET /user/tokens/verify``).

Rotated secret: ``api_token``, ``api_token_id``. Admin secret: ``"provider": "cloudflare"`` and
``api_token`` of a token with the "API Tokens Write" user permission; optional ``policies`` to give new
tokens other policies than the current token's; ``base_url`` defaults to
``https://api.cloudflare.com/client/v4``.

A new token copies the current token's policies and condition as Cloudflare reports them, never more.
The verify answer names the token's id, which ties a stored value to its id. A token's record says when it was last
used (``last_used_on``), which the drain check reads before a revocation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rotation_core.errors import SecretFormatError
from rotation_core.providers import base

TOKENS = "/user/tokens"
# Not a secret: a URL route (flagged by its wording).
TOKEN = "/user/tokens/{id}"  # noqa: S105  # nosec B105
VERIFY = "/user/tokens/verify"
PAGE_SIZE = 50
_ADMIN_HINT = 'check the admin secret\'s api_token and that it has the "API Tokens Write" permission'
_KEY_HINT = "check base_url points at the Cloudflare API"
_KEY_LIMIT_MESSAGE = (
    "Cloudflare refused to create another API token: the user has reached its token limit. Delete "
    "unused tokens (My Profile > API Tokens) and rotate again"
)
_COPIED = ("policies", "condition")


class CloudflareProvider(base.HttpProviderBase):
    name = "cloudflare"
    display_name = "Cloudflare"
    value_field = "api_token"
    id_field = "api_token_id"

    def _configure(self, admin: Mapping[str, Any]) -> None:
        self._admin_headers = {"Authorization": "Bearer " + base.admin_field(admin, "api_token", self.display_name)}
        override = admin.get("policies")
        if override is not None and (not isinstance(override, list) or not override):
            raise SecretFormatError('the admin secret\'s "policies" must be a non-empty list of token policies')
        self._policies_override = override

    def find(self, name_prefix: str) -> list[base.KeyRef]:
        found: list[base.KeyRef] = []
        for page in range(1, base.MAX_LIST_PAGES + 1):
            query = {"page": str(page), "per_page": str(PAGE_SIZE)}
            data = self._ask_as_admin("GET", TOKENS, _ADMIN_HINT, query=query)
            found += self._page_keys(
                data, "GET", TOKENS, items_path="result", id_path="id", name_path="name", name_prefix=name_prefix
            )[1]
            total_pages = base.dig(data, "result_info.total_pages")
            if not isinstance(total_pages, int) or page >= total_pages:
                break
        return found

    def lookup(self, key_id: str) -> base.KeyRecord | None:
        data = self._fetch_key(TOKEN, key_id, _ADMIN_HINT)
        if data is None:
            return None
        result = base.dig(data, "result")
        if not isinstance(result, dict) or result.get("id") != key_id or not isinstance(result.get("name"), str):
            raise self._malformed("GET", TOKEN, "the token's id and name")
        if not isinstance(result.get("policies"), list) or not result["policies"]:
            raise self._malformed("GET", TOKEN, "the token's policies")
        template = {key: result[key] for key in _COPIED if result.get(key) is not None}
        reported, last_used = base.last_use(result["last_used_on"]) if "last_used_on" in result else (False, None)
        return base.KeyRecord(
            id=key_id, name=result["name"], template=template, reports_use=reported, last_used=last_used
        )

    def successor_template(self, record: base.KeyRecord) -> Mapping[str, Any]:
        if self._policies_override is not None:
            return {"policies": self._policies_override}
        return record.template

    def issue(self, name: str, template: Mapping[str, Any]) -> base.IssuedKey:
        if not isinstance(template.get("policies"), list) or not template["policies"]:
            raise SecretFormatError("no policies are known for the new Cloudflare token; it is not created")
        body = {"name": name, **{key: template[key] for key in _COPIED if key in template}}
        response = self._send_as_admin("POST", TOKENS, json_body=body)
        base.raise_if_key_limit(response, _KEY_LIMIT_MESSAGE)
        return self._issued(response, TOKENS, _ADMIN_HINT, id_path="result.id", value_path="result.value")

    def verify(self, key: base.StoredKey) -> base.Verdict:
        accepted, data = self._ask_with_key("GET", VERIFY, _KEY_HINT, headers={"Authorization": "Bearer " + key.value})
        if not accepted:
            return base.Verdict(valid=False)
        token_id = base.dig(data, "result.id")
        valid = base.dig(data, "success") is True and base.dig(data, "result.status") == "active"
        return base.Verdict(valid=valid, key_id=token_id if isinstance(token_id, str) and token_id else None)

    def revoke(self, key_id: str) -> bool:
        return self._delete_key(TOKEN, key_id, _ADMIN_HINT)
