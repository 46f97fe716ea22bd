"""Lambda entry points: a function's ``app.py`` builds one of these at import and names it ``lambda_handler``.

Building does nothing: settings, clients and the engine are created on the first invocation and kept
for the life of the container.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from rotation_core.errors import Category, ConfigurationError, RotationError
from rotation_core.log import get_logger, invocation_scope, redact
from rotation_core.rotator import Rotator
from rotation_core.secrets import SecretStore
from rotation_core.settings import ROTATION_STRATEGY, Settings, Strategy

if TYPE_CHECKING:
    from rotation_core.engines.base import DatabaseEngine
    from rotation_core.registry import EngineSpec

RotatorFactory = Callable[[Mapping[str, str] | None], Rotator]


class RotationHandler:
    """Callable as ``lambda_handler(event, context)``; logs each failure once, then raises it."""

    def __init__(self, build_rotator: RotatorFactory, *, environ: Mapping[str, str] | None = None) -> None:
        self._build_rotator = build_rotator
        self._environ = environ
        self._rotator: Rotator | None = None

    def __call__(self, event: Any, context: Any = None) -> None:
        # Log keys and registered values belong to this invocation only (context variables, so
        # concurrent invocations in one process keep theirs apart); both are dropped when it ends.
        logger = get_logger()
        with invocation_scope():
            logger.thread_safe_clear_keys()
            request_id = getattr(context, "aws_request_id", None)
            if request_id:
                logger.thread_safe_append_keys(function_request_id=request_id)
            try:
                if self._rotator is None:
                    self._rotator = self._build_rotator(self._environ)
                self._rotator.handle(event)
            except RotationError as error:
                logger.error(
                    error.message,
                    extra={"error_type": type(error).__name__, "category": error.category.value},
                )
                raise
            except Exception as error:  # a bug or an unexpected library error: still no values out
                message = f"unexpected {type(error).__name__}: {redact(str(error))}"
                logger.exception(
                    message, extra={"error_type": type(error).__name__, "category": Category.INTERNAL.value}
                )
                raise RotationError(message, category=Category.INTERNAL) from None
            finally:
                logger.thread_safe_clear_keys()


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
        from rotation_core.strategies import AlternatingUsers, SingleUser

        spec = engine_spec(engine) if isinstance(engine, str) else engine
        settings = Settings.from_env(env, default_exclude_characters=spec.default_exclude_characters)
        if settings.strategy not in spec.strategies:
            allowed = ", ".join(strategy.value for strategy in spec.strategies)
            raise ConfigurationError(
                f"{ROTATION_STRATEGY}={settings.strategy.value} is not a strategy of the {spec.display_name} "
                f"function; use one of: {allowed}"
            )
        database = (engine_factory or spec.load())(settings)
        strategy_type = AlternatingUsers if settings.strategy is Strategy.ALTERNATING_USERS else SingleUser
        secret_store = store or SecretStore(endpoint_url=settings.secrets_manager_endpoint)
        return Rotator(secret_store, strategy_type(database, settings))

    return RotationHandler(build, environ=environ)


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
