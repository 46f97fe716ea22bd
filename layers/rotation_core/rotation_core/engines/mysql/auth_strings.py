"""What MySQL stores for a ``caching_sha2_password`` account, computed and checked here, never logged.

``caching_sha2_password`` keeps ``$A$<rounds/1000, 3 hex digits>$<20-character salt><43-character
digest>``: SHA-256 ``crypt`` (Ulrich Drepper's "Unix crypt using SHA-256", the ``$5$`` scheme of glibc)
over the password and the salt, with the salt used in full (the ``$5$`` scheme would cut it to 16
characters). Two uses:

* :func:`caching_sha2_hash` makes the string a master sends in ``ALTER USER ... IDENTIFIED WITH
  caching_sha2_password AS '<string>' RETAIN CURRENT PASSWORD``, so the password itself never reaches
  the server's SQL text (MySQL 9.7 accepts that statement; its general log then holds this string, not
  the password).
* :func:`caching_sha2_matches` tells, from ``mysql.user`` (``authentication_string``, and the secondary
  password in ``User_attributes``), which password an account has now, without a login attempt.

The salt is drawn from the crypt alphabet (MySQL only avoids NUL and ``$`` in the salts it makes), so the
string is plain ASCII in SQL text and logs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

CACHING_SHA2_PREFIX = "$A$"
SALT_LENGTH = 20
DIGEST_LENGTH = 43
ROUNDS_UNIT = 1000
DEFAULT_ROUNDS = 5000  # MySQL's minimum for caching_sha2_password_digest_rounds
MAX_ROUNDS = 0xFFF * ROUNDS_UNIT
_CRYPT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# The order in which SHA-256 crypt writes the digest's bytes, three at a time (the last group has two).
_BYTE_ORDER = (
    (0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14),
    (15, 25, 5), (6, 16, 26), (27, 7, 17), (18, 28, 8), (9, 19, 29),
)  # fmt: skip
_STORED = re.compile(r"^\$A\$([0-9A-Fa-f]{3})\$", re.S)


def _repeated(block: bytes, length: int) -> bytes:
    return (block * (length // len(block) + 1))[:length]


def _encode_24(high: int, middle: int, low: int, characters: int) -> str:
    word = (high << 16) | (middle << 8) | low
    out = []
    for _ in range(characters):
        out.append(_CRYPT_ALPHABET[word & 0x3F])
        word >>= 6
    return "".join(out)


def sha256_crypt_digest(password: bytes, salt: bytes, rounds: int) -> str:
    """The 43-character digest part of SHA-256 crypt for ``password``, ``salt`` (used whole) and ``rounds``."""
    sha256 = hashlib.sha256
    alternate = sha256(password + salt + password).digest()
    context = sha256(password + salt)
    context.update(_repeated(alternate, len(password)))
    length = len(password)
    while length:
        context.update(alternate if length & 1 else password)
        length >>= 1
    intermediate = context.digest()
    p_bytes = _repeated(sha256(password * len(password)).digest(), len(password))
    s_bytes = _repeated(sha256(salt * (16 + intermediate[0])).digest(), len(salt))
    digest = intermediate
    for round_number in range(rounds):
        step = sha256(p_bytes if round_number & 1 else digest)
        if round_number % 3:
            step.update(s_bytes)
        if round_number % 7:
            step.update(p_bytes)
        step.update(digest if round_number & 1 else p_bytes)
        digest = step.digest()
    text = "".join(_encode_24(digest[a], digest[b], digest[c], 4) for a, b, c in _BYTE_ORDER)
    return text + _encode_24(0, digest[31], digest[30], 3)


def caching_sha2_hash(password: str, rounds: int = DEFAULT_ROUNDS, *, salt: str | None = None) -> str:
    """The ``authentication_string`` of ``password`` for ``caching_sha2_password`` (a fresh salt unless given).

    ``rounds`` is rounded down to whole thousands, as the string stores them.
    """
    thousands = max(DEFAULT_ROUNDS, min(rounds, MAX_ROUNDS)) // ROUNDS_UNIT
    salt = salt if salt is not None else "".join(secrets.choice(_CRYPT_ALPHABET) for _ in range(SALT_LENGTH))
    if len(salt) != SALT_LENGTH:
        raise ValueError("a caching_sha2_password salt has 20 characters")
    digest = sha256_crypt_digest(password.encode("utf-8"), salt.encode("utf-8"), thousands * ROUNDS_UNIT)
    return f"{CACHING_SHA2_PREFIX}{thousands:03X}${salt}{digest}"


def caching_sha2_matches(password: str, stored: str | None) -> bool:
    """Does ``stored`` (an ``authentication_string`` of ``caching_sha2_password``) hold ``password``?

    False for anything that is not such a string (an empty password, another plugin's format).
    """
    if not stored:
        return False
    match = _STORED.match(stored)
    raw = stored.encode("utf-8", errors="surrogateescape")
    header = len(match.group(0)) if match else 0
    if match is None or len(raw) != header + SALT_LENGTH + DIGEST_LENGTH:
        return False
    salt, digest = raw[header : header + SALT_LENGTH], raw[header + SALT_LENGTH :]
    rounds = int(match.group(1), 16) * ROUNDS_UNIT
    if not DEFAULT_ROUNDS <= rounds <= MAX_ROUNDS:
        return False
    computed = sha256_crypt_digest(password.encode("utf-8"), salt, rounds).encode("ascii")
    return hmac.compare_digest(computed, digest)
