"""Database rotation strategies: single user and alternating users.

They decide which credentials to use and produce; the engine does the SQL. Before any credential
is used, the secrets are checked against each other (same server, same user or its clone), so a
value edited by someone with only PutSecretValue cannot point the function at another database
(the confused-deputy problem).
"""

from __future__ import annotations

from typing import Any

from rotation_core.engines.base import CLONE_SUFFIX, DatabaseEngine, DatabaseLogin, Session
from rotation_core.errors import (
    Category,
    ConfusedDeputyError,
    PendingNotReadyError,
    SecretFormatError,
    TargetError,
    describe,
)
from rotation_core.log import get_logger
from rotation_core.passwords import generate_password
from rotation_core.rotator import RotationContext
from rotation_core.settings import Settings

__all__ = ["CLONE_SUFFIX", "AlternatingUsers", "DatabaseStrategy", "SingleUser"]


class DatabaseStrategy:
    """What both database strategies share: parsing, login attempts, testSecret."""

    mints_on_create = False

    def __init__(self, engine: DatabaseEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    def login(self, secret: dict[str, Any], label: str) -> DatabaseLogin:
        return self.engine.parse_login(secret, label)

    def try_login(self, login: DatabaseLogin) -> Session | None:
        """A session, or None when the password is refused; other failures (network, TLS) raise."""
        try:
            return self.engine.connect(login)
        except TargetError as error:
            if error.category is not Category.AUTH_FAILED:
                raise
            get_logger().info(f"login with the {login.label} secret was refused", extra={"user": login.username})
            return None

    def test_pending(self, context: RotationContext) -> None:
        pending = self.login(context.pending(), "pending")
        session = self.try_login(pending)
        if session is None:
            raise PendingNotReadyError(
                "the AWSPENDING credentials do not log in: setSecret has not run for this version "
                "(Secrets Manager's configuration test with RotateImmediately=false runs testSecret "
                "alone) or it failed. Nothing was changed; rotate the secret again"
            )
        try:
            self.engine.probe(session, self.settings.test_query)
        finally:
            session.close()
        get_logger().info("the AWSPENDING credentials log in and pass the probe")

    def after_create(self, context: RotationContext, pending: dict[str, Any], stored: bool) -> None:
        """Nothing to undo: a generated password that was not stored was never used anywhere."""

    def after_promote(self, context: RotationContext) -> None:
        """Nothing to clean up: the previous password stays valid until the next rotation."""

    def _check_same_identity(self, current: DatabaseLogin, other: DatabaseLogin) -> None:
        if current.engine != other.engine or not current.same_server(other):
            raise ConfusedDeputyError(
                f"the {other.label} secret names another server or engine than the current secret; "
                "a rotation never moves a secret to another database. Correct the secret's host/port/engine"
            )


class SingleUser(DatabaseStrategy):
    """The user changes its own password; clients may see a failed login until they refresh."""

    def build_pending(self, current: dict[str, Any], context: RotationContext) -> dict[str, Any]:
        self.login(current, "current")
        return {**current, "password": generate_password(self.settings.password_policy)}

    def set_pending(self, context: RotationContext) -> None:
        current = self.login(context.current(), "current")
        pending = self.login(context.pending(), "pending")
        self._check_same_identity(current, pending)
        if pending.username != current.username:
            raise ConfusedDeputyError(
                "the pending secret names another user than the current secret; a single-user rotation "
                "only changes the password. Start a new rotation"
            )
        # Current first: in a normal rotation it is the only login attempt, and no failed login reaches
        # the server's log or its intrusion alarms. Pending logs in when an earlier attempt already
        # changed the password; previous when the last rotation died after changing it.
        session = self.try_login(current)
        if session is None:
            session = self.try_login(pending)
            if session is not None:
                session.close()
                get_logger().info("the password was already changed by an earlier attempt")
                return
            session = self._previous_session(context, current)
        try:
            self.engine.set_own_password(session, current, pending.password)
        finally:
            session.close()
        get_logger().info("changed the user's password")

    def _previous_session(self, context: RotationContext, current: DatabaseLogin) -> Session:
        previous_secret = context.previous()
        if previous_secret is not None:
            previous = self.login(previous_secret, "previous")
            self._check_same_identity(current, previous)
            if previous.username == current.username:
                session = self.try_login(previous)
                if session is not None:
                    return session
        raise TargetError(
            "neither the current, the pending nor the previous password logs in as "
            f"{describe(current.username)}; the database password was changed outside this rotation. "
            "Put the working password as AWSCURRENT and rotate again",
            category=Category.AUTH_FAILED,
        )


class AlternatingUsers(DatabaseStrategy):
    """Two users, ``<user>`` and ``<user>_clone``, take turns; the one in use is never changed.

    A master (admin) secret, named by the current secret's ``masterarn``, sets the other user's
    password and creates the clone as a stand-in for the original user.
    """

    def build_pending(self, current: dict[str, Any], context: RotationContext) -> dict[str, Any]:
        login = self.login(current, "current")
        self._master_arn(current, "current")
        return {
            **current,
            "username": self._other_username(login.username),
            "password": generate_password(self.settings.password_policy),
        }

    def set_pending(self, context: RotationContext) -> None:
        current_secret, pending_secret = context.current(), context.pending()
        current = self.login(current_secret, "current")
        pending = self.login(pending_secret, "pending")
        self._check_same_identity(current, pending)
        if pending.username != self._other_username(current.username):
            raise ConfusedDeputyError(
                "the pending secret's username is not the current user's alternate; start a new rotation"
            )
        master_arn = self._master_arn(current_secret, "current")
        if self._master_arn(pending_secret, "pending") != master_arn:
            raise ConfusedDeputyError("the pending and current secrets name different master secrets")
        master = self.master_login(context, current_secret, current)
        # Prove the caller's own secret is genuine before acting with the master's rights.
        caller = self.engine.connect(current)
        try:
            admin = self.engine.connect(master)
            try:
                self.engine.set_clone_password(
                    admin,
                    caller=caller,
                    original=self._original_username(current.username),
                    target=pending.username,
                    new_password=pending.password,
                )
            finally:
                admin.close()
        finally:
            caller.close()
        get_logger().info("set the alternate user's password", extra={"user": pending.username})

    def master_login(
        self, context: RotationContext, current_secret: dict[str, Any], current: DatabaseLogin
    ) -> DatabaseLogin:
        """The master that manages ``current``'s alternate: the secret its ``masterarn`` names, on the same server.

        The one resolution of the master secret, for setSecret and for the preflight.
        """
        master = self.login(context.other_secret(self._master_arn(current_secret, "current")), "master")
        if not master.same_server(current):
            raise ConfusedDeputyError(
                "the master secret names another server than the secret being rotated; point "
                '"masterarn" at the admin secret of the same database'
            )
        return master

    def _original_username(self, username: str) -> str:
        return username[: -len(CLONE_SUFFIX)] if username.endswith(CLONE_SUFFIX) else username

    def _other_username(self, username: str) -> str:
        if username.endswith(CLONE_SUFFIX):
            return username[: -len(CLONE_SUFFIX)]
        other = username + CLONE_SUFFIX
        try:
            self.engine.check_username(other, f"the alternate user {describe(other)}")
        except SecretFormatError as error:
            raise SecretFormatError(
                f"{error.message}; the user name must leave room for the {CLONE_SUFFIX!r} suffix "
                f"({len(CLONE_SUFFIX)} characters) of its alternate"
            ) from None
        return other

    @staticmethod
    def _master_arn(secret: dict[str, Any], label: str) -> str:
        arn = secret.get("masterarn")
        if not isinstance(arn, str) or not arn.strip():
            raise SecretFormatError(
                f'the {label} secret has no "masterarn"; alternating users need the ARN of the admin '
                "secret that may change the other user's password"
            )
        return arn
