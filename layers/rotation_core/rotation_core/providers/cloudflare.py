"""Cloudflare user API tokens (``/user/tokens``; verification with ``GET /user/tokens/verify``).

Rotated secret: ``api_token``, ``api_token_id``. Admin secret: ``"provider": "cloudflare"`` and
``api_token`` of a token with the "API Tokens Write" user permission; optional ``policies`` to give new
tokens other policies than the current token's, optional ``lifetime_days`` to give them that lifetime;
``base_url`` defaults to ``https://api.cloudflare.com/client/v4``.

A new token copies the current token's policies and condition as Cloudflare reports them, never more,
written as the create request takes them: a policy's ``id`` and a permission group's ``name`` are
read-only (Cloudflare refuses a create that names existing policies). It also keeps the current token's
time limits: a token that expires is replaced by one whose lifetime (``expires_on`` less ``not_before``,
or less ``issued_on``) is no longer, counted from now, and a ``not_before`` still ahead is kept; the
admin secret's ``lifetime_days`` replaces that rule. The verify answer names the token's id, which ties a
stored value to its id. A token's record says when it was last used (``last_used_on``),
which the drain check reads before a revocation.

Listing pages with ``page``/``per_page`` and stops at ``result_info.total_count`` (the definition's
``count``, ``page``, ``per_page``, ``total_count``; there is no page count), or at a short or empty page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from rotation_core.errors import VerificationError
from rotation_core.log import get_logger
from rotation_core.providers import base

TOKENS = "/user/tokens"
# Not a secret: a URL route (flagged by its wording).
TOKEN = "/user/tokens/{id}"  # noqa: S105  # nosec B105
VERIFY = "/user/tokens/verify"
PAGE_SIZE = 50  # the definition's maximum per_page
MAX_LIFETIME_DAYS = 3650
_ADMIN_HINT = 'check the admin secret\'s api_token and that it has the "API Tokens Write" permission'
_KEY_HINT = "check base_url points at the Cloudflare API"
_KEY_LIMIT_MESSAGE = (
    "Cloudflare refused to create another API token: the user has reached its token limit. Delete "
    "unused tokens (My Profile > API Tokens) and rotate again"
)
#: Answers to ``GET /user/tokens/{id}`` that mean "no such token here": the definition documents only "4XX".
_NO_SUCH_TOKEN = frozenset({400, 404, 410, 422})
_TIMES = ("expires_on", "not_before", "issued_on")


def _policy_for_create(policy: Any) -> dict[str, Any]:
    """A policy as the create request takes it: without the read-only ``id`` and permission group names."""
    if not isinstance(policy, dict):
        return {}
    groups = [
        {"id": group["id"], **({"meta": group["meta"]} if isinstance(group.get("meta"), dict) else {})}
        for group in policy.get("permission_groups") or []
        if isinstance(group, dict) and isinstance(group.get("id"), str)
    ]
    return {"effect": policy.get("effect"), "resources": policy.get("resources"), "permission_groups": groups}


def _grants(policy: Any) -> bool:
    return isinstance(policy, dict) and bool(policy.get("permission_groups")) and policy.get("effect") is not None


def _when(value: Any, field: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise VerificationError(
            f"Cloudflare answered a token's {field} that is not a date-time; check base_url points at the Cloudflare "
            "API"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CloudflareProvider(base.HttpProviderBase):
    name = "cloudflare"
    display_name = "Cloudflare"
    value_field = "api_token"
    id_field = "api_token_id"

    def _configure(self, admin: Mapping[str, Any]) -> None:
        self._admin_headers = {"Authorization": "Bearer " + base.admin_field(admin, "api_token", self.display_name)}
        override = admin.get("policies")
        if override is not None and (not isinstance(override, list) or not override):
            raise base.AdminSecretFormatError(
                'the admin secret\'s "policies" must be a non-empty list of token policies'
            )
        self._policies_override = override
        lifetime = admin.get("lifetime_days")
        if lifetime is not None and (
            isinstance(lifetime, bool) or not isinstance(lifetime, int) or not 1 <= lifetime <= MAX_LIFETIME_DAYS
        ):
            raise base.AdminSecretFormatError(
                f'the admin secret\'s "lifetime_days" must be a whole number of days from 1 to {MAX_LIFETIME_DAYS}'
            )
        self._lifetime_days: int | None = lifetime

    def find(self, name_prefix: str) -> list[base.KeyRef]:
        found: list[base.KeyRef] = []
        seen = 0
        for page in range(1, base.MAX_LIST_PAGES + 1):
            query = {"page": str(page), "per_page": str(PAGE_SIZE)}
            data = self._ask_as_admin("GET", TOKENS, _ADMIN_HINT, query=query)
            count, keys = self._page_keys(
                data, "GET", TOKENS, items_path="result", id_path="id", name_path="name", name_prefix=name_prefix
            )
            found += keys
            seen += count
            total = base.dig(data, "result_info.total_count")
            if count < PAGE_SIZE or (isinstance(total, int | float) and seen >= total):
                return found
        get_logger().warning(
            f"Cloudflare lists more than {base.MAX_LIST_PAGES * PAGE_SIZE} tokens; only those were searched for "
            "tokens of earlier attempts of this secret's rotations",
            extra={"listed": seen},
        )
        return found

    def lookup(self, key_id: str) -> base.KeyRecord | None:
        data = self._fetch_key(TOKEN, key_id, _ADMIN_HINT, absent=_NO_SUCH_TOKEN)
        if data is None:
            return None
        result = base.dig(data, "result")
        if not isinstance(result, dict) or result.get("id") != key_id or not isinstance(result.get("name"), str):
            raise self._malformed("GET", TOKEN, "the token's id and name")
        if not isinstance(result.get("policies"), list) or not result["policies"]:
            raise self._malformed("GET", TOKEN, "the token's policies")
        template: dict[str, Any] = {"policies": result["policies"]}
        if isinstance(result.get("condition"), dict):
            template["condition"] = result["condition"]
        template.update({key: result[key] for key in _TIMES if result.get(key) is not None})
        reported, last_used = base.last_use(result["last_used_on"]) if "last_used_on" in result else (False, None)
        return base.KeyRecord(
            id=key_id, name=result["name"], template=template, reports_use=reported, last_used=last_used
        )

    def successor_template(self, record: base.KeyRecord) -> Mapping[str, Any]:
        source = self._policies_override if self._policies_override is not None else record.template.get("policies")
        template: dict[str, Any] = {"policies": [_policy_for_create(policy) for policy in source or []]}
        if self._policies_override is None and "condition" in record.template:
            template["condition"] = record.template["condition"]
        template.update(self._lifetime(record.template))
        return template

    def _lifetime(self, current: Mapping[str, Any]) -> dict[str, str]:
        """``expires_on``/``not_before`` of the new token: never a longer lifetime than the current token's."""
        now = self.config.clock()
        if self._lifetime_days is not None:
            return {"expires_on": _stamp(now + dt.timedelta(days=self._lifetime_days))}
        expires = _when(current.get("expires_on"), "expires_on")
        if expires is None:
            return {}  # the current token never expires: neither does its successor (it is no wider)
        if expires <= now:
            raise VerificationError(
                "the current Cloudflare token has expired; put a valid token in the secret (nothing was minted)"
            )
        not_before = _when(current.get("not_before"), "not_before")
        start = not_before or _when(current.get("issued_on"), "issued_on")
        lifetime = expires - start if start is not None and start < expires else expires - now
        if not_before is not None and not_before > now:  # not valid yet: neither is the successor
            return {"not_before": _stamp(not_before), "expires_on": _stamp(not_before + lifetime)}
        return {"expires_on": _stamp(now + lifetime)}

    def issue(self, name: str, template: Mapping[str, Any]) -> base.IssuedKey:
        policies = template.get("policies")
        if not isinstance(policies, list) or not policies or not all(_grants(policy) for policy in policies):
            raise base.AdminSecretFormatError("no policies are known for the new Cloudflare token; it is not created")
        copied = ("policies", "condition", "expires_on", "not_before")
        body = {"name": name, **{key: template[key] for key in copied if key in template}}
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
        # The definition declares a (required, schemaless) JSON body for this DELETE: an empty object.
        return self._delete_key(TOKEN, key_id, _ADMIN_HINT, json_body={})
