"""template.yaml and examples/attach-rotation.yaml: least privilege for every role, and the contracts
the functions rely on (handler, code folders, environment names, permissions, schedules)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest

from cloudformation import load
from helpers import REPO_ROOT
from rotation_core import metrics, registry, settings
from rotation_core.causes import CAUSES
from rotation_core.errors import Category
from rotation_local.template import ReleaseLayout, check_template, failure_alarm_name, render_template
from rotation_release.cfn import loads, parameter_values, resolve_ifs, resources_of_type
from rotation_release.iam import role_statements
from rotation_release.sar import ARCHITECTURES

TEMPLATE = REPO_ROOT / "template.yaml"
BOUNDARY = "arn:aws:iam::111122223333:policy/org/rotation-boundary"
ATTACH = REPO_ROOT / "examples" / "attach-rotation.yaml"

ROTATION_ACTIONS = frozenset(
    {
        "secretsmanager:DescribeSecret",
        "secretsmanager:GetSecretValue",
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecretVersionStage",
    }
)
ENI_ACTIONS = frozenset(
    {
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
    }
)
KMS_ACTIONS = frozenset({"kms:Decrypt", "kms:GenerateDataKey"})
MASTER_ACTIONS = frozenset({"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"})
RDS_ACTIONS = frozenset({"rds:DescribeDBInstances", "rds:DescribeDBClusters"})
RDS_RESOURCES = [
    {"Fn::Sub": "arn:${AWS::Partition}:rds:${AWS::Region}:${AWS::AccountId}:db:*"},
    {"Fn::Sub": "arn:${AWS::Partition}:rds:${AWS::Region}:${AWS::AccountId}:cluster:*"},
]
LOG_ACTIONS = frozenset({"logs:CreateLogStream", "logs:PutLogEvents"})
SECRET_ARN = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${%s}"


@dataclass(frozen=True)
class FunctionSpec:
    code: str
    strategy: str | None
    secrets_parameter: str
    read_only_parameter: str | None  # master (alternating users) or admin (API keys) secrets
    in_vpc: bool
    uses_rds: bool  # master strategies of RDS engines: RDS-managed masters, reader and replica endpoints
    grants: tuple[registry.AwsGrant, ...] = ()  # the engine's own AWS APIs (ElastiCache, MemoryDB users)


def _expected(function: registry.FunctionSpec) -> FunctionSpec:
    """What the registry says a function's resources must be (the rules below assert them)."""
    if function.engine is None:
        read_only: str | None = "ApiKeyAdminSecrets"
    elif function.strategy in registry.MASTER_STRATEGIES:
        read_only = function.engine.template_name + "MasterSecrets"
    else:
        read_only = None
    strategy = function.strategy.value if function.strategy else None
    return FunctionSpec(
        f"functions/{function.folder}",
        strategy,
        function.logical_name + "Secrets",
        read_only,
        function.is_database,
        uses_rds=function.strategy in registry.MASTER_STRATEGIES
        and function.engine is not None
        and function.engine.uses_rds,
        grants=function.engine.aws_grants if function.engine is not None else (),
    )


FUNCTIONS = {f.logical_name + "Function": _expected(f) for f in registry.rotation_functions()}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load(TEMPLATE)


def function_role(template: dict[str, Any], function: str) -> str:
    role = template["Resources"][function]["Properties"]["Role"]
    assert isinstance(role, dict)
    assert set(role) == {"Fn::GetAtt"}
    assert role["Fn::GetAtt"][1] == "Arn"
    name: str = role["Fn::GetAtt"][0]
    return name


def secret_arn(parameter: str) -> dict[str, str]:
    return {"Fn::Sub": SECRET_ARN % parameter}


def test_template_is_what_the_registry_generates() -> None:
    assert check_template(TEMPLATE), "template.yaml is out of date: run `python -m rotation_local template`"


def test_template_functions_five_with_handler_code_and_runtime_expected(template: dict[str, Any]) -> None:
    functions = {k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}
    globals_ = template["Globals"]["Function"]

    assert set(functions) == set(FUNCTIONS)
    assert globals_["Runtime"] == "python3.13"
    assert globals_["Handler"] == "app.lambda_handler"
    assert globals_["Architectures"] == [{"Ref": "Architecture"}]
    assert globals_["Layers"] == [{"Ref": "RotationCoreLayer"}]
    for name, spec in FUNCTIONS.items():
        properties = functions[name]["Properties"]
        assert properties["CodeUri"] == spec.code
        assert (REPO_ROOT / spec.code).is_dir()
        assert properties.get("Environment", {}).get("Variables", {}).get("ROTATION_STRATEGY") == spec.strategy
        assert ("VpcConfig" in properties) is spec.in_vpc, name


