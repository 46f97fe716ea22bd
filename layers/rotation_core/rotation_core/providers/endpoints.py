"""Provider endpoints: one strict parser, and the rule that decides where a credential may be sent.

The host this module judges is the host the connection goes to: :class:`Endpoint` holds the parsed
scheme, host and port, and the HTTP transport connects to exactly those fields (it never parses a
URL string again). Anything a second parser could read differently is refused: a host is a plain
ASCII DNS name (letters, digits, ``-`` and ``.``, no empty label, not ending in a number) or an IP
literal; backslashes, ``%``, white space, non-ASCII characters, user info, queries and fragments are
errors, as are ``.``/``..`` path segments.

Where a credential goes is decided by the admin secret (see :func:`resolve_endpoint`): the provider's
public endpoint, or the URL the admin secret pins. A rotated secret may repeat that URL, never name
another one.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from rotation_core.errors import Category, ConfusedDeputyError, SecretFormatError, TargetError

_DEFAULT_PORTS = {"https": 443, "http": 80}
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<path>[^?#]*)$")
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_PORT = re.compile(r"^[0-9]{1,5}$")
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@-]*$")
_MAX_URL = 2048
_MAX_HOST = 253
LOOPBACK_NAMES = frozenset({"localhost"})


class EndpointError(SecretFormatError):
    """A URL is not one this function will send a credential to."""


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: the connection's scheme, host and port, and a path prefix (``""`` or ``/a/b``)."""

    scheme: str
    host: str  # lower case; an IPv6 address without brackets
    port: int
    path: str = ""

    @property
    def is_loopback(self) -> bool:
        if self.host in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def same_origin(self, other: Endpoint) -> bool:
        return (self.scheme, self.host, self.port) == (other.scheme, other.host, other.port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if _DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        return f"{self.scheme}://{host}{port}{self.path}"


def parse_endpoint(text: object, what: str) -> Endpoint:
    """``https://host[:port][/path]`` as an :class:`Endpoint`; :class:`EndpointError` names ``what`` if not.

    The messages never repeat the URL: a rotated secret's editor could otherwise write log lines.
    """
    if not isinstance(text, str) or not text:
        raise EndpointError(f"{what} must be a URL string")
    if len(text) > _MAX_URL or not all("\x21" <= c <= "\x7e" for c in text):
        raise EndpointError(f"{what} contains white space, control or non-ASCII characters; write a plain URL")
    if "\\" in text or "%" in text:
        raise EndpointError(f"{what} contains a backslash or a percent sign, which URL parsers read differently")
    match = _URL.match(text)
    if match is None:
        raise EndpointError(f"{what} is not a plain https://host[:port][/path] URL (no query or fragment)")
    scheme = match["scheme"].lower()
    if scheme not in _DEFAULT_PORTS:
        raise EndpointError(f"{what} must use https")
    host, port = _authority(match["authority"], scheme, what)
    return Endpoint(scheme=scheme, host=host, port=port, path=_path(match["path"], what))


def _authority(authority: str, scheme: str, what: str) -> tuple[str, int]:
    if "@" in authority:
        raise EndpointError(f"{what} contains user information ('@'); credentials never travel in URLs")
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise EndpointError(f"{what} has an unterminated IPv6 address")
        host_text, rest = authority[1:end], authority[end + 1 :]
        try:
            host = ipaddress.IPv6Address(host_text).compressed
        except ValueError:
            raise EndpointError(f"{what} has a malformed IPv6 address") from None
    else:
        host_text, _, port_text = authority.partition(":")
        rest = ":" + port_text if ":" in authority else ""
        host = _host(host_text, what)
    if not rest:
        return host, _DEFAULT_PORTS[scheme]
    if not rest.startswith(":") or not _PORT.match(rest[1:]) or not 1 <= int(rest[1:]) <= 65535:
        raise EndpointError(f"{what} has a malformed port")
    return host, int(rest[1:])


def _host(text: str, what: str) -> str:
    if not text:
        raise EndpointError(f"{what} has no host")
    if len(text) > _MAX_HOST:
        raise EndpointError(f"{what} has a host name longer than {_MAX_HOST} characters")
    labels = text.lower().split(".")
    if all(label.isdigit() for label in labels):
        try:  # only the canonical dotted quad: no octal, hex or shortened forms
            return str(ipaddress.IPv4Address(text))
        except ValueError:
            raise EndpointError(f"{what} has a malformed IPv4 address") from None
    if not all(_LABEL.match(label) for label in labels):
        raise EndpointError(
            f"{what} has a host that is not a plain DNS name (letters, digits, '-' and '.', no empty label)"
        )
    if labels[-1].isdigit():
        raise EndpointError(f"{what} has a host name ending in a number, which parsers may read as an address")
    return ".".join(labels)


def _path(text: str, what: str) -> str:
    if not text:
        return ""
    segments = text.split("/")[1:]
    if segments and segments[-1] == "":
        segments.pop()  # one trailing slash is the same URL
    for segment in segments:
        if segment in ("", ".", "..") or not _PATH_SEGMENT.match(segment):
            raise EndpointError(f"{what} has an empty, '.', '..' or unusual path segment")
    return "".join("/" + segment for segment in segments)


def resolve_endpoint(
    rotated: object,
    pinned: object,
    default: str | None,
    *,
    field: str,
    provider: str,
) -> Endpoint:
    """Where the credentials of one rotated secret may go for ``field`` (``base_url``, ``api_base_url``).

    The admin secret's pin wins; without one, the provider's public endpoint. The rotated secret may
    leave ``field`` out or repeat exactly that URL (trailing slash, letter case of scheme and host and
    the default port aside). Plain http is refused unless pinned for a loopback host (local tests).
    """
    if pinned is not None:
        effective = parse_endpoint(pinned, f'the admin secret\'s "{field}"')
    elif default is not None:
        effective = parse_endpoint(default, f"the public {provider} endpoint")
    else:
        raise EndpointError(
            f'{provider} has no public endpoint for "{field}": pin one with "{field}" in the admin secret'
        )
    if effective.scheme != "https" and not (pinned is not None and effective.is_loopback):
        raise TargetError(
            f'the admin secret\'s "{field}" uses plain http; keys and admin credentials are only sent over '
            "https (plain http is accepted for a pinned loopback address, for local tests)",
            category=Category.TLS,
        )
    if rotated is None:
        return effective
    named = parse_endpoint(rotated, f'the rotated secret\'s "{field}"')
    if named != effective:
        where = "the URL pinned in the admin secret" if pinned is not None else f"{provider}'s public endpoint"
        raise ConfusedDeputyError(
            f'the rotated secret\'s "{field}" is not {where}; only the admin secret decides where the admin '
            f'credential and the keys are sent. Remove "{field}" from the rotated secret, or move it into the '
            "admin secret (named by adminarn) to use another endpoint"
        )
    return effective
