"""Helpers shared by the API-key integration tests (the fixtures are in this folder's conftest)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rotation_local import service
from rotation_local.fake_providers import FakeProviderServer

PROVIDERS = ("datadog", "sendgrid", "twilio", "cloudflare")
# Settings that keep the tests quick: no real waiting between verification checks.
FAST_ENV = {"API_VERIFY_DELAY": "0", "API_TIMEOUT": "5", "REVOKE_POLICY": "previous_at_next_rotation"}


@dataclass
class ApiKeySecret:
    arn: str
    admin_arn: str
    fake: FakeProviderServer


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
