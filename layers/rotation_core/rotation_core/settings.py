"""Function settings: one frozen dataclass built from the environment.

This is the only module that reads the environment. Variable names follow AWS's own rotation
templates where one exists (``EXCLUDE_CHARACTERS``, ``PASSWORD_LENGTH``, ``SECRETS_MANAGER_ENDPOINT``
...), so a function can replace one of theirs without changing its configuration.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from rotation_core.errors import ConfigurationError, describe

# Environment variable names, in one place.
ROTATION_STRATEGY = "ROTATION_STRATEGY"
SECRETS_MANAGER_ENDPOINT = "SECRETS_MANAGER_ENDPOINT"
# boto3 itself reads AWS_ENDPOINT_URL_SECRETS_MANAGER (from the service id "Secrets Manager") and
# AWS_ENDPOINT_URL; the spelling without the underscore is widespread, so it is honoured here too.
AWS_ENDPOINT_URL_SECRETSMANAGER = "AWS_ENDPOINT_URL_SECRETSMANAGER"
EXCLUDE_CHARACTERS = "EXCLUDE_CHARACTERS"
# Not a secret: an environment variable name (flagged by its wording).
PASSWORD_LENGTH = "PASSWORD_LENGTH"  # noqa: S105  # nosec B105
EXCLUDE_NUMBERS = "EXCLUDE_NUMBERS"
EXCLUDE_PUNCTUATION = "EXCLUDE_PUNCTUATION"
EXCLUDE_UPPERCASE = "EXCLUDE_UPPERCASE"
EXCLUDE_LOWERCASE = "EXCLUDE_LOWERCASE"
REQUIRE_EACH_INCLUDED_TYPE = "REQUIRE_EACH_INCLUDED_TYPE"
DB_CA_BUNDLE = "DB_CA_BUNDLE"
DB_CONNECT_TIMEOUT = "DB_CONNECT_TIMEOUT"
TEST_QUERY = "TEST_QUERY"
# API-key rotation.
REVOKE_POLICY = "REVOKE_POLICY"
API_TIMEOUT = "API_TIMEOUT"
API_MAX_ATTEMPTS = "API_MAX_ATTEMPTS"
API_VERIFY_ATTEMPTS = "API_VERIFY_ATTEMPTS"
API_VERIFY_DELAY = "API_VERIFY_DELAY"
API_CA_BUNDLE = "API_CA_BUNDLE"
# The drain check of API keys (rotation_core.drain): when a key counts as still in use, and whether that defers
# its revocation to the next rotation.
KEY_IN_USE_WITHIN_HOURS = "KEY_IN_USE_WITHIN_HOURS"
DEFER_REVOKE_IF_IN_USE = "DEFER_REVOKE_IF_IN_USE"
USERNAME_CHARACTER_LIMIT = "USERNAME_CHARACTER_LIMIT"
# Users a service manages (ElastiCache, MemoryDB): how long to wait for the user to be "active" again, and how often
# to ask (the names of AWS's ElastiCache user rotation function).
MAX_WAITING_TIME_FOR_ACTIVE_IN_SECONDS = "MAX_WAITING_TIME_FOR_ACTIVE_IN_SECONDS"
WAITING_RETRY_INTERVAL_IN_SECONDS = "WAITING_RETRY_INTERVAL_IN_SECONDS"
# The operator's opt-in: alternating users' originals whose pair may hold superuser-class rights, and self-managed
# Valkey/Redis users the master may change although their ACL is privileged.
ALLOW_PRIVILEGED_USERS = "ALLOW_PRIVILEGED_USERS"
# Metrics (rotation_core.metrics): Powertools' own namespace variable, and the deployment (stack) the
# per-deployment failure metrics are dimensioned by.
POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
METRICS_DEPLOYMENT = "METRICS_DEPLOYMENT"

_TRUE = frozenset({"true", "1", "y", "yes"})
_FALSE = frozenset({"false", "0", "n", "no", ""})

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 4096
DEFAULT_PASSWORD_LENGTH = 32
DEFAULT_CONNECT_TIMEOUT = 5
MAX_CONNECT_TIMEOUT = 60
DEFAULT_TEST_QUERY = "SELECT 1"
DEFAULT_API_TIMEOUT = 10
MAX_API_TIMEOUT = 60
DEFAULT_API_MAX_ATTEMPTS = 4
MAX_API_MAX_ATTEMPTS = 10
DEFAULT_API_VERIFY_ATTEMPTS = 6
MAX_API_VERIFY_ATTEMPTS = 30
DEFAULT_API_VERIFY_DELAY = 5
MAX_API_VERIFY_DELAY = 60
DEFAULT_KEY_IN_USE_WITHIN_HOURS = 24
MAX_KEY_IN_USE_WITHIN_HOURS = 720
DEFAULT_USERNAME_CHARACTER_LIMIT = 32  # MySQL 5.7 and later; MySQL 5.6 and older allow 16
MAX_USERNAME_CHARACTER_LIMIT = 128
DEFAULT_MAX_WAIT_FOR_ACTIVE = 45
MAX_MAX_WAIT_FOR_ACTIVE = 840
DEFAULT_WAIT_INTERVAL = 5
MAX_WAIT_INTERVAL = 60
DEFAULT_METRICS_NAMESPACE = "SecretsRotation"
MAX_PRIVILEGED_USERS = 100
MAX_PRIVILEGED_USER_LENGTH = 128
#: The alternating-users strategy's second user is ``<user>`` + this suffix (AWS's templates use it too).
CLONE_SUFFIX = "_clone"


class Strategy(enum.StrEnum):
    SINGLE_USER = "single_user"
    ALTERNATING_USERS = "alternating_users"
    # MySQL 8.0.14+ (the current password stays valid as the secondary one), Valkey/Redis (two passwords per user).
    # (A strategy's name, not a password.)
    DUAL_PASSWORD = "dual_password"  # noqa: S105  # nosec B105


class RevokePolicy(enum.StrEnum):
    """When an API-key rotation revokes the key it replaced."""

    PREVIOUS_AT_NEXT_ROTATION = "previous_at_next_rotation"  # two keys valid at any moment
    PREVIOUS_AT_FINISH = "previous_at_finish"  # one key valid once finishSecret is done
    NEVER = "never"  # revocation is left to someone else


@dataclass(frozen=True)
class PasswordPolicy:
    """The password options of AWS's ``GetRandomPassword``, applied locally."""

    length: int = DEFAULT_PASSWORD_LENGTH
    exclude_characters: str = ""
    exclude_numbers: bool = False
    exclude_punctuation: bool = False
    exclude_uppercase: bool = False
    exclude_lowercase: bool = False
    require_each_included_type: bool = True


