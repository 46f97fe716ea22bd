"""The ``<victim>_clone`` attack on alternating users, set up on any server kind (issue #24, section 2).

An application whose login may create logins (PostgreSQL ``CREATEROLE``, MySQL/MariaDB ``CREATE USER``)
creates ``<victim>_clone`` with a password it knows, as itself, and writes that user into its own rotated
secret (``PutSecretValue``, which the threat model's attacker has). The next rotation logs in as the
planted clone (the caller-is-genuine check passes) and takes ``<victim>`` as the other user; without the
server-side proofs the master would set ``<victim>``'s password and store it in the attacker's secret.

:class:`AttackLab` builds the pieces with the local target's admin connection (the attacker's clone with
the attacker's own connection) and fingerprints a victim on the server (password verifier or hash,
attributes, memberships or grants) so a test can assert that nothing about it changed. Fingerprints
are SHA-256 digests: a failing comparison never prints a verifier or a hash.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import LeakGuard
from integration.support import Account, create_account, rotate, secret_at, unique
from rotation_core.engines.base import CLONE_SUFFIX
from rotation_core.engines.mysql.statements import native_password_hash
from rotation_core.errors import Category, RotationError
from rotation_local.targets import ClientTls, DatabaseTarget


@dataclass
class Login:
    """A database login a test knows the password of (a victim, or the attacker's planted clone)."""

    username: str
    password: str
    host: str = "%"  # the account's host part (MySQL family)

    def secret(self, target: DatabaseTarget, server: Any) -> dict[str, Any]:
        return target.secret(server, self.username, self.password)


@dataclass
class Owned:
    """A rotated secret's account and its login."""

    account: Account
    login: Login


@dataclass
class AttackLab:
    """One server kind's target and server, the emulator's client, the leak guard and the CA bundle."""

    target: DatabaseTarget
    server: Any
    sm_client: Any
    leak_guard: LeakGuard
    ca_bundle: Path

    @property
    def postgres(self) -> bool:
        return self.target.engine == "postgres"

    @property
    def mariadb(self) -> bool:
        return not self.postgres and getattr(self.server, "flavour", "") == "mariadb"

    def new_password(self) -> str:
        password = secrets.token_urlsafe(24)
        self.leak_guard.add(password)
        return password

    # -- the parties ------------------------------------------------------------------------------

    def attacker(self, *, superuser_master: bool = False) -> Account:
        """An application with its own master (alternating users) whose login may create logins.

        ``superuser_master``: the master is a superuser (PostgreSQL; a MySQL-family master has ALL
        PRIVILEGES anyway), so that nothing but the function's own checks stands between the attack and
        its victim.
        """
        return self._creating_application("attacker", superuser_master=superuser_master)

    def privileged_application(self) -> Owned:
        """A legitimate application pair with superuser-class rights (it may create logins: a migration role)
        and a superuser master, with the password of its login."""
        account = self._creating_application("migrator", superuser_master=True)
        return Owned(account, self.login_of(account))

    def _creating_application(self, prefix: str, *, superuser_master: bool) -> Account:
        account = create_account(
            self.target, self.server, self.sm_client, self.leak_guard,
            username=unique(prefix)[:20], master_username=unique("master")[:20], with_master=True,
            master_role_options="SUPERUSER" if superuser_master and self.postgres else None,
            login_options={"role_options": "CREATEROLE"} if self.postgres else None,
        )  # fmt: skip
        if not self.postgres:
            self.server.execute("GRANT CREATE USER ON *.* TO %s@'%%'", (account.username,))
        return account

    def login_of(self, account: Account) -> Login:
        """The login the account's secret holds now (AWSCURRENT)."""
        own = secret_at(self.sm_client, account.arn, "AWSCURRENT")
        return Login(own["username"], own["password"])

    def master_login(self, account: Account) -> Login:
        assert account.master_arn is not None
        master = secret_at(self.sm_client, account.master_arn, "AWSCURRENT")
        return Login(master["username"], master["password"], host="%" if self.postgres else "127.0.0.1")

    def superuser(self) -> Login:
        """A login with every right: PostgreSQL SUPERUSER; MySQL/MariaDB ALL PRIVILEGES WITH GRANT OPTION
        (on MySQL 8+ that includes SYSTEM_USER, so a CREATE USER holder cannot change its password)."""
        login = Login(unique("dba")[:20], self.new_password())
        if self.postgres:
            self.target.create_login(self.server, login.username, login.password, role_options="SUPERUSER")
        else:
            self.target.create_login(self.server, login.username, login.password)
            self.server.execute("GRANT ALL PRIVILEGES ON *.* TO %s@'%%' WITH GRANT OPTION", (login.username,))
        return login

    def application(self, *, administered_by: str | None = None) -> Login:
        """Another team's application login with a database of its own.

        ``administered_by``: a master that may manage it (PostgreSQL 16+: ADMIN OPTION on it).
        """
        login = Login(unique("other")[:20], self.new_password())
        self.target.create_login(self.server, login.username, login.password, database=unique("db"))
        if administered_by is not None:
            self.target.allow_master(self.server, administered_by, login.username)
        return login

    # -- the attack -------------------------------------------------------------------------------

    def plant_clone(self, attacker: Account, victim: Login) -> Login:
        """As the attacker's own login: create ``<victim>_clone`` with a password the attacker knows, and
        make it the attacker's AWSCURRENT (what PutSecretValue allows). Returns the planted login."""
        clone = Login(victim.username + CLONE_SUFFIX, self.new_password(), host=victim.host)
        own = secret_at(self.sm_client, attacker.arn, "AWSCURRENT")
        conn = self.target.connect(self.server, own, ClientTls(self.ca_bundle))
        try:
            if self.postgres:
                from psycopg2 import sql
                from psycopg2.extensions import encrypt_password

                verifier = encrypt_password(clone.password, clone.username, conn, "scram-sha-256")
                with conn.cursor() as cursor:
                    cursor.execute(
                        sql.SQL("CREATE ROLE {} WITH LOGIN PASSWORD {}").format(
                            sql.Identifier(clone.username), sql.Literal(verifier)
                        )
                    )
                conn.commit()
            else:
                with conn.cursor() as cursor:
                    if self.mariadb:
                        cursor.execute(
                            "CREATE USER %s@%s IDENTIFIED BY PASSWORD %s",
                            (clone.username, clone.host, native_password_hash(clone.password)),
                        )
                    else:  # MySQL writes <secret> for the password in its general log
                        cursor.execute(
                            "CREATE USER %s@%s IDENTIFIED WITH caching_sha2_password BY %s",
                            (clone.username, clone.host, clone.password),
                        )
                conn.commit()
        finally:
            conn.close()
        # The planted login has no rights on the attacker's database: the edited value names none.
        edited = {**{k: v for k, v in own.items() if k != "dbname"}, "username": clone.username,
                  "password": clone.password}  # fmt: skip
        self.sm_client.put_secret_value(
            SecretId=attacker.arn, SecretString=json.dumps(edited), VersionStages=["AWSCURRENT"]
        )
        return clone

    # -- what must not change ---------------------------------------------------------------------

    def logs_in(self, login: Login) -> bool:
        return self.target.logs_in(self.server, login.secret(self.target, self.server), self.ca_bundle)

    def fingerprint(self, login: Login) -> str:
        """A digest of everything the server holds about the login that a rotation could change."""
        if self.postgres:
            rows: list[Any] = self.server.query(
                "SELECT a.rolpassword, a.rolsuper, a.rolcreaterole, a.rolcanlogin, a.rolreplication, "
                "a.rolbypassrls, (SELECT array_agg(m.roleid::regrole::text ORDER BY m.roleid) FROM pg_auth_members m "
                "WHERE m.member = a.oid), (SELECT array_agg(s.setconfig::text) FROM pg_db_role_setting s "
                "WHERE s.setrole = a.oid) FROM pg_authid a WHERE a.rolname = %s",
                (login.username,),
            )
        else:
            rows = self.server.query(
                "SELECT Host, authentication_string, plugin FROM mysql.user WHERE User = %s",
                (login.username,),
            )
            rows += [(line,) for host, in self.server.query("SELECT Host FROM mysql.user WHERE User = %s",
                                                            (login.username,))
                     for line in self.server.grants(login.username, host)]  # fmt: skip
        assert rows, f"{login.username} does not exist on the server"
        return hashlib.sha256(repr(rows).encode()).hexdigest()


def refused(app: Any, account: Account, *, token: str | None = None) -> RotationError:
    """The rotation of ``account`` through ``app`` fails as ``confused_deputy``; the error, for its message."""
    with pytest.raises(RotationError) as raised:
        rotate(app, account.arn, token=token)
    assert raised.value.category is Category.CONFUSED_DEPUTY
    return raised.value
