"""Settings from the environment: AWS-compatible names, defaults, and errors that name the variable."""

from __future__ import annotations

import pytest

from rotation_core.errors import ConfigurationError
from rotation_core.settings import PasswordPolicy, Settings, Strategy


def test_settings_empty_environment_gives_secure_defaults() -> None:
    settings = Settings.from_env({}, default_exclude_characters=":/@\"'\\")

    assert settings.strategy is Strategy.SINGLE_USER
    assert settings.password_policy == PasswordPolicy(length=32, exclude_characters=":/@\"'\\")
    assert settings.secrets_manager_endpoint is None
    assert settings.db_ca_bundle is None
    assert settings.connect_timeout == 5
    assert settings.test_query == "SELECT 1"


def test_settings_aws_template_variables_are_honoured() -> None:
    env = {
        "ROTATION_STRATEGY": "alternating_users",
        "PASSWORD_LENGTH": "40",
        "EXCLUDE_CHARACTERS": "xyz",
        "EXCLUDE_NUMBERS": "yes",
        "EXCLUDE_PUNCTUATION": "1",
        "EXCLUDE_UPPERCASE": "False",
        "EXCLUDE_LOWERCASE": "n",
        "REQUIRE_EACH_INCLUDED_TYPE": "false",
        "SECRETS_MANAGER_ENDPOINT": "https://secretsmanager.eu-west-1.amazonaws.com",
        "DB_CA_BUNDLE": "/opt/python/certs/rds.pem",
        "DB_CONNECT_TIMEOUT": "3",
        "TEST_QUERY": "SELECT count(*) FROM orders",
    }

    settings = Settings.from_env(env)

    assert settings.strategy is Strategy.ALTERNATING_USERS
    assert settings.password_policy == PasswordPolicy(
        length=40,
        exclude_characters="xyz",
        exclude_numbers=True,
        exclude_punctuation=True,
        exclude_uppercase=False,
        exclude_lowercase=False,
        require_each_included_type=False,
    )
    assert settings.secrets_manager_endpoint == "https://secretsmanager.eu-west-1.amazonaws.com"
    assert settings.db_ca_bundle == "/opt/python/certs/rds.pem"
    assert settings.connect_timeout == 3
    assert settings.test_query == "SELECT count(*) FROM orders"


def test_settings_endpoint_without_underscore_variable_is_honoured() -> None:
    settings = Settings.from_env({"AWS_ENDPOINT_URL_SECRETSMANAGER": "http://127.0.0.1:5000"})
    assert settings.secrets_manager_endpoint == "http://127.0.0.1:5000"


def test_settings_aws_template_endpoint_wins_over_generic_variable() -> None:
    settings = Settings.from_env(
        {"AWS_ENDPOINT_URL_SECRETSMANAGER": "http://127.0.0.1:5000", "SECRETS_MANAGER_ENDPOINT": "http://other:1"}
    )
    assert settings.secrets_manager_endpoint == "http://other:1"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"ROTATION_STRATEGY": "multi_user"}, "ROTATION_STRATEGY"),
        ({"PASSWORD_LENGTH": "abc"}, "PASSWORD_LENGTH"),
        ({"PASSWORD_LENGTH": "4"}, "PASSWORD_LENGTH"),
        ({"PASSWORD_LENGTH": "5000"}, "PASSWORD_LENGTH"),
        ({"EXCLUDE_NUMBERS": "sometimes"}, "EXCLUDE_NUMBERS"),
        ({"REQUIRE_EACH_INCLUDED_TYPE": "2"}, "REQUIRE_EACH_INCLUDED_TYPE"),
        ({"DB_CONNECT_TIMEOUT": "0"}, "DB_CONNECT_TIMEOUT"),
        ({"DB_CONNECT_TIMEOUT": "61"}, "DB_CONNECT_TIMEOUT"),
    ],
)
def test_settings_invalid_value_raises_error_naming_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        Settings.from_env(env)


def test_settings_hostile_value_is_escaped_in_the_message() -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({"ROTATION_STRATEGY": 'x\n{"level":"INFO"}'})
    assert "\n" not in str(raised.value)


def test_settings_is_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.connect_timeout = 9  # type: ignore[misc]


def test_settings_allow_privileged_users_exact_names_trimmed() -> None:
    settings = Settings.from_env({"ALLOW_PRIVILEGED_USERS": " dba, migrator ,,"})

    assert settings.allow_privileged_users == frozenset({"dba", "migrator"})
    assert Settings.from_env({}).allow_privileged_users == frozenset()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("dba_clone", "the original user of each pair"),
        ("app*", "without wildcards"),
        ("a%", "without wildcards"),
        ("a\nb", "without wildcards"),
        (",".join(f"u{n}" for n in range(101)), "at most 100"),
    ],
)
def test_settings_allow_privileged_users_not_an_exact_original_name_refused(value: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match="ALLOW_PRIVILEGED_USERS") as raised:
        Settings.from_env({"ALLOW_PRIVILEGED_USERS": value})

    assert says in raised.value.message
    assert "\n" not in raised.value.message


def test_settings_managed_user_waits_aws_names_and_defaults() -> None:
    default = Settings.from_env({})
    configured = Settings.from_env(
        {"MAX_WAITING_TIME_FOR_ACTIVE_IN_SECONDS": "600", "WAITING_RETRY_INTERVAL_IN_SECONDS": "10"}
    )

    assert (default.max_wait_for_active, default.wait_interval) == (45, 5)
    assert (configured.max_wait_for_active, configured.wait_interval) == (600, 10)
    for env in ({"MAX_WAITING_TIME_FOR_ACTIVE_IN_SECONDS": "900"}, {"WAITING_RETRY_INTERVAL_IN_SECONDS": "61"}):
        with pytest.raises(ConfigurationError, match=next(iter(env))):
            Settings.from_env(env)
