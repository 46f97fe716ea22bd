"""PostgreSQL statements as data: a ``{}`` template and the identifiers and literals that fill it.

Nothing here imports the driver. The engine composes each :class:`Statement` with ``psycopg2.sql``
(``Identifier`` / ``Literal``) and sends it without parameters, so no ``%``-formatting ever touches a
name: a role called ``dba%team`` reaches the server as it is. Passwords never appear: the statements
carry the SCRAM-SHA-256 verifier computed on the client.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Ident:
    """A name, quoted as an identifier."""

    name: str


@dataclass(frozen=True)
class Literal:
    """A value, quoted as a string literal (a verifier: never shown)."""

    value: str = field(repr=False)


@dataclass(frozen=True)
class Statement:
    template: str  # SQL with one "{}" per part
    parts: tuple[Ident | Literal, ...] = ()


def own_password(username: str, verifier: str) -> list[Statement]:
    """As the user itself: act as itself (an alternating clone's default role is another), set the password."""
    return [
        Statement("SET ROLE NONE"),
        Statement("ALTER ROLE {} PASSWORD {}", (Ident(username), Literal(verifier))),
    ]


def role_exists(name: str) -> Statement:
    return Statement("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {}", (Literal(name),))


def original_password(original: str, verifier: str) -> list[Statement]:
    """As admin, when the original user's turn has come round again."""
    return [Statement("ALTER ROLE {} WITH LOGIN PASSWORD {}", (Ident(original), Literal(verifier)))]


def clone_password(original: str, clone: str, verifier: str, *, exists: bool) -> list[Statement]:
    """As admin: the clone logs in with the password, is a member of the original and acts as it.

    Membership plus a default role: what the clone creates belongs to the original, and every grant
    the original gets later applies to the clone too.
    """
    verb = "ALTER" if exists else "CREATE"
    return [
        Statement(verb + " ROLE {} WITH LOGIN PASSWORD {}", (Ident(clone), Literal(verifier))),
        Statement("GRANT {} TO {}", (Ident(original), Ident(clone))),
        Statement("ALTER ROLE {} SET role TO {}", (Ident(clone), Ident(original))),
    ]
