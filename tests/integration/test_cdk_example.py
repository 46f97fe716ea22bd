"""examples/cdk synthesizes offline (aws-cdk-lib from requirements-cdk.lock in .venv-cdk, the machine's Node.js)
and what it synthesizes keeps the template's promises: each rotation schedule names the function of its
strategy, the Lambda permissions carry SourceAccount, every role has the permissions boundary, and no role
gains a permission template.yaml does not give it.

Both sources are synthesized once each: ``template`` (this clone's template.yaml included with CfnInclude,
the code from a build folder; here copies of the source folders, one holding an x86_64 ELF header so that
the architecture must follow the build) and ``sar`` (the release as a nested application).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers import REPO_ROOT
from rotation_core.registry import rotation_functions
from rotation_local.template import ReleaseLayout, render_template
from rotation_release.cfn import load, loads, normalized, parameter_values, resolve_ifs, resources_of_type
from rotation_release.iam import role_statements, roles
from rotation_release.sar import ARCHITECTURES

APP = REPO_ROOT / "examples" / "cdk"
CDK_VENV = REPO_ROOT / ".venv-cdk"
SECRET = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:"
BOUNDARY = "arn:aws:iam::111122223333:policy/rotation-boundary"
APPLICATION = "arn:aws:serverlessrepo:eu-west-1:444455556666:applications/secrets-rotation-functions-arm64"
ROTATIONS = [
    {"function": "PostgresSingleUser", "secret": SECRET + "rds/app-AbCdEf"},
    {"function": "PostgresAlternatingUsers", "secret": SECRET + "rds/reporting-GhIjKl",
     "master": SECRET + "rds!db-0a1b2c3d-MnOpQr"},
    {"function": "ApiKey", "secret": SECRET + "datadog/app-StUvWx", "admin": SECRET + "datadog/admin-YzAbCd"},
]  # fmt: skip
# The name patterns the app must derive from the ARNs (the part after "secret:": exactly those secrets).
PATTERNS = {
    "PostgresSingleUserSecrets": "rds/app-AbCdEf",
    "PostgresAlternatingUsersSecrets": "rds/reporting-GhIjKl",
    "PostgresMasterSecrets": "rds!db-0a1b2c3d-MnOpQr",
    "ApiKeySecrets": "datadog/app-StUvWx",
    "ApiKeyAdminSecrets": "datadog/admin-YzAbCd",
}
DAYS = {"PostgresSingleUser": 90, "PostgresAlternatingUsers": 90, "ApiKey": 180}  # the rotation policy
FUNCTIONS = [f.logical_name for f in rotation_functions()]
X86_64_ELF_HEADER = b"\x7fELF\x02\x01" + bytes(12) + (62).to_bytes(2, "little")  # e_machine EM_X86_64

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cdk_python() -> Path:
    """.venv-cdk's Python, installed from requirements-cdk.lock if `make cdk-venv` has not done it."""
    subprocess.run([str(REPO_ROOT / "tools" / "bootstrap.sh"), "cdk", str(CDK_VENV), "python3"], check=True)
    assert shutil.which("node"), "no Node.js on PATH: `make cdk-venv` installs it (apt-get install nodejs)"
    return CDK_VENV / "bin" / "python"


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build folder as `sam build` lays it out (one folder per logical id), holding the source folders."""
    build = tmp_path_factory.mktemp("build")
    for function in rotation_functions():
        shutil.copytree(REPO_ROOT / "functions" / function.folder, build / f"{function.logical_name}Function")
    shutil.copytree(REPO_ROOT / "layers" / "rotation_core", build / "RotationCoreLayer")
    (build / "PostgresSingleUserFunction" / "_driver.so").write_bytes(X86_64_ELF_HEADER)
    return build


def synthesize(python: Path, context: dict[str, Any], out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the app as `cdk synth` does (CDK_OUTDIR, CDK_CONTEXT_JSON); the stack's template and CDK's
    validation report."""
    env = {**os.environ, "CDK_OUTDIR": str(out), "CDK_CONTEXT_JSON": json.dumps(context)}
    completed = subprocess.run([str(python), "app.py"], cwd=APP, env=env, capture_output=True, text=True,
                               timeout=600, check=False)  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-4000:] + completed.stdout[-2000:]
    template = normalized(json.loads((out / "secrets-rotation.template.json").read_text()))
    report = (
        json.loads((out / "validation-report.json").read_text()) if (out / "validation-report.json").exists() else {}
    )
    return template, report


