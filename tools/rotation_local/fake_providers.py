"""Local fake API-key providers: Datadog, SendGrid, Twilio and Cloudflare, over HTTPS on 127.0.0.1.

One fake per provider, behind :class:`FakeProviderServer`, mirroring the production providers in
``rotation_core.providers``. Each implements the operations the rotation uses with a real key lifecycle
(create, list, look up by id, verify, revoke) in one or more **accounts** (an account is an admin
credential and the keys it owns; :meth:`add_account` makes the second team of a two-team test, Twilio's
``add_account(parent=...)`` a subaccount), and the failures a rotation must survive:

* ``fail_next(status, retry_after=...)`` answers the next matching request(s) with 5xx or 429;
* ``slow_next(seconds)`` delays the next matching response (client read timeouts);
* ``invisible_for = n`` makes every new key fail verification for its first ``n`` checks
  (delayed visibility, counted rather than timed so tests never depend on the clock);
* ``max_keys`` refuses to create a key beyond the limit (SendGrid: 100);
* ``report_use(key, at)`` sets what Datadog (``date_last_used``) and Cloudflare (``last_used_on``) report as a
  key's last use, a nullable RFC 3339 date-time in both APIs' definitions (the drain check reads it).

**Held to the providers' definitions.** Every request a fake receives and every answer it gives (but
those injected by ``fail_next``) is checked against the extract of the provider's official OpenAPI
definition (:mod:`rotation_local.provider_definitions`): the operation, its parameters, the credential,
the body's required and read-only fields and the answer's shape, undeclared fields included. What breaks
it is appended to :attr:`contract_violations` (names and schema keywords, never a value); the test
fixtures fail a test that leaves any. Where a definition says nothing (a key limit, an unknown id at
Cloudflare, Twilio's errors, which permission a restricted Twilio key needs), the fake's answer is its
own invention: each is listed in the fake's ``INVENTED`` mapping and carries the ``X-Fake-Invented``
header naming the entry.

Every request is appended to an access log (``access_log_path``) as a real provider would record it:
method, path and query, status. Known key ids in paths are written as ``{id}`` (ids are not secret,
but the leak guard treats every ``*api_key*``/``*token*`` field as sensitive); key values and admin
credentials must never appear there, and tests hand the file to the leak guard.

:class:`AttackerServer` is the other side of the attack tests: an HTTPS server that records whatever
reaches it. Nothing may.

Demo use::

    with start_fake("datadog") as fake:          # HTTPS with a CA of its own: fake.ca_bundle_path
        admin = fake.admin_secret()               # store it; it names the provider and pins base_url
        secret = fake.seed_secret(adminarn="arn:...")  # the rotated secret's first value
        ...
        fake.live_keys()                          # what is valid right now
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from rotation_local.provider_definitions import Contract, Exchange
from rotation_local.serving import BackgroundServing, ServedInBackground
from rotation_local.tls import LocalCA

DEFAULT_POLICIES = [
    {
        "effect": "allow",
        "resources": {"com.cloudflare.api.account.zone.*": "*"},
        "permission_groups": [{"id": "c8fed203ed3043cba015a93ad1616f1f", "name": "Zone Read"}],
    }
]
DEFAULT_SCOPES = ["mail.send", "alerts.read"]
#: The header that labels an answer the fake invents (its value names the entry of the fake's ``INVENTED``).
INVENTED_HEADER = "X-Fake-Invented"


@dataclass
class FakeKey:
    id: str = field(repr=False)
    name: str
    value: str = field(repr=False)
    account: FakeAccount = field(repr=False)
    revoked: bool = False
    invisible_checks: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    #: When the provider says the key was last used (RFC 3339, UTC; None: never), for the fakes whose API reports
    #: it: Datadog's date_last_used, Cloudflare's last_used_on. Tests set it with FakeProviderServer.report_use.
    last_used: str | None = None


@dataclass(eq=False)
class FakeAccount:
    """One provider account: its admin credential (as the admin secret holds it) and its keys."""

    admin: dict[str, str] = field(repr=False)
    account_sid: str = ""  # Twilio's account id
    keys: list[FakeKey] = field(default_factory=list, repr=False)
    parent: FakeAccount | None = field(default=None, repr=False)  # a Twilio subaccount's parent account

    def live_keys(self) -> list[FakeKey]:
        return [key for key in self.keys if not key.revoked]


@dataclass
class RequestRecord:
    method: str
    route: str  # path with known ids shown as {id}, no query
    status: int


@dataclass
class _Reply:
    """What a fake's route answers: status, JSON (or None), extra headers."""

    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fault:
    method: str | None
    route: str | None  # a substring of the path
    times: int
    status: int = 0
    retry_after: str | None = None
    body: Any = None
    delay: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.route is None or self.route in path)


def _basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
    except ValueError:
        return None
    return user, password


