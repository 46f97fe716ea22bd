"""ElastiCache and MemoryDB users: AWS's secret format, a change still being applied, a secret with no endpoint.

The emulator applies a change to the real server only when the service reports the user ``active`` again
(``modifying_describes``): a function that logged in before that would be refused, so these rotations passing prove
the waits. A secret in AWS's own format (``user_arn``, ``username``, no password yet, no endpoint) rotates too, and
its testSecret says that it could not log in.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from integration.support import Account, rotate, secret_at
from rotation_core.errors import Category, RotationError
from rotation_local import emulator, valkey_emulator
from rotation_local.targets.valkey import TARGET, ValkeyServer
from rotation_local.valkey_emulator import digest

pytestmark = pytest.mark.servers("*-elasticache", "*-memorydb")
NO_PAUSE = {"ROTATION_STRATEGY": "dual_password", "WAITING_RETRY_INTERVAL_IN_SECONDS": "0"}


def user_arn(sm_client: Any, account: Account) -> str:
    arn: str = secret_at(sm_client, account.arn, "AWSCURRENT")["user_arn"]
    return arn


@pytest.mark.verifies("dual_password")
def test_valkey_managed_change_applied_late_rotation_waits_for_active_then_logs_in(
    valkey_server: ValkeyServer, account: Account, valkey_function: Any, sm_client: Any,
    ca_bundle: Any, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    valkey_emulator.place(user_arn(sm_client, account), valkey_server, account.username, modifying_describes=3)
    old = secret_at(sm_client, account.arn, "AWSCURRENT")

    rotate(valkey_function(**NO_PAUSE), account.arn)

    new = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert "is modifying; waiting for it to be active" in caplog.text
    assert "the AWSPENDING credentials log in and pass the probe" in caplog.text
    assert TARGET.logs_in(valkey_server, new, ca_bundle)
    assert TARGET.logs_in(valkey_server, old, ca_bundle)
    assert valkey_emulator.user_status(user_arn(sm_client, account)) == "active"


def test_valkey_managed_user_stuck_modifying_fails_verification_keeps_current(
    valkey_server: ValkeyServer, account: Account, valkey_function: Any, sm_client: Any,
    ca_bundle: Any,
) -> None:  # fmt: skip
    arn = user_arn(sm_client, account)
    valkey_emulator.place(arn, valkey_server, account.username, modifying_describes=10_000)
    old = secret_at(sm_client, account.arn, "AWSCURRENT")
    app = valkey_function(MAX_WAITING_TIME_FOR_ACTIVE_IN_SECONDS="1", **NO_PAUSE)

    with pytest.raises(RotationError) as raised:
        rotate(app, account.arn)

    assert raised.value.category is Category.VERIFICATION
    assert "MAX_WAITING_TIME_FOR_ACTIVE_IN_SECONDS" in raised.value.message
    assert secret_at(sm_client, account.arn, "AWSCURRENT") == old
    assert TARGET.logs_in(valkey_server, old, ca_bundle)
    emulator.drop_pending(account.arn)
    valkey_emulator.place(arn, valkey_server, account.username)


@pytest.mark.verifies("dual_password")
def test_valkey_managed_aws_format_secret_without_password_or_endpoint_rotates_twice(
    valkey_server: ValkeyServer, account: Account, valkey_function: Any, sm_client: Any,
    ca_bundle: Any, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    arn = user_arn(sm_client, account)
    aws_format = {"user_arn": arn, "username": account.username}  # what AWS's guide stores before the first rotation
    sm_client.put_secret_value(SecretId=account.arn, SecretString=json.dumps(aws_format))
    app = valkey_function(**NO_PAUSE)

    rotate(app, account.arn)
    first = secret_at(sm_client, account.arn, "AWSCURRENT")
    rotate(app, account.arn)
    second = secret_at(sm_client, account.arn, "AWSCURRENT")

    assert set(first) == set(second) == {"user_arn", "username", "password"}
    assert "the new password was not tried in a login" in caplog.text
    endpoint = {"host": "127.0.0.1", "port": valkey_server.port}
    assert TARGET.logs_in(valkey_server, {**second, **endpoint}, ca_bundle)
    assert TARGET.logs_in(valkey_server, {**first, **endpoint}, ca_bundle)
    assert valkey_server.passwords_of(account.username) == {digest(first["password"]), digest(second["password"])}
