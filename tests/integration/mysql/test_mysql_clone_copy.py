"""The alternating clone on a real server: names with ``%`` in every place the clone copies, resource
limits and REQUIRE clauses.

Every rotation goes through the real function module, PyMySQL and the server the ``mariadb_server``
fixture provides; flavour-specific setup (MySQL 8+ roles ``'r'@'%'``, ``mysql.default_roles``) is chosen
from the server's own version at run time (``integration.mysql.accounts``).
"""

from __future__ import annotations

import secrets
import ssl
import uuid
from pathlib import Path
from typing import Any

import pymysql
import pytest

from helpers import LeakGuard
from integration.conftest import rotate, secret_at, stages
from integration.mysql.accounts import (
    account_row,
    account_state,
    account_text,
    create_role,
    grant_role,
    ident,
    is_mariadb,
    set_default_role,
)
from rotation_core.engines.mysql import MySQLEngine
from rotation_core.settings import Settings, Strategy
from rotation_local.mariadb_server import MariaDBServer

#: Text a PyMySQL or psycopg2 format template would take for a placeholder or an escape.
PERCENT_PATTERNS = ["%", "%s", "%%", "%(x)s"]
#: A database-wildcard grant: every database whose name starts with "app_" (MySQL and MariaDB idiom).
WILDCARD_DATABASE = "app\\_%"


def login(server: MariaDBServer, ca_bundle: Path, secret: dict[str, Any], database: str | None = None) -> Any:
    return pymysql.connect(
        host="127.0.0.1",
        port=server.port,
        user=secret["username"],
        password=secret["password"],
        database=database,
        ssl=ssl.create_default_context(cafile=str(ca_bundle)),
        connect_timeout=5,
        autocommit=True,
    )


def can_login(server: MariaDBServer, ca_bundle: Path, secret: dict[str, Any]) -> bool:
    try:
        login(server, ca_bundle, secret).close()
    except pymysql.err.OperationalError:
        return False
    return True


def pending_token(sm_client: Any, arn: str) -> str:
    return next(version for version, labels in stages(sm_client, arn).items() if "AWSPENDING" in labels)


def grant_objects_named(server: MariaDBServer, account: Any, pattern: str) -> dict[str, str]:
    """Give the account grants on objects whose names contain ``pattern``, at every level the clone copies.

    A database-wildcard grant, database privileges WITH GRANT OPTION, a column privilege, procedure and
    function privileges, a role (with a privilege of its own) as the default role, limits and REQUIRE SSL.
    """
    tag = uuid.uuid4().hex[:8]
    names = {
        "database": f"d{pattern}{tag}",
        "table": f"t{pattern}",
        "column": f"c{pattern}",
        "procedure": f"p{pattern}",
        "function": f"f{pattern}",
        "role": f"r{pattern}{tag}",
    }
    db, table, column = ident(names["database"]), ident(names["table"]), ident(names["column"])
    procedure, function = ident(names["procedure"]), ident(names["function"])
    who = account_text(account.username, account.host)
    server.execute(f"CREATE DATABASE {db}")
    server.execute(f"CREATE TABLE {db}.{table} (id INT PRIMARY KEY, {column} INT, other INT)")
    server.execute(f"CREATE PROCEDURE {db}.{procedure}() SELECT 1")
    server.execute(f"CREATE FUNCTION {db}.{function}() RETURNS INT DETERMINISTIC RETURN 1")
    server.execute(f"GRANT SELECT ON {ident(WILDCARD_DATABASE)}.* TO {who}")
    server.execute(f"GRANT SELECT, INSERT ON {db}.* TO {who} WITH GRANT OPTION")
    server.execute(f"GRANT UPDATE ({column}) ON {db}.{table} TO {who}")
    server.execute(f"GRANT EXECUTE ON PROCEDURE {db}.{procedure} TO {who}")
    server.execute(f"GRANT EXECUTE, ALTER ROUTINE ON FUNCTION {db}.{function} TO {who}")
    role = create_role(server, names["role"])
    server.execute(f"GRANT DELETE ON {db}.* TO {account_text(role.user, role.host)}")
    grant_role(server, role, account.username, account.host)
    grant_role(server, role, account.master_user, "127.0.0.1", admin_option=True)
    set_default_role(server, role, account.username, account.host)
    server.execute(f"ALTER USER {who} REQUIRE SSL WITH MAX_QUERIES_PER_HOUR 1000 MAX_USER_CONNECTIONS 9")
    return names


@pytest.mark.parametrize("pattern", PERCENT_PATTERNS)
def test_mysql_alternating_percent_in_every_name_clone_equals_original(
    mariadb_server: MariaDBServer, sm_client: Any, mysql_account: Any, mysql_function: Any, ca_bundle: Path,
    pattern: str,
) -> None:  # fmt: skip
    account = mysql_account(with_master=True, prefix=f"u{pattern}")
    user, host, clone = account.username, account.host, account.username + "_clone"
    names = grant_objects_named(mariadb_server, account, pattern)
    app = mysql_function(ROTATION_STRATEGY="alternating_users")

    rotate(app, account.arn)  # creates the clone
    assert account_state(mariadb_server, clone, host) == account_state(mariadb_server, user, host)
    rotate(app, account.arn)  # the original's turn
    mariadb_server.execute(f"REVOKE EXECUTE ON PROCEDURE {ident(names['database'])}.{ident(names['procedure'])} "
                           f"FROM {account_text(user, host)}")  # fmt: skip
    rotate(app, account.arn)  # the clone again, re-synchronised: the revoke reaches it

    state = account_state(mariadb_server, clone, host)
    assert state == account_state(mariadb_server, user, host)
    assert {p.target.database for p in state["privileges"]} == {WILDCARD_DATABASE, names["database"], account.dbname}
    assert [role.user for role in state["default_roles"]] == [names["role"]]
    # No account or role with a collapsed name ("%%" sent as "%") appeared next to the real ones.
    assert mariadb_server.query("SELECT COUNT(*) FROM mysql.user WHERE User = %s", (clone,)) == [(1,)]
    current = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert current["username"] == clone
    table, column = ident(names["table"]), ident(names["column"])
    conn = login(mariadb_server, ca_bundle, current, names["database"])
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT {ident(names['function'])}()")  # routine privilege
            cursor.execute(f"UPDATE {table} SET {column} = 1 WHERE id = 0")  # noqa: S608 (column privilege)
            cursor.execute(f"DELETE FROM {table} WHERE id = 0")  # noqa: S608 (through the default role)
            with pytest.raises(pymysql.err.OperationalError):  # revoked from the original, so from the clone
                cursor.execute(f"CALL {ident(names['procedure'])}()")
    finally:
        conn.close()