class _HttpsServer(BackgroundServing):
    """A threaded HTTP(S) server on 127.0.0.1 and a free port, served in the background; ``serve(handler)``
    answers requests."""

    def __init__(
        self, name: str, ssl_context: ssl.SSLContext | None, serve: Callable[[Any], None], port: int = 0
    ) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                serve(self)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve  # noqa: N815 (http.server's names)

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        self.scheme = "http"
        if ssl_context is not None:
            server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
            self.scheme = "https"
        self._http_server = server
        super().__init__(server, name, poll_interval=0.05, join_timeout=5)

    @property
    def port(self) -> int:
        return int(self._http_server.server_address[1])


class _LoopbackService(ServedInBackground):
    """A server object that answers over an :class:`_HttpsServer` (``self._serving``) on 127.0.0.1."""

    _serving: _HttpsServer
    path_prefix: ClassVar[str] = ""

    @property
    def port(self) -> int:
        return self._serving.port

    @property
    def base_url(self) -> str:
        return f"{self._serving.scheme}://127.0.0.1:{self.port}{self.path_prefix}"


class FakeProviderServer(_LoopbackService):
    """The shared machinery of a fake provider; subclasses answer their provider's routes."""

    kind: ClassVar[str] = ""
    default_max_keys: ClassVar[int | None] = None
    #: The answers this fake invents where the definition says nothing, and why each is what it is.
    INVENTED: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        *,
        log_path: Path | None = None,
        max_keys: int | None = None,
        ca: LocalCA | None = None,
        ssl_context: ssl.SSLContext | None = None,
        plain_http: bool = False,
        check_contract: bool = True,
    ) -> None:
        self.max_keys = max_keys if max_keys is not None else self.default_max_keys
        self.contract = Contract(self.kind) if check_contract else None
        #: What the fake received or answered that the provider's definition does not allow (no values).
        self.contract_violations: list[str] = []
        #: The operationId of every request that matched an operation of the definition, in order.
        self.operations_seen: list[str] = []
        self.invisible_for = 0
        self.requests: list[RequestRecord] = []
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._tmp = tempfile.TemporaryDirectory(prefix=f"fake-{self.kind}-")
        self.access_log_path = log_path or Path(self._tmp.name) / "access.log"
        self.access_log_path.write_text("", encoding="utf-8")
        if ssl_context is None and not plain_http:
            ca = ca or LocalCA.create(Path(self._tmp.name))
            ssl_context = ca.server_context()
        self.ca = ca
        self.accounts: list[FakeAccount] = []
        self.account = self.add_account()
        self._serving = _HttpsServer(f"fake-{self.kind}", ssl_context, self._serve)

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def ca_bundle_path(self) -> Path | None:
        """The CA bundle that verifies this fake (``API_CA_BUNDLE``); None for plain http or a given context."""
        return None if self.ca is None else self.ca.bundle_path

    def stop(self) -> None:
        super().stop()
        self._tmp.cleanup()

    # --- accounts, credentials and seeded keys --------------------------------------------------

    def add_account(self, parent: FakeAccount | None = None) -> FakeAccount:
        """Another account at the same provider (another team), with its own admin credential."""
        account = FakeAccount(admin={}, account_sid="AC" + secrets.token_hex(16), parent=parent)
        account.admin = self.make_admin(account)
        with self._lock:
            self.accounts.append(account)
        return account

    def make_admin(self, account: FakeAccount) -> dict[str, str]:
        raise NotImplementedError

    def new_id(self) -> str:
        return str(uuid.uuid4())

    def new_value(self) -> str:
        return secrets.token_hex(16)

    def admin_secret(self, account: FakeAccount | None = None, **extra: Any) -> dict[str, Any]:
        """The admin secret's JSON: the provider, the pinned endpoint, and the credential that manages keys."""
        account = account or self.account
        return {"provider": self.kind, "base_url": self.base_url, **account.admin, **extra}

    def admin_values(self, account: FakeAccount | None = None) -> list[str]:
        """The admin credentials' secret values (for the leak guard); every account's by default."""
        accounts = [account] if account else self.accounts
        return [v for a in accounts for k, v in a.admin.items() if k != "account_sid"]

    def create_key(self, name: str = "created-in-console", account: FakeAccount | None = None, **extra: Any) -> FakeKey:
        """A key made outside the rotation (the first value of the rotated secret); ``extra`` sets its attributes."""
        with self._lock:
            key = FakeKey(id=self.new_id(), name=name, value=self.new_value(), account=account or self.account)
            key.extra.update({**self.console_key_extra(), **extra})
            key.account.keys.append(key)
            return key

    def console_key_extra(self) -> dict[str, Any]:
        return {}

    def key_fields(self, key: FakeKey) -> dict[str, str]:
        """The rotated secret's provider-specific fields for ``key``."""
        return {"api_key": key.value, "api_key_id": key.id}

    def seed_secret(
        self, adminarn: str, key: FakeKey | None = None, *, account: FakeAccount | None = None, **extra: Any
    ) -> dict[str, Any]:
        """A complete first value for the rotated secret, holding a fresh console-made key.

        It names no endpoint: the admin secret pins it. ``extra`` may add any key (``base_url`` too).
        """
        key = key or self.create_key(account=account)
        value: dict[str, Any] = {"provider": self.kind, "adminarn": adminarn}
        value.update(self.key_fields(key))
        value.update(extra)
        return value

    # --- inspection -----------------------------------------------------------------------------

    @property
    def keys(self) -> list[FakeKey]:
        with self._lock:
            return [key for account in self.accounts for key in account.keys]

    def live_keys(self, account: FakeAccount | None = None) -> list[FakeKey]:
        with self._lock:
            return (account or self.account).live_keys()

    def key_by_value(self, value: str) -> FakeKey | None:
        with self._lock:
            return next((key for key in self.keys if key.value == value), None)

    def is_valid(self, value: str) -> bool:
        key = self.key_by_value(value)
        return key is not None and not key.revoked

    def report_use(self, key: FakeKey, at: datetime) -> None:
        """The provider saw ``key`` used at ``at`` (what its API then reports as the key's last use)."""
        key.last_used = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def keys_named(self, name: str) -> list[FakeKey]:
        with self._lock:
            return [key for key in self.keys if key.name == name]

    def count(self, method: str, route_part: str) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.method == method and route_part in r.route)

    # --- failure injection ----------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        method: str | None = None,
        route: str | None = None,
        retry_after: str | None = None,
        body: Any = None,
    ) -> None:
        with self._lock:
            self._faults.append(_Fault(method, route, times, status=status, retry_after=retry_after, body=body))

    def slow_next(self, seconds: float, *, times: int = 1, method: str | None = None, route: str | None = None) -> None:
        with self._lock:
            self._faults.append(_Fault(method, route, times, delay=seconds))

    def _take_faults(self, method: str, path: str) -> tuple[float, _Fault | None]:
        delay, failure = 0.0, None
        with self._lock:
            for fault in list(self._faults):
                if not fault.matches(method, path) or (fault.status and failure is not None):
                    continue
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                if fault.status:
                    failure = fault
                else:
                    delay += fault.delay
        return delay, failure

    # --- HTTP -----------------------------------------------------------------------------------

    def dispatch(
        self, method: str, target: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], bytes, float]:
        """Answer one request: status, headers, body and how long to stall first (the injected delay)."""
        split = urlsplit(target)
        path = split.path
        message = Message()
        for name, value in headers.items():
            message[name] = value
        exchange = Exchange(method, target, dict(headers), raw)
        operation = self._check_request(exchange)
        delay, fault = self._take_faults(method, path)
        if fault is not None:
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            body = fault.body if fault.body is not None else {"errors": ["Service unavailable, try again"]}
            status, payload = fault.status, body
        else:
            try:
                with self._lock:
                    if path.startswith(self.path_prefix):
                        route = path.removeprefix(self.path_prefix)
                        reply = self.route(method, route, dict(parse_qsl(split.query)), message, raw)
                        status, payload, extra = reply.status, reply.payload, reply.headers
                    else:
                        status, payload, extra = 404, {"errors": ["Not found"]}, {}
            except Exception:  # noqa: BLE001 (a bug in the fake must not hang the client)
                status, payload, extra = 500, {"errors": ["fake provider error"]}, {}
        self._log(method, path, split.query, status)
        data = b"" if payload is None else payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        if data:
            extra = {**extra, "Content-Type": "application/json"}
        if fault is None and operation is not None and self.contract is not None:
            exchange.status, exchange.answer = status, data
            self._violations(self.contract.check_response(operation, exchange), "answered")
        return status, extra, data, delay

    def _check_request(self, exchange: Exchange) -> Any:
        """The definition's operation for ``exchange`` (None if unknown); what it breaks is recorded."""
        if self.contract is None:
            return None
        operation, problems = self.contract.check_request(exchange)
        self._violations(problems, "received")
        if operation is not None:
            with self._lock:
                self.operations_seen.append(operation.operation_id)
        return operation

    def _violations(self, problems: list[str], what: str) -> None:
        if problems:
            with self._lock:
                self.contract_violations += [f"{what}: {problem}" for problem in problems]

    def transport(self) -> Callable[[Any, float], Any]:
        """An in-process transport for :class:`rotation_core.providers.http.HttpClient` (no sockets).

        Unit tests use it to run the real provider code against this fake without a network. Requests
        for any other host or port than this fake's fail as a refused connection; a stall longer than
        the client's timeout becomes a read timeout.
        """
        from rotation_core.providers.http import HttpRequest, HttpResponse, TransportError

        def send(request: HttpRequest, timeout: float) -> HttpResponse:
            endpoint = request.endpoint
            if (endpoint.scheme, endpoint.host, endpoint.port) != (self._serving.scheme, "127.0.0.1", self.port):
                raise TransportError("could not connect (no fake at that address)", sent=False)
            status, extra, data, delay = self.dispatch(
                request.method, request.target, request.headers, request.body or b""
            )
            if delay > timeout:
                raise TransportError("read timed out", sent=True)
            return HttpResponse(status=status, headers=extra, body=data)

        return send

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        headers = dict(request.headers.items())
        status, extra, data, delay = self.dispatch(request.command, request.path, headers, raw)
        if delay:
            time.sleep(delay)
        _reply(request, status, extra, data)

    def _log(self, method: str, path: str, query: str, status: int) -> None:
        with self._lock:
            shown_path, shown_query = path, query
            for key in self.keys:
                if key.id and len(key.id) >= 6:
                    shown_path = shown_path.replace(key.id, "{id}")
                    shown_query = shown_query.replace(key.id, "{id}")
            self.requests.append(RequestRecord(method, shown_path, status))
            line = f'127.0.0.1 "{method} {shown_path}{"?" + shown_query if shown_query else ""}" {status}\n'
            with self.access_log_path.open("a", encoding="utf-8") as handle:
                handle.write(line)

    def route(self, method: str, path: str, query: Mapping[str, str], headers: Any, raw: bytes) -> _Reply:
        raise NotImplementedError

    def invented(self, entry: str, status: int, payload: Any) -> _Reply:
        """An answer the provider's definition does not document: labelled with the ``INVENTED`` entry."""
        assert entry in self.INVENTED, entry
        return _Reply(status, payload, {INVENTED_HEADER: entry})

    # --- key lifecycle shared by the fakes ------------------------------------------------------

    def mint(self, account: FakeAccount, name: str, **extra: Any) -> FakeKey | None:
        if self.max_keys is not None and len(account.live_keys()) >= self.max_keys:
            return None
        key = FakeKey(
            id=self.new_id(), name=name, value=self.new_value(), account=account, invisible_checks=self.invisible_for
        )
        key.extra.update(extra)
        account.keys.append(key)
        return key

    @staticmethod
    def find_live(account: FakeAccount, key_id: str) -> FakeKey | None:
        return next((key for key in account.keys if key.id == key_id and not key.revoked), None)

    @staticmethod
    def check_visible(key: FakeKey | None, *, count: bool = True) -> bool:
        """Is ``key`` live and visible yet? A check counts towards its delayed visibility unless ``count`` is False."""
        if key is None or key.revoked:
            return False
        if key.invisible_checks > 0:
            if count:
                key.invisible_checks -= 1
            return False
        return True

    def by_value(self, value: str) -> FakeKey | None:
        return next((key for key in self.keys if key.value == value), None)

    def account_where(self, matches: Callable[[dict[str, str]], bool]) -> FakeAccount | None:
        return next((account for account in self.accounts if matches(account.admin)), None)


