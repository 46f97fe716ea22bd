"""A Docker engine for ``make sam-local-invoke``: the one that answers, or one started here and stopped after.

:func:`ensure_engine` uses the engine at ``$DOCKER_HOST`` (a unix socket) or ``/var/run/docker.sock`` when
it answers. Otherwise, as root, it installs Debian's ``docker.io`` with apt when ``dockerd`` is missing
(no service is started: there is no init system here, and ``invoke-rc.d`` refuses without one) and
starts ``dockerd`` by hand on a private socket, with its image store kept outside the repository
(``$ROTATION_DOCKER_DATA_ROOT``, default ``/var/cache/secrets-rotation/docker``, so that the images
built once are there the next time) and without touching the host's firewall (``--iptables=false``:
the Lambda containers use the host's network, and the one image build step that runs a container
needs no network). :meth:`Engine.stop` stops that ``dockerd`` by its PID (its containerd goes with it).

:func:`api` is a minimal HTTP client of the Docker Engine API over a unix socket (``GET /_ping``,
``POST /images/create``, ``GET /containers/json``, ...): no Docker SDK or CLI is needed.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

DEFAULT_DATA_ROOT = Path("/var/cache/secrets-rotation/docker")
START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0

Say = Callable[[str], None]


class EngineError(RuntimeError):
    """No Docker engine could be found or started (the message says what to do)."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def api(
    socket_path: str,
    method: str,
    path: str,
    *,
    query: Mapping[str, Any] | None = None,
    body: bytes | IO[bytes] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> tuple[int, bytes]:
    """One Docker Engine API request over the unix socket ``socket_path``: (HTTP status, body)."""
    target = path + ("?" + urllib.parse.urlencode(query, doseq=True) if query else "")
    connection = _UnixConnection(socket_path, timeout)
    try:
        connection.request(method, target, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def answers(socket_path: str, timeout: float = 3) -> bool:
    """Whether a Docker engine answers ``GET /_ping`` on ``socket_path``."""
    try:
        status, _ = api(socket_path, "GET", "/_ping", timeout=timeout)
    except OSError:
        return False
    return status == 200


def default_socket() -> str:
    """``$DOCKER_HOST`` (a ``unix://`` socket) or Docker's default socket."""
    host = os.environ.get("DOCKER_HOST", "")
    if host and not host.startswith("unix://"):
        raise EngineError(
            f"DOCKER_HOST={host} is not a unix socket: the local tooling talks to Docker over a unix socket "
            "(unset DOCKER_HOST, or point it at unix:///path/to/docker.sock)"
        )
    return host.removeprefix("unix://") if host else "/var/run/docker.sock"


@dataclass
class Engine:
    """The engine at ``socket``; ``process`` is set when this run started it (and stops it)."""

    socket: str
    process: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    _lock: IO[str] | None = field(default=None, repr=False)

    @property
    def started_here(self) -> bool:
        return self.process is not None

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def image_labels(self, name: str) -> dict[str, str] | None:
        """The labels of the local image ``name``, or None when the engine has no such image."""
        status, body = api(self.socket, "GET", f"/images/{urllib.parse.quote(name, safe='/:')}/json")
        if status == 404:
            return None
        if status != 200:
            raise EngineError(f"the Docker engine answered {status} to an image inspection: {_message(body)}")
        config = json.loads(body).get("Config") or {}
        return dict(config.get("Labels") or {})

    def import_image(self, tarball: Path, name: str, changes: list[str]) -> None:
        """``docker import`` of a root filesystem tarball as ``name`` (repository:tag), with Dockerfile ``changes``."""
        repository, _, tag = name.rpartition(":")
        with open(tarball, "rb") as stream:
            status, body = api(
                self.socket, "POST", "/images/create",
                query={"fromSrc": "-", "repo": repository, "tag": tag, "changes": changes},
                body=stream,
                headers={"Content-Type": "application/x-tar", "Content-Length": str(tarball.stat().st_size)},
                timeout=600,
            )  # fmt: skip
        if status != 200 or b'"error"' in body:
            raise EngineError(f"docker import of {tarball} failed ({status}): {_message(body)}")

    def remove_containers(self, label: str) -> int:
        """Force-remove every container labelled ``label`` (``key=value``); how many there were."""
        status, body = api(
            self.socket, "GET", "/containers/json",
            query={"all": "1", "filters": json.dumps({"label": [label]})},
        )  # fmt: skip
        if status != 200:
            return 0
        removed = 0
        for container in json.loads(body):
            code, _ = api(self.socket, "DELETE", f"/containers/{container['Id']}", query={"force": "1", "v": "1"})
            removed += code in (200, 204)
        return removed

    def stop(self) -> None:
        """Stop the dockerd this run started, by its PID (SIGTERM, then SIGKILL to its process group)."""
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=STOP_TIMEOUT)
            # A containerd left behind by a dockerd that died hard is in dockerd's process group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGTERM)
        if self.workdir is not None:
            _unmount_below(self.workdir)  # dockerd leaves its default network namespace mounted there
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None


