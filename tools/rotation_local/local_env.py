"""``make local-env``: everything the sample events under ``events/`` need, on loopback, until interrupted.

``python -m rotation_local local-env`` starts

* the Secrets Manager emulator (moto) over HTTP on 127.0.0.1, port 5000 unless ``--port`` says
  otherwise (0: a free port), with a small control API beside it under ``/_rotation_local/``
  (``restage`` and ``status`` below talk to it);
* a throwaway server of every local database target (``rotation_local.targets``; its first kind, the
  host's packages, and for a strategy that kind lacks the first kind that has it: MySQL 9.7 for dual
  passwords, which MariaDB does not keep), TLS on with a certificate authority made for the run;
* the fake Datadog API (``rotation_local.fake_providers``), over TLS with the same CA;

then, for every function of the template (``rotation_core.registry.rotation_functions()``), creates the
secret its events name (``rotation_local.events.secret_name``: single user, alternating users with a
master secret, an API key with its admin secret), enables rotation on it and stages the events' token
as AWSPENDING with no value, as ``RotateSecret`` does before it invokes the function. It writes into
its run folder (``$LOCAL_ENV``) the CA bundle, an env-vars file per function for the Docker-free
runner (``env/<Function>.json``), one for ``sam local invoke`` (``sam-env.json``), and
``local-env.json`` (what runs where), prints the commands to run next and waits. SIGINT (Ctrl-C),
SIGTERM or SIGHUP stop every server (by PID) and remove the run folder.

``local-env restage`` stages a fresh token on a function whose rotation finished (clearing the
AWSPENDING label finishSecret leaves on the new current version, as the service does) and writes that
rotation's four events into ``$LOCAL_ENV/events/``. A token is never reused: the API-key function
names the key it mints after the token, so a reused token would look like an earlier attempt of the
same rotation. ``local-env status`` shows each secret's versions and labels and which of them log in
now. Neither prints a secret value, and the control API never returns one.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

from rotation_core.registry import FunctionSpec, rotation_functions
from rotation_core.settings import API_CA_BUNDLE, DB_CA_BUNDLE, SECRETS_MANAGER_ENDPOINT, Strategy
from rotation_local import emulator
from rotation_local.events import (
    EVENTS_DIR,
    STEPS,
    event_folder,
    function_env,
    function_id,
    other_secret_name,
    render_step_events,
    sample_token,
    secret_name,
    write_files,
)
from rotation_local.invoke import REPO_ROOT
from rotation_local.serving import BackgroundServing, ServedInBackground

DEFAULT_PORT = 5000
CONTROL_PREFIX = "/_rotation_local/"
MANIFEST = "local-env.json"
RUN_DIR_VARIABLE = "LOCAL_ENV"
API_KEY_PROVIDER = "datadog"
MASTER_USER = "rotation_master"
SAM_BUILD_DIR = REPO_ROOT / ".aws-sam" / "build"
SAM_CA_NAME = "rotation-local-ca.pem"  # copied into each built function: sam mounts it as /var/task
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
SAM_EXECUTABLE = ".venv-sam/bin/sam"  # where .ci/template-checks.sh (make sam-build) installs the pinned SAM CLI
DOCKER_SOCKET = "docker.sock"  # in the run folder: the Docker socket sam local invoke is pointed at
CLOSED_LOOPBACK_URL = "http://127.0.0.1:9"  # the discard port: nothing listens there
TOKEN_FILE = "control-token"  # noqa: S105 (a file name) in the run folder (0600): what control requests carry
TOKEN_HEADER = "X-Rotation-Local-Token"  # noqa: S105 (a header name)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # SIGINT too: a background job ignores it
# Rotation states of a secret, from where its AWSPENDING label is.
IDLE, STAGED, IN_PROGRESS, FINISHED = "idle", "staged", "in progress", "finished"

Out = Callable[[str], None]


class LocalEnvError(Exception):
    """Something the user can act on; the message says what (and holds no secret value)."""


class RotationUnfinishedError(LocalEnvError):
    """Restage refused: the function's rotation has not finished."""

    def __init__(self, message: str, pending: str) -> None:
        super().__init__(message)
        self.pending = pending


def _say(line: str) -> None:
    print(line, flush=True)


# --- what a rotation's state is, from the secret's labels -------------------------------------------


def rotation_state(stages: Mapping[str, Iterable[str]], has_value: Callable[[str], bool]) -> tuple[str, str | None]:
    """(state, the version AWSPENDING is on): idle (no AWSPENDING), staged (on a version with no value
    yet: no step has stored one), in progress (on a version with a value, not current yet) or finished
    (on the current version: finishSecret ran; the service removes the label afterwards)."""
    pending = next((version for version, labels in stages.items() if emulator.AWSPENDING in labels), None)
    if pending is None:
        return IDLE, None
    if emulator.AWSCURRENT in stages[pending]:
        return FINISHED, pending
    return (IN_PROGRESS if has_value(pending) else STAGED), pending


