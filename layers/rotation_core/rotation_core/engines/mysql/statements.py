"""MySQL and MariaDB statements: which ones a server flavour and version get, built as data.

Nothing here talks to a server or imports the driver, so every version's statements are unit-tested.
A :data:`~rotation_core.engines.mysql.grants.Statement` is a PyMySQL format template and its bound
values; names spliced into the text are quoted (and their ``%`` doubled) by
:func:`~rotation_core.engines.mysql.grants.quote_identifier`.

* MariaDB, mysql_native_password: passwords are sent as the hash the server stores
  (``*`` + hex SHA1(SHA1(password)), computed here), never as plaintext, so the general log, the slow
  log and the binary log see only the hash. A user changes its own password with
  ``SET PASSWORD = '<hash>'``, which needs no privilege; ``ALTER USER CURRENT_USER()`` would need
  CREATE USER. Accounts with another plugin (ed25519, PAM ...) are refused rather than exposed.
* MySQL 5.7.6 and later: ``ALTER USER USER() IDENTIFIED BY`` for oneself and ``ALTER USER`` /
  ``CREATE USER ... IDENTIFIED WITH <plugin> BY`` as admin. The plaintext travels over the (TLS)
  connection; MySQL itself rewrites it as ``<secret>`` in its general, slow and binary logs.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from rotation_core.engines.mysql.grants import Account, Statement, render_role
from rotation_core.errors import Category, TargetError, describe

NATIVE_PLUGIN = "mysql_native_password"
CACHING_SHA2_PLUGIN = "caching_sha2_password"
SHA256_PLUGIN = "sha256_password"
_MYSQL_PASSWORD_PLUGINS = frozenset({NATIVE_PLUGIN, CACHING_SHA2_PLUGIN, SHA256_PLUGIN})

# Resource limits: the mysql.user column (both flavours) and the ALTER USER ... WITH keyword.
_LIMIT_COLUMNS = (
    ("max_questions", "MAX_QUERIES_PER_HOUR"),
    ("max_updates", "MAX_UPDATES_PER_HOUR"),
    ("max_connections", "MAX_CONNECTIONS_PER_HOUR"),
    ("max_user_connections", "MAX_USER_CONNECTIONS"),
)
_MARIADB_LIMIT_COLUMNS = (("max_statement_time", "MAX_STATEMENT_TIME"),)
_LIMIT_VALUE = re.compile(r"-?\d+(?:\.\d+)?")


class Flavour(enum.StrEnum):
    MYSQL = "MySQL"
    MARIADB = "MariaDB"


_VERSION = re.compile(r"^(?:5\.5\.5-)?(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True, order=True)
class ServerVersion:
    """Flavour and numeric version, parsed from ``VERSION()`` (and ``@@version_comment``)."""

    flavour: Flavour
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, version: str, comment: str = "") -> ServerVersion:
        """``"10.11.6-MariaDB-log"``, ``"5.5.5-10.6.16-MariaDB"``, ``"8.0.36"``, ``"8.0.mysql_aurora.3.05.2"``.

        Raises:
            ValueError: the text does not start with a version number.
        """
        text = version.strip()
        match = _VERSION.match(text)
        if match is None:
            aurora = re.match(r"^(\d+)\.(\d+)\.mysql_aurora\.", text)
            if aurora is None:
                raise ValueError("not a MySQL or MariaDB version string")
            return cls(Flavour.MYSQL, int(aurora.group(1)), int(aurora.group(2)), 0)
        flavour = Flavour.MARIADB if "mariadb" in f"{text} {comment}".lower() else Flavour.MYSQL
        return cls(flavour, int(match.group(1)), int(match.group(2)), int(match.group(3)))

    @property
    def numbers(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def __str__(self) -> str:
        return f"{self.flavour.value} {self.major}.{self.minor}.{self.patch}"


def native_password_hash(password: str) -> str:
    """What mysql_native_password stores: ``*`` + upper-case hex SHA1(SHA1(password)).

    Not a secure hash by today's standards, but the one the server keeps anyway; sending it instead
    of the password keeps the plaintext out of every server log.
    """
    # The protocol fixes the hash; it protects nothing here, it is the format the server stores.
    inner = hashlib.sha1(password.encode("utf-8"), usedforsecurity=False).digest()
    digest = hashlib.sha1(inner, usedforsecurity=False).hexdigest()
    return "*" + digest.upper()


class UnsupportedAccountError(TargetError):
    """The account or server cannot be rotated without exposing the password, or at all."""

    category = Category.PERMISSION


class StatementBuilder:
    """The password statements for one server flavour and version; pure, so each version is unit-tested."""

    def __init__(self, server: ServerVersion) -> None:
        self.server = server
        if server.flavour is Flavour.MYSQL and server.numbers < (5, 7, 6):
            raise UnsupportedAccountError(
                f"{server} is not supported: password rotation needs MySQL 5.7.6 or later (ALTER USER); "
                "upgrade the server"
            )

    @property
    def is_mariadb(self) -> bool:
        return self.server.flavour is Flavour.MARIADB

    def check_plugin(self, plugin: str, account: str) -> str:
        """The account's auth plugin if this function can set its password; else a clear refusal."""
        plugin = plugin or NATIVE_PLUGIN  # MariaDB and old MySQL show "" for native passwords
        if self.is_mariadb and plugin != NATIVE_PLUGIN:
            raise UnsupportedAccountError(
                f"{account} authenticates with {describe(plugin)}; on MariaDB this function only rotates "
                f"{NATIVE_PLUGIN} accounts, whose hash it can compute so that no plaintext reaches the "
                f"server's logs. Switch the account to {NATIVE_PLUGIN} (ALTER USER ... IDENTIFIED VIA "
                f"{NATIVE_PLUGIN} USING PASSWORD(...)) or rotate it another way"
            )
        if not self.is_mariadb and plugin not in _MYSQL_PASSWORD_PLUGINS:
            raise UnsupportedAccountError(
                f"{account} authenticates with {describe(plugin)}, which has no password to rotate; "
                f"use one of: {', '.join(sorted(_MYSQL_PASSWORD_PLUGINS))}"
            )
        if not self.is_mariadb and plugin == NATIVE_PLUGIN and self.server.major >= 9:
            raise UnsupportedAccountError(
                f"{account} uses {NATIVE_PLUGIN}, which {self.server} no longer has; "
                f"move the account to {CACHING_SHA2_PLUGIN}"
            )
        return plugin

    def own_password(self, new_password: str) -> Statement:
        """Change the logged-in user's own password, with no privilege beyond logging in."""
        if self.is_mariadb:
            return ("SET PASSWORD = %s", (native_password_hash(new_password),))
        return ("ALTER USER USER() IDENTIFIED BY %s", (new_password,))

    def set_password(self, account: Account, new_password: str, plugin: str | None = None) -> Statement:
        """As admin, change an existing account's password.

        Without ``plugin`` the account keeps its own; with one (an alternating clone, which must match
        the original) MySQL is told ``IDENTIFIED WITH <plugin>``. MariaDB's ``IDENTIFIED BY PASSWORD``
        always makes the account a mysql_native_password one, the only plugin rotated there.
        """
        who = (account.user, account.host)
        if self.is_mariadb:
            if self.server.numbers < (10, 2, 0):
                return ("SET PASSWORD FOR %s@%s = %s", (*who, native_password_hash(new_password)))
            return ("ALTER USER %s@%s IDENTIFIED BY PASSWORD %s", (*who, native_password_hash(new_password)))
        if plugin is None:
            return ("ALTER USER %s@%s IDENTIFIED BY %s", (*who, new_password))
        if plugin not in _MYSQL_PASSWORD_PLUGINS:
            raise UnsupportedAccountError(f"cannot give an account the plugin {describe(plugin)}")
        return (f"ALTER USER %s@%s IDENTIFIED WITH {plugin} BY %s", (*who, new_password))

    def create_user(self, account: Account, plugin: str, new_password: str) -> Statement:
        """As admin, create the account with the given (already checked) plugin and password."""
        who = (account.user, account.host)
        if self.is_mariadb:
            return ("CREATE USER %s@%s IDENTIFIED BY PASSWORD %s", (*who, native_password_hash(new_password)))
        if plugin not in _MYSQL_PASSWORD_PLUGINS:
            raise UnsupportedAccountError(f"cannot create an account with the plugin {describe(plugin)}")
        return (f"CREATE USER %s@%s IDENTIFIED WITH {plugin} BY %s", (*who, new_password))

    def require_tls(self, account: Account, requirement: TlsRequirement) -> Statement:
        """``ALTER USER ... REQUIRE``: same clause on MySQL 5.7+ and MariaDB 10.2+."""
        who: tuple[object, ...] = (account.user, account.host)
        if requirement.ssl_type == "":
            return ("ALTER USER %s@%s REQUIRE NONE", who)
        if requirement.ssl_type == "ANY":
            return ("ALTER USER %s@%s REQUIRE SSL", who)
        if requirement.ssl_type == "X509":
            return ("ALTER USER %s@%s REQUIRE X509", who)
        parts, values = [], []
        for keyword, value in (
            ("ISSUER", requirement.issuer),
            ("SUBJECT", requirement.subject),
            ("CIPHER", requirement.cipher),
        ):
            if value:
                parts.append(f"{keyword} %s")
                values.append(value)
        if not parts:
            return ("ALTER USER %s@%s REQUIRE X509", who)
        return ("ALTER USER %s@%s REQUIRE " + " AND ".join(parts), (*who, *values))

    @property
    def limit_columns(self) -> tuple[tuple[str, str], ...]:
        """The ``mysql.user`` column of each resource limit this flavour has, and its ``WITH`` keyword."""
        return _LIMIT_COLUMNS + (_MARIADB_LIMIT_COLUMNS if self.is_mariadb else ())

    def resource_limits(self, account: Account, limits: Mapping[str, str]) -> Statement:
        """``ALTER USER ... WITH`` every limit the flavour knows, 0 where ``limits`` has none.

        MariaDB's MAX_USER_CONNECTIONS may be -1 (no connection allowed) and MAX_STATEMENT_TIME is
        a decimal number of seconds.
        """
        clauses = []
        for _column, name in self.limit_columns:
            value = limits.get(name, "0")
            if not _LIMIT_VALUE.fullmatch(value):
                raise UnsupportedAccountError(f"the {name} limit is not a number; it cannot be copied")
            clauses.append(f"{name} {value}")
        return ("ALTER USER %s@%s WITH " + " ".join(clauses), (account.user, account.host))

    @property
    def default_role_privilege(self) -> str:
        """What the master needs to set another account's default roles (tested on MariaDB 10.11)."""
        if self.is_mariadb:
            return (
                "on MariaDB, SET DEFAULT ROLE ... FOR another user needs UPDATE on the mysql schema: "
                "GRANT UPDATE ON mysql.* TO <master> (UPDATE on single mysql tables is not enough)"
            )
        return "on MySQL, SET DEFAULT ROLE ... TO another user needs CREATE USER (or UPDATE on mysql.default_roles)"

    def default_roles(self, account: Account, roles: list[Account]) -> Statement:
        who = (account.user, account.host)
        if self.is_mariadb:
            # MariaDB has one default role per account.
            role = render_role(roles[0]) if roles else "NONE"
            return (f"SET DEFAULT ROLE {role} FOR %s@%s", who)
        listed = ", ".join(render_role(role) for role in roles) if roles else "NONE"
        return (f"SET DEFAULT ROLE {listed} TO %s@%s", who)


