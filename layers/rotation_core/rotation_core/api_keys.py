"""API-key rotation: mint a key at the provider, verify it, promote it, revoke the one it replaced.

The strategy for :class:`rotation_core.rotator.Rotator` with ``mints_on_create = True``. The admin
secret named by ``adminarn`` is the source of truth for where and how its credential is used
(:mod:`rotation_core.providers`); the rotated secret only holds its key.

* createSecret first **proves the binding**: the current key must be valid and belong to the admin
  credential's account (the provider ties its value to its id there, or, where the provider offers no
  such tie, at least lists its id and says nothing against it). Otherwise nothing is minted and the step
  fails as ``confused_deputy``. Then it mints the new key with the admin credential and returns it for
  the core to store as AWSPENDING. Its privileges are the current key's as the provider reports them
  where the value is tied to its id (or the admin secret's override); where nothing ties them (SendGrid,
  the generic provider without ``verify.id_path``) they come from the admin secret alone, never from the
  record of an id the rotated secret's editor chose. Never from the rotated secret. The key is *named from the rotation
  token* (``sm-rotation-<secret hash>-<token>``), so a key minted by an attempt that died before
  PutSecretValue is found again by name on the retry and revoked once a key of this rotation is
  stored: nothing is orphaned.
* setSecret has nothing to change at the provider; it only checks the pending value.
* testSecret asks the provider to accept the new key, retrying a bounded number of times because a
  new key can take a few seconds to propagate.
* Revocation follows ``REVOKE_POLICY``. The default, ``previous_at_next_rotation``, revokes at the
  start of the next rotation (its createSecret) the key that is two generations old by then (that
  rotation's AWSPREVIOUS); ``previous_at_finish`` revokes the replaced key right after promotion;
  ``never`` leaves keys alone. **A key is revoked only when it is provably this secret's**: its name
  at the provider carries this secret's prefix, or the provider confirms the stored value belongs to
  that id. Any other id is never sent a DELETE; a warning names the version so that an operator can
  revoke it by hand. A failed revocation never fails the rotation. 404 counts as revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from rotation_core.drain import defer_key_revocation
from rotation_core.errors import (
    ConfusedDeputyError,
    RotationError,
    SecretFormatError,
    VerificationError,
)
from rotation_core.log import get_logger, register_sensitive
from rotation_core.metrics import note_target
from rotation_core.providers import (
    PROVIDERS,
    ApiKeyProvider,
    KeyRecord,
    KeyRef,
    StoredKey,
    Verdict,
    admin_provider,
    admin_settings,
    build_provider,
)
from rotation_core.providers.base import within
from rotation_core.providers.http import HttpClient
from rotation_core.rotator import RotationContext
from rotation_core.secrets import AWSCURRENT, AWSPREVIOUS
from rotation_core.settings import RevokePolicy, Settings

KEY_NAME_PREFIX = "sm-rotation-"
_MAX_TARGETS = 256
_TOKEN_IN_NAME = re.compile(r"^[A-Za-z0-9-]{1,40}$")


def key_name_prefix(secret_arn: str) -> str:
    """The name prefix of every key minted for this secret (the secret's ARN, hashed)."""
    return KEY_NAME_PREFIX + hashlib.sha256(secret_arn.encode("utf-8")).hexdigest()[:10] + "-"


def key_name(secret_arn: str, token: str) -> str:
    """The deterministic name of the key minted by rotation ``token`` (at most 63 characters)."""
    part = token if _TOKEN_IN_NAME.match(token) else hashlib.sha256(token.encode("utf-8")).hexdigest()[:40]
    return key_name_prefix(secret_arn) + part


def _identity(secret: Mapping[str, Any]) -> tuple[Any, ...]:
    """What must not change between versions: the admin secret (hence the provider account) they use."""
    return (secret.get("adminarn"), secret.get("provider"))


def value_tie(
    provider: ApiKeyProvider, key: StoredKey, record: KeyRecord, verdict: Verdict | None = None
) -> bool | None:
    """Does the provider tie ``key``'s value to its id in the admin's account? None: it cannot tell.

    Datadog returns the key itself by id; Cloudflare's verify answer and Twilio's authentication name
    the id the value belongs to. Matching a few characters of a key would prove nothing and is not done.
    """
    if record.value is not None:
        return hmac.compare_digest(record.value.encode("utf-8"), key.value.encode("utf-8"))
    verdict = verdict or provider.verify(key)
    if verdict.key_id is not None:
        return verdict.valid and hmac.compare_digest(verdict.key_id.encode("utf-8"), key.id.encode("utf-8"))
    return None


class ApiKeyRotation:
    """The :class:`~rotation_core.rotator.RotationStrategy` for third-party API keys."""

    mints_on_create = True
    # test_pending reads AWSCURRENT anyway (the accounts must match), so comparing with it costs nothing.
    reads_current_in_test = True

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
        self._targets: dict[str, str] = {}  # secret ARN -> its admin secret's provider, for the metrics

    # --- the four steps -------------------------------------------------------------------------

    def build_pending(self, current: dict[str, Any], context: RotationContext) -> dict[str, Any]:
        provider, current_key = self._provider(current, context, "current")
        record = self.prove_binding(provider, current_key)
        arn = context.metadata.arn
        name = key_name(arn, context.token)
        minted = provider.find(key_name_prefix(arn))
        # Keys already named for this rotation: attempts that died before storing theirs (or one still
        # in flight). after_create revokes them once Secrets Manager holds a key for this rotation.
        self._earlier_attempts[(arn, context.token)] = [key.id for key in minted if key.name == name]
        self._clean_up_before_minting(provider, current_key, context, name, minted)
        issued = provider.issue(name, provider.successor_template(record))
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
        Every key revoked here was found by (or minted with) this rotation's own name.
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
        self._note_target(context, context.current())
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
            if provider.verify(key).valid:
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

    def test_configuration(self, context: RotationContext) -> None:
        """The admin secret is usable and the current key valid and provably of the admin's account.

        What createSecret checks before minting, with read-only calls only: nothing is minted or revoked.
        """
        provider, key = self._provider(context.current(), context, "current")
        self.prove_binding(provider, key)
        get_logger().info(
            f"checked: the admin secret reaches {provider.display_name}, which accepts the current key and ties it "
            "to the admin credential's account; the next rotation would mint its successor there",
            extra={"provider": provider.name},
        )

    def after_promote(self, context: RotationContext) -> None:
        self._note_target(context)
        policy = self.settings.revoke_policy
        if policy is not RevokePolicy.PREVIOUS_AT_FINISH:
            get_logger().info(
                "the replaced key stays valid",
                extra={"revoke_policy": policy.value},
            )
            return
        old_version = context.metadata.version_with(AWSCURRENT)
        description = f"the key of the replaced version {old_version}"
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
            if old_key.id != new_key.id:
                self._revoke_if_ours(provider, old_key, context, description, old_version)
        except RotationError as error:
            self._report_revoke_failure(error, description)

    # --- helpers --------------------------------------------------------------------------------

    def _provider(
        self, secret: Mapping[str, Any], context: RotationContext, label: str
    ) -> tuple[ApiKeyProvider, StoredKey]:
        return self.provider_for(secret, self.admin_secret(secret, context, label), context, label)

    @staticmethod
    def admin_secret(secret: Mapping[str, Any], context: RotationContext, label: str) -> dict[str, Any]:
        """The value of the admin secret ``secret`` names (``adminarn``): never the rotated secret itself, nor
        another secret this function rotates (:meth:`RotationContext.other_secret` refuses those unread)."""
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
        return context.other_secret(adminarn)

    def provider_for(
        self, secret: Mapping[str, Any], admin: Mapping[str, Any], context: RotationContext, label: str
    ) -> tuple[ApiKeyProvider, StoredKey]:
        """The provider the admin secret names, acting with its credential, and the key ``secret`` holds there.

        Raises :class:`ConfusedDeputyError` when the two secrets name different providers or accounts, and
        :class:`~rotation_core.providers.AdminSecretFormatError` when the admin secret lacks what the provider needs.
        """
        spec = admin_provider(admin)
        if len(self._targets) >= _MAX_TARGETS:
            self._targets.clear()
        self._targets[context.metadata.arn] = spec.name
        note_target(spec.name)  # the metrics' Target: a registered provider's name, never the secret's text
        settings = admin_settings(spec)
        register_sensitive(*(value for key, value in admin.items() if key not in settings))
        provider = build_provider(secret, admin, self.http, label=label)
        return provider, provider.stored_key(secret, label)

    @staticmethod
    def prove_binding(provider: ApiKeyProvider, key: StoredKey) -> KeyRecord:
        """The current key is valid and belongs to the admin's account; else nothing may be minted."""
        recover = (
            f"Nothing was minted. Put a valid {provider.display_name} key of the admin secret's account in "
            'the rotated secret (or point "adminarn" at the admin secret of the key\'s own account) and rotate again'
        )
        verdict = provider.verify(key)
        if not verdict.valid:
            hint = f" {verdict.hint.rstrip('.')}." if verdict.hint else ""
            raise ConfusedDeputyError(
                f"{provider.display_name} does not accept the current secret's key, so it cannot be proven to "
                f"belong to the admin credential's account.{hint} {recover}"
            )
        if verdict.same_account is False:
            raise ConfusedDeputyError(
                f"{provider.display_name}, asked with the current secret's key, says the key's own account has no key "
                f"with the current secret's key id: the value and the id belong to different accounts. {recover}"
            )
        record = provider.lookup(key.id)
        if record is None:
            raise ConfusedDeputyError(
                f"the admin credential's {provider.display_name} account has no key with the current secret's "
                f"key id: the key belongs to another account, or the id is wrong. {recover}"
            )
        if verdict.template is not None and not within(record.template, verdict.template):
            raise ConfusedDeputyError(
                f"the admin credential's {provider.display_name} account records more privileges for the current "
                f"secret's key id than the key itself has: the value and the id are different keys. {recover}"
            )
        tie = value_tie(provider, key, record, verdict)
        if tie is False:
            raise ConfusedDeputyError(
                f"{provider.display_name} says the current secret's key value does not belong to its key id in "
                f"the admin credential's account. {recover}"
            )
        if tie:
            binding = "value tied to id"
        elif verdict.same_account:
            binding = "key valid, and its own account and the admin's both hold its id"
        else:
            binding = "key valid and its id listed (the provider ties no more)"
        get_logger().info("the current key belongs to the admin credential's account", extra={"binding": binding})
        return record

    def _revoke_if_ours(
        self,
        provider: ApiKeyProvider,
        key: StoredKey,
        context: RotationContext,
        description: str,
        version: str | None,
    ) -> None:
        """Revoke ``key`` only if it was minted for this secret or its value provably belongs to its id."""
        record = provider.lookup(key.id)
        if record is None:
            get_logger().info(f"{description} was already gone; nothing to revoke")
            return
        minted_for_us = record.name.startswith(key_name_prefix(context.metadata.arn))
        if not minted_for_us and value_tie(provider, key, record) is not True:
            get_logger().warning(
                f"{description} was not revoked: {provider.display_name} neither shows it was minted for this "
                "secret nor confirms the stored value belongs to that key id. Revoke it by hand if it is yours "
                "and no longer used",
                extra={"version": version, "revoke_skipped": True},
            )
            return
        if defer_key_revocation(record, self.settings, description, minted_here=minted_for_us):  # the drain check
            return
        gone = not provider.revoke(key.id)
        get_logger().info(f"revoked {description}" + (" (it was already gone)" if gone else ""))

    def _note_target(self, context: RotationContext, secret: Mapping[str, Any] | None = None) -> None:
        """The provider for the metrics of a step that reads no admin secret: the one this container saw for the
        secret, else the rotated secret's own ``provider`` when it names a registered one (nothing else is used)."""
        name = self._targets.get(context.metadata.arn)
        named = None if secret is None else secret.get("provider")
        if name is None and isinstance(named, str) and named in PROVIDERS:
            name = named
        if name is not None:
            note_target(name)

    @staticmethod
    def _check_same_account(current: Mapping[str, Any], other: Mapping[str, Any], label: str) -> None:
        if _identity(current) != _identity(other):
            raise ConfusedDeputyError(
                f"the {label} secret names another provider or admin secret than the current secret; a rotation "
                "never moves a key to another account. Start a new rotation"
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
        has stored one of them. Stale keys come from the listing of this secret's own name prefix.
        """
        if self.settings.revoke_policy is RevokePolicy.NEVER:
            return
        version = context.metadata.version_with(AWSPREVIOUS)
        previous_key = self._previous_key(provider, current_key, context)
        if previous_key is not None:
            description = f"the key of the previous version {version}"
            try:
                self._revoke_if_ours(provider, previous_key, context, description, version)
            except RotationError as error:
                self._report_revoke_failure(error, description)
        for stale in minted:
            if stale.name != name and stale.id not in (current_key.id, previous_key.id if previous_key else None):
                description = f"the key named {stale.name}, minted by a rotation that never finished"
                try:
                    gone = not provider.revoke(stale.id)
                except RotationError as error:
                    self._report_revoke_failure(error, description)
                else:
                    get_logger().info(f"revoked {description}" + (" (it was already gone)" if gone else ""))

    def _previous_key(
        self, provider: ApiKeyProvider, current_key: StoredKey, context: RotationContext
    ) -> StoredKey | None:
        """The AWSPREVIOUS key, if it belongs to the same admin secret and is not the key in use."""
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
        try:
            previous_key = provider.stored_key(previous, "previous")
        except RotationError as error:
            self._report_revoke_failure(error, "the key of the previous version")
            return None
        return None if previous_key.id == current_key.id else previous_key

    @staticmethod
    def _report_revoke_failure(error: RotationError, description: str) -> None:
        get_logger().warning(
            f"could not revoke {description}: {error.message}. The rotation itself is unaffected; revoke that key "
            "at the provider by hand or let the next rotation retry",
            extra={"revoke_failed": True, "category": error.category.value, "error_type": type(error).__name__},
        )
