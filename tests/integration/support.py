"""Helpers shared by the integration tests: names, secrets in the emulator, accounts on a local target."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from helpers import LeakGuard
from rotation_local import emulator, service
from rotation_local.invoke import load_function
from rotation_local.targets import DatabaseTarget


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def rotate(app: ModuleType, arn: str, **kwargs: Any) -> str:
    """One rotation as the service runs it, through a function module's ``lambda_handler``."""
    return service.rotate(arn, lambda event: app.lambda_handler(dict(event), None), **kwargs)


def run_steps(app: ModuleType, arn: str, token: str, *steps: str) -> None:
    """Invoke the function module for each step, in order, with the same token."""
    for step in steps:
        app.lambda_handler(service.event(step, arn, token), None)


def rotation_log(app: ModuleType, server: Any, sm_client: Any, arn: str) -> str:
    """Rotate ``arn`` once and return the server's statement log, which must not hold the new password."""
    rotate(app, arn)
    new_password = secret_at(sm_client, arn, "AWSCURRENT")["password"]
    log: str = server.log_text()
    assert new_password not in log  # the leak guard checks every known password as well
    return log


def load_configured_function(folder: str, monkeypatch: Any, ca_bundle: Path, **env: str) -> ModuleType:
    """A fresh copy of ``functions/<folder>/app.py`` configured through its environment, as in Lambda."""
    monkeypatch.setenv("DB_CA_BUNDLE", str(ca_bundle))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_function(folder)


def secret_at(sm_client: Any, arn: str, stage: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(sm_client.get_secret_value(SecretId=arn, VersionStage=stage)["SecretString"])
    return result


def stages(sm_client: Any, arn: str) -> dict[str, list[str]]:
    result: dict[str, list[str]] = sm_client.describe_secret(SecretId=arn)["VersionIdsToStages"]
    return result


def pending_token(sm_client: Any, arn: str) -> str:
    """The token of the rotation a failed step left behind: the one version labelled AWSPENDING alone."""
    (token,) = [version for version, labels in stages(sm_client, arn).items() if labels == ["AWSPENDING"]]
    return token


@dataclass
class Account:
    """A database user a test created on a local target's server, with its secret in the emulator."""

    username: str
    arn: str
    dbname: str
    host: str = "%"  # the account's host part, where the engine has one
    master_arn: str | None = None
    master_user: str | None = None


def rotate_in_place(
    app: ModuleType, sm_client: Any, account: Account, logs_in: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Rotate ``account``'s secret once, single user: the same user name, and the new password logs in
    (``logs_in``) while the old one no longer does. The new AWSCURRENT value."""
    old = secret_at(sm_client, account.arn, "AWSCURRENT")
    rotate(app, account.arn)
    new = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert new["username"] == account.username
    assert logs_in(new)
    assert not logs_in(old)
    return new


def create_account(
    target: DatabaseTarget,
    server: Any,
    sm_client: Any,
    leak_guard: LeakGuard,
    *,
    username: str,
    master_username: str = "",
    with_master: bool = False,
    allow_master: bool = True,
    master_role_options: str | None = None,
    login_options: dict[str, str] | None = None,
    **overrides: Any,
) -> Account:
    """A login with a database of its own and its secret (rotation enabled); optionally a master for it.

    ``allow_master`` gives the master what the docs ask beyond the master's own rights (PostgreSQL 16+:
    ADMIN OPTION on the user); ``master_role_options`` makes the master a plain login with those options
    instead of the target's usual master. ``overrides`` replace keys of the secret.
    """
    password = secrets.token_urlsafe(24)
    leak_guard.add(password)
    dbname = unique("db")
    target.create_login(server, username, password, database=dbname, **(login_options or {}))
    # The target sees the overrides too (a Valkey master secret shares the user's port and TLS options).
    shared = {key: item for key, item in overrides.items() if key not in ("username", "password")}
    value = target.secret(server, username, password, dbname=dbname, owner_team="payments", **shared)
    master_arn = None
    if with_master and target.takes_master(server):
        master_password = secrets.token_urlsafe(24)
        leak_guard.add(master_password)
        if master_role_options is None:
            target.create_master(server, master_username, master_password)
        else:
            target.create_login(server, master_username, master_password, role_options=master_role_options)
        if allow_master:
            target.allow_master(server, master_username, username)
        master_value = target.secret(server, master_username, master_password)
        master_arn = sm_client.create_secret(Name=unique("master"), SecretString=json.dumps(master_value))["ARN"]
        value["masterarn"] = master_arn
    value.update(overrides)
    arn = sm_client.create_secret(Name=unique("secret"), SecretString=json.dumps(value))["ARN"]
    target.secret_created(server, value, arn)
    emulator.enable_rotation(arn)
    return Account(
        username=username,
        arn=arn,
        dbname=dbname,
        host=(login_options or {}).get("host", "%"),
        master_arn=master_arn,
        master_user=master_username if master_arn is not None else None,
    )


@dataclass
class DatabaseSetup:
    """What a test on every server kind works with: the engine's local target and server, the emulator's
    client, the leak guard and the CA bundle that verifies the server (the ``db`` fixture)."""

    target: DatabaseTarget
    server: Any
    sm_client: Any
    leak_guard: LeakGuard
    ca_bundle: Path

    def logs_in(self, secret: dict[str, Any]) -> bool:
        return self.target.logs_in(self.server, secret, self.ca_bundle)
