"""API-key rotation: mint a key at the provider, verify it, promote it, revoke the one it replaced.

The strategy for :class:`rotation_core.rotator.Rotator` with ``mints_on_create = True``:

* createSecret mints the new key with the admin credential named by ``adminarn`` and returns it for
  the core to store as AWSPENDING (with its id). The key is *named from the rotation token*
  (``sm-rotation-<secret hash>-<token>``), so a key minted by an attempt that died before
  PutSecretValue is found again by name on the retry and revoked before a new one is minted: nothing
  is orphaned. Keys with this secret's prefix left by abandoned rotations are revoked too (unless the
  policy is ``never``).
* setSecret has nothing to change at the provider; it only checks the pending value.
* testSecret asks the provider to accept the new key, retrying a bounded number of times because a
  new key can take a few seconds to propagate.
* Revocation follows ``REVOKE_POLICY``. The default, ``previous_at_next_rotation``, revokes at the
  start of the next rotation (its createSecret) the key that is two generations old by then (that
  rotation's AWSPREVIOUS): consumers have had a whole rotation period to move off it, and at most two
  keys are valid at any moment. ``previous_at_finish`` revokes the replaced key right after promotion
  (in ``after_promote``); ``never`` leaves keys alone. A failed revocation never fails the rotation:
  it is logged as a warning saying which version's key to revoke by hand. 404 counts as revoked.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from rotation_core.errors import (
    ConfusedDeputyError,
    RotationError,
    SecretFormatError,
    VerificationError,
)
from rotation_core.log import get_logger, register_sensitive
from rotation_core.providers import ApiKeyProvider, KeyRef, StoredKey, build_provider, provider_name
from rotation_core.providers.http import HttpClient
from rotation_core.rotator import RotationContext
from rotation_core.secrets import AWSCURRENT, AWSPREVIOUS
from rotation_core.settings import RevokePolicy, Settings

KEY_NAME_PREFIX = "sm-rotation-"
_TOKEN_IN_NAME = re.compile(r"^[A-Za-z0-9-]{1,40}$")
# Admin-secret keys that are configuration rather than credentials (not registered for redaction).
_ADMIN_NON_SECRET = frozenset({"base_url", "api_base_url", "account_sid"})


def key_name_prefix(secret_arn: str) -> str:
    """The name prefix of every key minted for this secret (the secret's ARN, hashed)."""
    return KEY_NAME_PREFIX + hashlib.sha256(secret_arn.encode("utf-8")).hexdigest()[:10] + "-"


def key_name(secret_arn: str, token: str) -> str:
    """The deterministic name of the key minted by rotation ``token`` (at most 63 characters)."""
    part = token if _TOKEN_IN_NAME.match(token) else hashlib.sha256(token.encode("utf-8")).hexdigest()[:40]
    return key_name_prefix(secret_arn) + part


def _identity(secret: Mapping[str, Any]) -> tuple[Any, ...]:
    """What must not change between versions: the provider account a key belongs to."""
    base_url = secret.get("base_url")
    return (
        secret.get("provider"),
        secret.get("adminarn"),
        base_url.rstrip("/") if isinstance(base_url, str) else base_url,
        secret.get("api_base_url"),
        json.dumps(secret.get("http"), sort_keys=True),
    )


class ApiKeyRotation:
    """The :class:`~rotation_core.rotator.RotationStrategy` for third-party API keys."""

    mints_on_create = True

    def __init__(
        self,
        settings: Settings,
        *,
        http: HttpClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.http = http or HttpClient(
            timeout=float(settings.api_timeout),
            max_attempts=settings.api_max_attempts,
            ca_bundle=settings.api_ca_bundle,
        )
        self._sleep = sleep
        self._earlier_attempts: dict[tuple[str, str], list[str]] = {}

    # --- the four steps -------------------------------------------------------------------------

    def build_pending(self, current: dict[str, Any], context: RotationContext) -> dict[str, Any]:
        provider, current_key = self._provider(current, context, "current")
        arn = context.metadata.arn
        name = key_name(arn, context.token)
        minted = provider.find(key_name_prefix(arn))
        # Keys already named for this rotation: attempts that died before storing theirs (or one still
        # in flight). after_create revokes them once Secrets Manager holds a key for this rotation.
        self._earlier_attempts[(arn, context.token)] = [key.id for key in minted if key.name == name]
        self._clean_up_before_minting(provider, current_key, context, name, minted)
        issued = provider.issue(name, current_key)
        register_sensitive(issued.value)
        get_logger().info(
            f"minted a new {provider.display_name} key", extra={"key_name": name, "provider": provider.name}
        )
        return {**current, **issued.fields}

    def after_create(self, context: RotationContext, pending: dict[str, Any], stored: bool) -> None:
        """Revoke every key minted for this rotation except the one Secrets Manager holds.

        Runs after PutSecretValue, so the stored key can never be revoked, whatever the order of two
        overlapping attempts: when ours was stored, other keys named for this rotation (an attempt that
        died before storing its key, or one still in flight) go; when an earlier value stood, ours goes.
        """
        provider, minted_key = self._provider(pending, context, "pending")
        name = key_name(context.metadata.arn, context.token)
        earlier = self._earlier_attempts.pop((context.metadata.arn, context.token), [])
        if stored:
            # An attempt still in flight is not in this list: when its own put fails, it revokes its key.
            doomed = [key_id for key_id in earlier if key_id != minted_key.id]
            description = "a key minted for this rotation by an earlier attempt, never stored"
        else:
            doomed = [minted_key.id]
            description = "the key this attempt minted: an earlier attempt's key is AWSPENDING"
        for key_id in doomed:
            try:
                gone = not provider.revoke(key_id)
            except RotationError as error:
                self._report_revoke_failure(error, description)
            else:
                get_logger().warning(f"revoked {description}", extra={"key_name": name, "already_gone": gone})

    def set_pending(self, context: RotationContext) -> None:
        pending = context.pending()
        self._check_same_account(context.current(), pending, "pending")
        get_logger().info("nothing to set: the provider issued the pending key in createSecret")

    def test_pending(self, context: RotationContext) -> None:
        pending = context.pending()
        self._check_same_account(context.current(), pending, "pending")
        provider, key = self._provider(pending, context, "pending")
        attempts = self.settings.api_verify_attempts
        delay = float(self.settings.api_verify_delay)
        for attempt in range(1, attempts + 1):
            if provider.verify(key):
                get_logger().info(f"{provider.display_name} accepts the AWSPENDING key", extra={"attempt": attempt})
                return
            if attempt < attempts:
                get_logger().info(
                    f"{provider.display_name} does not accept the AWSPENDING key yet (a new key can take a "
                    "moment to propagate); checking again",
                    extra={"attempt": attempt, "wait_seconds": delay},
                )
                self._sleep(delay)
        raise VerificationError(
            f"{provider.display_name} still refuses the AWSPENDING key after {attempts} checks "
            f"{delay:.0f} s apart. If createSecret did not run (Secrets Manager's configuration test), rotate "
            "the secret; otherwise raise API_VERIFY_ATTEMPTS/API_VERIFY_DELAY or check the key at the provider"
        )

    def after_promote(self, context: RotationContext) -> None:
        policy = self.settings.revoke_policy
        if policy is not RevokePolicy.PREVIOUS_AT_FINISH:
            get_logger().info(
                "the replaced key stays valid",
                extra={"revoke_policy": policy.value},
            )
            return
        old_version = context.metadata.version_with(AWSCURRENT)
        try:
            new_current = context.store.get_value(context.secret_id, stage=AWSCURRENT, version_id=context.token)
            replaced = (
                None
                if old_version is None
                else context.store.find_value(context.secret_id, stage=AWSPREVIOUS, version_id=old_version)
            )
            if replaced is None:
                get_logger().warning(
                    "the replaced version is not AWSPREVIOUS any more; its key was not revoked",
                    extra={"version": old_version},
                )
                return
            provider, new_key = self._provider(new_current, context, "new current")
            if _identity(replaced) != _identity(new_current):
                get_logger().warning(
                    "the replaced version belongs to another provider account; its key was not revoked",
                    extra={"version": old_version},
                )
                return
            old_key = provider.stored_key(replaced, "replaced")
            if old_key.id == new_key.id:
                return
            gone = not provider.revoke(old_key.id)
            get_logger().info(
                f"revoked the key of the replaced version {old_version}" + (" (it was already gone)" if gone else "")
            )
        except RotationError as error:
            self._report_revoke_failure(error, f"the key of the replaced version {old_version}")

    # --- helpers --------------------------------------------------------------------------------

    def _provider(
        self, secret: Mapping[str, Any], context: RotationContext, label: str
    ) -> tuple[ApiKeyProvider, StoredKey]:
        provider_name(secret, label)
        adminarn = secret.get("adminarn")
        if not isinstance(adminarn, str) or not adminarn.strip():
            raise SecretFormatError(
                f'the {label} secret has no "adminarn"; set it to the ARN of the secret holding the admin '
                "credential that may create and revoke keys"
            )
        if adminarn in (context.secret_id, context.metadata.arn):
            raise ConfusedDeputyError(
                f'the {label} secret\'s "adminarn" names the rotated secret itself; point it at a separate admin secret'
            )
        admin = context.other_secret(adminarn)
        register_sensitive(*(value for key, value in admin.items() if key not in _ADMIN_NON_SECRET))
        provider = build_provider(secret, admin, self.http, label=label)
        return provider, provider.stored_key(secret, label)

    @staticmethod
    def _check_same_account(current: Mapping[str, Any], other: Mapping[str, Any], label: str) -> None:
        if _identity(current) != _identity(other):
            raise ConfusedDeputyError(
                f"the {label} secret names another provider, admin secret, base_url or http description than "
                "the current secret; a rotation never moves a key to another account. Start a new rotation"
            )

    def _clean_up_before_minting(
        self,
        provider: ApiKeyProvider,
        current_key: StoredKey,
        context: RotationContext,
        name: str,
        minted: list[KeyRef],
    ) -> None:
        """Revoke what the policy says is replaced, and keys of rotations that never finished.

        Keys named for *this* rotation are left to :meth:`after_create`, which runs once Secrets Manager
        has stored one of them.
        """
        if self.settings.revoke_policy is RevokePolicy.NEVER:
            return
        targets: list[tuple[str, str]] = []
        previous_id = self._previous_key_id(provider, current_key, context)
        version = context.metadata.version_with(AWSPREVIOUS)
        if previous_id is not None:
            targets.append((previous_id, f"the key of the previous version {version}"))
        for stale in minted:
            if stale.name != name and stale.id not in (current_key.id, previous_id):
                targets.append((stale.id, f"the key named {stale.name}, minted by a rotation that never finished"))
        for key_id, description in targets:
            try:
                gone = not provider.revoke(key_id)
            except RotationError as error:
                self._report_revoke_failure(error, description)
            else:
                get_logger().info(f"revoked {description}" + (" (it was already gone)" if gone else ""))

    def _previous_key_id(
        self, provider: ApiKeyProvider, current_key: StoredKey, context: RotationContext
    ) -> str | None:
        """The AWSPREVIOUS key, if it belongs to the same account and is not the key in use."""
        previous = context.previous()
        if previous is None:
            return None
        if _identity(previous) != _identity(current_key.secret):
            get_logger().warning(
                "the previous version belongs to another provider account; its key was not revoked. Revoke it "
                "by hand if it is no longer used",
                extra={"version": context.metadata.version_with(AWSPREVIOUS)},
            )
            return None
        previous_key = provider.stored_key(previous, "previous")
        return None if previous_key.id == current_key.id else previous_key.id

    @staticmethod
    def _report_revoke_failure(error: RotationError, description: str) -> None:
        get_logger().warning(
            f"could not revoke {description}: {error.message}. The rotation itself is unaffected; revoke that key "
            "at the provider by hand or let the next rotation retry",
            extra={"revoke_failed": True, "category": error.category.value, "error_type": type(error).__name__},
        )
