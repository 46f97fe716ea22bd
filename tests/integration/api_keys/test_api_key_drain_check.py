"""The drain check of API keys: before a replaced key is revoked, its last use as the provider reports it.

Datadog (``date_last_used``) and Cloudflare (``last_used_on``) report it: a key an application used lately shows
up in ``CredentialStillInUse`` and a warning, and is revoked anyway unless ``DEFER_REVOKE_IF_IN_USE=true``, which
waits one rotation (for keys the function minted: the next rotation finds them again by name). SendGrid reports no
last use: nothing is counted. Each test rotates twice first, so that the key revoked next was minted by the function.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from helpers import emf_documents, lambda_context, log_records
from integration.api_keys.support import VALUE_FIELD, FakeAndSecret, value_at
from rotation_local import service

REPORTING = ["datadog", "cloudflare"]


def rotate(app: Any, arn: str) -> None:
    context = lambda_context()
    service.rotate(arn, lambda event: app.lambda_handler(dict(event), context))


def previous_key_after_two_rotations(fake: Any, secret: Any, app: Any, sm_client: Any, kind: str) -> Any:
    """The AWSPREVIOUS key after two rotations: minted by the function, revoked by the next rotation."""
    rotate(app, secret.arn)
    rotate(app, secret.arn)
    key = fake.key_by_value(value_at(sm_client, secret.arn, "AWSPREVIOUS")[VALUE_FIELD[kind]])
    assert key is not None
    assert key.name.startswith("sm-rotation-")
    return key


def in_use(out: str) -> list[float]:
    return [d["CredentialStillInUse"][0] for d in emf_documents(out) if "CredentialStillInUse" in d]


def drain_warnings(out: str) -> list[dict[str, Any]]:
    return [r for r in log_records(out) if r["level"] == "WARNING" and "drain check" in r["message"]]


@pytest.mark.parametrize("kind", REPORTING)
@pytest.mark.parametrize("defer", [False, True], ids=["revoked-anyway", "deferred"])
def test_api_key_drain_check_recently_used_key_counted_warned_and_revoked_or_deferred(
    kind: str, defer: bool, fake_and_secret: FakeAndSecret, api_key_function: Any, sm_client: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    fake, secret = fake_and_secret(kind)
    app = api_key_function(DEFER_REVOKE_IF_IN_USE=str(defer).lower(), KEY_IN_USE_WITHIN_HOURS="24")
    first = previous_key_after_two_rotations(fake, secret, app, sm_client, kind)
    fake.report_use(first, datetime.now(UTC) - timedelta(hours=2))  # an application that never refreshed
    capfd.readouterr()

    rotate(app, secret.arn)  # its createSecret revokes the key two generations old

    out = capfd.readouterr().out
    print(out, end="")
    assert in_use(out) == [1.0]
    (warning,) = drain_warnings(out)
    assert "was used 2.0 h ago" in warning["message"]
    assert warning["deferred"] is defer
    assert first.revoked is not defer
    if defer:
        rotate(app, secret.arn)  # the next rotation revokes it, whatever its use
        assert first.revoked


@pytest.mark.parametrize("kind", REPORTING)
def test_api_key_drain_check_key_unused_lately_counted_zero_and_revoked(
    kind: str, fake_and_secret: FakeAndSecret, api_key_function: Any, sm_client: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    fake, secret = fake_and_secret(kind)
    app = api_key_function(DEFER_REVOKE_IF_IN_USE="true")
    first = previous_key_after_two_rotations(fake, secret, app, sm_client, kind)
    fake.report_use(first, datetime.now(UTC) - timedelta(days=3))
    capfd.readouterr()

    rotate(app, secret.arn)

    out = capfd.readouterr().out
    print(out, end="")
    assert in_use(out) == [0.0]
    assert drain_warnings(out) == []
    assert first.revoked


def test_api_key_drain_check_provider_without_last_use_counts_nothing(
    fake_and_secret: FakeAndSecret, api_key_function: Any, sm_client: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    fake, secret = fake_and_secret("sendgrid")
    app = api_key_function(DEFER_REVOKE_IF_IN_USE="true")
    first = previous_key_after_two_rotations(fake, secret, app, sm_client, "sendgrid")
    capfd.readouterr()

    rotate(app, secret.arn)

    out = capfd.readouterr().out
    print(out, end="")
    assert in_use(out) == []
    assert "the provider does not report when" in out
    assert first.revoked
