"""What each error category means to an operator: the troubleshooting cause and what to do about it.

One entry per :class:`~rotation_core.errors.Category`, written once and used by everything that tells an
operator about a failure: the failed step's log line and its metric (``cause`` and ``fix``), the
preflight report's skipped checks, and the text of each failure alarm in the template
(``tools/rotation_local/template.py``). The causes follow AWS's rotation troubleshooting guide: no
route to Secrets Manager or to the database, KMS refusing the decrypt, a missing privilege, TLS that
does not verify, a rotation still pending. No entry holds a value; the error's own message (also in
the log line) names the variable, key, user or host concerned.
"""

from __future__ import annotations

from dataclasses import dataclass

from rotation_core.errors import Category


@dataclass(frozen=True)
class Cause:
    category: Category
    title: str  # the troubleshooting cause, as an operator would name it
    fix: str  # what to do, without knowing more than the category


_CAUSES = (
    Cause(
        Category.CONFIGURATION,
        "the function's configuration is wrong",
        "Correct the environment variable the error names (the stack's parameter of the same name) and rotate again.",
    ),
    Cause(
        Category.EVENT,
        "the function was invoked with a malformed event",
        "Only Secrets Manager (rotation steps) and operators running the preflight "
        '({"Preflight": {"SecretId": "<arn>"}}) should invoke it; check who did in CloudTrail.',
    ),
    Cause(
        Category.PROTOCOL,
        "the secret's rotation state does not allow the step",
        "Check that rotation is enabled with this function and that no earlier rotation left AWSPENDING on "
        "another version: rotate again to finish it, or remove that label (update-secret-version-stage) if "
        "it was abandoned before setSecret.",
    ),
    Cause(
        Category.SECRET_FORMAT,
        "the secret's JSON is not usable",
        "Correct the key the error names in the secret's AWSCURRENT value (see the secret format in the docs) "
        "and rotate again.",
    ),
    Cause(
        Category.CONFUSED_DEPUTY,
        "the secrets disagree about the server, user or provider account",
        "Make the rotated secret and its master or admin secret name the same server (or provider account); "
        "nothing was changed.",
    ),
    Cause(
        Category.SECRETS_MANAGER,
        "a Secrets Manager call failed",
        "In a VPC, give the function a route to Secrets Manager (an interface VPC endpoint or a NAT gateway); "
        "check that the secret names this function as its rotation function and matches its name pattern, "
        "and with a customer-managed KMS key set KmsKeyArn (kms:Decrypt).",
    ),
    Cause(
        Category.RDS,
        "an RDS API call failed or RDS does not know the database",
        "In a VPC, give the function a route to the RDS API (an interface VPC endpoint or a NAT gateway); check "
        "the DB instance or cluster the master secret's aws:rds:primaryDBInstanceArn or "
        "aws:rds:primaryDBClusterArn tag names still exists in this account and Region.",
    ),
    Cause(
        Category.UNREACHABLE,
        "the database or provider cannot be reached",
        "Check the secret's host and port, the security groups, network ACLs and routes from the function's "
        "subnets (or a NAT gateway for a provider), and DbConnectTimeout.",
    ),
    Cause(
        Category.AUTH_FAILED,
        "a login was refused",
        "The stored credential no longer works: put the working password or key in the secret's AWSCURRENT "
        "version (or the master/admin secret) and rotate again.",
    ),
    Cause(
        Category.TLS,
        "TLS could not be verified",
        "Set DbCaBundle (ApiCaBundle for providers) to a bundle holding the server's CA and use the host name "
        'its certificate was issued for; a server without TLS needs TLS enabled or "ssl": false in the secret.',
    ),
    Cause(
        Category.PERMISSION,
        "the user or the master lacks a privilege",
        "Grant what the error names: single user, the right to change its own password; alternating users, the "
        "master's CREATEROLE (and ADMIN OPTION on PostgreSQL 16+) or CREATE USER, SELECT on the mysql schema and "
        "every copied privilege WITH GRANT OPTION; API keys, the admin credential's key permissions.",
    ),
    Cause(
        Category.VERIFICATION,
        "the new credential does not work",
        "Check TEST_QUERY and the user's grants; for API keys, raise ApiVerifyAttempts/ApiVerifyDelay or check "
        "the key at the provider. The old credential stays AWSCURRENT.",
    ),
    Cause(
        Category.STATEMENT,
        "a name cannot be written into SQL",
        "Rename the user or role the error names (or report a bug); nothing of that statement reached the server.",
    ),
    Cause(
        Category.INTERNAL,
        "an unexpected error in the function",
        "Report it with the log line (it holds no secret value); the rotation can be retried.",
    ),
)

CAUSES: dict[Category, Cause] = {cause.category: cause for cause in _CAUSES}


def cause_of(category: Category) -> Cause:
    return CAUSES[category]
