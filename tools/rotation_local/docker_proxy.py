"""A Docker API socket that gives every container created through it the host's network.

``sam local invoke --docker-network host`` is ignored by SAM CLI 1.170.0 (it never sets the container's
network mode; aws/aws-sam-cli#3609), yet everything local-env starts listens on 127.0.0.1 only. SAM
talks to Docker through ``DOCKER_HOST``; pointed at :class:`HostNetworkProxy`, it reaches the real
engine through this proxy, which passes every request through unchanged except ``POST
/containers/create``: there it sets ``HostConfig.NetworkMode`` to ``host`` and, since a container on the
host's network publishes no ports, tells the runtime interface emulator SAM starts in the container
(``aws-lambda-rie``) to listen on the loopback port SAM chose for it (the host side of the ``8080/tcp``
binding SAM asks for) and to serve the Runtime API on another free loopback port. Everything it relies
on is Docker's documented API and the emulator's documented options, not SAM's internals, so a SAM
upgrade that still publishes the emulator's port keeps working; one that does not is refused with a
message that says so.

Each client connection carries one request (the proxy asks the engine to close the connection after
its answer), so the next request on a kept-alive connection can never slip past the rewrite. Upgraded
connections (``docker attach``) are piped both ways until either side closes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import socketserver
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rotation_local.serving import BackgroundServing, ServedInBackground

#: The port the runtime interface emulator listens on in the container (SAM publishes it).
RIE_CONTAINER_PORT = "8080/tcp"
RIE_NAME = "aws-lambda-rie"
#: Set on every container the proxy created, so that a run can find and remove what it left behind.
LABEL = "rotation-local.host-network"
_CREATE = re.compile(r"^(/v[0-9.]+)?/containers/create(\?.*)?$")
_MAX_HEAD = 64 * 1024
_MAX_CREATE_BODY = 4 * 1024 * 1024


class ProxyRefusedError(Exception):
    """A container request the proxy cannot give the host's network (the message says why)."""


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def host_network_config(config: Mapping[str, Any], *, runtime_api_port: int, label_value: str = "1") -> dict[str, Any]:
    """The container-create body ``config`` on the host's network, with the emulator on loopback ports.

    Raises :class:`ProxyRefusedError` when the request is not a Lambda container as SAM creates them (no
    ``aws-lambda-rie`` in the entry point, or no host port for it).
    """
    new: dict[str, Any] = json.loads(json.dumps(config))  # a deep copy of plain JSON
    host_config = new.setdefault("HostConfig", {})
    bindings = host_config.pop("PortBindings", None) or {}
    new.pop("ExposedPorts", None)
    rie_port = _host_port(bindings.get(RIE_CONTAINER_PORT))
    entrypoint = new.get("Entrypoint")
    if isinstance(entrypoint, str):
        entrypoint = [entrypoint]
    position = next(
        (i for i, part in enumerate(entrypoint or []) if isinstance(part, str) and part.endswith(RIE_NAME)), None
    )
    if position is None or rie_port is None:
        raise ProxyRefusedError(
            "this Docker socket only creates Lambda containers as sam local invoke makes them (aws-lambda-rie as "
            f"the entry point, its port {RIE_CONTAINER_PORT} published); this request has "
            f"{'no emulator in its entry point' if position is None else 'no host port for the emulator'}. "
            "Use the engine's own socket for other containers"
        )
    assert entrypoint is not None
    entrypoint[position + 1 : position + 1] = [
        "--runtime-interface-emulator-address", f"127.0.0.1:{rie_port}",
        "--runtime-api-address", f"127.0.0.1:{runtime_api_port}",
    ]  # fmt: skip
    new["Entrypoint"] = entrypoint
    host_config["NetworkMode"] = "host"
    new.pop("NetworkingConfig", None)
    new.setdefault("Labels", {})
    new["Labels"] = {**(new["Labels"] or {}), LABEL: label_value}
    return new


def _host_port(binding: Any) -> int | None:
    if not isinstance(binding, list) or not binding or not isinstance(binding[0], dict):
        return None
    try:
        return int(binding[0].get("HostPort") or "")
    except ValueError:
        return None


def upstream_socket() -> str:
    """The engine's socket: ``$DOCKER_HOST`` when it is a unix socket, else the default one."""
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return host.removeprefix("unix://")
    return "/var/run/docker.sock"