@dataclass(frozen=True)
class Settings:
    strategy: Strategy = Strategy.SINGLE_USER
    password_policy: PasswordPolicy = field(default_factory=PasswordPolicy)
    secrets_manager_endpoint: str | None = None
    db_ca_bundle: str | None = None
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
    test_query: str = DEFAULT_TEST_QUERY
    revoke_policy: RevokePolicy = RevokePolicy.PREVIOUS_AT_NEXT_ROTATION
    api_timeout: int = DEFAULT_API_TIMEOUT
    api_max_attempts: int = DEFAULT_API_MAX_ATTEMPTS
    api_verify_attempts: int = DEFAULT_API_VERIFY_ATTEMPTS
    api_verify_delay: int = DEFAULT_API_VERIFY_DELAY
    api_ca_bundle: str | None = None
    username_character_limit: int = DEFAULT_USERNAME_CHARACTER_LIMIT
    #: Users the master may change although they hold superuser-class rights (alternating originals, Valkey users).
    allow_privileged_users: frozenset[str] = frozenset()
    max_wait_for_active: int = DEFAULT_MAX_WAIT_FOR_ACTIVE
    wait_interval: int = DEFAULT_WAIT_INTERVAL
    key_in_use_within_hours: int = DEFAULT_KEY_IN_USE_WITHIN_HOURS
    defer_revoke_if_in_use: bool = False

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        default_exclude_characters: str = "",
    ) -> Settings:
        """Build the settings; raise :class:`ConfigurationError` naming the variable that is wrong."""
        env = os.environ if environ is None else environ
        strategy_text = env.get(ROTATION_STRATEGY, "").strip() or Strategy.SINGLE_USER.value
        try:
            strategy = Strategy(strategy_text)
        except ValueError:
            allowed = ", ".join(s.value for s in Strategy)
            raise ConfigurationError(
                f"{ROTATION_STRATEGY}={describe(strategy_text)} is not a known strategy; set it to one of: {allowed}"
            ) from None
        policy = PasswordPolicy(
            length=_int(env, PASSWORD_LENGTH, DEFAULT_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH),
            exclude_characters=env.get(EXCLUDE_CHARACTERS, default_exclude_characters),
            exclude_numbers=_bool(env, EXCLUDE_NUMBERS, False),
            exclude_punctuation=_bool(env, EXCLUDE_PUNCTUATION, False),
            exclude_uppercase=_bool(env, EXCLUDE_UPPERCASE, False),
            exclude_lowercase=_bool(env, EXCLUDE_LOWERCASE, False),
            require_each_included_type=_bool(env, REQUIRE_EACH_INCLUDED_TYPE, True),
        )
        test_query = env.get(TEST_QUERY, "").strip() or DEFAULT_TEST_QUERY
        return cls(
            strategy=strategy,
            password_policy=policy,
            secrets_manager_endpoint=(
                env.get(SECRETS_MANAGER_ENDPOINT, "").strip()
                or env.get(AWS_ENDPOINT_URL_SECRETSMANAGER, "").strip()
                or None
            ),
            db_ca_bundle=env.get(DB_CA_BUNDLE, "").strip() or None,
            connect_timeout=_int(env, DB_CONNECT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, 1, MAX_CONNECT_TIMEOUT),
            test_query=test_query,
            revoke_policy=_revoke_policy(env),
            api_timeout=_int(env, API_TIMEOUT, DEFAULT_API_TIMEOUT, 1, MAX_API_TIMEOUT),
            api_max_attempts=_int(env, API_MAX_ATTEMPTS, DEFAULT_API_MAX_ATTEMPTS, 1, MAX_API_MAX_ATTEMPTS),
            api_verify_attempts=_int(env, API_VERIFY_ATTEMPTS, DEFAULT_API_VERIFY_ATTEMPTS, 1, MAX_API_VERIFY_ATTEMPTS),
            api_verify_delay=_int(env, API_VERIFY_DELAY, DEFAULT_API_VERIFY_DELAY, 0, MAX_API_VERIFY_DELAY),
            api_ca_bundle=env.get(API_CA_BUNDLE, "").strip() or None,
            username_character_limit=_int(
                env, USERNAME_CHARACTER_LIMIT, DEFAULT_USERNAME_CHARACTER_LIMIT, 1, MAX_USERNAME_CHARACTER_LIMIT
            ),
            allow_privileged_users=_user_names(env, ALLOW_PRIVILEGED_USERS),
            max_wait_for_active=_int(
                env, MAX_WAITING_TIME_FOR_ACTIVE_IN_SECONDS, DEFAULT_MAX_WAIT_FOR_ACTIVE, 0, MAX_MAX_WAIT_FOR_ACTIVE
            ),
            wait_interval=_int(env, WAITING_RETRY_INTERVAL_IN_SECONDS, DEFAULT_WAIT_INTERVAL, 0, MAX_WAIT_INTERVAL),
            key_in_use_within_hours=_int(
                env, KEY_IN_USE_WITHIN_HOURS, DEFAULT_KEY_IN_USE_WITHIN_HOURS, 1, MAX_KEY_IN_USE_WITHIN_HOURS
            ),
            defer_revoke_if_in_use=_bool(env, DEFER_REVOKE_IF_IN_USE, False),
        )


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(f"{name}={describe(raw)} is not a boolean; use true/false (also 1/0, yes/no, y/n)")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={describe(raw)} is not a whole number; use {low} to {high}") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name}={value} is out of range; use {low} to {high}")
    return value


