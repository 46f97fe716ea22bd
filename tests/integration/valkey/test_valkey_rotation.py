"""Valkey/Redis rotations through each reach: both passwords log in until the next rotation, never three."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from integration.support import Account, rotate, secret_at
from rotation_local.targets.valkey import ValkeyServer
from rotation_local.valkey_emulator import digest


def test_valkey_rotation_current_and_previous_log_in_older_refused(
    valkey_server: ValkeyServer, valkey_account: Callable[..., Account], valkey_function: Any, sm_client: Any,
    ca_bundle: Any,
) -> None:  # fmt: skip
    from rotation_local.targets.valkey import TARGET

    account = valkey_account()
    app = valkey_function(ROTATION_STRATEGY="dual_password")
    first = secret_at(sm_client, account.arn, "AWSCURRENT")

    rotate(app, account.arn)
    second = secret_at(sm_client, account.arn, "AWSCURRENT")
    rotate(app, account.arn)
    third = secret_at(sm_client, account.arn, "AWSCURRENT")

    assert TARGET.logs_in(valkey_server, third, ca_bundle)
    assert TARGET.logs_in(valkey_server, second, ca_bundle)
    assert not TARGET.logs_in(valkey_server, first, ca_bundle)
    assert valkey_server.passwords_of(account.username) == {digest(second["password"]), digest(third["password"])}
