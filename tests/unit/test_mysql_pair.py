"""The MySQL-family pair proof without a server (engines/mysql/pair.py): scripted answers through PyMySQL's own
formatting, for the cases the local servers cannot show cheaply (MySQL 8 dynamic privileges, nested roles,
PROXY grants, a grant line outside the grammar) and for the exact comparison rules."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from rotation_core.engines.mysql.grants import Account
from rotation_core.engines.mysql.pair import check_pair
from rotation_core.engines.mysql.session import MySQLSession
from rotation_core.engines.mysql.statements import ServerVersion, UnsupportedAccountError
from rotation_core.errors import Category, ConfusedDeputyError
from unit.pymysql_offline import OfflineConnection

HOST = "10.0.%"
MASTER = Account("rotation_master", "127.0.0.1")
ROW = ("caching_sha2_password", "", b"", b"", b"", 0, 0, 0, 0)
APP_DB = "GRANT SELECT, INSERT ON `app`.* TO `{user}`@`10.0.%`"


def server(grants: Mapping[str, Sequence[str]], version: str = "8.0.36") -> Callable[[Account], MySQLSession]:
    """A session factory over scripted answers: ``grants`` maps each account (or role) to the
    lines SHOW GRANTS gives for it; an account absent from it does not exist."""

    def answer(sql: str) -> list[tuple[Any, ...]]:
        user = sql.split("'")[1] if "'" in sql else ""
        if sql.startswith("SELECT Host FROM mysql.user"):
            return [(HOST,)] if user in grants else []
        if sql.startswith("SELECT plugin"):
            return [ROW] if user in grants else []
        if sql.startswith("SHOW GRANTS FOR"):
            return [(line.format(user=user),) for line in grants[user]]
        return []

    parsed = ServerVersion.parse(version)

    def session(account: Account) -> MySQLSession:
        return MySQLSession(conn=OfflineConnection(answer), account=account, server=parsed)

    return session


def run(grants: Mapping[str, Sequence[str]], *, caller: str, target: str, allow: bool = False) -> None:
    session = server(grants)
    check_pair(session(MASTER), session(Account(caller, HOST)), original="app", target=target, allow_privileged=allow)


def test_mysql_pair_plain_original_without_alternate_passes() -> None:
    run({"app": [APP_DB]}, caller="app", target="app_clone")


@pytest.mark.parametrize(
    "line",
    [
        "GRANT SYSTEM_USER ON *.* TO `{user}`@`10.0.%`",
        "GRANT ROLE_ADMIN,SET_ANY_DEFINER ON *.* TO `{user}`@`10.0.%`",
        "GRANT SUPER ON *.* TO `{user}`@`10.0.%`",
        "GRANT INSERT ON *.* TO `{user}`@`10.0.%`",
        "GRANT DELETE ON `mysql`.* TO `{user}`@`10.0.%`",
        "GRANT UPDATE ON `mysql`.`user` TO `{user}`@`10.0.%`",
        "GRANT USAGE ON *.* TO `{user}`@`10.0.%` WITH GRANT OPTION",
        "GRANT PROXY ON ''@'' TO '{user}'@'10.0.%' WITH GRANT OPTION",
    ],
)
def test_mysql_pair_privileged_original_refused_unless_allowed(line: str) -> None:
    grants = {"app": [APP_DB, line]}

    with pytest.raises(ConfusedDeputyError, match="superuser-class rights") as raised:
        run(grants, caller="app", target="app_clone")
    run(grants, caller="app", target="app_clone", allow=True)

    assert raised.value.category is Category.CONFUSED_DEPUTY


def test_mysql_pair_privilege_through_nested_roles_found() -> None:
    grants = {
        "app": [APP_DB, "GRANT `outer`@`%` TO `{user}`@`10.0.%`"],
        "outer": ["GRANT USAGE ON *.* TO `outer`@`%`", "GRANT `inner`@`%` TO `outer`@`%`"],
        "inner": ["GRANT CREATE USER ON *.* TO `inner`@`%`"],
    }

    with pytest.raises(ConfusedDeputyError, match=r"'CREATE USER ON \*\.\*' through the role 'inner'@'%'"):
        run(grants, caller="app", target="app_clone")


def test_mysql_pair_roles_that_grant_each_other_read_once() -> None:
    grants = {
        "app": [APP_DB, "GRANT `a`@`%` TO `{user}`@`10.0.%`"],
        "a": ["GRANT `b`@`%` TO `a`@`%`"],
        "b": ["GRANT `a`@`%` TO `b`@`%`"],
    }

    run(grants, caller="app", target="app_clone")


def test_mysql_pair_unreadable_grant_line_stops_before_anything_changes() -> None:
    grants = {"app": [APP_DB, "REVOKE INSERT ON `mysql`.* FROM `{user}`@`10.0.%`"]}  # a MySQL partial revoke

    with pytest.raises(UnsupportedAccountError, match="cannot prove which rights it holds"):
        run(grants, caller="app", target="app_clone")


@pytest.mark.parametrize("name", ["rotation_master", "rotation_master_clone"])
def test_mysql_pair_master_user_name_refused_even_when_allowed(name: str) -> None:
    session = server({name: [APP_DB]})
    original = name.removesuffix("_clone")

    with pytest.raises(ConfusedDeputyError, match="the master's own user name"):
        check_pair(
            session(MASTER), session(Account(name, HOST)), original=original, target=original,
            allow_privileged=True,
        )  # fmt: skip


def test_mysql_pair_alternate_in_use_holding_the_originals_rights_passes_options_aside() -> None:
    grants = {
        "app": ["GRANT SELECT, INSERT ON `app`.* TO `{user}`@`10.0.%` WITH GRANT OPTION", "GRANT `r`@`%` TO "
                "`{user}`@`10.0.%` WITH ADMIN OPTION"],
        "app_clone": [APP_DB, "GRANT `r`@`%` TO `{user}`@`10.0.%`", "GRANT SELECT ON `extra`.* TO `{user}`@`10.0.%`"],
        "r": ["GRANT USAGE ON *.* TO `r`@`%`"],
    }  # fmt: skip

    run(grants, caller="app_clone", target="app")


@pytest.mark.parametrize(
    "clone_lines",
    [
        [],  # planted bare
        ["GRANT SELECT ON `app`.* TO `{user}`@`10.0.%`"],  # planted with what the planter could grant
        [APP_DB],  # has the privileges, not the role
    ],
)
def test_mysql_pair_alternate_in_use_lacking_a_right_of_the_original_refused(clone_lines: list[str]) -> None:
    grants = {
        "app": [APP_DB, "GRANT `r`@`%` TO `{user}`@`10.0.%`"],
        "app_clone": ["GRANT USAGE ON *.* TO `{user}`@`10.0.%`", *clone_lines],
        "r": ["GRANT USAGE ON *.* TO `r`@`%`"],
    }

    with pytest.raises(ConfusedDeputyError, match="it lacks rights"):
        run(grants, caller="app_clone", target="app")


def test_mysql_pair_alternate_about_to_be_synchronised_may_differ() -> None:
    """The alternate's own turn: its grants are about to be made the original's, so a drift is no reason."""
    grants = {"app": [APP_DB], "app_clone": ["GRANT DELETE ON `app`.* TO `{user}`@`10.0.%`"]}

    run(grants, caller="app", target="app_clone")


def test_mysql_pair_alternate_in_use_at_another_host_refused() -> None:
    session = server({"app": [APP_DB], "app_clone": [APP_DB]})

    with pytest.raises(ConfusedDeputyError, match="the same host part"):
        check_pair(
            session(MASTER), session(Account("app_clone", "%")), original="app", target="app",
            allow_privileged=False,
        )  # fmt: skip


def test_mysql_pair_master_name_with_trailing_space_refused_as_the_master() -> None:
    """MySQL and MariaDB ignore trailing spaces when they compare user names ('rotation_master ' is the master)."""
    session = server({"rotation_master _clone": [APP_DB]})

    with pytest.raises(ConfusedDeputyError, match="the master's own user name"):
        check_pair(
            session(MASTER), session(Account("rotation_master _clone", HOST)), original="rotation_master ",
            target="rotation_master ", allow_privileged=True,
        )  # fmt: skip
