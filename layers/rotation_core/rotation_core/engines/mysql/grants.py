"""A strict reader of ``SHOW GRANTS`` lines, and the statements that copy them to another account.

Server-returned grant text is never executed. Each line is split into tokens and parsed against a
small grammar (privilege names, object kinds, identifiers, grantees, the clauses MySQL and MariaDB
append); anything outside it is refused with :class:`GrantSyntaxError`. What comes out is data
(:class:`Privilege`, :class:`RoleGrant`), and every statement is rebuilt from that data: identifiers
are re-quoted, privilege names are checked against ``[A-Z_ ]`` words, the grantee is always a bound
parameter. A hostile database name can therefore not smuggle SQL into the replay (CWE-89).

A statement's text is a PyMySQL format template (see :data:`Statement`): names are spliced into it
only through :func:`quote_identifier`, which doubles ``%``, so a name such as ``app\\_%`` or a MySQL
role ``'r'@'%'`` reaches the server exactly as it is.

Messages about a refused line never quote it: on MariaDB the line carries the account's password hash.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

#: A statement: a PyMySQL format template and the values PyMySQL binds into its ``%s`` placeholders.
#: The template is always formatted, even with no values (the engine executes it with its tuple, an
#: empty one included), so every ``%`` in it that is not a placeholder is written ``%%``. Names enter
#: it only through :func:`quote_identifier`, which does that; everything else spliced in is a fixed
#: keyword, a checked privilege name or a checked number.
Statement = tuple[str, tuple[object, ...]]

GRANT_OPTION = "GRANT OPTION"
_USAGE = "USAGE"
_OBJECT_KINDS = ("TABLE", "FUNCTION", "PROCEDURE", "PACKAGE BODY", "PACKAGE")
_PRIVILEGE_WORD = re.compile(r"^[A-Z][A-Z0-9_]*$")
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")  # MariaDB allows MAX_USER_CONNECTIONS -1
#: Per-account resource limits (the last one is MariaDB's). MariaDB shows them after WITH in SHOW
#: GRANTS, MySQL 5.7+ never does: they are read from ``mysql.user`` instead, on both flavours.
RESOURCE_LIMITS = (
    "MAX_QUERIES_PER_HOUR",
    "MAX_UPDATES_PER_HOUR",
    "MAX_CONNECTIONS_PER_HOUR",
    "MAX_USER_CONNECTIONS",
    "MAX_STATEMENT_TIME",
)
_TLS_WORDS = ("SSL", "X509", "NONE")
_TLS_STRINGS = ("ISSUER", "SUBJECT", "CIPHER")

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<backtick>`(?:[^`]|``)*`)
  | (?P<string>'(?:[^'\\]|\\.|'')*')
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<punct>[,().*@=])
    """,
    re.VERBOSE | re.DOTALL,
)


class GrantSyntaxError(ValueError):
    """A ``SHOW GRANTS`` line is outside the grammar this module accepts."""


@dataclass(frozen=True)
class Token:
    kind: str  # "ident" (quoted), "string", "number", "word", "punct"
    text: str  # unquoted value for ident/string, upper-cased for words

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text in words


