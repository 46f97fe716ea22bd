"""The alternating clone on a real server: names with ``%``, resource limits, REQUIRE clauses, roles and
default roles, the privileges the master needs, and a failure between clone statements followed by a retry.

Every rotation goes through the real function module, PyMySQL and the server the ``mysql_server``
fixture provides; flavour-specific setup (MySQL 8+ roles ``'r'@'%'``, ``mysql.default_roles``) is chosen
from the server's own version at run time (``integration.mysql.accounts``).
"""

from __future__ import annotations

import secrets
import ssl
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import pymysql
import pytest

from helpers import LeakGuard
from integration.mysql.accounts import (
    LIMIT_COLUMNS,
    account_row,
    account_state,
    account_text,
    create_role,
    grant_role,
    ident,
    is_mariadb,
    restrict_master,
    set_default_role,
)
from integration.support import Account, pending_token, rotate, rotate_in_place, secret_at, stages, unique
from rotation_core.engines.base import CloneRequest
from rotation_core.engines.mysql.engine import MySQLEngine
from rotation_core.errors import Category, TargetError
from rotation_core.settings import Settings, Strategy
from rotation_local.mysql_server import MySQLFamilyServer

#: Text a PyMySQL or psycopg2 format template would take for a placeholder or an escape.
PERCENT_PATTERNS = ["%", "%s", "%%", "%(x)s"]
#: A database-wildcard grant: every database whose name starts with "app_" (MySQL and MariaDB idiom).
WILDCARD_DATABASE = "app\\_%"


def login(server: MySQLFamilyServer, ca_bundle: Path, secret: dict[str, Any], database: str | None = None) -> Any:
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


def can_login(server: MySQLFamilyServer, ca_bundle: Path, secret: dict[str, Any]) -> bool:
    try:
        login(server, ca_bundle, secret).close()
    except pymysql.err.OperationalError:
        return False
    return True


def grant_objects_named(server: MySQLFamilyServer, account: Any, pattern: str) -> dict[str, str]:
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


@pytest.fixture(params=PERCENT_PATTERNS)
def percent_account(request: pytest.FixtureRequest, mysql_server: MySQLFamilyServer, mysql_account: Any) -> Any:
    """An account with a master whose name, and the names of the objects it has grants on, hold a ``%`` pattern;
    ``(account, names)`` with the names :func:`grant_objects_named` gave."""
    account = mysql_account(with_master=True, prefix=f"u{request.param}")
    return account, grant_objects_named(mysql_server, account, request.param)


def test_mysql_alternating_percent_in_every_name_clone_equals_original(
    mysql_server: MySQLFamilyServer, sm_client: Any, percent_account: Any, mysql_function: Any, ca_bundle: Path
) -> None:
    account, names = percent_account
    user, host, clone = account.username, account.host, account.username + "_clone"
    app = mysql_function(ROTATION_STRATEGY="alternating_users")

    rotate(app, account.arn)  # creates the clone
    assert account_state(mysql_server, clone, host) == account_state(mysql_server, user, host)
    rotate(app, account.arn)  # the original's turn
    mysql_server.execute(f"REVOKE EXECUTE ON PROCEDURE {ident(names['database'])}.{ident(names['procedure'])} "
                           f"FROM {account_text(user, host)}")  # fmt: skip
    rotate(app, account.arn)  # the clone again, re-synchronised: the revoke reaches it

    state = account_state(mysql_server, clone, host)
    assert state == account_state(mysql_server, user, host)
    assert {p.target.database for p in state["privileges"]} == {WILDCARD_DATABASE, names["database"], account.dbname}
    assert [role.user for role in state["default_roles"]] == [names["role"]]
    # No account or role with a collapsed name ("%%" sent as "%") appeared next to the real ones.
    assert mysql_server.query("SELECT COUNT(*) FROM mysql.user WHERE User = %s", (clone,)) == [(1,)]
    current = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert current["username"] == clone
    table, column = ident(names["table"]), ident(names["column"])
    conn = login(mysql_server, ca_bundle, current, names["database"])
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT {ident(names['function'])}()")  # routine privilege
            cursor.execute(f"UPDATE {table} SET {column} = 1 WHERE id = 0")  # noqa: S608 (column privilege)
            cursor.execute(f"DELETE FROM {table} WHERE id = 0")  # noqa: S608 (through the default role)
            with pytest.raises(pymysql.err.OperationalError):  # revoked from the original, so from the clone
                cursor.execute(f"CALL {ident(names['procedure'])}()")
    finally:
        conn.close()


