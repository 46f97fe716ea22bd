"""The dual-password strategy: one user, a new password, and the current one kept valid beside it (MySQL 8.0.14+).

setSecret makes the pending password the account's primary password and keeps the current one as its
secondary (``RETAIN CURRENT PASSWORD``), so AWSCURRENT's password and AWSPENDING's both log in from then until
the next rotation replaces the secondary: an application that still holds the old secret keeps connecting
while AWSCURRENT moves, as with alternating users, but with one user, no clone and no grant copying.

Who changes the password:

* the user itself (no ``masterarn`` in the secret), which needs ``APPLICATION_PASSWORD_ADMIN``; the server
  applies the change only while the current password is the primary (``REPLACE``), so a retried setSecret
  never keeps the pending password as the secondary and loses the current one;
* or the master secret named by ``masterarn`` (resolved and checked as for alternating users, RDS-managed
  masters included), after the current secret proved itself by logging in; the master decides from the
  account's stored passwords, under a lock on the account.

The engine does the SQL (:class:`rotation_core.engines.base.DualPasswordEngine`); a server without dual
passwords (MariaDB) is refused before anything changes, naming the server.

Valkey and Redis keep several passwords per ACL user, and the services that manage such users (ElastiCache,
MemoryDB) take two through their APIs: the same strategy, with the engine's second reach on the request. A secret
naming a managed user (``user_arn``) needs no master and may name no endpoint: the engine changes the user through
the service once the user's tag proved it bound to this secret, and where no endpoint can be tried, testSecret checks
the service's view of the user (active, both passwords) instead of a login, and says so.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from rotation_core.checks import CheckRunner
from rotation_core.engines.base import DatabaseEngine, DatabaseLogin, DualPasswordEngine, DualPasswordRequest, Session
from rotation_core.errors import (
    Category,
    ConfigurationError,
    ConfusedDeputyError,
    SecretFormatError,
    TargetError,
    describe,
)
from rotation_core.log import get_logger
from rotation_core.passwords import generate_password
from rotation_core.rds import RdsDirectory
from rotation_core.rotator import RotationContext
from rotation_core.settings import Settings
from rotation_core.strategies import AlternatingUsers, DatabaseStrategy

#: Why a setup check that needs a login is not run for a managed user's secret without an endpoint.
NO_ENDPOINT = (
    'the secret names no endpoint ("host"): no login can be tried, so testSecret will check the service\'s view of the '
    "user (active, bound to this secret) instead of logging in with the new password, as AWS's function does. Add "
    '"host" and "port" of an endpoint the function can reach (TLS verified) to have every rotation log in'
)
#: Why the drain check counts nothing here (docs/operations.md says the same).
UNCOUNTABLE = (
    "the server does not record which of an account's two passwords a session logged in with (MySQL, Valkey and Redis "
    "alike), so sessions still on the password this rotation replaces (AWSPREVIOUS's) cannot be counted"
)


class DualPassword(DatabaseStrategy):
    """New primary password, current one kept as the secondary; the user or a master makes the change."""

    # testSecret compares AWSPENDING with AWSCURRENT (reading it if needed), so that a configuration test's copy
    # runs test_configuration: it checks the server keeps dual passwords (not MariaDB) and the privilege.
    reads_current_in_test = True

    def __init__(self, engine: DatabaseEngine, settings: Settings, *, rds: RdsDirectory | None = None) -> None:
        super().__init__(engine, settings)
        # Only its master resolution is used (masterarn, same-database proof, RDS-managed masters).
        self._masters = AlternatingUsers(engine, settings, rds=rds)

    @property
    def dual_engine(self) -> DualPasswordEngine:
        if not hasattr(self.engine, "set_dual_password"):
            raise ConfigurationError(
                f"the {self.engine.display_name} function has no dual passwords; set ROTATION_STRATEGY to "
                "single_user or alternating_users"
            )
        return cast(DualPasswordEngine, self.engine)

    def build_pending(self, current: dict[str, Any], context: RotationContext) -> dict[str, Any]:
        self.login(current, "current")
        self.master_arn_of(current, "current")
        return {**current, "password": generate_password(self.settings.password_policy)}

    def own_login(self, context: RotationContext, secret: dict[str, Any], label: str) -> DatabaseLogin:
        """A login of the rotated secret (current or pending), knowing the secret's ARN (a managed user's binding)."""
        return dataclasses.replace(self.login(secret, label), secret_arn=context.metadata.arn)

    def set_pending(self, context: RotationContext) -> None:
        engine = self.dual_engine
        current_secret, pending_secret = context.current(), context.pending()
        current = self.own_login(context, current_secret, "current")
        pending = self.own_login(context, pending_secret, "pending")
        self._check_same_identity(current, pending)
        if pending.username != current.username or pending.user_arn != current.user_arn:
            raise ConfusedDeputyError(
                "the pending secret names another user than the current secret; a dual-password rotation only "
                "changes the password. Start a new rotation"
            )
        master_arn = self.master_arn_of(current_secret, "current")
        if self.master_arn_of(pending_secret, "pending") != master_arn:
            raise ConfusedDeputyError("the pending and current secrets name different master secrets")
        if pending.password == current.password:
            get_logger().info("the pending password is the current one; nothing to change")
            return
        session = None
        if current.has_endpoint and current.password:
            session = self.try_login(current)
            if session is None:
                self._current_refused(current, pending)
                return
        elif master_arn is not None or current.user_arn is None:
            raise SecretFormatError(
                'the current secret has no "host" or no "password" to prove itself with before anything changes; a '
                'secret without them must name a user a service manages ("user_arn")'
            )
        try:
            request = DualPasswordRequest(
                caller=session, current_password=current.password, new_password=pending.password, login=current
            )
            if master_arn is None:
                if not engine.set_dual_password(session, request):
                    self._replace_refused(current, pending)
                    return
                what = "the user changed its password" if current.user_arn is None else "the service set both passwords"
            else:
                master = self._masters.master_login(context, master_arn, current)
                admin = engine.connect(master)
                try:
                    outcome = engine.set_dual_password_as_admin(admin, request)
                finally:
                    admin.close()
                what = f"the master changed the user's password ({outcome.value})"
        finally:
            if session is not None:
                session.close()
        get_logger().info(
            f"{what}: AWSPENDING's password now logs in and AWSCURRENT's stays valid beside it (MySQL: as the "
            f"secondary) until the next rotation. Drain check: {UNCOUNTABLE}",
            extra={"user": current.username},
        )

    def test_pending(self, context: RotationContext) -> None:
        """A managed user: the service reports it active (a change applied) and bound to this secret first. Then the
        pending credentials log in and pass the probe, where the secret names an endpoint; where it names none, the
        service's view of the user is all testSecret can check, and it says so."""
        pending = self.own_login(context, context.pending(), "pending")
        if pending.user_arn is not None:
            self.dual_engine.check_dual_password(None, pending, admin=None)
        if pending.has_endpoint:
            super().test_pending(context)
            return
        get_logger().warning(
            'the secret names no endpoint ("host"), so the new password was not tried in a login: the service that '
            "manages the user reports it active, bound to this secret, with its passwords set (what AWS's function "
            'checks). Add "host" and "port" of an endpoint the function can reach to have testSecret log in',
            extra={"user": pending.username},
        )

    def check_configuration(self, context: RotationContext, checks: CheckRunner) -> None:
        """The current credentials log in and pass the probe, the master named by "masterarn" (if any) logs in, and
        the server, plugin and privileges allow the change (``dual_password``, then the right to make it: the user's
        own, the master's, or for a user a service manages, its binding and state there). Read-only."""
        current_secret = context.current()
        parsed = checks.run(
            "secret_json",
            lambda: (self.own_login(context, current_secret, "current"), self.master_arn_of(current_secret, "current")),
        )
        if parsed is None:
            return
        current, master_arn = parsed
        engine = self.dual_engine
        master = self._configured_master(context, checks, current, master_arn)
        if not current.has_endpoint:
            for name in ("current_login", "test_query"):
                checks.skip(name, NO_ENDPOINT)
            checks.run(
                "dual_password", lambda: engine.check_dual_password(None, current, admin=None), also=_rights(None)
            )
            checks.passed(
                "the service that manages the user reports it active and bound to this secret; the secret names no "
                "endpoint, so no login was tried (testSecret will not log in either)",
                user=current.username,
            )
            return
        with self.logged_in(checks, current) as session:
            if session is None:
                return
            admin: Session | None = None
            if master is not None:
                admin = checks.run("master_login", lambda: engine.connect(master))
                if admin is not None:
                    checks.passed("the master credentials log in", user=master.username)
            try:
                if master_arn is None or admin is not None:
                    checks.run(
                        "dual_password",
                        lambda: engine.check_dual_password(session, current, admin=admin),
                        also=_rights(admin),
                    )
            finally:
                if admin is not None:
                    admin.close()
        who = "the master" if master is not None else "the user itself" if current.user_arn is None else "the service"
        checks.passed(
            f"the server keeps dual passwords and {who} may set them; the next rotation would keep the current "
            "password valid beside the new one",
            user=current.username,
        )

    def _configured_master(
        self, context: RotationContext, checks: CheckRunner, current: DatabaseLogin, master_arn: str | None
    ) -> DatabaseLogin | None:
        """Where the master logs in (None without "masterarn": the user changes its own password; or when it cannot
        be resolved, recorded under ``master_secret``)."""
        if master_arn is None:
            for name in ("master_secret", "master_login", "alternate_pair", "master_privileges"):
                checks.skip(name, 'the secret names no master ("masterarn"): the user changes its own password')
            return None
        checks.skip("own_password_change", 'the secret names a master ("masterarn"), which changes the password')
        checks.skip("alternate_pair", 'the secret names a master ("masterarn") of one user: there is no alternate')
        return checks.run("master_secret", lambda: self.master_login(context, master_arn, current))

    def master_login(self, context: RotationContext, master_arn: str, current: DatabaseLogin) -> DatabaseLogin:
        return self._masters.master_login(context, master_arn, current)

    @staticmethod
    def master_arn_of(secret: dict[str, Any], label: str) -> str | None:
        """The optional ``masterarn``: absent means the user changes its own password."""
        arn = secret.get("masterarn")
        if arn is None:
            return None
        if not isinstance(arn, str) or not arn.strip():
            raise SecretFormatError(
                f"the {label} secret's \"masterarn\" must be the ARN of the admin secret that may change the user's "
                "password, or absent (the user changes its own)"
            )
        return arn

    def _current_refused(self, current: DatabaseLogin, pending: DatabaseLogin) -> None:
        """AWSCURRENT does not log in: fine only if the pending password already does (an earlier attempt set it)."""
        self._require_pending_login(
            pending,
            f"neither the current nor the pending password logs in as {describe(current.username)}; the password "
            "was changed outside this rotation. Put the working password as AWSCURRENT and rotate again",
        )
        get_logger().warning(
            "the pending password was already set by an earlier attempt, but AWSCURRENT's no longer logs in: its "
            "secondary password was discarded outside the rotation (ALTER USER ... DISCARD OLD PASSWORD). The rotation "
            "finishes with the pending password; applications still on AWSCURRENT fail until they refresh",
            extra={"user": current.username},
        )

    def _require_pending_login(self, pending: DatabaseLogin, refused: str) -> None:
        """An earlier attempt set the pending password if it logs in; else the password changed outside the rotation
        (``refused`` says how, raised as an authentication failure)."""
        session = self.try_login(pending)
        if session is None:
            raise TargetError(refused, category=Category.AUTH_FAILED)
        session.close()

    def _replace_refused(self, current: DatabaseLogin, pending: DatabaseLogin) -> None:
        """The server refused REPLACE: the current password is not the primary. Done if the pending one is."""
        self._require_pending_login(
            pending,
            f"the primary password of {describe(current.username)} is neither AWSCURRENT's (which still logs in, "
            "as the secondary) nor AWSPENDING's: it was changed outside this rotation. Nothing was changed; make "
            "AWSCURRENT's password the primary again (ALTER USER ... IDENTIFIED BY) and rotate",
        )
        get_logger().info(
            "the password was already changed by an earlier attempt: AWSPENDING's is the primary, AWSCURRENT's the "
            "secondary",
            extra={"user": current.username},
        )


def _rights(admin: Session | None) -> str:
    """The check of the right to set dual passwords: the user's own, or the master's."""
    return "own_password_change" if admin is None else "master_privileges"
