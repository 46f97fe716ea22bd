"""The registry: every database engine and the API-key function declare themselves here, once.

A database engine is a package under :mod:`rotation_core.engines` whose ``__init__`` holds ``ENGINE``,
an :class:`EngineSpec`. Nothing else names an engine: the handlers, the local runner, the demo, the
benchmarks, the template generator and the tests all read :func:`engines` and :func:`rotation_functions`.
API-key providers declare themselves in :data:`rotation_core.providers.PROVIDERS`; one function
(:data:`API_KEY_FUNCTION`) serves them all.

Reading a spec imports only the engine package's ``__init__`` (no driver, no engine code).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rotation_core.errors import ConfigurationError, describe
from rotation_core.settings import Strategy


@dataclass(frozen=True)
class SettingSpec:
    """An environment setting a function reads, as a deployment template exposes it."""

    env: str
    description: str
    default: str
    number_range: tuple[int, int] | None = None  # a whole number in this range; None: free text
    choices: tuple[str, ...] = ()
    parameter: str = ""  # the template parameter's name; default: the owner's prefix + the CamelCase env name


@dataclass(frozen=True)
class AwsGrant:
    """AWS API actions an engine's function calls beyond Secrets Manager, on the resources one template parameter
    names (the template grants exactly these, nothing broader)."""

    sid: str
    actions: tuple[str, ...]
    resource: str  # an ARN for !Sub, ``%s`` standing for the parameter's name
    parameter: str  # the template parameter naming the resources (a name pattern)
    default: str
    description: str


@dataclass(frozen=True)
class EngineSpec:
    """One database engine: what its package provides and what a deployment of it needs."""

    name: str  # the package under rotation_core.engines and the function folder under functions/
    display_name: str  # "PostgreSQL"
    implementation: str  # "module:Class", imported when a rotation first needs it
    secret_engines: frozenset[str]  # accepted values of the secret's "engine" key
    default_port: int
    strategies: tuple[Strategy, ...]
    driver: str  # the PyPI requirement the function ships (functions/<name>/requirements.in)
    default_exclude_characters: str
    template_name: str  # prefix of the deployment template's logical ids ("Postgres")
    settings: tuple[SettingSpec, ...] = ()  # settings of this engine only (beyond the shared ones)
    #: RDS may manage its servers and masters: the master strategies' functions may describe RDS databases.
    uses_rds: bool = True
    aws_grants: tuple[AwsGrant, ...] = ()  # AWS APIs its function calls to reach users (ElastiCache, MemoryDB)

    def load(self) -> Any:
        """The engine class."""
        module_name, _, class_name = self.implementation.partition(":")
        return getattr(importlib.import_module(module_name), class_name)


@dataclass(frozen=True)
class FunctionSpec:
    """A rotation function as it is deployed: a handler folder and what it is configured for."""

    logical_name: str  # the template's logical id prefix: PostgresSingleUser, ApiKey
    folder: str  # functions/<folder>
    description: str
    engine: EngineSpec | None = None  # None: the API-key function
    strategy: Strategy | None = None
    settings: tuple[SettingSpec, ...] = field(default=())

    @property
    def is_database(self) -> bool:
        return self.engine is not None


API_KEY_FUNCTION = FunctionSpec(
    logical_name="ApiKey",
    folder="api_key",
    description="third-party API keys",
    settings=(
        SettingSpec(
            "REVOKE_POLICY",
            "decides when the API-key function revokes the key it replaced. previous_at_next_rotation keeps the "
            "previous key valid until the next rotation, so consumers have a whole interval to refresh",
            "previous_at_next_rotation",
            choices=("previous_at_next_rotation", "previous_at_finish", "never"),
            parameter="ApiKeyRevokePolicy",
        ),
        SettingSpec("API_TIMEOUT", "in seconds for each provider API call", "10", (1, 60)),
        SettingSpec(
            "API_MAX_ATTEMPTS", "for a provider API call (retries on throttling and server errors)", "4", (1, 10)
        ),
        SettingSpec("API_VERIFY_ATTEMPTS", "of testSecret while a new key propagates at the provider", "6", (1, 30)),
        SettingSpec("API_VERIFY_DELAY", "in seconds between verify attempts", "5", (0, 60)),
        SettingSpec("API_CA_BUNDLE", "is a PEM bundle for provider APIs (empty = the runtime's system bundle)", ""),
        SettingSpec(
            "KEY_IN_USE_WITHIN_HOURS",
            "counts a key about to be revoked as still in use when its provider (Datadog, Cloudflare) reports it "
            "used within this many hours (metric CredentialStillInUse and a warning)",
            "24",
            (1, 720),
        ),
        SettingSpec(
            "DEFER_REVOKE_IF_IN_USE",
            "defers the revocation of a key still in use to the next rotation (never by default: the replaced key is "
            "revoked as REVOKE_POLICY says)",
            "false",
            choices=("true", "false"),
        ),
    ),
)

_STRATEGY_WORDS = {
    Strategy.SINGLE_USER: "SingleUser",
    Strategy.ALTERNATING_USERS: "AlternatingUsers",
    Strategy.DUAL_PASSWORD: "DualPassword",
}
#: Strategies whose secret may name a master secret (``masterarn``): alternating users always, dual passwords
#: optionally. Their functions may read (and describe) the master secrets the deployment allows.
MASTER_STRATEGIES = frozenset({Strategy.ALTERNATING_USERS, Strategy.DUAL_PASSWORD})
#: Strategies that promise zero downtime: from setSecret until the next rotation, the credentials AWSCURRENT held
#: before the rotation keep logging in beside the new ones (tests/integration/test_consumers.py holds them to it).
ZERO_DOWNTIME_STRATEGIES = frozenset({Strategy.ALTERNATING_USERS, Strategy.DUAL_PASSWORD})


#: Settings of every engine's functions of one strategy, beyond the engine's own. A setting that names its template
#: parameter is one parameter for every engine's function of the strategy; one that does not gets a parameter per
#: engine offering the strategy, named with the engine's prefix (:func:`engine_settings`).
STRATEGY_SETTINGS: dict[Strategy, tuple[SettingSpec, ...]] = {
    Strategy.ALTERNATING_USERS: (
        SettingSpec(
            "ALLOW_PRIVILEGED_USERS",
            "lists, comma-separated, the original users (without _clone) of alternating pairs the master may change "
            "although they hold superuser-class rights (docs/configuration.md). Empty: none; a rotation that would "
            "change such a user stops as confused_deputy. The master's own user is never changed",
            "",
        ),
    ),
}


def engine_settings(spec: EngineSpec) -> tuple[SettingSpec, ...]:
    """The settings with one template parameter per engine: the engine's own, then its strategies' that name none."""
    of_strategies = (s for strategy in spec.strategies for s in STRATEGY_SETTINGS.get(strategy, ()) if not s.parameter)
    return (*spec.settings, *of_strategies)


def shared_settings() -> tuple[SettingSpec, ...]:
    """The strategy settings with one template parameter for every engine (they name it)."""
    return tuple(s for settings in STRATEGY_SETTINGS.values() for s in settings if s.parameter)


def engines() -> dict[str, EngineSpec]:
    """Every engine package under :mod:`rotation_core.engines`, by name."""
    import rotation_core.engines as package

    found: dict[str, EngineSpec] = {}
    for module in pkgutil.iter_modules(package.__path__):
        if module.ispkg:
            spec = getattr(importlib.import_module(f"{package.__name__}.{module.name}"), "ENGINE", None)
            if isinstance(spec, EngineSpec):
                found[spec.name] = spec
    return dict(sorted(found.items()))


def engine(name: str) -> EngineSpec:
    """The engine called ``name``, importing only its package."""
    try:
        spec = getattr(importlib.import_module(f"rotation_core.engines.{name}"), "ENGINE", None)
    except ImportError:
        spec = None
    if not isinstance(spec, EngineSpec):
        raise ConfigurationError(f"{describe(name)} is not a registered database engine")
    return spec


def rotation_functions() -> Iterator[FunctionSpec]:
    """Every function a deployment holds: each engine once per strategy, then the API-key function."""
    for spec in engines().values():
        for strategy in spec.strategies:
            yield FunctionSpec(
                logical_name=spec.template_name + _STRATEGY_WORDS[strategy],
                folder=spec.name,
                description=f"{spec.display_name} passwords, {strategy.value.replace('_', '-')} strategy",
                engine=spec,
                strategy=strategy,
                settings=spec.settings + STRATEGY_SETTINGS.get(strategy, ()),
            )
    yield API_KEY_FUNCTION