# --- the commands people run next -------------------------------------------------------------------


def invoke_commands(function: FunctionSpec, events: str, env_file: str) -> list[str]:
    """The four ``make invoke`` commands of one rotation, in order."""
    return [
        f"make invoke FUNCTION=functions/{function.folder} EVENT={events}/{step}.json ENV_VARS={env_file}"
        for step in STEPS
    ]


def sam_invoke_argv(
    function: FunctionSpec,
    event: str,
    env_file: str,
    *,
    architecture: str,
    invoke_image: str | None = None,
    skip_pull: bool = False,
    sam: str = SAM_EXECUTABLE,
) -> list[str]:
    """``sam local invoke`` of one function on one event: the arguments, as printed and as
    ``make sam-local-invoke`` runs them.

    ``--parameter-overrides Architecture=...``: the architecture of the build (the template's default is
    arm64), so that SAM runs the image the built packages were made for. ``invoke_image`` (with
    ``skip_pull``): the offline stand-in of the Lambda image (rotation_local.lambda_image).
    """
    argv = [
        sam, "local", "invoke", function_id(function), "--region", emulator.DEFAULT_REGION,
        "--parameter-overrides", f"Architecture={architecture}", "--event", event, "--env-vars", env_file,
    ]  # fmt: skip
    if invoke_image:
        argv += ["--invoke-image", invoke_image]
    if skip_pull:
        argv.append("--skip-pull-image")
    return argv


def sam_invoke_env(docker_host: str) -> dict[str, str]:
    """What the ``sam`` process needs besides the user's environment.

    ``DOCKER_HOST``: local-env's Docker socket (rotation_local.docker_proxy), which gives the container
    this machine's network, since SAM ignores ``--docker-network host``. The emulator's credentials, so
    that no real AWS credential reaches the container. ``AWS_MAX_ATTEMPTS=1`` and an STS endpoint on a
    closed loopback port: SAM looks up an account id with those credentials before each invoke, which
    can only fail, and would otherwise retry AWS for ~10 s when offline (it then uses 123456789012).
    """
    return {
        "DOCKER_HOST": docker_host,
        **LOCAL_CREDENTIALS,
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_ENDPOINT_URL_STS": CLOSED_LOOPBACK_URL,
        "SAM_CLI_TELEMETRY": "0",
    }


def sam_command(
    function: FunctionSpec,
    events: str,
    env_file: str,
    *,
    architecture: str,
    docker_host: str,
    invoke_image: str | None = None,
) -> str:
    """One shell line that runs the four steps with ``sam local invoke`` and stops at the first failure.

    ``sam local invoke`` exits 0 when the handler raises; what it prints on stdout is the invocation's
    result, so the loop stops when that result is an error (``"errorType"``).
    """
    env = " ".join(f"{name}={value}" for name, value in sam_invoke_env(docker_host).items())
    argv = sam_invoke_argv(
        function, f"{events}/$step.json", env_file, architecture=architecture, invoke_image=invoke_image,
        skip_pull=invoke_image is not None,
    )  # fmt: skip
    return (
        f'for step in {" ".join(STEPS)}; do out=$({env} {" ".join(argv)}); echo "$out"; '
        "case $out in *'\"errorType\"'*) break;; esac; done"
    )


def in_run_dir(path: str) -> str:
    """``path`` below the run folder, as the printed commands write it (``$LOCAL_ENV/...``)."""
    return f"${RUN_DIR_VARIABLE}/{path}"


def build_architecture(build_dir: Path) -> str:
    """The architecture ``sam build`` built for, from the native libraries it installed (psycopg2's and
    others' ``*-x86_64-linux-gnu.so`` / ``*-aarch64-linux-gnu.so``); the machine's own when it has none."""
    from rotation_local.lambda_image import host_architecture

    found = set()
    if build_dir.is_dir():
        for library in build_dir.glob("*/**/*.so"):
            if library.name.endswith("-x86_64-linux-gnu.so"):
                found.add("x86_64")
            elif library.name.endswith("-aarch64-linux-gnu.so"):
                found.add("arm64")
            if len(found) > 1:
                break
    return found.pop() if len(found) == 1 else host_architecture()


# --- the local environment ----------------------------------------------------------------------------


@dataclass
class Rotated:
    """One function's secret here, and how to tell whether a value of it works right now."""

    function: FunctionSpec
    arn: str
    title: str  # what the secret is for: "PostgreSQL 15.18 on 127.0.0.1:41234, TLS verify-full"
    works: Callable[[Mapping[str, Any]], bool] = field(repr=False)
    token: str  # the token of the newest events (the committed ones' or the last restage's)
    events: str  # where those events are, as the printed commands write it

    @property
    def id(self) -> str:
        return function_id(self.function)