def test_template_architecture_default_arm64_with_x86_64_option(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["Architecture"]
    assert parameter["Default"] == "arm64"
    assert parameter["AllowedValues"] == ["arm64", "x86_64"]
    layer = template["Resources"]["RotationCoreLayer"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Properties"]["ContentUri"] == "layers/rotation_core"
    assert sorted(layer["Properties"]["CompatibleArchitectures"]) == ["arm64", "x86_64"]


def test_template_each_secrets_policy_attached_to_one_role(template: dict[str, Any]) -> None:
    policies = resources_of_type(template, "AWS::IAM::Policy")

    assert len(policies) == len(FUNCTIONS)
    for name, policy in policies.items():
        assert len(policy["Properties"]["Roles"]) == 1, f"{name} must attach to one role only"


def test_template_each_function_own_role_trusting_only_lambda(template: dict[str, Any]) -> None:
    roles = [function_role(template, name) for name in FUNCTIONS]
    all_roles = [k for k, v in template["Resources"].items() if v["Type"] == "AWS::IAM::Role"]

    assert len(set(roles)) == len(FUNCTIONS)
    assert sorted(all_roles) == sorted(roles)
    for role in roles:
        trust = template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust == [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ]
        assert "ManagedPolicyArns" not in template["Resources"][role]["Properties"]


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_template_role_statements_least_privilege_only(template: dict[str, Any], function: str) -> None:
    spec = FUNCTIONS[function]
    statements = role_statements(template, function_role(template, function))
    log_group = function.removesuffix("Function") + "LogGroup"
    seen: list[str] = []

    for statement in statements:
        body, actions = statement.body, statement.actions
        assert body["Effect"] == "Allow", statement.source
        assert not any("*" in action for action in actions), f"{statement.source}: wildcard action"
        assert "secretsmanager:GetRandomPassword" not in actions, "passwords are generated locally"
        if actions == ROTATION_ACTIONS:
            assert statement.condition is None
            assert body["Resource"] == secret_arn(spec.secrets_parameter)
            assert body["Condition"] == {
                "StringEquals": {"secretsmanager:resource/AllowRotationLambdaArn": {"Fn::GetAtt": [function, "Arn"]}}
            }
            seen.append("rotate")
        elif actions == MASTER_ACTIONS:
            # Master and admin secrets are described before they are read: one this very function rotates is
            # refused (another team's rotated secret), and RDS's tags locate a master RDS manages.
            assert spec.read_only_parameter is not None, f"{function} must not read other secrets"
            assert statement.condition is None
            assert body["Resource"] == secret_arn(spec.read_only_parameter)
            assert "Condition" not in body
            seen.append("read-only")
        elif actions == RDS_ACTIONS:
            assert spec.uses_rds, f"{function} must not call RDS"
            assert statement.condition is None
            assert body["Resource"] == RDS_RESOURCES  # this account's and region's instances and clusters only
            assert "Condition" not in body
            seen.append("rds")
        elif actions == KMS_ACTIONS:
            assert statement.condition == "HasKmsKey"
            assert body["Resource"] == {"Ref": "KmsKeyArn"}
            allowed = [secret_arn(spec.secrets_parameter)]
            if spec.read_only_parameter:
                allowed.append(secret_arn(spec.read_only_parameter))
            assert body["Condition"]["StringLike"] == {"kms:EncryptionContext:SecretARN": allowed}
            assert body["Condition"]["StringEquals"] == {
                "kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}
            }
            seen.append("kms")
        elif actions == ENI_ACTIONS:
            assert spec.in_vpc, f"{function} runs outside any VPC"
            assert statement.condition == "InVpc"
            assert body["Resource"] == "*"  # the only "*": these actions cannot be scoped further
            seen.append("vpc")
        elif actions == LOG_ACTIONS:
            assert statement.condition is None
            assert body["Resource"] == {"Fn::GetAtt": [log_group, "Arn"]}
            seen.append("logs")
        elif any(actions == set(grant.actions) for grant in spec.grants):
            grant = next(grant for grant in spec.grants if actions == set(grant.actions))
            assert statement.condition is None
            assert "Condition" not in body
            # Only the engine's users whose IDs or names match its parameter, in this account and region.
            assert body["Resource"] == {"Fn::Sub": grant.resource % grant.parameter}
            assert "${AWS::AccountId}" in grant.resource
            assert "${AWS::Region}" in grant.resource
            seen.append(grant.sid)
        else:
            pytest.fail(f"{statement.source}: unexpected actions {sorted(actions)}")
        assert body["Resource"] != "*" or actions == ENI_ACTIONS

    expected = ["rotate", "kms", "logs"] + (["read-only"] if spec.read_only_parameter else [])
    expected += ["vpc"] if spec.in_vpc else []
    expected += ["rds"] if spec.uses_rds else []
    expected += [grant.sid for grant in spec.grants]
    assert sorted(seen) == sorted(expected)


def test_template_invoke_permission_secretsmanager_with_source_account(template: dict[str, Any]) -> None:
    permissions = [v["Properties"] for v in template["Resources"].values() if v["Type"] == "AWS::Lambda::Permission"]

    assert sorted(p["FunctionName"]["Fn::GetAtt"][0] for p in permissions) == sorted(FUNCTIONS)
    for permission in permissions:
        assert permission["Action"] == "lambda:InvokeFunction"
        assert permission["Principal"] == "secretsmanager.amazonaws.com"
        assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}


def lambda_alarms(template: dict[str, Any]) -> list[dict[str, Any]]:
    alarms = [v["Properties"] for v in template["Resources"].values() if v["Type"] == "AWS::CloudWatch::Alarm"]
    return [alarm for alarm in alarms if alarm["Namespace"] == "AWS/Lambda"]


def test_template_errors_alarm_per_function_with_optional_topic(template: dict[str, Any]) -> None:
    alarms = lambda_alarms(template)

    assert sorted(a["Dimensions"][0]["Value"]["Ref"] for a in alarms) == sorted(FUNCTIONS)
    for alarm in alarms:
        assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Errors")
        assert alarm["AlarmActions"] == {
            "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
        }


def test_template_environment_names_known_to_settings(template: dict[str, Any]) -> None:
    known = {value for name, value in vars(settings).items() if name.isupper() and isinstance(value, str)}
    known.add("POWERTOOLS_LOG_LEVEL")
    used = set(template["Globals"]["Function"]["Environment"]["Variables"])
    for name in FUNCTIONS:
        used |= set(template["Resources"][name]["Properties"].get("Environment", {}).get("Variables", {}))

    assert used - known == set()


def test_template_allow_privileged_users_only_where_declared_empty_by_default(template: dict[str, Any]) -> None:
    """The opt-in for privileged users is the operator's, per engine, and off unless set: every alternating-users
    function has it, and the functions of an engine that declares it itself (Valkey's self-managed users)."""
    for function in registry.rotation_functions():
        name = function.logical_name + "Function"
        variables = template["Resources"][name]["Properties"].get("Environment", {}).get("Variables", {})
        declared = any(s.env == settings.ALLOW_PRIVILEGED_USERS for s in function.settings)
        if function.strategy is settings.Strategy.ALTERNATING_USERS:
            assert declared, name
        if declared:
            parameter = variables[settings.ALLOW_PRIVILEGED_USERS]["Ref"]
            assert template["Parameters"][parameter]["Default"] == ""
            assert template["Parameters"][parameter]["Type"] == "String"
        else:
            assert settings.ALLOW_PRIVILEGED_USERS not in variables, name


def test_template_optional_features_default_off(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    for name in ("KmsKeyArn", "AlarmTopicArn"):
        assert parameters[name]["Default"] == ""
    assert parameters["VpcSubnetIds"]["Default"] == ""
    assert parameters["ReservedConcurrency"]["Default"] == 0
    assert template["Conditions"]["InVpc"] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "VpcSubnetIds"}]}, ""]}]
    }


