"""`make local-env` as a newcomer uses it: start it, run a function's four sample events with the
Docker-free runner (each step in its own process), check the result, restage, rotate again, Ctrl-C."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import REPO_ROOT, LeakGuard, sensitive_values
from integration import local_env_support as support
from rotation_core.registry import FunctionSpec, rotation_functions
from rotation_core.settings import Strategy
from rotation_local import emulator, local_env
from rotation_local.events import STEPS, event_folder, function_id, sample_token
from rotation_local.local_env import invoke_commands
from rotation_local.targets import database_target

FUNCTIONS = {function_id(f): f for f in rotation_functions()}
SINGLE_USER = next(name for name, f in FUNCTIONS.items() if f.strategy is Strategy.SINGLE_USER)
API_KEY = next(name for name, f in FUNCTIONS.items() if f.engine is None)
CURRENT, PENDING, PREVIOUS = "AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"


@pytest.fixture(scope="module")
def running_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[support.RunningLocalEnv]:
    """One local environment for the module, started as `make local-env` would, stopped with Ctrl-C (SIGINT)."""
    folder = tmp_path_factory.mktemp("local-env")
    env = support.start(folder / "run", folder / "output.log")
    try:
        yield env
    finally:
        ports = support.ports_of(env)
        returncode = env.stop(signal.SIGINT)
        assert returncode == 0, env.output.read_text(encoding="utf-8")
        assert not env.run_dir.exists()
        assert [port for port in ports if not support.refuses_connections(port)] == []


@pytest.fixture
def guarded(running_env: support.RunningLocalEnv, leak_guard: LeakGuard) -> Iterator[support.RunningLocalEnv]:
    """The environment, with every value it holds, its output and its servers' logs handed to the leak guard."""
    leak_guard.watch_file(running_env.output)
    for path in running_env.logs():
        leak_guard.watch_file(path)
    yield running_env
    for entry in running_env.functions.values():
        for name in (entry["secret"], entry["other_secret"]):
            if name:
                for value in running_env.values(name).values():
                    leak_guard.add(*sensitive_values(json.dumps(value)))
    for text in running_env.outputs:
        leak_guard.watch_text(text)
    running_env.outputs.clear()


def _failures(steps: list[support.Step]) -> str:
    return "\n".join(f"{s.step}: {s.output[-2000:]}" for s in steps if not s.ok)


def _versions(stages: dict[str, list[str]], label: str) -> list[str]:
    return [version for version, labels in stages.items() if label in labels]


def _logs_in(env: support.RunningLocalEnv, function: FunctionSpec, value: dict[str, Any]) -> bool:
    """Through the engine's target: the value's user and password over TLS, verified with the run's CA."""
    assert function.engine is not None
    return database_target(function.engine.name).logs_in(support.ServerAt(int(value["port"])), value, env.ca_bundle)


def _check_credentials(env: support.RunningLocalEnv, name: str, new: str, old: str, older: str | None = None) -> None:
    """What the function's strategy promises after a rotation, checked on the servers themselves."""
    function = FUNCTIONS[name]
    values = env.values(function_secret(env, name))
    works = {v["id"]: v["works"] for v in env.status()[name]["versions"]}
    assert works[new] is True
    if function.engine is None:  # the fake provider's verdict (it holds the keys)
        assert works[old] is True  # kept until the next rotation (REVOKE_POLICY previous_at_next_rotation)
        if older is not None:
            assert works[older] is False  # revoked by this rotation's createSecret
        return
    assert _logs_in(env, function, values[new])
    assert works[old] is _logs_in(env, function, values[old])
    if function.strategy is Strategy.SINGLE_USER:
        assert values[new]["username"] == values[old]["username"]
        assert not _logs_in(env, function, values[old])  # the old password is refused
    elif function.strategy is Strategy.DUAL_PASSWORD:
        assert values[new]["username"] == values[old]["username"]
        assert _logs_in(env, function, values[old])  # the old password stays valid as the secondary one
    else:
        assert values[new]["username"] != values[old]["username"]
        assert _logs_in(env, function, values[old])  # the previous user keeps working until the next rotation
    if older is not None:
        assert not _logs_in(env, function, values[older])