def request_refusal(
    path: str, method: str, headers: Mapping[str, str], *, port: int, token: str
) -> tuple[int, str] | None:
    """Why local-env refuses a request that reached its port: (HTTP status, message), or None.

    Every request (the emulator's too): none carrying ``Origin`` (browsers send it on cross-origin and on
    POST requests; SDKs and the runner never do), and ``Host`` must name this loopback port (a page whose
    name was rebound to 127.0.0.1 sends its own name: DNS rebinding). Control requests also: a POST's
    body is ``application/json`` (what no cross-site form or "simple" request can send), and
    ``X-Rotation-Local-Token`` is the run's token (``$LOCAL_ENV/control-token``). ``headers``: lower-case names.
    """
    if "origin" in headers:
        return 403, "requests from web pages (with an Origin header) are refused"
    if headers.get("host", "").lower() not in {f"127.0.0.1:{port}", f"localhost:{port}"}:
        return 403, f"the Host header must be 127.0.0.1:{port} or localhost:{port}"
    if not path.startswith(CONTROL_PREFIX):
        return None
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if method not in ("GET", "HEAD") and media_type != "application/json":
        return 415, "control requests send their body as application/json"
    given = headers.get(TOKEN_HEADER.lower(), "")
    if not given or not hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8")):
        return 403, (
            f"control requests need this run's token ({TOKEN_HEADER}); it is in {in_run_dir(TOKEN_FILE)}: "
            f"export {RUN_DIR_VARIABLE}=the run folder local-env printed"
        )
    return None