def test_requirements_api_key_and_layer_no_database_driver() -> None:
    drivers = ("psycopg", "pymysql", "mysqlclient")
    for path in (REPO_ROOT / "functions/api_key/requirements.txt", REPO_ROOT / "layers/rotation_core/requirements.txt"):
        lines = [line.split("#")[0].strip().lower() for line in path.read_text().splitlines()]
        assert not [line for line in lines if line.startswith(drivers)], path
    assert "psycopg2-binary==" in (REPO_ROOT / "functions/postgres/requirements.txt").read_text().lower()
    assert "pymysql==" in (REPO_ROOT / "functions/mysql/requirements.txt").read_text().lower()


def test_attach_schedules_days_only_with_policy_defaults() -> None:
    attach = load(ATTACH)
    schedules = {k: v for k, v in attach["Resources"].items() if v["Type"] == "AWS::SecretsManager::RotationSchedule"}

    assert set(schedules) == {
        "PostgresRotationSchedule", "MySqlRotationSchedule", "ValkeyRotationSchedule", "ApiKeyRotationSchedule",
    }  # fmt: skip
    for name, schedule in schedules.items():
        rules = schedule["Properties"]["RotationRules"]
        assert "ScheduleExpression" not in rules, name
        days = "ApiKeyRotationDays" if name.startswith("ApiKey") else "DatabaseRotationDays"
        assert rules["AutomaticallyAfterDays"] == {"Ref": days}
    assert attach["Parameters"]["DatabaseRotationDays"]["Default"] == 90
    assert attach["Parameters"]["ApiKeyRotationDays"]["Default"] == 180


