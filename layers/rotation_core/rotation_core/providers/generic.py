"""The generic ``http`` provider: the requests are described in the admin secret's ``http`` object.

The description directs the admin credential, so it lives in the admin secret (with ``"provider":
"http"`` and the ``base_url`` it pins), never in the rotated secret: an editor of a rotated secret
cannot make the function send any other request with the admin credential.

```json
"http": {
  "auth":     {"scheme": "bearer"},                       // or {"scheme": "header", "header": "X-Api-Key"}
                                                          // or {"scheme": "basic"}
  "key_auth": {"scheme": "bearer"},                       // how the new key authenticates; default: as "auth"
  "create": {"method": "POST", "path": "/v1/keys", "body": {"name": "{name}"},
             "value_path": "key", "id_path": "id"},        // where the new key and its id are in the response
  "list":   {"path": "/v1/keys", "items_path": "items", "name_path": "name", "id_path": "id"},
  "revoke": {"method": "DELETE", "path": "/v1/keys/{id}"},
  "verify": {"method": "GET", "path": "/v1/me", "id_path": "key.id"}
}
```

The admin secret also holds ``api_key`` (``bearer``/``header``) or ``username`` and ``password``
(``basic``). With ``basic``, the new key authenticates as ``<id>:<value>``. ``list`` is required: it is
how keys minted by a failed attempt are found, and how a key id is looked up in the admin's account.
Verification: 2xx is valid, 401/403 is not. ``verify.id_path`` (optional) names where the verify answer
says which key id it was: that ties a stored value to its id. Without it nothing ties a value to an id,
so the binding proof is the weaker one (the key validates and the admin's list holds its id), and the
new key's privileges must come from the admin secret alone: ``create.body`` is then required (no default
body), so that the admin secret states what a new key may do rather than leaving it to the provider's
default for a key created with a name only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rotation_core.providers import base
from rotation_core.providers.base import AdminSecretFormatError
from rotation_core.providers.http import error_for
from rotation_core.providers.twilio import basic_auth

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/{}-]*$")
_HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_SCHEMES = frozenset({"bearer", "header", "basic"})
_HINT = "check the admin secret and the secret's http request descriptions"


def _section(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = config.get(name)
    if not isinstance(section, dict):
        raise AdminSecretFormatError(
            f'the admin secret\'s "http" object has no "{name}" object; describe the {name} request'
        )
    return section


def _method(section: Mapping[str, Any], name: str, default: str) -> str:
    method = str(section.get("method", default)).upper()
    if method not in _METHODS:
        raise AdminSecretFormatError(f'"http.{name}.method" must be one of: {", ".join(sorted(_METHODS))}')
    return method


def _path(section: Mapping[str, Any], name: str, placeholders: frozenset[str] = frozenset()) -> str:
    path = section.get("path")
    if not isinstance(path, str) or not _PATH.match(path):
        raise AdminSecretFormatError(f'"http.{name}.path" must be a path starting with "/"')
    used = set(re.findall(r"{([^{}]*)}", path))
    if not used <= placeholders:
        allowed = ", ".join("{" + p + "}" for p in sorted(placeholders)) or "none"
        raise AdminSecretFormatError(f'"http.{name}.path" uses an unknown placeholder (allowed: {allowed})')
    return path


def _field_path(section: Mapping[str, Any], key: str, name: str, default: str | None = None) -> str:
    value = section.get(key, default)
    if not isinstance(value, str) or (not value and default is None):
        raise AdminSecretFormatError(
            f'"http.{name}.{key}" must be a dotted path into the JSON response, e.g. "data.id"'
        )
    return value


def _auth(config: Mapping[str, Any], name: str, fallback: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    auth = config.get(name, fallback)
    if not isinstance(auth, dict) or auth.get("scheme") not in _SCHEMES:
        raise AdminSecretFormatError(f'"http.{name}.scheme" must be one of: {", ".join(sorted(_SCHEMES))}')
    if auth["scheme"] == "header" and not (isinstance(auth.get("header"), str) and _HEADER.match(auth["header"])):
        raise AdminSecretFormatError(f'"http.{name}.header" must name the header that carries the key')
    return auth


def _fill(template: Any, name: str) -> Any:
    if isinstance(template, str):
        return template.replace("{name}", name)
    if isinstance(template, dict):
        return {key: _fill(value, name) for key, value in template.items()}
    if isinstance(template, list):
        return [_fill(item, name) for item in template]
    return template


class GenericHttpProvider(base.HttpProviderBase):
    name = "http"
    display_name = "HTTP provider"

    def _configure(self, admin: Mapping[str, Any]) -> None:
        description = admin.get("http")
        if not isinstance(description, dict):
            raise AdminSecretFormatError(
                'an admin secret with "provider": "http" needs an "http" object describing the create, list, '
                "revoke and verify requests (see the README)"
            )
        admin_auth = _auth(description, "auth")
        self._key_auth = _auth(description, "key_auth", admin_auth)
        self._admin_headers = self._headers(
            admin_auth,
            base.admin_field(admin, "username", "HTTP") if admin_auth["scheme"] == "basic" else "",
            base.admin_field(admin, "password" if admin_auth["scheme"] == "basic" else "api_key", "HTTP"),
        )
        create, listing = _section(description, "create"), _section(description, "list")
        revoke, verify = _section(description, "revoke"), _section(description, "verify")
        body = create.get("body", {"name": "{name}"})
        self._create = (_method(create, "create", "POST"), _path(create, "create"), body)
        self._create_value = _field_path(create, "value_path", "create")
        self._create_id = _field_path(create, "id_path", "create")
        self._list = (_method(listing, "list", "GET"), _path(listing, "list"))
        self._list_items = _field_path(listing, "items_path", "list", "")
        self._list_name = _field_path(listing, "name_path", "list", "name")
        self._list_id = _field_path(listing, "id_path", "list", "id")
        self._revoke = (_method(revoke, "revoke", "DELETE"), _path(revoke, "revoke", frozenset({"id"})))
        self._verify = (_method(verify, "verify", "GET"), _path(verify, "verify"))
        self._verify_id = _field_path(verify, "id_path", "verify", "") or None
        if self._verify_id is None and not isinstance(create.get("body"), dict):
            raise AdminSecretFormatError(
                'the admin secret\'s "http.create.body" is missing: without "http.verify.id_path" nothing ties a '
                "key value to its id, so the new key's privileges must come from the admin secret alone. Write the "
                'create request\'s body with the privileges the rotated keys need (e.g. {"name": "{name}", '
                '"scopes": [...]}), or name where the verify answer says the key id ("http.verify.id_path")'
            )

    @staticmethod
    def _headers(auth: Mapping[str, Any], user: str, value: str) -> dict[str, str]:
        if auth["scheme"] == "basic":
            return {"Authorization": basic_auth(user, value)}
        if auth["scheme"] == "header":
            return {str(auth["header"]): value}
        return {"Authorization": "Bearer " + value}

    def _all_keys(self) -> list[base.KeyRef]:
        method, path = self._list
        data = self._ask_as_admin(method, path, _HINT)
        return self._page_keys(
            data, method, path, items_path=self._list_items, id_path=self._list_id, name_path=self._list_name,
            name_prefix="",
        )[1]  # fmt: skip

    def find(self, name_prefix: str) -> list[base.KeyRef]:
        return [key for key in self._all_keys() if key.name.startswith(name_prefix)]

    def lookup(self, key_id: str) -> base.KeyRecord | None:
        found = next((key for key in self._all_keys() if key.id == key_id), None)
        return None if found is None else base.KeyRecord(id=key_id, name=found.name)

    def issue(self, name: str, template: Mapping[str, Any]) -> base.IssuedKey:
        method, path, body = self._create
        response = self._send_as_admin(method, path, json_body=_fill(body, name))
        if not response.ok:
            raise error_for(self.display_name, method, path, response, _HINT)
        data = response.json()
        value, key_id = base.dig(data, self._create_value), base.dig(data, self._create_id)
        if isinstance(key_id, int):
            key_id = str(key_id)
        if not isinstance(value, str) or not isinstance(key_id, str) or not value or not key_id:
            raise self._malformed(method, path, f'the key at "{self._create_value}" and its id at "{self._create_id}"')
        return base.IssuedKey(id=key_id, value=value, fields={self.value_field: value, self.id_field: key_id})

    def verify(self, key: base.StoredKey) -> base.Verdict:
        method, path = self._verify
        accepted, data = self._ask_with_key(
            method, path, _HINT, headers=self._headers(self._key_auth, key.id, key.value)
        )
        if not accepted:
            return base.Verdict(valid=False)
        if self._verify_id is None:
            return base.Verdict(valid=True)
        named = base.dig(data, self._verify_id)
        return base.Verdict(valid=True, key_id=str(named) if isinstance(named, str | int) and named != "" else None)

    def revoke(self, key_id: str) -> bool:
        method, path = self._revoke
        return self._delete_key(path, key_id, _HINT, method=method)