def _reply(request: BaseHTTPRequestHandler, status: int, extra: Mapping[str, str], data: bytes) -> None:
    try:
        request.send_response(status)
        for name, value in extra.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        if data:
            request.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        pass  # the client gave up on a slow answer (a timeout under test); nothing left to send


def _utc_stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class FakeDatadog(FakeProviderServer):
    """Datadog's Key Management API v2 and ``/api/v1/validate``."""

    kind = "datadog"
    INVENTED: ClassVar[Mapping[str, str]] = {
        "key-limit": "Datadog documents no answer for an organisation at its API key limit: 400 with the "
        "definition's error shape (APIErrorResponse) and the word 'limit' in it",
    }

    def make_admin(self, account: FakeAccount) -> dict[str, str]:
        return {"api_key": secrets.token_hex(16), "app_key": secrets.token_hex(20)}

    def route(  # noqa: PLR0911 (one return per documented answer)
        self, method: str, path: str, query: Mapping[str, str], headers: Any, raw: bytes
    ) -> _Reply:
        if method == "GET" and path == "/api/v1/validate":
            if self.check_visible(self.by_value(headers.get("DD-API-KEY", ""))):
                return _Reply(200, {"valid": True})
            return _Reply(403, {"errors": ["Forbidden"]})
        if not path.startswith("/api/v2/api_keys"):
            return _Reply(404, {"errors": ["Not found"]})
        account = self.account_where(
            lambda admin: (
                headers.get("DD-API-KEY") == admin["api_key"] and headers.get("DD-APPLICATION-KEY") == admin["app_key"]
            )
        )
        if account is None:
            return _Reply(403, {"errors": ["Forbidden"]})
        if path == "/api/v2/api_keys" and method == "POST":
            name = json.loads(raw or b"{}").get("data", {}).get("attributes", {}).get("name")
            if not isinstance(name, str) or not name:
                return _Reply(400, {"errors": ["name is required"]})
            key = self.mint(account, name)
            if key is None:
                return self.invented("key-limit", 400, {"errors": ["API key limit reached for this organization"]})
            return _Reply(201, {"data": self._full(key)})
        if path == "/api/v2/api_keys" and method == "GET":
            text = query.get("filter", "")
            size, number = int(query.get("page[size]", "10")), int(query.get("page[number]", "0"))
            matching = [key for key in account.live_keys() if text in key.name]
            page = matching[size * number : size * (number + 1)]
            data = [{"type": "api_keys", "id": k.id, "attributes": self._attributes(k)} for k in page]
            return _Reply(200, {"data": data, "meta": {"page": {"total_filtered_count": len(matching)}}})
        key = self.find_live(account, path.removeprefix("/api/v2/api_keys/"))
        if key is None:
            return _Reply(404, {"errors": ["API key not found"]})
        if method == "GET":
            return _Reply(200, {"data": self._full(key)})
        if method == "DELETE":
            key.revoked = True
            return _Reply(204)
        return _Reply(405, {"errors": ["Method not allowed"]})

    @staticmethod
    def _attributes(key: FakeKey) -> dict[str, Any]:
        created = key.extra.setdefault("created_at", _utc_stamp())
        return {"name": key.name, "last4": key.value[-4:], "created_at": created, "modified_at": created}

    def _full(self, key: FakeKey) -> dict[str, Any]:
        attributes = {**self._attributes(key), "key": key.value, "date_last_used": key.last_used}
        return {"type": "api_keys", "id": key.id, "attributes": attributes}


