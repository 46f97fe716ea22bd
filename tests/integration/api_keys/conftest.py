"""API-key fixtures: fake providers over HTTPS on 127.0.0.1, their secrets in moto's HTTP server, the function.

The fakes' certificates come from one CA made for the session; the function trusts it through
``API_CA_BUNDLE``, as a deployment would trust a private CA. Every fake's access log is watched by the
leak guard, and its admin credentials are added to it; a test whose exchanges with a fake break the
provider's published definition fails (``contract_violations``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from helpers import LeakGuard
from integration.api_keys.support import FAST_ENV, PROVIDERS, ApiKeySecret, FakeAndSecret, Sleeper
from integration.support import unique
from rotation_core.handler import RotationHandler, api_key_handler
from rotation_core.providers.http import HttpClient
from rotation_core.secrets import SecretStore
from rotation_local import emulator
from rotation_local.fake_providers import AttackerServer, FakeProviderServer, fake_provider
from rotation_local.invoke import load_function
from rotation_local.tls import LocalCA


@pytest.fixture(scope="session")
def provider_ca() -> Iterator[LocalCA]:
    """The CA of every fake provider (and of the attacker's server): the function trusts it."""
    ca = LocalCA.create()
    yield ca
    ca.cleanup()


@pytest.fixture
def make_fake(leak_guard: LeakGuard, provider_ca: LocalCA) -> Iterator[Callable[..., FakeProviderServer]]:
    started: list[FakeProviderServer] = []

    def make(kind: str, **options: Any) -> FakeProviderServer:
        fake = fake_provider(kind, **{"ca": provider_ca, **options}).start()
        started.append(fake)
        leak_guard.add(*fake.admin_values())
        return fake

    yield make
    for fake in started:
        leak_guard.add(*(key.value for key in fake.keys))  # stored or not (orphans included)
        # Read the access log into the guard before the fake removes its temporary folder.
        leak_guard.watch_text(fake.access_log_path.read_text(encoding="utf-8"))
        fake.stop()
    # Every request the function sent and every answer a fake gave is one its provider's definition allows.
    assert [problem for fake in started for problem in fake.contract_violations] == []


@pytest.fixture(params=PROVIDERS)
def provider_fake(request: pytest.FixtureRequest, make_fake: Callable[..., FakeProviderServer]) -> FakeProviderServer:
    """A started fake of each provider in turn (the test runs once per provider, its id the provider's kind)."""
    kind: str = request.param
    return make_fake(kind)


@pytest.fixture
def attacker(provider_ca: LocalCA) -> Iterator[AttackerServer]:
    """A server an attacker controls, with a certificate the function trusts: nothing may reach it."""
    server = AttackerServer(provider_ca).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def attacker_on_443(provider_ca: LocalCA) -> Iterator[AttackerServer]:
    """The attacker on localhost:443, where a URL without a port goes: parser confusion needs no port in it."""
    try:
        server = AttackerServer(provider_ca, port=443).start()
    except PermissionError:
        pytest.skip("binding 127.0.0.1:443 needs root (CI runs as root and runs these tests)")
    yield server
    server.stop()


@pytest.fixture
def api_key_secret(sm_client: Any, leak_guard: LeakGuard) -> Callable[..., ApiKeySecret]:
    """The admin secret and the rotated secret for a fake provider (rotation enabled)."""

    def make(fake: FakeProviderServer, *, admin: dict[str, Any] | None = None, **extra: Any) -> ApiKeySecret:
        admin_value = fake.admin_secret() if admin is None else admin
        admin_arn = sm_client.create_secret(Name=unique("admin"), SecretString=json.dumps(admin_value))["ARN"]
        value = fake.seed_secret(admin_arn, owner_team="payments", **extra)
        arn = sm_client.create_secret(Name=unique("apikey"), SecretString=json.dumps(value))["ARN"]
        emulator.enable_rotation(arn)
        return ApiKeySecret(arn=arn, admin_arn=admin_arn, fake=fake)

    return make


@pytest.fixture
def fake_and_secret(
    make_fake: Callable[..., FakeProviderServer], api_key_secret: Callable[..., ApiKeySecret]
) -> FakeAndSecret:
    """A fresh fake provider of ``kind`` and a rotated secret holding one of its keys (``fields`` added).

    With ``repeat_base_url`` the rotated secret repeats the base_url its admin secret pins (which is allowed).
    """

    def make(kind: str, *, repeat_base_url: bool = False, **fields: Any) -> tuple[FakeProviderServer, ApiKeySecret]:
        fake = make_fake(kind)
        if repeat_base_url:
            fields["base_url"] = fake.base_url
        return fake, api_key_secret(fake, **fields)

    return make


@pytest.fixture
def api_key_env(provider_ca: LocalCA) -> dict[str, str]:
    """The function's settings for the tests: quick verification, and the fakes' CA trusted."""
    return {**FAST_ENV, "API_CA_BUNDLE": str(provider_ca.bundle_path)}


@pytest.fixture
def api_key_function(
    sm_env: dict[str, str], api_key_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., ModuleType]:
    """A fresh copy of functions/api_key/app.py configured through its environment, as in Lambda."""

    def load(**env: str) -> ModuleType:
        for name, value in {**api_key_env, **env}.items():
            monkeypatch.setenv(name, value)
        return load_function("api_key")

    return load


@pytest.fixture
def sleeper() -> Sleeper:
    return Sleeper()


@pytest.fixture
def fast_handler(
    sm_env: dict[str, str], sm_client: Any, sleeper: Sleeper, api_key_env: dict[str, str]
) -> Callable[..., RotationHandler]:
    """The API-key handler with a recording sleep and short timeouts (for the failure-mode tests)."""

    def make(timeout: float = 2.0, **env: str) -> RotationHandler:
        http = HttpClient(
            timeout=timeout, max_attempts=4, sleep=sleeper, backoff=0.01, ca_bundle=api_key_env["API_CA_BUNDLE"]
        )
        environ = {**api_key_env, **env}
        return api_key_handler(store=SecretStore(sm_client), environ=environ, http=http, sleep=sleeper)

    return make
