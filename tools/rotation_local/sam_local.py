"""``make sam-local-invoke``: every function's four sample events through the real ``sam local invoke``.

What it does, in order (docs/local-runner.md):

1. a Docker engine: the one that answers, else ``dockerd`` started here (rotation_local.docker_engine);
2. the Lambda base image: AWS's when it is here or a registry answers, else the offline stand-in
   (rotation_local.lambda_image);
3. ``make local-env`` in a process of its own, on free loopback ports, with its Docker socket that gives
   the containers this machine's network (rotation_local.docker_proxy); ``make sam-build`` ran before;
4. for each function, the four steps of its committed events, in order, each one
   ``sam local invoke`` exactly as local-env prints it (:func:`rotation_local.local_env.sam_invoke_argv`);
   a step succeeded when the invocation's *result* says so (:func:`invocation_outcome`): SAM exits 0
   when the handler raises;
5. the rotation checked through local-env's control API (:func:`rotation_problems`): AWSCURRENT moved to
   the events' version, which logs in, AWSPREVIOUS on the version that was current, refused for a
   single-user password, still working for the alternating users and API keys;
6. one line per function, and exit 1 naming every function that failed.

Everything it started (local-env and its servers, containers, dockerd) is stopped by PID or id at the
end, also on failure, Ctrl-C, SIGTERM or SIGHUP. Each invocation's output is kept in a folder that is
removed after a success and named after a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rotation_core.registry import FunctionSpec, rotation_functions
from rotation_core.settings import Strategy
from rotation_local import local_env
from rotation_local.docker_engine import Engine, EngineError, ensure_engine
from rotation_local.docker_proxy import LABEL
from rotation_local.events import STEPS, function_id
from rotation_local.invoke import REPO_ROOT
from rotation_local.lambda_image import ImageError, choose

INVOKE_TIMEOUT = 300.0
LOCAL_ENV_START_TIMEOUT = 300.0
# Variables of the user's environment that must not reach sam (and through it the container): a real
# session or profile would pair with the emulator's keys; DOCKER_HOST is set to local-env's socket.
_DROPPED = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "DOCKER_")

Out = Callable[[str], None]


class SamLocalError(Exception):
    """Something stopped the run before the functions were tried (the message says what to do)."""


def _say(line: str) -> None:
    print(line, flush=True)


# --- deciding from what sam printed ----------------------------------------------------------------


def invocation_outcome(returncode: int, stdout: str) -> str | None:
    """Why one ``sam local invoke`` failed, or None when the function returned normally.

    ``stdout`` is the invocation's result, as SAM prints it: what the handler returned (``null`` for a
    rotation step), or the error object the runtime reports when it raised (``errorType``,
    ``errorMessage``). SAM exits 0 in both cases, so the exit code alone proves nothing.
    """
    if returncode != 0:
        return f"sam local invoke exited with {returncode}"
    text = stdout.strip()
    if not text:
        return "sam local invoke printed no result (the function's container did not answer)"
    try:
        result = json.loads(text)
    except ValueError:
        try:
            result = json.loads(text.splitlines()[-1])
        except ValueError:
            return f"the invocation's result is not JSON: {text[-200:]!r}"
    if isinstance(result, dict) and ("errorType" in result or "errorMessage" in result):
        return f"{result.get('errorType', 'error')}: {result.get('errorMessage', '')}".strip()
    return None


# --- checking the rotation ---------------------------------------------------------------------------


def _labelled(entry: Mapping[str, Any], label: str) -> Mapping[str, Any] | None:
    return next((v for v in entry.get("versions", []) if label in v.get("stages", [])), None)


def rotation_problems(before: Mapping[str, Any], after: Mapping[str, Any], token: str) -> list[str]:
    """What is wrong with a rotation, from local-env's status of the function before and after it.

    ``token``: the events' version. AWSCURRENT must be on it, hold a value that logs in (or a key the
    API accepts), AWSPENDING nowhere else, and AWSPREVIOUS on the version that was current before;
    the previous password refused for a single user, the previous login or key still working for the
    alternating users and API keys (revoked one rotation later).
    """
    problems = []
    was_current = _labelled(before, "AWSCURRENT")
    current = _labelled(after, "AWSCURRENT")
    previous = _labelled(after, "AWSPREVIOUS")
    if current is None or current.get("id") != token:
        problems.append(f"AWSCURRENT is not on the events' version {token[:8]}")
    elif not current.get("has_value"):
        problems.append("the new AWSCURRENT version holds no value")
    elif current.get("works") is not True:
        problems.append("the new AWSCURRENT credentials do not work")
    pending = [v["id"] for v in after.get("versions", []) if "AWSPENDING" in v.get("stages", [])]
    if any(version != token for version in pending):
        problems.append("AWSPENDING is left on a version that is not current")
    if was_current is None or previous is None or previous.get("id") != was_current.get("id"):
        problems.append("AWSPREVIOUS is not on the version that was AWSCURRENT before the rotation")
    elif after.get("strategy") == Strategy.SINGLE_USER.value:
        if previous.get("works") is not False:
            problems.append("the previous password still logs in (single user: it must be refused)")
    elif previous.get("works") is not True:
        problems.append("the previous credentials stopped working (they must last until the next rotation)")
    return problems


def _result_words(after: Mapping[str, Any]) -> str:
    current = _labelled(after, "AWSCURRENT") or {}
    previous = _labelled(after, "AWSPREVIOUS") or {}
    who = f" ({current['username']})" if current.get("username") else ""
    old = "refused" if previous.get("works") is False else "still works"
    return f"AWSCURRENT moved to {str(current.get('id', ''))[:8]}{who}, which works; AWSPREVIOUS {old}"


# --- one run -----------------------------------------------------------------------------------------


@dataclass
class FunctionResult:
    name: str
    failure: str | None = None
    seconds: list[float] = field(default_factory=list)
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.failure is None

    def line(self) -> str:
        timing = f"{len(self.seconds)} step{'s' * (len(self.seconds) != 1)} in {sum(self.seconds):.1f} s"
        if self.ok:
            return f"{self.name:<34} ok      {timing} ({' '.join(f'{s:.1f}' for s in self.seconds)}); {self.detail}"
        return f"{self.name:<34} FAILED  {timing}: {self.failure}"


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _stop_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP end the run as Ctrl-C does: through the clean-up."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _LocalEnvProcess:
    """``python -m rotation_local local-env`` in a process of its own, stopped by its PID."""

    def __init__(self, run_dir: Path, log: Path, engine: Engine, functions: Collection[str], image: str | None) -> None:
        arguments = ["--port", "0", "--run-dir", str(run_dir)]
        for name in functions:
            arguments += ["--function-name", name]
        if image:
            arguments += ["--invoke-image", image]
        env = {key: value for key, value in os.environ.items() if not key.startswith(("DOCKER_", "LOCAL_ENV"))}
        env["DOCKER_HOST"] = engine.docker_host  # the engine local-env's Docker socket forwards to
        self.run_dir = run_dir
        self.log = log
        with open(log, "wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "rotation_local", "local-env", *arguments],
                cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def wait_ready(self) -> dict[str, Any]:
        manifest = self.run_dir / local_env.MANIFEST
        deadline = time.monotonic() + LOCAL_ENV_START_TIMEOUT
        while not manifest.is_file():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(encoding="utf-8", errors="replace")[-2000:]
                raise SamLocalError(f"local-env did not start (its output, {self.log}):\n{tail}")
            time.sleep(0.2)
        loaded: dict[str, Any] = json.loads(manifest.read_text(encoding="utf-8"))
        return loaded

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # local-env stops its servers by PID and removes its folder
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class SamLocalRun:
    """One run of the target over ``functions`` (all of the template's when empty)."""

    def __init__(
        self,
        *,
        functions: Collection[str] = (),
        image_mode: str = "auto",
        env_vars: Mapping[str, Mapping[str, str]] | None = None,
        out: Out = _say,
    ) -> None:
        known = {function_id(f): f for f in rotation_functions()}
        unknown = sorted(set(functions) - set(known))
        if unknown:
            raise SamLocalError(f"no such function: {', '.join(unknown)}; the template's are {', '.join(known)}")
        self.specs: dict[str, FunctionSpec] = {
            name: spec for name, spec in known.items() if not functions or name in functions
        }
        self.image_mode = image_mode
        self.env_vars = {name: dict(values) for name, values in (env_vars or {}).items()}
        self.out = out
        self.workdir = Path(tempfile.mkdtemp(prefix="rotation-sam-local-"))
        self.results: list[FunctionResult] = []

    def say(self, line: str) -> None:
        self.out(f"sam-local-invoke: {line}")

    def run(self) -> int:
        started = time.monotonic()
        code = 1
        with _stop_signals(), contextlib.ExitStack() as stack:
            try:
                code = self._run(stack)
            except KeyboardInterrupt:
                self.say("interrupted; stopping what this run started")
            except (SamLocalError, EngineError, ImageError, local_env.LocalEnvError) as error:
                self.say(str(error))
            except OSError as error:
                self.say(f"{type(error).__name__}: {error}")
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
                try:
                    stack.close()
                finally:
                    signal.signal(signal.SIGINT, signal.default_int_handler)
        if code == 0:
            shutil.rmtree(self.workdir, ignore_errors=True)
            seconds = time.monotonic() - started
            count = len(self.results)
            self.say(f"{count} function{'s' * (count != 1)} rotated through sam local invoke in {seconds:.0f} s")
        else:
            failed = [r.name for r in self.results if not r.ok]
            named = f"FAILED: {', '.join(failed)}" if failed else "FAILED"
            if (self.workdir / "logs").is_dir():
                self.say(f"{named}; each invocation's output is in {self.workdir / 'logs'}")
            elif (self.workdir / "local-env.log").is_file():
                self.say(f"{named}; local-env's output is in {self.workdir / 'local-env.log'}")
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)
                self.say(f"{named} (see above)")
        return code

    def _run(self, stack: contextlib.ExitStack) -> int:
        sam = REPO_ROOT / local_env.SAM_EXECUTABLE
        if not sam.is_file() or not (local_env.SAM_BUILD_DIR / "template.yaml").is_file():
            raise SamLocalError(f"no SAM CLI or no build: run make sam-build first ({sam}, {local_env.SAM_BUILD_DIR})")
        architecture = local_env.build_architecture(local_env.SAM_BUILD_DIR)
        self.say(f"the build in {local_env.SAM_BUILD_DIR} is for {architecture}")
        engine = ensure_engine(self.say)
        stack.callback(engine.stop)
        image, skip_pull = choose(engine, architecture, self.image_mode, self.say)
        environment = _LocalEnvProcess(
            self.workdir / "run", self.workdir / "local-env.log", engine, list(self.specs), image
        )
        stack.callback(environment.stop)
        stack.callback(self._remove_containers, engine, f"{LABEL}={environment.run_dir}")
        manifest = environment.wait_ready()
        self.say(f"local-env is up (PID {environment.process.pid}) at {manifest['endpoint']}; log: {environment.log}")
        token = local_env.run_token(str(environment.run_dir))
        sam_env = self._sam_env_file(Path(manifest["sam_env"]))
        logs = self.workdir / "logs"
        logs.mkdir()
        for name in self.specs:
            if name not in manifest["functions"]:
                self.results.append(FunctionResult(name, "local-env could not start its server (see its output)"))
                self.out(self.results[-1].line())
                continue
            result = self._rotate(
                name, manifest, token, sam_env, logs,
                argv=lambda spec, event: local_env.sam_invoke_argv(
                    spec, event, str(sam_env), architecture=architecture, invoke_image=image, skip_pull=skip_pull,
                    sam=str(sam),
                ),
            )  # fmt: skip
            self.results.append(result)
            self.out(result.line())
        return 0 if self.results and all(r.ok for r in self.results) else 1

    def _sam_env_file(self, path: Path) -> Path:
        """local-env's ``sam-env.json``, or a copy with this run's extra variables (``--env-var``)."""
        if not self.env_vars:
            return path
        data = json.loads(path.read_text(encoding="utf-8"))
        for name, values in self.env_vars.items():
            data.setdefault(name, {}).update(values)
        copy = self.workdir / "sam-env.json"
        copy.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        return copy

    def _status(self, endpoint: str, token: str, name: str) -> dict[str, Any]:
        answer = local_env.control(endpoint, "GET", "status", token=token)
        entry: dict[str, Any] = next(e for e in answer["functions"] if e["function"] == name)
        return entry

    def _rotate(
        self,
        name: str,
        manifest: Mapping[str, Any],
        token: str,
        sam_env: Path,
        logs: Path,
        *,
        argv: Callable[[FunctionSpec, str], list[str]],
    ) -> FunctionResult:
        spec = self.specs[name]
        entry = manifest["functions"][name]
        result = FunctionResult(name)
        before = self._status(manifest["endpoint"], token, name)
        events_token = next((v["id"] for v in before["versions"] if v.get("token_of")), "")
        env = {key: value for key, value in os.environ.items() if not key.startswith(_DROPPED)}
        env.update(local_env.sam_invoke_env(str(manifest["docker_host"])))
        for step in STEPS:
            command = argv(spec, f"{entry['events']}/{step}.json")
            t0 = time.monotonic()
            try:
                completed = subprocess.run(
                    command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=INVOKE_TIMEOUT,
                    check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                result.seconds.append(time.monotonic() - t0)
                result.failure = f"{step}: sam local invoke did not finish in {INVOKE_TIMEOUT:.0f} s"
                return result
            result.seconds.append(time.monotonic() - t0)
            (logs / f"{name}-{step}.result.json").write_text(completed.stdout, encoding="utf-8")
            (logs / f"{name}-{step}.log").write_text(completed.stderr, encoding="utf-8")
            why = invocation_outcome(completed.returncode, completed.stdout)
            if why is not None:
                result.failure = f"{step}: {why}"
                return result
        after = self._status(manifest["endpoint"], token, name)
        problems = rotation_problems(before, after, events_token)
        if problems:
            result.failure = "the four steps returned, but " + "; ".join(problems)
        else:
            result.detail = _result_words(after)
        return result

    def _remove_containers(self, engine: Engine, label: str) -> None:
        with contextlib.suppress(OSError):
            removed = engine.remove_containers(label)
            if removed:
                self.say(f"removed {removed} container{'s' * (removed != 1)} an invocation left behind")


def parse_env_vars(items: Collection[str]) -> dict[str, dict[str, str]]:
    """``FUNCTION:NAME=VALUE`` items as {function: {name: value}}."""
    parsed: dict[str, dict[str, str]] = {}
    for item in items:
        function, sep, assignment = item.partition(":")
        name, eq, value = assignment.partition("=")
        if not sep or not eq or not function or not name:
            raise SamLocalError(f"--env-var {item!r}: write FUNCTION:NAME=VALUE, e.g. ApiKeyFunction:API_TIMEOUT=5")
        parsed.setdefault(function, {})[name] = value
    return parsed


def run(
    *,
    functions: Collection[str] = (),
    image_mode: str = "auto",
    env_vars: Collection[str] = (),
    out: Out = _say,
) -> int:
    try:
        target = SamLocalRun(functions=functions, image_mode=image_mode, env_vars=parse_env_vars(env_vars), out=out)
    except SamLocalError as error:
        out(f"sam-local-invoke: {error}")
        return 2
    return target.run()
