"""The rotation protocol: event parsing, the four guards, and the four steps.

Secrets Manager invokes the function once per step and may invoke any step again (after a timeout,
a crash, or a retried rotation). Every step here is therefore re-entrant: it checks what an earlier
attempt already did and only does what is left. What a step does to the target system (a database,
an API provider) is delegated to a :class:`RotationStrategy`.

Secrets Manager calls per single-user database rotation when nothing fails, with the four steps in one
warm container (what Lambda does with back-to-back invocations): createSecret 3 (describe, current
value, put), setSecret 1, testSecret 1 (describe; the values come from :class:`VersionCache`),
finishSecret 2 (describe, promote) — 7 in all. With every step in a new container: 3 + 3 + 2 + 3 = 11
(finishSecret then re-verifies the pending credentials itself before promoting them).
"""

from __future__ import annotations

import enum
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from rotation_core.errors import (
    ConfigurationTestError,
    ConfusedDeputyError,
    InvalidEventError,
    PendingNotReadyError,
    RotationError,
    RotationStateError,
    describe,
)
from rotation_core.log import get_logger, register_secret
from rotation_core.secrets import AWSCURRENT, AWSPENDING, AWSPREVIOUS, SecretMetadata, SecretStore


class Step(enum.StrEnum):
    CREATE = "createSecret"
    SET = "setSecret"
    TEST = "testSecret"
    FINISH = "finishSecret"


_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ROTATION_TOKEN = re.compile(r"^[\x21-\x7e]{36,256}$")
_MAX_SECRET_ID = 2048


@dataclass(frozen=True)
class RotationEvent:
    step: Step
    secret_id: str
    token: str
    rotation_token: str | None = None

    @classmethod
    def parse(cls, event: object) -> RotationEvent:
        """Validate the invocation event; raise :class:`InvalidEventError` naming what is wrong."""
        if not isinstance(event, Mapping):
            raise InvalidEventError("the event is not a JSON object; expected Step, SecretId and ClientRequestToken")
        step_text = event.get("Step")
        try:
            step = Step(str(step_text))
        except ValueError:
            allowed = ", ".join(s.value for s in Step)
            raise InvalidEventError(f"the event's Step {describe(step_text)} is not one of: {allowed}") from None
        secret_id = event.get("SecretId")
        if not isinstance(secret_id, str) or not secret_id or len(secret_id) > _MAX_SECRET_ID:
            raise InvalidEventError("the event has no valid SecretId (a secret ARN or name)")
        if any(ord(c) < 32 for c in secret_id):
            raise InvalidEventError("the event's SecretId contains control characters")
        token = event.get("ClientRequestToken")
        if not isinstance(token, str) or not _TOKEN.match(token):
            raise InvalidEventError(
                "the event has no valid ClientRequestToken (the version id of the rotation, 1-64 "
                "letters, digits, '-' or '_')"
            )
        rotation_token = event.get("RotationToken")
        if rotation_token is not None and (
            not isinstance(rotation_token, str) or not _ROTATION_TOKEN.match(rotation_token)
        ):
            raise InvalidEventError("the event's RotationToken must be 36 to 256 printable characters when present")
        return cls(step=step, secret_id=secret_id, token=token, rotation_token=rotation_token or None)


def same_function(first: str, second: str) -> bool:
    """Do two Lambda function ARNs name the same function (a version or alias qualifier aside)?"""
    return unqualified(first) == unqualified(second)


def unqualified(function_arn: str) -> str:
    """``arn:aws:lambda:<region>:<account>:function:<name>`` without a version or alias qualifier."""
    return ":".join(function_arn.split(":")[:7])


class PendingCheck(enum.StrEnum):
    """What testSecret found out about a pending version in this container."""

    VERIFIED = "verified"  # a new value, and it works: finishSecret here need not test it again
    COPY = "copy"  # a copy of AWSCURRENT (a configuration test's transient version): never promoted
    UNCOMPARED = "uncompared"  # it works, but AWSCURRENT was not at hand to tell a copy from a new value


