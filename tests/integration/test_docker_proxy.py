"""The Docker socket local-env gives sam local invoke, on a unix socket in front of a recording engine.

The engine is a stand-in that records each request and answers 201 (no Docker needed); the container
create body is SAM CLI 1.170.0's (tests/unit/test_docker_proxy.py checks the rewrite itself).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rotation_local.docker_engine import api
from rotation_local.docker_proxy import HostNetworkProxy

SAM_CREATE = {
    "Image": "samcli/lambda-python:3.13-x86_64-0123456789abcdef",
    "Entrypoint": ["/var/rapid/aws-lambda-rie", "--log-level", "error"],
    "ExposedPorts": {"8080/tcp": {}},
    "HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "7786"}]}},
}


class RecordingEngine:
    """A unix socket that answers each request with 201 and a JSON body, and records what it received."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.requests: list[bytes] = []
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(8)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                fields = dict(line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:])
                length = int(fields.get(b"content-length", b"0"))
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + body)
                answer = b'{"Id": "abc"}'
                conn.sendall(
                    b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    b"Content-Length: " + str(len(answer)).encode() + b"\r\n\r\n" + answer
                )

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[HostNetworkProxy, RecordingEngine]]:
    engine = RecordingEngine(tmp_path / "engine.sock")
    proxy = HostNetworkProxy(tmp_path / "proxy.sock", str(engine.path), label_value="run-1").start()
    try:
        yield proxy, engine
    finally:
        proxy.stop()
        engine.close()


def _head_and_body(raw: bytes) -> tuple[list[str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n"), body


def test_proxy_rewrites_container_create_and_engine_answer_comes_back(
    proxied: tuple[HostNetworkProxy, RecordingEngine],
) -> None:
    proxy, engine = proxied

    status, body = api(
        str(proxy.path), "POST", "/v1.35/containers/create", body=json.dumps(SAM_CREATE).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip

    assert (status, json.loads(body)) == (201, {"Id": "abc"})
    (raw,) = engine.requests
    lines, sent = _head_and_body(raw)
    assert lines[0] == "POST /v1.35/containers/create HTTP/1.1"
    assert f"Content-Length: {len(sent)}" in lines
    assert "Connection: close" in lines  # one request per connection: the next one is read by the proxy too
    config = json.loads(sent)
    assert config["HostConfig"]["NetworkMode"] == "host"
    assert "--runtime-interface-emulator-address" in config["Entrypoint"]
    assert proxy.created == 1


def test_proxy_passes_other_requests_unchanged_but_for_connection_close(
    proxied: tuple[HostNetworkProxy, RecordingEngine],
) -> None:
    proxy, engine = proxied
    payload = json.dumps({"Image": "x", "HostConfig": {"NetworkMode": "bridge"}}).encode()

    status, _ = api(str(proxy.path), "GET", "/v1.35/containers/json", query={"all": "1"})
    api(str(proxy.path), "POST", "/v1.35/build", body=payload, headers={"Content-Type": "application/json"})

    assert status == 201
    first, second = engine.requests
    assert _head_and_body(first)[0][0] == "GET /v1.35/containers/json?all=1 HTTP/1.1"
    assert "Connection: close" in _head_and_body(first)[0]
    assert _head_and_body(second)[1] == payload  # not a container create: the body is not touched
    assert proxy.created == 0


def test_proxy_refuses_create_that_is_not_a_lambda_container_without_reaching_engine(
    proxied: tuple[HostNetworkProxy, RecordingEngine],
) -> None:
    proxy, engine = proxied

    status, body = api(
        str(proxy.path), "POST", "/containers/create", body=json.dumps({"Image": "debian", "Cmd": ["sh"]}).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip

    assert status == 400
    assert "only creates Lambda containers" in json.loads(body)["message"]
    assert engine.requests == []


def test_proxy_without_engine_answers_502_naming_the_socket(tmp_path: Path) -> None:
    proxy = HostNetworkProxy(tmp_path / "proxy.sock", str(tmp_path / "nothing.sock")).start()
    try:
        status, body = api(str(proxy.path), "GET", "/_ping")
    finally:
        proxy.stop()

    assert status == 502
    assert "nothing.sock" in json.loads(body)["message"]
    assert not (tmp_path / "proxy.sock").exists()


def test_proxy_socket_is_private_to_its_owner(proxied: tuple[HostNetworkProxy, RecordingEngine]) -> None:
    proxy, _engine = proxied

    assert proxy.path.stat().st_mode & 0o777 == 0o600
