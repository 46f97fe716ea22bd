"""The API-key function in its own process, as Lambda runs it: no database driver, no leaks, and TLS."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers import FUNCTIONS_DIR, LeakGuard, log_records
from integration.api_keys.support import ApiKeySecret, FakeAndSecret, generic_sendgrid_secret, rotate, value_at
from integration.support import stages
from rotation_core.errors import Category, RotationError
from rotation_local import service
from rotation_local.fake_providers import FakeProviderServer
from rotation_local.invoke import invoke
from rotation_local.tls import LocalCA

# Wraps functions/api_key/app.py: refuses database drivers at import and checks sys.modules afterwards.
_GUARD_APP = """
import importlib.abc, importlib.util, sys

FORBIDDEN = ("psycopg2", "pymysql", "MySQLdb")

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ImportError("the API-key function must not import " + name)
        return None

sys.meta_path.insert(0, Refuse())
spec = importlib.util.spec_from_file_location("real_app", {real!r})
real = importlib.util.module_from_spec(spec)
spec.loader.exec_module(real)

def lambda_handler(event, context):
    result = real.lambda_handler(event, context)
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in FORBIDDEN)
    if loaded:
        raise RuntimeError("database drivers were imported: " + ", ".join(loaded))
    return result
"""


def test_rotation_in_child_process_twice_imports_no_database_driver(
    fake_and_secret: FakeAndSecret, sm_env: dict[str, str],
    api_key_env: dict[str, str], sm_client: Any, tmp_path: Path, leak_guard: LeakGuard,
) -> None:  # fmt: skip
    fake, secret = fake_and_secret("datadog")
    function_dir = tmp_path / "api_key"
    function_dir.mkdir()
    (function_dir / "app.py").write_text(_GUARD_APP.format(real=str(FUNCTIONS_DIR / "api_key" / "app.py")))
    outputs: list[str] = []

    def step(event: Any) -> None:
        result = invoke(function_dir, event, env={**sm_env, **api_key_env}, timeout=60)
        outputs.append(result.stdout + result.stderr)
        assert result.ok, f"{result.error_type}: {result.error_message}"

    previous_values = [value_at(sm_client, secret.arn, "AWSCURRENT")["api_key"]]
    for _ in range(2):  # the second rotation also revokes the key made in the console
        token = service.rotate(secret.arn, step)
        assert stages(sm_client, secret.arn)[token] == ["AWSCURRENT"]
        current = value_at(sm_client, secret.arn, "AWSCURRENT")
        assert fake.is_valid(current["api_key"])
        assert fake.is_valid(previous_values[-1])
        previous_values.append(current["api_key"])

    assert len(fake.live_keys()) == 2
    records = [record for text in outputs for record in log_records(text)]
    assert {r["message"] for r in records} >= {"minted a new Datadog key", "Datadog accepts the AWSPENDING key"}
    for text in outputs:
        leak_guard.watch_text(text)


def test_rotation_over_https_verifies_certificate_with_ca_bundle(
    make_fake: Callable[..., FakeProviderServer], api_key_secret: Callable[..., ApiKeySecret], api_key_function: Any,
    sm_client: Any,
) -> None:  # fmt: skip
    fake = make_fake("cloudflare")
    assert fake.base_url.startswith("https://")
    secret = api_key_secret(fake)

    token = rotate(api_key_function(), secret.arn)

    assert stages(sm_client, secret.arn)[token] == ["AWSCURRENT"]


def test_rotation_over_https_untrusted_certificate_refused(
    make_fake: Callable[..., FakeProviderServer], api_key_secret: Callable[..., ApiKeySecret], api_key_function: Any
) -> None:
    fake = make_fake("cloudflare", ca=LocalCA.create())  # a CA the function does not trust
    secret = api_key_secret(fake)
    app = api_key_function(API_MAX_ATTEMPTS="1")

    with pytest.raises(RotationError, match="TLS") as caught:
        rotate(app, secret.arn)

    assert caught.value.category is Category.TLS
    assert fake.count("POST", "") == 0
    assert fake.requests == []  # not even the binding check's requests: the handshake failed first


def test_rotation_generic_http_provider_described_in_admin_secret(
    make_fake: Callable[..., FakeProviderServer], sm_client: Any, api_key_function: Any
) -> None:
    fake = make_fake("sendgrid")  # any HTTP API will do: describe SendGrid's through the generic provider
    arn, first = generic_sendgrid_secret(sm_client, fake)
    app = api_key_function()

    for _ in range(2):
        rotate(app, arn)

    current, previous = value_at(sm_client, arn, "AWSCURRENT"), value_at(sm_client, arn, "AWSPREVIOUS")
    minted = {key.id for key in fake.live_keys() if key.name.startswith("sm-rotation-")}
    assert minted == {current["api_key_id"], previous["api_key_id"]}
    # The description names no verify.id_path, so the first key (not named for this secret, value not tied
    # to its id) is left for an operator: the function only revokes what is provably this secret's.
    assert fake.is_valid(first.value)
    assert "http" not in current
    assert fake.key_by_value(current["api_key"]).extra["scopes"] == ["mail.send"]  # type: ignore[union-attr]
