"""Rotation under live traffic: applications using a secret while it rotates, and what they see.

``N`` consumers, each an application with its own cache of the secret (``examples/refresh_on_rotation.py``, the
pattern ``docs/consumers.md`` recommends, loaded as it is), send requests in a loop: every other request opens a
new connection, the others use the consumer's pooled connection; an authentication failure refreshes the secret
from AWSCURRENT once and retries once. While they run, ``R`` rotations are driven as Secrets Manager drives them
(stage AWSPENDING, the four steps with a gap between invocations, clear AWSPENDING). A prober meanwhile fetches
AWSCURRENT fresh and logs in with it every few milliseconds, which measures the window in which a freshly
refreshed AWSCURRENT could not log in.

Counted per run: requests (new connection / pooled), failures absorbed by the retry (the first attempt was
refused, the retry with the refreshed secret worked), consumer-visible failures (the retry failed too), other
failures (anything but a refused login), the windows, and the rotations that completed. ``bench/run.py`` reports
them per engine, strategy and server kind; ``tests/integration/test_consumers.py`` asserts the counts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any

from rotation_local import emulator, service
from rotation_local.invoke import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "refresh_on_rotation.py"

#: Runs one step of a rotation: (step, secret ARN, token).
StepRunner = Callable[[str, str, str], None]


def load_example() -> ModuleType:
    """``examples/refresh_on_rotation.py``, as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("refresh_on_rotation", EXAMPLE)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {EXAMPLE}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class LoadSettings:
    consumers: int = 8
    rotations: int = 5
    step_gap: float = 0.3  # seconds between the service's step invocations
    think_time: float = 0.05  # seconds a consumer waits between requests
    settle: float = 1.0  # seconds of traffic before the first rotation and after each one
    probe_interval: float = 0.02
    max_age: int = 300  # the consumers' cache of the secret, in seconds


@dataclass
class ConsumerCounts:
    requests: int = 0
    new_connection: int = 0
    pooled: int = 0
    absorbed: int = 0  # refused, then the retry with the refreshed secret worked
    visible: int = 0  # refused, and the retry was refused too
    other_errors: int = 0  # anything but a refused login (never expected)

    def add(self, other: ConsumerCounts) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass
class LoadResult:
    settings: LoadSettings
    counts: ConsumerCounts
    windows: list[float] = field(default_factory=list)  # seconds in which a fresh AWSCURRENT could not log in
    rotations: int = 0
    completed: int = 0
    probes: int = 0
    refused_probes: int = 0
    probe_resolution: float = 0.0  # seconds between two probes (median): how precisely windows are known
    probe_errors: int = 0
    errors: list[str] = field(default_factory=list)  # why a rotation failed (type and message, never a value)

    @property
    def longest_window(self) -> float:
        return max(self.windows, default=0.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self.counts),
            "longest_window_ms": round(self.longest_window * 1000, 1),
            "windows_ms": [round(w * 1000, 1) for w in self.windows],
            "rotations": self.rotations,
            "completed": self.completed,
            "probes": self.probes,
            "refused_probes": self.refused_probes,
            "probe_resolution_ms": round(self.probe_resolution * 1000, 1),
            "probe_errors": self.probe_errors,
            "errors": self.errors,
        }


class Consumer(threading.Thread):
    """One application: its own cache of the secret (its own client), a pooled connection, requests in a loop."""

    def __init__(self, example: ModuleType, make_client: Callable[[], Any], secret_id: str, *, ca_bundle: str,
                 settings: LoadSettings, stop: threading.Event) -> None:  # fmt: skip
        super().__init__(daemon=True)
        from aws_lambda_powertools.utilities.parameters import SecretsProvider

        secret = example.RotatingSecret(
            secret_id, max_age=settings.max_age, provider=SecretsProvider(boto3_client=make_client())
        )
        self.database = example.Database(secret, ca_bundle=ca_bundle)
        self.is_auth_failure: Callable[[Exception], bool] = example.is_auth_failure
        self.counts = ConsumerCounts()
        self._settings = settings
        self._halt = stop

    def run(self) -> None:
        pooled = False
        try:
            while not self._halt.is_set():
                self._request(pooled)
                pooled = not pooled
                self._halt.wait(self._settings.think_time)
        finally:
            self.database.close()

    def _request(self, pooled: bool) -> None:
        counts = self.counts
        counts.requests += 1
        if pooled:
            counts.pooled += 1
        else:
            counts.new_connection += 1
        refreshes = self.database.refreshes
        try:
            if pooled:
                self.database.query_pooled()
            else:
                self.database.query_new_connection()
        except Exception as error:  # noqa: BLE001 (every failure is counted, none may stop the consumer)
            if self.is_auth_failure(error):
                counts.visible += 1
            else:
                counts.other_errors += 1
            return
        if self.database.refreshes > refreshes:
            counts.absorbed += 1


@dataclass(frozen=True)
class Probe:
    """One attempt of the prober: when it started, read AWSCURRENT and ended, and whether the login worked."""

    started: float
    read: float
    ended: float
    ok: bool


