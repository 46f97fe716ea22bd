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
resolution and same-server check, the provider's listing and the API-key binding proof. What a
rotation would then change is checked by read-only queries instead (the engines' ``check_*`` methods).

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
from typing import TYPE_CHECKING, Any

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
    from rotation_core.dual_password import DualPassword
    from rotation_core.engines.base import DatabaseEngine, DatabaseLogin, DualPasswordEngine, Session
    from rotation_core.providers import ApiKeyProvider, IssuedKey, KeyRecord, KeyRef, StoredKey, Verdict
    from rotation_core.strategies import AlternatingUsers, DatabaseStrategy

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
    """The planned checks; each gets one result, and those that never ran are reported skipped."""

    def __init__(self, plan: Iterable[tuple[str, Category]]) -> None:
        self._plan = dict(plan)
        self._results: dict[str, Check] = {}

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
            _api_key_checks(checks, strategy, context, current)  # type: ignore[arg-type]
        else:
            _database_checks(checks, strategy, context, current)  # type: ignore[arg-type]
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


def _database_checks(
    checks: _Checks, strategy: DatabaseStrategy, context: RotationContext, current: dict[str, Any]
) -> None:
    from rotation_core.dual_password import DualPassword
    from rotation_core.strategies import AlternatingUsers

    if isinstance(strategy, DualPassword):
        _dual_password_checks(checks, strategy, context, current)
        return
    alternating = strategy if isinstance(strategy, AlternatingUsers) else None
    try:
        login = strategy.login(current, "current")
        alternate = alternating._other_username(login.username) if alternating is not None else None
    except RotationError as error:
        checks.failed("secret_json", error)
        return
    checks.ok("secret_json")
    engine = strategy.engine
    session = _connect(checks, engine, login)
    try:
        if alternating is None:
            if session is not None:
                _run(checks, "own_password_change", lambda: engine.check_own_password(session, login))
        elif alternate is not None:
            _master_checks(
                checks, alternating, context=context, current=current, login=login, caller=session, alternate=alternate
            )
        if session is not None:
            _run(checks, "test_query", lambda: _probe(engine, session, strategy.settings.test_query))
    finally:
        if session is not None:
            session.close()


def _connect(checks: _Checks, engine: DatabaseEngine, login: DatabaseLogin) -> Session | None:
    """The engine's own login, its failure read as unreachable, TLS or refused."""
    try:
        session = engine.connect(login)
    except RotationError as error:
        if error.category is Category.UNREACHABLE:
            checks.failed("target_reachable", error)
        elif error.category in (Category.TLS, Category.CONFIGURATION):
            if error.category is Category.TLS:
                checks.ok("target_reachable")
            checks.failed("target_tls", error)
        else:
            checks.ok("target_reachable")
            _tls_result(checks, login)
            checks.failed("current_login", error)
        return None
    checks.ok("target_reachable")
    _tls_result(checks, login)
    checks.ok("current_login")
    return session


def _tls_result(checks: _Checks, login: DatabaseLogin) -> None:
    if login.tls.verifies_certificate:
        checks.ok("target_tls")
        return
    checks.skipped(
        "target_tls",
        f'the secret asks for sslmode {login.tls.value} ("sslmode", or "ssl": false), so the server\'s certificate is '
        'not verified (and below require the password may cross the network unencrypted); remove "ssl"/"sslmode" '
        "from the secret for verified TLS",
    )


def _master_checks(
    checks: _Checks,
    strategy: AlternatingUsers,
    *,
    context: RotationContext,
    current: dict[str, Any],
    login: DatabaseLogin,
    caller: Session | None,
    alternate: str,
) -> None:
    try:
        master = strategy.master_login(context, strategy.master_arn_of(current), login)
    except RotationError as error:
        checks.failed("master_secret", error)
        return
    checks.ok("master_secret")
    if caller is None:
        return  # the current login failed: the master is checked once it works
    engine = strategy.engine
    try:
        admin = engine.connect(master)
    except RotationError as error:
        checks.failed("master_login", error)
        return
    checks.ok("master_login")
    try:
        original = strategy._original_username(login.username)
        allow = strategy.allows_privileged(original)

        def pair() -> None:
            engine.check_pair(admin, caller=caller, original=original, target=alternate, allow_privileged=allow)

        _run(checks, "alternate_pair", pair)
        _run(
            checks,
            "master_privileges",
            lambda: engine.check_clone_rights(admin, caller=caller, original=original, target=alternate),
        )
    finally:
        admin.close()


def _dual_password_checks(
    checks: _Checks, strategy: DualPassword, context: RotationContext, current: dict[str, Any]
) -> None:
    """The user changes its own password (own_password_change), or the master named by "masterarn" does (master_*), or
    the service that manages the user does (own_password_change: the user's binding and state there)."""
    try:
        login = strategy.own_login(context, current, "current")
        master_arn = strategy.master_arn_of(current, "current")
    except RotationError as error:
        checks.failed("secret_json", error)
        return
    checks.ok("secret_json")
    engine = strategy.dual_engine
    master = _dual_password_master(checks, strategy, context, login, master_arn)
    if not login.has_endpoint:
        for name, _category in (*DATABASE_CHECKS, *PROBE_CHECKS):
            checks.skipped(name, _NO_ENDPOINT)
        _dual_password_rights(checks, engine, None, login, None)
        return
    session = _connect(checks, engine, login)
    if session is None:
        return
    try:
        admin: Session | None = None
        if master is not None:
            try:
                admin = engine.connect(master)
            except RotationError as error:
                checks.failed("master_login", error)
            else:
                checks.ok("master_login")
        if master_arn is None or admin is not None:
            _dual_password_rights(checks, engine, session, login, admin)
        if admin is not None:
            admin.close()
        _run(checks, "test_query", lambda: _probe(engine, session, strategy.settings.test_query))
    finally:
        session.close()


def _dual_password_master(
    checks: _Checks, strategy: DualPassword, context: RotationContext, login: DatabaseLogin, master_arn: str | None
) -> DatabaseLogin | None:
    """Where the master logs in (None without "masterarn", or when it cannot be resolved: reported)."""
    if master_arn is None:
        for name, _category in ALTERNATING_CHECKS:
            checks.skipped(name, 'the secret names no master ("masterarn"): the user changes its own password')
        return None
    checks.skipped("own_password_change", 'the secret names a master ("masterarn"), which changes the password')
    try:
        master = strategy.master_login(context, master_arn, login)
    except RotationError as error:
        checks.failed("master_secret", error)
        return None
    checks.ok("master_secret")
    return master


_NO_ENDPOINT = (
    'the secret names no endpoint ("host"): no login can be tried, so testSecret will check the service\'s view of the '
    "user (active, bound to this secret) instead of logging in with the new password, as AWS's function does. Add "
    '"host" and "port" of an endpoint the function can reach (TLS verified) to have every rotation log in'
)


def _dual_password_rights(
    checks: _Checks, engine: DualPasswordEngine, session: Session | None, login: DatabaseLogin, admin: Session | None
) -> None:
    """The server and plugin (dual_password, a configuration error), then the right to set them (a permission)."""
    rights = "own_password_change" if admin is None else "master_privileges"
    try:
        engine.check_dual_password(session, login, admin=admin)
    except RotationError as error:
        if error.category is Category.CONFIGURATION:
            checks.failed("dual_password", error)
            return
        checks.ok("dual_password")
        checks.failed(rights, error)
        return
    checks.ok("dual_password")
    checks.ok(rights)


def _probe(engine: DatabaseEngine, session: Session, query: str) -> None:
    try:
        engine.probe(session, query)
    except RotationError as error:
        raise RotationError(
            f"with the current credentials (testSecret runs TEST_QUERY with the new ones, which have the same "
            f"grants): {error.message}",
            category=error.category,
        ) from None


def _run(checks: _Checks, name: str, check: Callable[[], object]) -> None:
    try:
        check()
    except RotationError as error:
        checks.failed(name, error)
        return
    checks.ok(name)


# --- API keys ------------------------------------------------------------------------------------


def _api_key_checks(
    checks: _Checks, strategy: ApiKeyRotation, context: RotationContext, current: dict[str, Any]
) -> None:
    from rotation_core.api_keys import key_name_prefix
    from rotation_core.providers import AdminSecretFormatError

    try:
        provider, key = strategy._provider(current, context, "current")
    except SecretsManagerError as error:
        checks.failed("admin_secret", error)
        checks.skipped("secret_json", "checked once the admin secret can be read (it names the provider)")
        return
    except ConfusedDeputyError as error:  # both secrets are usable, but name different providers or accounts
        checks.ok("secret_json")
        checks.ok("admin_secret")
        checks.failed("key_binding", error)
        return
    except AdminSecretFormatError as error:  # read, but lacking what the function needs (SendGrid's scopes ...)
        checks.failed("admin_secret", error)
        checks.skipped("secret_json", "checked once the admin secret is complete (it names the provider)")
        return
    except RotationError as error:
        checks.failed("secret_json", error)
        return
    checks.ok("secret_json")
    checks.ok("admin_secret")
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
    _run(checks, "key_binding", lambda: strategy._prove_binding(guarded, key))


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
