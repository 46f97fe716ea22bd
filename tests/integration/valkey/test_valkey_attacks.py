"""Someone who can edit one rotated secret (PutSecretValue) cannot choose the user the function changes.

Each attack edits the secret's AWSCURRENT value, runs a rotation through the real function module and checks it is
refused before anything changed: the victim's passwords on the real server are the same digests as before (and,
for managed users, the service made no change). ElastiCache/MemoryDB: the user's tag must name this secret and its
name must be the secret's username. Self-managed: the master refuses the default user, itself, nopass users and
privileged users (unless the operator opts in through ALLOW_PRIVILEGED_USERS), and a master of another server.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from integration.support import Account, create_account, rotate, secret_at, unique
from rotation_core.engines.valkey.users import BINDING_TAG
from rotation_core.errors import Category, RotationError
from rotation_local import emulator, valkey_emulator
from rotation_local.server_kinds import ServerKind
from rotation_local.targets.valkey import APP_RULES, SELF_MANAGED, TARGET, ValkeyServer, reach_of

MANAGED = pytest.mark.servers("*-elasticache", "*-memorydb")
SELF = pytest.mark.servers("redis-7", "valkey-8")
ATTACK = pytest.mark.verifies("user_binding")


def edit(sm_client: Any, arn: str, **changes: Any) -> dict[str, Any]:
    """What the attacker does: a new AWSCURRENT value with ``changes`` (None removes a key)."""
    value = {**secret_at(sm_client, arn, "AWSCURRENT"), **changes}
    value = {key: item for key, item in value.items() if item is not None}
    sm_client.put_secret_value(SecretId=arn, SecretString=json.dumps(value))
    return value


def refused(app: Any, arn: str, category: Category = Category.CONFUSED_DEPUTY) -> RotationError:
    with pytest.raises(RotationError) as raised:
        rotate(app, arn)
    emulator.drop_pending(arn)
    assert raised.value.category is category, raised.value.message
    return raised.value


@pytest.fixture
def victim(valkey_server: ValkeyServer, sm_client: Any, leak_guard: Any) -> Account:
    """Another user on the same server (and service), bound to its own secret."""
    return create_account(TARGET, valkey_server, sm_client, leak_guard, username=unique("victim")[:20])


@pytest.fixture
def app(valkey_function: Any) -> Any:
    return valkey_function(ROTATION_STRATEGY="dual_password", WAITING_RETRY_INTERVAL_IN_SECONDS="0")


# --- ElastiCache and MemoryDB -------------------------------------------------------------------------------


@MANAGED
@ATTACK
def test_valkey_attack_user_arn_of_a_user_bound_to_another_secret_refused_nothing_changed(
    valkey_server: ValkeyServer, valkey_account: Callable[..., Account], victim: Account, sm_client: Any, app: Any
) -> None:
    account = valkey_account()
    victim_arn = valkey_server.user_arns[victim.username]
    before = valkey_server.passwords_of(victim.username)
    edit(sm_client, account.arn, user_arn=victim_arn, username=victim.username, host=None, port=None)

    error = refused(app, account.arn)

    assert BINDING_TAG in error.message
    assert valkey_server.passwords_of(victim.username) == before
    assert valkey_emulator.user_status(victim_arn) == "active"  # no change was ever requested


@MANAGED
@ATTACK
def test_valkey_attack_user_arn_of_an_untagged_user_refused_nothing_changed(
    valkey_server: ValkeyServer, valkey_account: Callable[..., Account], sm_client: Any, leak_guard: Any, app: Any
) -> None:
    account = valkey_account()
    name, password = unique("untagged")[:20], secrets.token_urlsafe(24)
    leak_guard.add(password)
    TARGET.create_login(valkey_server, name, password)  # an operator's user no secret is bound to
    before = valkey_server.passwords_of(name)
    edit(sm_client, account.arn, user_arn=valkey_server.user_arns[name], username=name, host=None, port=None)

    error = refused(app, account.arn)

    assert "has no such tag" in error.message
    assert valkey_server.passwords_of(name) == before


@MANAGED
@ATTACK
def test_valkey_attack_username_of_another_user_with_own_user_arn_refused(
    valkey_server: ValkeyServer, valkey_account: Callable[..., Account], victim: Account, sm_client: Any, app: Any
) -> None:
    account = valkey_account()
    before = valkey_server.passwords_of(victim.username), valkey_server.passwords_of(account.username)
    edit(sm_client, account.arn, username=victim.username, host=None, port=None)  # no endpoint: no login to fail

    error = refused(app, account.arn)

    assert "named" in error.message
    assert (valkey_server.passwords_of(victim.username), valkey_server.passwords_of(account.username)) == before


@MANAGED
def test_valkey_attack_user_arn_with_masterarn_refused_as_secret_format(
    valkey_account: Callable[..., Account], sm_client: Any, app: Any
) -> None:
    account = valkey_account()
    edit(sm_client, account.arn, masterarn=account.arn)

    refused(app, account.arn, Category.SECRET_FORMAT)


# --- self-managed -------------------------------------------------------------------------------------------


@pytest.fixture
def default_user_with_known_password(valkey_server: ValkeyServer, leak_guard: Any) -> Iterator[str]:
    """The default user turned on with a password (an operator's choice); turned off again afterwards."""
    password = secrets.token_urlsafe(24)
    leak_guard.add(password)
    valkey_server.command("ACL", "SETUSER", "default", "on", "resetpass", f">{password}")
    try:
        yield password
    finally:
        valkey_server.command("ACL", "SETUSER", "default", "off", "resetpass")


@SELF
@ATTACK
def test_valkey_attack_default_user_refused_nothing_changed(
    valkey_server: ValkeyServer, valkey_account: Callable[..., Account], default_user_with_known_password: str,
    sm_client: Any, app: Any,
) -> None:  # fmt: skip
    account = valkey_account()
    before = valkey_server.passwords_of("default")
    edit(sm_client, account.arn, username="default", password=default_user_with_known_password)

    error = refused(app, account.arn)

    assert "default user" in error.message
    assert valkey_server.passwords_of("default") == before


@SELF
@ATTACK
def test_valkey_attack_nopass_user_refused_nothing_changed(
    valkey_server: ValkeyServer, valkey_account: Callable[..., Account], sm_client: Any, app: Any
) -> None:
    account = valkey_account()
    name = unique("nopass")[:20]
    valkey_server.command("ACL", "SETUSER", name, "reset", "on", "nopass", f"~{name}:*", *APP_RULES)
    edit(sm_client, account.arn, username=name, password="anything-logs-in-as-a-nopass-user")

    error = refused(app, account.arn)

    assert "nopass" in error.message
    assert valkey_server.passwords_of(name) == set()
    assert "nopass" in str(valkey_server.command("ACL", "GETUSER", name))


@SELF
@ATTACK
def test_valkey_attack_the_masters_own_user_refused(
    valkey_server: ValkeyServer, sm_client: Any, leak_guard: Any, app: Any
) -> None:
    master, password = unique("m")[:20], secrets.token_urlsafe(24)
    leak_guard.add(password)
    TARGET.create_master(valkey_server, master, password)
    value = TARGET.secret(valkey_server, master, password)
    master_arn = sm_client.create_secret(Name=unique("master"), SecretString=json.dumps(value))["ARN"]
    arn = sm_client.create_secret(Name=unique("self"), SecretString=json.dumps({**value, "masterarn": master_arn}))[
        "ARN"
    ]
    emulator.enable_rotation(arn)
    before = valkey_server.passwords_of(master)

    error = refused(app, arn)

    assert "master's own user" in error.message
    assert valkey_server.passwords_of(master) == before


PRIVILEGES = {
    "admin": ("-@all", "+ping", "+@read", "+@admin"),
    "dangerous": ("-@all", "+ping", "+get", "+flushall"),
    "allkeys": ("-@all", "+ping", "+get"),
}


@SELF
@ATTACK
@pytest.mark.parametrize("privilege", sorted(PRIVILEGES))
def test_valkey_attack_privileged_user_refused_unless_operator_opts_in(
    valkey_server: ValkeyServer, valkey_kind: ServerKind, sm_client: Any, leak_guard: Any, valkey_function: Any,
    privilege: str, ca_bundle: Any,
) -> None:  # fmt: skip
    name, password = unique("priv")[:20], secrets.token_urlsafe(24)
    leak_guard.add(password)
    keys = "~*" if privilege == "allkeys" else f"~{name}:*"
    valkey_server.command("ACL", "SETUSER", name, "reset", "on", f">{password}", keys, *PRIVILEGES[privilege])
    value = TARGET.secret(valkey_server, name, password)
    arn = sm_client.create_secret(Name=unique("priv"), SecretString=json.dumps(value))["ARN"]
    emulator.enable_rotation(arn)
    before = valkey_server.passwords_of(name)

    error = refused(valkey_function(ROTATION_STRATEGY="dual_password"), arn)

    assert "privileged" in error.message
    assert "ALLOW_PRIVILEGED_USERS" in error.message
    assert valkey_server.passwords_of(name) == before
    assert reach_of(valkey_kind) == SELF_MANAGED

    other = refused(valkey_function(ROTATION_STRATEGY="dual_password", ALLOW_PRIVILEGED_USERS=f"{name}x"), arn)
    assert "privileged" in other.message  # the list names users exactly
    assert valkey_server.passwords_of(name) == before

    rotate(valkey_function(ROTATION_STRATEGY="dual_password", ALLOW_PRIVILEGED_USERS=f"other,{name}"), arn)

    assert TARGET.logs_in(valkey_server, secret_at(sm_client, arn, "AWSCURRENT"), ca_bundle)
    assert TARGET.logs_in(valkey_server, secret_at(sm_client, arn, "AWSPREVIOUS"), ca_bundle)


@SELF
@ATTACK
def test_valkey_attack_master_of_another_server_refused_before_it_logs_in(
    valkey_server: ValkeyServer, valkey_account: Callable[..., Account], sm_client: Any, leak_guard: Any, app: Any,
) -> None:  # fmt: skip
    account = valkey_account()
    master = secret_at(sm_client, secret_at(sm_client, account.arn, "AWSCURRENT")["masterarn"], "AWSCURRENT")
    elsewhere = sm_client.create_secret(
        Name=unique("elsewhere"), SecretString=json.dumps({**master, "host": "localhost", "port": 1})
    )["ARN"]
    before = valkey_server.passwords_of(account.username)
    edit(sm_client, account.arn, masterarn=elsewhere)

    refused(app, account.arn)

    assert valkey_server.passwords_of(account.username) == before


@SELF
def test_valkey_self_managed_without_masterarn_refused_as_configuration(
    valkey_server: ValkeyServer, valkey_account: Callable[..., Account], sm_client: Any, app: Any
) -> None:
    account = valkey_account()
    before = valkey_server.passwords_of(account.username)
    edit(sm_client, account.arn, masterarn=None)

    error = refused(app, account.arn, Category.CONFIGURATION)

    assert "masterarn" in error.message
    assert valkey_server.passwords_of(account.username) == before


@SELF
def test_valkey_master_without_acl_rights_fails_permission_nothing_changed(
    valkey_server: ValkeyServer, valkey_account: Callable[..., Account], sm_client: Any, leak_guard: Any, app: Any,
) -> None:  # fmt: skip
    account = valkey_account()
    name, password = unique("weak")[:20], secrets.token_urlsafe(24)
    leak_guard.add(password)
    TARGET.create_login(valkey_server, name, password)  # a plain user as "master"
    weak = sm_client.create_secret(
        Name=unique("weak"), SecretString=json.dumps(TARGET.secret(valkey_server, name, password))
    )["ARN"]
    before = valkey_server.passwords_of(account.username)
    edit(sm_client, account.arn, masterarn=weak)

    error = refused(app, account.arn, Category.PERMISSION)

    assert "acl|getuser" in error.message
    assert valkey_server.passwords_of(account.username) == before
