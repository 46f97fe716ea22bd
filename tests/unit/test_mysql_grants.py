"""The strict SHOW GRANTS grammar and the replay statements built from it (no server needed)."""

from __future__ import annotations

import pytest

from rotation_core.engines.mysql.grants import (
    Account,
    AccountGrants,
    GrantObject,
    GrantSyntaxError,
    Privilege,
    RoleGrant,
    auth_plugins_of,
    parse_grants,
    quote_identifier,
    sync_statements,
)
from unit.pymysql_offline import sent_text

APP = Account("app", "10.0.%")
CLONE = Account("app_clone", "10.0.%")
HASH = "*AB98341FE32DC8A17C368646457619E70F7A1F08"

MARIADB_GRANTS = [
    "GRANT `reporting` TO `app`@`10.0.%`",
    f"GRANT USAGE ON *.* TO `app`@`10.0.%` IDENTIFIED BY PASSWORD '{HASH}' REQUIRE SSL WITH MAX_QUERIES_PER_HOUR 100",
    "GRANT SELECT, INSERT ON `orders`.* TO `app`@`10.0.%` WITH GRANT OPTION",
    "GRANT ALL PRIVILEGES ON `audit`.* TO `app`@`10.0.%`",
    "GRANT SELECT (`a`), UPDATE (`a`, `b`) ON `orders`.`items` TO `app`@`10.0.%`",
    "GRANT EXECUTE ON PROCEDURE `orders`.`close_day` TO `app`@`10.0.%`",
    "SET DEFAULT ROLE `reporting` FOR `app`@`10.0.%`",
]


def test_parse_grants_mariadb_lines_privileges_options_roles_limits_as_data() -> None:
    grants = parse_grants(MARIADB_GRANTS, APP)

    orders, items = GrantObject("", "orders", None), GrantObject("", "orders", "items")
    assert grants.privileges == {
        Privilege(orders, "SELECT"),
        Privilege(orders, "INSERT"),
        Privilege(orders, "GRANT OPTION"),
        Privilege(GrantObject("", "audit", None), "ALL PRIVILEGES"),
        Privilege(items, "SELECT", "a"),
        Privilege(items, "UPDATE", "a"),
        Privilege(items, "UPDATE", "b"),
        Privilege(GrantObject("PROCEDURE", "orders", "close_day"), "EXECUTE"),
    }
    assert grants.roles == {RoleGrant(Account("reporting", None))}
    assert grants.default_roles == [Account("reporting", None)]
    assert grants.auth_plugins == ["mysql_native_password"]


def test_parse_grants_mariadb_negative_user_connections_and_statement_time_accepted() -> None:
    """Limits are checked and skipped (they are read from mysql.user); MariaDB's -1 is valid there."""
    line = "GRANT USAGE ON *.* TO `app`@`10.0.%` WITH MAX_USER_CONNECTIONS -1 MAX_STATEMENT_TIME 1.500000"

    assert parse_grants([line], APP) == AccountGrants()


@pytest.mark.parametrize(
    ("lines", "privileges", "roles"),
    [
        pytest.param(
            [
                "GRANT SELECT ON `app\\_%`.* TO `app`@`10.0.%`",
                "GRANT UPDATE (`c%(x)s`) ON `d%%`.`t%s` TO `app`@`10.0.%`",
                "GRANT `r%s`@`%` TO `app`@`10.0.%`",
            ],
            {
                Privilege(GrantObject("", "app\\_%", None), "SELECT"),
                Privilege(GrantObject("", "d%%", "t%s"), "UPDATE", "c%(x)s"),
            },
            {RoleGrant(Account("r%s", "%"))},
            id="database_wildcard_and_percent_names_unquoted_exactly",
        ),
        pytest.param(
            [
                "GRANT USAGE ON *.* TO `app`@`10.0.%`",
                "GRANT BACKUP_ADMIN ON *.* TO `app`@`10.0.%`",
                "GRANT `r1`@`%`,`r2`@`localhost` TO `app`@`10.0.%` WITH ADMIN OPTION",
            ],
            {Privilege(GrantObject("", None, None), "BACKUP_ADMIN")},
            {RoleGrant(Account("r1", "%"), True), RoleGrant(Account("r2", "localhost"), True)},
            id="mysql8_roles_with_hosts_and_dynamic_privileges_accepted",
        ),
    ],
)
def test_parse_grants_names_roles_and_dynamic_privileges_parsed_exactly(
    lines: list[str], privileges: set[Privilege], roles: set[RoleGrant]
) -> None:
    grants = parse_grants(lines, APP)

    assert grants.privileges == privileges
    assert grants.roles == roles


