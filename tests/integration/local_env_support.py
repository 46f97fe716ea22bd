"""Driving ``python -m rotation_local local-env`` the way a user does: in its own process, with each step
run by the Docker-free runner in a process of its own and restage run from another terminal.

Everything reaches the environment from outside: the emulator and the control API over HTTP, the
databases over TLS with the run's CA. The targets' ``logs_in`` needs nothing of a server but its port
(:class:`ServerAt`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from helpers import REPO_ROOT
from rotation_local import emulator, local_env
from rotation_local.events import STEPS

START_TIMEOUT = 180
# What a clean shell has none of: nothing of the test process's own configuration reaches the children.
_DROPPED = ("AWS_", "SECRETS_MANAGER_ENDPOINT", "ROTATION_STRATEGY", "DB_CA_BUNDLE", "API_", "REVOKE_POLICY",
            "TEST_QUERY", "LOCAL_ENV", "PYTHON")  # fmt: skip


def shell_env(**extra: str) -> dict[str, str]:
    """A user's shell in the repository: PYTHONPATH as the Makefile exports it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED)}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "layers" / "rotation_core"), str(REPO_ROOT / "tools")])
    env.update(extra)
    return env


@dataclass(frozen=True)
class ServerAt:
    """A database server as ``DatabaseTarget.logs_in`` sees it: 127.0.0.1 and a port."""

    port: int


@dataclass(frozen=True)
class Step:
    step: str
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        last = self.output.strip().splitlines()[-1] if self.output.strip() else ""
        return self.returncode == 0 and last == json.dumps({"status": "ok"})

    def messages(self) -> list[str]:
        """The function's log messages (its JSON log lines' ``message``)."""
        found = []
        for line in self.output.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "message" in record:
                found.append(str(record["message"]))
        return found


class RunningLocalEnv:
    """A ``local-env`` process started by :func:`start`, and what a second terminal can do with it."""

    def __init__(self, process: subprocess.Popen[bytes], run_dir: Path, output: Path) -> None:
        self.process = process
        self.run_dir = run_dir
        self.output = output
        self.manifest: dict[str, Any] = json.loads((run_dir / local_env.MANIFEST).read_text(encoding="utf-8"))
        self.outputs: list[str] = []  # every line the runner and the CLI printed, for the leak guard

    @property
    def endpoint(self) -> str:
        return str(self.manifest["endpoint"])

    @property
    def token(self) -> str:
        """The control API's token, from the run folder (as the CLI reads it)."""
        return local_env.run_token(str(self.run_dir))

    @property
    def ca_bundle(self) -> Path:
        return Path(self.manifest["ca_bundle"])

    @property
    def functions(self) -> dict[str, dict[str, Any]]:
        functions: dict[str, dict[str, Any]] = self.manifest["functions"]
        return functions

    def logs(self) -> list[Path]:
        return [Path(path) for path in self.manifest["logs"]]

    def client(self) -> Any:
        return boto3.client(
            "secretsmanager", endpoint_url=self.endpoint, region_name=emulator.DEFAULT_REGION,
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip

    def invoke(self, function_id: str, step: str, events: Path) -> Step:
        """``make invoke FUNCTION=functions/<folder> EVENT=<events>/<step>.json ENV_VARS=...``, in its own process."""
        entry = self.functions[function_id]
        completed = subprocess.run(
            [sys.executable, "-m", "rotation_local", "invoke", "--function", f"functions/{entry['folder']}",
             "--event", str(events / f"{step}.json"), "--env-vars", entry["env_file"]],
            cwd=REPO_ROOT, env=shell_env(), capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        self.outputs += [completed.stdout, completed.stderr]
        return Step(step, completed.returncode, completed.stdout + completed.stderr)

    def rotate(self, function_id: str, events: Path) -> list[Step]:
        """The four steps in order, stopping at the first that fails (as a person would)."""
        done: list[Step] = []
        for step in STEPS:
            done.append(self.invoke(function_id, step, events))
            if not done[-1].ok:
                break
        return done

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``python -m rotation_local local-env <args>`` from another terminal with ``$LOCAL_ENV`` exported."""
        completed = subprocess.run(
            [sys.executable, "-m", "rotation_local", "local-env", *args],
            cwd=REPO_ROOT, env=shell_env(LOCAL_ENV=str(self.run_dir)), capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        self.outputs += [completed.stdout, completed.stderr]
        return completed

    def status(self) -> dict[str, dict[str, Any]]:
        """The control API's status, by function."""
        answer = local_env.control(self.endpoint, "GET", "status", token=self.token)
        self.outputs.append(json.dumps(answer))
        return {entry["function"]: entry for entry in answer["functions"]}

    def stages(self, secret: str) -> dict[str, list[str]]:
        """Every version of ``secret`` (labelled or not) and its labels, over the Secrets Manager API."""
        answer = self.client().list_secret_version_ids(SecretId=secret, IncludeDeprecated=True)
        return {v["VersionId"]: sorted(v.get("VersionStages", [])) for v in answer["Versions"]}

    def values(self, secret: str) -> dict[str, dict[str, Any]]:
        """Every stored value of ``secret``, by version (placeholders have none)."""
        client = self.client()
        found = {}
        for version_id in self.stages(secret):
            try:
                text = client.get_secret_value(SecretId=secret, VersionId=version_id)["SecretString"]
            except client.exceptions.ResourceNotFoundException:
                continue
            found[version_id] = json.loads(text)
        return found

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


def start(run_dir: Path, output: Path, *functions: str, port: int = 0) -> RunningLocalEnv:
    """``python -m rotation_local local-env --port 0 --run-dir <run_dir>``, once it is ready."""
    arguments = ["--port", str(port), "--run-dir", str(run_dir)]
    for name in functions:
        arguments += ["--function-name", name]
    with open(output, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "rotation_local", "local-env", *arguments],
            cwd=REPO_ROOT, env=shell_env(), stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT
    while not (run_dir / local_env.MANIFEST).is_file():
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
                process.wait()
            raise AssertionError(f"local-env did not start: {output.read_text(encoding='utf-8', errors='replace')}")
        time.sleep(0.2)
    return RunningLocalEnv(process, run_dir, output)


def refuses_connections(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def ports_of(env: RunningLocalEnv) -> list[int]:
    """The emulator's port and every server's the secrets point at (databases, the fake API)."""
    from urllib.parse import urlsplit

    ports = {int(urlsplit(env.endpoint).port or 0)}
    for entry in env.functions.values():
        for name in (entry["secret"], entry["other_secret"]):
            if not name:
                continue
            for value in env.values(name).values():
                if "port" in value:
                    ports.add(int(value["port"]))
                if "base_url" in value:
                    ports.add(int(urlsplit(str(value["base_url"])).port or 0))
    return sorted(ports)
