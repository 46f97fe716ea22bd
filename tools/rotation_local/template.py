"""``template.yaml`` generated from the registry: every function is an instance of one definition.

``python -m rotation_local template`` writes it; ``--check`` fails when the committed file differs
(``tests/unit/test_template.py`` runs the same comparison). Each function of
:func:`rotation_core.registry.rotation_functions` gets the same six resources (log group, role,
secrets policy, function, invoke permission, errors alarm), named ``<LogicalName><Resource>`` as
before generation, so an existing stack sees no logical id change. What differs between functions
comes from the registry: the code folder, the strategy, the secrets it reads besides its own (master
or admin secrets), its settings, whether it may run in a VPC.

The SAR metadata (``AWS::ServerlessRepo::Application``) comes from pyproject.toml through
:mod:`rotation_release`. With a :class:`ReleaseLayout` the same generator writes a release's template
of one architecture (``python -m rotation_release artifacts``): code from the release's zips.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rotation_core.errors import Category
from rotation_core.registry import (
    API_KEY_FUNCTION,
    MASTER_STRATEGIES,
    AwsGrant,
    FunctionSpec,
    SettingSpec,
    engine_settings,
    engines,
    rotation_functions,
    shared_settings,
)
from rotation_core.settings import DEFAULT_METRICS_NAMESPACE, METRICS_DEPLOYMENT, POWERTOOLS_METRICS_NAMESPACE
from rotation_release import project as release_project
from rotation_release.sar import METADATA_KEY, application_metadata

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
# Not secrets: a pattern of secret names and an ARN template (flagged by their wording).
SECRET_NAME_PATTERN = '"^[A-Za-z0-9/_+=.@!*?-]+$"'  # noqa: S105  # nosec B105
SECRET_ARN = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${%s}"  # noqa: S105  # nosec B105


@dataclass(frozen=True)
class ReleaseLayout:
    """What a release template changes: one architecture, code from the release's zip files (`sam
    package` uploads them unchanged), SAR metadata naming that architecture."""

    architecture: str
    layer_zip: str
    function_zips: Mapping[str, str] = field(default_factory=dict)  # function folder -> zip file name


@dataclass(frozen=True)
class Parameter:
    name: str
    lines: tuple[str, ...]  # the parameter's body, indented under its name


def _camel(env: str) -> str:
    return "".join(part.capitalize() for part in env.lower().split("_"))


def _quoted(value: str) -> str:
    """A YAML scalar for a parameter default (single quotes doubled)."""
    if value in ("true", "false") or value == "" or re.search(r"[^A-Za-z0-9_./-]", value):
        return "'" + value.replace("'", "''") + "'" if value != "" else '""'
    return value


def _quoted_choice(value: str) -> str:
    """YAML would read true/false/yes/no and numbers as other types: quote them."""
    plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", value) and value.lower() not in ("true", "false", "yes", "no")
    return value if plain else f'"{value}"'


def description_lines(text: str) -> list[str]:
    """``Description: ...`` on one line, or folded (``>-``) when long or when YAML would misread it."""
    if len(text) <= 100 and ": " not in text and " #" not in text and not text.startswith(("'", '"', "!")):
        return [f"Description: {text}"]
    lines, line = ["Description: >-"], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > 100:
            lines.append("  " + line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, "  " + line]


def setting_parameter(setting: SettingSpec, prefix: str) -> Parameter:
    name = setting.parameter or prefix + _camel(setting.env)
    if setting.number_range is not None:
        low, high = setting.number_range
        body = ["Type: Number", f"Default: {setting.default}", f"MinValue: {low}", f"MaxValue: {high}"]
    else:
        body = ["Type: String", f"Default: {_quoted(setting.default)}"]
        if setting.choices:
            body.append(f"AllowedValues: [{', '.join(_quoted_choice(c) for c in setting.choices)}]")
    body += description_lines(f"{setting.env} {setting.description}.")
    return Parameter(name, tuple(body))


# Settings every database function reads, with the template parameter each one is set from.
DATABASE_SETTINGS = (
    SettingSpec(
        "DB_CA_BUNDLE",
        "is the path of a PEM bundle to verify database certificates with; it replaces the defaults. Empty: the "
        "runtime's system bundle plus the Amazon RDS CA bundle in the layer (/opt/python/certs/rds-global-bundle.pem, "
        "regions listed in layers/rotation_core/certs/README.md), which covers RDS, Aurora, RDS Proxy and servers "
        "with public certificates",
        "",
        parameter="DbCaBundle",
    ),
    SettingSpec("DB_CONNECT_TIMEOUT", "in seconds", "5", (1, 60), parameter="DbConnectTimeout"),
    SettingSpec(
        "TEST_QUERY", "run by testSecret with the new credentials (empty = SELECT 1)", "", parameter="TestQuery"
    ),
    SettingSpec("PASSWORD_LENGTH", "of generated database passwords", "32", (8, 4096), parameter="PasswordLength"),
    SettingSpec(
        "EXCLUDE_NUMBERS", "from generated passwords", "false", choices=("true", "false"), parameter="ExcludeNumbers"
    ),
    SettingSpec(
        "EXCLUDE_PUNCTUATION",
        "from generated passwords",
        "false",
        choices=("true", "false"),
        parameter="ExcludePunctuation",
    ),
    SettingSpec(
        "EXCLUDE_UPPERCASE",
        "from generated passwords",
        "false",
        choices=("true", "false"),
        parameter="ExcludeUppercase",
    ),
    SettingSpec(
        "EXCLUDE_LOWERCASE",
        "from generated passwords",
        "false",
        choices=("true", "false"),
        parameter="ExcludeLowercase",
    ),
    SettingSpec(
        "REQUIRE_EACH_INCLUDED_TYPE",
        "in generated passwords",
        "true",
        choices=("true", "false"),
        parameter="RequireEachIncludedType",
    ),
)
# The order of the database function's environment (the template's order before generation).
_DATABASE_ENV_ORDER = (
    "EXCLUDE_CHARACTERS", "PASSWORD_LENGTH", "EXCLUDE_NUMBERS", "EXCLUDE_PUNCTUATION", "EXCLUDE_UPPERCASE",
    "EXCLUDE_LOWERCASE", "REQUIRE_EACH_INCLUDED_TYPE", "DB_CA_BUNDLE", "DB_CONNECT_TIMEOUT", "TEST_QUERY",
)  # fmt: skip


def exclude_characters_setting(function: FunctionSpec) -> SettingSpec:
    assert function.engine is not None
    why = " (the default keeps URLs and .pgpass intact)" if function.engine.name == "postgres" else ""
    return SettingSpec(
        "EXCLUDE_CHARACTERS",
        f"for {function.engine.display_name} passwords{why}",
        function.engine.default_exclude_characters,
        parameter=function.engine.template_name + "ExcludeCharacters",
    )


def function_environment(function: FunctionSpec) -> list[tuple[str, str]]:
    """(variable, value) pairs of a function's environment; values are template expressions."""
    if not function.is_database:
        return [(s.env, f"!Ref {s.parameter or _camel(s.env)}") for s in function.settings]
    assert function.strategy is not None
    assert function.engine is not None
    prefix = function.engine.template_name
    by_env = {s.env: s for s in (*DATABASE_SETTINGS, exclude_characters_setting(function))}
    pairs = [("ROTATION_STRATEGY", function.strategy.value)]
    pairs += [(env, f"!Ref {by_env[env].parameter}") for env in _DATABASE_ENV_ORDER]
    pairs += [(s.env, f"!Ref {s.parameter or prefix + _camel(s.env)}") for s in function.settings]
    return pairs


def read_only_secrets(function: FunctionSpec) -> tuple[str, str] | None:
    """(statement id, parameter) of the other secrets a function reads: master secrets or admin secrets."""
    if function.engine is None:
        return ("ReadAdminSecrets", "ApiKeyAdminSecrets")
    if function.strategy in MASTER_STRATEGIES:
        return ("ReadMasterSecrets", function.engine.template_name + "MasterSecrets")
    return None


def _strategy_words(function: FunctionSpec) -> str:
    assert function.strategy is not None
    return function.strategy.value.replace("_", "-")


def _function_title(function: FunctionSpec) -> str:
    """'the PostgreSQL single-user rotation function', for descriptions."""
    if function.engine is None:
        return "the API-key rotation function"
    return f"the {function.engine.display_name} {_strategy_words(function)} rotation function"


def _indent(lines: Iterable[str], spaces: int) -> list[str]:
    return [(" " * spaces + line) if line else "" for line in lines]


def _architecture_parameter(release: ReleaseLayout | None) -> Parameter:
    if release is None:
        return Parameter(
            "Architecture",
            (
                "Type: String",
                "Default: arm64",
                "AllowedValues: [arm64, x86_64]",
                "Description: Instruction set of the functions (the layer is pure Python and fits both).",
            ),
        )
    return Parameter(
        "Architecture",
        (
            "Type: String",
            f"Default: {release.architecture}",
            f"AllowedValues: [{release.architecture}]",
            *description_lines(
                f"Instruction set of the functions: this release's code is built for {release.architecture} only "
                "(the other architecture is a separate application)."
            ),
        ),
    )


def parameters_section(release: ReleaseLayout | None = None) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The Parameters section's lines, and the parameter groups (label, names) for the console."""
    secrets: list[Parameter] = [_architecture_parameter(release)]
    for function in rotation_functions():
        secrets.append(_secrets_parameter(function))
        extra = read_only_secrets(function)
        if extra is not None and not any(p.name == extra[1] for p in secrets):
            secrets.append(_read_only_parameter(function, extra[1]))
    for spec in engines().values():
        secrets += [_grant_parameter(grant) for grant in spec.aws_grants]
    secret_names = [p.name for p in secrets[1:]]
    kms = Parameter(
        "KmsKeyArn",
        (
            "Type: String",
            'Default: ""',
            'AllowedPattern: "^$|^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$"',
            "Description: >-",
            "  ARN of the customer-managed KMS key that encrypts the secrets (key ARN, not an alias). Empty when",
            "  they use the AWS managed key aws/secretsmanager, which needs no grant.",
        ),
    )
    database = [setting_parameter(s, "") for s in DATABASE_SETTINGS]
    per_engine: list[Parameter] = []
    for spec in engines().values():
        function = next(f for f in rotation_functions() if f.engine == spec)
        per_engine.append(setting_parameter(exclude_characters_setting(function), ""))
    setting_parameters = [
        setting_parameter(s, spec.template_name) for spec in engines().values() for s in engine_settings(spec)
    ]
    setting_parameters += [setting_parameter(s, "") for s in shared_settings()]
    api = [setting_parameter(s, "") for s in API_KEY_FUNCTION.settings]
    database_group = [p.name for p in database[:3]] + ["PasswordLength"]
    database_group += [p.name for p in (*per_engine, *database[4:], *setting_parameters)]
    groups = [
        ("Which secrets each function may rotate", [*secret_names, "KmsKeyArn"]),
        ("Permissions boundary (organisations that require one on every role)", [PERMISSIONS_BOUNDARY.name]),
        ("Network (database functions only)", ["VpcSubnetIds", "VpcSecurityGroupIds", "SecretsManagerEndpoint"]),
        (
            "Runtime",
            [
                "Architecture",
                "MemorySize",
                "DatabaseFunctionTimeout",
                "ApiKeyFunctionTimeout",
                "ReservedConcurrency",
                "LogRetentionInDays",
                "LogLevel",
            ],
        ),
        ("Database rotation", database_group),
        ("API key rotation", [p.name for p in api]),
        ("Alarms and metrics", ["AlarmTopicArn", *(p.name for p in MONITORING_PARAMETERS)]),
    ]
    ordered = [*secrets, kms, PERMISSIONS_BOUNDARY, *_STATIC_PARAMETERS, *database[:4], *per_engine, *database[4:],
               *setting_parameters, *api, _ALARM_TOPIC, *MONITORING_PARAMETERS]  # fmt: skip
    lines = ["Parameters:"]
    for parameter in ordered:
        lines.append(f"  {parameter.name}:")
        lines += _indent(parameter.lines, 4)
    return lines, groups


def _secrets_parameter(function: FunctionSpec) -> Parameter:
    default = f"rotation/{function.folder.replace('_', '-')}"
    if function.strategy is not None:
        default += "/" + _strategy_words(function)
    description: tuple[str, ...]
    if function is API_KEY_FUNCTION:
        description = ("Description: Names of the API-key secrets the API-key function may rotate (as above).",)
    elif function.engine is not None and function == next(iter(rotation_functions())):
        description = (
            "Description: >-",
            f"  Names of the secrets the {function.engine.display_name} {_strategy_words(function)} function may "
            "rotate, in this account and region",
            '  (the part of the secret ARN after "secret:"; IAM wildcards * and ? allowed; Secrets Manager adds a',
            "  6-character suffix, so end an exact name with -??????).",
        )
    else:
        assert function.engine is not None
        description = (
            f"Description: Names of the secrets the {function.engine.display_name} {_strategy_words(function)} "
            "function may rotate (as above).",
        )
    return Parameter(
        function.logical_name + "Secrets",
        ("Type: String", f"Default: {default}/*", f"AllowedPattern: {SECRET_NAME_PATTERN}", *description),
    )


def _grant_parameter(grant: AwsGrant) -> Parameter:
    return Parameter(
        grant.parameter,
        ("Type: String", f"Default: {_quoted(grant.default)}", 'AllowedPattern: "^[A-Za-z0-9_.*?-]+$"',
         *description_lines(grant.description + ".")),
    )  # fmt: skip


def _grant_statement(grant: AwsGrant) -> list[str]:
    """The statement of one AWS grant of an engine: its actions on the resources its parameter names, nothing else."""
    return [
        f"- Sid: {grant.sid}",
        "  Effect: Allow",
        f"  Action: [{', '.join(grant.actions)}]",
        f"  Resource: !Sub {grant.resource % grant.parameter}",
    ]


def _uses_rds(function: FunctionSpec) -> bool:
    """Master strategies of engines RDS runs: RDS-managed masters, reader and replica endpoints."""
    return function.strategy in MASTER_STRATEGIES and function.engine is not None and function.engine.uses_rds


def _read_only_parameter(function: FunctionSpec, name: str) -> Parameter:
    description: tuple[str, ...]
    if function.engine is None:
        default = "rotation/api-key-admin/*"
        description = (
            'Description: Names of the provider admin secrets named by "adminarn" (read and described only).',
        )
    else:
        default = f"rotation/{function.engine.name}/master/*"
        description = (
            "Description: >-",
            f'  Names of the {function.engine.display_name} master secrets named by "masterarn"; the '
            "functions that use a master (alternating users; dual passwords when a secret names one) may only",
            "  read and describe them.",
            "  Master secrets RDS manages are named rds!db-<id> or rds!cluster-<id> (e.g. rds!*).",
        )
    return Parameter(
        name, ("Type: String", f"Default: {default}", f"AllowedPattern: {SECRET_NAME_PATTERN}", *description)
    )


def function_resources(function: FunctionSpec, release: ReleaseLayout | None = None) -> list[str]:
    """The six resources of one function, as template lines (indented under Resources)."""
    name = function.logical_name
    code = f"functions/{function.folder}" if release is None else release.function_zips[function.folder]
    title = _function_title(function)
    extra = read_only_secrets(function)
    lines = [
        f"{name}LogGroup:",
        "  Type: AWS::Logs::LogGroup",
        "  DeletionPolicy: Retain",
        "  UpdateReplacePolicy: Retain",
        "  Properties:",
        "    RetentionInDays: !Ref LogRetentionInDays",
        "  Metadata:",
        "    checkov:",
        "      skip:",
        "        - id: CKV_AWS_158",
        "          comment: >-",
        "            Log groups are encrypted by CloudWatch Logs with its own keys; the rotation logs hold no",
        "            secret values (the test suite's leak guard checks every log line), so a CMK adds cost only.",
        "",
        f"{name}Role:",
        "  Type: AWS::IAM::Role",
        "  Properties:",
        f"    Description: Execution role of {title}",
        "    PermissionsBoundary: !If [HasPermissionsBoundary, !Ref PermissionsBoundary, !Ref AWS::NoValue]",
        "    AssumeRolePolicyDocument:",
        '      Version: "2012-10-17"',
        "      Statement:",
        "        - Effect: Allow",
        "          Principal: { Service: lambda.amazonaws.com }",
        "          Action: sts:AssumeRole",
        "    Policies:",
        "      - PolicyName: write-own-logs",
        "        PolicyDocument:",
        '          Version: "2012-10-17"',
        "          Statement:",
        "            - Sid: WriteOwnLogGroup",
        "              Effect: Allow",
        "              Action: [logs:CreateLogStream, logs:PutLogEvents]",
        f"              Resource: !GetAtt {name}LogGroup.Arn",
    ]
    if function.is_database:
        lines += _indent(_VPC_POLICY, 6)
    lines += [
        "",
        f"{name}SecretsPolicy:",
        "  Type: AWS::IAM::Policy",
        "  Properties:",
        "    PolicyName: rotate-own-secrets",
        f"    Roles: [!Ref {name}Role]",
        "    PolicyDocument:",
        '      Version: "2012-10-17"',
        "      Statement:",
        "        - Sid: RotateSecretsAssignedToThisFunction",
        "          Effect: Allow",
        "          Action:",
        "            - secretsmanager:DescribeSecret",
        "            - secretsmanager:GetSecretValue",
        "            - secretsmanager:PutSecretValue",
        "            - secretsmanager:UpdateSecretVersionStage",
        f"          Resource: !Sub {SECRET_ARN % (name + 'Secrets')}",
        "          Condition:",
        "            StringEquals:",
        f"              secretsmanager:resource/AllowRotationLambdaArn: !GetAtt {name}Function.Arn",
    ]
    if extra is not None:
        sid, parameter = extra
        # DescribeSecret: a master or admin secret this very function rotates is refused (RotationLambdaARN),
        # and the tags RDS puts on a master secret it manages name its DB instance or cluster.
        lines += [f"        - Sid: {sid}", "          Effect: Allow"]
        lines += ["          Action: [secretsmanager:GetSecretValue, secretsmanager:DescribeSecret]"]
        lines += [f"          Resource: !Sub {SECRET_ARN % parameter}"]
    if _uses_rds(function):
        lines += _indent(_RDS_STATEMENT, 8)
    if function.engine is not None:
        for grant in function.engine.aws_grants:
            lines += _indent(_grant_statement(grant), 8)
    lines += [
        "        - !If",
        "          - HasKmsKey",
        "          - Sid: UseSecretsKeyThroughSecretsManager",
        "            Effect: Allow",
        "            Action: [kms:Decrypt, kms:GenerateDataKey]",
        "            Resource: !Ref KmsKeyArn",
        "            Condition:",
        "              StringEquals:",
        "                kms:ViaService: !Sub secretsmanager.${AWS::Region}.amazonaws.com",
        "              StringLike:",
        "                kms:EncryptionContext:SecretARN:",
        f"                  - !Sub {SECRET_ARN % (name + 'Secrets')}",
    ]
    if extra is not None:
        lines.append(f"                  - !Sub {SECRET_ARN % extra[1]}")
    timeout = "DatabaseFunctionTimeout" if function.is_database else "ApiKeyFunctionTimeout"
    lines += [
        "          - !Ref AWS::NoValue",
        "",
        f"{name}Function:",
        "  Type: AWS::Serverless::Function",
        "  Properties:",
        f"    Description: Rotates {_rotates(function)}",
        f"    CodeUri: {code}",
        f"    Role: !GetAtt {name}Role.Arn",
        f"    Timeout: !Ref {timeout}",
        "    LoggingConfig:",
        f"      LogGroup: !Ref {name}LogGroup",
    ]
    if function.is_database:
        lines += [
            "    VpcConfig: !If",
            "      - InVpc",
            "      - SubnetIds: !Ref VpcSubnetIds",
            "        SecurityGroupIds: !Ref VpcSecurityGroupIds",
            "      - !Ref AWS::NoValue",
        ]
    lines += ["    Environment:", "      Variables:"]
    lines += [f"        {env}: {value}" for env, value in function_environment(function)]
    lines += [
        "  Metadata:",
        "    checkov:",
        "      skip:",
        "        - id: CKV_AWS_116",
        "          comment: Secrets Manager invokes rotation functions synchronously and retries itself; a DLQ "
        "never receives anything.",
    ]
    if not function.is_database:
        lines += [
            "        - id: CKV_AWS_117",
            "          comment: The function calls the providers' public APIs; a VPC would only add a NAT gateway in "
            "the path.",
        ]
    lines += [
        "        - id: CKV_AWS_173",
        "          comment: The environment holds settings only, never credentials; Lambda encrypts it at rest with "
        "its own key.",
        "",
        f"{name}InvokePermission:",
        "  Type: AWS::Lambda::Permission",
        "  Properties:",
        f"    FunctionName: !GetAtt {name}Function.Arn",
        "    Action: lambda:InvokeFunction",
        "    Principal: secretsmanager.amazonaws.com",
        "    SourceAccount: !Ref AWS::AccountId",
        "",
        f"{name}ErrorsAlarm:",
        "  Type: AWS::CloudWatch::Alarm",
        "  Properties:",
        f"    AlarmDescription: {title[0].upper() + title[1:]} reported errors (a rotation step failed).",
        "    Namespace: AWS/Lambda",
        "    MetricName: Errors",
        "    Dimensions:",
        "      - Name: FunctionName",
        f"        Value: !Ref {name}Function",
        *_ALARM_ON_ANY,
    ]
    return lines


def _rotates(function: FunctionSpec) -> str:
    if function.engine is None:
        from rotation_core.providers import PROVIDERS

        names = ", ".join(spec.display_name for spec in PROVIDERS.values() if spec.name != "http")
        return f"third-party API keys ({names}, generic HTTP)"
    return f"{function.engine.display_name} passwords, {_strategy_words(function)} strategy"


def _section_comment(function: FunctionSpec) -> list[str]:
    if function.engine is None:
        return [
            "# Third-party API keys. Outside any VPC (it calls the providers' public APIs) and without a",
            "# database driver: functions/api_key has no requirements of its own.",
        ]
    return [
        f"# {function.engine.display_name}, {function.strategy.value.replace('_', ' ') if function.strategy else ''}"
    ]


def outputs_section() -> list[str]:
    lines = ["Outputs:", "  RotationCoreLayerArn:", "    Description: The shared layer version",
             "    Value: !Ref RotationCoreLayer"]  # fmt: skip
    for function in rotation_functions():
        if function.engine is None:
            what = "third-party API key secrets"
        else:
            what = f"{function.engine.display_name} secrets, {_strategy_words(function)} strategy"
        name = function.logical_name + "FunctionArn"
        lines += [
            f"  {name}:",
            f"    Description: Rotation function for {what}",
            f"    Value: !GetAtt {function.logical_name}Function.Arn",
            f'    Export: {{ Name: !Sub "${{AWS::StackName}}-{name}" }}',
        ]
    return lines


def sar_metadata_lines(release: ReleaseLayout | None = None) -> list[str]:
    """``AWS::ServerlessRepo::Application`` (indented under Metadata), from pyproject.toml."""
    metadata = application_metadata(release_project.load(), release.architecture if release else None)
    lines = [f"  {METADATA_KEY}:"]
    for key, value in metadata.items():
        rendered = "[" + ", ".join(json.dumps(v) for v in value) + "]" if isinstance(value, list) else json.dumps(value)
        lines.append(f"    {key}: {rendered}")
    return lines


def layer_resource(release: ReleaseLayout | None = None) -> list[str]:
    """The shared layer (indented under Resources)."""
    lines = [
        "  # " + "-" * 93,
        "  # The shared layer: rotation_core + Powertools, pure Python (layers/rotation_core/Makefile fails",
        "  # the build if a compiled module gets in). Database drivers ship with the functions that use them.",
        "  RotationCoreLayer:",
        "    Type: AWS::Serverless::LayerVersion",
        "    Properties:",
        "      Description: rotation_core (the rotation state machine) and Powertools for AWS Lambda",
        f"      ContentUri: {'layers/rotation_core' if release is None else release.layer_zip}",
        "      CompatibleRuntimes: [python3.13]",
        "      CompatibleArchitectures: [arm64, x86_64]",
        "      RetentionPolicy: Delete",
    ]
    if release is None:
        lines += ["    Metadata:", "      BuildMethod: makefile"]
    return lines


def render_template(release: ReleaseLayout | None = None) -> str:
    """template.yaml, or with ``release`` the release template of one architecture."""
    parameters, groups = parameters_section(release)
    lines = list(_HEADER) if release is None else _release_header(release)
    lines += ["Metadata:", *sar_metadata_lines(release), "  AWS::CloudFormation::Interface:", "    ParameterGroups:"]
    for label, names in groups:
        lines.append(f"      - Label: {{ default: {label} }}")
        if len(names) <= 3:
            lines.append(f"        Parameters: [{', '.join(names)}]")
        else:
            lines.append("        Parameters:")
            lines += [f"          - {name}" for name in names]
    lines += ["", *parameters, "", *_MIDDLE, *layer_resource(release)]
    for function in rotation_functions():
        lines += [
            "",
            "  # " + "-" * 93,
            *_indent(_section_comment(function), 2),
            *_indent(function_resources(function, release), 2),
        ]
    lines += ["", *_indent(monitoring_resources(), 2)]
    lines += ["", *outputs_section()]
    return "\n".join(lines) + "\n"


def write_template(path: Path = TEMPLATE_PATH) -> None:
    path.write_text(render_template(), encoding="utf-8")


def check_template(path: Path = TEMPLATE_PATH) -> bool:
    """True when the committed template is what the registry generates."""
    return path.exists() and path.read_text(encoding="utf-8") == render_template()


def _release_header(release: ReleaseLayout) -> list[str]:
    version = release_project.load().version
    return [
        *_HEADER[:7],
        "",
        f"# Release {version} for {release.architecture}, GENERATED by `python -m rotation_release artifacts` from the",
        "# same registry as template.yaml (tools/rotation_local/template.py). CodeUri and ContentUri name this",
        "# release's zip files, whose digests SHA256SUMS lists: `sam package` uploads them unchanged and",
        "# `sam publish` publishes the packaged template (docs/releasing.md). The least-privilege rules are",
        "# template.yaml's, listed in its header and asserted by tests/unit/test_template.py.",
        "",
    ]


# Alternating users only: where an RDS-managed master logs in, and which endpoints reach its database.
# Both actions are List-level and resource-scoped (db / cluster ARNs); finding the database a master
# secret's host names lists the region's instances and clusters, so the name part cannot be narrower.
# Every alarm fires on one failure in five minutes, and notifies the optional topic.
_ALARM_ON_ANY = (
    "    Statistic: Sum",
    "    Period: 300",
    "    EvaluationPeriods: 1",
    "    Threshold: 1",
    "    ComparisonOperator: GreaterThanOrEqualToThreshold",
    "    TreatMissingData: notBreaching",
    "    AlarmActions: !If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]",
)

_RDS_STATEMENT = (
    "- Sid: DescribeRdsDatabasesOfMasterSecrets",
    "  Effect: Allow",
    "  Action: [rds:DescribeDBInstances, rds:DescribeDBClusters]",
    "  Resource:",
    "    - !Sub arn:${AWS::Partition}:rds:${AWS::Region}:${AWS::AccountId}:db:*",
    "    - !Sub arn:${AWS::Partition}:rds:${AWS::Region}:${AWS::AccountId}:cluster:*",
)

_VPC_POLICY = (
    "- !If",
    "  - InVpc",
    "  - PolicyName: vpc-network-interfaces",
    "    PolicyDocument:",
    '      Version: "2012-10-17"',
    "      Statement:",
    "        - Sid: ManageVpcNetworkInterfaces",
    "          Effect: Allow",
    "          Action:",
    "            - ec2:CreateNetworkInterface",
    "            - ec2:DescribeNetworkInterfaces",
    "            - ec2:DescribeSubnets",
    "            - ec2:DeleteNetworkInterface",
    "            - ec2:AssignPrivateIpAddresses",
    "            - ec2:UnassignPrivateIpAddresses",
    '          Resource: "*"',
    "  - !Ref AWS::NoValue",
)

_HEADER = (
    'AWSTemplateFormatVersion: "2010-09-09"',
    "Transform: AWS::Serverless-2016-10-31",
    "Description: >-",
    "  Secrets Manager rotation functions: PostgreSQL and MySQL/MariaDB (single user, alternating users, dual",
    "  passwords), Valkey/Redis OSS users (ElastiCache, MemoryDB, self-managed) and third-party API keys. Each",
    "  function has its own least-privilege role; attach them to secrets with examples/attach-rotation.yaml, the",
    "  console or `aws secretsmanager rotate-secret`.",
    "",
    "# GENERATED by `python -m rotation_local template` (tools/rotation_local/template.py) from the engine",
    "# registry: edit the generator or the registry, not this file. tests/unit/test_template.py fails when",
    "# the two disagree.",
    "#",
    "# Least privilege, per function (tests/unit/test_template.py asserts every rule below):",
    "#   - DescribeSecret, GetSecretValue, PutSecretValue and UpdateSecretVersionStage only on the secrets",
    "#     matching that function's name pattern AND only while the secret names that very function as its",
    "#     rotation function (condition secretsmanager:resource/AllowRotationLambdaArn).",
    "#   - secretsmanager:GetRandomPassword is NOT granted at all: the functions generate passwords locally",
    "#     with Python's `secrets` module, so they never call it. AWS's examples grant it on \"*\"; leaving",
    "#     it out is strictly tighter.",
    "#   - Read-only GetSecretValue and DescribeSecret on master secrets (alternating users) or admin secrets",
    "#     (API keys) only, for the functions that read them: DescribeSecret shows whether that secret is",
    "#     rotated by the same function (then it is refused), and the tags of a master secret RDS manages name",
    "#     its database.",
    "#   - rds:DescribeDBInstances / rds:DescribeDBClusters on this account's and region's DB instances and",
    "#     clusters, only for the functions of RDS engines that use a master (locate an RDS-managed master, prove",
    "#     a reader or replica endpoint belongs to the master's database).",
    "#   - Valkey/Redis: elasticache:DescribeUsers / ListTagsForResource / ModifyUser and memorydb:DescribeUsers /",
    "#     ListTags / UpdateUser only on this account's and region's users whose IDs (names) match",
    "#     ValkeyElastiCacheUsers (ValkeyMemoryDbUsers); the function changes a user only when its tag",
    "#     secrets-rotation:secret-arn names the rotated secret.",
    "#   - kms:Decrypt / kms:GenerateDataKey only when KmsKeyArn is given, only through Secrets Manager and",
    "#     only for the secrets the function may touch (encryption context SecretARN).",
    '#   - EC2 network-interface actions (the only "*" resource: those actions cannot be scoped further)',
    "#     only for the database functions and only when VpcSubnetIds is given.",
    "#   - Logs: create streams and write events in the function's own log group only.",
    "#   - PermissionsBoundary, when given, is the permissions boundary of every role (docs/deploy.md lists",
    "#     what it must allow, generated from these roles).",
    "",
)

_STATIC_PARAMETERS = (
    Parameter("VpcSubnetIds", (
        "Type: CommaDelimitedList",
        'Default: ""',
        "Description: >-",
        "  Subnets for the database functions when the databases are only reachable in a VPC (empty: no VPC).",
        "  The subnets need a route to Secrets Manager: an interface VPC endpoint or a NAT gateway.",
    )),
    Parameter("VpcSecurityGroupIds", (
        "Type: CommaDelimitedList",
        'Default: ""',
        "Description: Security groups for the database functions (required with VpcSubnetIds).",
    )),
    Parameter("SecretsManagerEndpoint", (
        "Type: String",
        'Default: ""',
        "Description: >-",
        "  Secrets Manager endpoint URL (SECRETS_MANAGER_ENDPOINT), e.g. a VPC endpoint's DNS name when its",
        "  private DNS is off. Empty: the regional endpoint.",
    )),
    Parameter("MemorySize", (
        "Type: Number",
        "Default: 256",
        "MinValue: 128",
        "MaxValue: 3008",
        "Description: Memory of each function in MB (CPU grows with it; 256 keeps cold starts short).",
    )),
    Parameter("DatabaseFunctionTimeout", (
        "Type: Number",
        "Default: 60",
        "MinValue: 15",
        "MaxValue: 900",
        "Description: >-",
        "  Timeout of the database functions in seconds. Each step connects at most a few times with",
        "  DbConnectTimeout each.",
    )),
    Parameter("ApiKeyFunctionTimeout", (
        "Type: Number",
        "Default: 120",
        "MinValue: 30",
        "MaxValue: 900",
        "Description: >-",
        "  Timeout of the API-key function in seconds; must cover ApiVerifyAttempts x (ApiVerifyDelay +",
        "  ApiTimeout) for testSecret.",
    )),
    Parameter("ReservedConcurrency", (
        "Type: Number",
        "Default: 0",
        "MinValue: 0",
        "Description: >-",
        "  Reserved concurrency per function; 0 reserves none (a reservation takes from the account's",
        "  unreserved pool, which new accounts cannot spare).",
    )),
    Parameter("LogRetentionInDays", (
        "Type: Number",
        "Default: 365",
        "AllowedValues: [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, "
        "2922, 3288, 3653]",
        "Description: Days to keep the functions' logs (rotation logs are audit records; they never hold secret "
        "values).",
    )),
    Parameter("LogLevel", (
        "Type: String",
        "Default: INFO",
        "AllowedValues: [DEBUG, INFO, WARNING, ERROR]",
        "Description: POWERTOOLS_LOG_LEVEL of the functions.",
    )),
)  # fmt: skip

# Organisations whose SCPs require a boundary on every role set it here; docs/deploy.md lists what the
# boundary must allow (generated from the roles by rotation_release.iam).
PERMISSIONS_BOUNDARY = Parameter(
    "PermissionsBoundary",
    (
        "Type: String",
        'Default: ""',
        'AllowedPattern: "^$|^arn:aws[a-z-]*:iam::([0-9]{12}|aws):policy/[A-Za-z0-9+=,.@_/-]+$"',
        *description_lines(
            "ARN of a managed policy set as the permissions boundary of every IAM role this stack creates (empty: "
            "none). It must allow what the roles grant: docs/deploy.md lists the actions."
        ),
    ),
)

_ALARM_TOPIC = Parameter(
    "AlarmTopicArn",
    (
        "Type: String",
        'Default: ""',
        'AllowedPattern: "^$|^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_.-]+$"',
        "Description: SNS topic notified when a rotation function reports errors (empty = alarms without actions).",
    ),
)

_MIDDLE = (
    "Rules:",
    "  SecurityGroupsWithSubnets:",
    '    RuleCondition: !Not [!Equals [!Join ["", !Ref VpcSubnetIds], ""]]',
    "    Assertions:",
    '      - Assert: !Not [!Equals [!Join ["", !Ref VpcSecurityGroupIds], ""]]',
    "        AssertDescription: VpcSecurityGroupIds is required when VpcSubnetIds is given.",
    "",
    "Conditions:",
    '  InVpc: !Not [!Equals [!Join ["", !Ref VpcSubnetIds], ""]]',
    '  HasKmsKey: !Not [!Equals [!Ref KmsKeyArn, ""]]',
    '  HasPermissionsBoundary: !Not [!Equals [!Ref PermissionsBoundary, ""]]',
    '  HasReservedConcurrency: !Not [!Equals [!Ref ReservedConcurrency, "0"]]',
    '  HasAlarmTopic: !Not [!Equals [!Ref AlarmTopicArn, ""]]',
    '  CreateFailureAlarms: !Equals [!Ref RotationFailureAlarms, "true"]',
    '  CreateDashboard: !Equals [!Ref RotationDashboard, "true"]',
    "",
    "Globals:",
    "  Function:",
    "    Runtime: python3.13",
    "    Handler: app.lambda_handler",
    "    Architectures: [!Ref Architecture]",
    "    MemorySize: !Ref MemorySize",
    "    Layers: [!Ref RotationCoreLayer]",
    "    ReservedConcurrentExecutions: !If [HasReservedConcurrency, !Ref ReservedConcurrency, !Ref AWS::NoValue]",
    "    Environment:",
    "      Variables:",
    "        POWERTOOLS_LOG_LEVEL: !Ref LogLevel",
    "        SECRETS_MANAGER_ENDPOINT: !Ref SecretsManagerEndpoint",
    f"        {POWERTOOLS_METRICS_NAMESPACE}: !Ref MetricsNamespace",
    f"        {METRICS_DEPLOYMENT}: !Ref AWS::StackName",
    "",
    "Resources:",
)


# --- monitoring: the rotation metrics' namespace, an alarm per failure category, a dashboard -----------------

MONITORING_PARAMETERS = (
    Parameter("MetricsNamespace", (
        "Type: String",
        f"Default: {DEFAULT_METRICS_NAMESPACE}",
        'AllowedPattern: "^[A-Za-z0-9._#:/-]{1,255}$"',
        *description_lines(
            "CloudWatch namespace of the functions' rotation metrics (POWERTOOLS_METRICS_NAMESPACE): StepSucceeded, "
            "StepFailed, StepDuration and RotationCompleted, written as Embedded Metric Format log lines."
        ),
    )),
    Parameter("RotationFailureAlarms", (
        "Type: String",
        'Default: "true"',
        'AllowedValues: ["true", "false"]',
        *description_lines(
            "One alarm per failure category (StepFailed of this stack's functions), each telling what to do; "
            "notifies AlarmTopicArn when given."
        ),
    )),
    Parameter("RotationDashboard", (
        "Type: String",
        'Default: "false"',
        'AllowedValues: ["true", "false"]',
        "Description: A CloudWatch dashboard of this stack's rotations (failures by category, completions, durations).",
    )),
)  # fmt: skip


def failure_alarm_name(category: Category) -> str:
    """``RotationFailedAuthFailedAlarm``: the logical id of the alarm on one failure category."""
    return "RotationFailed" + _camel(category.value) + "Alarm"


def failure_alarm(category: Category) -> list[str]:
    """The alarm on failed steps of one category in this stack; its description is the troubleshooting cause."""
    from rotation_core.causes import cause_of
    from rotation_core.metrics import CATEGORY, DEPLOYMENT, STEP_FAILED

    cause = cause_of(category)
    text = (
        f"A rotation step of this stack failed ({category.value}): {cause.title}. {cause.fix} The failed step's log "
        f"line (category {category.value}) names the secret and what exactly went wrong."
    )
    return [
        f"{failure_alarm_name(category)}:",
        "  Type: AWS::CloudWatch::Alarm",
        "  Condition: CreateFailureAlarms",
        "  Properties:",
        *_indent(["Alarm" + line if i == 0 else line for i, line in enumerate(description_lines(text))], 4),
        "    Namespace: !Ref MetricsNamespace",
        f"    MetricName: {STEP_FAILED}",
        "    Dimensions:",
        f"      - Name: {DEPLOYMENT}",
        "        Value: !Ref AWS::StackName",
        f"      - Name: {CATEGORY}",
        f"        Value: {category.value}",
        *_ALARM_ON_ANY,
    ]


def dashboard_body() -> dict[str, object]:
    """The dashboard's widgets, with ``${...}`` left for Fn::Sub (the namespace, the stack, the functions)."""
    from rotation_core import metrics as m

    functions = [f"${{{function.logical_name}Function}}" for function in rotation_functions()]
    ours = " OR ".join(f'{m.FUNCTION}="{name}"' for name in functions)

    def search(schema: str, metric: str, where: str, stat: str, period: int) -> dict[str, str]:
        return {"expression": f"SEARCH('{{${{MetricsNamespace}},{schema}}} MetricName=\"{metric}\" {where}', "
                              f"'{stat}', {period})", "id": "e1"}  # fmt: skip

    def widget(y: int, x: int, title: str, metrics: list[object], *, stat: str, period: int) -> dict[str, object]:
        properties = {"title": title, "view": "timeSeries", "region": "${AWS::Region}", "stat": stat,
                      "period": period, "metrics": metrics}  # fmt: skip
        return {"type": "metric", "x": x, "y": y, "width": 12, "height": 6, "properties": properties}

    deployment = f'{m.DEPLOYMENT}="${{AWS::StackName}}"'
    failed = search(f"{m.DEPLOYMENT},{m.CATEGORY}", m.STEP_FAILED, deployment, "Sum", 300)
    completed = search(f"{m.FUNCTION},{m.TARGET}", m.ROTATION_COMPLETED, f"({ours})", "Sum", 86400)
    longest = search(f"{m.FUNCTION},{m.TARGET}", m.STEP_DURATION, f"({ours})", "Maximum", 300)
    errors: list[object] = [["AWS/Lambda", "Errors", "FunctionName", name] for name in functions]
    in_use = search(f"{m.FUNCTION},{m.TARGET}", m.CREDENTIAL_STILL_IN_USE, f"({ours})", "Maximum", 86400)
    intro = (
        "## Secrets rotation: ${AWS::StackName}\nFailed steps by category (each category has an alarm that says "
        "what to do), completed rotations, step durations, the functions' Lambda errors, and the drain check: "
        "sessions (or API keys) still in use on a credential a rotation was about to disable. The log lines name "
        "the secrets."
    )
    return {
        "widgets": [
            {"type": "text", "x": 0, "y": 0, "width": 24, "height": 2, "properties": {"markdown": intro}},
            widget(2, 0, "Failed steps by category", [[failed]], stat="Sum", period=300),
            widget(2, 12, "Rotations completed", [[completed]], stat="Sum", period=86400),
            widget(8, 0, "Longest step (ms)", [[longest]], stat="Maximum", period=300),
            widget(8, 12, "Lambda errors", errors, stat="Sum", period=300),
            widget(14, 0, "Still in use when replaced (drain check)", [[in_use]], stat="Maximum", period=86400),
        ]
    }


def monitoring_resources() -> list[str]:
    """The failure alarms (one per category) and the dashboard, each behind its parameter (indented under Resources)."""
    from rotation_core.errors import Category

    lines = [
        "# " + "-" * 93,
        "# Rotation health: an alarm per failure category and a dashboard (rotation_core.metrics).",
    ]
    for category in Category:
        lines += [*failure_alarm(category), ""]
    widgets = dashboard_body()["widgets"]
    assert isinstance(widgets, list)
    rows = [json.dumps(widget, separators=(",", ":")) for widget in widgets]
    body = '{"widgets": [\n' + ",\n".join("  " + row for row in rows) + "\n]}"
    lines += [
        "RotationHealthDashboard:",
        "  Type: AWS::CloudWatch::Dashboard",
        "  Condition: CreateDashboard",
        "  Properties:",
        "    DashboardBody: !Sub |",
        *("      " + line for line in body.splitlines()),
    ]
    return lines