def test_parse_grants_mysql57_single_quoted_grantee_accepted() -> None:
    grants = parse_grants(["GRANT SELECT ON `db`.* TO 'app'@'10.0.%'"], APP)

    assert grants.privileges == {Privilege(GrantObject("", "db", None), "SELECT")}


def test_parse_grants_backtick_in_database_name_unescaped_exactly() -> None:
    grants = parse_grants(["GRANT SELECT ON `we``ird; DROP`.* TO `app`@`10.0.%`"], APP)

    assert grants.privileges == {Privilege(GrantObject("", "we`ird; DROP", None), "SELECT")}


@pytest.mark.parametrize(
    "line",
    [
        "GRANT SELECT ON `db`.* TO `app`@`10.0.%`; DROP DATABASE `db`",
        "GRANT SELECT ON `db`.* TO `app`@`10.0.%` -- comment",
        "GRANT SELECT ON `db`.* TO `app`@`10.0.%` /* x */",
        "GRANT select' OR 1 ON `db`.* TO `app`@`10.0.%`",
        "GRANT SELECT ON db.* TO `app`@`10.0.%`",
        "GRANT PROXY ON ''@'%' TO `app`@`10.0.%`",
        "GRANT SELECT ON `db`.* TO `app`@`10.0.%` WITH SOMETHING 1",
        "GRANT SELECT ON *.`t` TO `app`@`10.0.%`",
        "REVOKE INSERT ON `mysql`.* FROM `app`@`10.0.%`",
        "GRANT SELECT ON `db`.* TO `app`@`10.0.%` REQUIRE WHATEVER",
        "",
    ],
)
def test_parse_grants_line_outside_grammar_refused(line: str) -> None:
    with pytest.raises(GrantSyntaxError):
        parse_grants([line], APP)


def test_parse_grants_refusal_message_never_quotes_the_line() -> None:
    line = f"GRANT USAGE ON *.* TO `app`@`10.0.%` IDENTIFIED BY PASSWORD '{HASH}' EXTRA"

    with pytest.raises(GrantSyntaxError) as raised:
        parse_grants([line], APP)

    assert HASH not in str(raised.value)
    assert "line 1" in str(raised.value)


def test_parse_grants_line_for_another_grantee_refused() -> None:
    with pytest.raises(GrantSyntaxError, match="another account"):
        parse_grants(["GRANT SELECT ON `db`.* TO `app`@`%`"], APP)


def test_auth_plugins_of_ed25519_and_unparsable_lines_ignored() -> None:
    lines = [
        "GRANT PROXY ON ''@'%' TO `app`@`10.0.%`",
        "GRANT USAGE ON *.* TO `app`@`10.0.%` IDENTIFIED VIA ed25519 USING 'h9Jw6pQk'",
    ]

    assert auth_plugins_of(lines, APP) == ["ed25519"]


def test_sync_statements_new_clone_gets_every_grant_with_grantee_bound() -> None:
    desired = parse_grants(MARIADB_GRANTS, APP)

    statements = sync_statements(desired, AccountGrants(), CLONE)

    assert statements == [
        ("GRANT ALL PRIVILEGES ON `audit`.* TO %s@%s", ("app_clone", "10.0.%")),
        ("GRANT INSERT, SELECT ON `orders`.* TO %s@%s WITH GRANT OPTION", ("app_clone", "10.0.%")),
        ("GRANT SELECT (`a`), UPDATE (`a`, `b`) ON `orders`.`items` TO %s@%s", ("app_clone", "10.0.%")),
        ("GRANT EXECUTE ON PROCEDURE `orders`.`close_day` TO %s@%s", ("app_clone", "10.0.%")),
        ("GRANT `reporting` TO %s@%s", ("app_clone", "10.0.%")),
    ]


