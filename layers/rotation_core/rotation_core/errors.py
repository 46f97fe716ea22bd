"""The one error hierarchy of the rotation functions.

Every error raised across a module boundary is a :class:`RotationError`. Messages say what is wrong
and what to do about it; they never contain a secret value (passwords, keys, verifiers). Values that
are not secret but come from outside (usernames, hosts) are passed through :func:`describe` first so
that hostile input cannot forge log lines.
"""

from __future__ import annotations

import enum


class Category(enum.StrEnum):
    """Why a rotation failed, for alarms and for the person reading the log."""

    CONFIGURATION = "configuration"  # environment of the function is wrong
    EVENT = "event"  # the invocation event is malformed
    PROTOCOL = "protocol"  # version/stage state does not allow this step
    # The secret's JSON is not usable. (The name, not a secret, is flagged by scanners for its wording.)
    SECRET_FORMAT = "secret_format"  # noqa: S105  # nosec B105
    CONFUSED_DEPUTY = "confused_deputy"  # secrets disagree about who/where they are
    SECRETS_MANAGER = "secrets_manager"  # a Secrets Manager call failed
    RDS = "rds"  # an Amazon RDS API call (where is the master's database, which endpoints reach it) failed
    UNREACHABLE = "unreachable"  # the database/provider cannot be reached
    AUTH_FAILED = "auth_failed"  # a login was refused
    TLS = "tls"  # TLS negotiation or verification failed
    PERMISSION = "permission"  # logged in, but not allowed to do this
    VERIFICATION = "verification"  # the new credential does not work
    STATEMENT = "statement"  # the driver could not turn a statement and its names into SQL text
    INTERNAL = "internal"  # an unexpected error: a bug, reported without values


class RotationError(Exception):
    """Base class: every failure of a rotation step is one of these."""

    category: Category = Category.PROTOCOL

    def __init__(self, message: str, *, category: Category | None = None) -> None:
        super().__init__(message)
        if category is not None:
            self.category = category

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


# From the outside in: the function's setup and its event, Secrets Manager, the secret's versions and
# content, then the database or provider.
class ConfigurationError(RotationError):
    category = Category.CONFIGURATION


class InvalidEventError(RotationError):
    category = Category.EVENT


class ServiceCallError(RotationError):
    """An AWS API call failed; ``error_code`` is the service's code (``AccessDeniedException`` ...), if any."""

    def __init__(self, message: str, *, error_code: str = "", answered: bool = True) -> None:
        super().__init__(message)
        self.error_code = error_code
        #: False when no answer came back (the endpoint is unreachable, a timeout): the call never got a verdict.
        self.answered = answered


class SecretsManagerError(ServiceCallError):
    category = Category.SECRETS_MANAGER


class RotationStateError(RotationError):
    """The secret's versions and stages do not allow the requested step."""

    category = Category.PROTOCOL


class PendingNotReadyError(RotationStateError):
    """testSecret/setSecret met an AWSPENDING version that earlier steps have not prepared."""


class ConfigurationTestError(RotationError):
    """Secrets Manager's configuration test (testSecret alone, RotateImmediately=false) found the setup broken.

    It keeps the category of the check that failed (``auth_failed``, ``unreachable``, ``confused_deputy`` ...).
    """


class SecretFormatError(RotationError):
    category = Category.SECRET_FORMAT


class ConfusedDeputyError(RotationError):
    category = Category.CONFUSED_DEPUTY


class RdsError(ServiceCallError):
    """An Amazon RDS API call failed or did not describe the database a master secret names."""

    category = Category.RDS


class TargetError(RotationError):
    """The database (or provider) refused or failed; category says how."""


class VerificationError(TargetError):
    category = Category.VERIFICATION


class StatementError(TargetError):
    """The database driver refused to build a statement before sending it (nothing of it reached the server).

    Raised instead of the driver's ``ValueError``/``TypeError``: a name the statement had to carry (from
    the secret or from the server's own catalog) could not be put into SQL text.
    """

    category = Category.STATEMENT


_MAX_DESCRIBED = 80


def describe(value: object) -> str:
    """Render a non-secret, externally supplied value (a username, a host) safely for a message.

    Control characters are escaped (no forged log lines) and long values are cut.
    """
    text = str(value)
    escaped = text.encode("unicode_escape").decode("ascii").replace("'", "\\'")
    if len(escaped) > _MAX_DESCRIBED:
        escaped = escaped[:_MAX_DESCRIBED] + "..."
    return f"'{escaped}'"
