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


def test_sam_command_shares_host_network_and_uses_emulator_credentials() -> None:
    command = local_env.sam_command(FUNCTION, "events/x", "$LOCAL_ENV/sam-env.json")

    assert f"sam local invoke {function_id(FUNCTION)} --docker-network host" in command
    assert "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing" in command
    assert "|| break" in command


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
        local_env.control("http://127.0.0.1:5000", "GET", "status")
