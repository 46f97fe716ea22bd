"""Helpers shared by the API-key integration tests (the fixtures are in this folder's conftest)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from integration.support import unique
from rotation_local import emulator, service
from rotation_local.fake_providers import FakeKey, FakeProviderServer

PROVIDERS = ("datadog", "sendgrid", "twilio", "cloudflare")
#: The rotated secret's fields holding each provider's key value and key id.
VALUE_FIELD = {"datadog": "api_key", "sendgrid": "api_key", "twilio": "api_key_secret", "cloudflare": "api_token"}
ID_FIELD = {"datadog": "api_key_id", "sendgrid": "api_key_id", "twilio": "api_key_sid", "cloudflare": "api_token_id"}
#: SendGrid's API described for the generic ``http`` provider (it goes in the admin secret).
GENERIC_SENDGRID = {
    "auth": {"scheme": "bearer"},
    "create": {"method": "POST", "path": "/v3/api_keys", "body": {"name": "{name}", "scopes": ["mail.send"]},
               "value_path": "api_key", "id_path": "api_key_id"},
    "list": {"path": "/v3/api_keys", "items_path": "result", "name_path": "name", "id_path": "api_key_id"},
    "revoke": {"method": "DELETE", "path": "/v3/api_keys/{id}"},
    "verify": {"method": "GET", "path": "/v3/scopes"},
}  # fmt: skip
# Settings that keep the tests quick: no real waiting between verification checks.
FAST_ENV = {"API_VERIFY_DELAY": "0", "API_TIMEOUT": "5", "REVOKE_POLICY": "previous_at_next_rotation"}


@dataclass
class ApiKeySecret:
    arn: str
    admin_arn: str
    fake: FakeProviderServer


#: The ``fake_and_secret`` fixture: ``fake, secret = fake_and_secret(kind, **fields)``.
FakeAndSecret = Callable[..., tuple[FakeProviderServer, ApiKeySecret]]


class Sleeper:
    """Records the waits it is asked for instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def rotate(handler: Any, arn: str, **kwargs: Any) -> str:
    """One rotation through a handler or a function module (its ``lambda_handler``)."""
    call = getattr(handler, "lambda_handler", handler)
    return service.rotate(arn, lambda event: call(dict(event), None), **kwargs)


def value_at(sm_client: Any, arn: str, stage: str, version_id: str | None = None) -> dict[str, Any]:
    kwargs = {"SecretId": arn, "VersionStage": stage}
    if version_id:
        kwargs["VersionId"] = version_id
    result: dict[str, Any] = json.loads(sm_client.get_secret_value(**kwargs)["SecretString"])
    return result


def generic_sendgrid_secret(sm_client: Any, fake: FakeProviderServer, **extra: Any) -> tuple[str, FakeKey]:
    """A rotated secret of the generic ``http`` provider, whose admin secret describes the SendGrid ``fake``.

    Returns the secret's ARN (rotation enabled) and the console-made key it holds; ``extra`` adds fields
    to the rotated secret.
    """
    admin = {**fake.admin_secret(), "provider": "http", "http": GENERIC_SENDGRID}
    admin_arn = sm_client.create_secret(Name=unique("admin"), SecretString=json.dumps(admin))["ARN"]
    key = fake.create_key()
    value = {"provider": "http", "adminarn": admin_arn, "api_key": key.value, "api_key_id": key.id, **extra}
    arn: str = sm_client.create_secret(Name=unique("apikey"), SecretString=json.dumps(value))["ARN"]
    emulator.enable_rotation(arn)
    return arn, key


def secret_with_unstated_privileges(sm_client: Any, fake: FakeProviderServer, provider: str) -> tuple[str, FakeKey]:
    """A rotated secret whose admin secret states no privileges for the new key, where no value is tied to an id.

    ``provider`` is ``sendgrid`` (its admin secret without ``scopes``) or ``http`` (the generic description of
    the SendGrid ``fake`` without ``create.body``). Returns the secret's ARN (rotation enabled) and its key.
    """
    admin = {k: v for k, v in fake.admin_secret().items() if k != "scopes"}
    if provider == "http":
        create = {k: v for k, v in GENERIC_SENDGRID["create"].items() if k != "body"}
        admin = {**admin, "provider": "http", "http": {**GENERIC_SENDGRID, "create": create}}
    admin_arn = sm_client.create_secret(Name=unique("admin"), SecretString=json.dumps(admin))["ARN"]
    key = fake.create_key()
    value = {"provider": provider, "adminarn": admin_arn, "api_key": key.value, "api_key_id": key.id}
    arn: str = sm_client.create_secret(Name=unique("apikey"), SecretString=json.dumps(value))["ARN"]
    emulator.enable_rotation(arn)
    return arn, key