def test_attach_imports_match_template_exports(template: dict[str, Any]) -> None:
    exports = {o["Export"]["Name"]["Fn::Sub"] for o in template["Outputs"].values() if "Export" in o}
    attach = load(ATTACH)
    imports = set()
    for schedule in attach["Resources"].values():
        pattern = schedule["Properties"]["RotationLambdaARN"]["Fn::ImportValue"]["Fn::Sub"]
        parameter = next((name for name in ("PostgresStrategy", "MySqlStrategy") if f"${{{name}}}" in pattern), None)
        strategies = attach["Parameters"][parameter]["AllowedValues"] if parameter else [""]
        for strategy in strategies:
            imports.add(
                pattern.replace("${RotationStackName}", "${AWS::StackName}").replace(f"${{{parameter}}}", strategy)
            )

    assert imports == exports


def test_template_failure_alarm_per_category_telling_what_to_do(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    alarms = {name: r for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    failure_alarms = {name: r for name, r in alarms.items() if r["Properties"]["Namespace"] != "AWS/Lambda"}

    assert len(failure_alarms) == len(Category)
    assert len(alarms) == len(FUNCTIONS) + len(Category)
    for category in Category:
        alarm = failure_alarms[failure_alarm_name(category)]
        properties = alarm["Properties"]
        assert alarm["Condition"] == "CreateFailureAlarms"
        assert properties["Namespace"] == {"Ref": "MetricsNamespace"}
        assert properties["MetricName"] == metrics.STEP_FAILED
        assert properties["Dimensions"] == [
            {"Name": metrics.DEPLOYMENT, "Value": {"Ref": "AWS::StackName"}},
            {"Name": metrics.CATEGORY, "Value": category.value},
        ]
        cause = CAUSES[category]
        assert cause.title in properties["AlarmDescription"]
        assert " ".join(cause.fix.split()) in " ".join(properties["AlarmDescription"].split())
        assert len(properties["AlarmDescription"]) <= 1024
        assert (properties["Statistic"], properties["Threshold"], properties["TreatMissingData"]) == (
            "Sum", 1, "notBreaching",
        )  # fmt: skip
        assert properties["AlarmActions"] == {
            "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
        }
    assert template["Conditions"]["CreateFailureAlarms"] == {"Fn::Equals": [{"Ref": "RotationFailureAlarms"}, "true"]}
    assert template["Parameters"]["RotationFailureAlarms"]["Default"] == "true"


def test_template_metrics_namespace_and_deployment_set_for_every_function(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]

    assert variables[settings.POWERTOOLS_METRICS_NAMESPACE] == {"Ref": "MetricsNamespace"}
    assert variables[settings.METRICS_DEPLOYMENT] == {"Ref": "AWS::StackName"}
    assert template["Parameters"]["MetricsNamespace"]["Default"] == settings.DEFAULT_METRICS_NAMESPACE
    for name in FUNCTIONS:  # no function overrides them
        own = template["Resources"][name]["Properties"].get("Environment", {}).get("Variables", {})
        assert settings.POWERTOOLS_METRICS_NAMESPACE not in own
        assert settings.METRICS_DEPLOYMENT not in own


def test_template_dashboard_optional_and_its_body_json_names_every_function(template: dict[str, Any]) -> None:
    dashboard = template["Resources"]["RotationHealthDashboard"]
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    names = {name: f"{name}-resolved" for name in FUNCTIONS}
    substituted = re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: names.get(m.group(1), "x"), body)

    assert dashboard["Type"] == "AWS::CloudWatch::Dashboard"
    assert dashboard["Condition"] == "CreateDashboard"
    assert template["Parameters"]["RotationDashboard"]["Default"] == "false"
    widgets = json.loads(substituted)["widgets"]
    text = json.dumps(widgets)
    for resolved in names.values():
        assert resolved in text
    for metric in (metrics.STEP_FAILED, metrics.ROTATION_COMPLETED, metrics.STEP_DURATION):
        assert metric in text
    assert set(re.findall(r"\$\{([A-Za-z0-9:]+)\}", body)) == {
        "AWS::StackName", "AWS::Region", "MetricsNamespace", *FUNCTIONS,
    }  # fmt: skip


def test_template_monitoring_adds_no_permission_to_any_role(template: dict[str, Any]) -> None:
    """EMF documents are log lines: the functions write them with the log permission they already have."""
    for function in FUNCTIONS:
        actions = {a for s in role_statements(template, function_role(template, function)) for a in s.actions}
        assert not {a for a in actions if a.startswith("cloudwatch:")}


def _templates_with_roles() -> list[tuple[str, dict[str, Any]]]:
    """template.yaml and the release template of each architecture (the templates that create roles)."""
    zips = {"postgres": "pg.zip", "mysql": "my.zip", "valkey": "vk.zip", "api_key": "ak.zip"}
    releases = [(a, loads(render_template(ReleaseLayout(a, "layer.zip", zips)))) for a in ARCHITECTURES]
    return [("template.yaml", load(TEMPLATE)), *releases]


def test_template_permissions_boundary_parameter_empty_by_default_and_takes_policy_arns(
    template: dict[str, Any],
) -> None:
    parameter = template["Parameters"]["PermissionsBoundary"]
    pattern = parameter["AllowedPattern"]

    assert parameter["Default"] == ""
    assert template["Conditions"]["HasPermissionsBoundary"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "PermissionsBoundary"}, ""]}]
    }
    for accepted in (
        "",
        BOUNDARY,
        "arn:aws-us-gov:iam::111122223333:policy/b",
        "arn:aws:iam::aws:policy/PowerUserAccess",
    ):
        assert re.fullmatch(pattern, accepted), accepted
    for refused in ("arn:aws:iam::111122223333:role/b", "my-boundary", "arn:aws:iam::1111:policy/b"):
        assert not re.fullmatch(pattern, refused), refused


