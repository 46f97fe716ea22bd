"""API-key rotations end to end: the real function, fake providers over HTTP, Secrets Manager over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from integration.api_keys.support import ID_FIELD, PROVIDERS, VALUE_FIELD, FakeAndSecret, rotate, value_at
from integration.support import stages


@pytest.mark.parametrize("kind", PROVIDERS)
def test_rotation_three_in_a_row_keeps_current_and_previous_keys_valid(
    kind: str, fake_and_secret: FakeAndSecret, api_key_function: Any, sm_client: Any
) -> None:
    fake, secret = fake_and_secret(kind)
    app = api_key_function()
    value, key_id = VALUE_FIELD[kind], ID_FIELD[kind]
    generations = [value_at(sm_client, secret.arn, "AWSCURRENT")]
    admin_before = value_at(sm_client, secret.admin_arn, "AWSCURRENT")

    # SendGrid cannot tie a key's value to its id, so the console-made first key, not named for this
    # secret, is never revoked by the function (a warning names it); every other provider's is.
    kept_by_hand = {generations[0][key_id]} if kind == "sendgrid" else set()
    for _ in range(3):
        token = rotate(app, secret.arn)
        current = value_at(sm_client, secret.arn, "AWSCURRENT")
        generations.append(current)
        assert stages(sm_client, secret.arn)[token] == ["AWSCURRENT"]
        assert value_at(sm_client, secret.arn, "AWSPREVIOUS") == generations[-2]
        # Exactly the current and the previous key are valid; every older one is revoked.
        assert fake.is_valid(current[value])
        assert fake.is_valid(generations[-2][value])
        assert all(not fake.is_valid(old[value]) for old in generations[:-2] if old[key_id] not in kept_by_hand)
        live = {key.id for key in fake.live_keys()}
        assert live - kept_by_hand == {current[key_id], generations[-2][key_id]} - kept_by_hand
        assert {k: v for k, v in current.items() if k not in (value, key_id)} == {
            k: v for k, v in generations[0].items() if k not in (value, key_id)
        }

    assert len({g[value] for g in generations}) == 4
    assert fake.count("POST", "") == 3  # one key minted per rotation
    assert value_at(sm_client, secret.admin_arn, "AWSCURRENT") == admin_before
    assert len(sm_client.list_secret_version_ids(SecretId=secret.admin_arn)["Versions"]) == 1


def test_fake_access_log_shows_routes_and_no_key_material(
    fake_and_secret: FakeAndSecret, api_key_function: Any
) -> None:
    fake, secret = fake_and_secret("datadog")
    app = api_key_function()
    rotate(app, secret.arn)
    rotate(app, secret.arn)

    log = fake.access_log_path.read_text(encoding="utf-8")
    assert '"DELETE /api/v2/api_keys/{id}" 204' in log
    assert '"GET /api/v1/validate" 200' in log
    secrets_seen = [key.value for key in fake.keys] + [key.id for key in fake.keys] + fake.admin_values()
    assert not [value for value in secrets_seen if value in log]