def _request_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """A WSGI request's headers, lower-case names (Content-Type and Content-Length included)."""
    headers = {
        key[5:].replace("_", "-").lower(): str(value) for key, value in environ.items() if key.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = str(environ[key])
    return headers


class ControlledEmulator(ServedInBackground):
    """moto's Secrets Manager over HTTP on 127.0.0.1, with the control API under ``/_rotation_local/``.

    Runs in this process (a thread), so that the control API can stage placeholder versions in moto's
    state directly, as :mod:`rotation_local.emulator` does for the demo and the tests. moto's global
    CORS is off, and :func:`request_refusal` keeps web pages out (a page the developer visits could
    otherwise read the local secrets or drive the control API).
    """

    def __init__(self, control: Callable[[str, str, bytes], tuple[int, Any]], port: int, token: str) -> None:
        import logging

        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        emulator.apply_fidelity_patches()
        emulator.disable_global_cors()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        moto_app = DomainDispatcherApplication(create_backend_app)

        def answer(start_response: Callable[..., Any], status: int, payload: Any) -> list[bytes]:
            data = json.dumps(payload).encode("utf-8")
            start_response(
                f"{status} {HTTPStatus(status).phrase}",
                [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
            )
            return [data]

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = str(environ.get("PATH_INFO", ""))
            method = str(environ.get("REQUEST_METHOD", ""))
            refused = request_refusal(path, method, _request_headers(environ), port=self.port, token=token)
            if refused is not None:
                return answer(start_response, refused[0], {"error": f"local-env: {refused[1]}"})
            if not path.startswith(CONTROL_PREFIX):
                reply: Iterable[bytes] = moto_app(environ, start_response)
                return reply
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            return answer(start_response, *control(method, path.removeprefix(CONTROL_PREFIX), body))

        # The socket is bound here, not by werkzeug, which prints and exits the process when a port is taken.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind(("127.0.0.1", port))
            except OSError as error:
                raise LocalEnvError(
                    f"cannot listen on 127.0.0.1:{port} ({error.strerror or error}): is another local-env or "
                    "emulator running? Stop it, or pick another port: make local-env PORT=0 (a free one)"
                ) from None
            listener.listen(64)
            self._server = make_server(
                "127.0.0.1",
                listener.getsockname()[1],
                app,
                threaded=True,
                request_handler=MotoRequestHandler,
                fd=listener.fileno(),
            )  # fmt: skip (werkzeug duplicates the descriptor)
        self._serving = BackgroundServing(self._server, "local-env-emulator")

    @property
    def port(self) -> int:
        return int(self._server.port)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class LocalEnvironment:
    """The servers, secrets and files of one ``local-env`` run; :meth:`close` undoes all of it."""

    def __init__(
        self,
        run_dir: Path,
        *,
        port: int = DEFAULT_PORT,
        only: Collection[str] = (),
        out: Out = _say,
        invoke_image: str | None = None,
    ) -> None:
        known = [function_id(f) for f in rotation_functions()]
        unknown = sorted(set(only) - set(known))
        if unknown:
            raise LocalEnvError(f"no such function: {', '.join(unknown)}; the template's are {', '.join(known)}")
        self.functions = [f for f in rotation_functions() if not only or function_id(f) in only]
        self.run_dir = run_dir
        self.port = port
        self.out = out
        self.rotated: dict[str, Rotated] = {}
        self.watched_logs: list[Path] = []
        self.sam_ready = False
        self.invoke_image = invoke_image  # the printed sam commands' --invoke-image (the offline stand-in)
        self.architecture = build_architecture(SAM_BUILD_DIR)
        self.token = secrets.token_urlsafe(32)
        self.docker_proxy: Any = None
        self._stack = contextlib.ExitStack()
        self._lock = threading.Lock()
        self._emulator: ControlledEmulator | None = None

    # --- start and stop ---------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        assert self._emulator is not None
        return self._emulator.endpoint_url

    @property
    def ca_bundle(self) -> Path:
        return self.run_dir / "local-ca.pem"

    def start(self) -> LocalEnvironment:
        from rotation_local.tls import LocalCA

        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if any(self.run_dir.iterdir()):
            raise LocalEnvError(f"{self.run_dir} is not empty; give local-env a new or empty folder")
        self._stack.callback(shutil.rmtree, self.run_dir, ignore_errors=True)
        token_file = self.run_dir / TOKEN_FILE
        token_file.touch(mode=0o600)
        token_file.write_text(self.token + "\n", encoding="utf-8")
        self._emulator = ControlledEmulator(self._control, self.port, self.token).start()
        self._stack.callback(self._emulator.stop)
        self.out(f"local-env: Secrets Manager emulator on {self.endpoint_url} (moto); no secret value is ever printed")
        self._start_docker_proxy()
        ca = LocalCA.create(self.run_dir)
        self.out(f"local-env: a certificate authority made for this run: {ca.bundle_path}")
        client = self._client()
        kinds = {kind for f in self.functions if (kind := _database_kind(f)) is not None}
        databases = self._start_databases(kinds, ca)
        fake = self._start_fake(ca) if any(f.engine is None for f in self.functions) else None
        for function in self.functions:
            if function.engine is not None and _database_kind(function) not in databases:
                continue
            self._create(function, client, databases, fake)
        self._write_env_files()
        self.sam_ready = self._copy_ca_into_sam_build()
        self._write_manifest()
        return self

    def close(self) -> None:
        self._stack.close()

    def _start_docker_proxy(self) -> None:
        """The Docker socket of the printed sam commands: the engine's, giving containers the host's network."""
        from rotation_local.docker_proxy import HostNetworkProxy, upstream_socket

        try:
            proxy = HostNetworkProxy(self.run_dir / DOCKER_SOCKET, upstream_socket, label_value=str(self.run_dir))
        except (OSError, ValueError) as error:
            self.out(f"local-env: no Docker socket for sam local invoke ({error}); make invoke works without it")
            return
        self.docker_proxy = proxy.start()
        self._stack.callback(proxy.stop)
        self.out(
            f"local-env: a Docker socket for sam local invoke: {proxy.docker_host} (the engine at "
            f"{upstream_socket()}; its containers share this machine's network)"
        )

    def __enter__(self) -> LocalEnvironment:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _client(self) -> Any:
        return emulator.client(self.endpoint_url)

    def _start_databases(self, kind_names: Iterable[str], ca: Any) -> dict[str, tuple[Any, Any, str]]:
        """kind -> (target, server, title) for every server kind that starts here (a target's first kind, or the
        first that supports a function's strategy: MySQL for dual passwords)."""
        import re

        from rotation_local.server_kinds import kind_named, start_server
        from rotation_local.targets import database_target

        started: dict[str, tuple[Any, Any, str]] = {}
        for name in sorted(kind_names):
            kind = kind_named(name)
            target = database_target(kind.family)
            try:
                server = start_server(kind, tls=ca.server_material(), log_statements=True)
            except (OSError, RuntimeError) as error:
                self.out(f"local-env: {name}: skipped, its server does not start here: {error}")
                continue
            self._stack.callback(server.stop)
            self.watched_logs.append(target.statement_log(server))
            version = re.match(r"[0-9.]*", server.version.strip())
            title = f"{kind.title} {version.group() if version else ''} on 127.0.0.1:{server.port}, TLS verify-full"
            self.out(f"local-env: {title}")
            started[name] = (target, server, title)
        return started

    def _start_fake(self, ca: Any) -> Any:
        from rotation_local.fake_providers import start_fake

        fake = start_fake(API_KEY_PROVIDER, ca=ca)
        self._stack.callback(fake.stop)
        self.watched_logs.append(fake.access_log_path)
        self.out(f"local-env: a fake {API_KEY_PROVIDER.title()} API on {fake.base_url}, TLS with the run's CA")
        return fake

    def _create(
        self, function: FunctionSpec, client: Any, databases: Mapping[str, tuple[Any, Any, str]], fake: Any
    ) -> None:
        """The function's secret (and the master or admin secret it names), rotation on, the events' token staged."""
        other = other_secret_name(function)
        if function.engine is None:
            admin_arn = client.create_secret(Name=other, SecretString=json.dumps(fake.admin_secret()))["ARN"]
            value = fake.seed_secret(admin_arn)
            title = f"a key of the fake {API_KEY_PROVIDER.title()} API at {fake.base_url}"

            def works(secret: Mapping[str, Any]) -> bool:
                return any(isinstance(v, str) and fake.is_valid(v) for v in secret.values())

        else:
            kind = _database_kind(function)
            assert kind is not None
            target, server, title = databases[kind]
            assert function.strategy is not None
            username = "app_" + function.strategy.value.split("_")[0]  # app_single, app_alternating, app_dual
            password = secrets.token_urlsafe(24)
            target.create_login(
                server, username, password, database=username, **target.login_options(function.strategy)
            )
            value = target.secret(server, username, password, dbname=username)
            if function.strategy is Strategy.ALTERNATING_USERS:
                master_password = secrets.token_urlsafe(24)
                target.create_master(server, MASTER_USER, master_password)
                target.allow_master(server, MASTER_USER, username)
                master = target.secret(server, MASTER_USER, master_password)
                value["masterarn"] = client.create_secret(Name=other, SecretString=json.dumps(master))["ARN"]

            def works(secret: Mapping[str, Any]) -> bool:
                return bool(target.logs_in(server, secret, self.ca_bundle))

        name = secret_name(function)
        arn = client.create_secret(
            Name=name, SecretString=json.dumps(value), Description=f"local-env: {function.description}"
        )["ARN"]
        if function.engine is not None:
            target.secret_created(server, value, arn)
        region, account = emulator.DEFAULT_REGION, emulator.DEFAULT_ACCOUNT
        emulator.enable_rotation(arn, lambda_arn=f"arn:aws:lambda:{region}:{account}:function:{function_id(function)}")
        token = emulator.stage_pending_placeholder(arn, sample_token(function))
        rotated = Rotated(function, arn, title, works, token, f"{EVENTS_DIR.name}/{event_folder(function).as_posix()}")
        self.rotated[rotated.id] = rotated
        master_note = f", names {other}" if other else ""
        self.out(
            f"local-env: {rotated.id}: secret {name}{master_note}; rotation enabled, AWSPENDING staged with no "
            f"value for the events' token {token[:8]}"
        )

    def _tls_env(self, function: FunctionSpec, ca_path: str) -> dict[str, str]:
        return {DB_CA_BUNDLE if function.engine is not None else API_CA_BUNDLE: ca_path}

    def _write_env_files(self) -> None:
        """``env/<Function>.json`` for make invoke (one section each, so the runner applies it without
        --function-name) and ``sam-env.json`` for sam local invoke (which only sets the variables the
        template declares, hence SECRETS_MANAGER_ENDPOINT)."""
        parameters = {
            "AWS_ENDPOINT_URL_SECRETSMANAGER": self.endpoint_url,
            **LOCAL_CREDENTIALS,
            "AWS_DEFAULT_REGION": emulator.DEFAULT_REGION,
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
        sam: dict[str, dict[str, str]] = {
            "Parameters": {SECRETS_MANAGER_ENDPOINT: self.endpoint_url, "POWERTOOLS_LOG_LEVEL": "INFO"}
        }
        folder = self.run_dir / "env"
        folder.mkdir()
        for rotated in self.rotated.values():
            section = {**function_env(rotated.function), **self._tls_env(rotated.function, str(self.ca_bundle))}
            # As Lambda sets it: the runner's context then names the function the secret is attached to.
            section["AWS_LAMBDA_FUNCTION_NAME"] = rotated.id
            text = json.dumps({"Parameters": parameters, rotated.id: section}, indent=2) + "\n"
            (folder / f"{rotated.id}.json").write_text(text, encoding="utf-8")
            sam[rotated.id] = self._tls_env(rotated.function, f"/var/task/{SAM_CA_NAME}")
        (self.run_dir / "sam-env.json").write_text(json.dumps(sam, indent=2) + "\n", encoding="utf-8")

    def _copy_ca_into_sam_build(self) -> bool:
        """sam local invoke mounts only the built function (as /var/task): the run's CA goes there, for this run."""
        if not (SAM_BUILD_DIR / "template.yaml").is_file():
            return False
        for rotated in self.rotated.values():
            built = SAM_BUILD_DIR / rotated.id
            if built.is_dir():
                copy = built / SAM_CA_NAME
                shutil.copyfile(self.ca_bundle, copy)
                self._stack.callback(copy.unlink, missing_ok=True)
        return True

    def _write_manifest(self) -> None:
        manifest = {
            "endpoint": self.endpoint_url,
            "run_dir": str(self.run_dir),
            "ca_bundle": str(self.ca_bundle),
            "pid": os.getpid(),
            "docker_host": self.docker_proxy.docker_host if self.docker_proxy is not None else None,
            "architecture": self.architecture,
            "sam_env": str(self.run_dir / "sam-env.json"),
            "functions": {
                rotated.id: {
                    "folder": rotated.function.folder,
                    "secret": secret_name(rotated.function),
                    "other_secret": other_secret_name(rotated.function),
                    "events": rotated.events,
                    "env_file": str(self.run_dir / "env" / f"{rotated.id}.json"),
                }
                for rotated in self.rotated.values()
            },
            "logs": [str(path) for path in self.watched_logs],
        }
        partial = self.run_dir / f".{MANIFEST}"
        partial.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        partial.rename(self.run_dir / MANIFEST)  # readers never see half a file

    # --- what to run next -------------------------------------------------------------------------

    def sam_command(self, rotated: Rotated) -> str:
        """The printed ``sam local invoke`` loop of one function's newest events."""
        return sam_command(
            rotated.function, rotated.events, in_run_dir("sam-env.json"), architecture=self.architecture,
            docker_host=f"unix://{in_run_dir(DOCKER_SOCKET)}", invoke_image=self.invoke_image,
        )  # fmt: skip

    def next_steps(self) -> list[str]:
        from rotation_local.lambda_image import standin_image

        lines = [
            "",
            f"Ready. In another terminal, from the repository root ({REPO_ROOT}):",
            "",
            f"  export {RUN_DIR_VARIABLE}={self.run_dir}",
            "",
            f"With Docker (sam local invoke; functions built for {self.architecture}): a function's four steps, in "
            "order, until one fails.",
            f"  Its containers share this machine's network through {in_run_dir(DOCKER_SOCKET)} (Linux Docker Engine;"
            " Docker Desktop 4.34+ with Settings > Resources > Network > Enable host networking).",
        ]
        if self.invoke_image:
            lines.append(f"  On {self.invoke_image}, the offline stand-in of AWS's image (docs/local-runner.md).")
        else:
            lines.append(
                "  No registry here? make sam-local-invoke builds an offline stand-in of the Lambda image; add "
                f"--invoke-image {standin_image(self.architecture)} --skip-pull-image (docs/local-runner.md)."
            )
        if not self.sam_ready:
            lines.append(
                "  First `make sam-build`, then restart make local-env (the run's CA bundle is copied into the "
                "build, which is all sam mounts)."
            )
        for rotated in self.rotated.values():
            lines += ["", f"  # {rotated.id}: {rotated.function.description}; {rotated.title}"]
            lines.append(f"  {self.sam_command(rotated)}")
        lines += ["", "Without Docker (make invoke): the same four steps, each handler in a new Python process:"]
        for rotated in self.rotated.values():
            env_file = in_run_dir(f"env/{rotated.id}.json")
            lines += ["", f"  # {rotated.id}"]
            lines += [f"  {command}" for command in invoke_commands(rotated.function, rotated.events, env_file)]
        lines += [
            "",
            "Then:",
            "  make local-env-status                     each secret's labels and which versions log in now",
            "  make local-env-restage FUNCTION_NAME=...  a fresh token for another rotation (prints its commands)",
            "",
            f"Ctrl-C here stops every server and removes {self.run_dir}.",
        ]
        return lines

    # --- the control API --------------------------------------------------------------------------

    def _control(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return 400, {"error": "the request body is not JSON"}
        try:
            with self._lock:
                if method == "GET" and path == "status":
                    return 200, {"run_dir": str(self.run_dir), "functions": self.status()}
                if method == "POST" and path == "restage":
                    names = request.get("functions") or []
                    return 200, {
                        "run_dir": str(self.run_dir),
                        "results": self.restage_many(names, abandon=bool(request.get("abandon"))),
                    }
        except LocalEnvError as error:
            return 400, {"error": str(error)}
        except Exception as error:  # noqa: BLE001 (the type only: a driver's message may quote a value)
            return 500, {"error": f"local-env failed to answer: {type(error).__name__}"}
        return 404, {"error": f"no such control request: {method} {CONTROL_PREFIX}{path}"}

    def _has_value(self, arn: str, version_id: str) -> bool:
        return self._stored(arn, version_id) is not None

    def _stored(self, arn: str, version_id: str) -> dict[str, Any] | None:
        version = emulator.backend().secrets[arn].versions.get(version_id, {})
        text = version.get("secret_string")
        if text is None:
            return None
        value: dict[str, Any] = json.loads(text)
        return value

    def _rotated(self, name: str) -> Rotated:
        rotated = self.rotated.get(name)
        if rotated is None:
            raise LocalEnvError(f"{name} is not running here; these are: {', '.join(self.rotated)}")
        return rotated

    def restage(self, name: str, *, abandon: bool = False) -> dict[str, Any]:
        """A fresh token staged as AWSPENDING (no value) on the function's secret, and its four events written."""
        rotated = self._rotated(name)
        state, pending = rotation_state(
            emulator.version_stages(rotated.arn), functools.partial(self._has_value, rotated.arn)
        )
        if state in (STAGED, IN_PROGRESS):
            assert pending is not None
            if not abandon:
                what = "no step has stored a value yet" if state == STAGED else "createSecret stored its value"
                raise RotationUnfinishedError(
                    f"{name}: the rotation with token {pending[:8]} is not finished ({what}): run its remaining "
                    "steps (any step may run again), or restage with --abandon to give it up",
                    pending,
                )
            emulator.drop_pending(rotated.arn)
        elif state == FINISHED:
            emulator.clear_pending(rotated.arn)  # what the service does once finishSecret succeeded
        token = str(uuid.uuid4())
        emulator.stage_pending_placeholder(rotated.arn, token)
        write_files(self.run_dir / EVENTS_DIR.name, render_step_events([rotated.function], {name: token}))
        rotated.token = token
        rotated.events = in_run_dir(f"{EVENTS_DIR.name}/{event_folder(rotated.function).as_posix()}")
        return {
            "function": name,
            "secret": secret_name(rotated.function),
            "token": token,
            "abandoned": pending if state in (STAGED, IN_PROGRESS) else None,
            "commands": invoke_commands(rotated.function, rotated.events, in_run_dir(f"env/{name}.json")),
            "sam_command": self.sam_command(rotated),
        }

    def restage_many(self, names: Collection[str], *, abandon: bool = False) -> list[dict[str, Any]]:
        """Each named function restaged (an error for one that cannot be); with no names, every function
        whose rotation finished (the others are reported and left alone)."""
        results: list[dict[str, Any]] = []
        for name in names or list(self.rotated):
            try:
                results.append(self.restage(name, abandon=abandon))
            except RotationUnfinishedError as error:
                results.append(
                    {"function": name, "error": str(error), "explicit": bool(names), "pending": error.pending}
                )
            except LocalEnvError as error:
                results.append({"function": name, "error": str(error), "explicit": True})
        return results

    def status(self) -> list[dict[str, Any]]:
        """Per function: its secret's versions (newest first), their labels and whether each logs in now."""
        report = []
        for rotated in self.rotated.values():
            stages = emulator.version_stages(rotated.arn)
            state, _pending = rotation_state(stages, functools.partial(self._has_value, rotated.arn))
            versions: list[dict[str, Any]] = []
            for version_id in reversed(list(stages)):
                value = self._stored(rotated.arn, version_id)
                versions.append(
                    {
                        "id": version_id,
                        "stages": stages[version_id],
                        "token_of": "events" if version_id == rotated.token else None,
                        "has_value": value is not None,
                        "username": value.get("username") if value else None,
                        "works": rotated.works(value) if value is not None and len(versions) < 4 else None,
                    }
                )
            report.append(
                {
                    "function": rotated.id,
                    "secret": secret_name(rotated.function),
                    "title": rotated.title,
                    "strategy": rotated.function.strategy.value if rotated.function.strategy else None,
                    "state": state,
                    "events": rotated.events,
                    "versions": versions,
                    "logs": [str(path) for path in self.watched_logs],
                }
            )
        return report


# --- running it ---------------------------------------------------------------------------------------


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def run(
    *,
    port: int = DEFAULT_PORT,
    run_dir: Path | None = None,
    functions: Collection[str] = (),
    out: Out = _say,
    invoke_image: str | None = None,
) -> int:
    """Start the local environment, print what to run next, and wait for SIGINT, SIGTERM or SIGHUP."""
    folder = run_dir or Path(tempfile.mkdtemp(prefix="rotation-local-env-"))
    previous = {sig: signal.signal(sig, _interrupt) for sig in STOP_SIGNALS}
    code = 0
    environment: LocalEnvironment | None = None
    try:
        environment = LocalEnvironment(folder, port=port, only=functions, out=out, invoke_image=invoke_image)
        environment.start()
        if not environment.rotated:
            raise LocalEnvError("nothing to rotate: no server started (see above)")
        for line in environment.next_steps():
            out(line)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        out("local-env: stopping")
    except LocalEnvError as error:
        print(f"local-env: {error}", file=sys.stderr, flush=True)
        code = 1
    finally:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        try:
            if environment is not None:
                environment.close()
            if run_dir is None:
                shutil.rmtree(folder, ignore_errors=True)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    out(f"local-env: servers stopped, {folder} removed")
    return code


# --- the client side: restage and status ----------------------------------------------------------


def locate(endpoint: str | None) -> str:
    """The running local-env's endpoint: ``endpoint``, else the one in ``$LOCAL_ENV/local-env.json``, else port 5000."""
    if endpoint:
        return endpoint.rstrip("/")
    run_dir = os.environ.get(RUN_DIR_VARIABLE)
    if run_dir:
        with contextlib.suppress(OSError, ValueError):
            manifest = json.loads((Path(run_dir) / MANIFEST).read_text(encoding="utf-8"))
            return str(manifest["endpoint"])
    return f"http://127.0.0.1:{DEFAULT_PORT}"


def run_token(run_dir: str | None = None) -> str:
    """The running local-env's control token, from its folder (``run_dir``, else ``$LOCAL_ENV``)."""
    folder = run_dir or os.environ.get(RUN_DIR_VARIABLE)
    if not folder:
        raise LocalEnvError(
            f"the control API needs the run's token, kept in its folder: export {RUN_DIR_VARIABLE}=the folder "
            "make local-env printed (or pass it: make local-env-status LOCAL_ENV=...)"
        )
    try:
        return (Path(folder) / TOKEN_FILE).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise LocalEnvError(
            f"cannot read the control token {Path(folder) / TOKEN_FILE} ({error.strerror or error}): is "
            f"{RUN_DIR_VARIABLE} the folder of a running local-env?"
        ) from None


def control(
    endpoint: str, method: str, path: str, payload: Mapping[str, Any] | None = None, *, token: str
) -> dict[str, Any]:
    """One control request to a running local-env (``token``: :func:`run_token`)."""
    data = json.dumps(dict(payload)).encode("utf-8") if payload is not None else None
    request = urllib.request.Request(  # noqa: S310 (an http URL on loopback, given by the user)
        f"{endpoint}{CONTROL_PREFIX}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json", TOKEN_HEADER: token},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read()).get("error", error.reason)
        except ValueError:
            message = error.reason
        raise LocalEnvError(str(message)) from None
    except (urllib.error.URLError, OSError) as error:
        raise LocalEnvError(
            f"no local-env answers at {endpoint} ({getattr(error, 'reason', error)}): start it with make local-env "
            f"in another terminal, or point at it with --endpoint (or export {RUN_DIR_VARIABLE}=its folder)"
        ) from None
    return answer


def _export_line(run_dir: str) -> list[str]:
    """The ``export LOCAL_ENV=...`` line the commands need, unless this shell already has it."""
    if os.environ.get(RUN_DIR_VARIABLE, "").rstrip("/") == run_dir.rstrip("/"):
        return []
    return [f"  export {RUN_DIR_VARIABLE}={run_dir}"]


def restage_command(endpoint: str | None, functions: Collection[str], *, abandon: bool = False, out: Out = _say) -> int:
    answer = control(
        locate(endpoint), "POST", "restage", {"functions": list(functions), "abandon": abandon}, token=run_token()
    )
    results = answer["results"]
    failed = [r for r in results if "error" in r and r.get("explicit")]
    skipped = [r for r in results if "error" in r and not r.get("explicit")]
    done = [r for r in results if "error" not in r]
    for result in failed:
        out(f"local-env: {result['error']}")
    if skipped:
        unfinished = ", ".join(f"{r['function']} (token {r['pending'][:8]})" for r in skipped)
        out(f"local-env: left as they are, their rotation has not finished: {unfinished}")
    if done:
        out("")
        for line in _export_line(answer["run_dir"]):
            out(line)
    for result in done:
        abandoned = f"; gave up the rotation {result['abandoned'][:8]}" if result["abandoned"] else ""
        out(
            f"{result['function']}: AWSPENDING staged with no value on {result['secret']} for the fresh token "
            f"{result['token']}{abandoned}. Its four steps:"
        )
        out("")
        out(f"  {result['sam_command']}")
        out("  # or, without Docker:")
        for command in result["commands"]:
            out(f"  {command}")
        out("")
    return 1 if failed or not done else 0


def _database_kind(function: FunctionSpec) -> str | None:
    """The server kind a database function's sample secret lives on (None: the API-key function, or no kind has
    the function's strategy)."""
    if function.engine is None or function.strategy is None:
        return None
    from rotation_local.targets import database_target

    kind = database_target(function.engine.name).kind_for(function.strategy)
    return None if kind is None else kind.name


def _yes(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


_EXPECTED = {
    Strategy.SINGLE_USER.value: "after a rotation, AWSCURRENT logs in and AWSPREVIOUS (the old password) is refused",
    Strategy.ALTERNATING_USERS.value: "after a rotation, AWSCURRENT logs in as the other user; AWSPREVIOUS still does",
    Strategy.DUAL_PASSWORD.value: "after a rotation, AWSCURRENT and AWSPREVIOUS both log in (the secondary password)",
    None: "after a rotation, the AWSCURRENT and AWSPREVIOUS keys work; older ones are revoked at the next rotation",
}


def status_command(endpoint: str | None, *, as_json: bool = False, out: Out = _say) -> int:
    answer = control(locate(endpoint), "GET", "status", token=run_token())
    if as_json:
        out(json.dumps(answer, indent=2))
        return 0
    for entry in answer["functions"]:
        out(f"{entry['function']}: {entry['secret']} ({entry['title']})")
        out(f"  rotation: {entry['state']}; events of the newest token: {entry['events']}")
        out(f"  expected: {_EXPECTED.get(entry['strategy'], '')}")
        for version in entry["versions"]:
            labels = ",".join(version["stages"]) or "(no label)"
            token = "  (the newest events' token)" if version["token_of"] else ""
            if not version["has_value"]:
                detail = "no value yet"
            elif version["username"]:
                detail = f"{version['username']} logs in: {_yes(version['works'])}"
            else:
                detail = f"key accepted: {_yes(version['works'])}"
            out(f"    {version['id'][:8]}  {labels:<24} {detail}{token}")
        out("")
    return 0
