"""The fault matrix's machinery: every step of every function under every fault, then the service's retry.

For each function and each step one fault is injected while that step runs in a new container (a
handler with an empty version cache, so the step makes every Secrets Manager call it can make):

* the database (or provider) unreachable: its driver is pointed at a closed port on 127.0.0.1;
* one Secrets Manager operation failing with ThrottlingException, InternalServiceError (HTTP 500) or
  AccessDeniedException: a ``before-call`` hook on the handler's own boto3 client answers instead of
  the emulator, as the client would see it once its own retries are exhausted;
* the step invoked twice in a row, and twice at once by two containers (threads);
* a crash right after the credential changed but before Secrets Manager was updated, and a crash
  after ``UpdateSecretVersionStage`` succeeded but before its answer arrived;
* testSecret on a pending version whose setSecret never ran (with and without createSecret: without it,
  the version holds no value, as in Secrets Manager's configuration test, and testSecret must pass).

Then the service retries the rotation with the same token, all four steps. Every case must end with
the rotation complete, the new AWSCURRENT logging in, no version lost and AWSPENDING on no version
other than AWSCURRENT. This module is the machinery; the matrices are ``test_fault_matrix_databases.py``
(every database engine's local target, on every server kind, every strategy the kind supports) and
``api_keys/test_fault_matrix_api_key.py``, each printed when its module ends.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.config import Config

from rotation_core.errors import RotationError
from rotation_core.handler import RotationHandler
from rotation_local import emulator, service
from rotation_local.postgres_server import free_port

CREATE, SET, TEST, FINISH = service.STEPS
THROTTLING, INTERNAL, ACCESS_DENIED = "ThrottlingException", "InternalServiceError", "AccessDeniedException"
SM_ERRORS = {THROTTLING: 400, INTERNAL: 500, ACCESS_DENIED: 400}
DESCRIBE, GET, PUT, UPDATE_STAGE = "DescribeSecret", "GetSecretValue", "PutSecretValue", "UpdateSecretVersionStage"
# The Secrets Manager operations each step makes in a new container (an empty version cache).
OPERATIONS = {
    CREATE: (DESCRIBE, GET, PUT),
    SET: (DESCRIBE, GET),
    TEST: (DESCRIBE, GET),
    FINISH: (DESCRIBE, GET, UPDATE_STAGE),
}
UNREACHABLE, TWICE, CONCURRENT = "target unreachable", "invoked twice in a row", "invoked twice concurrently"
CRASH_AFTER_CHANGE, CRASH_AFTER_PROMOTE = "crash after credential change", "crash after promote, answer lost"
TEST_BARE, TEST_WITHOUT_SET = "testSecret, nothing ran", "testSecret, setSecret never ran"


@dataclass(frozen=True)
class Case:
    """One cell of the matrix: a fault, the step it hits, and what else it needs."""

    fault: str
    step: str
    operation: str = ""
    code: str = ""

    @property
    def id(self) -> str:
        detail = f"-{self.operation}-{self.code}" if self.operation else ""
        return f"{self.step}-{self.fault.replace(' ', '_').replace(',', '')}{detail}"

    @property
    def label(self) -> str:
        return f"{self.operation} {self.code}" if self.operation else self.fault


def matrix_cases() -> list[Case]:
    """Every case for one function: 30 Secrets Manager failures, 12 target/re-entrancy cases, 4 special ones."""
    cases = [
        Case(fault="secrets manager", step=step, operation=operation, code=code)
        for step in service.STEPS
        for operation in OPERATIONS[step]
        for code in SM_ERRORS
    ]
    cases += [Case(fault=fault, step=step) for fault in (UNREACHABLE, TWICE, CONCURRENT) for step in service.STEPS]
    cases += [
        Case(fault=CRASH_AFTER_CHANGE, step=SET),
        Case(fault=CRASH_AFTER_PROMOTE, step=FINISH),
        Case(fault=TEST_BARE, step=TEST),
        Case(fault=TEST_WITHOUT_SET, step=TEST),
    ]
    return cases


CASES = matrix_cases()
CASE_IDS = [case.id for case in CASES]


class SimulatedCrashError(Exception):
    """The container died (timeout, out of memory) at this point."""


@dataclass
class Result:
    function: str
    case: Case
    hits: int
    first_outcome: str
    completed: bool
    current_logs_in: bool
    versions_lost: int
    stale_pending: bool
    extra: str = ""

    @property
    def lockout(self) -> bool:
        return not self.current_logs_in


@dataclass
class Target:
    """One function under test.

    ``new_container`` builds a handler as a new Lambda container would (settings, engine, an empty
    version cache); it shares the module's boto3 client, whose events carry the injected faults.
    """

    name: str
    client: Any
    new_container: Callable[[], RotationHandler]
    new_secret: Callable[[], str]
    logs_in: Callable[[dict[str, Any]], bool]
    unreachable: Callable[[], contextlib.AbstractContextManager[list[int]]]
    crash_after_change: Callable[[], contextlib.AbstractContextManager[list[int]]]
    check_after: Callable[[str, dict[str, Any], dict[str, Any]], str] = field(default=lambda _arn, _cur, _prev: "")
    passwords: list[str] = field(default_factory=list)  # every credential created, for the leak guard
    # How two containers run a step at once; by default both start together at DescribeSecret.
    concurrently: Callable[[Target, str, str, str], str] | None = None


def sm_client_for(endpoint_url: str) -> Any:
    """A client of the emulator with the function's own retry settings (faults are injected on its events)."""
    return emulator.client(
        endpoint_url, Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=15)
    )


