"""PostgreSQL engine: psycopg2 I/O (the statements come from :mod:`.statements`).

Passwords never appear in SQL text: the server receives a SCRAM-SHA-256 verifier computed on the
client (``psycopg2.extensions.encrypt_password``), so even ``log_statement=all`` logs no plaintext.

No statement goes through psycopg2's ``%``-formatting: role names are ``sql.Identifier``, values
``sql.Literal`` (the quoting psycopg2 applies to bound parameters too; it binds on the client), and
:func:`.connection.send` executes the composed statement without parameters. A role named ``dba%team`` or
``a%(x)s`` therefore reaches the server exactly as it is. ``set_clone_password`` runs in one
transaction: a failure at any statement leaves nothing behind.
The driver is imported on first connection, never at import time.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from rotation_core.engines.base import (
    ByteLimitedLogins,
    CloneRequest,
    DatabaseLogin,
    Session,
    TlsMode,
    sql_probe_failed,
)
from rotation_core.engines.postgres import ENGINE, pair, preflight
from rotation_core.engines.postgres.connection import (
    connection_of,
    driver_message,
    rollback,
    run,
    sql_text,
)
from rotation_core.engines.postgres.statements import (
    Literal,
    Statement,
    acts_as,
    clone_password,
    current_database,
    keep_clone_password,
    may_reassign,
    original_password,
    own_password,
    owned_objects,
    reassign_owned,
    role_exists,
)
from rotation_core.engines.tls import resolve_ca_bundle
from rotation_core.errors import Category, TargetError, describe
from rotation_core.log import get_logger, register_sensitive
from rotation_core.settings import Settings

if TYPE_CHECKING:
    import psycopg2.extensions

DEFAULT_DBNAME = "postgres"
APPLICATION_NAME = "secrets-rotation"

_AUTH_MARKERS = ("password authentication failed", "authentication failed for user")
_TLS_MARKERS = ("ssl", "certificate", "tls")
_UNREACHABLE_MARKERS = (
    "could not connect",
    "connection refused",
    "timeout expired",
    "could not translate host name",
    "no route to host",
    "network is unreachable",
    "server closed the connection unexpectedly",
    "connection timed out",
)


class PostgresEngine(ByteLimitedLogins):
    display_name = ENGINE.display_name
    engine_names = ENGINE.secret_engines
    default_port = ENGINE.default_port
    uses_rds = ENGINE.uses_rds
    max_username_bytes = 63  # NAMEDATALEN - 1

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def connect(self, login: DatabaseLogin) -> Session:
        import psycopg2

        params = login.driver_params("dbname", DEFAULT_DBNAME, self._settings.connect_timeout)
        params.update(sslmode=login.tls.value, application_name=APPLICATION_NAME)
        ca_bundle = None
        if login.tls.verifies_certificate:
            ca_bundle = resolve_ca_bundle(self._settings.db_ca_bundle)
            params["sslrootcert"] = ca_bundle
        try:
            return psycopg2.connect(**params)  # type: ignore[no-any-return]
        except psycopg2.Error as error:
            raise self._login_error(login, error, ca_bundle) from None

    def set_own_password(self, session: Session, login: DatabaseLogin, new_password: str) -> None:
        conn = connection_of(session)
        verifier = _verifier(conn, new_password, login.username)
        statements = own_password(login.username, verifier)
        run(conn, statements, action=f"change the password of {describe(login.username)}")

    def set_clone_password(self, admin: Session, request: CloneRequest) -> None:
        """Set the password; an existing clone that owns objects never starts acting as the original.

        Nothing happens before :meth:`check_pair` has proven the pair on the server (:mod:`.pair`). A clone
        this function made acts as the original (default role) and so owns nothing. A clone made by AWS's
        rotation function acts as itself and owns what it created; a default role would cut its
        sessions off from those objects. Its objects are given to the original (REASSIGN OWNED, in every
        database that has some) when the master holds the privileges of both roles, and then it acts as
        the original like any clone of ours; otherwise it is left acting as itself, and a warning gives
        the statements an administrator can run.
        """
        original, target, new_password = request.original, request.target, request.new_password
        self.check_pair(
            admin, caller=request.caller, original=original, target=target, allow_privileged=request.allow_privileged
        )
        conn = connection_of(admin)
        verifier = _verifier(conn, new_password, target)
        action = f"set the password of {describe(target)} as a stand-in for {describe(original)}"
        admin_hint = (
            f"the master user needs CREATEROLE, and on PostgreSQL 16 and later ADMIN OPTION on "
            f"{describe(original)} (GRANT <that role> TO <master> WITH ADMIN OPTION)"
        )
        if target == original:
            statements = original_password(original, verifier)
        else:
            exists = bool(run(conn, [role_exists(target)], action=f"look up {describe(target)}", commit=False))
            owned = self._owned(conn, target) if exists else []
            if owned:
                self._clone_owning_objects(
                    conn, original=original, clone=target, verifier=verifier, owned=owned,
                    admin_login=request.admin_login, action=action, admin_hint=admin_hint,
                )  # fmt: skip
                return
            statements = clone_password(original, target, verifier, exists=exists)
        # One transaction (the lookup above included): if any statement fails, none of them happened.
        run(conn, statements, action=action, admin_hint=admin_hint)

    def _owned(self, conn: psycopg2.extensions.connection, role: str) -> list[tuple[str | None, int]]:
        rows = run(conn, [owned_objects(role)], action=f"look up what {describe(role)} owns", commit=False)
        return [(None if name is None else str(name), int(count)) for name, count in rows]

    def _clone_owning_objects(
        self,
        conn: psycopg2.extensions.connection,
        *,
        original: str,
        clone: str,
        verifier: str,
        owned: list[tuple[str | None, int]],
        admin_login: DatabaseLogin | None,
        action: str,
        admin_hint: str,
    ) -> None:
        here = str(run(conn, [current_database()], action="read the current database", commit=False)[0][0])
        elsewhere = sorted(name for name, _count in owned if name is not None and name != here)
        may = bool(run(conn, [may_reassign(clone, original)], action="check REASSIGN OWNED", commit=False)[0][0])
        reason = "the master does not hold the privileges of both roles, which REASSIGN OWNED needs"
        if may and elsewhere and admin_login is None:
            may, reason = False, "the master's login for the other databases is not known"
        if may:
            try:
                # Without admin_login, elsewhere is empty here (checked above).
                if admin_login is not None:
                    for database in elsewhere:
                        self._reassign_in(admin_login, database, clone, original)
                # Here: this database's objects and shared ones (databases the clone owns), then the clone
                # acts as the original from now on, in the same transaction as its new password.
                run(
                    conn,
                    [reassign_owned(clone, original), *clone_password(original, clone, verifier, exists=True)],
                    action=action,
                    admin_hint=admin_hint,
                )
            except TargetError as error:
                if error.category is not Category.PERMISSION:
                    raise
                may, reason = False, f"moving them failed ({error.message})"
            else:
                get_logger().info(
                    f"the existing {describe(clone)} owned objects: they now belong to {describe(original)}, and "
                    f"{describe(clone)} acts as {describe(original)} from now on, as every alternate user does",
                    extra={"databases": [name or "(shared objects)" for name, _count in owned]},
                )
                return
        run(conn, keep_clone_password(original, clone, verifier), action=action, admin_hint=admin_hint)
        self._warn_clone_kept(conn, original, clone, owned, reason)

    def _reassign_in(self, admin_login: DatabaseLogin, database: str, clone: str, original: str) -> None:
        session = self.connect(dataclasses.replace(admin_login, dbname=database))
        try:
            run(
                connection_of(session),
                [reassign_owned(clone, original)],
                action=f"give what {describe(clone)} owns in the database {describe(database)} to {describe(original)}",
            )
        finally:
            session.close()

    def _warn_clone_kept(
        self,
        conn: psycopg2.extensions.connection,
        original: str,
        clone: str,
        owned: list[tuple[str | None, int]],
        reason: str,
    ) -> None:
        reassign = f"{sql_text(conn, reassign_owned(clone, original))};"
        switch = f"{sql_text(conn, acts_as(clone, original))};"
        databases = [name for name, _count in owned if name is not None] or ["(any one database)"]
        where = ", ".join(describe(name) for name in databases)
        get_logger().warning(
            f"{describe(clone)} owns objects (made by another rotation function, e.g. AWS's, under which it acts "
            f"as itself), so it was left acting as itself and keeps using them; only its password changed "
            f"({reason}). To let {describe(original)} and {describe(clone)} share those objects, an administrator "
            f"with the privileges of both roles runs, in each of the databases {where}: {reassign} and then, once: "
            f"{switch}",
            extra={"user": clone, "statements": [reassign, switch], "databases": databases},
        )

    def probe(self, session: Session, query: str) -> None:
        import psycopg2

        conn = connection_of(session)
        try:
            conn.set_session(readonly=True)
            with conn.cursor() as cursor:
                cursor.execute(query)
                if cursor.description is not None:
                    cursor.fetchone()
            conn.rollback()
        except psycopg2.Error as error:
            raise sql_probe_failed(driver_message(error)) from None

    def check_pair(
        self, admin: Session, *, caller: Session, original: str, target: str, allow_privileged: bool
    ) -> None:
        pair.check_pair(connection_of(admin), original=original, target=target, allow_privileged=allow_privileged)

    def check_own_password(self, session: Session, login: DatabaseLogin) -> None:
        preflight.check_own_password(connection_of(session), login)

    def check_clone_rights(self, admin: Session, *, caller: Session, original: str, target: str) -> None:
        preflight.check_clone_rights(connection_of(admin), original=original, target=target)

    def count_sessions(self, session: Session, username: str) -> int | None:
        """Sessions of ``username`` in ``pg_stat_activity`` (every role sees every session's user), but this one."""
        conn = connection_of(session)
        statement = Statement(
            "SELECT count(*) FROM pg_catalog.pg_stat_activity "
            "WHERE usename = {} AND pid <> pg_catalog.pg_backend_pid()",
            (Literal(username),),
        )
        rows = run(conn, [statement], action=f"count the sessions of {describe(username)}", commit=False)
        rollback(conn)
        return int(rows[0][0]) if rows else 0

    def _login_error(self, login: DatabaseLogin, error: Exception, ca_bundle: str | None) -> TargetError:
        message = driver_message(error)
        lowered = message.lower()
        where = (
            f"{self.display_name} login as {describe(login.username)} at {login.host}:{login.port} "
            f"({login.label} secret)"
        )
        if any(marker in lowered for marker in _AUTH_MARKERS):
            return TargetError(f"{where} was refused: {message}", category=Category.AUTH_FAILED)
        if "server does not support ssl" in lowered:
            return TargetError(
                f"{where} failed: the server does not offer TLS. Enable TLS on the server, or set "
                '"ssl": false in the secret to connect without it (the password then crosses the '
                "network unencrypted)",
                category=Category.TLS,
            )
        if any(marker in lowered for marker in _TLS_MARKERS) and login.tls != TlsMode.DISABLE:
            return TargetError(
                f"{where} failed TLS ({login.tls.value}, CA bundle {ca_bundle or 'not used'}): {message}. "
                "Set DB_CA_BUNDLE to a bundle holding the server's CA (see the README for RDS) and use "
                "the host name the certificate was issued for",
                category=Category.TLS,
            )
        if any(marker in lowered for marker in _UNREACHABLE_MARKERS):
            return TargetError(
                f"{where} failed, the server is unreachable: {message}. Check host, port and network "
                f"routes/security groups (connect timeout {self._settings.connect_timeout}s, DB_CONNECT_TIMEOUT)",
                category=Category.UNREACHABLE,
            )
        if "pg_hba.conf" in lowered or "permission denied" in lowered:
            return TargetError(f"{where} was not permitted: {message}", category=Category.PERMISSION)
        return TargetError(f"{where} failed: {message}", category=Category.UNREACHABLE)


def _verifier(conn: psycopg2.extensions.connection, password: str, username: str) -> str:
    from psycopg2.extensions import encrypt_password

    verifier = encrypt_password(password, username, conn, "scram-sha-256")
    register_sensitive(verifier)
    return verifier