def function_secret(env: support.RunningLocalEnv, name: str) -> str:
    return str(env.functions[name]["secret"])


def test_local_env_start_prints_run_folder_and_four_commands_per_function(running_env: support.RunningLocalEnv) -> None:
    text = running_env.output.read_text(encoding="utf-8")

    assert f"export LOCAL_ENV={running_env.run_dir}" in text
    assert sorted(running_env.functions) == sorted(FUNCTIONS)
    for name, function in FUNCTIONS.items():
        events = f"events/{event_folder(function).as_posix()}"
        for command in invoke_commands(function, events, f"$LOCAL_ENV/env/{name}.json"):
            assert command in text
        assert all((REPO_ROOT / events / f"{step}.json").is_file() for step in STEPS)
        assert "DOCKER_HOST=unix://$LOCAL_ENV/docker.sock " in text
        assert f"sam local invoke {name} --region us-east-1 --parameter-overrides Architecture=" in text


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_local_env_sample_preflight_event_fails_only_on_the_staged_rotation(
    name: str, guarded: support.RunningLocalEnv
) -> None:
    """The preflight event of every function, before its rotation: the placeholder version local-env staged is
    the unfinished rotation it reports; every other check passes (the context names the attached function)."""
    step = guarded.invoke(name, "preflight", REPO_ROOT / "events" / event_folder(FUNCTIONS[name]))

    assert step.ok, step.output[-2000:]
    report = json.loads(next(line for line in step.output.splitlines() if line.startswith('{"ok"')))
    assert [c["name"] for c in report["checks"] if c["status"] == "failed"] == ["no_pending_rotation"]
    assert sample_token(FUNCTIONS[name]) in next(c["fix"] for c in report["checks"] if c["status"] == "failed")
    others = [c for c in report["checks"] if c["name"] != "no_pending_rotation"]
    # Dual passwords: with the user's own login the master's checks do not apply, with a master (a self-managed
    # Valkey server) the user's own change does not; either says so.
    reasons = ("names no master", "names a master")
    not_applicable = [c for c in others if c["status"] == "skipped" and any(r in c["fix"] for r in reasons)]
    assert {c["status"] for c in others if c not in not_applicable} == {"ok"}
    assert bool(not_applicable) is (FUNCTIONS[name].strategy is Strategy.DUAL_PASSWORD)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_local_env_sample_events_then_restaged_events_rotate_for_real(
    name: str, guarded: support.RunningLocalEnv
) -> None:
    env, function = guarded, FUNCTIONS[name]
    secret = function_secret(env, name)
    token = sample_token(function)
    before = env.stages(secret)
    assert before[token] == [PENDING]  # staged with no value, as RotateSecret does
    (original,) = _versions(before, CURRENT)

    first = env.rotate(name, REPO_ROOT / "events" / event_folder(function))

    assert [s.step for s in first if s.ok] == list(STEPS), _failures(first)
    assert all("step complete" in s.messages() for s in first)
    after = env.stages(secret)
    assert after[token] == [CURRENT, PENDING]  # finishSecret leaves AWSPENDING for the service to remove
    assert after[original] == [PREVIOUS]
    _check_credentials(env, name, new=token, old=original)

    restaged = env.cli("restage", "--function-name", name)

    assert restaged.returncode == 0, restaged.stderr + restaged.stdout
    staged = env.stages(secret)
    (fresh,) = _versions(staged, PENDING)
    assert fresh not in before
    assert staged[fresh] == [PENDING]
    assert staged[token] == [CURRENT]  # restage removed AWSPENDING as the service does after finishSecret
    assert fresh in restaged.stdout
    events = env.run_dir / "events" / event_folder(function)
    for step in STEPS:
        event = json.loads((events / f"{step}.json").read_text(encoding="utf-8"))
        assert event == {"Step": step, "SecretId": secret, "ClientRequestToken": fresh}
        assert f"EVENT=$LOCAL_ENV/events/{event_folder(function).as_posix()}/{step}.json" in restaged.stdout

    second = env.rotate(name, events)

    assert [s.step for s in second if s.ok] == list(STEPS), _failures(second)
    final = env.stages(secret)
    assert final[fresh] == [CURRENT, PENDING]
    assert final[token] == [PREVIOUS]
    assert final.get(original, []) == []
    _check_credentials(env, name, new=fresh, old=token, older=original)
    if function.strategy is Strategy.ALTERNATING_USERS:
        values = env.values(secret)
        assert values[fresh]["username"] == values[original]["username"]  # back to the first user


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_local_env_preflight_after_the_rotations_finished_passes(name: str, guarded: support.RunningLocalEnv) -> None:
    """After the rotations above: AWSPENDING is on the current version only, which is no unfinished rotation."""
    step = guarded.invoke(name, "preflight", REPO_ROOT / "events" / event_folder(FUNCTIONS[name]))

    assert step.ok, step.output[-2000:]
    report = json.loads(next(line for line in step.output.splitlines() if line.startswith('{"ok"')))
    assert report["ok"] is True, [c for c in report["checks"] if c["status"] != "ok"]


