"""Local fake API-key providers: Datadog, SendGrid, Twilio and Cloudflare on 127.0.0.1.

Each fake implements the endpoints the rotation uses, as the providers document them, with a real
key lifecycle (create, list, verify, revoke) and the failures a rotation must survive:

* ``fail_next(status, retry_after=...)`` answers the next matching request(s) with 5xx or 429;
* ``slow_next(seconds)`` delays the next matching response (client read timeouts);
* ``invisible_for = n`` makes every new key fail verification for its first ``n`` checks
  (delayed visibility, counted rather than timed so tests never depend on the clock);
* ``max_keys`` refuses to create a key beyond the limit (SendGrid: 100).

Every request is appended to an access log (``access_log_path``) as a real provider would record it:
method, path and query, status. Known key ids in paths are written as ``{id}`` (ids are not secret,
but the leak guard treats every ``*api_key*``/``*token*`` field as sensitive); key values and admin
credentials must never appear there, and tests hand the file to the leak guard.

Demo use::

    with FakeProviderServer("datadog") as fake:
        admin = fake.admin_secret()                   # store it; put its ARN in "adminarn"
        secret = fake.seed_secret(adminarn="arn:...")  # the rotated secret's first value
        ...
        fake.live_keys()                              # what is valid right now
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

KINDS = ("datadog", "sendgrid", "twilio", "cloudflare")
CLOUDFLARE_PREFIX = "/client/v4"
DEFAULT_MAX_KEYS = {"sendgrid": 100}
DEFAULT_POLICIES = [
    {
        "effect": "allow",
        "resources": {"com.cloudflare.api.account.zone.*": "*"},
        "permission_groups": [{"id": "c8fed203ed3043cba015a93ad1616f1f", "name": "Zone Read"}],
    }
]

Reply = tuple[int, Any, dict[str, str]]


@dataclass
class FakeKey:
    id: str = field(repr=False)
    name: str
    value: str = field(repr=False)
    revoked: bool = False
    invisible_checks: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RequestRecord:
    method: str
    route: str  # path with known ids shown as {id}, no query
    status: int


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


def _new_id(kind: str) -> str:
    if kind == "twilio":
        return "SK" + secrets.token_hex(16)
    if kind == "sendgrid":
        return secrets.token_urlsafe(16)
    if kind == "cloudflare":
        return secrets.token_hex(16)
    return str(uuid.uuid4())


def _new_value(kind: str) -> str:
    if kind == "sendgrid":
        return "SG." + secrets.token_urlsafe(16) + "." + secrets.token_urlsafe(32)
    if kind == "cloudflare":
        return secrets.token_urlsafe(30)
    if kind == "twilio":
        return secrets.token_hex(16)
    return secrets.token_hex(16)  # datadog: 32 hex characters


def _basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
    except ValueError:
        return None
    return user, password


class FakeProviderServer:
    """One fake provider on 127.0.0.1 and a free port, served by threads of this process."""

    def __init__(
        self,
        kind: str,
        *,
        log_path: Path | None = None,
        max_keys: int | None = None,
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown fake provider {kind!r}; choose one of {', '.join(KINDS)}")
        self.kind = kind
        self.max_keys = max_keys if max_keys is not None else DEFAULT_MAX_KEYS.get(kind)
        self.invisible_for = 0
        self.keys: list[FakeKey] = []
        self.requests: list[RequestRecord] = []
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if log_path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"fake-{kind}-")
            log_path = Path(self._tmp.name) / "access.log"
        self.access_log_path = log_path
        self.access_log_path.write_text("", encoding="utf-8")
        self.account_sid = "AC" + secrets.token_hex(16)
        self._admin = self._make_admin()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._scheme = "http"
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        root = f"{self._scheme}://127.0.0.1:{self.port}"
        return root + CLOUDFLARE_PREFIX if self.kind == "cloudflare" else root

    def start(self) -> FakeProviderServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"fake-{self.kind}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever, so only when it runs
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- credentials and seeded keys -----------------------------------------------------------

    def _make_admin(self) -> dict[str, str]:
        if self.kind == "datadog":
            return {"api_key": secrets.token_hex(16), "app_key": secrets.token_hex(20)}
        if self.kind == "sendgrid":
            return {"api_key": _new_value("sendgrid")}
        if self.kind == "twilio":
            return {"account_sid": self.account_sid, "auth_token": secrets.token_hex(16)}
        return {"api_token": _new_value("cloudflare")}

    def admin_secret(self) -> dict[str, str]:
        """The admin secret's JSON: the credential that may create and revoke keys."""
        return dict(self._admin)

    def admin_values(self) -> list[str]:
        """The admin credential's secret values (for the leak guard)."""
        return [v for k, v in self._admin.items() if k != "account_sid"]

    def create_key(self, name: str = "created-in-console") -> FakeKey:
        """A key made outside the rotation (the first value of the rotated secret)."""
        with self._lock:
            key = FakeKey(id=_new_id(self.kind), name=name, value=_new_value(self.kind))
            if self.kind == "cloudflare":
                key.extra["policies"] = DEFAULT_POLICIES
            self.keys.append(key)
            return key

    def key_fields(self, key: FakeKey) -> dict[str, str]:
        """The rotated secret's provider-specific fields for ``key``."""
        if self.kind == "twilio":
            return {"account_sid": self.account_sid, "api_key_sid": key.id, "api_key_secret": key.value}
        if self.kind == "cloudflare":
            return {"api_token": key.value, "api_token_id": key.id}
        return {"api_key": key.value, "api_key_id": key.id}

    def seed_secret(self, adminarn: str, key: FakeKey | None = None, **extra: Any) -> dict[str, Any]:
        """A complete first value for the rotated secret, holding a fresh console-made key."""
        key = key or self.create_key()
        value: dict[str, Any] = {"provider": self.kind, "adminarn": adminarn, "base_url": self.base_url}
        if self.kind == "twilio":
            value["api_base_url"] = self.base_url
        value.update(self.key_fields(key))
        value.update(extra)
        return value

    # --- inspection -----------------------------------------------------------------------------

    def live_keys(self) -> list[FakeKey]:
        with self._lock:
            return [key for key in self.keys if not key.revoked]

    def key_by_value(self, value: str) -> FakeKey | None:
        with self._lock:
            return next((key for key in self.keys if key.value == value), None)

    def is_valid(self, value: str) -> bool:
        key = self.key_by_value(value)
        return key is not None and not key.revoked

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

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                fake._serve(self)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve  # noqa: N815 (http.server's names)

        return Handler

    def dispatch(
        self, method: str, target: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], bytes, float]:
        """Answer one request: status, headers, body and how long to stall first (the injected delay)."""
        split = urlsplit(target)
        path = split.path
        message = Message()
        for name, value in headers.items():
            message[name] = value
        delay, fault = self._take_faults(method, path)
        if fault is not None:
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            body = fault.body if fault.body is not None else {"errors": ["Service unavailable, try again"]}
            status, payload = fault.status, body
        else:
            try:
                status, payload, extra = self._route(method, path, dict(parse_qsl(split.query)), message, raw)
            except Exception:  # noqa: BLE001 (a bug in the fake must not hang the client)
                status, payload, extra = 500, {"errors": ["fake provider error"]}, {}
        self._log(method, path, split.query, status)
        data = b"" if payload is None else json.dumps(payload).encode("utf-8")
        if data:
            extra = {**extra, "Content-Type": "application/json"}
        return status, extra, data, delay

    def transport(self) -> Callable[[str, str, Mapping[str, str], bytes | None, float], Any]:
        """An in-process transport for :class:`rotation_core.providers.http.HttpClient` (no sockets).

        Unit tests use it to run the real provider code against this fake without a network; a stall
        longer than the client's timeout becomes a read timeout.
        """
        from rotation_core.providers.http import HttpResponse, TransportError

        def send(method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float) -> Any:
            split = urlsplit(url)
            target = split.path + ("?" + split.query if split.query else "")
            status, extra, data, delay = self.dispatch(method, target, headers, body or b"")
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
        try:
            request.send_response(status)
            for name, value in extra.items():
                request.send_header(name, value)
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            if data:
                request.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on a slow answer (a timeout under test); nothing left to send

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

    def _route(self, method: str, path: str, query: Mapping[str, str], headers: Any, raw: bytes) -> Reply:
        handler: Callable[[str, str, Mapping[str, str], Any, bytes], Reply] = getattr(self, "_" + self.kind)
        with self._lock:
            return handler(method, path, query, headers, raw)

    # --- key lifecycle shared by the fakes ------------------------------------------------------

    def _mint(self, name: str, **extra: Any) -> FakeKey | None:
        if self.max_keys is not None and len(self.live_keys()) >= self.max_keys:
            return None
        key = FakeKey(
            id=_new_id(self.kind), name=name, value=_new_value(self.kind), invisible_checks=self.invisible_for
        )
        key.extra.update(extra)
        self.keys.append(key)
        return key

    def _find_live(self, key_id: str) -> FakeKey | None:
        return next((key for key in self.keys if key.id == key_id and not key.revoked), None)

    def _check_visible(self, key: FakeKey | None) -> bool:
        if key is None or key.revoked:
            return False
        if key.invisible_checks > 0:
            key.invisible_checks -= 1
            return False
        return True

    def _by_value(self, value: str) -> FakeKey | None:
        return next((key for key in self.keys if key.value == value), None)

    # --- Datadog --------------------------------------------------------------------------------

    def _datadog(  # noqa: PLR0911 (one return per documented answer)
        self, method: str, path: str, query: Mapping[str, str], headers: Any, raw: bytes
    ) -> Reply:
        if method == "GET" and path == "/api/v1/validate":
            if self._check_visible(self._by_value(headers.get("DD-API-KEY", ""))):
                return 200, {"valid": True}, {}
            return 403, {"errors": ["Forbidden"]}, {}
        if not path.startswith("/api/v2/api_keys"):
            return 404, {"errors": ["Not found"]}, {}
        admin_ok = headers.get("DD-API-KEY") == self._admin["api_key"] and (
            headers.get("DD-APPLICATION-KEY") == self._admin["app_key"]
        )
        if not admin_ok:
            return 403, {"errors": ["Forbidden"]}, {}
        if path == "/api/v2/api_keys" and method == "POST":
            name = json.loads(raw or b"{}").get("data", {}).get("attributes", {}).get("name")
            if not isinstance(name, str) or not name:
                return 400, {"errors": ["name is required"]}, {}
            key = self._mint(name)
            if key is None:
                return 403, {"errors": ["API key limit reached for this organization"]}, {}
            attributes = {"name": key.name, "key": key.value, "last4": key.value[-4:]}
            return 201, {"data": {"type": "api_keys", "id": key.id, "attributes": attributes}}, {}
        if path == "/api/v2/api_keys" and method == "GET":
            text = query.get("filter", "")
            size, number = int(query.get("page[size]", "10")), int(query.get("page[number]", "0"))
            matching = [key for key in self.live_keys() if text in key.name]
            page = matching[size * number : size * (number + 1)]
            data = [
                {"type": "api_keys", "id": k.id, "attributes": {"name": k.name, "last4": k.value[-4:]}} for k in page
            ]
            return 200, {"data": data, "meta": {"page": {"total_filtered_count": len(matching)}}}, {}
        key_id = path.removeprefix("/api/v2/api_keys/")
        if method == "DELETE" and key_id:
            key = self._find_live(key_id)
            if key is None:
                return 404, {"errors": ["API key not found"]}, {}
            key.revoked = True
            return 204, None, {}
        return 405, {"errors": ["Method not allowed"]}, {}

    # --- SendGrid -------------------------------------------------------------------------------

    def _sendgrid(  # noqa: PLR0911 (one return per documented answer)
        self, method: str, path: str, query: Mapping[str, str], headers: Any, raw: bytes
    ) -> Reply:
        auth = headers.get("Authorization", "")
        unauthorised: Reply = 401, {"errors": [{"field": None, "message": "authorization required"}]}, {}
        if method == "GET" and path == "/v3/scopes":
            key = self._by_value(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
            if self._check_visible(key):
                return 200, {"scopes": ["mail.send"]}, {}
            return unauthorised
        if auth != "Bearer " + self._admin["api_key"]:
            return unauthorised
        if path == "/v3/api_keys" and method == "POST":
            body = json.loads(raw or b"{}")
            if not isinstance(body.get("name"), str) or not body["name"]:
                return 400, {"errors": [{"field": "name", "message": "missing required argument"}]}, {}
            key = self._mint(body["name"], scopes=body.get("scopes", ["full"]))
            if key is None:
                return 403, {"errors": [{"field": None, "message": "cannot create more than 100 API keys"}]}, {}
            return (
                201,
                {"api_key": key.value, "api_key_id": key.id, "name": key.name, "scopes": key.extra["scopes"]},
                {},
            )
        if path == "/v3/api_keys" and method == "GET":
            limit = int(query.get("limit", "100"))
            result = [{"api_key_id": k.id, "name": k.name} for k in self.live_keys()][:limit]
            return 200, {"result": result}, {}
        key_id = path.removeprefix("/v3/api_keys/")
        if method == "DELETE" and key_id and path.startswith("/v3/api_keys/"):
            key = self._find_live(key_id)
            if key is None:
                return 404, {"errors": [{"field": None, "message": "unable to find API Key"}]}, {}
            key.revoked = True
            return 204, None, {}
        return 404, {"errors": [{"field": None, "message": "not found"}]}, {}

    # --- Twilio ---------------------------------------------------------------------------------

    def _twilio(  # noqa: PLR0911 (one return per documented answer)
        self, method: str, path: str, query: Mapping[str, str], headers: Any, raw: bytes
    ) -> Reply:
        unauthorised: Reply = 401, {"code": 20003, "message": "Authenticate", "status": 401}, {}
        credentials = _basic(headers.get("Authorization"))
        balance = f"/2010-04-01/Accounts/{self.account_sid}/Balance.json"
        if method == "GET" and path == balance:
            key = self._find_live(credentials[0]) if credentials else None
            if credentials and key is not None and key.value == credentials[1] and self._check_visible(key):
                return 200, {"account_sid": self.account_sid, "balance": "10.00", "currency": "USD"}, {}
            return unauthorised
        if credentials != (self.account_sid, self._admin["auth_token"]):
            return unauthorised
        if path == "/v1/Keys" and method == "POST":
            form = dict(parse_qsl(raw.decode("utf-8")))
            if form.get("AccountSid") != self.account_sid:
                return 400, {"code": 20001, "message": "AccountSid is required", "status": 400}, {}
            name = form.get("FriendlyName", "")
            if len(name) > 64:
                return 400, {"code": 20001, "message": "FriendlyName is too long", "status": 400}, {}
            key = self._mint(name)
            if key is None:
                return 400, {"code": 20001, "message": "API key limit reached", "status": 400}, {}
            stamp = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
            return (
                201,
                {
                    "sid": key.id,
                    "friendly_name": key.name,
                    "date_created": stamp,
                    "date_updated": stamp,
                    "secret": key.value,
                },
                {},
            )
        if path == "/v1/Keys" and method == "GET":
            if query.get("AccountSid") != self.account_sid:
                return 400, {"code": 20001, "message": "AccountSid is required", "status": 400}, {}
            size, page = int(query.get("PageSize", "50")), int(query.get("Page", "0"))
            live = self.live_keys()
            items = [{"sid": k.id, "friendly_name": k.name} for k in live[size * page : size * (page + 1)]]
            next_url = None
            if size * (page + 1) < len(live):
                next_url = f"{self.base_url}/v1/Keys?AccountSid={self.account_sid}&PageSize={size}&Page={page + 1}"
            return 200, {"keys": items, "meta": {"page": page, "page_size": size, "next_page_url": next_url}}, {}
        if method == "DELETE" and path.startswith("/v1/Keys/"):
            key = self._find_live(path.removeprefix("/v1/Keys/"))
            if key is None:
                return 404, {"code": 20404, "message": "The requested resource was not found", "status": 404}, {}
            key.revoked = True
            return 204, None, {}
        return 404, {"code": 20404, "message": "The requested resource was not found", "status": 404}, {}

    # --- Cloudflare -----------------------------------------------------------------------------

    def _cloudflare(  # noqa: PLR0911 (one return per documented answer)
        self, method: str, path: str, query: Mapping[str, str], headers: Any, raw: bytes
    ) -> Reply:
        def envelope(result: Any, status: int = 200, **more: Any) -> Reply:
            return status, {"success": True, "errors": [], "messages": [], "result": result, **more}, {}

        def failure(status: int, code: int, message: str) -> Reply:
            return status, {"success": False, "errors": [{"code": code, "message": message}], "messages": []}, {}

        path = path.removeprefix(CLOUDFLARE_PREFIX)
        auth = headers.get("Authorization", "")
        bearer = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        if method == "GET" and path == "/user/tokens/verify":
            key = self._by_value(bearer)
            if self._check_visible(key):
                assert key is not None
                return envelope({"id": key.id, "status": "active"})
            return failure(401, 1000, "Invalid API Token")
        if bearer != self._admin["api_token"]:
            return failure(401, 1000, "Invalid API Token")
        if path == "/user/tokens" and method == "POST":
            body = json.loads(raw or b"{}")
            if not isinstance(body.get("name"), str) or not body.get("policies"):
                return failure(400, 1001, "name and policies are required")
            key = self._mint(body["name"], policies=body["policies"])
            if key is None:
                return failure(400, 1002, "token limit reached")
            return envelope({"id": key.id, "name": key.name, "status": "active", "value": key.value}, 200)
        if path == "/user/tokens" and method == "GET":
            per_page, page = int(query.get("per_page", "20")), int(query.get("page", "1"))
            live = self.live_keys()
            chunk = live[per_page * (page - 1) : per_page * page]
            info = {
                "page": page,
                "per_page": per_page,
                "count": len(chunk),
                "total_count": len(live),
                "total_pages": max(1, -(-len(live) // per_page)),
            }
            return envelope([{"id": k.id, "name": k.name, "status": "active"} for k in chunk], result_info=info)
        if path.startswith("/user/tokens/"):
            key = self._find_live(path.removeprefix("/user/tokens/"))
            if key is None:
                return failure(404, 1003, "Token not found")
            if method == "GET":
                return envelope({"id": key.id, "name": key.name, "status": "active", **key.extra})
            if method == "DELETE":
                key.revoked = True
                return envelope({"id": key.id})
        return failure(404, 7003, "Could not route to the requested path")


@contextmanager
def running(kind: str, **options: Any) -> Iterator[FakeProviderServer]:
    """``with running("sendgrid") as fake: ...`` — start a fake and stop it afterwards."""
    server = FakeProviderServer(kind, **options).start()
    try:
        yield server
    finally:
        server.stop()