def _unmount_below(folder: Path) -> None:
    prefix = str(folder.resolve()).rstrip("/") + "/"
    with open("/proc/self/mounts", encoding="utf-8") as handle:
        points = [fields[1] for fields in (line.split() for line in handle) if len(fields) > 1]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)


def _message(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    with contextlib.suppress(ValueError, AttributeError):
        return str(json.loads(text.splitlines()[-1]).get("message") or json.loads(text.splitlines()[-1]).get("error"))
    return text[-500:]


def data_root() -> Path:
    return Path(os.environ.get("ROTATION_DOCKER_DATA_ROOT") or DEFAULT_DATA_ROOT)


def ensure_engine(say: Say) -> Engine:
    """The engine that answers, else a ``dockerd`` started here (as root; installed with apt if missing)."""
    existing = default_socket()
    if answers(existing):
        say(f"Docker engine: the one answering at {existing}")
        return Engine(existing)
    if os.geteuid() != 0:
        raise EngineError(
            f"no Docker engine answers at {existing}, and starting one needs root: start Docker (Docker Engine "
            "or Docker Desktop), or run this as root"
        )
    if shutil.which("dockerd") is None:
        _install_docker(say)
    return _start_dockerd(say)


def _install_docker(say: Say) -> None:
    say("Docker engine: none installed; installing Debian's docker.io with apt-get (no service is started)")
    started = time.monotonic()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker.io"],
    ):
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise EngineError(f"{' '.join(command)} failed: {(result.stderr or result.stdout).strip()[-1500:]}")
    if shutil.which("dockerd") is None:
        raise EngineError("docker.io is installed but dockerd is not on PATH")
    say(f"Docker engine: docker.io installed in {time.monotonic() - started:.0f} s")


def _acquire(lock: IO[str], say: Say) -> None:
    """One dockerd per image store: a second run waits for the first to stop its engine."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say(f"Docker engine: another run uses the image store {data_root()}; waiting for it to finish")
        fcntl.flock(lock, fcntl.LOCK_EX)


def _start_dockerd(say: Say) -> Engine:
    root = data_root()
    root.mkdir(parents=True, exist_ok=True)
    lock = open(root.parent / f".{root.name}.lock", "a+", encoding="utf-8")  # noqa: SIM115 (held until stop)
    engine = Engine("", _lock=lock)
    try:
        _acquire(lock, say)
        engine.workdir = Path(tempfile.mkdtemp(prefix="rotation-dockerd-", dir="/run"))
        engine.socket = str(engine.workdir / "docker.sock")
        log_path = engine.workdir / "dockerd.log"
        command = [
            "dockerd", "-H", engine.docker_host, "--pidfile", str(engine.workdir / "dockerd.pid"),
            "--exec-root", str(engine.workdir / "exec"), "--data-root", str(root),
            "--iptables=false", "--ip6tables=false",
        ]  # fmt: skip
        started = time.monotonic()
        with open(log_path, "wb") as log:
            engine.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        while not answers(engine.socket, timeout=2):
            if engine.process.poll() is not None or time.monotonic() - started > START_TIMEOUT:
                tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
                raise EngineError(f"dockerd did not start (see {log_path}):\n{tail}")
            time.sleep(0.3)
        say(
            f"Docker engine: started dockerd (PID {engine.process.pid}) on {engine.socket} in "
            f"{time.monotonic() - started:.1f} s; images kept in {root}; it is stopped at the end"
        )
        return engine
    except BaseException:
        engine.stop()
        raise