def test_local_env_restage_unfinished_rotation_refuses_until_abandoned(guarded: support.RunningLocalEnv) -> None:
    env, function = guarded, FUNCTIONS[SINGLE_USER]
    secret = function_secret(env, SINGLE_USER)
    assert env.cli("restage", "--function-name", SINGLE_USER, "--abandon").returncode == 0
    (token,) = _versions(env.stages(secret), PENDING)
    events = env.run_dir / "events" / event_folder(function)
    assert env.invoke(SINGLE_USER, "createSecret", events).ok
    stages = env.stages(secret)

    refused = env.cli("restage", "--function-name", SINGLE_USER)

    assert refused.returncode == 1
    assert "not finished (createSecret stored its value)" in refused.stderr + refused.stdout
    assert env.stages(secret) == stages

    abandoned = env.cli("restage", "--function-name", SINGLE_USER, "--abandon")

    assert abandoned.returncode == 0, abandoned.stderr
    assert f"gave up the rotation {token[:8]}" in abandoned.stdout
    after = env.stages(secret)
    assert after[token] == []
    (fresh,) = _versions(after, PENDING)
    steps = env.rotate(SINGLE_USER, events)
    assert [s.step for s in steps if s.ok] == list(STEPS), _failures(steps)
    (current,) = _versions(env.stages(secret), CURRENT)
    assert current == fresh


def test_local_env_status_cli_names_labels_and_logins_without_values(guarded: support.RunningLocalEnv) -> None:
    shown = guarded.cli("status")

    assert shown.returncode == 0, shown.stderr
    for name, entry in guarded.functions.items():
        assert f"{name}: {entry['secret']}" in shown.stdout
    assert "logs in: yes" in shown.stdout
    assert "key accepted: yes" in shown.stdout


def test_local_env_sigterm_stops_every_server_and_removes_run_folder(tmp_path: Path, leak_guard: LeakGuard) -> None:
    env = support.start(tmp_path / "run", tmp_path / "output.log", SINGLE_USER, API_KEY)
    leak_guard.watch_file(env.output)
    try:
        assert sorted(env.functions) == sorted([SINGLE_USER, API_KEY])
        ports = support.ports_of(env)
        for entry in env.functions.values():
            for name in (entry["secret"], entry["other_secret"]):
                for value in env.values(name).values() if name else []:
                    leak_guard.add(*sensitive_values(json.dumps(value)))
    finally:
        returncode = env.stop(signal.SIGTERM)

    assert returncode == 0
    assert not env.run_dir.exists()
    assert len(ports) == 3  # the emulator, the database, the fake API
    assert [port for port in ports if not support.refuses_connections(port)] == []
    assert "servers stopped" in env.output.read_text(encoding="utf-8")


