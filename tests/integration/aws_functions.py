"""What AWS's own rotation functions do, step by step, for the tests of switching from them (and back).

An emulation of their documented behaviour, not their code: the secret JSON they read and write, and the
accounts they leave on the server. createSecret stores the pending value (same keys, a new password;
alternating users: the other of ``<user>`` / ``<user>_clone``); setSecret returns if the pending value
already logs in, else changes the password (single user: as the user itself; alternating: as the master,
creating the clone if missing — PostgreSQL: ``CREATE ROLE <clone> WITH LOGIN PASSWORD`` and
``GRANT <user> TO <clone>``, nothing else, so the clone acts as itself and owns what it creates;
MariaDB: ``CREATE USER`` and the original's ``SHOW GRANTS`` replayed for the clone); testSecret logs in
with the pending value; finishSecret moves AWSCURRENT.

Where AWS's functions send a plaintext password, this sends what the server stores (a SCRAM verifier,
a ``mysql_native_password`` hash), so the leak guard's search of the server logs stays meaningful.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rotation_core.engines.base import CLONE_SUFFIX
from rotation_core.engines.mysql.statements import native_password_hash
from rotation_local import emulator
from rotation_local.targets import DatabaseTarget

if TYPE_CHECKING:  # the consumer benchmark (bench/consumer_load.py) loads this module without the tests' helpers
    from helpers import LeakGuard

AWSCURRENT, AWSPENDING = emulator.AWSCURRENT, emulator.AWSPENDING


@dataclass
class AwsRotationFunction:
    """One of AWS's rotation templates (PostgreSQL or MariaDB; single user or alternating users)."""

    target: DatabaseTarget
    server: Any
    sm_client: Any
    ca_bundle: Path
    leak_guard: LeakGuard
    alternating: bool

    def rotate(self, arn: str, token: str | None = None) -> str:
        """A whole rotation as Secrets Manager runs it with AWS's function attached."""
        if token is None or token not in emulator.version_stages(arn):
            token = emulator.stage_pending_placeholder(arn, token)
        for step in (self.create_secret, self.set_secret, self.test_secret, self.finish_secret):
            step(arn, token)
        emulator.clear_pending(arn)
        return token

    # -- the four steps ---------------------------------------------------------------------------

    def create_secret(self, arn: str, token: str) -> None:
        if self._value(arn, AWSPENDING, token) is not None:
            return
        pending = dict(self._value(arn, AWSCURRENT) or {})
        if self.alternating:
            name = pending["username"]
            pending["username"] = name[: -len(CLONE_SUFFIX)] if name.endswith(CLONE_SUFFIX) else name + CLONE_SUFFIX
        pending["password"] = secrets.token_urlsafe(24)
        self.leak_guard.add(pending["password"])
        self.sm_client.put_secret_value(
            SecretId=arn, ClientRequestToken=token, SecretString=json.dumps(pending), VersionStages=[AWSPENDING]
        )

    def set_secret(self, arn: str, token: str) -> None:
        pending, current = self._value(arn, AWSPENDING, token), self._value(arn, AWSCURRENT)
        assert pending is not None
        assert current is not None
        if self.target.logs_in(self.server, pending, self.ca_bundle):
            return
        if not self.alternating:
            self._own_password(current, pending["password"])
            return
        master = self._value(current["masterarn"], AWSCURRENT)
        assert master is not None
        original = current["username"]
        self._master_sets_password(master, original, pending["username"], pending["password"])

    def test_secret(self, arn: str, token: str) -> None:
        pending = self._value(arn, AWSPENDING, token)
        assert pending is not None
        assert self.target.logs_in(self.server, pending, self.ca_bundle), "AWS's testSecret: the pending login fails"

    def finish_secret(self, arn: str, token: str) -> None:
        stages = emulator.version_stages(arn)
        current = next(version for version, labels in stages.items() if AWSCURRENT in labels)
        if current == token:
            return
        self.sm_client.update_secret_version_stage(
            SecretId=arn, VersionStage=AWSCURRENT, MoveToVersionId=token, RemoveFromVersionId=current
        )

    # -- on the server ----------------------------------------------------------------------------

    def _own_password(self, current: dict[str, Any], password: str) -> None:
        if self.target.engine == "postgres":
            from psycopg2 import sql
            from psycopg2.extensions import encrypt_password

            conn = self._pg_connect(current)
            try:
                with conn.cursor() as cursor:
                    verifier = encrypt_password(password, current["username"], conn, "scram-sha-256")
                    cursor.execute(
                        sql.SQL("ALTER USER {} WITH PASSWORD {}").format(
                            sql.Identifier(current["username"]), sql.Literal(verifier)
                        )
                    )
                conn.commit()
            finally:
                conn.close()
            return
        conn = self._mysql_connect(current)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SET PASSWORD = %s", (native_password_hash(password),))
        finally:
            conn.close()

    def _master_sets_password(self, master: dict[str, Any], original: str, user: str, password: str) -> None:
        if self.target.engine == "postgres":
            from psycopg2 import sql
            from psycopg2.extensions import encrypt_password

            conn = self._pg_connect(master, dbname="postgres")
            try:
                with conn.cursor() as cursor:
                    verifier = encrypt_password(password, user, conn, "scram-sha-256")
                    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,))
                    if not cursor.fetchall():
                        cursor.execute(
                            sql.SQL("CREATE ROLE {} WITH LOGIN PASSWORD {}").format(
                                sql.Identifier(user), sql.Literal(verifier)
                            )
                        )
                        cursor.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(original), sql.Identifier(user)))
                    else:
                        cursor.execute(
                            sql.SQL("ALTER USER {} WITH PASSWORD {}").format(
                                sql.Identifier(user), sql.Literal(verifier)
                            )
                        )
                conn.commit()
            finally:
                conn.close()
            return
        password_hash = native_password_hash(password)
        conn = self._mysql_connect(master)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1 FROM mysql.user WHERE User = %s", (user,))
                if not cursor.fetchall():
                    cursor.execute("CREATE USER %s@'%%' IDENTIFIED BY PASSWORD %s", (user, password_hash))
                    cursor.execute("SHOW GRANTS FOR %s@'%%'", (original,))
                    for (line,) in cursor.fetchall():
                        grant = str(line).split(" TO ")[0]
                        cursor.execute(grant.replace("%", "%%") + " TO %s@'%%'", (user,))
                else:
                    cursor.execute("SET PASSWORD FOR %s@'%%' = %s", (user, password_hash))
        finally:
            conn.close()

    def _pg_connect(self, secret: dict[str, Any], dbname: str | None = None) -> Any:
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1", port=self.server.port, user=secret["username"], password=secret["password"],
            dbname=dbname or secret.get("dbname") or "postgres", sslmode="verify-full", sslrootcert=str(self.ca_bundle),
        )  # fmt: skip

    def _mysql_connect(self, secret: dict[str, Any]) -> Any:
        import ssl

        import pymysql

        return pymysql.connect(
            host="127.0.0.1", port=self.server.port, user=secret["username"], password=secret["password"],
            ssl=ssl.create_default_context(cafile=str(self.ca_bundle)), autocommit=True,
        )  # fmt: skip

    def _value(self, arn: str, stage: str, version_id: str | None = None) -> dict[str, Any] | None:
        kwargs = {"SecretId": arn, "VersionStage": stage}
        if version_id is not None:
            kwargs["VersionId"] = version_id
        try:
            text = self.sm_client.get_secret_value(**kwargs)["SecretString"]
        except self.sm_client.exceptions.ResourceNotFoundException:
            return None
        value: dict[str, Any] = json.loads(text)
        return value
