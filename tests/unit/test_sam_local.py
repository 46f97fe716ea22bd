"""``make sam-local-invoke``'s decisions: a step's result from what sam printed, a rotation from local-env's
status, which Lambda image to run on. No Docker here: .ci/run runs the target itself, once with every
function and once with a function made to raise (it must fail, naming it)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rotation_core.registry import rotation_functions
from rotation_local import lambda_image, sam_local
from rotation_local.sam_local import invocation_outcome, parse_env_vars, rotation_problems

# What sam local invoke prints on stdout when the handler raised (the runtime's error object): it exits 0.
RAISED = json.dumps({
    "errorMessage": "REVOKE_POLICY='nope' is not a revocation policy; set it to one of: ...",
    "errorType": "ConfigurationError",
    "requestId": "862591ae-018d-4bc4-9d24-61860d7bf2bb",
    "stackTrace": ['  File "/opt/python/rotation_core/handler.py", line 65, in __call__\n'],
})  # fmt: skip


@pytest.mark.parametrize("stdout", ["null", "null\n", '{"checks": [], "ok": true}'])
def test_invocation_outcome_of_a_returned_result_is_success(stdout: str) -> None:
    assert invocation_outcome(0, stdout) is None


def test_invocation_outcome_of_a_raised_handler_is_failure_although_sam_exited_zero() -> None:
    assert invocation_outcome(0, RAISED) == (
        "ConfigurationError: REVOKE_POLICY='nope' is not a revocation policy; set it to one of: ..."
    )


def test_invocation_outcome_reads_the_last_line_when_sam_printed_more() -> None:
    assert invocation_outcome(0, "something SAM said\n" + RAISED) is not None
    assert invocation_outcome(0, "something SAM said\nnull") is None


@pytest.mark.parametrize(
    ("returncode", "stdout", "reason"),
    [
        (1, "null", "exited with 1"),
        (0, "", "printed no result"),
        (0, "  \n", "printed no result"),
        (0, "Error: Running AWS SAM projects locally requires a container runtime", "not JSON"),
        (0, '{"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 60.00 seconds"}', "Timedout"),
    ],
)
def test_invocation_outcome_failures_say_why(returncode: int, stdout: str, reason: str) -> None:
    outcome = invocation_outcome(returncode, stdout)

    assert outcome is not None
    assert reason in outcome


TOKEN = "6437fc9b-c7a4-51dd-a091-e101cfab129b"
OLD = "03f4f428-0000-4000-8000-000000000000"


def _entry(strategy: str | None, versions: list[tuple[str, list[str], bool | None]]) -> dict[str, Any]:
    return {
        "strategy": strategy,
        "versions": [
            {"id": vid, "stages": stages, "has_value": works is not None, "works": works, "username": "app_single"}
            for vid, stages, works in versions
        ],
    }


BEFORE = {
    strategy: _entry(strategy, [(TOKEN, ["AWSPENDING"], None), (OLD, ["AWSCURRENT"], True)])
    for strategy in ("single_user", "alternating_users", None)
}


@pytest.mark.parametrize(("strategy", "old_works"), [("single_user", False), ("alternating_users", True), (None, True)])
def test_rotation_problems_none_when_labels_moved_and_logins_as_strategy_says(
    strategy: str | None, old_works: bool
) -> None:
    after = _entry(strategy, [(TOKEN, ["AWSCURRENT", "AWSPENDING"], True), (OLD, ["AWSPREVIOUS"], old_works)])

    assert rotation_problems(BEFORE[strategy], after, TOKEN) == []


@pytest.mark.parametrize(
    ("strategy", "after", "problem"),
    [
        ("single_user", [(TOKEN, ["AWSPENDING"], True), (OLD, ["AWSCURRENT"], True)], "AWSCURRENT is not on"),
        ("single_user", [(TOKEN, ["AWSCURRENT"], False), (OLD, ["AWSPREVIOUS"], False)], "do not work"),
        ("single_user", [(TOKEN, ["AWSCURRENT"], True), (OLD, ["AWSPREVIOUS"], True)], "still logs in"),
        ("alternating_users", [(TOKEN, ["AWSCURRENT"], True), (OLD, ["AWSPREVIOUS"], False)], "stopped working"),
        (None, [(TOKEN, ["AWSCURRENT"], True), (OLD, [], True)], "AWSPREVIOUS is not on"),
        (
            "single_user",
            [("x", ["AWSPENDING"], True), (TOKEN, ["AWSCURRENT"], True), (OLD, ["AWSPREVIOUS"], False)],
            "AWSPENDING is left",
        ),
    ],
)
def test_rotation_problems_name_what_is_wrong(
    strategy: str | None, after: list[tuple[str, list[str], bool | None]], problem: str
) -> None:
    problems = rotation_problems(BEFORE[strategy], _entry(strategy, after), TOKEN)

    assert any(problem in p for p in problems), problems


def test_parse_env_vars_groups_by_function_and_refuses_malformed_items() -> None:
    assert parse_env_vars(["A:X=1", "A:Y=", "B:Z=a=b"]) == {"A": {"X": "1", "Y": ""}, "B": {"Z": "a=b"}}
    for bad in ("A", "A:X", ":X=1", "A:=1"):
        with pytest.raises(sam_local.SamLocalError, match="FUNCTION:NAME=VALUE"):
            parse_env_vars([bad])


def test_unknown_function_is_refused_before_anything_starts() -> None:
    lines: list[str] = []

    assert sam_local.run(functions=["Nope"], out=lines.append) == 2
    known = ", ".join(f"{function.logical_name}Function" for function in rotation_functions())
    assert lines == [f"sam-local-invoke: no such function: Nope; the template's are {known}"]
    assert "PostgresSingleUserFunction" in known


class FakeEngine:
    def __init__(self, images: dict[str, dict[str, str]]) -> None:
        self.images = images

    def image_labels(self, name: str) -> dict[str, str] | None:
        return self.images.get(name)


@pytest.mark.parametrize(
    ("images", "registry", "expected"),
    [
        ({}, True, (None, False)),  # online: SAM pulls AWS's image as usual
        ({"public.ecr.aws/lambda/python:3.13-x86_64": {}}, True, (None, False)),
        ({"public.ecr.aws/lambda/python:3.13-x86_64": {}}, False, (None, True)),  # AWS's, already here, offline
        ({}, False, ("rotation-local/lambda-python:3.13-x86_64", True)),  # the stand-in
    ],
)
def test_choose_prefers_aws_image_and_falls_back_to_the_stand_in_offline(
    monkeypatch: pytest.MonkeyPatch,
    images: dict[str, dict[str, str]],
    registry: bool,
    expected: tuple[str | None, bool],
) -> None:
    monkeypatch.setattr(lambda_image, "registry_answers", lambda: registry)
    monkeypatch.setattr(lambda_image, "ensure_standin", lambda _engine, arch, _say: lambda_image.standin_image(arch))

    assert lambda_image.choose(FakeEngine(images), "x86_64", "auto", lambda _line: None) == expected  # type: ignore[arg-type]


def test_standin_already_built_with_the_same_recipe_is_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    digest = lambda_image.recipe_digest("x86_64")
    engine = FakeEngine({lambda_image.standin_image("x86_64"): {lambda_image.RECIPE_LABEL: digest}})
    monkeypatch.setattr(lambda_image, "build_rootfs", lambda *_args: pytest.fail("must not rebuild"))

    name = lambda_image.ensure_standin(engine, "x86_64", lambda _line: None)  # type: ignore[arg-type]

    assert name == "rotation-local/lambda-python:3.13-x86_64"


def test_recipe_digest_follows_the_locked_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    before = lambda_image.recipe_digest("x86_64")
    monkeypatch.setattr(lambda_image, "runtime_requirements", lambda: "boto3==0.0.0 --hash=sha256:00\n")

    assert lambda_image.recipe_digest("x86_64") != before
    assert lambda_image.recipe_digest("arm64") != lambda_image.recipe_digest("x86_64")


def test_standin_image_runs_like_lambda_entry_point_and_says_it_is_not_aws() -> None:
    changes = lambda_image.image_changes("abc")

    assert 'ENTRYPOINT ["/lambda-entrypoint.sh"]' in changes
    assert "ENV LAMBDA_TASK_ROOT=/var/task" in changes
    assert f"LABEL {lambda_image.RECIPE_LABEL}=abc" in changes
    assert any("not AWS's image" in change for change in changes)
    assert "python3 -m awslambdaric" in lambda_image.BOOTSTRAP
    assert "/opt/python/lib/python3.13/site-packages:/opt/python:/var/runtime" in lambda_image.BOOTSTRAP