class VersionCache:
    """Values of secret versions this container has already read or written, and what testSecret found.

    Secrets Manager never changes a stored version (PutSecretValue with an existing version id and a
    different value fails), so a value seen once stays true for that version id. Later steps of the same
    rotation, usually invoked in the same warm container, reuse it instead of calling the service again.
    Bounded, and emptied for a secret once its rotation finished.
    """

    def __init__(self, max_entries: int = 32) -> None:
        self._values: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._tested: dict[tuple[str, str], PendingCheck] = {}
        self._max_entries = max_entries

    def get(self, arn: str, version_id: str) -> dict[str, Any] | None:
        value = self._values.get((arn, version_id))
        if value is not None:
            register_secret(value)
        return value

    def put(self, arn: str, version_id: str, value: dict[str, Any]) -> None:
        self._values[(arn, version_id)] = value
        self._values.move_to_end((arn, version_id))
        while len(self._values) > self._max_entries:
            evicted, _ = self._values.popitem(last=False)
            self._tested.pop(evicted, None)

    def record_test(self, arn: str, version_id: str, outcome: PendingCheck) -> None:
        self._tested[(arn, version_id)] = outcome

    def test_outcome(self, arn: str, version_id: str) -> PendingCheck | None:
        return self._tested.get((arn, version_id))

    def is_verified(self, arn: str, version_id: str) -> bool:
        return self._tested.get((arn, version_id)) is PendingCheck.VERIFIED

    def forget(self, arn: str) -> None:
        for key in [key for key in self._values if key[0] == arn]:
            del self._values[key]
        self._tested = {key: outcome for key, outcome in self._tested.items() if key[0] != arn}


@dataclass
class RotationContext:
    """One invocation: the event, what DescribeSecret said, and the secret's values read on demand.

    Each value is fetched at most once per invocation, and only if the step asks for it.
    """

    event: RotationEvent
    metadata: SecretMetadata
    store: SecretStore
    cache: VersionCache = field(default_factory=VersionCache)
    _values: dict[str, dict[str, Any] | None] = field(default_factory=dict, repr=False)
    _metadata: dict[str, SecretMetadata] = field(default_factory=dict, repr=False)

    @property
    def token(self) -> str:
        return self.event.token

    @property
    def secret_id(self) -> str:
        return self.event.secret_id

    def current(self) -> dict[str, Any]:
        value = self._read(AWSCURRENT, self.metadata.version_with(AWSCURRENT))
        if value is None:
            raise RotationStateError("the secret has no AWSCURRENT value to rotate from; put an initial value first")
        return value

    def pending_or_none(self) -> dict[str, Any] | None:
        return self._read(AWSPENDING, self.token)

    def pending(self) -> dict[str, Any]:
        value = self.pending_or_none()
        if value is None:
            raise PendingNotReadyError(
                f"the AWSPENDING version {self.token} holds no value: createSecret has not run for it. "
                "Rotate the secret to run every step"
            )
        return value

    def current_if_known(self) -> dict[str, Any] | None:
        """The AWSCURRENT value if this invocation or container already read it; no Secrets Manager call."""
        if AWSCURRENT in self._values:
            return self._values[AWSCURRENT]
        version_id = self.metadata.version_with(AWSCURRENT)
        return None if version_id is None else self.cache.get(self.metadata.arn, version_id)

    def previous(self) -> dict[str, Any] | None:
        version_id = self.metadata.version_with(AWSPREVIOUS)
        return None if version_id is None else self._read(AWSPREVIOUS, version_id)

    def other_secret(self, secret_id: str) -> dict[str, Any]:
        """The AWSCURRENT value of another secret: the master secret of alternating users, an API key's admin secret.

        Read only once DescribeSecret shows it is not a secret this very function rotates. The function's role
        may read every secret whose rotation function is this function, so a rotated secret naming another
        team's rotated secret as its master or admin secret would otherwise have the function act with that
        team's credential (issue #24, section 3).
        """
        key = "other:" + secret_id
        value = self._values.get(key)
        if value is None:
            self._refuse_rotated_here(secret_id)
            value = self._values[key] = self.store.get_value(secret_id, stage=AWSCURRENT)
        return value

    def _refuse_rotated_here(self, secret_id: str) -> None:
        other = self.other_metadata(secret_id)
        if other.arn == self.metadata.arn:
            raise ConfusedDeputyError(
                "the secret names itself as its master or admin secret (masterarn / adminarn); point it at the "
                "separate secret that holds the admin credential"
            )
        this_function = self.metadata.rotation_lambda_arn
        if this_function and other.rotation_lambda_arn and same_function(other.rotation_lambda_arn, this_function):
            raise ConfusedDeputyError(
                f"the secret it names as its master or admin secret (masterarn / adminarn), {describe(other.arn)}, "
                "is itself rotated by this function: it is another rotated secret (perhaps another team's), not "
                "a master or admin secret, and a rotation never acts with another rotated secret's credential. "
                "Nothing was changed. Point masterarn / adminarn at the secret holding the admin credential, "
                "which this function must not rotate; if the secret was edited, make its previous value "
                "AWSCURRENT again"
            )

    def other_metadata(self, secret_id: str) -> SecretMetadata:
        """What DescribeSecret says about another secret (the master secret's tags)."""
        key = "other:" + secret_id
        known = self._metadata.get(key)
        if known is None:
            known = self._metadata[key] = self.store.describe(secret_id)
        return known

    def _read(self, stage: str, version_id: str | None) -> dict[str, Any] | None:
        if stage not in self._values:
            value = None
            if version_id is not None:
                value = self.cache.get(self.metadata.arn, version_id)
                if value is None:
                    value = self.store.find_value(self.secret_id, stage=stage, version_id=version_id)
                    if value is not None:
                        self.cache.put(self.metadata.arn, version_id, value)
            self._values[stage] = value
        return self._values[stage]


