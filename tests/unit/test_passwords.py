"""Local password generation with GetRandomPassword's options."""

from __future__ import annotations

import string

import pytest

from rotation_core.errors import ConfigurationError
from rotation_core.passwords import PUNCTUATION, generate_password
from rotation_core.settings import PasswordPolicy

POSTGRES_EXCLUDED = ":/@\"'\\"


def test_generate_password_default_policy_has_length_and_every_type() -> None:
    policy = PasswordPolicy(exclude_characters=POSTGRES_EXCLUDED)
    for _ in range(200):
        password = generate_password(policy)
        assert len(password) == 32
        assert any(c in string.ascii_lowercase for c in password)
        assert any(c in string.ascii_uppercase for c in password)
        assert any(c in string.digits for c in password)
        assert any(c in PUNCTUATION for c in password)
        assert not set(POSTGRES_EXCLUDED) & set(password)
        assert " " not in password


def test_generate_password_excluded_classes_never_appear() -> None:
    policy = PasswordPolicy(length=64, exclude_punctuation=True, exclude_uppercase=True, exclude_characters="0123")
    seen: set[str] = set()
    for _ in range(100):
        seen.update(generate_password(policy))
    assert seen <= set(string.ascii_lowercase + "456789")
    assert seen & set("456789")


def test_generate_password_is_not_repeated() -> None:
    policy = PasswordPolicy()
    assert len({generate_password(policy) for _ in range(500)}) == 500


def test_generate_password_everything_excluded_raises() -> None:
    policy = PasswordPolicy(
        exclude_numbers=True, exclude_punctuation=True, exclude_uppercase=True, exclude_lowercase=True
    )
    with pytest.raises(ConfigurationError, match="exclude every character"):
        generate_password(policy)


def test_generate_password_excluded_characters_can_empty_a_class() -> None:
    policy = PasswordPolicy(length=16, exclude_characters=string.digits)
    password = generate_password(policy)
    assert not set(string.digits) & set(password)


def test_generate_password_length_below_required_types_raises() -> None:
    with pytest.raises(ConfigurationError, match="PASSWORD_LENGTH"):
        generate_password(PasswordPolicy(length=3))