#: The SendGrid scopes this fake knows; a key created without scopes gets them all (SendGrid: full access).
FULL_ACCESS_SCOPES = [
    "alerts.create",
    "alerts.delete",
    "alerts.read",
    "alerts.update",
    "api_keys.create",
    "api_keys.delete",
    "api_keys.read",
    "api_keys.update",
    "mail.batch.read",
    "mail.send",
    "user.profile.read",
]
_SENDGRID_NEEDS = {"POST": "api_keys.create", "GET": "api_keys.read", "DELETE": "api_keys.delete"}


class FakeSendGrid(FakeProviderServer):
    """SendGrid's ``/v3/api_keys`` (at most 100 keys) and ``/v3/scopes``.

    Keys authenticate with their value and may call what their scopes allow (``api_keys.read`` lists and
    reads keys of their own account); the admin credential holds every scope.
    """

    kind = "sendgrid"
    default_max_keys = 100
    INVENTED: ClassVar[Mapping[str, str]] = {
        "bare-key-answer": "GET /v3/api_keys/{id} as a bare object, which clients in the wild read; the definition "
        'documents {"result": [...]} (answered only when bare_key_answers is set)',
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        #: Answer ``GET /v3/api_keys/{id}`` with a bare object instead of the documented ``{"result": [...]}``.
        self.bare_key_answers = False

    def make_admin(self, account: FakeAccount) -> dict[str, str]:
        return {"api_key": self.new_value()}

    def admin_secret(self, account: FakeAccount | None = None, **extra: Any) -> dict[str, Any]:
        """The admin secret, with the ``scopes`` new keys get (SendGrid needs them there)."""
        return super().admin_secret(account, **{"scopes": list(DEFAULT_SCOPES), **extra})

    def new_id(self) -> str:
        return secrets.token_urlsafe(16)

    def new_value(self) -> str:
        return "SG." + secrets.token_urlsafe(16) + "." + secrets.token_urlsafe(32)

    def console_key_extra(self) -> dict[str, Any]:
        return {"scopes": list(DEFAULT_SCOPES)}

    def _principal(self, auth: str) -> tuple[FakeAccount, list[str]] | None:
        """The account and scopes of a bearer credential: an admin's (every scope), or a visible key's."""
        bearer = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        account = self.account_where(lambda admin: bearer == admin["api_key"])
        if account is not None:
            return account, FULL_ACCESS_SCOPES
        key = self.by_value(bearer) if bearer else None
        if key is not None and self.check_visible(key, count=False):
            return key.account, list(key.extra.get("scopes", FULL_ACCESS_SCOPES))
        return None

    def route(  # noqa: PLR0911 (one return per documented answer)
        self, method: str, path: str, query: Mapping[str, str], headers: Any, raw: bytes
    ) -> _Reply:
        auth = headers.get("Authorization", "")
        unauthorised = _Reply(401, {"errors": [{"field": None, "message": "authorization required"}]})
        if method == "GET" and path == "/v3/scopes":
            bearer = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
            key = self.by_value(bearer) if bearer else None
            if self.check_visible(key):
                assert key is not None
                return _Reply(200, {"scopes": key.extra.get("scopes", FULL_ACCESS_SCOPES)})
            return unauthorised
        principal = self._principal(auth)
        if principal is None:
            return unauthorised
        account, scopes = principal
        if _SENDGRID_NEEDS.get(method) not in scopes:
            return _Reply(403, {"errors": [{"field": None, "message": "access forbidden"}]})
        if path == "/v3/api_keys" and method == "POST":
            body = json.loads(raw or b"{}")
            if not isinstance(body.get("name"), str) or not body["name"]:
                return _Reply(400, {"errors": [{"field": "name", "message": "missing required argument"}]})
            key = self.mint(account, body["name"], scopes=body.get("scopes", FULL_ACCESS_SCOPES))
            if key is None:  # documented: 403 once the account holds 100 keys
                return _Reply(403, {"errors": [{"field": None, "message": "cannot create more than 100 API keys"}]})
            reply = {"api_key": key.value, "api_key_id": key.id, "name": key.name, "scopes": key.extra["scopes"]}
            return _Reply(201, reply)
        if path == "/v3/api_keys" and method == "GET":
            limit = int(query.get("limit", "100"))
            return _Reply(200, {"result": [{"api_key_id": k.id, "name": k.name} for k in account.live_keys()][:limit]})
        if path.startswith("/v3/api_keys/"):
            key = self.find_live(account, path.removeprefix("/v3/api_keys/"))
            if key is None:
                return _Reply(404, {"errors": [{"field": None, "message": "unable to find API Key"}]})
            if method == "GET":
                item = {"api_key_id": key.id, "name": key.name, "scopes": key.extra["scopes"]}
                return (
                    self.invented("bare-key-answer", 200, item)
                    if self.bare_key_answers
                    else _Reply(200, {"result": [item]})
                )
            if method == "DELETE":
                key.revoked = True
                return _Reply(204)
        return _Reply(404, {"errors": [{"field": None, "message": "not found"}]})


#: A restricted Twilio key's permission, and the requests this fake lets it make (see INVENTED).
TWILIO_PERMISSIONS = {"/twilio/messaging/messages/read": {"Messages"}}
_TWILIO_ACCOUNT_LIST = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/(?P<resource>Applications|Messages)\.json$")


class FakeTwilio(FakeProviderServer):
    """Twilio's IAM Key resource v1 and two lists of the REST API (the verification requests).

    Keys have a type (``main``, ``standard``, ``restricted`` with a ``policy``); an account may have a
    ``parent`` (a subaccount), whose auth token reaches the subaccount's resources.
    """

    kind = "twilio"
    INVENTED: ClassVar[Mapping[str, str]] = {
        "error": "Twilio's definition declares no error answers: errors carry Twilio's documented fields (code, "
        "message, more_info, status) with 20003 for a refused credential and 20404 for an unknown resource",
        "forbidden": "Twilio documents the same error (20003) for a wrong secret and for a key that may not read a "
        "resource; this fake answers the latter 403 (the former 401), and a provider must treat both alike",
        "restricted-permissions": "which requests a restricted key's permissions allow is not in Twilio's API "
        "definition: here /twilio/messaging/messages/read lists Messages, and nothing else is allowed",
        "key-limit": "Twilio documents no answer for an account at its key limit: 400 (code 20001) with the word "
        "'limit'",
    }

    def make_admin(self, account: FakeAccount) -> dict[str, str]:
        return {"account_sid": account.account_sid, "auth_token": secrets.token_hex(16)}

    def new_id(self) -> str:
        return "SK" + secrets.token_hex(16)

    def console_key_extra(self) -> dict[str, Any]:
        return {"key_type": "standard"}

    def admin_secret(self, account: FakeAccount | None = None, **extra: Any) -> dict[str, Any]:
        return super().admin_secret(account, **{"api_base_url": self.base_url, **extra})

    def key_fields(self, key: FakeKey) -> dict[str, str]:
        return {"account_sid": key.account.account_sid, "api_key_sid": key.id, "api_key_secret": key.value}

    def _error(self, status: int, code: int, message: str, entry: str = "error") -> _Reply:
        body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}"}
        return self.invented(entry, status, {**body, "status": status})

    def _principal(self, header: str | None, *, count: bool = False) -> tuple[FakeAccount, FakeKey | None] | None:
        """Who authenticates: an account's auth token (key None), or a live, visible key's sid and secret.

        ``count``: the check counts towards a new key's delayed visibility (the verification requests).
        """
        credentials = _basic(header)
        if credentials is None:
            return None
        user, password = credentials
        account = next(
            (a for a in self.accounts if a.account_sid == user and a.admin.get("auth_token") == password), None
        )
        if account is not None:
            return account, None
        key = next((k for k in self.keys if k.id == user and not k.revoked), None)
        if key is None or not secrets.compare_digest(key.value, password) or not self.check_visible(key, count=count):
            return None
        return key.account, key

    def _reaches(self, principal: tuple[FakeAccount, FakeKey | None], account_sid: str) -> FakeAccount | None:
        account, key = principal
        target = next((a for a in self.accounts if a.account_sid == account_sid), None)
        if target is account or (target is not None and key is None and target.parent is account):
            return target
        return None

    def route(  # noqa: PLR0911 (one return per documented answer)
        self, method: str, path: str, query: Mapping[str, str], headers: Any, raw: bytes
    ) -> _Reply:
        listed = _TWILIO_ACCOUNT_LIST.match(path)
        if listed is not None and method == "GET":
            principal = self._principal(headers.get("Authorization"), count=True)
            return self._account_list(principal, listed["sid"], listed["resource"], query)
        principal = self._principal(headers.get("Authorization"))
        if principal is None:
            return self._error(401, 20003, "Authenticate")
        key = principal[1]
        if key is not None and key.extra.get("key_type") != "main":  # Standard keys cannot manage keys
            return self._error(401, 20003, "Authenticate")
        if path == "/v1/Keys" and method == "POST":
            form = dict(parse_qsl(raw.decode("utf-8")))
            account = self._reaches(principal, form.get("AccountSid", ""))
            if account is None:
                return self._error(403, 20003, "Permission Denied", "forbidden")
            name = form.get("FriendlyName", "")
            if len(name) > 64:
                return self._error(400, 20001, "FriendlyName is too long")
            extra: dict[str, Any] = {"key_type": "standard"}
            if form.get("KeyType") == "restricted":
                extra = {"key_type": "restricted", "policy": json.loads(form.get("Policy") or "null")}
            key = self.mint(account, name, **extra)
            if key is None:
                return self._error(400, 20001, "API key limit reached", "key-limit")
            return _Reply(201, {**self._resource(key), "secret": key.value})
        if path == "/v1/Keys" and method == "GET":
            account = self._reaches(principal, query.get("AccountSid", ""))
            if account is None:
                return self._error(403, 20003, "Permission Denied", "forbidden")
            size, page = int(query.get("PageSize", "50")), int(query.get("Page", "0"))
            live = account.live_keys()
            items = [
                {k: v for k, v in self._resource(key).items() if k != "policy"}
                for key in live[size * page : size * (page + 1)]
            ]
            next_url = None
            if size * (page + 1) < len(live):
                next_url = f"{self.base_url}/v1/Keys?AccountSid={account.account_sid}&PageSize={size}&Page={page + 1}"
            return _Reply(200, {"keys": items, "meta": {"page": page, "page_size": size, "next_page_url": next_url}})
        if path.startswith("/v1/Keys/"):
            key = self.find_live(principal[0], path.removeprefix("/v1/Keys/"))
            if key is None:
                return self._error(404, 20404, "The requested resource was not found")
            if method == "GET":
                return _Reply(200, self._resource(key))
            if method == "DELETE":
                key.revoked = True
                return _Reply(204)
        return self._error(404, 20404, "The requested resource was not found")

    def _account_list(
        self,
        principal: tuple[FakeAccount, FakeKey | None] | None,
        account_sid: str,
        resource: str,
        query: Mapping[str, str],
    ) -> _Reply:
        """``GET /2010-04-01/Accounts/{AccountSid}/<resource>.json``: an empty page, to whom may read it."""
        if principal is None:
            return self._error(401, 20003, "Authenticate")
        key = principal[1]
        if self._reaches(principal, account_sid) is None:  # credentials of another account: refused
            return self._error(401, 20003, "Authenticate")
        if key is not None and key.extra.get("key_type") == "restricted":
            allowed = set().union(
                *(TWILIO_PERMISSIONS.get(p, set()) for p in (key.extra.get("policy") or {}).get("allow", []))
            )
            if resource not in allowed:
                return self._error(403, 20003, "Permission Denied", "restricted-permissions")
        size = int(query.get("PageSize", "50"))
        uri = f"/2010-04-01/Accounts/{account_sid}/{resource}.json?PageSize={size}&Page=0"
        page = {"end": 0, "first_page_uri": uri, "next_page_uri": None, "page": 0, "page_size": size}
        return _Reply(200, {resource.lower(): [], **page, "previous_page_uri": None, "start": 0, "uri": uri})

    @staticmethod
    def _resource(key: FakeKey) -> dict[str, Any]:
        stamp = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
        return {
            "sid": key.id,
            "friendly_name": key.name,
            "date_created": stamp,
            "date_updated": stamp,
            "policy": key.extra.get("policy"),
        }


