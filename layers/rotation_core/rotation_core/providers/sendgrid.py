"""SendGrid API keys (``/v3/api_keys``; verification with ``GET /v3/scopes``).

Rotated secret: ``api_key``, ``api_key_id``. Admin secret: ``"provider": "sendgrid"``, ``api_key`` of a key
holding the ``api_keys.create``, ``api_keys.read`` and ``api_keys.delete`` scopes (and every scope it hands
out), and ``scopes``: the list of scopes every new key gets. An account holds at most 100 keys.

SendGrid's API names neither the account nor the key id of a key value (a key's own ``GET /v3/scopes``
answers only its scopes), so a value cannot be tied to its id: a secret's editor could pair a key of
another account with the id of a privileged key here. That is why a new key's scopes come from the admin
secret alone, never from the record of the stored id, and why the admin secret must list them (SendGrid
grants full access to a key created without scopes). What SendGrid does say is checked before anything is
minted: the value must be valid, the admin's account must list the id, the scopes recorded for the id
may be no more than the value reports, and, when the value may read keys (``api_keys.read``), its own
account must hold that id (``GET /v3/api_keys/{id}`` asked with the value answers 404 otherwise). Keys
not named for this secret are never revoked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rotation_core.providers import base

KEYS = "/v3/api_keys"
KEY = "/v3/api_keys/{id}"
SCOPES = "/v3/scopes"
KEY_LIMIT = 100
READ_KEYS_SCOPE = "api_keys.read"
_ADMIN_HINT = "check the admin secret's api_key and that it holds the api_keys.create/read/delete scopes"
_KEY_HINT = "check base_url points at the SendGrid API"
_SCOPES_MISSING = (
    'the SendGrid admin secret (adminarn) has no "scopes" list. SendGrid does not say which account or key id a '
    "key value belongs to, so the scopes of a new key come from the admin secret alone, never from the stored "
    'key id\'s record: add "scopes": ["mail.send", ...] with exactly the scopes the rotated keys need (a key '
    "created without scopes would have full access). Nothing was minted"
)


def _scopes(value: Any) -> list[str] | None:
    if isinstance(value, list) and value and all(isinstance(scope, str) and scope for scope in value):
        return list(value)
    return None


class SendGridProvider(base.HttpProviderBase):
    name = "sendgrid"
    display_name = "SendGrid"

    def _configure(self, admin: Mapping[str, Any]) -> None:
        self._admin_headers = {"Authorization": "Bearer " + base.admin_field(admin, "api_key", self.display_name)}
        scopes = admin.get("scopes")
        if scopes is None:
            raise base.AdminSecretFormatError(_SCOPES_MISSING)
        self._scopes = _scopes(scopes)
        if self._scopes is None:
            raise base.AdminSecretFormatError(
                'the SendGrid admin secret\'s "scopes" must be a non-empty list of SendGrid scope names'
            )

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
        item = _key_item(data, key_id)
        scopes = _scopes(item.get("scopes")) if item is not None else None
        if item is None or not isinstance(item.get("name"), str) or scopes is None:
            raise self._malformed("GET", KEY, "the key's name and scopes")
        return base.KeyRecord(id=key_id, name=item["name"], template={"scopes": scopes})

    def successor_template(self, record: base.KeyRecord) -> Mapping[str, Any]:
        return {"scopes": list(self._scopes or [])}  # the admin secret's, whatever the stored id's record says

    def issue(self, name: str, template: Mapping[str, Any]) -> base.IssuedKey:
        scopes = _scopes(template.get("scopes"))
        if scopes is None:  # without scopes SendGrid would grant full access
            raise base.AdminSecretFormatError(_SCOPES_MISSING)
        response = self._send_as_admin("POST", KEYS, json_body={"name": name, "scopes": scopes})
        if response.status == 403 and len(self._list()) >= KEY_LIMIT:  # SendGrid documents 403 for the limit
            raise base.KeyLimitError(
                f"SendGrid refused to create an API key: the account already holds {KEY_LIMIT} keys, SendGrid's "
                "limit. Delete unused keys (Settings > API Keys) and rotate again"
            )
        return self._issued(response, KEYS, _ADMIN_HINT, id_path="api_key_id", value_path="api_key")

    def verify(self, key: base.StoredKey) -> base.Verdict:
        headers = {"Authorization": "Bearer " + key.value}
        accepted, data = self._ask_with_key("GET", SCOPES, _KEY_HINT, headers=headers)
        if not accepted:
            return base.Verdict(valid=False)
        scopes = _scopes(base.dig(data, "scopes"))
        if scopes is None:
            return base.Verdict(valid=False)
        same_account = self._holds_own_id(key, headers) if READ_KEYS_SCOPE in scopes else None
        return base.Verdict(valid=True, template={"scopes": scopes}, same_account=same_account)

    def _holds_own_id(self, key: base.StoredKey, headers: Mapping[str, str]) -> bool | None:
        """Does the key's own account hold the stored id? Asked with the key itself (it may read keys)."""
        response = self.http.request(
            self.display_name, "GET", self.base_url, KEY, headers=headers, path_params={"id": key.id}
        )
        if response.status == 404:
            return False
        if response.status in (401, 403):
            return None  # it may not read keys after all: SendGrid says nothing either way
        data = self._expect_ok(response, "GET", KEY, _KEY_HINT)
        return _key_item(data, key.id) is not None

    def revoke(self, key_id: str) -> bool:
        return self._delete_key(KEY, key_id, _ADMIN_HINT)


def _key_item(data: Any, key_id: str) -> dict[str, Any] | None:
    """The key ``key_id`` in a ``GET /v3/api_keys/{id}`` answer.

    The definition (twilio/sendgrid-oai, GetApiKey) documents ``{"result": [{...}]}``; clients in the wild
    read a bare object, which is accepted too.
    """
    if isinstance(data, dict) and "result" in data:
        items = data["result"] if isinstance(data["result"], list) else []
    else:
        items = [data]
    return next((i for i in items if isinstance(i, dict) and i.get("api_key_id") == key_id), None)
