"""Twilio API keys (IAM Key resource v1; verification with an authenticated REST call).

Rotated secret: ``account_sid``, ``api_key_sid``, ``api_key_secret``; optional ``api_base_url``
(default ``https://api.twilio.com``) for the verification call. ``base_url`` is the IAM endpoint
(default ``https://iam.twilio.com``). Admin secret: ``account_sid`` plus either ``auth_token`` or a
*Main* key's ``api_key_sid`` and ``api_key_secret`` (Standard keys cannot manage keys); optional
``base_url``/``api_base_url`` pin where the credentials may be sent.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from rotation_core.errors import ConfusedDeputyError
from rotation_core.providers.base import (
    MAX_LIST_PAGES,
    HttpProviderBase,
    IssuedKey,
    KeyLimitError,
    KeyRef,
    StoredKey,
    admin_field,
    dig,
    stored_key_from,
    text_field,
)
from rotation_core.providers.http import HttpClient, check_base_url

DEFAULT_BASE_URL = "https://iam.twilio.com"
DEFAULT_API_BASE_URL = "https://api.twilio.com"
KEYS = "/v1/Keys"
KEY = "/v1/Keys/{id}"
VERIFY = "/2010-04-01/Accounts/{account}/Balance.json"
PAGE_SIZE = 1000
_ADMIN_HINT = "check the admin secret's account_sid and auth_token (or Main API key sid/secret)"


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class TwilioProvider(HttpProviderBase):
    name = "twilio"
    display_name = "Twilio"
    value_field = "api_key_secret"
    id_field = "api_key_sid"

    def __init__(self, http: HttpClient, base_url: str, admin: Mapping[str, Any]) -> None:
        super().__init__(http, base_url)
        self.account_sid = admin_field(admin, "account_sid", self.display_name)
        if admin.get("auth_token") is not None:
            user, password = self.account_sid, admin_field(admin, "auth_token", self.display_name)
        else:
            user = admin_field(admin, "api_key_sid", self.display_name)
            password = admin_field(admin, "api_key_secret", self.display_name)
        self._admin_headers = {"Authorization": basic_auth(user, password)}
        pinned = admin.get("api_base_url")
        self._pinned_api_base = pinned.rstrip("/") if isinstance(pinned, str) else None

    def stored_key(self, secret: Mapping[str, Any], label: str) -> StoredKey:
        account = text_field(secret, "account_sid", label)
        if account != self.account_sid:
            raise ConfusedDeputyError(
                f"the {label} secret's account_sid differs from the admin secret's; point \"adminarn\" at the "
                "admin secret of the same Twilio account"
            )
        return stored_key_from(self.value_field, self.id_field, secret, label)

    def find(self, name_prefix: str) -> list[KeyRef]:
        found: list[KeyRef] = []
        query = {"AccountSid": self.account_sid, "PageSize": str(PAGE_SIZE)}
        for _ in range(MAX_LIST_PAGES):
            response = self._send("GET", KEYS, query=query, headers=self._admin_headers)
            data = self._expect_ok(response, "GET", KEYS, _ADMIN_HINT)
            found += self._page_keys(
                data, "GET", KEYS, items_path="keys", id_path="sid", name_path="friendly_name", name_prefix=name_prefix
            )[1]
            next_url = dig(data, "meta.next_page_url")
            if not isinstance(next_url, str) or not next_url:
                break
            query = {**dict(parse_qsl(urlsplit(next_url).query)), "AccountSid": self.account_sid}
        return found

    def issue(self, name: str, current: StoredKey) -> IssuedKey:
        form = {"AccountSid": self.account_sid, "FriendlyName": name}
        response = self._send("POST", KEYS, form=form, headers=self._admin_headers)
        if response.status in (400, 403) and b"limit" in response.body.lower():
            raise KeyLimitError(
                "Twilio refused to create another API key: the account has reached its key limit. Delete unused "
                "keys (Console > API keys) and rotate again"
            )
        return self._issued(
            response,
            KEYS,
            _ADMIN_HINT,
            id_path="sid",
            value_path="secret",
            extra_fields={"account_sid": self.account_sid},
        )

    def verify(self, key: StoredKey) -> bool:
        api_base = key.secret.get("api_base_url", DEFAULT_API_BASE_URL)
        api_base = check_base_url(str(api_base), f"{key.label} secret's api_base_url; the")
        if self._pinned_api_base is not None and api_base != self._pinned_api_base:
            raise ConfusedDeputyError(
                f'the {key.label} secret\'s "api_base_url" differs from the one pinned in the admin secret; '
                "correct the rotated secret"
            )
        response = self.http.request(
            self.display_name,
            "GET",
            api_base,
            VERIFY,
            path_params={"account": self.account_sid},
            headers={"Authorization": basic_auth(key.id, key.value)},
        )
        if response.status in (401, 403):
            return False
        self._expect_ok(response, "GET", VERIFY, "check api_base_url points at the Twilio REST API")
        return True

    def revoke(self, key_id: str) -> bool:
        response = self._send("DELETE", KEY, path_params={"id": key_id}, headers=self._admin_headers)
        return self._revoke_response(response, "DELETE", KEY, _ADMIN_HINT)
