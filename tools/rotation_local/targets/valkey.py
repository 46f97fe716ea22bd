"""Valkey and Redis OSS, locally: the host's Redis 7 and Valkey 8 (trixie), each reached three ways.

A kind is a server and the way the function reaches its users, as the secret says it: ``redis-7`` and ``valkey-8``
are self-managed (the secret names a master, ``masterarn``); ``<server>-elasticache`` and ``<server>-memorydb``
are the same servers behind the ElastiCache or MemoryDB API (the secret names ``user_arn``), which
:mod:`rotation_local.valkey_emulator` applies to the server's ACL. Every server listens on 127.0.0.1 only (TLS on a
free port, or plaintext with ``tls=None``), keeps its users in an ACL file, and has an all-powerful
``rotation_admin`` reachable over a private Unix socket; a ``MONITOR`` connection writes every command the server
receives to the statement log (AUTH arguments appear as ``(redacted)``; the server never shows ACL commands there).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from rotation_local.local_server import LocalServer, ServerError, free_port
from rotation_local.rootfs import Chroot
from rotation_local.targets.base import ClientTls, DatabaseTarget, ServerKind
from rotation_local.tls import TlsMaterial

ENGINE = "valkey"
VALKEY, REDIS = "valkey", "redis"  # flavours
SELF_MANAGED, ELASTICACHE, MEMORYDB = "self-managed", "elasticache", "memorydb"  # reaches
ADMIN_USER = "rotation_admin"
SERVER_MASTER = "rotation_master"
#: What a master needs (docs/engines/valkey.md): read and set users, list categories, save the ACL file.
MASTER_RULES = ("-@all", "+ping", "+acl|getuser", "+acl|setuser", "+acl|cat", "+acl|save")
#: An application user: its own keys, reads and writes, nothing @dangerous.
APP_RULES = ("resetchannels", "-@all", "+@read", "+@write", "+@connection", "-@dangerous")
_PROGRAMS = {REDIS: "redis-server", VALKEY: "valkey-server"}
_START_TIMEOUT = 30.0
_ENDPOINT_KEYS = ("host", "port", "ssl", "sslmode")  # what a self-managed master secret shares with the user's

KINDS = (
    ServerKind("redis-7", ENGINE, REDIS, "7"),
    ServerKind("valkey-8", ENGINE, VALKEY, "8", suite="trixie", packages=("valkey-server",)),
    ServerKind("redis-7-elasticache", ENGINE, REDIS, "7"),
    ServerKind("valkey-8-elasticache", ENGINE, VALKEY, "8", suite="trixie", packages=("valkey-server",)),
    ServerKind("redis-7-memorydb", ENGINE, REDIS, "7"),
    ServerKind("valkey-8-memorydb", ENGINE, VALKEY, "8", suite="trixie", packages=("valkey-server",)),
)


def reach_of(kind: ServerKind) -> str:
    for reach in (ELASTICACHE, MEMORYDB):
        if kind.name.endswith("-" + reach):
            return reach
    return SELF_MANAGED


def _digest(password: str) -> str:
    import hashlib

    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def _resp(*words: str) -> bytes:
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode("utf-8")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


@dataclass(kw_only=True)
class ValkeyServer(LocalServer):
    """A running Valkey or Redis server; ``reach`` is how the function reaches its users (see the module)."""

    flavour: str
    reach: str = SELF_MANAGED
    plain_port: int | None = None  # with TLS on: the plaintext port beside the TLS one
    user_arns: dict[str, str] = field(default_factory=dict)  # username -> managed user's ARN
    master_password: str | None = field(default=None, repr=False)  # the server's own master (self-managed)
    master_arns: dict[str, str] = field(default_factory=dict)  # its secrets, one per endpoint form, made on first use
    _monitor: socket.socket | None = field(default=None, repr=False)
    log_name: ClassVar[str] = "monitor.log"  # what MONITOR saw: every command the server received

    @classmethod
    def start(cls, *, flavour: str, reach: str, tls: TlsMaterial | None, root: Path | None) -> Self:
        chroot = Chroot(root)
        server = cls(workdir=chroot.make_tempdir(f"rotation-{flavour}-"), port=free_port(),
                     admin_password=secrets.token_urlsafe(24), tls=tls is not None, root=root, flavour=flavour,
                     reach=reach)  # fmt: skip
        try:
            server._launch(tls)
            server._start_monitor()
            info = server.command("INFO", "server")  # redis-py answers INFO as a dict
            server.version = str(info.get("valkey_version") or info.get("redis_version") or "").strip()
        except BaseException:
            server.stop()
            raise
        return server

    def _program(self) -> str:
        name = _PROGRAMS[self.flavour]
        for folder in ("/usr/bin", "/usr/sbin", "/usr/local/bin"):
            if self.chroot.exists(f"{folder}/{name}"):
                return f"{folder}/{name}"
        where = f"in the root filesystem {self.root}" if self.root else "on this machine"
        raise ServerError(f"no {name} found {where}: install it (Debian: apt-get install {name})")

    def _launch(self, tls: TlsMaterial | None) -> None:
        inside = self.chroot.inside
        acl_file = self.workdir / "users.acl"
        acl_file.write_text(f"user default off\nuser {ADMIN_USER} on #{_digest(self.admin_password)} ~* &* +@all\n")
        acl_file.chmod(0o600)
        options = ["--bind", "127.0.0.1", "--unixsocket", inside(self.socket_path), "--unixsocketperm", "700",
                   "--dir", inside(self.workdir), "--save", "", "--appendonly", "no", "--daemonize", "no",
                   "--aclfile", inside(acl_file), "--logfile", inside(self.workdir / "server.log")]  # fmt: skip
        if tls is None:
            options += ["--port", str(self.port)]
        else:  # TLS on its port, and plaintext on another (Redis serves the two on different ports)
            self.plain_port = free_port()
            for name, data in (("server-cert.pem", tls.cert_pem), ("server-key.pem", tls.key_pem)):
                path = self.workdir / name
                path.write_bytes(data)
                path.chmod(0o600)
            options += ["--port", str(self.plain_port), "--tls-port", str(self.port), "--tls-auth-clients", "no",
                        "--tls-cert-file", inside(self.workdir / "server-cert.pem"),
                        "--tls-key-file", inside(self.workdir / "server-key.pem")]  # fmt: skip
        with open(self.workdir / "stdout.log", "wb") as output:
            self.process = subprocess.Popen(  # chroot execs the server: the child's PID is the server's
                self.chroot.command([self._program(), *options]), stdout=output, stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )  # fmt: skip
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(
                    f"{_PROGRAMS[self.flavour]} exited with code {self.process.returncode}: {self._tail()}"
                )
            with contextlib.suppress(Exception):
                self.command("PING")
                return
            time.sleep(0.05)
        raise ServerError(f"{_PROGRAMS[self.flavour]} did not answer within {_START_TIMEOUT:.0f}s: {self._tail()}")

    def _tail(self) -> str:
        texts = []
        for name in ("server.log", "stdout.log"):
            with contextlib.suppress(OSError):
                texts.append((self.workdir / name).read_text(errors="replace")[-1500:])
        return " ".join(texts).strip() or "(no log)"

    def _start_monitor(self) -> None:
        """Every command the server receives, as MONITOR reports it, appended to the statement log."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(self.socket_path))
        sock.sendall(_resp("AUTH", ADMIN_USER, self.admin_password) + _resp("MONITOR"))
        self._monitor = sock
        reader = sock.makefile("rb")
        log = open(self.log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (closed by the thread)

        def copy() -> None:
            with log, contextlib.suppress(OSError, ValueError):
                for line in reader:
                    log.write(line.decode("utf-8", errors="replace").removeprefix("+"))

        threading.Thread(target=copy, name=f"monitor-{self.port}", daemon=True).start()
        deadline = time.monotonic() + 5  # MONITOR is on once the server confirmed both commands
        while time.monotonic() < deadline and self.log_path.read_text().count("OK") < 2:
            time.sleep(0.02)

    def admin_connect(self, database: str | None = None) -> Any:
        import redis

        return redis.Redis(unix_socket_path=str(self.socket_path), username=ADMIN_USER, password=self.admin_password,
                           socket_timeout=10, protocol=2)  # fmt: skip

    def command(self, *words: str) -> Any:
        client = self.admin_connect()
        try:
            return client.execute_command(*words)
        finally:
            client.close()

    def execute(self, statement: Any, params: Any = None) -> None:
        words = statement.split() if isinstance(statement, str) else list(statement)
        self.command(*words)

    def query(self, statement: Any, params: Any = None, *, database: str | None = None) -> list[tuple[Any, ...]]:
        words = statement.split() if isinstance(statement, str) else list(statement)
        return [(self.command(*words),)]

    def set_user_passwords(self, username: str, digests: list[str]) -> None:
        """What the emulator applies when a managed user's change reaches the server."""
        self.command("ACL", "SETUSER", username, "on", "resetpass", *(f"#{d}" for d in digests))

    def passwords_of(self, username: str) -> set[str]:
        """The digests of the passwords ``username`` has now."""
        reply = self.command("ACL", "GETUSER", username)
        fields = {reply[i].decode(): reply[i + 1] for i in range(0, len(reply), 2)}
        return {d.decode() for d in fields["passwords"]}

    def stop(self) -> None:
        """Stop the server by its PID (SIGTERM, SIGKILL after 20 s) and remove its folder."""
        if self._monitor is not None:
            with contextlib.suppress(OSError):
                self._monitor.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)


