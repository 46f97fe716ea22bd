"""HTTP for the API-key providers: urllib3 (shipped with botocore), bounded and retried.

* Requests go to an :class:`~rotation_core.providers.endpoints.Endpoint`: the transport connects to
  its parsed host and port and sends only a path, so the host the endpoint rules judged is the host
  that receives the credential. Bodies are read up to 1 MiB; a longer answer is an error.
* Timeouts on connect and read; TLS certificate verification always on (an optional CA bundle
  replaces the system store, never disables it); redirects are not followed, so a credential
  header is never replayed to another host.
* 429 and 5xx are retried with exponential backoff and jitter, honouring ``Retry-After`` (seconds or
  an HTTP date) up to a cap. A request that is not idempotent (minting a key) is retried only when
  the provider cannot have acted on it: 429, or a connection that was never established. Anything
  else is reported, and the next attempt of the rotation cleans up by name (see ``api_keys``).
* Error bodies pass through :func:`scrub` before they reach a message: registered values, JSON
  fields whose name looks like a credential, and every long key-like run of characters are removed.
* Messages name the route template (``DELETE /api/v2/api_keys/{id}``), never the concrete URL, so key
  ids and query values stay out of the log.
"""

from __future__ import annotations

import email.utils
import json
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from rotation_core.errors import Category, TargetError
from rotation_core.log import get_logger, redact
from rotation_core.providers.endpoints import Endpoint

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_BACKOFF = 0.5
DEFAULT_MAX_WAIT = 20.0  # longest single wait; a Retry-After beyond it fails the step instead
DEFAULT_WAIT_BUDGET = 45.0  # all waits of one request together
MAX_ERROR_TEXT = 300
MAX_RESPONSE_BYTES = 1024 * 1024  # provider answers are a few kB; anything beyond 1 MiB is refused unread
_CREDENTIAL_FIELD = re.compile(r"key|secret|token|password|passwd|auth|credential|value|signature", re.IGNORECASE)
_KEY_LIKE = re.compile(r"[A-Za-z0-9+/=_\-.~]{16,}")


class ProviderError(TargetError):
    """A provider refused or failed a request; ``status`` is the HTTP status (0: no response)."""

    def __init__(self, message: str, *, category: Category, status: int = 0) -> None:
        super().__init__(message, category=category)
        self.status = status


