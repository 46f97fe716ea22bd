"""Valkey/Redis rotations through each reach: both passwords log in until the next rotation, never three."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest

from integration.support import Account, rotate, secret_at, unique
from rotation_core.errors import Category, RotationError
from rotation_local import emulator
from rotation_local.targets.valkey import TARGET, ValkeyServer
from rotation_local.valkey_emulator import digest


def test_valkey_rotation_current_and_previous_log_in_older_refused(
    valkey_server: ValkeyServer, account: Account, valkey_function: Any, sm_client: Any,
    ca_bundle: Any,
) -> None:  # fmt: skip
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


@pytest.mark.servers("redis-7", "valkey-8")
def test_valkey_self_managed_master_that_cannot_save_fails_until_it_can_then_the_change_is_in_the_acl_file(
    valkey_server: ValkeyServer, valkey_account: Callable[..., Account], valkey_function: Any, sm_client: Any,
    leak_guard: Any,
) -> None:  # fmt: skip
    name, password = unique("nosave")[:20], secrets.token_urlsafe(24)
    leak_guard.add(password)
    TARGET.create_master(valkey_server, name, password)
    valkey_server.command("ACL", "SETUSER", name, "-acl|save")
    value = TARGET.secret(valkey_server, name, password)
    master = sm_client.create_secret(Name=unique("nosave"), SecretString=json.dumps(value))["ARN"]
    account = valkey_account(masterarn=master)
    app = valkey_function(ROTATION_STRATEGY="dual_password")
    token = emulator.stage_pending_placeholder(account.arn)

    with pytest.raises(RotationError) as raised:
        rotate(app, account.arn, token=token)

    assert raised.value.category is Category.PERMISSION
    assert "acl|save" in raised.value.message
    valkey_server.command("ACL", "SETUSER", name, "+acl|save")
    rotate(app, account.arn, token=token)  # the retry: the passwords were set already, now they are saved
    saved = (valkey_server.workdir / "users.acl").read_text()
    assert digest(secret_at(sm_client, account.arn, "AWSCURRENT")["password"]) in saved  # survives a restart
    assert digest(secret_at(sm_client, account.arn, "AWSPREVIOUS")["password"]) in saved