@pytest.mark.parametrize("pattern", PERCENT_PATTERNS)
def test_mysql_single_user_percent_in_user_and_grant_names_rotates(
    mariadb_server: MariaDBServer, sm_client: Any, mysql_account: Any, mysql_function: Any, ca_bundle: Path,
    pattern: str,
) -> None:  # fmt: skip
    account = mysql_account(with_master=True, prefix=f"u{pattern}")
    grant_objects_named(mariadb_server, account, pattern)
    old = secret_at(sm_client, account.arn, "AWSCURRENT")

    rotate(mysql_function(), account.arn)

    new = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert new["username"] == account.username
    assert can_login(mariadb_server, ca_bundle, new)
    assert not can_login(mariadb_server, ca_bundle, old)


def _limits_clause(server: MariaDBServer, queries: int, updates: int, connections: int, user_connections: int) -> str:
    clause = (
        f"MAX_QUERIES_PER_HOUR {queries} MAX_UPDATES_PER_HOUR {updates} "
        f"MAX_CONNECTIONS_PER_HOUR {connections} MAX_USER_CONNECTIONS {user_connections}"
    )
    return clause + (" MAX_STATEMENT_TIME 2.5" if is_mariadb(server) else "")


def test_mysql_alternating_resource_limits_read_from_mysql_user_clone_matches_exactly(
    mariadb_server: MariaDBServer, sm_client: Any, mysql_account: Any, mysql_function: Any
) -> None:
    account = mysql_account(with_master=True)
    user, host, clone = account.username, account.host, account.username + "_clone"
    who = account_text(user, host)
    mariadb_server.execute(f"ALTER USER {who} WITH {_limits_clause(mariadb_server, 1001, 1002, 1003, 14)}")
    app = mysql_function(ROTATION_STRATEGY="alternating_users")

    rotate(app, account.arn)

    row = account_row(mariadb_server, clone, host)
    assert (row["max_questions"], row["max_updates"], row["max_connections"], row["max_user_connections"]) == (
        1001, 1002, 1003, 14,
    )  # fmt: skip
    assert row == account_row(mariadb_server, user, host)
    # The original's limits change and the clone drifts: the clone's next turn matches the original again.
    mariadb_server.execute(f"ALTER USER {who} WITH {_limits_clause(mariadb_server, 0, 7, 0, 3)}")
    mariadb_server.execute(f"ALTER USER {account_text(clone, host)} WITH MAX_CONNECTIONS_PER_HOUR 5")
    rotate(app, account.arn)
    rotate(app, account.arn)
    row = account_row(mariadb_server, clone, host)
    assert (row["max_questions"], row["max_updates"], row["max_connections"], row["max_user_connections"]) == (
        0, 7, 0, 3,
    )  # fmt: skip
    assert row == account_row(mariadb_server, user, host)


@pytest.mark.parametrize(
    "require",
    [
        "NONE",
        "SSL",
        "X509",
        "ISSUER '/CN=ca%s o''brien' AND SUBJECT '/CN=app%(x)s' AND CIPHER 'ECDHE-RSA-AES256-GCM-SHA384'",
        "SUBJECT '/CN=100%%'",
    ],
)
def test_mysql_engine_clone_copies_require_clause_and_limits_new_and_existing_clone(
    mariadb_server: MariaDBServer, sm_client: Any, mysql_account: Any, ca_bundle: Path, leak_guard: LeakGuard,
    require: str,
) -> None:  # fmt: skip
    """Through the engine with a real master session: the original need not be able to log in itself.

    (A REQUIRE X509/ISSUER account needs a client certificate, and MariaDB's MAX_USER_CONNECTIONS -1
    forbids logins outright, so neither could run a whole rotation.)
    """
    account = mysql_account(with_master=True)
    user, host, clone = account.username, account.host, account.username + "_clone"
    user_connections = -1 if is_mariadb(mariadb_server) else 2
    limits = _limits_clause(mariadb_server, 11, 12, 13, user_connections)
    mariadb_server.execute(f"ALTER USER {account_text(user, host)} REQUIRE {require} WITH {limits}")
    engine = MySQLEngine(Settings(strategy=Strategy.ALTERNATING_USERS, db_ca_bundle=str(ca_bundle)))
    master = engine.parse_login(secret_at(sm_client, account.master_arn, "AWSCURRENT"), "master")

    for _attempt in ("create", "update"):
        password = secrets.token_urlsafe(24)
        leak_guard.add(password)
        session = engine.connect(master)
        try:
            engine.set_clone_password(session, original=user, target=clone, new_password=password)
        finally:
            session.close()
        assert account_row(mariadb_server, clone, host) == account_row(mariadb_server, user, host)
    assert account_row(mariadb_server, clone, host)["max_user_connections"] == user_connections
