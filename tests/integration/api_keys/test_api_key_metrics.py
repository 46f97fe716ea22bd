"""API-key rotation metrics: the EMF documents of a preflight and a rotation at a fake provider name the provider."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import emf_documents, lambda_context
from integration.api_keys.support import FakeAndSecret
from rotation_local import emulator, service


def test_metrics_api_key_rotation_target_is_the_provider(
    fake_and_secret: FakeAndSecret,
    api_key_function: Any,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METRICS_DEPLOYMENT", "rotation-stack")
    _fake, secret = fake_and_secret("datadog")
    app = api_key_function()
    context = lambda_context()  # the function the emulator attaches

    report = app.lambda_handler({"Preflight": {"SecretId": secret.arn}}, context)
    service.rotate(secret.arn, lambda event: app.lambda_handler(dict(event), context))

    out = capfd.readouterr().out
    print(out, end="")
    documents = emf_documents(out)
    assert report["ok"] is True
    (preflight,) = [d for d in documents if "PreflightPassed" in d]
    assert (preflight["FunctionName"], preflight["Target"]) == (emulator.LOCAL_FUNCTION, "datadog")
    assert [d["Target"] for d in documents if "StepSucceeded" in d] == ["datadog"] * 4
    assert [d["Target"] for d in documents if "RotationCompleted" in d] == ["datadog"]