class RotationStrategy(Protocol):
    """What differs between single user, alternating users and API keys."""

    #: True when building the pending value has effects outside Secrets Manager (minting an API
    #: key). createSecret then checks for an existing pending value first, so a retry never mints twice.
    mints_on_create: bool

    #: True when testSecret may read AWSCURRENT to tell a configuration test's copy of it from a new value
    #: (a call in a new container). False keeps single-user testSecret and finishSecret at the calls they
    #: make today: they compare only with a current value the container already holds.
    reads_current_in_test: bool

    def build_pending(self, current: dict[str, Any], context: RotationContext) -> dict[str, Any]:
        """The new secret value, built from the current one with every unknown key kept."""
        ...

    def after_create(self, context: RotationContext, pending: dict[str, Any], stored: bool) -> None:
        """createSecret tried to store ``pending``; ``stored`` is False when an earlier value stands.

        Where building the value had effects (a minted key), this is where the ones that did not make
        it into Secrets Manager are undone.
        """
        ...

    def set_pending(self, context: RotationContext) -> None:
        """Make the pending credential valid in the target system (idempotent)."""
        ...

    def test_pending(self, context: RotationContext) -> None:
        """Prove the pending credential works; change nothing."""
        ...

    def test_configuration(self, context: RotationContext) -> None:
        """Secrets Manager's configuration test: prove the current setup would rotate; change nothing.

        Runs instead of :meth:`test_pending` when AWSPENDING holds no value or a copy of AWSCURRENT, and
        logs what it checked.
        """
        ...

    def after_promote(self, context: RotationContext) -> None:
        """Clean-up once the pending version is AWSCURRENT (e.g. revoke an old key)."""
        ...


_NEVER_PROMOTED = (
    "AWSPENDING holds no new value (a copy of AWSCURRENT, or a configuration test's transient version with "
    "RotateImmediately=false); finishSecret never promotes it. Rotate the secret to run every step"
)


