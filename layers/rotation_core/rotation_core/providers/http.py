"""HTTP for the API-key providers: urllib3 (shipped with botocore), bounded and retried.

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
from urllib.parse import quote, urlencode, urlsplit

from rotation_core.errors import Category, TargetError
from rotation_core.log import get_logger, redact

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_BACKOFF = 0.5
DEFAULT_MAX_WAIT = 20.0  # longest single wait; a Retry-After beyond it fails the step instead
DEFAULT_WAIT_BUDGET = 45.0  # all waits of one request together
MAX_ERROR_TEXT = 300
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
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


# method, url, headers, body, timeout -> response (raises TransportError)
Transport = Callable[[str, str, Mapping[str, str], bytes | None, float], HttpResponse]


def urllib3_transport(ca_bundle: str | None = None) -> Transport:
    """The real transport: one pool manager, certificate verification on, no redirects, no retries."""
    import urllib3
    from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, SSLError

    pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=ca_bundle, retries=False)

    def send(method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float) -> HttpResponse:
        try:
            response = pool.request(
                method,
                url,
                body=body,
                headers=dict(headers),
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                redirect=False,
                retries=False,
                preload_content=True,
            )
        except SSLError as error:
            raise TransportError(f"TLS verification failed ({type(error).__name__})", sent=False) from None
        except (NewConnectionError, ConnectTimeoutError) as error:
            raise TransportError(f"could not connect ({type(error).__name__})", sent=False) from None
        except HTTPError as error:
            # urllib3 wraps the cause: a connect failure inside MaxRetryError never reached the server.
            cause = getattr(error, "reason", None)
            never_sent = isinstance(cause, NewConnectionError | ConnectTimeoutError)
            if isinstance(cause, SSLError):
                raise TransportError("TLS verification failed", sent=False) from None
            raise TransportError(f"no response ({type(cause or error).__name__})", sent=not never_sent) from None
        return HttpResponse(status=response.status, headers=dict(response.headers.items()), body=response.data)

    return send


def check_base_url(base_url: str, label: str) -> str:
    """``https://host[:port][/prefix]``; plain http only for a loopback host (local tests)."""
    try:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        _ = parts.port  # raises on a malformed port
    except ValueError:
        host, parts = "", urlsplit("")
    if parts.query or parts.fragment or parts.username or parts.password or not host:
        raise TargetError(
            f'the {label} "base_url" is not a plain https://host[/path] URL; correct it or remove it to use '
            "the provider's public endpoint",
            category=Category.SECRET_FORMAT,
        )
    if parts.scheme != "https" and not (parts.scheme == "http" and host in _LOOPBACK_HOSTS):
        raise TargetError(
            f'the {label} "base_url" must use https (plain http is accepted for 127.0.0.1/localhost only); '
            "keys and admin credentials are never sent unencrypted",
            category=Category.TLS,
        )
    return base_url.rstrip("/")


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
    ) -> None:
        self.timeout = timeout
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
            self._transport = urllib3_transport(self._ca_bundle)
        return self._transport

    def request(
        self,
        provider: str,
        method: str,
        base_url: str,
        route: str,
        *,
        path_params: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> HttpResponse:
        """Send ``method route`` to ``base_url``; returns the final response, whatever its status.

        Raises :class:`ProviderError` (category ``unreachable``) when no response came back after the
        allowed attempts, or when the provider asks to wait longer than the cap.
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}
        url = base_url.rstrip("/") + route.format(**{k: quote(v, safe="") for k, v in (path_params or {}).items()})
        if query:
            url += "?" + urlencode(query)
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
                response = self.transport(method, url, send_headers, body, self.timeout)
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