class _Head:
    def __init__(self, raw: bytes) -> None:
        lines = raw.decode("latin-1").split("\r\n")
        self.request_line = lines[0]
        parts = self.request_line.split(" ")
        self.method = parts[0] if parts else ""
        self.target = parts[1] if len(parts) > 1 else ""
        self.headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                self.headers.append((name.strip(), value.strip()))

    def get(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    def render(self, replace: Mapping[str, str | None]) -> bytes:
        """The head again, with the headers named in ``replace`` set (or dropped for None)."""
        lowered = {key.lower(): value for key, value in replace.items()}
        lines = [self.request_line]
        lines += [f"{key}: {value}" for key, value in self.headers if key.lower() not in lowered]
        lines += [f"{key}: {value}" for key, value in replace.items() if value is not None]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _read_head(conn: socket.socket) -> tuple[bytes, bytes] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > _MAX_HEAD:
            raise ProxyRefusedError("request head too large")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _read_body(conn: socket.socket, head: _Head, already: bytes) -> bytes:
    if (head.get("Transfer-Encoding") or "").lower() == "chunked":
        return _read_chunked(conn, already)
    length = int(head.get("Content-Length") or 0)
    if length > _MAX_CREATE_BODY:
        raise ProxyRefusedError("container create body too large")
    body = already
    while len(body) < length:
        chunk = conn.recv(length - len(body))
        if not chunk:
            raise ProxyRefusedError("the client closed the connection in the middle of its request")
        body += chunk
    return body[:length]


def _read_chunked(conn: socket.socket, data: bytes) -> bytes:
    body = b""
    while True:
        while b"\r\n" not in data:
            more = conn.recv(65536)
            if not more:
                raise ProxyRefusedError("the client closed the connection in the middle of its request")
            data += more
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        while len(data) < size + 2:
            more = conn.recv(65536)
            if not more:
                raise ProxyRefusedError("the client closed the connection in the middle of its request")
            data += more
        if size == 0:
            return body
        body += data[:size]
        data = data[size + 2 :]
        if len(body) > _MAX_CREATE_BODY:
            raise ProxyRefusedError("container create body too large")


def _pipe(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            target.sendall(chunk)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


def _refuse(conn: socket.socket, status: int, message: str) -> None:
    body = json.dumps({"message": f"rotation-local host-network proxy: {message}"}).encode("utf-8")
    reason = {400: "Bad Request", 502: "Bad Gateway"}.get(status, "Error")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")
    with contextlib.suppress(OSError):
        conn.sendall(head + body)


class HostNetworkProxy(ServedInBackground):
    """The proxy on the unix socket ``path`` (mode 0600), forwarding to the engine at ``upstream``.

    ``upstream`` is a socket path, or a callable giving one at each connection (the engine may start
    after the proxy). ``label_value`` marks the containers created through it (:data:`LABEL`).
    """

    def __init__(self, path: Path, upstream: str | Callable[[], str] = upstream_socket, label_value: str = "1") -> None:
        if len(os.fsencode(path)) > 107:
            raise ValueError(f"{path} is too long for a unix socket path (at most 107 bytes): choose a shorter folder")
        self.path = path
        self._upstream = upstream if callable(upstream) else (lambda: upstream)
        self._label_value = label_value
        self.created = 0
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request)

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        old_umask = os.umask(0o177)  # the socket is born 0600: it is as powerful as the engine's own
        try:
            self._serving = BackgroundServing(Server(str(path), Handler), "docker-host-network")
        finally:
            os.umask(old_umask)

    @property
    def docker_host(self) -> str:
        return f"unix://{self.path}"

    def stop(self) -> None:
        super().stop()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _serve(self, client: socket.socket) -> None:
        try:
            read = _read_head(client)
            if read is None:
                return
            raw_head, rest = read
            head = _Head(raw_head)
            upgrade = "upgrade" in (head.get("Connection") or "").lower()
            replace: dict[str, str | None] = {} if upgrade else {"Connection": "close"}
            if head.method == "POST" and _CREATE.match(head.target):
                body = _read_body(client, head, rest)
                config = json.loads(body or b"{}")
                new_body = json.dumps(
                    host_network_config(config, runtime_api_port=free_loopback_port(), label_value=self._label_value)
                ).encode("utf-8")
                replace.update({"Content-Length": str(len(new_body)), "Transfer-Encoding": None})
                first = head.render(replace) + new_body
                self.created += 1
            else:
                first = head.render(replace) + rest
        except (ProxyRefusedError, ValueError) as error:
            _refuse(client, 400, str(error))
            return
        except OSError:
            return
        try:
            engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            engine.connect(self._upstream())
        except OSError as error:
            _refuse(client, 502, f"no Docker engine answers at {self._upstream()} ({error.strerror or error})")
            return
        with engine:
            try:
                engine.sendall(first)
            except OSError:
                return
            upstream_to_client = threading.Thread(target=_pipe, args=(engine, client), daemon=True)
            upstream_to_client.start()
            _pipe(client, engine)
            upstream_to_client.join()