def test_local_env_port_in_use_exits_with_advice_and_leaves_no_folder(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        completed = subprocess.run(
            [sys.executable, "-m", "rotation_local", "local-env", "--port", str(port), "--run-dir",
             str(tmp_path / "run")],
            cwd=REPO_ROOT, env=support.shell_env(), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    assert completed.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in completed.stderr
    assert "PORT=0" in completed.stderr
    assert not (tmp_path / "run").exists()


def _request(
    endpoint: str, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request with exactly these headers (Host included when given), as a browser might send it."""
    from urllib.parse import urlsplit

    where = urlsplit(endpoint)
    connection = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host="Host" in headers, skip_accept_encoding=True)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


PAGE = "https://attacker.example"
LIST_SECRETS = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.ListSecrets"}


@pytest.mark.parametrize("path", ["/", "/_rotation_local/status", "/_rotation_local/restage"])
def test_local_env_cross_origin_preflight_gets_no_cors_grant(running_env: support.RunningLocalEnv, path: str) -> None:
    status, headers, _ = _request(
        running_env.endpoint, "OPTIONS", path,
        {"Origin": PAGE, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-amz-target"},
    )  # fmt: skip

    assert status == 403
    assert not [name for name in headers if name.startswith("access-control-")]


def test_local_env_emulator_refuses_a_web_page_reading_secrets(running_env: support.RunningLocalEnv) -> None:
    status, headers, body = _request(running_env.endpoint, "POST", "/", {**LIST_SECRETS, "Origin": PAGE}, b"{}")

    assert status == 403
    assert "access-control-allow-origin" not in headers
    assert b"SecretList" not in body
    # the same call without a page's Origin (an SDK's) is answered
    status, _, body = _request(running_env.endpoint, "POST", "/", {**LIST_SECRETS, "Authorization": _SIGV4}, b"{}")
    assert status == 200
    assert b"SecretList" in body


# A Secrets Manager request's credential scope: what moto reads to pick the service (not a valid signature).
_SIGV4 = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/secretsmanager/aws4_request, Signature=0"


def test_local_env_dns_rebinding_host_is_refused(running_env: support.RunningLocalEnv) -> None:
    port = running_env.endpoint.rsplit(":", 1)[1]
    for path, extra in (("/", LIST_SECRETS), ("/_rotation_local/status", {})):
        headers = {"Host": f"attacker.example:{port}", local_env.TOKEN_HEADER: running_env.token, **extra}

        status, _, body = _request(running_env.endpoint, "POST" if path == "/" else "GET", path, headers, b"{}")

        assert status == 403, body
        assert b"Host header" in body


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Content-Type": "text/plain"}, 415),  # a "simple" cross-site request: no preflight
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({"Content-Type": "application/json", "Origin": PAGE}, 403),
        ({"Content-Type": "application/json"}, 403),  # no token
    ],
)
def test_local_env_control_refuses_requests_a_web_page_can_make(
    guarded: support.RunningLocalEnv, headers: dict[str, str], expected: int
) -> None:
    with_token = {**headers}
    if expected != 403 or "Origin" in headers:
        with_token[local_env.TOKEN_HEADER] = guarded.token
    stages = guarded.stages(function_secret(guarded, API_KEY))
    payload = json.dumps({"functions": [API_KEY], "abandon": True}).encode()

    status, headers_back, _ = _request(guarded.endpoint, "POST", "/_rotation_local/restage", with_token, payload)

    assert status == expected
    assert "access-control-allow-origin" not in headers_back
    assert guarded.stages(function_secret(guarded, API_KEY)) == stages  # nothing restaged


def test_local_env_run_folder_token_and_docker_socket_are_private(running_env: support.RunningLocalEnv) -> None:
    token_file = running_env.run_dir / local_env.TOKEN_FILE
    docker_socket = running_env.run_dir / local_env.DOCKER_SOCKET

    assert token_file.stat().st_mode & 0o777 == 0o600
    assert len(running_env.token) >= 40
    assert stat.S_ISSOCK(docker_socket.stat().st_mode)
    assert docker_socket.stat().st_mode & 0o777 == 0o600
    assert running_env.manifest["docker_host"] == f"unix://{docker_socket}"


def test_emulator_server_of_the_tests_gives_no_cors_grant() -> None:
    server = emulator.EmulatorServer().start()
    try:
        status, headers, _ = _request(
            server.endpoint_url, "OPTIONS", "/", {"Origin": PAGE, "Access-Control-Request-Method": "POST"}
        )
        _, posted, _ = _request(server.endpoint_url, "POST", "/", {**LIST_SECRETS, "Origin": PAGE}, b"{}")
    finally:
        server.stop()

    assert "access-control-allow-origin" not in headers, status
    assert "access-control-allow-origin" not in posted
