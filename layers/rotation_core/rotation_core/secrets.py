"""Secrets Manager access: the only module that calls the service.

Each method is one API call. Callers decide which calls a step needs; the store only translates
service errors into :class:`SecretsManagerError` with a hint, and JSON into dictionaries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from rotation_core.aws import ServiceAccess, bounded_client
from rotation_core.errors import SecretFormatError, SecretsManagerError, describe
from rotation_core.log import redact, register_secret, register_sensitive

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

AWSCURRENT = "AWSCURRENT"
AWSPENDING = "AWSPENDING"
AWSPREVIOUS = "AWSPREVIOUS"

# Bounded so that a Lambda in a VPC without a route to Secrets Manager fails fast and says why,
# instead of hanging until the function times out.

_HINTS = {
    "AccessDeniedException": "check the function's IAM role for this secret (and the KMS key policy "
    "if the secret uses a customer-managed key)",
    "ResourceNotFoundException": "check that the secret and version still exist",
    "ThrottlingException": "the account is over its Secrets Manager request rate; the rotation can be retried",
    "InternalServiceError": "Secrets Manager failed; the rotation can be retried",
    "DecryptionFailure": "the function cannot use the secret's KMS key; grant kms:Decrypt on it",
    "InvalidRequestException": "the secret is in a state that does not allow this call (deleted?)",
}


@dataclass(frozen=True)
class SecretMetadata:
    """What ``DescribeSecret`` says about a secret, reduced to what rotation needs."""

    arn: str
    rotation_enabled: bool
    versions: Mapping[str, tuple[str, ...]]
    #: The secret's tags. Keys starting with ``aws:`` are set by AWS services only (RDS names the database
    #: of a master secret it manages this way); no IAM principal can set or change them.
    tags: Mapping[str, str] = field(default_factory=dict)
    rotation_lambda_arn: str | None = None  # the function the secret names as its rotation function

    def version_with(self, stage: str) -> str | None:
        for version_id, stages in self.versions.items():
            if stage in stages:
                return version_id
        return None


def default_client_factory(endpoint_url: str | None) -> SecretsManagerClient:
    """A Secrets Manager client with bounded timeouts; boto3 also honours AWS_ENDPOINT_URL_SECRETSMANAGER."""
    client: SecretsManagerClient = bounded_client("secretsmanager", endpoint_url)
    return client


class SecretStore(ServiceAccess["SecretsManagerClient"]):
    """Every Secrets Manager call the functions make."""

    default_client_factory = staticmethod(default_client_factory)

    def describe(self, secret_id: str) -> SecretMetadata:
        response = self._call("DescribeSecret", self.client.describe_secret, SecretId=secret_id)
        versions = {version_id: tuple(stages) for version_id, stages in response.get("VersionIdsToStages", {}).items()}
        tags = {
            str(tag["Key"]): str(tag.get("Value", ""))
            for tag in response.get("Tags", [])
            if isinstance(tag, Mapping) and "Key" in tag
        }
        return SecretMetadata(
            arn=response["ARN"],
            rotation_enabled=bool(response.get("RotationEnabled", False)),
            versions=versions,
            tags=tags,
            rotation_lambda_arn=response.get("RotationLambdaARN") or None,
        )

    def get_value(self, secret_id: str, *, stage: str, version_id: str | None = None) -> dict[str, Any]:
        """The version's JSON value; raises if it has none."""
        value = self.find_value(secret_id, stage=stage, version_id=version_id)
        if value is None:
            which = f"version {version_id}" if version_id else f"stage {stage}"
            raise SecretsManagerError(
                f"the secret has no value at {which}; it may have been removed during the rotation",
                error_code="ResourceNotFoundException",
            )
        return value

    def find_value(self, secret_id: str, *, stage: str, version_id: str | None = None) -> dict[str, Any] | None:
        """The version's JSON value, or None when that version holds no value (a bare AWSPENDING)."""
        kwargs: dict[str, Any] = {"SecretId": secret_id, "VersionStage": stage}
        if version_id is not None:
            kwargs["VersionId"] = version_id
        try:
            response = self._call("GetSecretValue", self.client.get_secret_value, missing_ok=True, **kwargs)
        except _MissingError:
            return None
        text = response.get("SecretString")
        if text is None:
            raise SecretFormatError(
                f"the {stage} version of {describe(secret_id)} holds binary data; rotation needs a JSON object"
            )
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, dict):
            register_secret(value)
        else:
            register_sensitive(text)  # a plain-text secret is itself the value to protect
            raise SecretFormatError(
                f"the {stage} version of {describe(secret_id)} is not a JSON object; store the value as "
                "JSON (see the README for the keys)"
            )
        return value

    def put_pending(
        self,
        secret_id: str,
        token: str,
        value: Mapping[str, Any],
        *,
        rotation_token: str | None = None,
    ) -> bool:
        """Store ``value`` as version ``token`` labelled AWSPENDING.

        Returns False when that version already holds a different value: the service never changes a
        stored version, so an earlier attempt's value stands and this call changed nothing.
        """
        register_secret(value)
        kwargs: dict[str, Any] = {
            "SecretId": secret_id,
            "ClientRequestToken": token,
            "SecretString": json.dumps(value),
            "VersionStages": [AWSPENDING],
        }
        if rotation_token:
            kwargs["RotationToken"] = rotation_token
        try:
            self._call("PutSecretValue", self.client.put_secret_value, exists_ok=True, **kwargs)
        except _ExistsError:
            return False
        return True

    def promote(self, secret_id: str, token: str, current_version_id: str) -> None:
        """Move AWSCURRENT to ``token`` (the service moves AWSPREVIOUS to the old current)."""
        self._call(
            "UpdateSecretVersionStage",
            self.client.update_secret_version_stage,
            SecretId=secret_id,
            VersionStage=AWSCURRENT,
            MoveToVersionId=token,
            RemoveFromVersionId=current_version_id,
        )

    def _call(
        self,
        operation: str,
        method: Callable[..., Any],
        *,
        missing_ok: bool = False,
        exists_ok: bool = False,
        **kwargs: Any,
    ) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

        try:
            return method(**kwargs)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "Unknown")
            if missing_ok and code == "ResourceNotFoundException":
                raise _MissingError from None
            if exists_ok and code == "ResourceExistsException":
                raise _ExistsError from None
            _raise_service_error(operation, code, error.response.get("Error", {}).get("Message", ""))
        except ParamValidationError as error:
            raise SecretsManagerError(
                f"Secrets Manager {operation} was not sent: botocore rejected a parameter "
                f"({redact(str(error))}); check the invocation event",
                error_code=type(error).__name__,
            ) from None
        except BotoCoreError as error:
            raise SecretsManagerError(
                f"Secrets Manager {operation} could not be sent ({type(error).__name__}: {redact(str(error))}); "
                "if the function runs in a VPC, give it a Secrets Manager VPC endpoint or a NAT route",
                error_code=type(error).__name__,
                answered=False,
            ) from None


class _MissingError(Exception):
    pass


class _ExistsError(Exception):
    pass


def _raise_service_error(operation: str, code: str, service_message: str) -> NoReturn:
    hint = _HINTS.get(code, "see the Secrets Manager error code")
    raise SecretsManagerError(
        f"Secrets Manager {operation} failed with {code} ({service_message}); {hint}",
        error_code=code,
    )