@pytest.mark.parametrize(("name", "candidate"), _templates_with_roles(), ids=lambda v: v if isinstance(v, str) else "")
def test_template_permissions_boundary_on_every_role_when_set_absent_when_empty(
    name: str, candidate: dict[str, Any]
) -> None:
    roles = [k for k, v in candidate["Resources"].items() if v["Type"] == "AWS::IAM::Role"]
    with_boundary = parameter_values(candidate, {"PermissionsBoundary": BOUNDARY})
    without = parameter_values(candidate)

    assert len(roles) == len(FUNCTIONS), name
    for role in roles:
        properties = candidate["Resources"][role]["Properties"]
        assert resolve_ifs(properties, candidate, with_boundary)["PermissionsBoundary"] == BOUNDARY, (name, role)
        assert "PermissionsBoundary" not in resolve_ifs(properties, candidate, without), (name, role)
    # No other resource creates an IAM principal the boundary would miss.
    kinds = {v["Type"] for v in candidate["Resources"].values()}
    assert not kinds & {"AWS::IAM::User", "AWS::IAM::Group", "AWS::Serverless::StateMachine", "AWS::Serverless::Api"}
    functions = [v for v in candidate["Resources"].values() if v["Type"] == "AWS::Serverless::Function"]
    assert all("Role" in f["Properties"] and "Policies" not in f["Properties"] for f in functions)
