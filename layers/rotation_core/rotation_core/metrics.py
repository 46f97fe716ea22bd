"""Rotation health as CloudWatch metrics, in Embedded Metric Format through Powertools Metrics.

Every invocation of a rotation step writes one EMF document to stdout when it ends (CloudWatch Logs
turns it into metrics; nothing calls the CloudWatch API, so the role needs no permission beyond
writing its own logs):

* ``StepSucceeded`` or ``StepFailed`` (Count, 1) and ``StepDuration`` (Milliseconds), under the
  dimension sets ``[FunctionName, Target, Step]`` and ``[FunctionName, Target]``; a failure also under
  ``[FunctionName, Category]`` and, when the deployment is known (``METRICS_DEPLOYMENT``, the stack
  name in the template), ``[Deployment, Category]``, which the template's alarms watch. A failure's
  document also carries the troubleshooting ``Cause`` and ``Fix`` (:mod:`rotation_core.causes`) as
  properties, so a metric found in the logs says what to do.
* ``RotationCompleted`` (Count, 1) once per rotation, when finishSecret moved AWSCURRENT, under
  ``[FunctionName, Target]`` and ``[Deployment]``.
* A preflight writes ``PreflightPassed`` or ``PreflightFailed`` under ``[FunctionName, Target]``.
* The drain check (:mod:`rotation_core.drain`) writes ``CredentialStillInUse`` (Count: open sessions of the user
  whose password an alternating-users rotation is about to reset; 1 or 0 for an API key about to be revoked that
  its provider reports used lately) under ``[FunctionName, Target]`` and ``[Deployment]``, where the target can
  tell; nothing where it cannot.

``Target`` is the database engine (``postgres``, ``mysql``) or the API-key provider (``datadog`` ...;
``unknown`` until the admin secret named it), ``FunctionName`` the function's name from the Lambda
context. No dimension or property ever holds a secret's name or ARN (the log line has the ARN), so the
number of metrics stays bounded whatever the number of secrets. The namespace is
``POWERTOOLS_METRICS_NAMESPACE`` (default ``SecretsRotation``); ``POWERTOOLS_METRICS_DISABLED=true``
turns the documents off.

Importing this module imports nothing heavy; Powertools is loaded when the first document is written
(the logger has loaded it by then anyway). Writing a document never fails an invocation.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator, Mapping

from rotation_core.causes import cause_of
from rotation_core.errors import Category
from rotation_core.settings import MetricsSettings

# Metric names.
STEP_SUCCEEDED = "StepSucceeded"
STEP_FAILED = "StepFailed"
STEP_DURATION = "StepDuration"
ROTATION_COMPLETED = "RotationCompleted"
PREFLIGHT_PASSED = "PreflightPassed"
PREFLIGHT_FAILED = "PreflightFailed"
CREDENTIAL_STILL_IN_USE = "CredentialStillInUse"

# Dimension names.
FUNCTION = "FunctionName"
TARGET = "Target"
STEP = "Step"
CATEGORY = "Category"
DEPLOYMENT = "Deployment"

UNKNOWN = "unknown"
_STEPS = frozenset({"createSecret", "setSecret", "testSecret", "finishSecret"})

_current: contextvars.ContextVar[InvocationMetrics | None] = contextvars.ContextVar("rotation_metrics", default=None)


def step_of(event: object) -> str:
    """The event's step as a dimension value: one of the four steps, else ``unknown`` (bounded either way)."""
    step = event.get("Step") if isinstance(event, Mapping) else None
    return step if isinstance(step, str) and step in _STEPS else UNKNOWN