def _user_names(env: Mapping[str, str], name: str) -> frozenset[str]:
    """A comma-separated list of original user names (never an alternate's ``_clone`` name, never a pattern)."""
    raw = env.get(name, "")
    names = [part.strip() for part in raw.split(",") if part.strip()]
    if len(names) > MAX_PRIVILEGED_USERS:
        raise ConfigurationError(f"{name} lists {len(names)} users; list at most {MAX_PRIVILEGED_USERS}")
    for user in names:
        if len(user) > MAX_PRIVILEGED_USER_LENGTH or any(ord(c) < 32 or c in "*?%" for c in user):
            raise ConfigurationError(
                f"{name} holds {describe(user)}, which is not a user name: list exact user names separated by "
                "commas, without wildcards"
            )
        if user.endswith(CLONE_SUFFIX):
            raise ConfigurationError(
                f"{name} holds {describe(user)}: list the original user of each pair (without {CLONE_SUFFIX!r}); "
                "its alternate is allowed with it"
            )
    return frozenset(names)


def _revoke_policy(env: Mapping[str, str]) -> RevokePolicy:
    text = env.get(REVOKE_POLICY, "").strip() or RevokePolicy.PREVIOUS_AT_NEXT_ROTATION.value
    try:
        return RevokePolicy(text)
    except ValueError:
        allowed = ", ".join(p.value for p in RevokePolicy)
        raise ConfigurationError(
            f"{REVOKE_POLICY}={describe(text)} is not a revocation policy; set it to one of: {allowed}"
        ) from None


@dataclass(frozen=True)
class MetricsSettings:
    """Where the function's metrics go; read separately from :class:`Settings`, so that a function whose
    other settings are wrong still reports that failure as a metric."""

    namespace: str = DEFAULT_METRICS_NAMESPACE
    deployment: str | None = None  # the stack name: failures are also counted per deployment and category

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MetricsSettings:
        """Never fails: an empty namespace means the default, an empty deployment none."""
        env = os.environ if environ is None else environ
        return cls(
            namespace=env.get(POWERTOOLS_METRICS_NAMESPACE, "").strip() or DEFAULT_METRICS_NAMESPACE,
            deployment=env.get(METRICS_DEPLOYMENT, "").strip() or None,
        )
