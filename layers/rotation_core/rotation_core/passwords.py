"""Password generation with the options of Secrets Manager's ``GetRandomPassword``, done locally.

Generating locally with :mod:`secrets` saves one Secrets Manager call per rotation and removes the
only IAM permission that needs ``Resource: "*"`` (``secretsmanager:GetRandomPassword``).
"""

from __future__ import annotations

import secrets
import string

from rotation_core.errors import ConfigurationError
from rotation_core.settings import PasswordPolicy

# The same character classes as GetRandomPassword (space is never included).
PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


def character_classes(policy: PasswordPolicy) -> list[str]:
    """The non-empty character classes the policy allows, with excluded characters removed."""
    wanted = [
        (string.ascii_lowercase, policy.exclude_lowercase),
        (string.ascii_uppercase, policy.exclude_uppercase),
        (string.digits, policy.exclude_numbers),
        (PUNCTUATION, policy.exclude_punctuation),
    ]
    excluded = set(policy.exclude_characters)
    classes = []
    for chars, is_excluded in wanted:
        if is_excluded:
            continue
        kept = "".join(c for c in chars if c not in excluded)
        if kept:
            classes.append(kept)
    return classes


def generate_password(policy: PasswordPolicy) -> str:
    """Return a new random password; raise :class:`ConfigurationError` if the policy allows none."""
    classes = character_classes(policy)
    if not classes:
        raise ConfigurationError(
            "the password options exclude every character; relax EXCLUDE_CHARACTERS or the EXCLUDE_* flags"
        )
    if policy.require_each_included_type and policy.length < len(classes):
        raise ConfigurationError(
            f"PASSWORD_LENGTH={policy.length} is shorter than the {len(classes)} character types "
            "REQUIRE_EACH_INCLUDED_TYPE asks for; raise PASSWORD_LENGTH"
        )
    alphabet = "".join(classes)
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(policy.length))
        if not policy.require_each_included_type or all(any(c in chars for c in candidate) for chars in classes):
            return candidate
