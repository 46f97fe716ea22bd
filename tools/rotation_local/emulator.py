"""Secrets Manager emulation with moto, plus the service side of a rotation.

moto 5.x differs from AWS where rotation depends on it (see rotation-protocol.md). This module:

* makes ``PutSecretValue`` refuse to change a version that already holds a different value
  (``ResourceExistsException``), as AWS does, instead of overwriting it;
* plays the part of the service in a rotation: it enables rotation, stages an ``AWSPENDING``
  placeholder version that holds no value (what ``RotateSecret`` does), and clears ``AWSPENDING``
  once the four steps succeeded. moto's own ``rotate_secret`` is not used.

It works for moto in-process (``mock_aws``) and for :class:`EmulatorServer` over HTTP on 127.0.0.1,
which runs in this process so that the service side can reach moto's state directly, with moto's
global CORS turned off (:func:`disable_global_cors`).
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
AWSCURRENT, AWSPENDING, AWSPREVIOUS = "AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"
#: The rotation function :func:`enable_rotation` attaches unless told another one.
LOCAL_FUNCTION = "local-rotation"


def function_arn(function_name: str, *, account_id: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION) -> str:
    """The ARN of a function called ``function_name`` in the emulator's account and region."""
    return f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"


@functools.cache
def apply_fidelity_patches() -> None:
    """Make moto's PutSecretValue keep stored versions immutable, as AWS does. Runs once."""
    from moto.secretsmanager.exceptions import ResourceExistsException
    from moto.secretsmanager.models import SecretsManagerBackend

    original = SecretsManagerBackend.put_secret_value

    def put_secret_value(  # noqa: PLR0917 (moto's own signature)
        self: Any,
        secret_id: str,
        secret_string: str,
        secret_binary: str,
        client_request_token: str,
        version_stages: list[str],
    ) -> str:
        secret = self.secrets.get(secret_id) if self._is_valid_identifier(secret_id) else None
        version = getattr(secret, "versions", {}).get(client_request_token) if secret else None
        if secret is not None and version is not None and ("secret_string" in version or "secret_binary" in version):
            same = version.get("secret_string") == secret_string and version.get("secret_binary") == secret_binary
            if not same:
                raise ResourceExistsException(
                    f"You can't use ClientRequestToken {client_request_token} because that value is "
                    f"already in use for a version of secret {secret.arn}."
                )
        return original(self, secret_id, secret_string, secret_binary, client_request_token, version_stages)

    SecretsManagerBackend.put_secret_value = put_secret_value  # type: ignore[method-assign]


@functools.cache
def disable_global_cors() -> None:
    """Turn off moto's global CORS (``Access-Control-Allow-Origin`` for every origin), which would let any
    web page the developer visits read the emulator's secrets. Runs once, before moto builds its apps.

    The switch is moto's ``MOTO_DISABLE_GLOBAL_CORS``, read when moto is imported; this sets the value
    moto's server checks when it creates each service's app. A moto that no longer has it fails here.
    """
    from moto import settings
    from moto.moto_server import werkzeug_app

    if not hasattr(werkzeug_app, "DISABLE_GLOBAL_CORS"):
        raise RuntimeError("this moto has no DISABLE_GLOBAL_CORS switch: check how it turns off its global CORS")
    settings.DISABLE_GLOBAL_CORS = True
    werkzeug_app.DISABLE_GLOBAL_CORS = True


def backend(account_id: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION) -> Any:
    from moto.backends import get_backend

    return get_backend("secretsmanager")[account_id][region]


def _secret(secret_id: str, account_id: str, region: str) -> Any:
    sm = backend(account_id, region)
    if not sm._is_valid_identifier(secret_id):
        raise KeyError(f"no such secret in the emulator: {secret_id}")
    return sm.secrets[secret_id]


def enable_rotation(
    secret_id: str,
    *,
    lambda_arn: str = function_arn(LOCAL_FUNCTION),
    account_id: str = DEFAULT_ACCOUNT,
    region: str = DEFAULT_REGION,
) -> None:
    secret = _secret(secret_id, account_id, region)
    secret.rotation_requested = True
    secret.rotation_enabled = True
    secret.rotation_lambda_arn = lambda_arn
    secret.auto_rotate_after_days = 90


def stage_pending_placeholder(
    secret_id: str, token: str | None = None, *, account_id: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION
) -> str:
    """What RotateSecret does before invoking the function: a new version, AWSPENDING, no value."""
    secret = _secret(secret_id, account_id, region)
    for version in secret.versions.values():
        if AWSPENDING in version["version_stages"]:
            raise RuntimeError("a previous rotation isn't complete: AWSPENDING is still attached to a version")
    token = token or str(uuid.uuid4())
    secret.versions[token] = {
        "createdate": int(time.time()),
        "version_id": token,
        "version_stages": [AWSPENDING],
    }
    return token


def stage_transient_version(
    secret_id: str,
    *,
    copy_current: bool,
    token: str | None = None,
    account_id: str = DEFAULT_ACCOUNT,
    region: str = DEFAULT_REGION,
) -> str:
    """What Secrets Manager's configuration test (RotateImmediately=false) stages for testSecret alone.

    A transient AWSPENDING version holding no value, or a copy of AWSCURRENT's: AWS does not document which,
    and emulators differ, so the functions must pass (and fail) the same way with both.
    """
    token = stage_pending_placeholder(secret_id, token, account_id=account_id, region=region)
    if copy_current:
        secret = _secret(secret_id, account_id, region)
        current = next(v for v in secret.versions.values() if AWSCURRENT in v["version_stages"])
        for key in ("secret_string", "secret_binary"):
            if key in current:
                secret.versions[token][key] = current[key]
    return token


