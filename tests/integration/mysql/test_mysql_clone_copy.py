"""The alternating clone on a real server: names with ``%`` in every place the clone copies.

Every rotation goes through the real function module, PyMySQL and the server the ``mariadb_server``
fixture provides; flavour-specific setup (MySQL 8+ roles ``'r'@'%'``, ``mysql.default_roles``) is chosen
from the server's own version at run time (``integration.mysql.accounts``).
"""

from __future__ import annotations

import ssl
import uuid
from pathlib import Path
from typing import Any

import pymysql
import pytest

from integration.conftest import rotate, secret_at, stages
from integration.mysql.accounts import (
    account_state,
    account_text,
    create_role,
    grant_role,
    ident,
    set_default_role,
)
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
