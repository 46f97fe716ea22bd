"""`make local-env`'s own logic, on moto in-process: sample names and tokens, restage, status, the client."""

from __future__ import annotations

import fnmatch
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cloudformation import load
from helpers import REPO_ROOT
from rotation_core.registry import FunctionSpec, rotation_functions
from rotation_core.settings import Strategy
from rotation_local import emulator, local_env
from rotation_local.events import (
    STEPS,
    event_folder,
    function_id,
    other_secret_name,
    sample_token,
    secret_name,
)
from rotation_local.lambda_image import host_architecture
from rotation_local.template import read_only_secrets

FUNCTIONS = list(rotation_functions())
FUNCTION = FUNCTIONS[0]
PASSWORD = "Local-Env-Password-0001"


@pytest.fixture(scope="module")
def parameters() -> dict[str, Any]:
    parameters: dict[str, Any] = load(REPO_ROOT / "template.yaml")["Parameters"]
    return parameters


@pytest.mark.parametrize("function", FUNCTIONS, ids=function_id)
def test_sample_secret_names_fall_within_template_default_patterns(
    function: FunctionSpec, parameters: dict[str, Any]
) -> None:
    assert fnmatch.fnmatchcase(secret_name(function), parameters[f"{function.logical_name}Secrets"]["Default"])
    other, name = read_only_secrets(function), other_secret_name(function)
    if other is None:
        assert name is None
    elif function.strategy is not Strategy.DUAL_PASSWORD:  # its sample secret names no master: the user's own login
        assert name is not None
        assert fnmatch.fnmatchcase(name, parameters[other[1]]["Default"])


def test_sample_tokens_and_event_folders_differ_between_functions() -> None:
    assert len({sample_token(f) for f in FUNCTIONS}) == len(FUNCTIONS)
    assert len({event_folder(f) for f in FUNCTIONS}) == len(FUNCTIONS)
    assert len({secret_name(f) for f in FUNCTIONS}) == len(FUNCTIONS)


@pytest.mark.parametrize(
    ("stages", "with_value", "expected"),
    [
        ({"a": ["AWSCURRENT"]}, set(), (local_env.IDLE, None)),
        ({"a": ["AWSCURRENT"], "b": ["AWSPENDING"]}, set(), (local_env.STAGED, "b")),
        ({"a": ["AWSCURRENT"], "b": ["AWSPENDING"]}, {"b"}, (local_env.IN_PROGRESS, "b")),
        ({"a": ["AWSPREVIOUS"], "b": ["AWSCURRENT", "AWSPENDING"]}, {"b"}, (local_env.FINISHED, "b")),
    ],
)
def test_rotation_state_follows_where_awspending_is(
    stages: dict[str, list[str]], with_value: set[str], expected: tuple[str, str | None]
) -> None:
    assert local_env.rotation_state(stages, lambda version: version in with_value) == expected


def test_invoke_commands_run_the_four_steps_in_order_with_the_function_folder() -> None:
    commands = local_env.invoke_commands(FUNCTION, "events/x", "$LOCAL_ENV/env/X.json")

    assert [c.split("EVENT=events/x/")[1].split(".json")[0] for c in commands] == list(STEPS)
    assert all(c.startswith(f"make invoke FUNCTION=functions/{FUNCTION.folder} ") for c in commands)
    assert all(c.endswith("ENV_VARS=$LOCAL_ENV/env/X.json") for c in commands)


def _loop_command(command: str) -> str:
    """What the printed loop runs for each step: the text inside ``out=$( ... )``."""
    return command.split("out=$(", 1)[1].split("); echo", 1)[0]


def test_sam_command_runs_sam_on_host_network_socket_with_build_architecture_and_emulator_credentials() -> None:
    command = local_env.sam_command(
        FUNCTION, "events/x", "$LOCAL_ENV/sam-env.json", architecture="x86_64",
        docker_host="unix://$LOCAL_ENV/docker.sock",
    )  # fmt: skip

    assert command.startswith(f"for step in {' '.join(STEPS)}; do ")
    inner = _loop_command(command)
    assert inner.startswith("DOCKER_HOST=unix://$LOCAL_ENV/docker.sock AWS_ACCESS_KEY_ID=testing ")
    assert "AWS_SECRET_ACCESS_KEY=testing AWS_MAX_ATTEMPTS=1 AWS_ENDPOINT_URL_STS=http://127.0.0.1:9 " in inner
    assert f"sam local invoke {function_id(FUNCTION)} --region us-east-1 " in inner
    assert " --parameter-overrides Architecture=x86_64 " in inner
    assert "--event events/x/$step.json --env-vars $LOCAL_ENV/sam-env.json" in inner
    assert "--docker-network" not in command  # SAM ignores it (aws/aws-sam-cli#3609): the socket does it
    assert "--invoke-image" not in command  # AWS's image, pulled by SAM
    assert "--skip-pull-image" not in command
    # sam exits 0 when the handler raised: the loop stops on the result's errorType, not on the exit code
    assert "case $out in *'\"errorType\"'*) break;; esac; done" in command
    assert "|| break" not in command


