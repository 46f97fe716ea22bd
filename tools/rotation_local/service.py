"""The service's side of ``RotateSecret``: stage AWSPENDING, invoke the four steps, clear AWSPENDING.

Used by the local run and the tests, so both drive rotations the way Secrets Manager does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rotation_local import emulator

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")

StepInvoker = Callable[[Mapping[str, Any]], None]


def event(step: str, secret_id: str, token: str) -> dict[str, str]:
    return {"Step": step, "SecretId": secret_id, "ClientRequestToken": token}


def rotate(
    secret_id: str,
    invoke_step: StepInvoker,
    *,
    token: str | None = None,
    steps: Iterable[str] = STEPS,
) -> str:
    """Run one rotation; returns its token. A failing step raises and leaves AWSPENDING staged,
    as the service does, so that the rotation can be retried with the same token."""
    if token is None or token not in emulator.version_stages(secret_id):
        token = emulator.stage_pending_placeholder(secret_id, token)
    steps = list(steps)
    for step in steps:
        invoke_step(event(step, secret_id, token))
    if steps and steps[-1] == "finishSecret":
        emulator.clear_pending(secret_id)
    return token


def configuration_test(secret_id: str, invoke_step: StepInvoker, *, copy_current: bool) -> str:
    """What ``RotateSecret`` with ``RotateImmediately=false`` does: testSecret alone on a transient version.

    The version holds no value or (``copy_current``) a copy of AWSCURRENT's, and is removed afterwards,
    whether testSecret passed or failed; returns its token.
    """
    token = emulator.stage_transient_version(secret_id, copy_current=copy_current)
    try:
        invoke_step(event("testSecret", secret_id, token))
    finally:
        emulator.remove_version(secret_id, token)
    return token