def test_sync_statements_removed_grants_revoked_before_grants() -> None:
    existing = parse_grants([line.replace("`app`", "`app_clone`") for line in MARIADB_GRANTS], CLONE)
    desired = parse_grants(
        [
            "GRANT SELECT ON `orders`.* TO `app`@`10.0.%`",
            "GRANT SELECT ON `audit`.* TO `app`@`10.0.%`",
        ],
        APP,
    )

    statements = [sql for sql, _values in sync_statements(desired, existing, CLONE)]

    assert statements == [
        "REVOKE ALL PRIVILEGES ON `audit`.* FROM %s@%s",
        "REVOKE INSERT ON `orders`.* FROM %s@%s",
        "REVOKE GRANT OPTION ON `orders`.* FROM %s@%s",
        "REVOKE SELECT (`a`), UPDATE (`a`, `b`) ON `orders`.`items` FROM %s@%s",
        "REVOKE EXECUTE ON PROCEDURE `orders`.`close_day` FROM %s@%s",
        "REVOKE `reporting` FROM %s@%s",
        "GRANT SELECT ON `audit`.* TO %s@%s",
    ]


def test_sync_statements_identical_grants_nothing_to_do() -> None:
    existing = parse_grants([line.replace("`app`", "`app_clone`") for line in MARIADB_GRANTS], CLONE)

    assert sync_statements(parse_grants(MARIADB_GRANTS, APP), existing, CLONE) == []


def test_sync_statements_grant_option_alone_granted_with_usage() -> None:
    target = GrantObject("", "db", None)
    desired = AccountGrants(privileges={Privilege(target, "SELECT"), Privilege(target, "GRANT OPTION")})
    existing = AccountGrants(privileges={Privilege(target, "SELECT")})

    assert sync_statements(desired, existing, CLONE) == [
        ("GRANT USAGE ON `db`.* TO %s@%s WITH GRANT OPTION", ("app_clone", "10.0.%"))
    ]


def test_sync_statements_hostile_names_stay_quoted_identifiers() -> None:
    hostile = "x` TO `evil`@`%`; DROP DATABASE `y"
    line = "GRANT SELECT ON `" + hostile.replace("`", "``") + "`.* TO `app`@`10.0.%`"
    desired = parse_grants([line], APP)

    [statement] = sync_statements(desired, AccountGrants(), CLONE)

    assert statement[1] == ("app_clone", "10.0.%")
    assert (
        sent_text(statement) == "GRANT SELECT ON `x`` TO ``evil``@``%``; DROP DATABASE ``y`.* TO 'app_clone'@'10.0.%'"
    )


@pytest.mark.parametrize("pattern", ["%", "%s", "%%", "%(x)s", "%d%%s"])
def test_sync_statements_percent_in_every_name_driver_sends_names_unchanged(pattern: str) -> None:
    db, table, column, routine, role = (f"{kind}{pattern}" for kind in ("d", "t", "c", "p", "r"))
    desired = AccountGrants(
        privileges={
            Privilege(GrantObject("", "app\\_%", None), "SELECT"),
            Privilege(GrantObject("", db, table), "UPDATE", column),
            Privilege(GrantObject("PROCEDURE", db, routine), "EXECUTE"),
        },
        roles={RoleGrant(Account(role, "%"))},
    )
    existing = AccountGrants(
        privileges={Privilege(GrantObject("", db, None), "DELETE")}, roles={RoleGrant(Account(role, None))}
    )

    texts = [sent_text(statement) for statement in sync_statements(desired, existing, CLONE)]

    grantee = "'app_clone'@'10.0.%'"
    assert texts == [
        f"REVOKE DELETE ON `{db}`.* FROM {grantee}",
        f"REVOKE `{role}` FROM {grantee}",
        f"GRANT SELECT ON `app\\_%`.* TO {grantee}",
        f"GRANT UPDATE (`{column}`) ON `{db}`.`{table}` TO {grantee}",
        f"GRANT EXECUTE ON PROCEDURE `{db}`.`{routine}` TO {grantee}",
        f"GRANT `{role}`@`%` TO {grantee}",
    ]


def test_quote_identifier_doubles_percent_for_the_driver_template() -> None:
    assert quote_identifier("a%s`b%") == "`a%%s``b%%`"


def test_sync_statements_privilege_name_not_words_refused() -> None:
    desired = AccountGrants(privileges={Privilege(GrantObject("", "db", None), "SELECT; DROP")})

    with pytest.raises(GrantSyntaxError):
        sync_statements(desired, AccountGrants(), CLONE)
