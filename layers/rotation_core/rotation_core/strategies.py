"""Database rotation strategies: single user and alternating users.

They decide which credentials to use and produce; the engine does the SQL. Before any credential
is used, the secrets are checked against each other (same server, same user or its clone), so a
value edited by someone with only PutSecretValue cannot point the function at another database
(the confused-deputy problem).

Alternating users may involve Amazon RDS (:mod:`rotation_core.rds`): a master secret RDS manages holds
no host, only RDS's tags naming its DB instance or cluster, and the rotated secret may name a reader,
custom or instance endpoint or a read replica of the master's database. RDS's answers decide both
where the master logs in (always the writer) and whether the rotated secret's host belongs to the
master's database; host names are never compared with each other to accept a different host.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from rotation_core.checks import CheckRunner, FirstFailureRaises
from rotation_core.drain import check_database_user
from rotation_core.engines.base import CLONE_SUFFIX, CloneRequest, DatabaseEngine, DatabaseLogin, Session
from rotation_core.errors import (
    Category,
    ConfusedDeputyError,
    PendingNotReadyError,
    RdsError,
    SecretFormatError,
    TargetError,
    describe,
)
from rotation_core.log import get_logger
from rotation_core.passwords import generate_password
from rotation_core.rds import CLUSTER_TAG, INSTANCE_TAG, RdsDatabase, RdsDirectory, tagged_database_arn
from rotation_core.rotator import RotationContext
from rotation_core.settings import Settings

__all__ = ["CLONE_SUFFIX", "AlternatingUsers", "DatabaseStrategy", "SingleUser"]

_MASTER_ELSEWHERE = (
    "the master secret names another server than the secret being rotated{why}. A rotation never moves a secret to "
    'another database: point "masterarn" at the admin secret of the same database, or correct the secret\'s host/port'
)


class DatabaseStrategy:
    """What both database strategies share: parsing, login attempts, testSecret."""

    mints_on_create = False
    reads_current_in_test = False

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
                "the AWSPENDING credentials do not log in: setSecret has not run for this version or it failed. "
                "Nothing was changed; rotate the secret again"
            )
        try:
            self.engine.probe(session, self.settings.test_query)
        finally:
            session.close()
        get_logger().info(
            "the AWSPENDING credentials log in and pass the probe",
            extra={"user": pending.username, "host": pending.host, "port": pending.port},
        )

    def test_configuration(self, context: RotationContext) -> None:
        """Secrets Manager's configuration test: :meth:`check_configuration`, stopping at the first failure."""
        self.check_configuration(context, FirstFailureRaises())

    def check_configuration(self, context: RotationContext, checks: CheckRunner) -> None:
        """Every check of this strategy's setup, read-only, through ``checks`` (:mod:`rotation_core.checks`)."""
        raise NotImplementedError

    @contextlib.contextmanager
    def logged_in(self, checks: CheckRunner, login: DatabaseLogin) -> Iterator[Session | None]:
        """The current credentials log in and pass the probe (what every rotation starts from): the session while
        the block runs (None when they did not log in), closed after it."""
        session = checks.login(self.engine, login)
        if session is None:
            yield None
            return
        try:
            checks.run("test_query", lambda: self.engine.probe(session, self.settings.test_query))
            checks.passed(
                "the current credentials log in and pass the probe",
                user=login.username, host=login.host, port=login.port,
            )  # fmt: skip
            yield session
        finally:
            session.close()

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

    def check_configuration(self, context: RotationContext, checks: CheckRunner) -> None:
        """The current credentials log in and pass the probe (what a rotation starts from); with rights, the user
        may change its own password."""
        login = checks.run("secret_json", lambda: self.login(context.current(), "current"))
        if login is None:
            return
        with self.logged_in(checks, login) as session:
            if session is not None and checks.checks_rights:
                checks.run("own_password_change", lambda: self.engine.check_own_password(session, login))

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

    # testSecret compares AWSPENDING with AWSCURRENT, reading it if needed, to tell a configuration test's
    # copy (which must also prove the master logs in) from the other user's new credentials.
    reads_current_in_test = True

    def __init__(self, engine: DatabaseEngine, settings: Settings, *, rds: RdsDirectory | None = None) -> None:
        super().__init__(engine, settings)
        self.rds = rds or RdsDirectory()

    def build_pending(self, current: dict[str, Any], context: RotationContext) -> dict[str, Any]:
        login = self.login(current, "current")
        self._master_arn(current, "current")
        return {
            **current,
            "username": self.alternate_of(login.username),
            "password": generate_password(self.settings.password_policy),
        }

    def set_pending(self, context: RotationContext) -> None:
        current_secret, pending_secret = context.current(), context.pending()
        current = self.login(current_secret, "current")
        pending = self.login(pending_secret, "pending")
        self._check_same_identity(current, pending)
        if pending.username != self.alternate_of(current.username):
            raise ConfusedDeputyError(
                "the pending secret's username is not the current user's alternate; start a new rotation"
            )
        master_arn = self._master_arn(current_secret, "current")
        if self._master_arn(pending_secret, "pending") != master_arn:
            raise ConfusedDeputyError("the pending and current secrets name different master secrets")
        master = self.master_login(context, master_arn, current)
        original = self.original_of(current.username)
        # Prove the caller's own secret is genuine before acting with the master's rights; the engine then
        # proves on the server that the pair is the caller's before it changes anything.
        caller = self.engine.connect(current)
        try:
            admin = self.engine.connect(master)
            try:
                check_database_user(self.engine, admin, pending.username)  # the drain check, read-only
                request = CloneRequest(
                    caller=caller,
                    original=original,
                    target=pending.username,
                    new_password=pending.password,
                    admin_login=master,
                    allow_privileged=self.allows_privileged(original),
                )
                self.engine.set_clone_password(admin, request)
            except ConfusedDeputyError as error:
                raise ConfusedDeputyError(
                    f"{error.message}. The pending version {context.token} holds a password that was never set: "
                    "once the secret is right, remove its AWSPENDING label (aws secretsmanager "
                    f"update-secret-version-stage --secret-id {context.metadata.arn} --version-stage AWSPENDING "
                    f"--remove-from-version-id {context.token}) and rotate again"
                ) from None
            finally:
                admin.close()
        finally:
            caller.close()
        get_logger().info("set the alternate user's password", extra={"user": pending.username})

    def check_configuration(self, context: RotationContext, checks: CheckRunner) -> None:
        """The current credentials log in and pass the probe, the alternate name fits, the master logs in, and the
        server proves the pair is the secret's own (as setSecret would, reading only); with rights, the master may
        copy the original to the alternate."""
        current_secret = context.current()
        named = checks.run("secret_json", lambda: self._current_pair(current_secret))
        if named is None:
            return
        current, alternate = named
        master = checks.run(
            "master_secret", lambda: self.master_login(context, self.master_arn_of(current_secret), current)
        )
        with self.logged_in(checks, current) as caller:
            if caller is None or master is None:
                return  # the master is checked once the current login works
            admin = checks.run("master_login", lambda: self.engine.connect(master))
            if admin is None:
                return
            try:
                original = self.original_of(current.username)
                allow = self.allows_privileged(original)
                checks.run(
                    "alternate_pair",
                    lambda: self.engine.check_pair(
                        admin, caller=caller, original=original, target=alternate, allow_privileged=allow
                    ),
                )
                if checks.checks_rights:
                    checks.run(
                        "master_privileges",
                        lambda: self.engine.check_clone_rights(
                            admin, caller=caller, original=original, target=alternate
                        ),
                    )
            finally:
                admin.close()
        checks.passed(
            "the master credentials log in and the server shows the pair is this secret's; the next rotation would "
            "set the alternate user's password",
            user=master.username, host=master.host, port=master.port, alternate_user=alternate,
        )  # fmt: skip

    def _current_pair(self, current_secret: dict[str, Any]) -> tuple[DatabaseLogin, str]:
        """The current secret's login, and the name of its alternate (which must fit the server)."""
        current = self.login(current_secret, "current")
        return current, self.alternate_of(current.username)

    def allows_privileged(self, original: str) -> bool:
        """Did the operator list ``original`` in ALLOW_PRIVILEGED_USERS (the function's environment)?"""
        return original in self.settings.allow_privileged_users

    def master_login(self, context: RotationContext, master_arn: str, current: DatabaseLogin) -> DatabaseLogin:
        """Where and as whom the master logs in, after proving it manages the database ``current`` names.

        A master secret with a ``host`` logs in there. One without (RDS manages it) logs in at the writer
        endpoint of the DB cluster or instance its ``aws:rds:`` tag names, as RDS describes it. Either
        way the rotated secret must name the master's own endpoint or, as RDS lists them, an endpoint of
        the same database (reader, custom, cluster member instance, read replica). For an engine RDS never
        manages (``uses_rds`` false), the master must name the rotated secret's own host and port: RDS is not asked.
        """
        master_secret = context.other_secret(master_arn)
        host = master_secret.get("host")
        database: RdsDatabase | None = None
        if isinstance(host, str) and host.strip():
            master = self.login(master_secret, "master")
            if master.same_server(current):
                return master
            if not self.engine.uses_rds:  # nothing else can show both hosts are one server; RDS is not asked
                raise ConfusedDeputyError(_MASTER_ELSEWHERE.format(why=""))
            database = self._database_at_master_host(master, current)
        elif not self.engine.uses_rds:
            raise SecretFormatError(
                'the master secret has no "host": add the "host" and "port" of the server the rotated secret names '
                f"(RDS does not manage {self.engine.display_name} masters)"
            )
        else:
            database = self._tagged_database(context, master_arn)
            master = self._rds_master_login(master_secret, database)
            if master.same_server(current):
                return master
        endpoint = database.endpoint_at(current.host, current.port)
        if endpoint is None:
            raise ConfusedDeputyError(
                f"the secret being rotated names {describe(current.host)}:{current.port}, which RDS does not list "
                f"as an endpoint of {database.title}, the master secret's database (its writer, reader and custom "
                "endpoints, cluster members and read replicas in this region). A rotation never moves a secret to "
                'another database: correct the secret\'s host/port, or point "masterarn" at the master secret of '
                "the database it names"
            )
        get_logger().info(
            f"RDS lists the rotated secret's host as the {endpoint.kind} of {database.title}; the master changes "
            "passwords at the writer",
            extra={"host": current.host, "writer": master.host, "rds_arn": database.arn},
        )
        return master

    def _database_at_master_host(self, master: DatabaseLogin, current: DatabaseLogin) -> RdsDatabase:
        """The RDS database whose writer the master secret names (the rotated secret names another host)."""
        try:
            database = self.rds.database_at(master.host, master.port)
        except RdsError as error:
            why = f", and RDS could not be asked whether both belong to one database ({error.message})"
            raise ConfusedDeputyError(_MASTER_ELSEWHERE.format(why=why)) from None
        if database is None:
            why = f", and RDS lists no DB cluster or instance whose writer endpoint is {describe(master.host)}"
            raise ConfusedDeputyError(_MASTER_ELSEWHERE.format(why=why))
        return database

    def _tagged_database(self, context: RotationContext, master_arn: str) -> RdsDatabase:
        tags = context.other_metadata(master_arn).tags
        arn = tagged_database_arn(tags)
        if arn is None:
            raise SecretFormatError(
                'the master secret has no "host" and RDS does not manage it (it has neither the '
                f'{INSTANCE_TAG} nor the {CLUSTER_TAG} tag): add "host" (and "port") to the master secret, '
                'or point "masterarn" at the master secret RDS manages for the database'
            )
        return self.rds.database(arn)

    def _rds_master_login(self, master_secret: dict[str, Any], database: RdsDatabase) -> DatabaseLogin:
        if database.engine not in self.engine.engine_names:
            allowed = ", ".join(sorted(self.engine.engine_names))
            raise ConfusedDeputyError(
                f"RDS says the master secret's database, {database.title}, runs the engine "
                f"{describe(database.engine)}, but this is the {self.engine.display_name} function (engines: "
                f'{allowed}); point "masterarn" at the master secret of the database being rotated'
            )
        if not database.writer.host or not database.writer.port:
            raise RdsError(
                f"RDS lists no writer endpoint for {database.title} (is it being created or failing over?); "
                "retry the rotation once it is available"
            )
        located = {
            **master_secret,
            "host": database.writer.host,
            "port": database.writer.port,
            "engine": database.engine,
        }
        get_logger().info(
            f"the master secret is managed by RDS: its credentials log in at the writer of {database.title}",
            extra={"writer": database.writer.host, "rds_arn": database.arn},
        )
        return self.login(located, "master")

    @staticmethod
    def original_of(username: str) -> str:
        """The original user of the pair ``username`` belongs to (``<user>`` for ``<user>_clone``)."""
        return username[: -len(CLONE_SUFFIX)] if username.endswith(CLONE_SUFFIX) else username

    def alternate_of(self, username: str) -> str:
        """The other user of the pair, which the next rotation changes; a name the server cannot hold is refused."""
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

    def master_arn_of(self, current_secret: dict[str, Any]) -> str:
        """The ARN of the master secret the current secret names (``masterarn``)."""
        return self._master_arn(current_secret, "current")

    @staticmethod
    def _master_arn(secret: dict[str, Any], label: str) -> str:
        arn = secret.get("masterarn")
        if not isinstance(arn, str) or not arn.strip():
            raise SecretFormatError(
                f'the {label} secret has no "masterarn"; alternating users need the ARN of the admin '
                "secret that may change the other user's password"
            )
        return arn
