"""API-key rotations under failure: crashes, retries, revoke failures, throttling, slow and lagging providers."""

from __future__ import annotations

from typing import Any

import pytest

from integration.api_keys.support import FakeAndSecret, Sleeper, rotate, value_at
from integration.support import stages
from rotation_core.api_keys import key_name
from rotation_core.errors import RotationError
from rotation_core.secrets import SecretStore
from rotation_local import emulator, service


class SimulatedCrashError(Exception):
    pass


def test_create_crash_after_mint_before_put_retry_revokes_orphan_and_stores_one_key(
    fake_and_secret: FakeAndSecret, fast_handler: Any, sm_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, secret = fake_and_secret("sendgrid")
    original = value_at(sm_client, secret.arn, "AWSCURRENT")
    handler = fast_handler()
    token = emulator.stage_pending_placeholder(secret.arn)

    def crash(*_args: Any, **_kwargs: Any) -> bool:
        raise SimulatedCrashError("the function died before PutSecretValue")

    with monkeypatch.context() as patch:
        patch.setattr(SecretStore, "put_pending", crash)
        with pytest.raises(RotationError):
            handler(service.event("createSecret", secret.arn, token))
    name = key_name(secret.arn, token)
    assert [key.revoked for key in fake.keys_named(name)] == [False]  # minted, never stored: an orphan for now

    rotate(handler, secret.arn, token=token)

    named = fake.keys_named(name)
    assert [key.revoked for key in named] == [True, False]  # the orphan is revoked, its successor lives
    current = value_at(sm_client, secret.arn, "AWSCURRENT")
    assert current["api_key_id"] == named[1].id
    assert {key.id for key in fake.live_keys()} == {original["api_key_id"], named[1].id}


def test_create_retried_after_put_mints_no_second_key(fake_and_secret: FakeAndSecret, fast_handler: Any) -> None:
    fake, secret = fake_and_secret("datadog")
    handler = fast_handler()
    token = emulator.stage_pending_placeholder(secret.arn)

    handler(service.event("createSecret", secret.arn, token))
    handler(service.event("createSecret", secret.arn, token))
    rotate(handler, secret.arn, token=token)

    assert fake.count("POST", "/api/v2/api_keys") == 1
    assert len(fake.live_keys()) == 2


def test_rotation_abandoned_after_mint_next_rotation_revokes_its_key(
    fake_and_secret: FakeAndSecret, fast_handler: Any, sm_client: Any
) -> None:
    fake, secret = fake_and_secret("cloudflare")
    original = value_at(sm_client, secret.arn, "AWSCURRENT")
    fake.invisible_for = 100  # the new key never verifies: the rotation fails at testSecret
    handler = fast_handler(API_VERIFY_ATTEMPTS="2")
    with pytest.raises(RotationError, match="still refuses the AWSPENDING key"):
        rotate(handler, secret.arn)
    emulator.drop_pending(secret.arn)  # the operator gives up on that rotation
    fake.invisible_for = 0

    rotate(handler, secret.arn)

    current = value_at(sm_client, secret.arn, "AWSCURRENT")
    assert {key.id for key in fake.live_keys()} == {original["api_token_id"], current["api_token_id"]}


@pytest.mark.parametrize("policy", ["previous_at_finish", "previous_at_next_rotation"])
def test_revoke_failure_rotation_succeeds_and_failure_is_logged(
    policy: str, fake_and_secret: FakeAndSecret, fast_handler: Any, sm_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake, secret = fake_and_secret("datadog")
    handler = fast_handler(REVOKE_POLICY=policy)
    if policy == "previous_at_next_rotation":
        rotate(handler, secret.arn)  # the revocation happens in the rotation after this one
    replaced = value_at(sm_client, secret.arn, "AWSPREVIOUS" if policy != "previous_at_finish" else "AWSCURRENT")
    fake.fail_next(500, method="DELETE", times=10, body={"errors": ["backend down"]})

    token = rotate(handler, secret.arn)

    assert stages(sm_client, secret.arn)[token] == ["AWSCURRENT"]
    assert fake.is_valid(replaced["api_key"])  # not revoked: the provider failed
    failures = [r for r in caplog.records if getattr(r, "revoke_failed", False)]
    assert len(failures) == 1
    assert failures[0].levelname == "WARNING"
    assert "could not revoke" in failures[0].getMessage()
    assert "500" in failures[0].getMessage()


def test_revoke_policy_previous_at_finish_leaves_one_valid_key(
    fake_and_secret: FakeAndSecret, fast_handler: Any, sm_client: Any
) -> None:
    fake, secret = fake_and_secret("twilio")
    handler = fast_handler(REVOKE_POLICY="previous_at_finish")
    for _ in range(2):
        rotate(handler, secret.arn)
        current = value_at(sm_client, secret.arn, "AWSCURRENT")
        assert [key.id for key in fake.live_keys()] == [current["api_key_sid"]]


def test_revoke_policy_never_keeps_every_key(fake_and_secret: FakeAndSecret, fast_handler: Any) -> None:
    fake, secret = fake_and_secret("sendgrid")
    handler = fast_handler(REVOKE_POLICY="never")
    for _ in range(3):
        rotate(handler, secret.arn)
    assert len(fake.live_keys()) == 4
    assert fake.count("DELETE", "") == 0


def test_revoke_already_deleted_key_404_counts_as_done(
    fake_and_secret: FakeAndSecret, fast_handler: Any, sm_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake, secret = fake_and_secret("cloudflare")
    handler = fast_handler()
    rotate(handler, secret.arn)
    previous = value_at(sm_client, secret.arn, "AWSPREVIOUS")
    fake.key_by_value(previous["api_token"]).revoked = True  # type: ignore[union-attr]  # deleted by hand

    rotate(handler, secret.arn)

    messages = [r.getMessage() for r in caplog.records]
    assert any("already gone" in m for m in messages)
    assert not any(getattr(r, "revoke_failed", False) for r in caplog.records)


def test_http_429_with_retry_after_waits_as_told_and_mints_once(
    fake_and_secret: FakeAndSecret, fast_handler: Any, sleeper: Sleeper
) -> None:
    fake, secret = fake_and_secret("datadog")
    fake.fail_next(429, method="POST", route="/api/v2/api_keys", retry_after="7", times=2)

    rotate(fast_handler(), secret.arn)

    assert sleeper.waits[:2] == [7.0, 7.0]
    assert fake.count("POST", "/api/v2/api_keys") == 3  # two refused, one created
    assert len(fake.live_keys()) == 2


def test_http_5xx_on_idempotent_calls_retried_with_backoff(
    fake_and_secret: FakeAndSecret, fast_handler: Any, sleeper: Sleeper, sm_client: Any
) -> None:
    fake, secret = fake_and_secret("sendgrid")
    fake.fail_next(503, method="GET", route="/v3/api_keys", times=2)
    fake.fail_next(502, method="GET", route="/v3/scopes", times=1)

    token = rotate(fast_handler(), secret.arn)

    assert stages(sm_client, secret.arn)[token] == ["AWSCURRENT"]
    assert len(sleeper.waits) == 3
    # createSecret's binding check: one retry of GET /v3/scopes, then two of the key lookup, whose second
    # wait is the longer (exponential backoff; the first waits of two requests are in random order).
    assert sleeper.waits[1] < sleeper.waits[2]


def test_http_5xx_on_create_not_retried_then_retry_cleans_up(fake_and_secret: FakeAndSecret, fast_handler: Any) -> None:
    fake, secret = fake_and_secret("datadog")
    handler = fast_handler()
    fake.fail_next(500, method="POST", route="/api/v2/api_keys", body={"errors": ["oops"], "api_key": "x" * 32})
    token = emulator.stage_pending_placeholder(secret.arn)
    with pytest.raises(RotationError, match="returned 500"):
        handler(service.event("createSecret", secret.arn, token))
    assert fake.count("POST", "/api/v2/api_keys") == 1  # a mint is never blindly repeated

    rotate(handler, secret.arn, token=token)

    assert len(fake.live_keys()) == 2


def test_http_slow_response_times_out_and_is_retried(
    fake_and_secret: FakeAndSecret, fast_handler: Any, sm_client: Any
) -> None:
    fake, secret = fake_and_secret("cloudflare")
    fake.slow_next(1.0, method="GET", route="/user/tokens/verify")

    token = rotate(fast_handler(timeout=0.3), secret.arn)

    assert stages(sm_client, secret.arn)[token] == ["AWSCURRENT"]
    # createSecret's binding check timed out once and was retried; testSecret verified the new token.
    assert fake.count("GET", "/user/tokens/verify") == 3


def test_test_secret_new_key_visible_late_verified_after_retries(
    fake_and_secret: FakeAndSecret, fast_handler: Any, sleeper: Sleeper, sm_client: Any
) -> None:
    fake, secret = fake_and_secret("twilio")
    fake.invisible_for = 3

    token = rotate(fast_handler(API_VERIFY_ATTEMPTS="5", API_VERIFY_DELAY="2"), secret.arn)

    assert stages(sm_client, secret.arn)[token] == ["AWSCURRENT"]
    assert sleeper.waits == [2.0, 2.0, 2.0]


def test_test_secret_key_never_visible_fails_and_changes_nothing(
    fake_and_secret: FakeAndSecret, fast_handler: Any, sm_client: Any
) -> None:
    fake, secret = fake_and_secret("datadog")
    original = value_at(sm_client, secret.arn, "AWSCURRENT")
    fake.invisible_for = 10

    with pytest.raises(RotationError, match="API_VERIFY_ATTEMPTS"):
        rotate(fast_handler(API_VERIFY_ATTEMPTS="3"), secret.arn)

    assert value_at(sm_client, secret.arn, "AWSCURRENT") == original
    assert fake.is_valid(original["api_key"])


def test_key_limit_reached_create_fails_with_clear_error(fake_and_secret: FakeAndSecret, fast_handler: Any) -> None:
    fake, secret = fake_and_secret("sendgrid")  # SendGrid's limit: 100 keys per account
    for number in range(99):
        fake.create_key(f"someone-else-{number}")

    with pytest.raises(RotationError, match="already holds 100 keys, SendGrid's limit") as caught:
        rotate(fast_handler(), secret.arn)

    assert "Delete unused keys" in str(caught.value)
    assert len(fake.live_keys()) == 100


def test_config_test_without_create_test_secret_tests_configuration_mints_nothing(
    fake_and_secret: FakeAndSecret, fast_handler: Any, sm_client: Any
) -> None:
    fake, secret = fake_and_secret("datadog")
    token = emulator.stage_pending_placeholder(secret.arn)

    fast_handler()(service.event("testSecret", secret.arn, token))

    assert fake.count("POST", "") == 0
    assert stages(sm_client, secret.arn)[token] == ["AWSPENDING"]