def value_of(client: Any, arn: str, stage: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(client.get_secret_value(SecretId=arn, VersionStage=stage)["SecretString"])
    return result


@contextlib.contextmanager
def botocore_handler(client: Any, event: str, handler: Callable[..., Any], *, first: bool = False) -> Iterator[None]:
    """``handler`` runs on the botocore ``event`` of ``client`` while the block runs (``first``: before the others)."""
    unique_id = f"fault-matrix-{uuid.uuid4().hex}"
    register = client.meta.events.register_first if first else client.meta.events.register
    register(event, handler, unique_id=unique_id)
    try:
        yield
    finally:
        client.meta.events.unregister(event, unique_id=unique_id)


@contextlib.contextmanager
def sm_failure(client: Any, operation: str, code: str) -> Iterator[list[int]]:
    """Every ``operation`` call on ``client`` fails with ``code``, as after the client's retries; yields [hits]."""
    hits = [0]

    def fail(**_kwargs: Any) -> tuple[Any, dict[str, Any]]:
        hits[0] += 1
        body = {
            "Error": {"Code": code, "Message": f"injected {code}"},
            "ResponseMetadata": {"HTTPStatusCode": SM_ERRORS[code]},
        }
        return SimpleNamespace(status_code=SM_ERRORS[code], headers={}), body

    with botocore_handler(client, f"before-call.secrets-manager.{operation}", fail, first=True):
        yield hits


@contextlib.contextmanager
def crash_after_call(client: Any, operation: str) -> Iterator[list[int]]:
    """``operation`` reaches the service and succeeds, then the container dies before it sees the answer."""
    hits = [0]

    def crash(http_response: Any, **_kwargs: Any) -> None:
        if http_response.status_code < 300:
            hits[0] += 1
            raise SimulatedCrashError(f"the container died after {operation} succeeded")

    with botocore_handler(client, f"after-call.secrets-manager.{operation}", crash):
        yield hits


@contextlib.contextmanager
def both_start_together(client: Any) -> Iterator[threading.Barrier]:
    """Two invocations wait for each other at their first call (DescribeSecret), then race."""
    barrier = threading.Barrier(2, timeout=20)

    def wait(**_kwargs: Any) -> None:
        barrier.wait()

    with botocore_handler(client, f"before-call.secrets-manager.{DESCRIBE}", wait):
        yield barrier


@contextlib.contextmanager
def connect_redirected(module: Any, attribute: str = "connect") -> Iterator[list[int]]:
    """The driver's ``connect`` goes to a closed port on 127.0.0.1: the database is unreachable."""
    real = getattr(module, attribute)
    dead_port = free_port()
    hits = [0]

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        hits[0] += 1
        return real(*args, **{**kwargs, "port": dead_port})

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, attribute, unreachable)
        yield hits