@pytest.fixture(scope="module")
def from_template(cdk_python: Path, build_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    context = {"source": "template", "build_dir": str(build_dir), "permissions_boundary": BOUNDARY,
               "rotations": ROTATIONS, "parameters": {"LogLevel": "DEBUG"}}  # fmt: skip
    template, report = synthesize(cdk_python, context, tmp_path_factory.mktemp("cdk-template"))
    return {"template": template, "report": report}


@pytest.fixture(scope="module")
def from_sar(cdk_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    context = {"source": "sar", "application_id": APPLICATION, "semantic_version": "0.2.0",
               "permissions_boundary": BOUNDARY, "rotations": ROTATIONS}  # fmt: skip
    template, report = synthesize(cdk_python, context, tmp_path_factory.mktemp("cdk-sar"))
    return {"template": template, "report": report}


def _schedules(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    schedules = resources_of_type(template, "AWS::SecretsManager::RotationSchedule")
    return {s["Properties"]["SecretId"]: s for s in schedules.values()}


def _grants(template: dict[str, Any], role: str) -> set[str]:
    """Every statement of a role, with the condition it depends on, as comparable text."""
    return {
        json.dumps([statement.condition, statement.body], sort_keys=True)
        for statement in role_statements(template, role)
    }


def test_cdk_template_source_schedules_point_at_their_functions(from_template: dict[str, Any]) -> None:
    schedules = _schedules(from_template["template"])

    assert set(schedules) == {rotation["secret"] for rotation in ROTATIONS}
    for rotation in ROTATIONS:
        schedule = schedules[rotation["secret"]]
        function = rotation["function"]
        assert schedule["Properties"]["RotationLambdaARN"] == {"Fn::GetAtt": [f"{function}Function", "Arn"]}
        assert schedule["Properties"]["RotationRules"] == {"AutomaticallyAfterDays": DAYS[function]}
        # Rotating at once needs the invoke permission and the role's secrets policy in place first.
        assert {f"{function}InvokePermission", f"{function}SecretsPolicy"} <= set(schedule["DependsOn"])


def test_cdk_template_source_lambda_permissions_carry_source_account(from_template: dict[str, Any]) -> None:
    permissions = resources_of_type(from_template["template"], "AWS::Lambda::Permission")

    assert sorted(p["Properties"]["FunctionName"]["Fn::GetAtt"][0] for p in permissions.values()) == sorted(
        f"{name}Function" for name in FUNCTIONS
    )
    for permission in permissions.values():
        assert permission["Properties"]["Principal"] == "secretsmanager.amazonaws.com"
        assert permission["Properties"]["Action"] == "lambda:InvokeFunction"
        assert permission["Properties"]["SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_cdk_template_source_every_role_has_the_boundary(from_template: dict[str, Any]) -> None:
    template = from_template["template"]
    values = parameter_values(template)

    assert sorted(roles(template)) == sorted(f"{name}Role" for name in FUNCTIONS)
    for role in roles(template):
        properties = resolve_ifs(template["Resources"][role]["Properties"], template, values)
        assert properties["PermissionsBoundary"] == BOUNDARY, role


def test_cdk_template_source_sets_parameters_as_defaults(from_template: dict[str, Any]) -> None:
    parameters = from_template["template"]["Parameters"]
    source = load(REPO_ROOT / "template.yaml")["Parameters"]

    assert set(parameters) == {*source, "BootstrapVersion"}  # every parameter stays settable
    given = {**PATTERNS, "PermissionsBoundary": BOUNDARY, "LogLevel": "DEBUG"}
    for name, spec in parameters.items():
        if name in source and name != "Architecture":
            assert spec["Default"] == given.get(name, source[name].get("Default")), name


def test_cdk_template_source_no_role_gains_a_permission(from_template: dict[str, Any]) -> None:
    synthesized = from_template["template"]
    source = load(REPO_ROOT / "template.yaml")

    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::User", "AWS::IAM::Group"):
        assert set(resources_of_type(synthesized, kind)) == set(resources_of_type(source, kind)), kind
    for role in roles(synthesized):
        assert synthesized["Resources"][role]["Properties"].get("ManagedPolicyArns") is None
        assert _grants(synthesized, role) <= _grants(source, role), role
    # The secrets each role may touch are exactly the ones attached to its function.
    values = parameter_values(synthesized)
    for role, action, parameter in (
        ("PostgresSingleUserRole", "secretsmanager:PutSecretValue", "PostgresSingleUserSecrets"),
        ("PostgresAlternatingUsersRole", "secretsmanager:PutSecretValue", "PostgresAlternatingUsersSecrets"),
        ("PostgresAlternatingUsersRole", "secretsmanager:DescribeSecret", "PostgresMasterSecrets"),
        ("ApiKeyRole", "secretsmanager:GetSecretValue", "ApiKeyAdminSecrets"),
    ):
        granted = [s.body["Resource"]["Fn::Sub"] for s in role_statements(synthesized, role) if action in s.actions]
        assert f"${{AWS::AccountId}}:secret:${{{parameter}}}" in " ".join(granted), (role, parameter)
        assert values[parameter] == PATTERNS[parameter]


def test_cdk_template_source_architecture_follows_the_build(from_template: dict[str, Any]) -> None:
    template = from_template["template"]

    assert template["Globals"]["Function"]["Architectures"] == [{"Ref": "Architecture"}]
    assert template["Parameters"]["Architecture"]["Default"] == "x86_64"
    assert template["Parameters"]["Architecture"]["AllowedValues"] == ["x86_64"]
    code = template["Resources"]["PostgresSingleUserFunction"]["Properties"]["CodeUri"]
    assert set(code) == {"Bucket", "Key"}  # a CDK asset, uploaded by `cdk deploy`


def test_cdk_template_source_exports_what_the_docs_read(from_template: dict[str, Any]) -> None:
    exports = {name: o["Export"]["Name"] for name, o in from_template["template"]["Outputs"].items() if "Export" in o}
    source = load(REPO_ROOT / "template.yaml")["Outputs"]

    assert exports == {name: o["Export"]["Name"] for name, o in source.items() if "Export" in o}


def test_cdk_sar_source_nested_application_gets_boundary_and_exact_names(from_sar: dict[str, Any]) -> None:
    template = from_sar["template"]
    (application,) = resources_of_type(template, "AWS::Serverless::Application").values()
    parameters = application["Properties"]["Parameters"]

    assert application["Properties"]["Location"] == {"ApplicationId": APPLICATION, "SemanticVersion": "0.2.0"}
    assert parameters == {**PATTERNS, "PermissionsBoundary": BOUNDARY}
    # The release template of either architecture takes these, and gives every role the boundary.
    for architecture in ARCHITECTURES:
        release = loads(render_template(ReleaseLayout(architecture, "layer.zip", {
            "postgres": "pg.zip", "mysql": "my.zip", "valkey": "vk.zip", "api_key": "ak.zip"})))  # fmt: skip
        assert set(parameters) <= set(release["Parameters"])
        values = parameter_values(release, parameters)
        for role in roles(release):
            properties = resolve_ifs(release["Resources"][role]["Properties"], release, values)
            assert properties["PermissionsBoundary"] == BOUNDARY


def test_cdk_sar_source_schedules_point_at_the_applications_functions(from_sar: dict[str, Any]) -> None:
    template = from_sar["template"]
    schedules = _schedules(template)
    (name,) = resources_of_type(template, "AWS::Serverless::Application")

    for rotation in ROTATIONS:
        arn = schedules[rotation["secret"]]["Properties"]["RotationLambdaARN"]
        assert arn == {"Fn::GetAtt": [name, f"Outputs.{rotation['function']}FunctionArn"]}
    exports = {o["Export"]["Name"] for o in template["Outputs"].values() if "Export" in o}
    assert exports == {f"secrets-rotation-{function}FunctionArn" for function in FUNCTIONS}


def test_cdk_sar_source_creates_no_role_permission_or_policy(from_sar: dict[str, Any]) -> None:
    """Everything with a permission lives in the released application, whose template the tests above check."""
    kinds = {resource["Type"] for resource in from_sar["template"]["Resources"].values()}

    assert not {kind for kind in kinds if kind.startswith("AWS::IAM::") or kind == "AWS::Lambda::Permission"}


@pytest.mark.parametrize("source", ["from_template", "from_sar"])
def test_cdk_validation_reports_no_error(source: str, request: pytest.FixtureRequest) -> None:
    report = request.getfixturevalue(source)["report"]
    violations = [v for plugin in report.get("pluginReports", []) for v in plugin["violations"]]

    assert [v for v in violations if v.get("severity") == "error"] == []
