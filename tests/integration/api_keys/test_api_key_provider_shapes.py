"""Rotations that hold only with the providers' real shapes (issue #21), through the handler over TLS.

Cloudflare: a token's policies come back with read-only ids, which a create may not send; its list pages
carry ``count``/``page``/``per_page``/``total_count`` and no page count; an expiring token is replaced by
one with no longer a lifetime. Twilio: restricted keys and subaccount keys pass the binding proof, a key of
another account does not. Every fake holds its exchanges to the provider's definition (the fixtures fail a
test that breaks it).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest

from integration.api_keys.support import ApiKeySecret, rotate, value_at
from integration.support import stages, unique
from rotation_core.api_keys import key_name_prefix
from rotation_core.errors import Category, RotationError
from rotation_local import emulator, service
from rotation_local.fake_providers import FakeProviderServer

Fake = Callable[..., FakeProviderServer]
Secret = Callable[..., ApiKeySecret]
MESSAGES_PATH = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
READ_MESSAGES = {"allow": ["/twilio/messaging/messages/read"]}


def parse(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp)


def test_rotation_cloudflare_sends_no_policy_ids_and_keeps_an_expiry_no_longer_than_the_current_tokens(
    make_fake: Fake, api_key_secret: Secret, fast_handler: Any, sm_client: Any
) -> None:
    fake = make_fake("cloudflare")
    issued, expires = dt.datetime.now(dt.UTC) - dt.timedelta(days=10), dt.datetime.now(dt.UTC) + dt.timedelta(days=20)
    current = fake.create_key("expiring", issued_on=issued.strftime("%Y-%m-%dT%H:%M:%SZ"))
    current.extra["expires_on"] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    secret = api_key_secret(fake, **fake.key_fields(current))
    assert "id" in fake.token(current)["policies"][0]  # what GET /user/tokens/{id} answers, ids included

    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    rotate(fast_handler(), secret.arn)

    new = fake.key_by_value(value_at(sm_client, secret.arn, "AWSCURRENT")["api_token"])
    assert new is not None
    assert all("id" not in policy for policy in new.extra["policies"])  # sent without the read-only ids
    lifetime = parse(current.extra["expires_on"]) - parse(current.extra["issued_on"])  # thirty days
    assert (
        before + lifetime - dt.timedelta(seconds=5)
        <= parse(new.extra["expires_on"])
        <= before + lifetime + (dt.timedelta(seconds=60))
    )


def test_rotation_cloudflare_admin_lifetime_replaces_a_token_that_never_expires(
    make_fake: Fake, api_key_secret: Secret, fast_handler: Any, sm_client: Any
) -> None:
    fake = make_fake("cloudflare")
    secret = api_key_secret(fake, admin=fake.admin_secret(lifetime_days=90))

    rotate(fast_handler(), secret.arn)

    new = fake.key_by_value(value_at(sm_client, secret.arn, "AWSCURRENT")["api_token"])
    assert new is not None
    days = (parse(new.extra["expires_on"]) - dt.datetime.now(dt.UTC)).total_seconds() / 86400
    assert 89.9 < days <= 90


def test_rotation_cloudflare_finds_tokens_of_earlier_attempts_beyond_the_first_page(
    make_fake: Fake, api_key_secret: Secret, fast_handler: Any, sm_client: Any
) -> None:
    fake = make_fake("cloudflare")
    secret = api_key_secret(fake)
    for number in range(70):  # two pages of someone else's tokens first (50 a page)
        fake.create_key(f"someone-else-{number}")
    stale = fake.create_key(key_name_prefix(secret.arn) + "an-attempt-that-never-finished")

    rotate(fast_handler(), secret.arn)

    assert not fake.is_valid(stale.value)  # found on the second page and revoked
    assert fake.count("GET", "/user/tokens") >= 2
    assert len([key for key in fake.live_keys() if key.name.startswith("someone-else-")]) == 70


def test_rotation_twilio_restricted_key_rotates_with_the_admin_secrets_verify_path(
    make_fake: Fake, api_key_secret: Secret, fast_handler: Any, sm_client: Any
) -> None:
    fake = make_fake("twilio")
    restricted = fake.create_key("restricted", key_type="restricted", policy=READ_MESSAGES)
    secret = api_key_secret(fake, admin=fake.admin_secret(verify_path=MESSAGES_PATH), **fake.key_fields(restricted))
    handler = fast_handler()

    for _ in range(3):
        token = rotate(handler, secret.arn)
        assert stages(sm_client, secret.arn)[token] == ["AWSCURRENT"]

    current = fake.key_by_value(value_at(sm_client, secret.arn, "AWSCURRENT")["api_key_secret"])
    assert current is not None
    assert (current.extra["key_type"], current.extra["policy"]) == ("restricted", READ_MESSAGES)
    assert not fake.is_valid(restricted.value)  # tied to its sid, so revoked two rotations later
    assert fake.count("GET", "/Applications.json") == 0  # the admin secret's request, not the default one


def test_rotation_twilio_restricted_key_without_verify_path_refused_with_what_to_add(
    make_fake: Fake, api_key_secret: Secret, fast_handler: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake = make_fake("twilio")
    restricted = fake.create_key("restricted", key_type="restricted", policy=READ_MESSAGES)
    secret = api_key_secret(fake, **fake.key_fields(restricted))
    token = emulator.stage_pending_placeholder(secret.arn)

    with pytest.raises(RotationError) as caught:
        fast_handler()(service.event("createSecret", secret.arn, token))

    assert caught.value.category is Category.CONFUSED_DEPUTY
    assert '"verify_path"' in caught.value.message
    assert fake.count("POST", "") == 0


def test_rotation_twilio_subaccount_key_rotates_with_the_subaccounts_admin_secret(
    make_fake: Fake, api_key_secret: Secret, fast_handler: Any, sm_client: Any
) -> None:
    fake = make_fake("twilio")
    subaccount = fake.add_account(parent=fake.account)
    key = fake.create_key("subaccount-key", account=subaccount)
    secret = api_key_secret(fake, admin=fake.admin_secret(subaccount), **fake.key_fields(key))

    for _ in range(2):
        rotate(fast_handler(), secret.arn)

    current = value_at(sm_client, secret.arn, "AWSCURRENT")
    assert current["account_sid"] == subaccount.account_sid
    assert {k.id for k in fake.live_keys(subaccount)} >= {current["api_key_sid"]}
    assert not [k for k in fake.live_keys(fake.account) if k.name.startswith("sm-rotation-")]  # none in the parent


def test_rotation_twilio_key_of_another_account_refused_before_minting(
    make_fake: Fake, sm_client: Any, fast_handler: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake = make_fake("twilio")
    other = fake.add_account()
    foreign = fake.create_key("another-accounts-key", account=other)
    admin_arn = sm_client.create_secret(Name=unique("admin"), SecretString=json.dumps(fake.admin_secret()))["ARN"]
    # The secret claims the admin's account; its key sid and secret are another account's.
    value = {**fake.seed_secret(admin_arn, key=foreign), "account_sid": fake.account.account_sid}
    arn = sm_client.create_secret(Name=unique("apikey"), SecretString=json.dumps(value))["ARN"]
    emulator.enable_rotation(arn)
    token = emulator.stage_pending_placeholder(arn)

    with pytest.raises(RotationError) as caught:
        fast_handler()(service.event("createSecret", arn, token))

    assert caught.value.category is Category.CONFUSED_DEPUTY
    assert fake.count("POST", "") == 0
    assert [key.name for key in fake.live_keys(other)] == ["another-accounts-key"]
