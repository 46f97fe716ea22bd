"""Property test: random sequences of steps, failures and retries never lock anyone out.

Hypothesis drives the service side (start a rotation, invoke a step, retry, finish) against the real
state machine, moto in-process and the fake database, injecting Secrets Manager errors, an
unreachable database and crashes right after the credential changed. After every action:

* at most one version is AWSPENDING;
* alternating users: AWSCURRENT always logs in; single user: AWSCURRENT logs in, or the rotation in
  progress already moved the password to AWSPENDING (and retrying it completes the rotation);
* a step invoked with a token that is already AWSCURRENT changes nothing.

At the end, retrying the rotation in progress as the service would must complete it with a working
AWSCURRENT.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from moto import mock_aws

from rotation_core.errors import RotationError
from rotation_core.rotator import Rotator
from rotation_core.secrets import SecretStore
from rotation_core.settings import Settings, Strategy
from rotation_core.strategies import AlternatingUsers, SingleUser
from rotation_local import emulator, service
from unit.fakes import FakeDatabase, FakeEngine, FakeUser

FAULTS = ("none", "throttled_call", "database_unreachable", "crash_after_change")


class CrashError(Exception):
    """The function died (timeout, out of memory) right after changing the credential."""


class CrashingEngine(FakeEngine):
    crash_next_change = False

    def _maybe_crash(self) -> None:
        if self.crash_next_change:
            self.crash_next_change = False
            raise CrashError

    def set_own_password(self, session: Any, login: Any, new_password: str) -> None:
        super().set_own_password(session, login, new_password)
        self._maybe_crash()

    def set_clone_password(self, admin: Any, request: Any) -> None:
        super().set_clone_password(admin, request)
        self._maybe_crash()


class RotationMachine(RuleBasedStateMachine):
    strategy: Strategy = Strategy.SINGLE_USER

    def __init__(self) -> None:
        super().__init__()
        emulator.apply_fidelity_patches()  # AWS's PutSecretValue semantics, which createSecret relies on
        self.mock = mock_aws()
        self.mock.start()
        self.client = boto3.client("secretsmanager", region_name=emulator.DEFAULT_REGION)
        self.fail_call_number: int | None = None
        self.calls_seen = 0
        self.client.meta.events.register("before-call.secrets-manager.*", self._maybe_throttle)
        self.database = FakeDatabase(
            users={"app": FakeUser(password="Initial-Password-1"), "admin": FakeUser(password="Admin-Password-1")},
            admins={"admin"},
        )
        config = Settings(strategy=self.strategy)
        self.engine = CrashingEngine(config, self.database)
        strategy_type = AlternatingUsers if self.strategy is Strategy.ALTERNATING_USERS else SingleUser
        self.rotator = Rotator(SecretStore(self.client), strategy_type(self.engine, config))
        base = {"engine": "postgres", "host": "db.example", "port": 5432, "dbname": "app"}
        value = {**base, "username": "app", "password": "Initial-Password-1"}
        if self.strategy is Strategy.ALTERNATING_USERS:
            master = {**base, "username": "admin", "password": "Admin-Password-1"}
            value["masterarn"] = self.client.create_secret(Name="master", SecretString=json.dumps(master))["ARN"]
        self.arn = self.client.create_secret(Name="app", SecretString=json.dumps(value))["ARN"]
        emulator.enable_rotation(self.arn)
        self.token: str | None = None

    def teardown(self) -> None:
        try:
            self._complete_rotation_in_progress()
            assert self._logs_in(self._value("AWSCURRENT"))
        finally:
            self.mock.stop()

    # --- helpers -------------------------------------------------------------------------------
    def _maybe_throttle(self, **_kwargs: Any) -> None:
        self.calls_seen += 1
        if self.fail_call_number is not None and self.calls_seen == self.fail_call_number:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "Injected")

    def _stages(self) -> dict[str, list[str]]:
        return emulator.version_stages(self.arn)

    def _value(self, stage: str) -> dict[str, Any] | None:
        version = next((v for v, s in self._stages().items() if stage in s), None)
        if version is None:
            return None
        secret = emulator.backend().secrets[self.arn].versions[version]
        return json.loads(secret["secret_string"]) if "secret_string" in secret else None

    def _logs_in(self, value: dict[str, Any] | None) -> bool:
        if value is None:
            return False
        user = self.database.users.get(value["username"])
        return user is not None and user.password == value["password"]

    def _invoke(self, step: str, token: str) -> bool:
        try:
            self.rotator.handle(service.event(step, self.arn, token))
        except (RotationError, CrashError):
            return False
        return True

    def _complete_rotation_in_progress(self) -> None:
        """What Secrets Manager does: retry the whole rotation with the same token until it succeeds."""
        self.fail_call_number = None
        self.engine.crash_next_change = False
        self.database.reachable = True
        if self.token is not None:
            for step in service.STEPS:
                assert self._invoke(step, self.token), f"retried {step} failed"
            emulator.clear_pending(self.arn)
            self.token = None

    # --- rules ---------------------------------------------------------------------------------
    @precondition(lambda self: self.token is None)
    @rule()
    def start_rotation(self) -> None:
        self.token = emulator.stage_pending_placeholder(self.arn)

    @precondition(lambda self: self.token is not None)
    @rule(step=st.sampled_from(service.STEPS), fault=st.sampled_from(FAULTS), call=st.integers(1, 3))
    def invoke_step(self, step: str, fault: str, call: int) -> None:
        assert self.token is not None
        self.calls_seen = 0
        self.fail_call_number = call if fault == "throttled_call" else None
        self.database.reachable = fault != "database_unreachable"
        self.engine.crash_next_change = fault == "crash_after_change"
        succeeded = self._invoke(step, self.token)
        self.fail_call_number = None
        self.database.reachable = True
        self.engine.crash_next_change = False
        if succeeded and step == "finishSecret" and "AWSCURRENT" in self._stages()[self.token]:
            emulator.clear_pending(self.arn)  # the service ends the rotation
            self.token = None

    @precondition(lambda self: self.token is not None)
    @rule()
    def service_retries_whole_rotation(self) -> None:
        self._complete_rotation_in_progress()

    @rule(step=st.sampled_from(service.STEPS))
    def step_on_current_token_changes_nothing(self, step: str) -> None:
        current = next(v for v, s in self._stages().items() if "AWSCURRENT" in s)
        before_stages = self._stages()
        before_db = {name: user.password for name, user in self.database.users.items()}
        before_connections = len(self.database.connections)

        assert self._invoke(step, current)

        assert self._stages() == before_stages
        assert {name: user.password for name, user in self.database.users.items()} == before_db
        assert len(self.database.connections) == before_connections

    # --- invariants ----------------------------------------------------------------------------
    @invariant()
    def at_most_one_pending(self) -> None:
        assert sum("AWSPENDING" in stages for stages in self._stages().values()) <= 1

    @invariant()
    def nobody_locked_out(self) -> None:
        current = self._value("AWSCURRENT")
        if self.strategy is Strategy.ALTERNATING_USERS:
            assert self._logs_in(current)
        else:
            assert self._logs_in(current) or self._logs_in(self._value("AWSPENDING"))


class AlternatingRotationMachine(RotationMachine):
    strategy = Strategy.ALTERNATING_USERS


PROPERTY_SETTINGS = settings(
    max_examples=40,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.usefixtures("aws_env")
def test_state_machine_single_user_random_faults_never_lock_out() -> None:
    RotationMachine.TestCase.settings = PROPERTY_SETTINGS
    RotationMachine.TestCase().runTest()


@pytest.mark.usefixtures("aws_env")
def test_state_machine_alternating_users_random_faults_never_lock_out() -> None:
    AlternatingRotationMachine.TestCase.settings = PROPERTY_SETTINGS
    AlternatingRotationMachine.TestCase().runTest()
