"""Lambda entry points: a function's ``app.py`` builds one of these at import and names it ``lambda_handler``.

Building does nothing: settings, clients and the engine are created on the first invocation and kept
for the life of the container.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from rotation_core.causes import cause_of
from rotation_core.errors import Category, ConfigurationError, RotationError
from rotation_core.log import get_logger, invocation_scope, redact
from rotation_core.metrics import UNKNOWN, InvocationMetrics, invocation_metrics, step_of
from rotation_core.rotator import RotationStrategy, Rotator, Step
from rotation_core.secrets import SecretStore
from rotation_core.settings import ROTATION_STRATEGY, MetricsSettings, Settings, Strategy

if TYPE_CHECKING:
    from rotation_core.engines.base import DatabaseEngine
    from rotation_core.registry import EngineSpec

RotatorFactory = Callable[[Mapping[str, str] | None], Rotator]


class RotationHandler:
    """Callable as ``lambda_handler(event, context)``; logs each failure once, then raises it.

    A rotation step returns nothing; a preflight event (``{"Preflight": {"SecretId": ...}}``, see
    :mod:`rotation_core.preflight`) returns its report. Every invocation writes its metrics
    (:mod:`rotation_core.metrics`); ``target`` is the engine they are dimensioned by (``unknown`` until
    the API-key function knows the provider).
    """

    def __init__(
        self, build_rotator: RotatorFactory, *, environ: Mapping[str, str] | None = None, target: str = UNKNOWN
    ) -> None:
        self._build_rotator = build_rotator
        self._environ = environ
        self._target = target
        self._rotator: Rotator | None = None
        self._metrics_settings: MetricsSettings | None = None

    def __call__(self, event: Any, context: Any = None) -> dict[str, Any] | None:
        # Log keys and registered values belong to this invocation only (context variables, so
        # concurrent invocations in one process keep theirs apart); both are dropped when it ends.
        logger = get_logger()
        with invocation_scope():
            logger.thread_safe_clear_keys()
            request_id = getattr(context, "aws_request_id", None)
            if request_id:
                logger.thread_safe_append_keys(function_request_id=request_id)
            if self._metrics_settings is None:
                self._metrics_settings = MetricsSettings.from_env(self._environ)
            recorder = InvocationMetrics(
                self._metrics_settings, function_name=getattr(context, "function_name", None), target=self._target
            )
            try:
                with invocation_metrics(recorder):
                    from rotation_core.preflight import is_preflight

                    if is_preflight(event):
                        return self._preflight(event, context, recorder)
                    self._step(event, recorder)
                    return None
            finally:
                logger.thread_safe_clear_keys()

    def _step(self, event: Any, recorder: InvocationMetrics) -> None:
        step = step_of(event)
        try:
            if self._rotator is None:
                self._rotator = self._build_rotator(self._environ)
            acted = self._rotator.handle(event)
        except Exception as error:
            failure = _logged_failure(error)
            recorder.step_failed(step, failure.category)
            if failure is error:
                raise
            raise failure from None
        recorder.step_succeeded(step, rotation_completed=acted and step == Step.FINISH.value)

    def _preflight(self, event: Any, context: Any, recorder: InvocationMetrics) -> dict[str, Any]:
        from rotation_core.preflight import configuration_failure, parse_preflight, run_preflight

        try:
            request = parse_preflight(event)
            get_logger().thread_safe_append_keys(preflight=True, secret_id=request.secret_id)
            try:
                if self._rotator is None:
                    self._rotator = self._build_rotator(self._environ)
            except RotationError as error:
                report = configuration_failure(error)
            else:
                report = run_preflight(
                    self._rotator, request, function_arn=getattr(context, "invoked_function_arn", None)
                )
        except Exception as error:
            failure = _logged_failure(error)
            recorder.preflight(ok=False)
            if failure is error:
                raise
            raise failure from None
        recorder.preflight(ok=report.ok)
        return report.as_dict()


def _logged_failure(error: Exception) -> RotationError:
    """Log a failure once (with its category and troubleshooting cause); the error to raise, without values."""
    logger = get_logger()
    if isinstance(error, RotationError):
        cause = cause_of(error.category)
        logger.error(
            error.message,
            extra={"error_type": type(error).__name__, "category": error.category.value, "cause": cause.title,
                   "fix": cause.fix},
        )  # fmt: skip
        return error
    # A bug or an unexpected library error: still no values out.
    message = f"unexpected {type(error).__name__}: {redact(str(error))}"
    cause = cause_of(Category.INTERNAL)
    logger.exception(
        message,
        extra={"error_type": type(error).__name__, "category": Category.INTERNAL.value, "cause": cause.title,
               "fix": cause.fix},
    )  # fmt: skip
    return RotationError(message, category=Category.INTERNAL)


def database_handler(
    engine: str | EngineSpec,
    *,
    engine_factory: Callable[[Settings], DatabaseEngine] | None = None,
    store: SecretStore | None = None,
    environ: Mapping[str, str] | None = None,
) -> RotationHandler:
    """A handler for a registered engine (its name or spec); the strategy comes from ``ROTATION_STRATEGY`` only.

    ``engine_factory`` (tests) builds the engine instead of the spec's class.
    """

    def build(env: Mapping[str, str] | None) -> Rotator:
        from rotation_core.registry import engine as engine_spec

        spec = engine_spec(engine) if isinstance(engine, str) else engine
        settings = Settings.from_env(env, default_exclude_characters=spec.default_exclude_characters)
        if settings.strategy not in spec.strategies:
            allowed = ", ".join(strategy.value for strategy in spec.strategies)
            raise ConfigurationError(
                f"{ROTATION_STRATEGY}={settings.strategy.value} is not a strategy of the {spec.display_name} "
                f"function; use one of: {allowed}"
            )
        database = (engine_factory or spec.load())(settings)
        secret_store = store or SecretStore(endpoint_url=settings.secrets_manager_endpoint)
        return Rotator(secret_store, database_strategy(settings.strategy)(database, settings))

    return RotationHandler(build, environ=environ, target=engine if isinstance(engine, str) else engine.name)


def database_strategy(strategy: Strategy) -> Callable[[DatabaseEngine, Settings], RotationStrategy]:
    """The class of a database strategy (imported on first use)."""
    if strategy is Strategy.DUAL_PASSWORD:
        from rotation_core.dual_password import DualPassword

        return DualPassword
    from rotation_core.strategies import AlternatingUsers, SingleUser

    return AlternatingUsers if strategy is Strategy.ALTERNATING_USERS else SingleUser


def api_key_handler(
    *,
    store: SecretStore | None = None,
    environ: Mapping[str, str] | None = None,
    http: Any = None,
    sleep: Callable[[float], None] | None = None,
) -> RotationHandler:
    """A handler for third-party API keys; the provider comes from each secret's ``provider`` key only.

    ``http`` (a :class:`rotation_core.providers.http.HttpClient`) and ``sleep`` are for tests; by
    default the client is built from the settings. No database driver is imported.
    """

    def build(env: Mapping[str, str] | None) -> Rotator:
        import time

        from rotation_core.api_keys import ApiKeyRotation

        settings = Settings.from_env(env)
        secret_store = store or SecretStore(endpoint_url=settings.secrets_manager_endpoint)
        return Rotator(secret_store, ApiKeyRotation(settings, http=http, sleep=sleep or time.sleep))

    return RotationHandler(build, environ=environ)
