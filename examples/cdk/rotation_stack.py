"""A CDK stack that deploys the rotation functions and attaches them to secrets, with a permissions boundary.

The functions come from one of two places, never from CDK's own rotation constructs (whose functions
follow CDK's choice of runtime):

- ``source="sar"``: the release published in the AWS Serverless Application Repository, as a nested
  application (``AWS::Serverless::Application``), one application per architecture;
- ``source="template"``: this clone's ``template.yaml``, included as it is (``CfnInclude``), with the
  code of a `sam build` of one architecture uploaded as CDK assets.

Either way every parameter of the template can be set, the roles are the template's own (the permissions
boundary is its ``PermissionsBoundary`` parameter), each schedule names the function of its strategy, and
the function ARNs are exported as ``<stack>-<Output>`` like a stack deployed with SAM, so the preflight
and ``examples/attach-rotation.yaml`` read them the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sam as sam
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import cloudformation_include as cfn_include
from constructs import Construct

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"


@dataclass(frozen=True)
class FunctionKind:
    """What the template calls a function's parameters (``template.yaml``, "Which secrets ...")."""

    secrets_parameter: str  # names of the secrets it may rotate
    reads_parameter: str | None  # names of the master (alternating users) or admin (API keys) secrets it reads
    rotation_days: int  # the rotation policy: 90 days for passwords, 180 for API keys


FUNCTIONS: Mapping[str, FunctionKind] = {
    "PostgresSingleUser": FunctionKind("PostgresSingleUserSecrets", None, 90),
    "PostgresAlternatingUsers": FunctionKind("PostgresAlternatingUsersSecrets", "PostgresMasterSecrets", 90),
    "MySqlSingleUser": FunctionKind("MySqlSingleUserSecrets", None, 90),
    "MySqlAlternatingUsers": FunctionKind("MySqlAlternatingUsersSecrets", "MySqlMasterSecrets", 90),
    "MySqlDualPassword": FunctionKind("MySqlDualPasswordSecrets", "MySqlMasterSecrets", 90),
    "ValkeyDualPassword": FunctionKind("ValkeyDualPasswordSecrets", "ValkeyMasterSecrets", 90),
    "ApiKey": FunctionKind("ApiKeySecrets", "ApiKeyAdminSecrets", 180),
}
ELF_MACHINES = {62: "x86_64", 183: "arm64"}


@dataclass(frozen=True)
class Rotation:
    """One secret to rotate: the function that rotates it, and the master or admin secret it names."""

    function: str  # a key of FUNCTIONS
    secret_arn: str  # the complete ARN (with the 6-character suffix)
    reads_arn: str | None = None  # "masterarn" / "adminarn" of the secret


def secret_name(arn: str) -> str:
    """The part of a secret's complete ARN after ``secret:``: an exact name pattern for that one secret."""
    parts = arn.split(":", 6)
    if len(parts) != 7 or parts[2] != "secretsmanager" or parts[5] != "secret":
        raise ValueError(f"{arn!r} is not a secret's ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-SUFFIX)")
    return parts[6]


def function_parameters(rotations: Sequence[Rotation]) -> dict[str, str]:
    """Name patterns that let each function touch exactly the secrets it is attached to, and read exactly
    their master or admin secrets."""
    patterns: dict[str, str] = {}
    for rotation in rotations:
        kind = FUNCTIONS[rotation.function]
        wanted = [(kind.secrets_parameter, rotation.secret_arn)]
        if rotation.reads_arn is not None:
            if kind.reads_parameter is None:
                raise ValueError(f"{rotation.function} reads no master or admin secret")
            wanted.append((kind.reads_parameter, rotation.reads_arn))
        for parameter, arn in wanted:
            name = secret_name(arn)
            if patterns.get(parameter, name) != name:
                raise ValueError(f"{parameter}: several secrets; set a pattern that matches them all in parameters")
            patterns[parameter] = name
    return patterns


def build_architecture(build_dir: Path) -> str | None:
    """The architecture of the compiled files of a `sam build` (None: pure Python), refusing a mixture."""
    found = set()
    for path in build_dir.rglob("*.so*"):
        with path.open("rb") as file:
            header = file.read(20)
        if header[:4] == b"\x7fELF":
            found.add(ELF_MACHINES.get(int.from_bytes(header[18:20], "little" if header[5] == 1 else "big"), "?"))
    if len(found) > 1:
        raise ValueError(f"{build_dir} mixes compiled files of {sorted(found)}: build it again")
    return found.pop() if found else None


class RotationStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        source: str,
        rotations: Sequence[Rotation],
        permissions_boundary: str = "",
        parameters: Mapping[str, str] | None = None,
        application_id: str = "",
        semantic_version: str = "",
        build_dir: Path | None = None,
        rotate_immediately: bool = True,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        values = {**function_parameters(rotations), **(parameters or {})}
        if permissions_boundary:
            values["PermissionsBoundary"] = permissions_boundary
        if source == "sar":
            arns, after = self._from_sar(application_id, semantic_version, values)
        elif source == "template":
            if build_dir is None:
                raise ValueError("source=template needs build_dir: a `sam build` of template.yaml (make deploy-build)")
            arns, after = self._from_template(build_dir, values)
        else:
            raise ValueError(f"source must be sar or template, not {source!r}")

        for index, rotation in enumerate(rotations):
            schedule = secretsmanager.CfnRotationSchedule(
                self,
                f"{rotation.function}Rotation{index}",
                secret_id=rotation.secret_arn,
                rotation_lambda_arn=arns[rotation.function],
                rotate_immediately_on_update=rotate_immediately,
                rotation_rules=secretsmanager.CfnRotationSchedule.RotationRulesProperty(
                    automatically_after_days=FUNCTIONS[rotation.function].rotation_days
                ),
            )
            # Rotating at once needs the function's invoke permission and its role's policy in place.
            for resource in after.get(rotation.function, []):
                schedule.add_resource_dependency(resource)

    def _from_sar(
        self, application_id: str, semantic_version: str, values: Mapping[str, str]
    ) -> tuple[dict[str, str], dict[str, list[cdk.CfnResource]]]:
        if not application_id or not semantic_version:
            raise ValueError(
                "source=sar needs application_id (the application of your architecture) and semantic_version"
            )
        application = sam.CfnApplication(
            self,
            "RotationFunctions",
            location=sam.CfnApplication.ApplicationLocationProperty(
                application_id=application_id, semantic_version=semantic_version
            ),
            parameters=dict(values),
        )
        arns = {}
        for name in FUNCTIONS:
            arns[name] = application.get_att(f"Outputs.{name}FunctionArn").to_string()
            cdk.CfnOutput(
                self, f"{name}FunctionArn", value=arns[name], export_name=f"{self.stack_name}-{name}FunctionArn"
            )
        return arns, {}  # the nested stack is complete, permissions and policies included, before its outputs exist

    def _from_template(
        self, build_dir: Path, values: Mapping[str, str]
    ) -> tuple[dict[str, str], dict[str, list[cdk.CfnResource]]]:
        if not (build_dir / "RotationCoreLayer").is_dir():
            raise ValueError(f"{build_dir} is not a `sam build` of template.yaml: run `make deploy-build` first")
        template = cfn_include.CfnInclude(self, "Template", template_file=str(TEMPLATE))
        # The template stays as it is; the values become its parameters' defaults (`cdk deploy --parameters`
        # can still override them), so the roles and conditions are exactly the template's.
        for name, value in values.items():
            template.get_parameter(name).default = value
        # The build decides the architecture: its compiled drivers run on one only.
        built = build_architecture(build_dir)
        if built is not None:
            if values.get("Architecture", built) != built:
                raise ValueError(f"{build_dir} holds an {built} build, not {values['Architecture']}: build again")
            architecture = template.get_parameter("Architecture")
            architecture.default = built
            architecture.allowed_values = [built]
        code = {f"{name}Function": "CodeUri" for name in FUNCTIONS} | {"RotationCoreLayer": "ContentUri"}
        for logical_id, uri in code.items():
            asset = s3_assets.Asset(self, f"{logical_id}Code", path=str(build_dir / logical_id))
            template.get_resource(logical_id).add_property_override(
                uri, {"Bucket": asset.s3_bucket_name, "Key": asset.s3_object_key}
            )
        arns = {name: cdk.Fn.get_att(f"{name}Function", "Arn").to_string() for name in FUNCTIONS}
        after = {
            name: [template.get_resource(f"{name}InvokePermission"), template.get_resource(f"{name}SecretsPolicy")]
            for name in FUNCTIONS
        }
        return arns, after