def test_mysql_single_user_percent_in_user_and_grant_names_rotates(
    mysql_server: MySQLFamilyServer, sm_client: Any, percent_account: Any, mysql_function: Any, ca_bundle: Path
) -> None:
    account, _ = percent_account

    rotate_in_place(mysql_function(), sm_client, account, partial(can_login, mysql_server, ca_bundle))


def _limits_clause(
    server: MySQLFamilyServer, queries: int, updates: int, connections: int, user_connections: int
) -> str:
    clause = (
        f"MAX_QUERIES_PER_HOUR {queries} MAX_UPDATES_PER_HOUR {updates} "
        f"MAX_CONNECTIONS_PER_HOUR {connections} MAX_USER_CONNECTIONS {user_connections}"
    )
    return clause + (" MAX_STATEMENT_TIME 2.5" if is_mariadb(server) else "")


def test_mysql_alternating_resource_limits_read_from_mysql_user_clone_matches_exactly(
    mysql_server: MySQLFamilyServer, sm_client: Any, account: Account, mysql_function: Any
) -> None:
    user, host, clone = account.username, account.host, account.username + "_clone"
    who = account_text(user, host)
    mysql_server.execute(f"ALTER USER {who} WITH {_limits_clause(mysql_server, 1001, 1002, 1003, 14)}")
    app = mysql_function(ROTATION_STRATEGY="alternating_users")

    rotate(app, account.arn)

    row = account_row(mysql_server, clone, host)
    assert tuple(row[column] for column in LIMIT_COLUMNS) == (1001, 1002, 1003, 14)
    assert row == account_row(mysql_server, user, host)
    # The original's limits change and the clone drifts: the clone's next turn matches the original again.
    mysql_server.execute(f"ALTER USER {who} WITH {_limits_clause(mysql_server, 0, 7, 0, 3)}")
    mysql_server.execute(f"ALTER USER {account_text(clone, host)} WITH MAX_CONNECTIONS_PER_HOUR 5")
    rotate(app, account.arn)
    rotate(app, account.arn)
    row = account_row(mysql_server, clone, host)
    assert tuple(row[column] for column in LIMIT_COLUMNS) == (0, 7, 0, 3)
    assert row == account_row(mysql_server, user, host)


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
    mysql_server: MySQLFamilyServer, sm_client: Any, account: Account, ca_bundle: Path, leak_guard: LeakGuard,
    require: str,
) -> None:  # fmt: skip
    """Through the engine with a real master session: the original need not be able to log in itself.

    (A REQUIRE X509/ISSUER account needs a client certificate, and MariaDB's MAX_USER_CONNECTIONS -1
    forbids logins outright, so neither could run a whole rotation.)
    """
    user, host, clone = account.username, account.host, account.username + "_clone"
    user_connections = -1 if is_mariadb(mysql_server) else 2
    limits = _limits_clause(mysql_server, 11, 12, 13, user_connections)
    mysql_server.execute(f"ALTER USER {account_text(user, host)} REQUIRE {require} WITH {limits}")
    engine = MySQLEngine(Settings(strategy=Strategy.ALTERNATING_USERS, db_ca_bundle=str(ca_bundle)))
    master = engine.parse_login(secret_at(sm_client, account.master_arn, "AWSCURRENT"), "master")

    for _attempt in ("create", "update"):
        password = secrets.token_urlsafe(24)
        leak_guard.add(password)
        session = engine.connect(master)
        try:
            # The master's own login stands in for the caller: the original has one host, so it decides nothing.
            engine.set_clone_password(
                session, CloneRequest(caller=session, original=user, target=clone, new_password=password)
            )
        finally:
            session.close()
        assert account_row(mysql_server, clone, host) == account_row(mysql_server, user, host)
    assert account_row(mysql_server, clone, host)["max_user_connections"] == user_connections