def remove_version(
    secret_id: str, token: str, *, account_id: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION
) -> None:
    """What the service does after a configuration test: the transient version goes away entirely."""
    _secret(secret_id, account_id, region).versions.pop(token, None)


def clear_pending(secret_id: str, *, account_id: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION) -> None:
    """What the service does after finishSecret succeeded: AWSPENDING leaves the new current version."""
    secret = _secret(secret_id, account_id, region)
    for version in secret.versions.values():
        if AWSPENDING in version["version_stages"] and AWSCURRENT in version["version_stages"]:
            version["version_stages"].remove(AWSPENDING)


def drop_pending(secret_id: str, *, account_id: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION) -> None:
    """What an operator does after giving up on a failed rotation: remove AWSPENDING wherever it is."""
    secret = _secret(secret_id, account_id, region)
    for version in secret.versions.values():
        if AWSPENDING in version["version_stages"]:
            version["version_stages"].remove(AWSPENDING)


def version_stages(
    secret_id: str, *, account_id: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION
) -> dict[str, list[str]]:
    secret = _secret(secret_id, account_id, region)
    return {vid: list(v["version_stages"]) for vid, v in secret.versions.items()}


def all_secret_strings(account_id: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION) -> list[str]:
    """Every stored value of every version of every secret (the leak guard's reference list)."""
    values = []
    for secret in list(backend(account_id, region).secrets.values()):
        for version in getattr(secret, "versions", {}).values():
            if "secret_string" in version:
                values.append(version["secret_string"])
    return values


# Secrets named by a Secrets Manager call since the last take_accessed_secrets(), by object identity.
_accessed: dict[int, Any] = {}
_accessed_lock = threading.Lock()
# The operations that name one secret (first argument ``secret_id``, or ``name`` for CreateSecret).
_SINGLE_SECRET_OPERATIONS = (
    "create_secret", "describe_secret", "get_secret_value", "put_secret_value", "update_secret",
    "update_secret_version_stage", "list_secret_version_ids", "rotate_secret", "cancel_rotate_secret",
    "restore_secret", "delete_secret", "replicate_secret_to_regions", "remove_regions_from_replication",
)  # fmt: skip


def _remember(backend_instance: Any, secret_id: Any) -> None:
    if not isinstance(secret_id, str):
        return
    try:
        if not backend_instance._is_valid_identifier(secret_id):
            return
        secret = backend_instance.secrets[secret_id]
    except Exception:  # noqa: BLE001 (an unknown or deleted secret holds nothing to remember)
        return
    with _accessed_lock:
        _accessed[id(secret)] = secret


@functools.cache
def record_secret_access() -> None:
    """From now on, remember every secret a Secrets Manager call names (read or written). Runs once.

    Works for moto in-process and for :class:`EmulatorServer`, whose requests (from this process or
    from child processes) are served by the same backend objects. The leak guard asks
    :func:`take_accessed_secrets` for the values of just those secrets after each test.
    """
    from moto.secretsmanager.models import SecretsManagerBackend

    def recording(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            secret_id = args[0] if args else kwargs.get("secret_id", kwargs.get("name"))
            try:
                return original(self, *args, **kwargs)
            finally:
                _remember(self, secret_id)

        return wrapper

    for name in _SINGLE_SECRET_OPERATIONS:
        original = getattr(SecretsManagerBackend, name, None)
        if original is not None:
            setattr(SecretsManagerBackend, name, recording(name, original))

    batch = SecretsManagerBackend.batch_get_secret_value

    @functools.wraps(batch)
    def batch_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        ids = args[0] if args else kwargs.get("secret_id_list")
        try:
            return batch(self, *args, **kwargs)
        finally:
            for secret_id in ids or []:
                _remember(self, secret_id)

    SecretsManagerBackend.batch_get_secret_value = batch_wrapper  # type: ignore[method-assign]


def take_accessed_secrets() -> list[str]:
    """Every stored value of every version of the secrets named since the last call; forgets them."""
    with _accessed_lock:
        secrets = list(_accessed.values())
        _accessed.clear()
    values = []
    for secret in secrets:
        for version in list(getattr(secret, "versions", {}).values()):
            if "secret_string" in version:
                values.append(version["secret_string"])
    return values


def _quiet_request_log() -> None:
    """Werkzeug logs every request to stderr; the runner's output is for people."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)


class EmulatorServer:
    """moto's HTTP server on 127.0.0.1 and a free port, in a thread of this process."""

    def __init__(self, port: int = 0) -> None:
        from moto.server import ThreadedMotoServer

        from rotation_local.postgres_server import free_port

        apply_fidelity_patches()
        disable_global_cors()
        self.port = port or free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        _quiet_request_log()

    def start(self) -> EmulatorServer:
        """Serve in a thread of this process (``stop`` ends it)."""
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def client(self, config: Any = None) -> Any:
        """A Secrets Manager client of this emulator."""
        return client(self.endpoint_url, config)


def client(endpoint_url: str, config: Any = None) -> Any:
    """A Secrets Manager client of the emulator at ``endpoint_url`` (test credentials; ``config``: botocore's)."""
    import boto3

    return boto3.client(
        "secretsmanager",
        endpoint_url=endpoint_url,
        region_name=DEFAULT_REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 (the emulator's)
        config=config,
    )
