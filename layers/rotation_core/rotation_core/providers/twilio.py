"""Twilio API keys (IAM Key resource v1; verification with an authenticated REST call).

Rotated secret: ``account_sid``, ``api_key_sid``, ``api_key_secret``. Admin secret: ``"provider":
"twilio"``, ``account_sid`` plus either ``auth_token`` or a *Main* key's ``api_key_sid`` and
``api_key_secret`` (Standard keys cannot manage keys); optional ``base_url`` (the IAM endpoint, default
``https://iam.twilio.com``) and ``api_base_url`` (the REST API used to verify keys, default
``https://api.twilio.com``) pin where credentials may be sent; optional ``policy`` gives new keys
another restricted-key policy; optional ``verify_path`` names the read-only request that proves a key
(below). A subaccount's keys are rotated with the subaccount's own ``account_sid`` and credentials.

The proof: Twilio authenticates a request with a key's sid as the user and its secret as the password,
so a successful (2xx) request ties the stored secret to the stored sid, and the admin's key list
(``GET /v1/Keys/{sid}``) ties the sid to the admin's account. Only a 2xx proves anything: Twilio's
documentation gives the same answers to a wrong secret and to a valid key that may not read a resource
(error 20003 "Permission Denied" lists both; the 403 page too), so a refusal never counts as "valid but
forbidden". The request is, by default, ``GET /2010-04-01/Accounts/{AccountSid}/Applications.json``
(one item), which every Standard and Main key may read (Twilio: Standard keys reach every resource but
Accounts and Keys) in an account or a subaccount; ``Balance.json``, used before, answers 404 for a
subaccount and is outside what a restricted key can be granted. A *restricted* key may read only what its
policy allows, which Twilio's API does not map to requests: give the admin secret a ``verify_path`` (a GET
under ``api_base_url`` its keys' policies allow, e.g. ``/2010-04-01/Accounts/{AccountSid}/Messages.json``
for ``/twilio/messaging/messages/read``). A new key keeps the current key's type: a restricted key's
policy is copied (``GET /v1/Keys/{sid}``), so a rotation never turns a restricted key into a standard one.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from rotation_core.errors import Category, ConfusedDeputyError, SecretFormatError, TargetError
from rotation_core.providers import base
from rotation_core.providers.endpoints import EndpointError, parse_endpoint

KEYS = "/v1/Keys"
KEY = "/v1/Keys/{id}"
VERIFY = "/2010-04-01/Accounts/{AccountSid}/Applications.json"
PAGE_SIZE = 1000
# The formats the definition (twilio/twilio-oai) gives sids; anything else is refused before it is sent.
ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
KEY_SID = re.compile(r"^SK[0-9a-fA-F]{32}$")
_VERIFY_PATH = re.compile(r"^/(?:[A-Za-z0-9._~-]+|\{AccountSid\})(?:/(?:[A-Za-z0-9._~-]+|\{AccountSid\}))*$")
_REFUSED_HINT = (
    "Twilio answers a key that may not read the verification request as it answers a wrong secret, so a refusal "
    "proves nothing. A restricted key may read only what its policy allows: name a GET its policy allows in the "
    'admin secret\'s "verify_path" (e.g. "/2010-04-01/Accounts/{AccountSid}/Messages.json" for '
    '"/twilio/messaging/messages/read")'
)
_ADMIN_HINT = "check the admin secret's account_sid and auth_token (or Main API key sid/secret)"
_KEY_LIMIT_MESSAGE = (
    "Twilio refused to create another API key: the account has reached its key limit. Delete unused "
    "keys (Console > API keys) and rotate again"
)


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class TwilioProvider(base.HttpProviderBase):
    name = "twilio"
    display_name = "Twilio"
    value_field = "api_key_secret"
    id_field = "api_key_sid"

    def _configure(self, admin: Mapping[str, Any]) -> None:
        self.account_sid = base.admin_field(admin, "account_sid", self.display_name)
        if not ACCOUNT_SID.match(self.account_sid):
            raise base.AdminSecretFormatError('the Twilio admin secret\'s "account_sid" is not an account sid (AC...)')
        if admin.get("auth_token") is not None:
            user, password = self.account_sid, base.admin_field(admin, "auth_token", self.display_name)
        else:
            user = base.admin_field(admin, "api_key_sid", self.display_name)
            password = base.admin_field(admin, "api_key_secret", self.display_name)
        self._admin_headers = {"Authorization": basic_auth(user, password)}
        self.api_base = self.config.endpoints["api_base_url"]
        override = admin.get("policy")
        if override is not None and not isinstance(override, dict):
            raise base.AdminSecretFormatError(
                'the admin secret\'s "policy" must be a Twilio restricted-key policy object'
            )
        self._policy_override = override
        verify_path = admin.get("verify_path", VERIFY)
        if (
            not isinstance(verify_path, str)
            or not _VERIFY_PATH.match(verify_path)
            or len(verify_path) > 200
            or any(segment in (".", "..") for segment in verify_path.split("/"))
        ):
            raise base.AdminSecretFormatError(
                'the Twilio admin secret\'s "verify_path" must be a path under api_base_url (letters, digits, '
                '"._~-", "/" and the placeholder {AccountSid}; no query), e.g. '
                '"/2010-04-01/Accounts/{AccountSid}/Messages.json"'
            )
        self._verify_path = verify_path

    def stored_key(self, secret: Mapping[str, Any], label: str) -> base.StoredKey:
        account = base.text_field(secret, "account_sid", label)
        if account != self.account_sid:
            raise ConfusedDeputyError(
                f"the {label} secret's account_sid differs from the admin secret's; point \"adminarn\" at the "
                "admin secret of the same Twilio account"
            )
        stored = base.stored_key_from(self.value_field, self.id_field, secret, label)
        if not KEY_SID.match(stored.id):
            raise SecretFormatError(f'the {label} secret\'s "{self.id_field}" is not a Twilio API key sid (SK...)')
        return stored

    def find(self, name_prefix: str) -> list[base.KeyRef]:
        found: list[base.KeyRef] = []
        query = {"AccountSid": self.account_sid, "PageSize": str(PAGE_SIZE)}
        for _ in range(base.MAX_LIST_PAGES):
            data = self._ask_as_admin("GET", KEYS, _ADMIN_HINT, query=query)
            found += self._page_keys(
                data, "GET", KEYS, items_path="keys", id_path="sid", name_path="friendly_name", name_prefix=name_prefix
            )[1]
            next_url = base.dig(data, "meta.next_page_url")
            if not isinstance(next_url, str) or not next_url:
                break
            query = {**self._next_page_query(next_url), "AccountSid": self.account_sid}
        return found

    def _next_page_query(self, next_url: str) -> dict[str, str]:
        """The query of Twilio's next-page link, which must point at the same list on the same endpoint."""
        page_path, _, page_query = next_url.partition("?")
        try:
            link = parse_endpoint(page_path, "Twilio's next_page_url")
        except EndpointError:
            link = None
        if link is None or not link.same_origin(self.base_url) or link.path != self.base_url.path + KEYS:
            raise TargetError(
                "Twilio's next_page_url points somewhere else than the key list of the pinned endpoint; the "
                "admin credential is never sent there. Check base_url",
                category=Category.CONFUSED_DEPUTY,
            )
        return dict(parse_qsl(page_query))

    def lookup(self, key_id: str) -> base.KeyRecord | None:
        if not KEY_SID.match(key_id):
            return None  # no Twilio key has such an id: nothing is sent
        data = self._fetch_key(KEY, key_id, _ADMIN_HINT)
        if data is None:
            return None
        name, policy = base.dig(data, "friendly_name"), base.dig(data, "policy")
        if base.dig(data, "sid") != key_id or not isinstance(name, str):
            raise self._malformed("GET", KEY, "the key's sid and friendly_name")
        return base.KeyRecord(id=key_id, name=name, template={"policy": policy} if isinstance(policy, dict) else {})

    def successor_template(self, record: base.KeyRecord) -> Mapping[str, Any]:
        return {"policy": self._policy_override} if self._policy_override is not None else record.template

    def issue(self, name: str, template: Mapping[str, Any]) -> base.IssuedKey:
        form = {"AccountSid": self.account_sid, "FriendlyName": name}
        policy = template.get("policy")
        if isinstance(policy, dict):
            form.update(KeyType="restricted", Policy=json.dumps(policy, separators=(",", ":")))
        response = self._send_as_admin("POST", KEYS, form=form)
        base.raise_if_key_limit(response, _KEY_LIMIT_MESSAGE)
        return self._issued(
            response,
            KEYS,
            _ADMIN_HINT,
            id_path="sid",
            value_path="secret",
            extra_fields={"account_sid": self.account_sid},
        )

    def verify(self, key: base.StoredKey) -> base.Verdict:
        default = self._verify_path == VERIFY
        accepted, _ = self._ask_with_key(
            "GET",
            self._verify_path,
            "check api_base_url points at the Twilio REST API and the admin secret's verify_path",
            headers={"Authorization": basic_auth(key.id, key.value)},
            endpoint=self.api_base,
            path_params={"AccountSid": self.account_sid},
            query={"PageSize": "1"} if default else None,
        )
        if not accepted:
            return base.Verdict(valid=False, hint=_REFUSED_HINT)
        # Twilio authenticated the sid with the secret (2xx): the value belongs to that id.
        return base.Verdict(valid=True, key_id=key.id)

    def revoke(self, key_id: str) -> bool:
        if not KEY_SID.match(key_id):
            return False  # no Twilio key has such an id
        return self._delete_key(KEY, key_id, _ADMIN_HINT)
