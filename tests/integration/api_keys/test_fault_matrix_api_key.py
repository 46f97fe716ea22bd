"""The fault matrix, API-key part (a fake Datadog API on 127.0.0.1).

The cases, the injection and the checks are those of ``integration/test_fault_matrix.py``. Here
"unreachable" points the function's HTTP transport at a closed port, and "crash after credential
change" kills createSecret after the provider minted the key but before PutSecretValue stored it. Beyond
the common checks, no key is orphaned: after the retry exactly the AWSCURRENT and AWSPREVIOUS keys are
live at the provider.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from helpers import LeakGuard
from integration.fault_matrix import (
    CASES,
    CREATE,
    PUT,
    Case,
    Result,
    Target,
    botocore_handler,
    check,
    invoke,
    invoke_concurrently,
    print_matrix,
    run_case,
    sm_client_for,
)
from integration.support import unique
from rotation_core.handler import RotationHandler, api_key_handler
from rotation_core.providers.http import HttpClient, HttpRequest, HttpResponse, urllib3_transport
from rotation_core.secrets import SecretStore
from rotation_local import emulator
from rotation_local.fake_providers import FakeProviderServer, fake_provider
from rotation_local.postgres_server import free_port
from rotation_local.tls import LocalCA

RESULTS: list[Result] = []
API_KEY_FUNCTIONS = ["api_key datadog"]
ENVIRON = {"API_VERIFY_DELAY": "0", "API_TIMEOUT": "2", "API_VERIFY_ATTEMPTS": "2", "API_MAX_ATTEMPTS": "2"}


@pytest.fixture(scope="module", autouse=True)
def _print_api_key_matrix(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    print_matrix(request, API_KEY_FUNCTIONS, RESULTS)


class SwitchableTransport:
    """The real urllib3 transport, or, while ``down``, the same request to a closed port."""

    def __init__(self, ca_bundle: str) -> None:
        self.real = urllib3_transport(ca_bundle)
        self.down = False
        self.hits = 0

    def __call__(self, request: HttpRequest, timeout: float) -> HttpResponse:
        if self.down:
            self.hits += 1
            request = dataclasses.replace(request, endpoint=dataclasses.replace(request.endpoint, port=free_port()))
        return self.real(request, timeout)

    @contextlib.contextmanager
    def unreachable(self) -> Iterator[list[int]]:
        hits = [0]
        self.hits, self.down = 0, True
        try:
            yield hits
        finally:
            self.down = False
            hits[0] = self.hits


@pytest.fixture(scope="module")
def datadog(provider_ca: LocalCA) -> Iterator[FakeProviderServer]:
    fake = fake_provider("datadog", ca=provider_ca).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def api_key_target(datadog: FakeProviderServer, sm_server: emulator.EmulatorServer, provider_ca: LocalCA) -> Target:
    client = sm_client_for(sm_server.endpoint_url)
    admin_arn: str = client.create_secret(Name=unique("fm-admin"), SecretString=json.dumps(datadog.admin_secret()))[
        "ARN"
    ]
    transport = SwitchableTransport(str(provider_ca.bundle_path))

    def new_container() -> RotationHandler:
        http = HttpClient(timeout=2, max_attempts=2, transport=transport, sleep=lambda _s: None, backoff=0.0)
        return api_key_handler(store=SecretStore(client), environ=ENVIRON, http=http, sleep=lambda _s: None)

    def new_secret() -> str:
        value = datadog.seed_secret(admin_arn, owner_team="payments")
        arn: str = client.create_secret(Name=unique("fm-apikey"), SecretString=json.dumps(value))["ARN"]
        emulator.enable_rotation(arn)
        return arn

    def check_after(arn: str, current: dict[str, Any], original: dict[str, Any]) -> str:
        if {k: v for k, v in current.items() if not k.startswith("api_key")} != {
            k: v for k, v in original.items() if not k.startswith("api_key")
        }:
            return "keys of the secret changed"
        if not datadog.is_valid(original["api_key"]):
            return "the previous key was revoked at once"
        mine = {current["api_key_id"], original["api_key_id"]}
        minted = [key for key in datadog.keys if key.id in mine or arn_hash(arn) in key.name]
        live = {key.id for key in minted if not key.revoked}
        if live != mine:
            return f"orphaned keys at the provider: {len(live - mine)}"
        return ""

    def crash_after_mint() -> contextlib.AbstractContextManager[list[int]]:
        return crash_before_put(client)

    return Target(
        name="api_key datadog",
        client=client,
        new_container=new_container,
        new_secret=new_secret,
        logs_in=lambda secret: datadog.is_valid(secret["api_key"]),
        unreachable=transport.unreachable,
        crash_after_change=crash_after_mint,
        check_after=check_after,
        concurrently=create_interleaved,
    )


def arn_hash(arn: str) -> str:
    from rotation_core.api_keys import key_name_prefix

    return key_name_prefix(arn)


@contextlib.contextmanager
def crash_before_put(client: Any) -> Iterator[list[int]]:
    """createSecret minted the key; the container dies before PutSecretValue leaves it."""
    hits = [0]

    def crash(**_kwargs: Any) -> None:
        hits[0] += 1
        raise RuntimeError("the container died after minting, before PutSecretValue")

    with botocore_handler(client, f"before-call.secrets-manager.{PUT}", crash):
        yield hits


def _api_key_case(case: Case) -> Any:
    if case.fault == "crash after credential change":  # the API-key function changes it in createSecret
        return Case(fault=case.fault, step=CREATE)
    return case


API_KEY_CASES = [_api_key_case(case) for case in CASES]
API_KEY_CASE_IDS = [case.id for case in API_KEY_CASES]


def create_interleaved(target: Target, arn: str, token: str, step: str) -> str:
    """Two createSecret invocations in a fixed, reproducible interleaving (any other step: both start together).

    First mints its key and pauses before PutSecretValue; second lists the keys (finding the first's,
    not yet stored), revokes it, mints its own and pauses before its PutSecretValue; first stores its key;
    second's PutSecretValue then finds the version taken and keeps it.
    """
    if step != CREATE:
        return invoke_concurrently(target, arn, token, step)
    first_at_put, second_at_put, first_stored = threading.Event(), threading.Event(), threading.Event()
    outcomes = ["", ""]
    containers = [target.new_container(), target.new_container()]

    def before_put(**_kwargs: Any) -> None:
        if threading.current_thread().name == "first":
            first_at_put.set()
            second_at_put.wait(timeout=20)
        else:
            second_at_put.set()
            first_stored.wait(timeout=20)

    def after_put(**_kwargs: Any) -> None:
        if threading.current_thread().name == "first":
            first_stored.set()

    def run(index: int) -> None:
        if index == 1:
            first_at_put.wait(timeout=20)
        outcomes[index] = invoke(containers[index], arn, token, step)

    with (
        botocore_handler(target.client, f"before-call.secrets-manager.{PUT}", before_put),
        botocore_handler(target.client, f"after-call.secrets-manager.{PUT}", after_put),
    ):
        threads = [threading.Thread(target=run, args=(i,), name=("first", "second")[i]) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    return "+".join(outcomes)


@pytest.mark.parametrize("case", API_KEY_CASES, ids=API_KEY_CASE_IDS)
def test_fault_matrix_api_key_fault_then_retry_completes_without_lockout(
    case: Case, api_key_target: Target, datadog: FakeProviderServer, leak_guard: LeakGuard
) -> None:
    leak_guard.add(*datadog.admin_values())
    leak_guard.watch_file(datadog.access_log_path)
    result = run_case(api_key_target, case)
    leak_guard.add(*(key.value for key in datadog.keys))
    RESULTS.append(result)
    check(result)