class TransportError(Exception):
    """Raised by a transport when no HTTP response came back.

    ``sent`` is False when the request certainly never reached the server (connection refused or
    connect timeout); only then is a non-idempotent request retried.
    """

    def __init__(self, reason: str, *, sent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sent = sent


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    def json(self) -> Any:
        """The body as JSON, or None when it is empty or not JSON."""
        if not self.body:
            return None
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class HttpRequest:
    """One request as a transport sends it: to the endpoint's host and port, the target path only."""

    method: str
    endpoint: Endpoint
    target: str  # path and query, e.g. "/api/v2/api_keys?filter=x"
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    body: bytes | None = field(default=None, repr=False)


# request, timeout -> response (raises TransportError, ResponseTooLargeError)
Transport = Callable[[HttpRequest, float], HttpResponse]


class ResponseTooLargeError(Exception):
    """Raised by a transport when a response body is longer than it may read."""


def urllib3_transport(ca_bundle: str | None = None, *, max_body: int = MAX_RESPONSE_BYTES) -> Transport:
    """The real transport: certificate verification on, no redirects, no retries, bounded bodies.

    It connects to the :class:`Endpoint`'s own host and port (one pool per origin) and sends only the
    target path: no URL string is parsed here, so what the endpoint rules judged is where it goes.
    """
    import urllib3
    from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, SSLError

    pools: dict[tuple[str, str, int], Any] = {}

    def pool_for(endpoint: Endpoint) -> Any:
        key = (endpoint.scheme, endpoint.host, endpoint.port)
        if key not in pools:
            if endpoint.scheme == "https":
                pools[key] = urllib3.HTTPSConnectionPool(
                    endpoint.host, endpoint.port, cert_reqs="CERT_REQUIRED", ca_certs=ca_bundle, retries=False
                )
            else:
                pools[key] = urllib3.HTTPConnectionPool(endpoint.host, endpoint.port, retries=False)
        return pools[key]

    def send(request: HttpRequest, timeout: float) -> HttpResponse:
        try:
            response = pool_for(request.endpoint).urlopen(
                request.method,
                request.target,
                body=request.body,
                headers=dict(request.headers),
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=True,
            )
            try:
                data = _read_bounded(response, max_body)
            finally:
                response.release_conn()
        except ResponseTooLargeError:
            raise
        except SSLError as error:
            raise TransportError(f"TLS verification failed ({type(error).__name__})", sent=False) from None
        except (NewConnectionError, ConnectTimeoutError) as error:
            raise TransportError(f"could not connect ({type(error).__name__})", sent=False) from None
        except HTTPError as error:
            # urllib3 may wrap the cause: a connect failure never reached the server.
            cause = getattr(error, "reason", None)
            never_sent = isinstance(cause, NewConnectionError | ConnectTimeoutError)
            if isinstance(cause, SSLError):
                raise TransportError("TLS verification failed", sent=False) from None
            raise TransportError(f"no response ({type(cause or error).__name__})", sent=not never_sent) from None
        return HttpResponse(status=response.status, headers=dict(response.headers.items()), body=data)

    return send


def _read_bounded(response: Any, max_body: int) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_body:
        response.close()
        raise ResponseTooLargeError
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = response.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_body:
            response.close()  # a closed connection is not reused: the rest of the body is never read
            raise ResponseTooLargeError
        chunks.append(chunk)


def scrub(text: str) -> str:
    """A provider's error text made safe to log: no registered value, nothing that looks like a key."""
    cleaned = redact(text)
    try:
        data = json.loads(cleaned)
    except ValueError:
        data = None
    if isinstance(data, dict | list):
        cleaned = json.dumps(_scrub_json(data), separators=(",", ":"))
    cleaned = _KEY_LIKE.sub("***", cleaned)
    escaped = cleaned.encode("unicode_escape").decode("ascii")
    return escaped if len(escaped) <= MAX_ERROR_TEXT else escaped[:MAX_ERROR_TEXT] + "..."


def _scrub_json(data: Any) -> Any:
    if isinstance(data, dict):
        return {
            key: _scrub_json(value)
            if isinstance(value, dict | list) or not _CREDENTIAL_FIELD.search(str(key))
            else "***"
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [_scrub_json(item) for item in data]
    return data


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now`` (epoch seconds); None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


class HttpClient:
    """Sends one logical request, retrying as the module docstring says."""

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        ca_bundle: str | None = None,
        transport: Transport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
        backoff: float = DEFAULT_BACKOFF,
        max_wait: float = DEFAULT_MAX_WAIT,
        wait_budget: float = DEFAULT_WAIT_BUDGET,
        max_body: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.timeout = timeout
        self.max_body = max_body
        self.max_attempts = max(1, max_attempts)
        self._ca_bundle = ca_bundle
        self._transport = transport
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._jitter = jitter
        self._backoff = backoff
        self._max_wait = max_wait
        self._wait_budget = wait_budget

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = urllib3_transport(self._ca_bundle, max_body=self.max_body)
        return self._transport

    def request(
        self,
        provider: str,
        method: str,
        endpoint: Endpoint,
        route: str,
        *,
        path_params: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> HttpResponse:
        """Send ``method route`` to ``endpoint``; returns the final response, whatever its status.

        ``route`` is a template of this package (``/api/v2/api_keys/{id}``); path parameters are quoted
        whole, so a key id can never add a path segment or a query. Raises :class:`ProviderError`
        (category ``unreachable``) when no response came back after the allowed attempts, or when the
        provider asks to wait longer than the cap, and when the answer is larger than
        :data:`MAX_RESPONSE_BYTES`.
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}
        target = endpoint.path + route.format(**{k: quote(v, safe="") for k, v in (path_params or {}).items()})
        if query:
            target += "?" + urlencode(query)
        send_headers = {"Accept": "application/json", "User-Agent": "secrets-rotation-functions"}
        body: bytes | None = None
        if json_body is not None:
            body = json.dumps(json_body).encode("utf-8")
            send_headers["Content-Type"] = "application/json"
        elif form is not None:
            body = urlencode(form).encode("utf-8")
            send_headers["Content-Type"] = "application/x-www-form-urlencoded"
        send_headers.update(headers or {})
        what = f"{provider} {method} {route}"
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._send_bounded(HttpRequest(method, endpoint, target, send_headers, body), what)
            except TransportError as error:
                retryable = idempotent or not error.sent
                if not retryable or attempt >= self.max_attempts:
                    category = Category.TLS if "TLS" in error.reason else Category.UNREACHABLE
                    raise ProviderError(
                        f"{what} got no response after {attempt} attempt(s): {error.reason}; check that the "
                        "function can reach the provider (VPC route/NAT, base_url) and retry the rotation",
                        category=category,
                    ) from None
                wait = self._backoff_wait(attempt)
                reason = error.reason
            else:
                retryable = response.status == 429 or (response.status in RETRYABLE_STATUSES and idempotent)
                if not retryable or attempt >= self.max_attempts:
                    return response
                asked = retry_after_seconds(response.header("Retry-After"), self._wall_clock())
                if asked is not None and asked > self._max_wait:
                    raise ProviderError(
                        f"{what} was answered {response.status} with Retry-After of {asked:.0f} s, longer than "
                        f"the {self._max_wait:.0f} s this function waits; retry the rotation later",
                        category=Category.UNREACHABLE,
                        status=response.status,
                    )
                wait = asked if asked is not None else self._backoff_wait(attempt)
                reason = f"status {response.status}"
            if waited + wait > self._wait_budget:
                raise ProviderError(
                    f"{what} kept failing ({reason}) and retrying would exceed {self._wait_budget:.0f} s of "
                    "waiting; retry the rotation later",
                    category=Category.UNREACHABLE,
                )
            get_logger().warning(
                f"{what} failed ({reason}); retrying",
                extra={"attempt": attempt, "wait_seconds": round(wait, 3)},
            )
            self._sleep(wait)
            waited += wait

    def _send_bounded(self, request: HttpRequest, what: str) -> HttpResponse:
        try:
            response = self.transport(request, self.timeout)
            if len(response.body) > self.max_body:
                raise ResponseTooLargeError
        except ResponseTooLargeError:
            raise ProviderError(
                f"{what} answered with more than {self.max_body // 1024} KiB; the function reads no more. "
                "Check that base_url points at the provider's API",
                category=Category.VERIFICATION,
            ) from None
        return response

    def _backoff_wait(self, attempt: int) -> float:
        base: float = self._backoff * 2 ** (attempt - 1)
        return min(self._max_wait, base * (0.5 + self._jitter() / 2))


def error_for(provider: str, method: str, route: str, response: HttpResponse, hint: str) -> ProviderError:
    """A :class:`ProviderError` for an unexpected status, with the scrubbed body and what to do."""
    status = response.status
    if status == 401:
        category = Category.AUTH_FAILED
    elif status in RETRYABLE_STATUSES:
        category = Category.UNREACHABLE
    else:
        category = Category.PERMISSION
    body = scrub(response.body.decode("utf-8", errors="replace")) if response.body else "no body"
    return ProviderError(
        f"{provider} {method} {route} returned {status} ({body}); {hint}", category=category, status=status
    )