@contextlib.contextmanager
def crash_after_method(owner: type, *names: str) -> Iterator[list[int]]:
    """Whichever of ``owner``'s methods ``names`` runs does its work, then the container dies before the step can
    report anything (methods the class lacks are left out)."""
    hits = [0]

    def crashing(name: str) -> Callable[..., None]:
        real = getattr(owner, name)

        def crash(self: Any, *args: Any, **kwargs: Any) -> None:
            real(self, *args, **kwargs)
            hits[0] += 1
            raise SimulatedCrashError(f"the container died right after {name}")

        return crash

    with pytest.MonkeyPatch.context() as patch:
        for name in names:
            if hasattr(owner, name):
                patch.setattr(owner, name, crashing(name))
        yield hits


def invoke(handler: RotationHandler, arn: str, token: str, step: str) -> str:
    """Run one step; 'ok' or the failure's category (the handler wraps everything in RotationError)."""
    try:
        handler(service.event(step, arn, token), None)
    except RotationError as error:
        return f"{error.category.value}"
    return "ok"


def invoke_concurrently(target: Target, arn: str, token: str, step: str) -> str:
    outcomes: list[str] = ["", ""]
    containers = [target.new_container(), target.new_container()]

    def run(index: int) -> None:
        outcomes[index] = invoke(containers[index], arn, token, step)

    with both_start_together(target.client):
        threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    return "+".join(outcomes)


def pending_versions(arn: str) -> list[str]:
    return sorted(v for v, s in emulator.version_stages(arn).items() if emulator.AWSPENDING in s)


def run_case(target: Target, case: Case) -> Result:
    """Inject the fault into one step, let the service retry the rotation, and check the end state."""
    arn = target.new_secret()
    before = emulator.version_stages(arn)
    initial = next(v for v, s in before.items() if emulator.AWSCURRENT in s)
    original = value_of(target.client, arn, emulator.AWSCURRENT)
    token = emulator.stage_pending_placeholder(arn)

    prepare = target.new_container()
    steps_before = service.STEPS[: service.STEPS.index(case.step)]
    if case.fault == TEST_BARE:
        steps_before = ()
    elif case.fault == TEST_WITHOUT_SET:
        steps_before = (CREATE,)
    for step in steps_before:
        prepare(service.event(step, arn, token), None)

    container = target.new_container()  # the faulted step lands in a new container
    hits = [1]
    if case.operation:
        with sm_failure(target.client, case.operation, case.code) as hits:
            outcome = invoke(container, arn, token, case.step)
    elif case.fault == UNREACHABLE:
        with target.unreachable() as hits:
            outcome = invoke(container, arn, token, case.step)
    elif case.fault == TWICE:
        outcome = invoke(container, arn, token, case.step) + "," + invoke(container, arn, token, case.step)
    elif case.fault == CONCURRENT:
        outcome = (target.concurrently or invoke_concurrently)(target, arn, token, case.step)
    elif case.fault == CRASH_AFTER_CHANGE:
        with target.crash_after_change() as hits:
            outcome = invoke(container, arn, token, case.step)
    elif case.fault == CRASH_AFTER_PROMOTE:
        with crash_after_call(target.client, UPDATE_STAGE) as hits:
            outcome = invoke(container, arn, token, case.step)
    else:  # testSecret on a version whose setSecret never ran
        outcome = invoke(container, arn, token, case.step)

    # Whatever happened, at most the rotation's own version is AWSPENDING.
    assert set(pending_versions(arn)) <= {token}, f"{case.id}: {emulator.version_stages(arn)}"

    # The service retries the whole rotation with the same token, in the container that saw the fault.
    completed = True
    try:
        service.rotate(arn, lambda event: container(dict(event), None), token=token)
    except RotationError:
        completed = False

    after = emulator.version_stages(arn)
    current_version = next(v for v, s in after.items() if emulator.AWSCURRENT in s)
    current = value_of(target.client, arn, emulator.AWSCURRENT)
    pending = pending_versions(arn)
    return Result(
        function=target.name,
        case=case,
        hits=hits[0],
        first_outcome=outcome,
        completed=completed and current_version == token and after.get(initial) == [emulator.AWSPREVIOUS],
        current_logs_in=target.logs_in(current),
        versions_lost=len(set(before) - set(after)),
        stale_pending=bool(set(pending) - {current_version}),
        extra=target.check_after(arn, current, original),
    )