def _half_made_clone_setup(server: MySQLFamilyServer, account: Any) -> tuple[str, str]:
    """Two more databases, a role as default, limits and REQUIRE SSL; the master may grant all but ``db_b``.

    The grants run in the order of the database names: the account's own ``db_...``, then ``dba...``,
    then ``dbb...`` (refused), then the role: the failure falls between clone statements that succeed.
    """
    user, host = account.username, account.host
    who = account_text(user, host)
    db_a, db_b = unique("dba"), unique("dbb")
    server.execute(f"CREATE DATABASE {ident(db_a)}")
    server.execute(f"CREATE DATABASE {ident(db_b)}")
    server.execute(f"GRANT SELECT ON {ident(db_a)}.* TO {who}")
    server.execute(f"GRANT SELECT, INSERT ON {ident(db_b)}.* TO {who}")
    server.execute(f"ALTER USER {who} REQUIRE SSL WITH {_limits_clause(server, 500, 400, 300, 8)}")
    _documented_master(server, account, account.dbname, db_a, update_on_mysql=True)
    _role_as_default(server, account)
    return db_a, db_b


def test_mysql_alternating_grant_fails_between_clone_statements_retry_after_fix_completes(
    mysql_server: MySQLFamilyServer, sm_client: Any, account: Account, mysql_function: Any, ca_bundle: Path
) -> None:
    user, host, clone = account.username, account.host, account.username + "_clone"
    db_a, db_b = _half_made_clone_setup(mysql_server, account)
    original = secret_at(sm_client, account.arn, "AWSCURRENT")
    app = mysql_function(ROTATION_STRATEGY="alternating_users")

    with pytest.raises(TargetError) as raised:
        rotate(app, account.arn)

    assert raised.value.category is Category.PERMISSION
    assert f"GRANT INSERT, SELECT ON `{db_b}`" in raised.value.message
    assert "next attempt completes" in raised.value.message
    # Half-made: the account and the statements before the failing one exist, the rest does not.
    half = account_state(mysql_server, clone, host)
    assert {p.target.database for p in half["privileges"]} == {account.dbname, db_a}
    assert not half["roles"]
    assert half["account"]["max_questions"] == 500
    assert can_login(mysql_server, ca_bundle, original)  # AWSCURRENT keeps working throughout
    token = pending_token(sm_client, account.arn)

    # Until the cause is fixed, a retry fails at the same statement and nothing else.
    with pytest.raises(TargetError, match=f"GRANT INSERT, SELECT ON `{db_b}`"):
        rotate(mysql_function(ROTATION_STRATEGY="alternating_users"), account.arn, token=token)
    # Meanwhile the half-made clone drifts: a privilege and a limit the original lacks, no TLS requirement,
    # and (MariaDB) another authentication plugin.
    mysql_server.execute(f"GRANT DELETE ON {ident(db_b)}.* TO {account_text(clone, host)}")
    mysql_server.execute(f"ALTER USER {account_text(clone, host)} REQUIRE NONE WITH MAX_UPDATES_PER_HOUR 99")
    if is_mariadb(mysql_server):
        mysql_server.execute(f"ALTER USER {account_text(clone, host)} IDENTIFIED VIA unix_socket")
    assert can_login(mysql_server, ca_bundle, original)

    mysql_server.execute(
        f"GRANT ALL PRIVILEGES ON {ident(db_b)}.* TO {account_text(account.master_user, '127.0.0.1')} WITH GRANT OPTION"
    )
    rotate(mysql_function(ROTATION_STRATEGY="alternating_users"), account.arn, token=token)

    assert stages(sm_client, account.arn)[token] == ["AWSCURRENT"]
    assert account_state(mysql_server, clone, host) == account_state(mysql_server, user, host)
    current = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert current["username"] == clone
    assert can_login(mysql_server, ca_bundle, current)
    assert can_login(mysql_server, ca_bundle, original)


def _documented_master(server: MySQLFamilyServer, account: Any, *databases: str, update_on_mysql: bool) -> None:
    """Leave the master only what the README lists: CREATE USER, SELECT (and, for MariaDB's default roles,
    UPDATE) on the mysql schema, and the copied privileges WITH GRANT OPTION (here: everything on
    ``databases``). Taking its privileges also takes its roles, so ADMIN OPTION is given afterwards."""
    grants = ["GRANT CREATE USER ON *.* TO {master}", "GRANT SELECT ON `mysql`.* TO {master}"]
    grants += [f"GRANT ALL PRIVILEGES ON {ident(db)}.* TO {{master}} WITH GRANT OPTION" for db in databases]
    if update_on_mysql:
        grants.append("GRANT UPDATE ON `mysql`.* TO {master}")
    restrict_master(server, account.master_user, *grants)


