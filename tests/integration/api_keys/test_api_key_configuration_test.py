"""Secrets Manager's configuration test (RotateImmediately=false) on the API-key function, every provider.

testSecret alone on a transient version (no value, or a copy of AWSCURRENT) proves what createSecret
would prove before minting — the admin secret reaches the provider, which accepts the current key and
ties it to the admin's account — and mints, revokes and stores nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from integration.api_keys.support import PROVIDERS, ApiKeySecret
from integration.support import stages
from rotation_core.errors import Category, ConfigurationTestError
from rotation_local import service
from rotation_local.fake_providers import FakeProviderServer

BOTH = pytest.mark.parametrize("copy_current", [False, True], ids=["no-value", "copy-of-current"])


@BOTH
@pytest.mark.parametrize("kind", PROVIDERS)
def test_api_key_configuration_test_working_setup_passes_mints_nothing(
    kind: str,
    copy_current: bool,
    make_fake: Callable[..., FakeProviderServer],
    api_key_secret: Callable[..., ApiKeySecret],
    api_key_function: Any,
    sm_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = make_fake(kind)
    secret = api_key_secret(fake)
    keys_before = [(key.id, key.revoked) for key in fake.keys]
    versions_before = stages(sm_client, secret.arn)
    app = api_key_function()

    service.configuration_test(secret.arn, lambda e: app.lambda_handler(dict(e), None), copy_current=copy_current)

    assert [(key.id, key.revoked) for key in fake.keys] == keys_before  # nothing minted, nothing revoked
    assert stages(sm_client, secret.arn) == versions_before
    assert "checked: the admin secret reaches" in caplog.text
    assert "configuration test passed; nothing was changed" in caplog.text


@BOTH
def test_api_key_configuration_test_current_key_revoked_fails_clearly_mints_nothing(
    copy_current: bool,
    make_fake: Callable[..., FakeProviderServer],
    api_key_secret: Callable[..., ApiKeySecret],
    api_key_function: Any,
    sm_client: Any,
) -> None:
    fake = make_fake("datadog")
    secret = api_key_secret(fake)
    for key in fake.keys:
        key.revoked = True  # someone revoked the key in the provider's console
    app = api_key_function()

    with pytest.raises(ConfigurationTestError, match="does not accept the current secret's key") as raised:
        service.configuration_test(secret.arn, lambda e: app.lambda_handler(dict(e), None), copy_current=copy_current)

    assert raised.value.category is Category.CONFUSED_DEPUTY
    assert fake.count("POST", "") == 0