def check(result: Result) -> None:
    """The invariants every case must satisfy."""
    case = result.case
    assert result.hits > 0 or case.fault == UNREACHABLE, f"{case.id}: the fault was never hit"
    assert result.current_logs_in, f"{case.id}: lockout, AWSCURRENT does not log in"
    assert result.completed, f"{case.id}: the retried rotation did not complete"
    assert result.versions_lost == 0, f"{case.id}: versions lost"
    assert not result.stale_pending, f"{case.id}: AWSPENDING left on a version that is not AWSCURRENT"
    assert result.extra == "", f"{case.id}: {result.extra}"
    if case.operation or case.fault in (CRASH_AFTER_CHANGE, CRASH_AFTER_PROMOTE):
        assert result.first_outcome != "ok", f"{case.id}: the faulted step reported success"
    if case.fault == TEST_BARE:
        # A pending version with no value is what Secrets Manager's configuration test (RotateImmediately=false)
        # stages: testSecret tests the setup, which works, and changes nothing.
        assert result.first_outcome == "ok", f"{case.id}: {result.first_outcome}"
    if case.fault == TEST_WITHOUT_SET and result.first_outcome != "ok":
        assert result.first_outcome == "protocol", f"{case.id}: {result.first_outcome}"
    if case.operation:
        assert result.first_outcome == "secrets_manager", f"{case.id}: {result.first_outcome}"


def format_matrix(function_names: list[str], results: list[Result]) -> list[str]:
    """One block per function: a row per fault, a column per step (first outcome; '-' = not applicable)."""
    lines = ["", "fault matrix (first outcome of the faulted step; every case then retried by the service):"]
    width = 48
    for name in function_names:
        rows: dict[str, dict[str, str]] = {}
        for result in results:
            if result.function == name:
                cell = result.first_outcome if result.hits else "not hit: ok"
                rows.setdefault(result.case.label, {})[result.case.step] = cell
        if not rows:
            continue
        lines.append(f"  {name}")
        lines.append("    " + "fault".ljust(width) + "".join(step.ljust(24) for step in service.STEPS))
        for label, cells in rows.items():
            lines.append("    " + label.ljust(width) + "".join(cells.get(s, "-")[:23].ljust(24) for s in service.STEPS))
    mine = [r for r in results if r.function in function_names]
    lines.append(
        f"  cases run: {len(mine)}, rotations completed after the retry: {sum(r.completed for r in mine)}, "
        f"lockouts: {sum(r.lockout for r in mine)}, versions lost: {sum(r.versions_lost for r in mine)}, "
        f"stale AWSPENDING: {sum(r.stale_pending for r in mine)}"
    )
    return lines


def print_matrix(request: pytest.FixtureRequest, function_names: list[str], results: list[Result]) -> None:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    context = capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext()
    with context:
        for line in format_matrix(function_names, results):
            reporter.write_line(line)