def tokenize(line: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(line):
        match = _TOKEN.match(line, position)
        if match is None:
            raise GrantSyntaxError(f"unexpected character at offset {position}")
        position = match.end()
        kind = match.lastgroup
        raw = match.group()
        if kind == "space":
            continue
        if kind == "backtick":
            tokens.append(Token("ident", raw[1:-1].replace("``", "`")))
        elif kind == "string":
            tokens.append(Token("string", _unquote_string(raw[1:-1])))
        elif kind == "word":
            tokens.append(Token("word", raw.upper()))
        else:
            tokens.append(Token(str(kind), raw))
    return tokens


_STRING_ESCAPES = {"0": "\0", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "b": "\b"}


def _unquote_string(body: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            out.append(_STRING_ESCAPES.get(body[index + 1], body[index + 1]))
            index += 2
        elif char == "'" and body[index + 1 : index + 2] == "'":
            out.append("'")
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


@dataclass(frozen=True)
class Account:
    """``user@host``; ``host`` is None for a MariaDB role (which has no host part)."""

    user: str
    host: str | None


@dataclass(frozen=True)
class GrantObject:
    """What a privilege applies to. ``database``/``name`` None means ``*``."""

    kind: str  # "" (tables and databases), "FUNCTION", "PROCEDURE", "PACKAGE", "PACKAGE BODY"
    database: str | None
    name: str | None

    def render(self) -> str:
        level = f"{_star_or_ident(self.database)}.{_star_or_ident(self.name)}"
        return f"{self.kind} {level}" if self.kind else level


@dataclass(frozen=True)
class Privilege:
    """One privilege on one object (and one column, for column privileges)."""

    target: GrantObject
    name: str  # "SELECT", "ALL PRIVILEGES", "GRANT OPTION" ...
    column: str | None = None


@dataclass(frozen=True)
class RoleGrant:
    role: Account
    admin_option: bool = False


@dataclass
class AccountGrants:
    """Everything ``SHOW GRANTS FOR user@host`` said about one account, as data."""

    privileges: set[Privilege] = field(default_factory=set)
    roles: set[RoleGrant] = field(default_factory=set)
    default_roles: list[Account] = field(default_factory=list)
    auth_plugins: list[str] = field(default_factory=list)  # from MariaDB's IDENTIFIED clause


def quote_identifier(name: str) -> str:
    """``name`` as a backtick-quoted identifier for a :data:`Statement` template (``%`` doubled)."""
    if "\x00" in name:
        raise GrantSyntaxError("identifier contains a NUL character")
    return "`" + name.replace("`", "``").replace("%", "%%") + "`"


def _star_or_ident(name: str | None) -> str:
    return "*" if name is None else quote_identifier(name)


def render_role(role: Account) -> str:
    return (
        quote_identifier(role.user)
        if role.host is None
        else f"{quote_identifier(role.user)}@{quote_identifier(role.host)}"
    )


def check_privilege_name(name: str) -> str:
    words = name.split(" ")
    if not words or not all(_PRIVILEGE_WORD.match(word) for word in words):
        raise GrantSyntaxError("a privilege name is not made of upper-case words")
    return name


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self, offset: int = 0) -> Token | None:
        position = self.index + offset
        return self.tokens[position] if position < len(self.tokens) else None

    def next(self, what: str) -> Token:
        token = self.peek()
        if token is None:
            raise GrantSyntaxError(f"the line ends where {what} was expected")
        self.index += 1
        return token

    def expect_word(self, *words: str) -> str:
        token = self.next(" or ".join(words))
        if not token.is_word(*words):
            raise GrantSyntaxError(f"expected {' or '.join(words)}")
        return token.text

    def expect_punct(self, char: str) -> None:
        token = self.next(repr(char))
        if token.kind != "punct" or token.text != char:
            raise GrantSyntaxError(f"expected {char!r}")

    def at_word(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token.is_word(*words)

    def at_punct(self, char: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "punct" and token.text == char

    def done(self) -> bool:
        return self.index >= len(self.tokens)

    def name(self, what: str) -> str:
        """A quoted name: backticks (MySQL 8, MariaDB) or single quotes (MySQL 5.7 grantees).

        Bare words are refused: the tokenizer upper-cases them, and servers quote every name anyway.
        """
        token = self.next(what)
        if token.kind not in ("ident", "string"):
            raise GrantSyntaxError(f"expected {what} (quoted)")
        return token.text

    def account(self, what: str) -> Account:
        user = self.name(what)
        if self.at_punct("@"):
            self.index += 1
            return Account(user, self.name(f"the host of {what}"))
        return Account(user, None)


@dataclass(frozen=True)
class _PrivilegeLine:
    privileges: tuple[tuple[str, tuple[str, ...]], ...]
    target: GrantObject
    grantee: Account
    grant_option: bool
    auth_plugins: tuple[str, ...]


@dataclass(frozen=True)
class _RoleLine:
    roles: tuple[Account, ...]
    grantee: Account
    admin_option: bool


@dataclass(frozen=True)
class _DefaultRoleLine:
    roles: tuple[Account, ...]
    grantee: Account


ParsedLine = _PrivilegeLine | _RoleLine | _DefaultRoleLine


def parse_line(line: str) -> ParsedLine:
    """One ``SHOW GRANTS`` line as data; :class:`GrantSyntaxError` if it is outside the grammar."""
    parser = _Parser(tokenize(line))
    if parser.at_word("SET"):
        return _parse_default_role(parser)
    parser.expect_word("GRANT")
    if parser.at_word("PROXY"):
        raise GrantSyntaxError("PROXY grants are not copied")
    if _is_role_grant(parser):
        return _parse_role_grant(parser)
    privileges = _parse_privilege_list(parser)
    parser.expect_word("ON")
    target = _parse_object(parser)
    parser.expect_word("TO")
    grantee = parser.account("the grantee")
    auth_plugins = _parse_identified(parser)
    _parse_require(parser)
    grant_option = _parse_with(parser)
    if not parser.done():
        raise GrantSyntaxError("unexpected text after the grant's clauses")
    return _PrivilegeLine(privileges, target, grantee, grant_option, auth_plugins)


def _is_role_grant(parser: _Parser) -> bool:
    """A role grant names roles (quoted) before TO and has no ON."""
    first = parser.peek()
    return first is not None and first.kind in ("ident", "string")


def _parse_role_grant(parser: _Parser) -> _RoleLine:
    roles = [parser.account("a role")]
    while parser.at_punct(","):
        parser.index += 1
        roles.append(parser.account("a role"))
    parser.expect_word("TO")
    grantee = parser.account("the grantee")
    admin_option = False
    if parser.at_word("WITH"):
        parser.index += 1
        parser.expect_word("ADMIN")
        parser.expect_word("OPTION")
        admin_option = True
    if not parser.done():
        raise GrantSyntaxError("unexpected text after a role grant")
    return _RoleLine(tuple(roles), grantee, admin_option)


def _parse_default_role(parser: _Parser) -> _DefaultRoleLine:
    parser.expect_word("SET")
    parser.expect_word("DEFAULT")
    parser.expect_word("ROLE")
    roles = [parser.account("a role")]
    while parser.at_punct(","):
        parser.index += 1
        roles.append(parser.account("a role"))
    parser.expect_word("FOR", "TO")
    grantee = parser.account("the grantee")
    if not parser.done():
        raise GrantSyntaxError("unexpected text after SET DEFAULT ROLE")
    return _DefaultRoleLine(tuple(roles), grantee)


def _parse_privilege_list(parser: _Parser) -> tuple[tuple[str, tuple[str, ...]], ...]:
    privileges: list[tuple[str, tuple[str, ...]]] = []
    while True:
        words: list[str] = []
        while parser.peek() is not None and parser.peek().kind == "word" and not parser.at_word("ON"):  # type: ignore[union-attr]
            words.append(parser.next("a privilege").text)
        if not words:
            raise GrantSyntaxError("expected a privilege name")
        name = check_privilege_name(" ".join(words))
        columns: list[str] = []
        if parser.at_punct("("):
            parser.index += 1
            columns.append(parser.name("a column"))
            while parser.at_punct(","):
                parser.index += 1
                columns.append(parser.name("a column"))
            parser.expect_punct(")")
        privileges.append((name, tuple(columns)))
        if not parser.at_punct(","):
            return tuple(privileges)
        parser.index += 1


def _parse_object(parser: _Parser) -> GrantObject:
    kind = ""
    if parser.at_word("PACKAGE") and (following := parser.peek(1)) is not None and following.is_word("BODY"):
        parser.index += 2
        kind = "PACKAGE BODY"
    elif parser.at_word(*_OBJECT_KINDS):
        kind = parser.next("an object kind").text
        kind = "" if kind == "TABLE" else kind
    database = _star_or_name(parser)
    if not parser.at_punct("."):
        raise GrantSyntaxError("expected a database.object privilege level")
    parser.index += 1
    name = _star_or_name(parser)
    if database is None and name is not None:
        raise GrantSyntaxError("a privilege level of *.name is not valid")
    return GrantObject(kind, database, name)


def _star_or_name(parser: _Parser) -> str | None:
    if parser.at_punct("*"):
        parser.index += 1
        return None
    return parser.name("a database or object name")


def _parse_identified(parser: _Parser) -> tuple[str, ...]:
    """MariaDB: ``IDENTIFIED BY PASSWORD '<hash>'`` or ``IDENTIFIED VIA plugin [USING '...'] [OR ...]``."""
    if not parser.at_word("IDENTIFIED"):
        return ()
    parser.index += 1
    if parser.at_word("BY"):
        parser.index += 1
        parser.expect_word("PASSWORD")
        if parser.next("a password hash").kind != "string":
            raise GrantSyntaxError("expected a quoted password hash")
        return ("mysql_native_password",)
    parser.expect_word("VIA", "WITH")
    plugins = []
    while True:
        token = parser.next("an authentication plugin")
        if token.kind != "word" and token.kind not in ("ident", "string"):
            raise GrantSyntaxError("expected an authentication plugin name")
        plugins.append(token.text.lower())
        if parser.at_word("USING", "AS", "BY"):
            parser.index += 1
            if parser.next("an authentication string").kind != "string":
                raise GrantSyntaxError("expected a quoted authentication string")
        if not parser.at_word("OR"):
            return tuple(plugins)
        parser.index += 1


def _parse_require(parser: _Parser) -> None:
    """Accepted and skipped: the TLS requirement is read from ``mysql.user`` as data instead."""
    if not parser.at_word("REQUIRE"):
        return
    parser.index += 1
    if parser.at_word(*_TLS_WORDS):
        parser.index += 1
        return
    seen = False
    while parser.at_word(*_TLS_STRINGS):
        parser.index += 1
        if parser.next("a quoted value").kind != "string":
            raise GrantSyntaxError("expected a quoted TLS requirement value")
        seen = True
        if parser.at_word("AND"):
            parser.index += 1
    if not seen:
        raise GrantSyntaxError("unknown REQUIRE clause")


def _parse_with(parser: _Parser) -> bool:
    """``WITH GRANT OPTION`` (returned) and resource limits (checked and skipped: see :data:`RESOURCE_LIMITS`)."""
    if not parser.at_word("WITH"):
        return False
    parser.index += 1
    grant_option = False
    while not parser.done():
        if parser.at_word("GRANT"):
            parser.index += 1
            parser.expect_word("OPTION")
            grant_option = True
        elif parser.at_word(*RESOURCE_LIMITS):
            parser.index += 1
            value = parser.next("a number")
            if value.kind != "number" or not _NUMBER.match(value.text):
                raise GrantSyntaxError("expected a number after a resource limit")
        else:
            raise GrantSyntaxError("unknown WITH option")
    return grant_option


def parse_grants(lines: Iterable[str], account: Account) -> AccountGrants:
    """The grants of ``account`` from its ``SHOW GRANTS`` output; lines for other grantees are refused.

    Raises:
        GrantSyntaxError: naming the line number and what was wrong, never quoting the line.
    """
    grants = AccountGrants()
    for number, line in enumerate(lines, start=1):
        try:
            parsed = parse_line(line)
        except GrantSyntaxError as error:
            raise GrantSyntaxError(f"grant line {number}: {error}") from None
        if parsed.grantee != account:
            raise GrantSyntaxError(f"grant line {number} is for another account than the one asked for")
        if isinstance(parsed, _RoleLine):
            grants.roles.update(RoleGrant(role, parsed.admin_option) for role in parsed.roles)
        elif isinstance(parsed, _DefaultRoleLine):
            grants.default_roles.extend(parsed.roles)
        else:
            for name, columns in parsed.privileges:
                if name == _USAGE:
                    continue
                if name == GRANT_OPTION:
                    raise GrantSyntaxError(f"grant line {number}: GRANT OPTION is written as WITH GRANT OPTION")
                if columns:
                    grants.privileges.update(Privilege(parsed.target, name, column) for column in columns)
                else:
                    grants.privileges.add(Privilege(parsed.target, name))
            if parsed.grant_option:
                grants.privileges.add(Privilege(parsed.target, GRANT_OPTION))
            grants.auth_plugins.extend(parsed.auth_plugins)
    return grants


def _privilege_key(privilege: Privilege) -> tuple[str, ...]:
    """A total order (``None`` — a ``*`` — sorts first) so the statements come out the same every time."""
    target = privilege.target
    return (
        target.kind,
        "" if target.database is None else "\x01" + target.database,
        "" if target.name is None else "\x01" + target.name,
        privilege.name,
        "" if privilege.column is None else "\x01" + privilege.column,
    )


def _role_key(grant: RoleGrant) -> tuple[str, str, bool]:
    return (grant.role.user, "" if grant.role.host is None else "\x01" + grant.role.host, grant.admin_option)


def auth_plugins_of(lines: Iterable[str], account: Account) -> list[str]:
    """The plugins MariaDB's ``IDENTIFIED`` clause names for ``account``; other lines are ignored.

    Used for a user's own grants, where a line this module does not copy (a PROXY grant, say) is no
    reason to refuse a password change.
    """
    for line in lines:
        try:
            parsed = parse_line(line)
        except GrantSyntaxError:
            continue
        if isinstance(parsed, _PrivilegeLine) and parsed.grantee == account and parsed.auth_plugins:
            return list(parsed.auth_plugins)
    return []


def _group(privileges: Iterable[Privilege]) -> dict[GrantObject, list[Privilege]]:
    grouped: dict[GrantObject, list[Privilege]] = {}
    for privilege in sorted(privileges, key=_privilege_key):
        grouped.setdefault(privilege.target, []).append(privilege)
    return grouped


def _privilege_list(privileges: Sequence[Privilege]) -> str:
    columns: dict[str, list[str]] = {}
    for privilege in privileges:
        columns.setdefault(check_privilege_name(privilege.name), [])
        if privilege.column is not None:
            columns[privilege.name].append(quote_identifier(privilege.column))
    return ", ".join(f"{name} ({', '.join(cols)})" if cols else name for name, cols in columns.items())


def sync_statements(desired: AccountGrants, existing: AccountGrants, grantee: Account) -> list[Statement]:
    """Statements that make ``grantee``'s privileges and roles equal to ``desired``.

    Revokes come first, so that revoking ``ALL PRIVILEGES`` cannot take away a privilege granted
    again right after. The grantee is bound as parameters, never spliced into the text.
    """
    if grantee.host is None:
        raise ValueError("a grantee needs a host part")
    who = (grantee.user, grantee.host)
    statements: list[Statement] = []
    for target, privileges in _group(existing.privileges - desired.privileges).items():
        names = [p for p in privileges if p.name != GRANT_OPTION]
        if names:
            statements.append((f"REVOKE {_privilege_list(names)} ON {target.render()} FROM %s@%s", who))
        if len(names) != len(privileges):
            statements.append((f"REVOKE GRANT OPTION ON {target.render()} FROM %s@%s", who))
    for role_grant in sorted(existing.roles - desired.roles, key=_role_key):
        statements.append((f"REVOKE {render_role(role_grant.role)} FROM %s@%s", who))
    for target, privileges in _group(desired.privileges - existing.privileges).items():
        names = [p for p in privileges if p.name != GRANT_OPTION]
        option = " WITH GRANT OPTION" if len(names) != len(privileges) else ""
        listed = _privilege_list(names) if names else _USAGE
        statements.append((f"GRANT {listed} ON {target.render()} TO %s@%s{option}", who))
    for role_grant in sorted(desired.roles - existing.roles, key=_role_key):
        option = " WITH ADMIN OPTION" if role_grant.admin_option else ""
        statements.append((f"GRANT {render_role(role_grant.role)} TO %s@%s{option}", who))
    return statements
