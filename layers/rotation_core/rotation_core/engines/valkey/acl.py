"""Valkey/Redis ACL users as data: what ``ACL GETUSER`` says, what makes a user privileged, the change to send.

Pure: no I/O. Facts from the servers' ACL documentation and measured on Redis 7.0 and Valkey 8.1: ``ACL GETUSER``
answers ``flags``, ``passwords`` (SHA-256 hex digests), ``commands`` (one normalised rule string such as
``-@all +get +acl|whoami``), ``keys`` (``~app:*``, ``%R~*``; a list in Redis 6), ``channels`` and ``selectors``;
``ACL CAT <category>`` lists the commands and subcommands (``config|set``) of a category. ``ACL SETUSER`` applies
all its rules or none, and ``#<digest>`` adds a password by its SHA-256 digest, so a password never travels in a
command (and never reaches ``MONITOR`` or the slow log).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

#: The categories whose commands make a user privileged (their members come from ``ACL CAT``).
PRIVILEGED_CATEGORIES = ("admin", "dangerous")
DEFAULT_USER = "default"


def password_digest(password: str) -> str:
    """What the server stores for a password: the lower-case hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def _text(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return "" if value is None else str(value)


def _words(value: object) -> tuple[str, ...]:
    """A rule string or a list of rules (Redis 6 answers lists), as words."""
    if isinstance(value, list | tuple):
        return tuple(word for item in value for word in _text(item).split())
    return tuple(_text(value).split())


@dataclass(frozen=True)
class AclUser:
    """One ACL user as ``ACL GETUSER`` describes it."""

    name: str
    flags: frozenset[str]
    password_digests: frozenset[str]
    commands: tuple[str, ...]  # the rule words, in order
    keys: tuple[str, ...]
    selectors: int  # how many selectors (Redis 7+); their rules are not evaluated here

    @property
    def nopass(self) -> bool:
        """Any password logs in: a login proves nothing about who holds the secret."""
        return "nopass" in self.flags

    @property
    def enabled(self) -> bool:
        return "on" in self.flags


def parse_getuser(name: str, reply: object) -> AclUser | None:
    """The reply of ``ACL GETUSER name`` (RESP2: a flat key/value list; RESP3: a map); None for no such user."""
    if reply is None:
        return None
    if isinstance(reply, Mapping):
        fields = {_text(key): value for key, value in reply.items()}
    elif isinstance(reply, list | tuple):
        fields = {_text(reply[i]): reply[i + 1] for i in range(0, len(reply) - 1, 2)}
    else:
        raise ValueError("ACL GETUSER answered neither a list nor a map")
    flags = frozenset(_text(flag) for flag in fields.get("flags") or ())
    digests = frozenset(_text(digest).lower() for digest in fields.get("passwords") or ())
    selectors = fields.get("selectors") or ()
    return AclUser(
        name=name,
        flags=flags,
        password_digests=digests,
        commands=_words(fields.get("commands")),
        keys=_words(fields.get("keys")),
        selectors=len(selectors) if isinstance(selectors, list | tuple) else 0,
    )


def categories_named(rules: Iterable[str]) -> set[str]:
    """The categories a rule string refers to (``+@read`` -> ``read``), ``all`` aside."""
    return {rule[2:].lower() for rule in rules if rule[:2] in ("+@", "-@") and rule[2:].lower() != "all"}


def _applies(rule_name: str, command: str, members: Mapping[str, frozenset[str]]) -> bool:
    """Does a rule's name (``get``, ``config|set``, ``@admin``) cover ``command`` (``flushall``, ``config|set``)?"""
    top = command.split("|", 1)[0]
    if rule_name.startswith("@"):
        category = rule_name[1:].lower()
        return category == "all" or command in members.get(category, frozenset())
    name = rule_name.lower()
    # A whole command covers its subcommands; a subcommand rule on a command we ask about as a whole covers part of it.
    return name in (command, top) or ("|" not in command and name.startswith(command + "|"))


def allows(rules: Sequence[str], command: str, members: Mapping[str, frozenset[str]]) -> bool:
    """Whether the rules (left to right, as the server applies them) allow ``command``, at least in part."""
    allowed = False
    for rule in rules:
        word = rule.lower()
        if word in ("allcommands",):
            allowed = True
        elif word in ("nocommands",):
            allowed = False
        elif word[:1] in ("+", "-") and _applies(word[1:], command, members):
            allowed = word[0] == "+"
    return allowed


def _all_keys(user: AclUser) -> bool:
    if "allkeys" in user.flags:
        return True
    for pattern in user.keys:
        access, tilde, glob = pattern.partition("~")
        if tilde and glob == "*" and access in ("", "%R", "%W", "%RW"):
            return True
    return False


def privileges(user: AclUser, members: Mapping[str, frozenset[str]]) -> list[str]:
    """What makes ``user`` privileged (empty: nothing): every key, commands of @admin or @dangerous, selectors.

    ``members`` holds the commands of :data:`PRIVILEGED_CATEGORIES` and of every category the user's rules name.
    """
    found = []
    if _all_keys(user):
        found.append("every key (~*)")
    if "allcommands" in user.commands or "+@all" in (rule.lower() for rule in user.commands):
        found.append("every command (+@all)")
    for category in PRIVILEGED_CATEGORIES:
        granted = sorted(command for command in members.get(category, ()) if allows(user.commands, command, members))
        if granted:
            shown = ", ".join(granted[:4]) + (", ..." if len(granted) > 4 else "")
            found.append(f"@{category} commands ({shown})")
    if user.selectors:
        found.append("ACL selectors (not evaluated)")
    return found


def set_passwords_command(username: str, passwords: Iterable[str]) -> tuple[str, ...]:
    """``ACL SETUSER`` that leaves the user exactly these passwords (by digest), in one atomic command.

    ``resetpass`` forgets every other password (the one older than AWSPREVIOUS) and the ``nopass`` flag.
    """
    digests = sorted({password_digest(password) for password in passwords if password})
    return ("ACL", "SETUSER", username, "resetpass", *(f"#{digest}" for digest in digests))


def wanted_digests(current_password: str, new_password: str) -> frozenset[str]:
    """The passwords a user keeps after a rotation's setSecret: the current one (if any) and the new one."""
    return frozenset(password_digest(p) for p in (current_password, new_password) if p)