def test_sam_command_with_offline_image_names_it_and_skips_pulling() -> None:
    command = local_env.sam_command(
        FUNCTION, "events/x", "$LOCAL_ENV/sam-env.json", architecture="arm64", docker_host="unix://s",
        invoke_image="rotation-local/lambda-python:3.13-arm64",
    )  # fmt: skip

    assert _loop_command(command).endswith("--invoke-image rotation-local/lambda-python:3.13-arm64 --skip-pull-image")
    assert "Architecture=arm64" in command


def test_sam_command_printed_is_what_sam_local_invoke_target_runs() -> None:
    """The printed loop, for one step, is the environment and arguments make sam-local-invoke runs."""
    command = local_env.sam_command(
        FUNCTION, "events/x", "/run/sam-env.json", architecture="x86_64", docker_host="unix:///run/docker.sock",
        invoke_image="img:1",
    )  # fmt: skip
    env = local_env.sam_invoke_env("unix:///run/docker.sock")
    argv = local_env.sam_invoke_argv(
        FUNCTION, "events/x/$step.json", "/run/sam-env.json", architecture="x86_64", invoke_image="img:1",
        skip_pull=True,
    )  # fmt: skip

    assert _loop_command(command) == " ".join([*(f"{k}={v}" for k, v in env.items()), *argv])


@pytest.mark.parametrize(
    ("libraries", "expected"),
    [
        (["psycopg2/_psycopg.cpython-313-x86_64-linux-gnu.so"], "x86_64"),
        (["psycopg2/_psycopg.cpython-313-aarch64-linux-gnu.so", "x/y.cpython-313-aarch64-linux-gnu.so"], "arm64"),
    ],
)
def test_build_architecture_follows_the_built_native_libraries(
    tmp_path: Path, libraries: list[str], expected: str
) -> None:
    for library in libraries:
        path = tmp_path / "PostgresSingleUserFunction" / library
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")

    assert local_env.build_architecture(tmp_path) == expected


def test_build_architecture_of_pure_python_build_is_this_machine(tmp_path: Path) -> None:
    (tmp_path / "ApiKeyFunction").mkdir()
    (tmp_path / "ApiKeyFunction" / "app.py").write_text("")

    assert local_env.build_architecture(tmp_path) == host_architecture()


PORT = 45678
TOKEN = "the-run-token"
GOOD = {"host": f"127.0.0.1:{PORT}", local_env.TOKEN_HEADER.lower(): TOKEN}


def _refusal(path: str, method: str, headers: dict[str, str]) -> tuple[int, str] | None:
    return local_env.request_refusal(path, method, headers, port=PORT, token=TOKEN)


@pytest.mark.parametrize("path", ["/", "/_rotation_local/status"])
def test_request_with_origin_header_is_refused_on_emulator_and_control_api(path: str) -> None:
    refused = _refusal(path, "POST", {**GOOD, "origin": "https://example.com", "content-type": "application/json"})

    assert refused is not None
    assert refused[0] == 403
    assert "Origin" in refused[1]


@pytest.mark.parametrize("host", ["evil.example.com", f"evil.example.com:{PORT}", "127.0.0.1:1", "", "[::1]:45678"])
@pytest.mark.parametrize("path", ["/", "/_rotation_local/status"])
def test_request_naming_another_host_is_refused_against_dns_rebinding(path: str, host: str) -> None:
    refused = _refusal(path, "GET", {**GOOD, "host": host})

    assert refused is not None
    assert refused[0] == 403


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""])
def test_control_post_without_json_body_type_is_refused(content_type: str) -> None:
    refused = _refusal("/_rotation_local/restage", "POST", {**GOOD, "content-type": content_type})

    assert refused is not None
    assert refused[0] == 415


