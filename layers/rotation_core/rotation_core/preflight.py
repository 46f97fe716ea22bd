"""The preflight: every check a rotation depends on, run by the deployed function itself, changing nothing.

An operator invokes the function with ``{"Preflight": {"SecretId": "<secret ARN or name>"}}`` (that
shape and nothing else) and gets back a report::

    {"ok": false, "checks": [{"name": "target_tls", "status": "failed", "category": "tls", "fix": "..."}, ...]}

one entry per check, in a fixed order; ``status`` is ``ok``, ``failed`` or ``skipped`` (not run because a
check it depends on failed, or not applicable, with the reason in ``fix``), ``category`` is the
:class:`~rotation_core.errors.Category` a failure of that check reports (the error's own when it
failed), ``fix`` says what to do (empty when ``ok``). ``ok`` is true when no check failed.

The checks run the code a rotation runs, not a copy of it: the settings and the strategy the function
builds, :class:`~rotation_core.secrets.SecretStore` for DescribeSecret and GetSecretValue, the
engine's secret parsing and ``connect`` (TLS verified as configured), the strategy's master
resolution and same-server check, the provider's listing and the API-key binding proof. A database
strategy walks its checks itself (``check_configuration``, the walk its configuration test takes too,
:mod:`rotation_core.checks`); the preflight records each outcome. What a rotation would then change is
checked by read-only queries instead (the engines' ``check_*`` methods).

It never writes: the store it uses refuses PutSecretValue and UpdateSecretVersionStage, the provider
refuses to mint or revoke, and the engines' checks only read (PostgreSQL's inside a read-only
transaction). The function's role grants nothing more than a rotation needs, so the preflight reads
only what the role may read: a secret that does not name this function as its rotation function is
reported as exactly that. Messages are the errors' own, which never hold a secret value.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from rotation_core.causes import cause_of
from rotation_core.errors import (
    Category,
    ConfusedDeputyError,
    InvalidEventError,
    RotationError,
    RotationStateError,
    SecretFormatError,
    SecretsManagerError,
    describe,
)
from rotation_core.log import get_logger, redact
from rotation_core.rotator import (
    RotationContext,
    RotationEvent,
    RotationStrategy,
    Rotator,
    Step,
    VersionCache,
    same_function,
    unqualified,
)
from rotation_core.secrets import AWSCURRENT, AWSPENDING, SecretMetadata, SecretStore

if TYPE_CHECKING:
    from rotation_core.api_keys import ApiKeyRotation
    from rotation_core.engines.base import DatabaseEngine, DatabaseLogin, Session
    from rotation_core.providers import ApiKeyProvider, IssuedKey, KeyRecord, KeyRef, StoredKey, Verdict
    from rotation_core.strategies import DatabaseStrategy

T = TypeVar("T")

PREFLIGHT = "Preflight"
_SECRET_ID = "SecretId"  # noqa: S105  # nosec B105 (an event key, not a secret)
_TOKEN = "preflight"  # noqa: S105  # nosec B105 (stands in for a rotation token; no version has it)
_EVENT_SHAPE = 'a preflight event is {"Preflight": {"SecretId": "<secret ARN or name>"}} and nothing else'


class Status(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    category: Category
    fix: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status.value, "category": self.category.value, "fix": self.fix}


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.status is not Status.FAILED for check in self.checks)

    def check(self, name: str) -> Check:
        return next(check for check in self.checks if check.name == name)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [check.as_dict() for check in self.checks]}


# The checks, in report order, with the category each reports when it fails.
CONFIGURATION_CHECKS = (("function_configuration", Category.CONFIGURATION),)
SECRET_CHECKS = (
    ("secrets_manager_endpoint", Category.SECRETS_MANAGER),
    ("rotation_function", Category.PROTOCOL),
    ("rotation_enabled", Category.PROTOCOL),
    ("no_pending_rotation", Category.PROTOCOL),
    ("kms_decrypt", Category.SECRETS_MANAGER),
    ("secret_json", Category.SECRET_FORMAT),
)
DATABASE_CHECKS = (
    ("target_reachable", Category.UNREACHABLE),
    ("target_tls", Category.TLS),
    ("current_login", Category.AUTH_FAILED),
)
SINGLE_USER_CHECKS = (("own_password_change", Category.PERMISSION),)
ALTERNATING_CHECKS = (
    ("master_secret", Category.SECRETS_MANAGER),
    ("master_login", Category.AUTH_FAILED),
    ("alternate_pair", Category.CONFUSED_DEPUTY),
    ("master_privileges", Category.PERMISSION),
)
PROBE_CHECKS = (("test_query", Category.VERIFICATION),)
# Dual passwords: the server keeps them (MySQL 8.0.14+, not MariaDB) for the account's plugin; then the right to
# set them: the user's own (own_password_change) or, with "masterarn", the master's (master_*).
DUAL_PASSWORD_CHECKS = (("dual_password", Category.CONFIGURATION),)
API_KEY_CHECKS = (
    ("admin_secret", Category.SECRETS_MANAGER),
    ("provider_reachable", Category.UNREACHABLE),
    ("provider_tls", Category.TLS),
    ("admin_credential", Category.AUTH_FAILED),
    ("key_binding", Category.CONFUSED_DEPUTY),
)


def is_preflight(event: object) -> bool:
    return isinstance(event, Mapping) and PREFLIGHT in event


def parse_preflight(event: object) -> RotationEvent:
    """The secret a preflight event names, as an event of the secret (validated as a rotation event's SecretId)."""
    body = event.get(PREFLIGHT) if isinstance(event, Mapping) else None
    if not isinstance(event, Mapping) or set(event) != {PREFLIGHT} or not isinstance(body, Mapping):
        raise InvalidEventError(_EVENT_SHAPE)
    if set(body) != {_SECRET_ID}:
        raise InvalidEventError(_EVENT_SHAPE)
    return RotationEvent.parse({"Step": Step.TEST.value, "SecretId": body[_SECRET_ID], "ClientRequestToken": _TOKEN})


class _Checks:
    """The planned checks; each gets one result, and those that never ran are reported skipped.

    It is also the :class:`~rotation_core.checks.CheckRunner` a database strategy's walk records into.
    """

    checks_rights = True  # the preflight also reads whether the rights a password change needs are there

    def __init__(self, plan: Iterable[tuple[str, Category]]) -> None:
        self._plan = dict(plan)
        self._results: dict[str, Check] = {}

    def run(self, name: str, check: Callable[[], T], *, also: str | None = None) -> T | None:
        try:
            result = check()
        except RotationError as error:
            if also is not None and error.category is not self._plan[name]:
                self.ok(name)
                self.failed(also, error)
            else:
                self.failed(name, _with_current_credentials(error) if name == "test_query" else error)
            return None
        self.ok(name)
        if also is not None:
            self.ok(also)
        return result

    def login(self, engine: DatabaseEngine, login: DatabaseLogin) -> Session | None:
        """The engine's own login, its failure read as unreachable (``target_reachable``), TLS (``target_tls``) or
        refused (``current_login``)."""
        try:
            session = engine.connect(login)
        except RotationError as error:
            if error.category is Category.UNREACHABLE:
                self.failed("target_reachable", error)
            elif error.category in (Category.TLS, Category.CONFIGURATION):
                if error.category is Category.TLS:
                    self.ok("target_reachable")
                self.failed("target_tls", error)
            else:
                self.ok("target_reachable")
                self._tls_result(login)
                self.failed("current_login", error)
            return None
        self.ok("target_reachable")
        self._tls_result(login)
        self.ok("current_login")
        return session

    def skip(self, name: str, why: str) -> None:
        """A check that does not apply; a login that cannot be tried skips its reach and TLS checks too."""
        if name == "current_login":
            self.skipped("target_reachable", why)
            self.skipped("target_tls", why)
        self.skipped(name, why)

    def passed(self, message: str, **extra: object) -> None:
        """Nothing to add: each check's outcome is logged as it is recorded."""

    def _tls_result(self, login: DatabaseLogin) -> None:
        if login.tls.verifies_certificate:
            self.ok("target_tls")
            return
        self.skipped(
            "target_tls",
            f'the secret asks for sslmode {login.tls.value} ("sslmode", or "ssl": false), so the server\'s certificate '
            "is not verified (and below require the password may cross the network unencrypted); remove "
            '"ssl"/"sslmode" from the secret for verified TLS',
        )

    def ok(self, name: str) -> None:
        self._set(Check(name, Status.OK, self._plan[name], ""))

    def failed(self, name: str, error: RotationError) -> None:
        fix = error.message
        if error.category is Category.AUTH_FAILED:  # a refused login's message says what, not what to do
            fix = f"{fix.rstrip('.')}. {cause_of(Category.AUTH_FAILED).fix}"
        self._set(Check(name, Status.FAILED, error.category, redact(fix)))

    def skipped(self, name: str, why: str) -> None:
        self._set(Check(name, Status.SKIPPED, self._plan[name], why))

    def failed_first_open(self, error: RotationError) -> None:
        """An error no check handled is reported by the first check without a result (the last one if none)."""
        open_names = [name for name in self._plan if name not in self._results]
        name = open_names[0] if open_names else next(reversed(self._plan))
        self._results.pop(name, None)
        self.failed(name, error)

    def _set(self, check: Check) -> None:
        if check.name in self._results:
            return
        self._results[check.name] = check
        level = get_logger().warning if check.status is Status.FAILED else get_logger().info
        level(
            f"preflight check {check.name}: {check.status.value}",
            extra={"check": check.name, "status": check.status.value, "category": check.category.value},
        )

    def report(self) -> Report:
        failed = [name for name in self._plan if self._results.get(name, _NOT_RUN).status is Status.FAILED]
        why = f"not run because {failed[0]} failed" if failed else "not run"
        for name in self._plan:
            if name not in self._results:
                self.skipped(name, why)
        report = Report(tuple(self._results[name] for name in self._plan))
        get_logger().info(
            "preflight passed" if report.ok else "preflight failed",
            extra={"ok": report.ok, "failed_checks": failed},
        )
        return report


_NOT_RUN = Check("", Status.SKIPPED, Category.INTERNAL, "")


def configuration_failure(error: RotationError) -> Report:
    """The report when the function cannot even build its settings and strategy."""
    checks = _Checks(CONFIGURATION_CHECKS + SECRET_CHECKS)
    checks.failed("function_configuration", error)
    return checks.report()


def run_preflight(rotator: Rotator, request: RotationEvent, *, function_arn: str | None) -> Report:
    """Every check for ``request.secret_id``; the report, never an exception for a failed check."""
    strategy = rotator.strategy
    checks = _Checks(CONFIGURATION_CHECKS + SECRET_CHECKS + _strategy_plan(strategy))
    checks.ok("function_configuration")
    store = ReadOnlyStore(rotator.store)
    try:
        metadata = _secret_checks(checks, store, request.secret_id, function_arn)
        if metadata is None:
            return checks.report()
        context = RotationContext(event=request, metadata=metadata, store=store, cache=VersionCache())
        current = _current_value(checks, context)
        if current is None:
            return checks.report()
        if _is_api_key(strategy):
            _api_key_checks(checks, cast("ApiKeyRotation", strategy), context, current)
        else:
            cast("DatabaseStrategy", strategy).check_configuration(context, checks)
    except RotationError as error:  # a check that raised outside its own handling: report it, never lose it
        checks.failed_first_open(error)
    except Exception as error:  # noqa: BLE001 (a bug: reported without values, the report still returned)
        message = f"unexpected {type(error).__name__}: {redact(str(error))}"
        checks.failed_first_open(RotationError(message, category=Category.INTERNAL))
    return checks.report()


def _is_api_key(strategy: RotationStrategy) -> bool:
    return strategy.mints_on_create  # the one strategy that mints on create is the API-key rotation


def _strategy_plan(strategy: RotationStrategy) -> tuple[tuple[str, Category], ...]:
    if _is_api_key(strategy):
        return API_KEY_CHECKS
    from rotation_core.dual_password import DualPassword

    if isinstance(strategy, DualPassword):
        return DATABASE_CHECKS + DUAL_PASSWORD_CHECKS + SINGLE_USER_CHECKS + ALTERNATING_CHECKS + PROBE_CHECKS
    from rotation_core.strategies import AlternatingUsers

    if isinstance(strategy, AlternatingUsers):
        return DATABASE_CHECKS + ALTERNATING_CHECKS + PROBE_CHECKS
    return DATABASE_CHECKS + SINGLE_USER_CHECKS + PROBE_CHECKS


# --- the secret and its rotation configuration ---------------------------------------------------


def _secret_checks(
    checks: _Checks, store: SecretStore, secret_id: str, function_arn: str | None
) -> SecretMetadata | None:
    try:
        metadata = store.describe(secret_id)
    except SecretsManagerError as error:
        if not error.answered:
            checks.failed("secrets_manager_endpoint", error)
            return None
        checks.ok("secrets_manager_endpoint")
        if error.error_code == "AccessDeniedException":
            checks.failed("rotation_function", RotationStateError(_not_attached(secret_id, function_arn)))
        else:
            checks.failed("rotation_function", error)
        return None
    checks.ok("secrets_manager_endpoint")
    attached = metadata.rotation_lambda_arn
    if function_arn is None:
        checks.skipped(
            "rotation_function", "the invocation carried no Lambda context (invoked_function_arn) to compare with"
        )
    elif attached is None:
        checks.failed("rotation_function", RotationStateError(_not_attached(metadata.arn, function_arn)))
    elif not same_function(attached, function_arn):
        checks.failed(
            "rotation_function",
            RotationStateError(
                f"the secret names another rotation function ({describe(attached)}), so this function's role may not "
                f"use it. To rotate it with this one: {_attach_command(metadata.arn, function_arn)}"
            ),
        )
    else:
        checks.ok("rotation_function")
    if metadata.rotation_enabled:
        checks.ok("rotation_enabled")
    else:
        checks.failed(
            "rotation_enabled",
            RotationStateError(
                "rotation is not enabled for this secret; enable it without rotating now: "
                + _attach_command(metadata.arn, function_arn)
            ),
        )
    unfinished = [v for v, stages in metadata.versions.items() if AWSPENDING in stages and AWSCURRENT not in stages]
    if unfinished:
        version = unfinished[0]
        checks.failed(
            "no_pending_rotation",
            RotationStateError(
                f"version {version} is AWSPENDING but not AWSCURRENT: a rotation did not finish, and Secrets Manager "
                "refuses to start another. Rotate again to finish it (aws secretsmanager rotate-secret --secret-id "
                f"{metadata.arn}); if it was abandoned before setSecret ran, remove the label instead (aws "
                f"secretsmanager update-secret-version-stage --secret-id {metadata.arn} --version-stage AWSPENDING "
                f"--remove-from-version-id {version})"
            ),
        )
    else:
        checks.ok("no_pending_rotation")
    return metadata


def _attach_command(secret: str, function_arn: str | None) -> str:
    function = unqualified(function_arn) if function_arn else "<this function's ARN>"
    return (
        f"aws secretsmanager rotate-secret --secret-id {secret} --rotation-lambda-arn {function} "
        "--rotation-rules '{\"AutomaticallyAfterDays\": 90}' --no-rotate-immediately"
    )


def _not_attached(secret: str, function_arn: str | None) -> str:
    return (
        "the secret does not name this function as its rotation function: the function's role may read a secret "
        "only while it does (and while its name matches the function's secrets pattern, the <Function>Secrets "
        f"parameter). Attach it first, then run the preflight again: {_attach_command(secret, function_arn)}"
    )


def _current_value(checks: _Checks, context: RotationContext) -> dict[str, Any] | None:
    """GetSecretValue of AWSCURRENT: proves the decrypt (KMS) and gives the JSON."""
    try:
        current = context.current()
    except SecretsManagerError as error:
        checks.failed("kms_decrypt", error)
        return None
    except (SecretFormatError, RotationStateError) as error:
        checks.ok("kms_decrypt")
        checks.failed("secret_json", error)
        return None
    checks.ok("kms_decrypt")
    return current


# --- databases -----------------------------------------------------------------------------------


def _with_current_credentials(error: RotationError) -> RotationError:
    """The probe's failure, said of the credentials the preflight used (testSecret uses the new ones)."""
    return RotationError(
        f"with the current credentials (testSecret runs TEST_QUERY with the new ones, which have the same "
        f"grants): {error.message}",
        category=error.category,
    )


# --- API keys ------------------------------------------------------------------------------------


def _api_key_checks(
    checks: _Checks, strategy: ApiKeyRotation, context: RotationContext, current: dict[str, Any]
) -> None:
    from rotation_core.api_keys import key_name_prefix

    admin = _admin_secret(checks, strategy, context, current)
    found = None if admin is None else _provider(checks, strategy, context, current, admin)
    if found is None:
        return
    provider, key = found
    guarded = ReadOnlyProvider(provider)
    try:
        guarded.find(key_name_prefix(context.metadata.arn))  # what createSecret lists first, as the admin
    except RotationError as error:
        if error.category is Category.UNREACHABLE:
            checks.failed("provider_reachable", error)
        elif error.category is Category.TLS:
            checks.ok("provider_reachable")
            checks.failed("provider_tls", error)
        else:
            checks.ok("provider_reachable")
            _provider_tls(checks, provider)
            checks.failed("admin_credential", error)
        return
    checks.ok("provider_reachable")
    _provider_tls(checks, provider)
    checks.ok("admin_credential")
    checks.run("key_binding", lambda: strategy.prove_binding(guarded, key))


def _admin_secret(
    checks: _Checks, strategy: ApiKeyRotation, context: RotationContext, current: dict[str, Any]
) -> dict[str, Any] | None:
    """The admin secret "adminarn" names (None: it cannot be used, reported)."""
    try:
        return strategy.admin_secret(current, context, "current")
    except SecretsManagerError as error:
        checks.failed("admin_secret", error)
        checks.skipped("secret_json", "checked once the admin secret can be read (it names the provider)")
    except ConfusedDeputyError as error:  # the rotated secret itself, or another secret this function rotates
        checks.failed("admin_secret", error)
        checks.skipped(
            "secret_json", "checked once it names an admin secret this function may use (which names the provider)"
        )
    except RotationError as error:
        checks.failed("secret_json", error)
    return None


def _provider(
    checks: _Checks, strategy: ApiKeyRotation, context: RotationContext, current: dict[str, Any], admin: dict[str, Any]
) -> tuple[ApiKeyProvider, StoredKey] | None:
    """The provider the admin secret names and the rotated secret's key (None: they do not fit, reported)."""
    from rotation_core.providers import AdminSecretFormatError

    try:
        found = strategy.provider_for(current, admin, context, "current")
    except ConfusedDeputyError as error:  # both secrets are usable, but name different providers or accounts
        checks.ok("secret_json")
        checks.ok("admin_secret")
        checks.failed("key_binding", error)
        return None
    except AdminSecretFormatError as error:  # read, but lacking what the function needs (SendGrid's scopes ...)
        checks.failed("admin_secret", error)
        checks.skipped("secret_json", "checked once the admin secret is complete (it names the provider)")
        return None
    except RotationError as error:
        checks.failed("secret_json", error)
        return None
    checks.ok("secret_json")
    checks.ok("admin_secret")
    return found


def _provider_tls(checks: _Checks, provider: ApiKeyProvider) -> None:
    endpoint = getattr(provider, "base_url", None)
    if getattr(endpoint, "scheme", "https") == "https":
        checks.ok("provider_tls")
    else:
        checks.skipped("provider_tls", "the admin secret pins a plain-http base_url (allowed on loopback only)")


# --- the read-only guards ------------------------------------------------------------------------


class PreflightWriteError(RotationError):
    """The preflight tried to change something: a bug, refused before anything was sent."""

    category = Category.INTERNAL


class ReadOnlyStore(SecretStore):
    """The rotator's store (its client), with every write refused."""

    def __init__(self, store: SecretStore) -> None:
        super().__init__(store.client)

    def put_pending(self, *args: Any, **kwargs: Any) -> bool:
        raise PreflightWriteError("the preflight never stores a secret version (PutSecretValue refused)")

    def promote(self, *args: Any, **kwargs: Any) -> None:
        raise PreflightWriteError("the preflight never moves a stage (UpdateSecretVersionStage refused)")


class ReadOnlyProvider:
    """A provider that may list, look up and verify keys, never mint or revoke one."""

    def __init__(self, provider: ApiKeyProvider) -> None:
        self._provider = provider
        self.name = provider.name
        self.display_name = provider.display_name
        self.value_field = provider.value_field
        self.id_field = provider.id_field

    def stored_key(self, secret: Mapping[str, Any], label: str) -> StoredKey:
        return self._provider.stored_key(secret, label)

    def find(self, name_prefix: str) -> list[KeyRef]:
        return self._provider.find(name_prefix)

    def lookup(self, key_id: str) -> KeyRecord | None:
        return self._provider.lookup(key_id)

    def successor_template(self, record: KeyRecord) -> Mapping[str, Any]:
        return self._provider.successor_template(record)

    def verify(self, key: StoredKey) -> Verdict:
        return self._provider.verify(key)

    def issue(self, name: str, template: Mapping[str, Any]) -> IssuedKey:
        raise PreflightWriteError("the preflight never mints a key")

    def revoke(self, key_id: str) -> bool:
        raise PreflightWriteError("the preflight never revokes a key")
