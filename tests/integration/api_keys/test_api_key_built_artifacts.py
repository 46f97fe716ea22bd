"""The API-key function as `sam build` produced it rotates keys at a fake provider under Python 3.13."""

from __future__ import annotations

from typing import Any

from integration.api_keys.support import value_at
from integration.built import Build, run_built
from rotation_local import service


def test_built_api_key_two_rotations_keep_two_valid_keys(
    build: Build, sm_env: dict[str, str], api_key_env: dict[str, str], sm_client: Any, make_fake: Any,
    api_key_secret: Any,
) -> None:  # fmt: skip
    fake = make_fake("datadog")
    secret = api_key_secret(fake)
    first_key = value_at(sm_client, secret.arn, "AWSCURRENT")["api_key"]
    step = run_built(build, "ApiKeyFunction", {**sm_env, **api_key_env})

    service.rotate(secret.arn, step)
    second_key = value_at(sm_client, secret.arn, "AWSCURRENT")["api_key"]
    service.rotate(secret.arn, step)
    third_key = value_at(sm_client, secret.arn, "AWSCURRENT")["api_key"]

    assert fake.is_valid(third_key)
    assert fake.is_valid(second_key)
    assert not fake.is_valid(first_key)  # two generations old: revoked by the second rotation
    assert len(fake.live_keys()) == 2