@pytest.mark.parametrize("token", [None, "", "wrong", TOKEN + "x"])
def test_control_request_without_the_run_token_is_refused(token: str | None) -> None:
    headers = {"host": f"localhost:{PORT}", "content-type": "application/json; charset=utf-8"}
    if token is not None:
        headers[local_env.TOKEN_HEADER.lower()] = token

    refused = _refusal("/_rotation_local/restage", "POST", headers)

    assert refused is not None
    assert refused[0] == 403
    assert "$LOCAL_ENV/control-token" in refused[1]


def test_control_request_from_runner_client_and_sdk_request_pass() -> None:
    assert _refusal("/_rotation_local/status", "GET", GOOD) is None
    assert _refusal("/_rotation_local/restage", "POST", {**GOOD, "content-type": "application/json"}) is None
    # the functions' and boto3's Secrets Manager calls: no token needed, loopback Host, no Origin
    assert _refusal("/", "POST", {"host": f"127.0.0.1:{PORT}", "content-type": "application/x-amz-json-1.1"}) is None


@pytest.fixture
def environment(sm_client: Any, tmp_path: Path) -> tuple[local_env.LocalEnvironment, str]:
    """A LocalEnvironment holding one function's secret in moto, as start() leaves it (no servers)."""
    arn: str = sm_client.create_secret(
        Name=secret_name(FUNCTION), SecretString=json.dumps({"username": "app_single", "password": PASSWORD})
    )["ARN"]
    emulator.enable_rotation(arn)
    token = emulator.stage_pending_placeholder(arn, sample_token(FUNCTION))
    env = local_env.LocalEnvironment(tmp_path / "run")
    (tmp_path / "run").mkdir()
    events = f"events/{event_folder(FUNCTION).as_posix()}"

    def works(value: Any) -> bool:
        return bool(value["password"] == PASSWORD)

    env.rotated[function_id(FUNCTION)] = local_env.Rotated(FUNCTION, arn, "a test secret", works, token, events)
    return env, arn


def _finish(sm_client: Any, arn: str, token: str) -> None:
    """What createSecret and finishSecret leave: a value on the token, AWSCURRENT moved to it."""
    sm_client.put_secret_value(
        SecretId=arn, ClientRequestToken=token, SecretString=json.dumps({"password": "x" * 24}),
        VersionStages=["AWSPENDING"],
    )  # fmt: skip
    (current,) = [v for v, s in emulator.version_stages(arn).items() if "AWSCURRENT" in s]
    sm_client.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current
    )


def test_restage_staged_rotation_refuses_and_changes_nothing(
    environment: tuple[local_env.LocalEnvironment, str],
) -> None:
    env, arn = environment
    before = emulator.version_stages(arn)

    with pytest.raises(local_env.RotationUnfinishedError, match="no step has stored a value yet"):
        env.restage(function_id(FUNCTION))

    assert emulator.version_stages(arn) == before
    assert not (env.run_dir / "events").exists()


def test_restage_finished_rotation_clears_pending_and_writes_fresh_events(
    environment: tuple[local_env.LocalEnvironment, str], sm_client: Any
) -> None:
    env, arn = environment
    token = sample_token(FUNCTION)
    _finish(sm_client, arn, token)

    result = env.restage(function_id(FUNCTION))

    fresh = result["token"]
    stages = emulator.version_stages(arn)
    assert stages[token] == ["AWSCURRENT"]
    assert stages[fresh] == ["AWSPENDING"]
    assert result["abandoned"] is None
    folder = env.run_dir / "events" / event_folder(FUNCTION)
    for step in STEPS:
        event = json.loads((folder / f"{step}.json").read_text(encoding="utf-8"))
        assert event == {"Step": step, "SecretId": secret_name(FUNCTION), "ClientRequestToken": fresh}
    assert result["commands"][0].startswith("make invoke ")
    assert f"$LOCAL_ENV/events/{event_folder(FUNCTION).as_posix()}/createSecret.json" in result["commands"][0]


def test_restage_abandon_drops_unfinished_rotation_and_stages_fresh_token(
    environment: tuple[local_env.LocalEnvironment, str], sm_client: Any
) -> None:
    env, arn = environment
    token = sample_token(FUNCTION)
    sm_client.put_secret_value(
        SecretId=arn, ClientRequestToken=token, SecretString=json.dumps({"password": "y" * 24}),
        VersionStages=["AWSPENDING"],
    )  # fmt: skip
    with pytest.raises(local_env.RotationUnfinishedError, match="createSecret stored its value"):
        env.restage(function_id(FUNCTION))

    result = env.restage(function_id(FUNCTION), abandon=True)

    stages = emulator.version_stages(arn)
    assert result["abandoned"] == token
    assert stages[token] == []
    assert stages[result["token"]] == ["AWSPENDING"]