class Prober(threading.Thread):
    """Fetches AWSCURRENT fresh and logs in with it, again and again: the windows in which that failed."""

    def __init__(self, example: ModuleType, client: Any, secret_id: str, *, ca_bundle: str, interval: float,
                 stop: threading.Event) -> None:  # fmt: skip
        super().__init__(daemon=True)
        self._example, self._client, self._secret_id = example, client, secret_id
        self._ca_bundle, self._interval, self._halt = ca_bundle, interval, stop
        self.attempts: list[Probe] = []
        self.errors = 0  # attempts that failed otherwise than by a refused login

    def run(self) -> None:
        import json

        while not self._halt.is_set():
            started = time.monotonic()
            value = json.loads(
                self._client.get_secret_value(SecretId=self._secret_id, VersionStage="AWSCURRENT")["SecretString"]
            )
            read = time.monotonic()
            try:
                self._example.connect(value, ca_bundle=self._ca_bundle).close()
            except Exception as error:  # noqa: BLE001 (a refused login is the measure; anything else is counted)
                if self._example.is_auth_failure(error):
                    self.attempts.append(Probe(started, read, time.monotonic(), ok=False))
                else:
                    self.errors += 1
            else:
                self.attempts.append(Probe(started, read, time.monotonic(), ok=True))
            self._halt.wait(max(0.0, self._interval - (time.monotonic() - started)))

    def windows(self) -> list[float]:
        """Each run of refused attempts, as an estimate of how long a fresh AWSCURRENT could not log in.

        The password changed between the login of the last accepted attempt before the run and that of its first
        refused one; AWSCURRENT moved between the read of the run's last refused attempt and that of the next
        accepted one. The window is taken from midpoint to midpoint (a login is judged about when it ends), so it
        is known to within about one attempt's duration, which :meth:`resolution` gives.
        """
        found = []
        attempts = self.attempts
        index = 0
        while index < len(attempts):
            if attempts[index].ok:
                index += 1
                continue
            first = index
            while index < len(attempts) and not attempts[index].ok:
                index += 1
            last = index - 1
            before = attempts[first - 1].ended if first > 0 else attempts[first].started
            changed = (before + attempts[first].ended) / 2
            after = attempts[index].read if index < len(attempts) else attempts[last].ended
            promoted = (attempts[last].read + after) / 2
            found.append(max(promoted - changed, 0.0))
        return found

    def resolution(self) -> float:
        """The median time between the starts of two attempts, in seconds."""
        starts = [attempt.started for attempt in self.attempts]
        gaps = sorted(b - a for a, b in itertools.pairwise(starts))
        return gaps[len(gaps) // 2] if gaps else 0.0


def function_steps(app: ModuleType) -> StepRunner:
    """Steps through a function module's handler, as Lambda would invoke it (a warm container)."""

    def run(step: str, arn: str, token: str) -> None:
        app.lambda_handler(service.event(step, arn, token), None)

    return run


def rotate_with_gaps(arn: str, run_step: StepRunner, gap: float) -> None:
    """One rotation as the service runs it, waiting ``gap`` seconds between step invocations; raises on a failure
    (AWSPENDING is then removed, as an operator would after giving up, so the next rotation can start)."""
    token = emulator.stage_pending_placeholder(arn)
    try:
        for index, step in enumerate(service.STEPS):
            if index:
                time.sleep(gap)
            run_step(step, arn, token)
    except BaseException:
        emulator.drop_pending(arn)
        raise
    emulator.clear_pending(arn)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The functions log JSON lines to stdout, as in Lambda; the run's own report stays readable without them."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def run_under_load(
    *,
    secret_id: str,
    endpoint_url: str,
    ca_bundle: str,
    run_step: StepRunner,
    settings: LoadSettings,
    quiet: bool = True,
) -> LoadResult:
    """Consumers and a prober on ``secret_id`` while ``settings.rotations`` rotations run through ``run_step``."""
    example = load_example()
    stop = threading.Event()

    def make_client() -> Any:
        return emulator.client(endpoint_url)

    consumers = [
        Consumer(example, make_client, secret_id, ca_bundle=ca_bundle, settings=settings, stop=stop)
        for _ in range(settings.consumers)
    ]
    prober = Prober(example, make_client(), secret_id, ca_bundle=ca_bundle, interval=settings.probe_interval, stop=stop)
    result = LoadResult(settings=settings, counts=ConsumerCounts())
    threads: list[threading.Thread] = [prober, *consumers]
    for thread in threads:
        thread.start()
    try:
        with _quiet() if quiet else contextlib.nullcontext():
            time.sleep(settings.settle)
            for _ in range(settings.rotations):
                result.rotations += 1
                try:
                    rotate_with_gaps(secret_id, run_step, settings.step_gap)
                except Exception as error:  # noqa: BLE001 (a failed rotation is a result, not the end of the run)
                    result.errors.append(f"{type(error).__name__}: {error}"[:300])
                else:
                    result.completed += 1
                time.sleep(settings.settle)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    for consumer in consumers:
        result.counts.add(consumer.counts)
    result.windows = prober.windows()
    result.probes = len(prober.attempts)
    result.refused_probes = sum(1 for attempt in prober.attempts if not attempt.ok)
    result.probe_resolution = prober.resolution()
    result.probe_errors = prober.errors
    return result