class Rotator:
    """Guards an invocation and dispatches it to the step it names."""

    def __init__(self, store: SecretStore, strategy: RotationStrategy) -> None:
        self.store = store
        self.strategy = strategy
        self.cache = VersionCache()
        self._steps: dict[Step, Callable[[RotationContext], None]] = {
            Step.CREATE: self.create_secret,
            Step.SET: self.set_secret,
            Step.TEST: self.test_secret,
            Step.FINISH: self.finish_secret,
        }

    def handle(self, raw_event: object) -> bool:
        """Run the step the event names; False when the guards found nothing to do (already AWSCURRENT)."""
        event = RotationEvent.parse(raw_event)
        logger = get_logger()
        logger.thread_safe_append_keys(step=event.step.value, secret_id=event.secret_id, token=event.token)
        metadata = self.store.describe(event.secret_id)
        logger.thread_safe_append_keys(secret_arn=metadata.arn)
        if not self._guard(event, metadata):
            return False
        self._steps[event.step](RotationContext(event=event, metadata=metadata, store=self.store, cache=self.cache))
        logger.info("step complete")
        return True

    def _guard(self, event: RotationEvent, metadata: SecretMetadata) -> bool:
        """The protocol's four checks; False means the step has nothing to do."""
        if not metadata.rotation_enabled:
            raise RotationStateError(
                "rotation is not enabled for this secret; enable it with RotateSecret (or a "
                "RotationSchedule) before invoking the function"
            )
        stages = metadata.versions.get(event.token)
        if stages is None:
            raise RotationStateError(
                f"{event.token} is not a version of this secret; only Secrets Manager's RotateSecret "
                "should invoke the function"
            )
        if AWSCURRENT in stages:
            get_logger().info("version is already AWSCURRENT; nothing to do")
            return False
        if AWSPENDING not in stages:
            raise RotationStateError(
                f"version {event.token} is not AWSPENDING (stages: {', '.join(stages) or 'none'}); "
                "start a new rotation instead of re-running this one"
            )
        return True

    def create_secret(self, context: RotationContext) -> None:
        if self.strategy.mints_on_create and context.pending_or_none() is not None:
            get_logger().info("AWSPENDING already holds a value; nothing to create")
            return
        pending = self.strategy.build_pending(context.current(), context)
        created = self.store.put_pending(
            context.secret_id, context.token, pending, rotation_token=context.event.rotation_token
        )
        if created:
            self.cache.put(context.metadata.arn, context.token, pending)
            get_logger().info("stored the new value as AWSPENDING")
        else:
            get_logger().info("AWSPENDING already held a value from an earlier attempt; kept it")
        self.strategy.after_create(context, pending, created)

    def set_secret(self, context: RotationContext) -> None:
        self.strategy.set_pending(context)

    def test_secret(self, context: RotationContext) -> None:
        arn, token = context.metadata.arn, context.token
        pending = context.pending_or_none()
        if pending is None:
            self._configuration_test(context, "holds no value")
            return
        current = self._current_for_comparison(context)
        if current is not None and pending == current:
            self.cache.record_test(arn, token, PendingCheck.COPY)
            self._configuration_test(context, "holds a copy of AWSCURRENT")
            return
        try:
            self.strategy.test_pending(context)
        except PendingNotReadyError:
            if current is None and pending == context.current():  # a failure: one more call costs nothing
                self.cache.record_test(arn, token, PendingCheck.COPY)
                self._configuration_test(context, "holds a copy of AWSCURRENT")
                return
            raise
        if current is not None:
            self.cache.record_test(arn, token, PendingCheck.VERIFIED)
            return
        self.cache.record_test(arn, token, PendingCheck.UNCOMPARED)
        get_logger().info(
            "AWSPENDING was not compared with AWSCURRENT (that would take another call here): if this is Secrets "
            "Manager's configuration test (RotateImmediately=false) with a copy of AWSCURRENT, the credentials "
            "that just logged in are the current ones, so the setup works. finishSecret compares before promoting"
        )

    def _current_for_comparison(self, context: RotationContext) -> dict[str, Any] | None:
        """AWSCURRENT's value where it costs no call (or where the strategy may spend one), else None."""
        return context.current() if self.strategy.reads_current_in_test else context.current_if_known()

    def _configuration_test(self, context: RotationContext, what: str) -> None:
        """testSecret alone on a transient version (RotateImmediately=false): test the setup, change nothing."""
        logger = get_logger()
        logger.info(
            f"AWSPENDING {what}: this is Secrets Manager's configuration test (RotateImmediately=false); "
            "checking that the rotation would work, without changing anything"
        )
        try:
            self.strategy.test_configuration(context)
        except RotationError as error:
            raise ConfigurationTestError(
                f"Secrets Manager's configuration test (AWSPENDING {what}) failed, nothing was changed: "
                f"{error.message}",
                category=error.category,
            ) from None
        logger.info("configuration test passed; nothing was changed")

    def finish_secret(self, context: RotationContext) -> None:
        current_version = context.metadata.version_with(AWSCURRENT)
        if current_version is None:
            raise RotationStateError("no version of the secret is AWSCURRENT; restore one before rotating")
        outcome = self.cache.test_outcome(context.metadata.arn, context.token)
        if outcome is PendingCheck.COPY:
            raise PendingNotReadyError(_NEVER_PROMOTED)
        if outcome is not PendingCheck.VERIFIED:
            # testSecret ran in another container (or not at all, or could not compare): never promote
            # unproven credentials, nor a copy of the current ones.
            # AWSCURRENT is read even in a new container (one call): only the comparison can tell a
            # configuration test's copy, whose credentials work, from a new value.
            get_logger().info("verifying the AWSPENDING credentials before promoting them")
            if context.pending() == context.current():
                raise PendingNotReadyError(_NEVER_PROMOTED)
            self.strategy.test_pending(context)
        self.store.promote(context.secret_id, context.token, current_version)
        self.cache.forget(context.metadata.arn)
        get_logger().info("moved AWSCURRENT to the new version", extra={"previous_version": current_version})
        self.strategy.after_promote(context)