def test_restage_many_without_names_leaves_unfinished_alone_and_names_unknown_function(
    environment: tuple[local_env.LocalEnvironment, str],
) -> None:
    env, _arn = environment

    implicit = env.restage_many([])
    unknown = env.restage_many(["NoSuchFunction"])

    assert implicit == [
        {
            "function": function_id(FUNCTION),
            "error": implicit[0]["error"],
            "explicit": False,
            "pending": sample_token(FUNCTION),
        }
    ]
    assert unknown[0]["explicit"] is True
    assert "NoSuchFunction is not running here" in unknown[0]["error"]


def test_status_reports_labels_and_logins_but_no_value(environment: tuple[local_env.LocalEnvironment, str]) -> None:
    env, _arn = environment

    (entry,) = env.status()

    assert entry["state"] == local_env.STAGED
    assert [v["stages"] for v in entry["versions"]] == [["AWSPENDING"], ["AWSCURRENT"]]
    assert entry["versions"][0] == {
        "id": sample_token(FUNCTION), "stages": ["AWSPENDING"], "token_of": "events", "has_value": False,
        "username": None, "works": None,
    }  # fmt: skip
    assert entry["versions"][1]["works"] is True
    assert entry["versions"][1]["username"] == "app_single"
    assert PASSWORD not in json.dumps(entry)


def test_control_answers_status_refuses_unknown_requests_and_bad_json(
    environment: tuple[local_env.LocalEnvironment, str],
) -> None:
    env, _arn = environment

    assert env._control("GET", "status", b"")[0] == 200
    assert env._control("DELETE", "everything", b"")[0] == 404
    assert env._control("POST", "restage", b"{not json")[0] == 400
    status, answer = env._control("POST", "restage", json.dumps({"functions": [function_id(FUNCTION)]}).encode())
    assert status == 200
    assert "not finished" in answer["results"][0]["error"]


def test_local_env_unknown_function_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(local_env.LocalEnvError, match="no such function: Nope"):
        local_env.LocalEnvironment(tmp_path / "run", only=["Nope"])
    assert not (tmp_path / "run").exists()


def test_locate_prefers_endpoint_then_run_folder_manifest_then_port_5000(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(local_env.RUN_DIR_VARIABLE, raising=False)
    assert local_env.locate(None) == "http://127.0.0.1:5000"
    (tmp_path / local_env.MANIFEST).write_text(json.dumps({"endpoint": "http://127.0.0.1:4567"}))
    monkeypatch.setenv(local_env.RUN_DIR_VARIABLE, str(tmp_path))
    assert local_env.locate(None) == "http://127.0.0.1:4567"
    assert local_env.locate("http://127.0.0.1:9/") == "http://127.0.0.1:9"


def test_control_without_running_local_env_says_how_to_start_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_args: Any, **_kwargs: Any) -> Any:
        raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))

    monkeypatch.setattr(urllib.request, "urlopen", refused)

    with pytest.raises(local_env.LocalEnvError, match="start it with make local-env"):
        local_env.control("http://127.0.0.1:5000", "GET", "status", token="t")


def test_run_token_without_run_folder_says_to_export_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(local_env.RUN_DIR_VARIABLE, raising=False)
    with pytest.raises(local_env.LocalEnvError, match="export LOCAL_ENV="):
        local_env.run_token()
    monkeypatch.setenv(local_env.RUN_DIR_VARIABLE, str(tmp_path))
    with pytest.raises(local_env.LocalEnvError, match="control-token"):
        local_env.run_token()
    (tmp_path / local_env.TOKEN_FILE).write_text("abc\n")
    assert local_env.run_token() == "abc"


def test_control_client_sends_json_and_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[urllib.request.Request] = []

    class Answer:
        def __enter__(self) -> Answer:
            return self

        def __exit__(self, *_exc: object) -> None:
            return None

        def read(self) -> bytes:
            return b"{}"

    def urlopen(request: urllib.request.Request, **_kwargs: Any) -> Answer:
        sent.append(request)
        return Answer()

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)

    local_env.control("http://127.0.0.1:5000", "POST", "restage", {"functions": []}, token="tok")

    (request,) = sent
    assert request.get_header("Content-type") == "application/json"
    assert request.get_header(local_env.TOKEN_HEADER.capitalize()) == "tok"
    assert request.get_header("Origin") is None
