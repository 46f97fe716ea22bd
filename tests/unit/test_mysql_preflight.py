"""The MySQL-family preflight checks without a server: what the master's own grants cover, and the account
clauses (plugin, PASSWORD REQUIRE CURRENT, read_only) read from scripted answers through PyMySQL's own
formatting."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from rotation_core.engines.mysql.accounts import holds
from rotation_core.engines.mysql.grants import Account, GrantObject, Privilege, parse_grants
from rotation_core.engines.mysql.preflight import check_clone_rights, check_own_password
from rotation_core.engines.mysql.session import MySQLSession
from rotation_core.engines.mysql.statements import Flavour, ServerVersion
from rotation_core.errors import Category, TargetError
from unit.pymysql_offline import OfflineConnection

MASTER = Account("rotation_master", "127.0.0.1")
MYSQL_ROOT_GLOBAL = (
    "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD, SHUTDOWN, PROCESS, FILE, REFERENCES, INDEX, "
    "ALTER, SHOW DATABASES, SUPER, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, REPLICATION SLAVE, "
    "REPLICATION CLIENT, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, CREATE USER, EVENT, TRIGGER, "
    "CREATE TABLESPACE, CREATE ROLE, DROP ROLE ON *.* TO `rotation_master`@`127.0.0.1` WITH GRANT OPTION"
)
HASH = "$A$005$NotAHashButPrivate0123456789"


def master_grants(*lines: str) -> Any:
    return parse_grants(list(lines), MASTER)


def on_db(name: str, database: str = "app", table: str | None = None, column: str | None = None) -> Privilege:
    return Privilege(GrantObject("", database, table), name, column)


def test_mysql_preflight_explicit_global_list_with_grant_option_covers_database_all() -> None:
    master = master_grants(MYSQL_ROOT_GLOBAL)

    assert holds(master, on_db("ALL PRIVILEGES"), with_grant=True)
    assert holds(master, on_db("SELECT", table="t", column="c"), with_grant=True)
    assert holds(master, Privilege(GrantObject("", None, None), "CREATE USER"), with_grant=False)


def test_mysql_preflight_privilege_without_grant_option_not_covered() -> None:
    master = master_grants("GRANT ALL PRIVILEGES ON `app`.* TO `rotation_master`@`127.0.0.1`")

    assert holds(master, on_db("SELECT"), with_grant=False)
    assert not holds(master, on_db("SELECT"), with_grant=True)


def test_mysql_preflight_grant_on_another_database_not_covered() -> None:
    master = master_grants("GRANT ALL PRIVILEGES ON `other`.* TO `rotation_master`@`127.0.0.1` WITH GRANT OPTION")

    assert not holds(master, on_db("SELECT"), with_grant=True)
    assert holds(master, on_db("SELECT", database="other", table="t"), with_grant=True)


def mysql_session(answer: Callable[[str], Sequence[tuple[Any, ...]]], version: str = "8.0.36") -> MySQLSession:
    return MySQLSession(
        conn=OfflineConnection(answer), account=Account("app", "%"), server=ServerVersion.parse(version, "")
    )


def own_account(create_user: str, *, read_only: int = 0, require_current: int = 0) -> Callable[[str], Any]:
    def answer(sql: str) -> Sequence[tuple[Any, ...]]:
        if sql == "SELECT @@GLOBAL.read_only":
            return [(read_only,)]
        if sql == "SELECT @@GLOBAL.password_require_current":
            return [(require_current,)]
        if sql == "SHOW CREATE USER CURRENT_USER()":
            return [(create_user,)]
        raise AssertionError(f"unexpected statement {sql!r}")

    return answer


def created(plugin: str, tail: str = "PASSWORD REQUIRE CURRENT DEFAULT") -> str:
    return f"CREATE USER `app`@`%` IDENTIFIED WITH '{plugin}' AS '{HASH}' REQUIRE NONE PASSWORD EXPIRE DEFAULT {tail}"


@pytest.mark.parametrize(
    ("tail", "global_setting"),
    [("PASSWORD REQUIRE CURRENT DEFAULT", 0), ("PASSWORD REQUIRE CURRENT OPTIONAL", 1), ("ACCOUNT UNLOCK", 1)],
    ids=["default_off", "optional", "clause_absent"],
)
def test_mysql_preflight_own_password_changeable_passes(tail: str, global_setting: int) -> None:
    session = mysql_session(own_account(created("caching_sha2_password", tail), require_current=global_setting))

    check_own_password(session)


@pytest.mark.parametrize(
    ("tail", "global_setting"),
    [("PASSWORD REQUIRE CURRENT", 0), ("PASSWORD REQUIRE CURRENT DEFAULT", 1)],
    ids=["required", "default_on"],
)
def test_mysql_preflight_require_current_password_refused_without_showing_hash(tail: str, global_setting: int) -> None:
    session = mysql_session(own_account(created("caching_sha2_password", tail), require_current=global_setting))

    with pytest.raises(TargetError, match="PASSWORD REQUIRE CURRENT") as raised:
        check_own_password(session)

    assert raised.value.category is Category.PERMISSION
    assert HASH not in raised.value.message


def test_mysql_preflight_read_only_server_refused() -> None:
    session = mysql_session(own_account(created("caching_sha2_password"), read_only=1))

    with pytest.raises(TargetError, match="read-only") as raised:
        check_own_password(session)

    assert raised.value.category is Category.PERMISSION


def test_mysql_preflight_native_password_on_mysql_9_refused() -> None:
    session = mysql_session(own_account(created("mysql_native_password")), version="9.1.0")

    with pytest.raises(TargetError, match="caching_sha2_password"):
        check_own_password(session)


def mariadb_answers(master_lines: list[str], source_lines: list[str]) -> Callable[[str], Any]:
    """A MariaDB 10.11 server holding ``app``@``%`` (with ``source_lines``) and no clone yet."""

    def answer(sql: str) -> Sequence[tuple[Any, ...]]:
        if sql.startswith("SELECT Host FROM mysql.user"):
            return [("%",)]
        if sql.startswith("SELECT plugin, ssl_type"):
            if "'app_clone'" in sql:
                return []
            return [("mysql_native_password", "", "", "", "", 0, 0, 0, 0, 0)]
        if sql == "SHOW GRANTS FOR 'app'@'%'":
            return [(line,) for line in source_lines]
        if sql == "SHOW GRANTS FOR CURRENT_USER()":
            return [(line,) for line in master_lines]
        raise AssertionError(f"unexpected statement {sql!r}")

    return answer


def mariadb_master(answer: Callable[[str], Any]) -> MySQLSession:
    return MySQLSession(
        conn=OfflineConnection(answer), account=MASTER, server=ServerVersion(Flavour.MARIADB, 10, 11, 6)
    )


SOURCE = [
    "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*0123456789ABCDEF0123456789ABCDEF01234567'",
    "GRANT ALL PRIVILEGES ON `app`.* TO `app`@`%`",
    "GRANT `reader` TO `app`@`%`",
    "SET DEFAULT ROLE `reader` FOR `app`@`%`",
]


def test_mysql_preflight_master_with_every_right_passes() -> None:
    master = [
        "GRANT ALL PRIVILEGES ON *.* TO `rotation_master`@`127.0.0.1` WITH GRANT OPTION",
        "GRANT `reader` TO `rotation_master`@`127.0.0.1` WITH ADMIN OPTION",
        "GRANT PROXY ON ''@'%' TO 'rotation_master'@'127.0.0.1' WITH GRANT OPTION",  # outside the grammar: skipped
    ]
    admin = mariadb_master(mariadb_answers(master, SOURCE))
    caller = mysql_session(lambda _sql: [], version="10.11.6-MariaDB")

    check_clone_rights(admin, caller, original="app", target="app_clone")


def test_mysql_preflight_master_lacking_rights_lists_each() -> None:
    master = [
        "GRANT SELECT ON `mysql`.* TO `rotation_master`@`127.0.0.1`",
        "GRANT ALL PRIVILEGES ON `app`.* TO `rotation_master`@`127.0.0.1`",
        "GRANT `reader` TO `rotation_master`@`127.0.0.1`",
    ]
    admin = mariadb_master(mariadb_answers(master, SOURCE))
    caller = mysql_session(lambda _sql: [], version="10.11.6-MariaDB")

    with pytest.raises(TargetError) as raised:
        check_clone_rights(admin, caller, original="app", target="app_clone")

    message = raised.value.message
    assert raised.value.category is Category.PERMISSION
    lacking = message.split("it lacks ", 1)[1]
    assert re.split(r"; ", lacking) == [
        "CREATE USER",
        "ALL PRIVILEGES WITH GRANT OPTION on '`app`.*'",
        "ADMIN OPTION on the role '`reader`'",
        "UPDATE on the mysql schema (to set the alternate's default role)",
    ]
    assert "0123456789ABCDEF" not in message