#: Names of the permission groups this fake's tokens may hold (invented; Cloudflare answers its own).
PERMISSION_GROUP_NAMES = {"c8fed203ed3043cba015a93ad1616f1f": "Zone Read"}


class FakeCloudflare(FakeProviderServer):
    """Cloudflare's user API tokens under ``/client/v4``."""

    kind = "cloudflare"
    path_prefix = "/client/v4"
    INVENTED: ClassVar[Mapping[str, str]] = {
        "invalid-token": "verify with an unknown or revoked token: the definition documents only '4XX'; 401 with "
        "the failure envelope (code 1000)",
        "unknown-token": "a token id the user does not have: the definition documents only '4XX'; 404 with the "
        "failure envelope (code 1003)",
        "policy-id-on-create": "a create that names existing policy ids: 400, code 1001, as issue #21 reports "
        "Cloudflare's answer (the definition only marks the ids read-only)",
        "token-limit": "Cloudflare documents no answer for a user at its token limit: 400 (code 1002) with the word "
        "'limit'",
        "per-page": "a per_page outside the definition's 5..50: the answer is not documented; 400 (code 1001)",
    }

    def make_admin(self, account: FakeAccount) -> dict[str, str]:
        return {"api_token": self.new_value()}

    def new_id(self) -> str:
        return secrets.token_hex(16)

    def new_value(self) -> str:
        return secrets.token_urlsafe(30)

    def console_key_extra(self) -> dict[str, Any]:
        return {"policies": DEFAULT_POLICIES}

    def key_fields(self, key: FakeKey) -> dict[str, str]:
        return {"api_token": key.value, "api_token_id": key.id}

    def mint(self, account: FakeAccount, name: str, **extra: Any) -> FakeKey | None:
        key = super().mint(account, name, **extra)
        if key is not None:
            key.extra.setdefault("issued_on", _utc_stamp())
        return key

    def token(self, key: FakeKey) -> dict[str, Any]:
        """The token as ``GET /user/tokens/{id}`` answers it: policies with their ids, groups with their names."""
        policies = []
        for number, policy in enumerate(key.extra.get("policies") or []):
            groups = [
                {**group, "name": group.get("name") or PERMISSION_GROUP_NAMES.get(group.get("id"), "Custom")}
                for group in policy.get("permission_groups", [])
            ]
            policy_id = policy.get("id") or hashlib.sha256(f"{key.id}-{number}".encode()).hexdigest()[:32]
            policies.append({**policy, "id": policy_id, "permission_groups": groups})
        issued = key.extra.get("issued_on") or _utc_stamp()
        token: dict[str, Any] = {
            "id": key.id,
            "name": key.name,
            "status": "active",
            "policies": policies,
            "issued_on": issued,
            "modified_on": issued,
        }
        token.update(
            {field: key.extra[field] for field in ("condition", "expires_on", "not_before") if field in key.extra}
        )
        return token

    def route(  # noqa: PLR0911 (one return per documented answer)
        self, method: str, path: str, query: Mapping[str, str], headers: Any, raw: bytes
    ) -> _Reply:
        def envelope(result: Any, **more: Any) -> _Reply:
            return _Reply(200, {"success": True, "errors": [], "messages": [], "result": result, **more})

        def failure(code: int, message: str) -> dict[str, Any]:
            return {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}

        auth = headers.get("Authorization", "")
        bearer = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        if method == "GET" and path == "/user/tokens/verify":
            key = self.by_value(bearer) if bearer else None
            if self.check_visible(key):
                assert key is not None
                times = {field: key.extra[field] for field in ("expires_on", "not_before") if field in key.extra}
                return envelope({"id": key.id, "status": "active", **times})
            return self.invented("invalid-token", 401, failure(1000, "Invalid API Token"))
        account = self.account_where(lambda admin: bearer == admin["api_token"])
        if account is None:
            return self.invented("invalid-token", 401, failure(1000, "Invalid API Token"))
        if path == "/user/tokens" and method == "POST":
            body = json.loads(raw or b"{}")
            if not isinstance(body.get("name"), str) or not body.get("policies"):
                return _Reply(400, failure(1001, "name and policies are required"))
            if any(isinstance(policy, dict) and "id" in policy for policy in body["policies"]):
                return self.invented(
                    "policy-id-on-create",
                    400,
                    failure(1001, "Reusing existing policies is not supported by token creation"),
                )
            copied = {field: body[field] for field in ("condition", "expires_on", "not_before") if field in body}
            key = self.mint(account, body["name"], policies=body["policies"], **copied)
            if key is None:
                return self.invented("token-limit", 400, failure(1002, "token limit reached"))
            return envelope({**self.token(key), "value": key.value})
        if path == "/user/tokens" and method == "GET":
            per_page, page = int(query.get("per_page", "20")), int(query.get("page", "1"))
            if not 5 <= per_page <= 50:
                return self.invented("per-page", 400, failure(1001, "per_page must be from 5 to 50"))
            live = account.live_keys()
            chunk = live[per_page * (page - 1) : per_page * page]
            info = {"page": page, "per_page": per_page, "count": len(chunk), "total_count": len(live)}
            return envelope([self.token(k) for k in chunk], result_info=info)
        if path.startswith("/user/tokens/"):
            key = self.find_live(account, path.removeprefix("/user/tokens/"))
            if key is None:
                return self.invented("unknown-token", 404, failure(1003, "Invalid token id"))
            if method == "GET":
                return envelope({**self.token(key), "last_used_on": key.last_used})
            if method == "DELETE":
                key.revoked = True
                return envelope({"id": key.id})
        return _Reply(404, failure(7003, "Could not route to the requested path"))