class InvocationMetrics:
    """The metrics of one invocation: started when it begins, written once when it ends."""

    def __init__(
        self,
        settings: MetricsSettings,
        *,
        function_name: str | None,
        target: str,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.settings = settings
        self.function_name = function_name or UNKNOWN
        self.target = target
        self._clock = clock
        self._started = clock()

    def note_target(self, name: str) -> None:
        """The engine or provider became known during the invocation (a registered name, never a secret's text)."""
        self.target = name

    def step_succeeded(self, step: str, *, rotation_completed: bool) -> None:
        values = self._values(step)
        self._write(
            {STEP_SUCCEEDED: ("Count", 1), STEP_DURATION: ("Milliseconds", self._elapsed_ms())},
            [[FUNCTION, TARGET, STEP], [FUNCTION, TARGET]],
            values,
        )
        if rotation_completed:
            sets = [[FUNCTION, TARGET]] + ([[DEPLOYMENT]] if self.settings.deployment else [])
            self._write({ROTATION_COMPLETED: ("Count", 1)}, sets, values)

    def step_failed(self, step: str, category: Category) -> None:
        cause = cause_of(category)
        values = {**self._values(step), CATEGORY: category.value}
        sets = [[FUNCTION, TARGET, STEP], [FUNCTION, TARGET], [FUNCTION, CATEGORY]]
        if self.settings.deployment:
            sets.append([DEPLOYMENT, CATEGORY])
        self._write(
            {STEP_FAILED: ("Count", 1), STEP_DURATION: ("Milliseconds", self._elapsed_ms())},
            sets,
            values,
            properties={"Cause": cause.title, "Fix": cause.fix},
        )

    def preflight(self, *, ok: bool) -> None:
        name = PREFLIGHT_PASSED if ok else PREFLIGHT_FAILED
        self._write({name: ("Count", 1)}, [[FUNCTION, TARGET]], self._values(None))

    def credential_in_use(self, count: int) -> None:
        """The drain check's count for the credential about to be disabled (0 when nothing uses it)."""
        sets = [[FUNCTION, TARGET]] + ([[DEPLOYMENT]] if self.settings.deployment else [])
        self._write({CREDENTIAL_STILL_IN_USE: ("Count", count)}, sets, self._values(None))

    def _values(self, step: str | None) -> dict[str, str]:
        values = {FUNCTION: self.function_name, TARGET: self.target}
        if step is not None:
            values[STEP] = step
        if self.settings.deployment:
            values[DEPLOYMENT] = self.settings.deployment
        return values

    def _elapsed_ms(self) -> float:
        return round((self._clock() - self._started) * 1000, 3)

    def _write(
        self,
        metrics: dict[str, tuple[str, float]],
        dimension_sets: list[list[str]],
        values: dict[str, str],
        *,
        properties: dict[str, str] | None = None,
    ) -> None:
        """One EMF document on stdout; a failure to write it is logged, never raised."""
        try:
            from aws_lambda_powertools.metrics import EphemeralMetrics

            # service="" keeps Powertools from adding a "service" dimension of its own.
            document = EphemeralMetrics(namespace=self.settings.namespace, service="")
            first, *others = dimension_sets
            for name in first:
                document.add_dimension(name=name, value=values[name])
            for names in others:
                document.add_dimensions(**{name: values[name] for name in names})
            for name, (unit, value) in metrics.items():
                document.add_metric(name=name, unit=unit, value=value)
            for key, text in (properties or {}).items():
                document.add_metadata(key=key, value=text)
            document.flush_metrics()
        except Exception as error:  # noqa: BLE001 (metrics must never fail a rotation)
            from rotation_core.log import get_logger

            get_logger().warning("could not write the invocation's metrics", extra={"error_type": type(error).__name__})


@contextlib.contextmanager
def invocation_metrics(recorder: InvocationMetrics) -> Iterator[InvocationMetrics]:
    """Make ``recorder`` the current invocation's, for :func:`note_target` (context-local, like the redactor)."""
    token = _current.set(recorder)
    try:
        yield recorder
    finally:
        _current.reset(token)


def note_target(name: str) -> None:
    """Tell the current invocation's metrics which engine or provider it works on (no-op outside one)."""
    recorder = _current.get()
    if recorder is not None:
        recorder.note_target(name)


def note_credential_in_use(count: int) -> None:
    """The drain check's count, as a metric of the current invocation (no-op outside one)."""
    recorder = _current.get()
    if recorder is not None:
        recorder.credential_in_use(count)