@dataclass(frozen=True)
class TlsRequirement:
    """An account's ``REQUIRE`` clause, as ``mysql.user`` stores it."""

    ssl_type: str = ""  # "", "ANY", "X509", "SPECIFIED"
    cipher: str = ""
    issuer: str = ""
    subject: str = ""


@dataclass(frozen=True)
class AccountRow:
    """What ``mysql.user`` says about an account that SHOW GRANTS does not (reliably) show."""

    plugin: str
    requirement: TlsRequirement
    limits: dict[str, str]  # WITH keyword -> value as text ("MAX_USER_CONNECTIONS": "20")


# mysql.user exists on both flavours (a view over mysql.global_priv on MariaDB 10.4+); roles are rows
# there too on MariaDB, so they are filtered out.
USER_HOSTS_MARIADB = "SELECT Host FROM mysql.user WHERE User = %s AND is_role = 'N' ORDER BY Host"
USER_HOSTS_MYSQL = "SELECT Host FROM mysql.user WHERE User = %s ORDER BY Host"
ACCOUNT_ROW_START = "SELECT plugin, ssl_type, ssl_cipher, x509_issuer, x509_subject"
ACCOUNT_ROW_END = "FROM mysql.user WHERE User = %s AND Host = %s"
MYSQL_DEFAULT_ROLES = (
    "SELECT DEFAULT_ROLE_USER, DEFAULT_ROLE_HOST FROM mysql.default_roles WHERE USER = %s AND HOST = %s "
    "ORDER BY DEFAULT_ROLE_USER, DEFAULT_ROLE_HOST"
)


def limit_text(value: object) -> str:
    """A resource limit from ``mysql.user`` (an integer, or MariaDB's DECIMAL statement time) as SQL text."""
    if value is None:
        return "0"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)