FAKE_PROVIDERS: dict[str, type[FakeProviderServer]] = {
    fake.kind: fake for fake in (FakeDatadog, FakeSendGrid, FakeTwilio, FakeCloudflare)
}
KINDS = tuple(FAKE_PROVIDERS)


def fake_provider(kind: str, **options: Any) -> FakeProviderServer:
    """The fake for provider ``kind`` (not started)."""
    if kind not in FAKE_PROVIDERS:
        raise ValueError(f"unknown fake provider {kind!r}; choose one of {', '.join(KINDS)}")
    return FAKE_PROVIDERS[kind](**options)


def start_fake(kind: str, **options: Any) -> FakeProviderServer:
    return fake_provider(kind, **options).start()


@contextmanager
def running(kind: str, **options: Any) -> Iterator[FakeProviderServer]:
    """``with running("sendgrid") as fake: ...`` — start a fake and stop it afterwards."""
    server = start_fake(kind, **options)
    try:
        yield server
    finally:
        server.stop()


@dataclass
class ReceivedRequest:
    method: str
    path: str
    header_names: list[str]
    body_length: int


class AttackerServer(_LoopbackService):
    """An HTTPS server on 127.0.0.1 that an attacker controls: it records every request that reaches it.

    It answers 200 with a body that would satisfy a careless verifier, so a request that reaches it is
    not turned away by an error first. Attack tests assert :attr:`received` stays empty.
    """

    def __init__(self, ca: LocalCA | None = None, *, port: int = 0) -> None:
        self.received: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._ca = ca or LocalCA.create()
        self._serving = _HttpsServer("attacker", self._ca.server_context(), self._serve, port)

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        if length:
            request.rfile.read(length)
        with self._lock:
            self.received.append(ReceivedRequest(request.command, request.path, sorted(request.headers.keys()), length))
        body = json.dumps({"valid": True, "success": True, "result": {"status": "active"}, "scopes": []}).encode()
        _reply(request, 200, {"Content-Type": "application/json"}, body)
