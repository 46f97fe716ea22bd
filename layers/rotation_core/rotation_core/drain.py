"""The drain check: before a rotation disables a credential applications may still hold, see whether they do.

Read-only, and it never blocks a rotation (one opt-in exception: ``DEFER_REVOKE_IF_IN_USE`` defers an API key's
revocation by one rotation). It looks where the target can tell:

* alternating users, before setSecret resets the password of the user AWSPREVIOUS names: that user's open
  sessions, from PostgreSQL's ``pg_stat_activity`` or MySQL/MariaDB's ``information_schema.PROCESSLIST`` (there the
  master needs PROCESS to see another account's threads);
* API keys, before a key is revoked: its last use, where the provider reports one (Datadog ``date_last_used``,
  Cloudflare ``last_used_on``).

Each check writes the metric ``CredentialStillInUse`` (:mod:`rotation_core.metrics`, dimensioned by function,
target and deployment, never by secret) and, when something still uses the credential, a warning naming the count
and what it means. Where the target cannot tell (dual passwords: which of an account's two passwords a session used
is not recorded; SendGrid and Twilio report no last use; a MySQL master without PROCESS) nothing is counted and an
info line says why.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from rotation_core.errors import RotationError, describe
from rotation_core.log import get_logger
from rotation_core.metrics import note_credential_in_use

if TYPE_CHECKING:
    from rotation_core.engines.base import DatabaseEngine, Session
    from rotation_core.providers import KeyRecord
    from rotation_core.settings import Settings

WHAT_IT_MEANS = (
    "Their open sessions keep working, but an application that still holds the previous secret fails on its next new "
    "connection unless it refreshes the secret from AWSCURRENT first (docs/consumers.md). The rotation goes on: this "
    "check never blocks it"
)


def check_database_user(engine: DatabaseEngine, session: Session, username: str) -> int | None:
    """Count ``username``'s open sessions (as ``session`` sees them) before its password is reset; None: cannot tell."""
    logger = get_logger()
    counter = getattr(engine, "count_sessions", None)
    if counter is None:
        logger.info(f"drain check: the {engine.display_name} engine cannot count sessions", extra={"user": username})
        return None
    try:
        count: int | None = counter(session, username)
    except RotationError as error:
        logger.warning(
            f"drain check: could not count the sessions of {describe(username)}: {error.message}",
            extra={"user": username},
        )
        return None
    if count is None:
        logger.info(
            f"drain check: the sessions of {describe(username)} cannot be counted: the login that looks sees only its "
            "own (on MySQL/MariaDB grant the master PROCESS to see them)",
            extra={"user": username},
        )
        return None
    note_credential_in_use(count)
    if count:
        logger.warning(
            f"drain check: {count} open session(s) of {describe(username)}, the user whose password this rotation "
            f"resets (AWSPREVIOUS names it): applications still use the previous secret. {WHAT_IT_MEANS}",
            extra={"user": username, "sessions": count},
        )
    else:
        logger.info(
            f"drain check: no open session of {describe(username)}, whose password this rotation resets",
            extra={"user": username, "sessions": 0},
        )
    return count


def defer_key_revocation(
    record: KeyRecord, settings: Settings, description: str, *, minted_here: bool, now: datetime | None = None
) -> bool:
    """Look at the provider's last use of a key about to be revoked; True when its revocation is deferred.

    Only a key this function minted can be deferred: the next rotation finds it again by its name (as a key of a
    rotation that is over) and revokes it. A key made elsewhere (the secret's first one) would be found by nothing.
    """
    logger = get_logger()
    if not record.reports_use:
        logger.info(f"drain check: the provider does not report when {description} was last used")
        return False
    now = now or datetime.now(UTC)
    window = timedelta(hours=settings.key_in_use_within_hours)
    last_used = record.last_used
    in_use = last_used is not None and now - last_used <= window
    note_credential_in_use(1 if in_use else 0)
    if last_used is None or not in_use:
        when = "never" if last_used is None else f"{_hours(now - last_used)} ago"
        logger.info(f"drain check: {description} was last used {when}; revoking it")
        return False
    defer = settings.defer_revoke_if_in_use and minted_here
    if defer:
        then = "its revocation is deferred to the next rotation (DEFER_REVOKE_IF_IN_USE=true)"
    elif settings.defer_revoke_if_in_use:
        then = (
            "it is revoked now all the same: it was not minted by this function, so no later rotation could find it "
            "again to revoke it"
        )
    else:
        then = "it is revoked now, as REVOKE_POLICY says (DEFER_REVOKE_IF_IN_USE=true would wait one rotation)"
    logger.warning(
        f"drain check: {description} was used {_hours(now - last_used)} ago, within KEY_IN_USE_WITHIN_HOURS="
        f"{settings.key_in_use_within_hours}: an application still holds it and fails once it is revoked unless it "
        f"refreshes the secret from AWSCURRENT first; {then}",
        extra={"in_use": True, "deferred": defer},
    )
    return defer


def _hours(age: timedelta) -> str:
    hours = max(age.total_seconds(), 0) / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.0f} days"
