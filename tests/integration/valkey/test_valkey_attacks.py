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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
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


Credentials = Callable[[str], tuple[str, str]]


@dataclass(frozen=True)
class Attack:
    """The attacker's secret (a user bound to it, rotation enabled) and the function that must refuse its edits."""

    account: Account
    server: ValkeyServer
    sm_client: Any
    app: Any

    def refused(
        self, category: Category = Category.CONFUSED_DEPUTY, *, unchanged_users: Sequence[str] = (), **changes: Any
    ) -> RotationError:
        """Edit the AWSCURRENT value with ``changes`` (see ``edit``); the rotation refuses it as ``category``.

        The passwords of ``unchanged_users`` on the server are the same digests afterwards.
        """
        before = {name: self.server.passwords_of(name) for name in unchanged_users}
        edit(self.sm_client, self.account.arn, **changes)
        error = refused(self.app, self.account.arn, category)
        assert {name: self.server.passwords_of(name) for name in unchanged_users} == before
        return error


@pytest.fixture
def credentials(leak_guard: Any) -> Credentials:
    """A new user name starting with ``prefix`` and a random password, which the leak guard looks for."""

    def make(prefix: str) -> tuple[str, str]:
        password = secrets.token_urlsafe(24)
        leak_guard.add(password)
        return unique(prefix)[:20], password

    return make


@pytest.fixture
def attack(account: Account, valkey_server: ValkeyServer, sm_client: Any, app: Any) -> Attack:
    return Attack(account, valkey_server, sm_client, app)


# --- ElastiCache and MemoryDB -------------------------------------------------------------------------------


@MANAGED
@ATTACK
def test_valkey_attack_user_arn_of_a_user_bound_to_another_secret_refused_nothing_changed(
    valkey_server: ValkeyServer, attack: Attack, victim: Account
) -> None:
    victim_arn = valkey_server.user_arns[victim.username]

    error = attack.refused(
        unchanged_users=[victim.username], user_arn=victim_arn, username=victim.username, host=None, port=None
    )

    assert BINDING_TAG in error.message
    assert valkey_emulator.user_status(victim_arn) == "active"  # no change was ever requested


@MANAGED
@ATTACK
def test_valkey_attack_user_arn_of_an_untagged_user_refused_nothing_changed(
    valkey_server: ValkeyServer, attack: Attack, credentials: Credentials
) -> None:
    name, password = credentials("untagged")
    TARGET.create_login(valkey_server, name, password)  # an operator's user no secret is bound to
    user_arn = valkey_server.user_arns[name]

    error = attack.refused(unchanged_users=[name], user_arn=user_arn, username=name, host=None, port=None)

    assert "has no such tag" in error.message


@MANAGED
@ATTACK
def test_valkey_attack_username_of_another_user_with_own_user_arn_refused(attack: Attack, victim: Account) -> None:
    both = [victim.username, attack.account.username]

    error = attack.refused(unchanged_users=both, username=victim.username, host=None, port=None)  # no login to fail

    assert "named" in error.message


@MANAGED
def test_valkey_attack_user_arn_with_masterarn_refused_as_secret_format(attack: Attack) -> None:
    attack.refused(Category.SECRET_FORMAT, masterarn=attack.account.arn)


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
    attack: Attack, default_user_with_known_password: str
) -> None:
    error = attack.refused(unchanged_users=["default"], username="default", password=default_user_with_known_password)

    assert "default user" in error.message


@SELF
@ATTACK
def test_valkey_attack_nopass_user_refused_nothing_changed(valkey_server: ValkeyServer, attack: Attack) -> None:
    name = unique("nopass")[:20]
    valkey_server.command("ACL", "SETUSER", name, "reset", "on", "nopass", f"~{name}:*", *APP_RULES)

    error = attack.refused(username=name, password="anything-logs-in-as-a-nopass-user")

    assert "nopass" in error.message
    assert valkey_server.passwords_of(name) == set()
    assert "nopass" in str(valkey_server.command("ACL", "GETUSER", name))


@SELF
@ATTACK
def test_valkey_attack_the_masters_own_user_refused(
    valkey_server: ValkeyServer, sm_client: Any, credentials: Credentials, app: Any
) -> None:
    master, password = credentials("m")
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
    valkey_server: ValkeyServer, valkey_kind: ServerKind, sm_client: Any, credentials: Credentials,
    valkey_function: Any, privilege: str, ca_bundle: Any,
) -> None:  # fmt: skip
    name, password = credentials("priv")
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
def test_valkey_attack_master_of_another_server_refused_before_it_logs_in(attack: Attack, sm_client: Any) -> None:
    masterarn = secret_at(sm_client, attack.account.arn, "AWSCURRENT")["masterarn"]
    master = secret_at(sm_client, masterarn, "AWSCURRENT")
    elsewhere = sm_client.create_secret(
        Name=unique("elsewhere"), SecretString=json.dumps({**master, "host": "localhost", "port": 1})
    )["ARN"]

    attack.refused(unchanged_users=[attack.account.username], masterarn=elsewhere)


@SELF
def test_valkey_self_managed_without_masterarn_refused_as_configuration(attack: Attack) -> None:
    error = attack.refused(Category.CONFIGURATION, unchanged_users=[attack.account.username], masterarn=None)

    assert "masterarn" in error.message


@SELF
def test_valkey_master_without_acl_rights_fails_permission_nothing_changed(
    valkey_server: ValkeyServer, attack: Attack, sm_client: Any, credentials: Credentials
) -> None:
    name, password = credentials("weak")
    TARGET.create_login(valkey_server, name, password)  # a plain user as "master"
    weak = sm_client.create_secret(
        Name=unique("weak"), SecretString=json.dumps(TARGET.secret(valkey_server, name, password))
    )["ARN"]

    error = attack.refused(Category.PERMISSION, unchanged_users=[attack.account.username], masterarn=weak)

    assert "acl|getuser" in error.message