def _role_as_default(server: MySQLFamilyServer, account: Any) -> None:
    """A role with a privilege on the account's database, granted and made the default; ADMIN OPTION to the master."""
    user, host = account.username, account.host
    role = create_role(server, unique("role"))
    server.execute(f"GRANT SELECT ON {ident(account.dbname)}.* TO {account_text(role.user, role.host)}")
    grant_role(server, role, user, host)
    grant_role(server, role, account.master_user, "127.0.0.1", admin_option=True)
    set_default_role(server, role, user, host)


def test_mysql_alternating_master_with_documented_privileges_only_rotates_three_times(
    mysql_server: MySQLFamilyServer, sm_client: Any, account: Account, mysql_function: Any, ca_bundle: Path
) -> None:
    mysql_server.execute(f"ALTER USER {account_text(account.username, account.host)} REQUIRE SSL "
                           f"WITH {_limits_clause(mysql_server, 100, 0, 0, 5)}")  # fmt: skip
    _documented_master(mysql_server, account, account.dbname, update_on_mysql=True)
    _role_as_default(mysql_server, account)
    app = mysql_function(ROTATION_STRATEGY="alternating_users")

    for _round in range(3):
        rotate(app, account.arn)
        clone = account_state(mysql_server, account.username + "_clone", account.host)
        assert clone == account_state(mysql_server, account.username, account.host)
        assert can_login(mysql_server, ca_bundle, secret_at(sm_client, account.arn, "AWSCURRENT"))
    assert clone["default_roles"]


def test_mysql_alternating_mariadb_default_role_needs_update_on_mysql_schema_named_then_retry_completes(
    mysql_server: MySQLFamilyServer, sm_client: Any, account: Account, mysql_function: Any, ca_bundle: Path
) -> None:
    if not is_mariadb(mysql_server):
        pytest.skip("MariaDB only: on MySQL, SET DEFAULT ROLE ... TO another user needs CREATE USER, which the "
                    "master has anyway")  # fmt: skip
    _documented_master(mysql_server, account, account.dbname, update_on_mysql=False)
    _role_as_default(mysql_server, account)
    app = mysql_function(ROTATION_STRATEGY="alternating_users")

    with pytest.raises(TargetError) as raised:
        rotate(app, account.arn)

    assert raised.value.category is Category.PERMISSION
    assert "SET DEFAULT ROLE" in raised.value.message
    assert "GRANT UPDATE ON mysql.* TO <master>" in raised.value.message
    clone = account.username + "_clone"
    assert account_state(mysql_server, clone, account.host)["roles"]  # everything but the default role
    assert not account_state(mysql_server, clone, account.host)["default_roles"]
    assert can_login(mysql_server, ca_bundle, secret_at(sm_client, account.arn, "AWSCURRENT"))

    mysql_server.execute(f"GRANT UPDATE ON `mysql`.* TO {account_text(account.master_user, '127.0.0.1')}")
    token = pending_token(sm_client, account.arn)
    rotate(mysql_function(ROTATION_STRATEGY="alternating_users"), account.arn, token=token)

    assert stages(sm_client, account.arn)[token] == ["AWSCURRENT"]
    state = account_state(mysql_server, clone, account.host)
    assert state == account_state(mysql_server, account.username, account.host)
    assert state["default_roles"]


def test_mysql_alternating_two_roles_default_role_change_and_revoke_reach_clone(
    mysql_server: MySQLFamilyServer, sm_client: Any, account: Account, mysql_function: Any
) -> None:
    user, host, clone = account.username, account.host, account.username + "_clone"
    first, second = create_role(mysql_server, unique("role")), create_role(mysql_server, unique("role"))
    for role in (first, second):
        grant_role(mysql_server, role, user, host)
        grant_role(mysql_server, role, account.master_user, "127.0.0.1", admin_option=True)
    set_default_role(mysql_server, first, user, host)
    app = mysql_function(ROTATION_STRATEGY="alternating_users")
    rotate(app, account.arn)
    assert account_state(mysql_server, clone, host)["default_roles"] == [first]
    rotate(app, account.arn)

    mysql_server.execute(f"REVOKE {account_text(first.user, first.host)} FROM {account_text(user, host)}")
    set_default_role(mysql_server, second, user, host)
    rotate(app, account.arn)

    state = account_state(mysql_server, clone, host)
    assert state == account_state(mysql_server, user, host)
    assert [grant.role for grant in state["roles"]] == [second]
    assert state["default_roles"] == [second]