class ValkeyTarget(DatabaseTarget):
    def start(
        self, kind: ServerKind, *, root: Path | None = None, tls: TlsMaterial | None = None, log_statements: bool = True
    ) -> Any:
        """The server always keeps its MONITOR log (``log_statements`` changes nothing)."""
        return ValkeyServer.start(flavour=kind.flavour, reach=reach_of(kind), tls=tls, root=root)

    def create_login(self, server: Any, username: str, password: str, *, database: str | None = None,
                     **options: str) -> None:  # fmt: skip
        """A user of its own keys (``<database or username>:*``), reading and writing, nothing @dangerous.

        On a managed kind the user is also made at the service (ElastiCache: ID ``rotation-<name>``) and placed on
        this server; :meth:`secret_created` tags it with the secret's ARN, as an operator would.
        """
        from rotation_local import valkey_emulator

        prefix = (database or username).replace(" ", "_")
        server.command("ACL", "SETUSER", username, "reset", "on", f"#{_digest(password)}", f"~{prefix}:*", *APP_RULES)
        access = f"on ~{prefix}:* {' '.join(APP_RULES)}"
        if server.reach == ELASTICACHE:
            user_id = "rotation-" + "".join(c if c.isalnum() else "-" for c in username).strip("-")
            arn = valkey_emulator.create_elasticache_user(user_id, username, password, access, server.flavour)
        elif server.reach == MEMORYDB:
            arn = valkey_emulator.create_memorydb_user(username, password, access)
        else:
            return
        server.user_arns[username] = arn
        valkey_emulator.place(arn, server, username)

    def create_master(self, server: Any, username: str, password: str) -> None:
        server.command("ACL", "SETUSER", username, "reset", "on", f"#{_digest(password)}", *MASTER_RULES)

    def allow_master(self, server: Any, master: str, username: str) -> None:
        """Nothing: the master's rights (:data:`MASTER_RULES`) cover every user it may change."""

    def secret(self, server: Any, username: str, password: str, **extra: Any) -> dict[str, Any]:
        """Managed kinds: ``user_arn`` (AWS's format) plus the endpoint; self-managed: the endpoint and the server's
        own master (``masterarn``, a secret made for it in the emulator on first use), which ``extra`` may replace."""
        port = server.plain_port if extra.get("ssl") is False and server.plain_port else server.port
        value: dict[str, Any] = {"username": username, "password": password, "host": "127.0.0.1", "port": port}
        extra = {**extra, "port": extra.get("port", port)}
        if server.reach == SELF_MANAGED:
            endpoint = {key: extra[key] for key in _ENDPOINT_KEYS if key in extra}
            value = {"engine": server.flavour, **value, "masterarn": self._server_master(server, endpoint)}
        else:
            value = {"user_arn": server.user_arns.get(username) or self._unknown_arn(server, username), **value}
        return {**value, **extra}

    def secret_created(self, server: Any, secret: Mapping[str, Any], arn: str) -> None:
        """A managed user is bound to the secret just made for it: its tag names the secret's ARN."""
        from rotation_core.engines.valkey.users import BINDING_TAG
        from rotation_local import valkey_emulator

        user_arn = secret.get("user_arn")
        if server.reach != SELF_MANAGED and isinstance(user_arn, str) and user_arn in server.user_arns.values():
            valkey_emulator.tag_user(user_arn, BINDING_TAG, arn)

    def takes_master(self, server: Any) -> bool:
        """Self-managed servers only: a managed user is changed through its service, never by a master."""
        return bool(server.reach == SELF_MANAGED)

    def _server_master(self, server: ValkeyServer, endpoint: Mapping[str, Any]) -> str:
        """The server's own master secret naming the same endpoint (port, TLS options) as the user's secret."""
        from rotation_local import emulator

        key = json.dumps(endpoint, sort_keys=True)
        if key not in server.master_arns:
            if server.master_password is None:
                server.master_password = secrets.token_urlsafe(24)
                self.create_master(server, SERVER_MASTER, server.master_password)
            value = {"engine": server.flavour, "host": "127.0.0.1", "port": server.port, "username": SERVER_MASTER,
                     "password": server.master_password, **endpoint}  # fmt: skip
            created = emulator.backend().create_secret(
                f"valkey-master-{uuid.uuid4().hex[:10]}", json.dumps(value), None, None, None, None, None, [], False
            )
            server.master_arns[key] = str(json.loads(created)["ARN"])
        return server.master_arns[key]

    @staticmethod
    def _unknown_arn(server: ValkeyServer, username: str) -> str:
        from rotation_local.emulator import DEFAULT_ACCOUNT, DEFAULT_REGION

        if server.reach == ELASTICACHE:
            return f"arn:aws:elasticache:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:user:rotation-unknown-{username[:20]}"
        return f"arn:aws:memorydb:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:user/{username}"

    def connect(self, server: Any, secret: Mapping[str, Any], tls: ClientTls, database: str | None = None) -> Any:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        plaintext = tls.ca_bundle is None or secret.get("ssl") is False
        port = server.plain_port if plaintext and server.plain_port else server.port
        params: dict[str, Any] = {"host": "127.0.0.1", "port": port, "username": secret["username"],
                                  "password": secret["password"], "socket_connect_timeout": 5, "socket_timeout": 10,
                                  "protocol": 2, "retry": Retry(NoBackoff(), 0)}  # fmt: skip
        if not plaintext:
            params.update(ssl=True, ssl_ca_certs=str(tls.ca_bundle), ssl_cert_reqs="required",
                          ssl_check_hostname=tls.check_host_name)  # fmt: skip
        client = redis.Redis(**params)
        try:
            client.ping()  # a pooled client connects here
        except BaseException:
            client.close()
            raise
        return client

    def login_error(self) -> type[Exception]:
        import redis

        error: type[Exception] = redis.exceptions.ConnectionError
        return error


TARGET = ValkeyTarget(ENGINE, KINDS, "redis", "Redis")
