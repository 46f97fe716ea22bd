"""MySQL/MariaDB engine without a server: version parsing, statements per version, limits, errors."""

from __future__ import annotations

import ssl
import subprocess
import sys
from typing import Any

import pymysql
import pytest

from helpers import REPO_ROOT
from rotation_core.engines.base import CloneRequest, TlsMode
from rotation_core.engines.mysql.engine import MySQLEngine, _tls_context
from rotation_core.engines.mysql.grants import Account
from rotation_core.engines.mysql.session import MySQLSession, execute, statement_error
from rotation_core.engines.mysql.statements import (
    Flavour,
    ServerVersion,
    StatementBuilder,
    TlsRequirement,
    UnsupportedAccountError,
    native_password_hash,
)
from rotation_core.errors import Category, SecretFormatError, StatementError, TargetError
from rotation_core.settings import Settings, Strategy
from rotation_core.strategies import AlternatingUsers
from unit.pymysql_offline import OfflineConnection, sent_text

PASSWORD = "N3w-Passw0rd-for-the-test"
ACCOUNT = Account("app", "10.0.%")


@pytest.mark.parametrize(
    ("text", "comment", "expected"),
    [
        ("5.7.44-log", "MySQL Community Server (GPL)", (Flavour.MYSQL, 5, 7, 44)),
        ("8.0.36", "Source distribution", (Flavour.MYSQL, 8, 0, 36)),
        ("8.4.2", "MySQL Community Server - GPL", (Flavour.MYSQL, 8, 4, 2)),
        ("9.1.0", "MySQL Community Server - GPL", (Flavour.MYSQL, 9, 1, 0)),
        ("8.0.mysql_aurora.3.05.2", "", (Flavour.MYSQL, 8, 0, 0)),
        ("10.11.19-MariaDB-0+deb12u1-log", "Debian 12", (Flavour.MARIADB, 10, 11, 19)),
        ("5.5.5-10.6.16-MariaDB", "", (Flavour.MARIADB, 10, 6, 16)),
        ("11.4.2-MariaDB", "mariadb.org binary distribution", (Flavour.MARIADB, 11, 4, 2)),
        ("10.6.14", "MariaDB Server", (Flavour.MARIADB, 10, 6, 14)),
        ("18.0.1", "", (Flavour.MYSQL, 18, 0, 1)),
    ],
)
def test_server_version_parse_known_strings_flavour_and_numbers(
    text: str, comment: str, expected: tuple[Flavour, int, int, int]
) -> None:
    version = ServerVersion.parse(text, comment)

    assert (version.flavour, version.major, version.minor, version.patch) == expected


def test_server_version_parse_garbage_raises() -> None:
    with pytest.raises(ValueError, match="version"):
        ServerVersion.parse("eight point oh")


def test_native_password_hash_known_value_matches_server_format() -> None:
    # SELECT PASSWORD('OrigPassw0rd-111') on MariaDB 10.11
    assert native_password_hash("OrigPassw0rd-111") == "*AB98341FE32DC8A17C368646457619E70F7A1F08"


def builder(version: str, comment: str = "") -> StatementBuilder:
    return StatementBuilder(ServerVersion.parse(version, comment))


@pytest.mark.parametrize("version", ["10.1.48-MariaDB", "10.11.19-MariaDB", "11.4.2-MariaDB"])
def test_statement_builder_mariadb_own_password_sends_hash_only(version: str) -> None:
    sql, values = builder(version).own_password(PASSWORD)

    assert sql == "SET PASSWORD = %s"
    assert values == (native_password_hash(PASSWORD),)
    assert PASSWORD not in values


@pytest.mark.parametrize("version", ["5.7.44", "8.0.36", "8.4.2", "9.1.0", "8.0.mysql_aurora.3.05.2"])
def test_statement_builder_mysql_own_password_alter_user_user(version: str) -> None:
    assert builder(version).own_password(PASSWORD) == ("ALTER USER USER() IDENTIFIED BY %s", (PASSWORD,))


@pytest.mark.parametrize(
    ("version", "expected_sql", "hashed"),
    [
        ("10.1.48-MariaDB", "SET PASSWORD FOR %s@%s = %s", True),
        ("10.11.19-MariaDB", "ALTER USER %s@%s IDENTIFIED BY PASSWORD %s", True),
        ("11.4.2-MariaDB", "ALTER USER %s@%s IDENTIFIED BY PASSWORD %s", True),
        ("5.7.44", "ALTER USER %s@%s IDENTIFIED BY %s", False),
        ("8.0.36", "ALTER USER %s@%s IDENTIFIED BY %s", False),
        ("8.4.2", "ALTER USER %s@%s IDENTIFIED BY %s", False),
        ("9.1.0", "ALTER USER %s@%s IDENTIFIED BY %s", False),
    ],
)
def test_statement_builder_set_password_per_version_host_bound(version: str, expected_sql: str, hashed: bool) -> None:
    sql, values = builder(version).set_password(ACCOUNT, PASSWORD)

    assert sql == expected_sql
    assert values == ("app", "10.0.%", native_password_hash(PASSWORD) if hashed else PASSWORD)


@pytest.mark.parametrize(
    ("version", "plugin", "expected_sql"),
    [
        ("10.11.19-MariaDB", "mysql_native_password", "CREATE USER %s@%s IDENTIFIED BY PASSWORD %s"),
        ("5.7.44", "mysql_native_password", "CREATE USER %s@%s IDENTIFIED WITH mysql_native_password BY %s"),
        ("8.0.36", "caching_sha2_password", "CREATE USER %s@%s IDENTIFIED WITH caching_sha2_password BY %s"),
        ("8.4.2", "caching_sha2_password", "CREATE USER %s@%s IDENTIFIED WITH caching_sha2_password BY %s"),
        ("9.1.0", "sha256_password", "CREATE USER %s@%s IDENTIFIED WITH sha256_password BY %s"),
    ],
)
def test_statement_builder_create_user_keeps_original_plugin(version: str, plugin: str, expected_sql: str) -> None:
    sql, _values = builder(version).create_user(ACCOUNT, plugin, PASSWORD)

    assert sql == expected_sql


@pytest.mark.parametrize(
    ("version", "plugin"),
    [
        ("10.11.19-MariaDB", "ed25519"),
        ("10.11.19-MariaDB", "unix_socket"),
        ("8.0.36", "auth_socket"),
        ("9.1.0", "mysql_native_password"),
    ],
)
def test_statement_builder_check_plugin_unrotatable_account_refused(version: str, plugin: str) -> None:
    with pytest.raises(UnsupportedAccountError) as raised:
        builder(version).check_plugin(plugin, "'app'@'%'")

    assert raised.value.category is Category.PERMISSION


@pytest.mark.parametrize("version", ["8.4.2", "5.7.44"])
def test_statement_builder_check_plugin_native_before_mysql9_accepted(version: str) -> None:
    assert builder(version).check_plugin("mysql_native_password", "'app'@'%'") == "mysql_native_password"


def test_statement_builder_mysql_before_5_7_6_refused() -> None:
    with pytest.raises(UnsupportedAccountError, match=r"5\.7\.6"):
        builder("5.6.51")


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        (TlsRequirement(), ("ALTER USER %s@%s REQUIRE NONE", ("app", "10.0.%"))),
        (TlsRequirement(ssl_type="ANY"), ("ALTER USER %s@%s REQUIRE SSL", ("app", "10.0.%"))),
        (TlsRequirement(ssl_type="X509"), ("ALTER USER %s@%s REQUIRE X509", ("app", "10.0.%"))),
        (
            TlsRequirement(ssl_type="SPECIFIED", issuer="/CN=ca' OR 1", subject="/CN=app"),
            ("ALTER USER %s@%s REQUIRE ISSUER %s AND SUBJECT %s", ("app", "10.0.%", "/CN=ca' OR 1", "/CN=app")),
        ),
    ],
)
def test_statement_builder_require_tls_values_bound_never_spliced(
    requirement: TlsRequirement, expected: tuple[str, tuple[object, ...]]
) -> None:
    assert builder("8.0.36").require_tls(ACCOUNT, requirement) == expected


def test_statement_builder_resource_limits_mariadb_includes_statement_time() -> None:
    statement = builder("10.11.19-MariaDB").resource_limits(
        ACCOUNT, {"MAX_QUERIES_PER_HOUR": "100", "MAX_USER_CONNECTIONS": "-1", "MAX_STATEMENT_TIME": "1.500000"}
    )

    assert sent_text(statement) == (
        "ALTER USER 'app'@'10.0.%' WITH MAX_QUERIES_PER_HOUR 100 MAX_UPDATES_PER_HOUR 0 MAX_CONNECTIONS_PER_HOUR 0 "
        "MAX_USER_CONNECTIONS -1 MAX_STATEMENT_TIME 1.500000"
    )


def test_statement_builder_resource_limits_mysql_has_no_statement_time() -> None:
    statement = builder("8.0.36").resource_limits(ACCOUNT, {"MAX_UPDATES_PER_HOUR": "7"})

    assert sent_text(statement) == (
        "ALTER USER 'app'@'10.0.%' WITH MAX_QUERIES_PER_HOUR 0 MAX_UPDATES_PER_HOUR 7 MAX_CONNECTIONS_PER_HOUR 0 "
        "MAX_USER_CONNECTIONS 0"
    )


@pytest.mark.parametrize("value", ["1; DROP USER x", "", "1e3", "--1"])
def test_statement_builder_resource_limits_not_a_number_refused(value: str) -> None:
    with pytest.raises(UnsupportedAccountError, match="MAX_QUERIES_PER_HOUR"):
        builder("8.0.36").resource_limits(ACCOUNT, {"MAX_QUERIES_PER_HOUR": value})


@pytest.mark.parametrize(
    ("version", "plugin", "expected_sql"),
    [
        ("8.0.36", None, "ALTER USER %s@%s IDENTIFIED BY %s"),
        ("8.0.36", "caching_sha2_password", "ALTER USER %s@%s IDENTIFIED WITH caching_sha2_password BY %s"),
        ("8.4.2", "sha256_password", "ALTER USER %s@%s IDENTIFIED WITH sha256_password BY %s"),
        ("10.11.19-MariaDB", "mysql_native_password", "ALTER USER %s@%s IDENTIFIED BY PASSWORD %s"),
    ],
)
def test_statement_builder_set_password_with_plugin_makes_clone_match_original(
    version: str, plugin: str | None, expected_sql: str
) -> None:
    assert builder(version).set_password(ACCOUNT, PASSWORD, plugin=plugin)[0] == expected_sql


def test_statement_builder_set_password_unknown_plugin_refused() -> None:
    with pytest.raises(UnsupportedAccountError):
        builder("8.0.36").set_password(ACCOUNT, PASSWORD, plugin="auth_socket BY 'x'")


def test_statement_builder_default_roles_per_flavour_driver_text() -> None:
    roles = [Account("r1", "%"), Account("r%s", "%")]

    assert sent_text(builder("8.0.36").default_roles(ACCOUNT, roles)) == (
        "SET DEFAULT ROLE `r1`@`%`, `r%s`@`%` TO 'app'@'10.0.%'"
    )
    assert sent_text(builder("10.11.19-MariaDB").default_roles(ACCOUNT, [Account("r%(x)s", None)])) == (
        "SET DEFAULT ROLE `r%(x)s` FOR 'app'@'10.0.%'"
    )
    assert (
        sent_text(builder("10.11.19-MariaDB").default_roles(ACCOUNT, [])) == "SET DEFAULT ROLE NONE FOR 'app'@'10.0.%'"
    )


@pytest.mark.parametrize(
    ("version", "needed"),
    [("10.11.19-MariaDB", "GRANT UPDATE ON mysql.* TO <master>"), ("8.0.36", "CREATE USER")],
)
def test_statement_builder_default_role_privilege_names_what_the_master_needs(version: str, needed: str) -> None:
    assert needed in builder(version).default_role_privilege


@pytest.mark.parametrize(
    ("mode", "check_hostname", "verify_mode"),
    [
        (TlsMode.VERIFY_FULL, True, ssl.CERT_REQUIRED),
        (TlsMode.VERIFY_CA, False, ssl.CERT_REQUIRED),
        (TlsMode.REQUIRE, False, ssl.CERT_NONE),
    ],
)
def test_tls_context_mode_sets_verification(mode: TlsMode, check_hostname: bool, verify_mode: ssl.VerifyMode) -> None:
    context = _tls_context(mode, None)

    assert (context.check_hostname, context.verify_mode) == (check_hostname, verify_mode)


def secret(**overrides: Any) -> dict[str, Any]:
    return {"engine": "mysql", "host": "db.example", "username": "app", "password": PASSWORD, **overrides}


def test_mysql_engine_parse_login_defaults_port_3306_tls_verify_full() -> None:
    login = MySQLEngine(Settings()).parse_login(secret(), "current")

    assert (login.port, login.tls, login.dbname) == (3306, TlsMode.VERIFY_FULL, None)


@pytest.mark.parametrize("engine", ["mysql", "aurora-mysql", "mariadb"])
def test_mysql_engine_parse_login_engine_names_accepted(engine: str) -> None:
    assert MySQLEngine(Settings()).parse_login(secret(engine=engine), "current").engine == engine


def test_mysql_engine_parse_login_postgres_secret_refused() -> None:
    with pytest.raises(SecretFormatError, match="engine"):
        MySQLEngine(Settings()).parse_login(secret(engine="postgres"), "current")


def test_mysql_engine_parse_login_counts_characters_not_bytes() -> None:
    engine = MySQLEngine(Settings())

    assert engine.parse_login(secret(username="é" * 32), "current").username == "é" * 32
    with pytest.raises(SecretFormatError, match="33 characters"):
        engine.parse_login(secret(username="é" * 33), "current")


def test_mysql_engine_parse_login_username_character_limit_from_settings() -> None:
    engine = MySQLEngine(Settings(username_character_limit=16))

    with pytest.raises(SecretFormatError, match="USERNAME_CHARACTER_LIMIT"):
        engine.parse_login(secret(username="a" * 17), "current")


def test_mysql_alternating_clone_name_over_character_limit_refused_by_the_strategy() -> None:
    settings = Settings(strategy=Strategy.ALTERNATING_USERS)
    engine = MySQLEngine(settings)
    strategy = AlternatingUsers(engine, settings)
    context: Any = None  # build_pending reads nothing else

    assert strategy.build_pending(secret(username="a" * 26, masterarn="arn:m"), context)["username"].endswith("_clone")
    with pytest.raises(SecretFormatError, match=r"is 33 characters, over the limit of 32 .*leave room for"):
        strategy.build_pending(secret(username="a" * 27, masterarn="arn:m"), context)
    # The engine itself knows no strategy: a 30-character name (a master's, say) is fine.
    assert engine.parse_login(secret(username="m" * 30), "master")


def test_settings_username_character_limit_read_from_env() -> None:
    assert Settings.from_env({}).username_character_limit == 32
    assert Settings.from_env({"USERNAME_CHARACTER_LIMIT": "16"}).username_character_limit == 16


def login_error(error: Exception, **overrides: Any) -> Any:
    engine = MySQLEngine(Settings(connect_timeout=3))
    login = engine.parse_login(secret(**overrides), "current")
    return engine._login_error(login, error, "/ca.pem")


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (1045, "Access denied for user 'app'@'10.0.0.5' (using password: YES)"),
        (1698, "Access denied for user 'app'@'localhost'"),
    ],
)
def test_mysql_engine_login_error_access_denied_auth_failed(code: int, text: str) -> None:
    error = login_error(pymysql.err.OperationalError(code, text))

    assert error.category is Category.AUTH_FAILED


def test_mysql_engine_login_error_server_without_tls_says_how_to_opt_out() -> None:
    error = login_error(pymysql.err.OperationalError(2026, "SSL is required but the server doesn't support it"))

    assert error.category is Category.TLS
    assert '"ssl": false' in error.message


def test_mysql_engine_login_error_certificate_failure_is_tls() -> None:
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error = pymysql.err.OperationalError(2003, "Can't connect to MySQL server on 'db.example' (certificate ...)")
    error.original_exception = cause  # type: ignore[attr-defined]

    result = login_error(error)

    assert result.category is Category.TLS
    assert "DB_CA_BUNDLE" in result.message


def test_mysql_engine_login_error_caching_sha2_without_tls_explains_need() -> None:
    error = login_error(
        RuntimeError("'cryptography' package is required for sha256_password or caching_sha2_password auth methods"),
        ssl=False,
    )

    assert error.category is Category.TLS
    assert "caching_sha2_password" in error.message


def test_mysql_engine_login_error_connection_refused_unreachable_without_password() -> None:
    error = login_error(pymysql.err.OperationalError(2003, "Can't connect to MySQL server (Connection refused)"))

    assert error.category is Category.UNREACHABLE
    assert PASSWORD not in error.message
    assert "DB_CONNECT_TIMEOUT" in error.message


def test_mysql_function_import_loads_no_driver_and_no_boto3() -> None:
    code = (
        "import sys, app; "
        "loaded = [m for m in ('pymysql', 'boto3', 'botocore', 'aws_lambda_powertools') if m in sys.modules]; "
        "print(','.join(loaded) or 'none')"
    )
    layer, function = REPO_ROOT / "layers" / "rotation_core", REPO_ROOT / "functions" / "mysql"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": f"{layer}:{function}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        cwd=function,
    )

    assert result.stdout.strip() == "none"


@pytest.mark.parametrize(
    ("error", "category"),
    [
        (ValueError("unsupported format character '`' (0x60) at index 23"), Category.STATEMENT),
        (pymysql.err.ProgrammingError("not enough arguments for format string"), Category.STATEMENT),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), Category.STATEMENT),
        (pymysql.err.ProgrammingError(1064, "You have an error in your SQL syntax"), Category.PERMISSION),
        (pymysql.err.OperationalError(1044, "Access denied for user 'm'@'%' to database 'mysql'"), Category.PERMISSION),
        (pymysql.err.OperationalError(2013, "Lost connection to server during query"), Category.UNREACHABLE),
    ],
)
def test_mysql_session_statement_error_driver_side_failure_gets_statement_category(
    error: Exception, category: Category
) -> None:
    result = statement_error(error, "copy grants", "a hint", "GRANT SELECT ON `a%%`.* TO %s@%s")

    assert isinstance(result, TargetError)
    assert result.category is category
    assert isinstance(result, StatementError) is (category is Category.STATEMENT)
    assert "GRANT SELECT ON `a%`.* TO %s@%s" in result.message  # as the server would see it


@pytest.mark.parametrize("template", ["GRANT SELECT ON `a%`.* TO %s@%s", "GRANT SELECT ON `a%s`.* TO %s@%s"])
def test_mysql_session_execute_template_the_driver_cannot_format_raises_statement_error(template: str) -> None:
    """A builder bug (an undoubled %) meets PyMySQL's real formatting: a StatementError, nothing sent."""
    conn = OfflineConnection()
    session = MySQLSession(conn=conn, account=Account("master", "%"), server=ServerVersion.parse("8.0.36"))

    with pytest.raises(StatementError) as raised:
        execute(session, [(template, ("app", "%"))], action="copy grants")

    assert raised.value.category is Category.STATEMENT
    assert conn.sent == []


ORIGINAL_MYSQL8_GRANTS = [
    "GRANT USAGE ON *.* TO `app`@`10.0.%`",
    "GRANT SELECT, INSERT ON `app\\_%`.* TO `app`@`10.0.%` WITH GRANT OPTION",
    "GRANT `r%s`@`%`,`reader`@`%` TO `app`@`10.0.%`",
]
# plugin, ssl_type, ssl_cipher, x509_issuer, x509_subject, then the four limits: SHOW GRANTS shows none of them.
ORIGINAL_MYSQL8_ROW = ("caching_sha2_password", "ANY", b"", b"", b"", 10, 20, 30, 4)


def mysql8_clone_statements(clone_row: tuple[Any, ...] | None, clone_grants: list[str]) -> list[str]:
    """What set_clone_password sends to a MySQL 8.0 server (scripted answers, PyMySQL's own formatting)."""

    def answer(sql: str) -> list[tuple[Any, ...]]:
        is_clone = "'app_clone'" in sql
        if sql.startswith("SELECT Host FROM mysql.user"):
            return ([] if clone_row is None else [("10.0.%",)]) if is_clone else [("10.0.%",)]
        if sql.startswith("SELECT plugin"):
            return ([] if clone_row is None else [clone_row]) if is_clone else [ORIGINAL_MYSQL8_ROW]
        if sql.startswith(("SHOW GRANTS FOR 'r%s'", "SHOW GRANTS FOR 'reader'")):  # the pair check reads the roles
            role = sql.split("'")[1]
            return [(f"GRANT USAGE ON *.* TO `{role}`@`%`",)]
        if sql.startswith("SHOW GRANTS"):
            return [(line,) for line in (clone_grants if is_clone else ORIGINAL_MYSQL8_GRANTS)]
        if sql.startswith("SELECT DEFAULT_ROLE_USER"):
            return [] if is_clone else [("r%s", "%")]
        return []

    conn = OfflineConnection(answer)
    server = ServerVersion.parse("8.0.36")
    session = MySQLSession(conn=conn, account=Account("master", "%"), server=server)
    caller = MySQLSession(conn=OfflineConnection(answer), account=Account("app", "10.0.%"), server=server)
    MySQLEngine(Settings(strategy=Strategy.ALTERNATING_USERS)).set_clone_password(
        session, CloneRequest(caller=caller, original="app", target="app_clone", new_password=PASSWORD)
    )
    return [sql for sql in conn.sent if not sql.startswith(("SELECT", "SHOW"))]


CLONE = "'app_clone'@'10.0.%'"
MYSQL8_LIMITS = "MAX_QUERIES_PER_HOUR 10 MAX_UPDATES_PER_HOUR 20 MAX_CONNECTIONS_PER_HOUR 30 MAX_USER_CONNECTIONS 4"


def test_mysql_engine_clone_mysql8_new_clone_gets_limits_from_mysql_user_roles_with_hosts() -> None:
    """MySQL 8 path (not run against a real MySQL server here): limits, roles 'r'@'%', default roles."""
    assert mysql8_clone_statements(None, []) == [
        f"CREATE USER {CLONE} IDENTIFIED WITH caching_sha2_password BY '{PASSWORD}'",
        f"ALTER USER {CLONE} REQUIRE SSL",
        f"ALTER USER {CLONE} WITH {MYSQL8_LIMITS}",
        f"GRANT INSERT, SELECT ON `app\\_%`.* TO {CLONE} WITH GRANT OPTION",
        f"GRANT `r%s`@`%` TO {CLONE}",
        f"GRANT `reader`@`%` TO {CLONE}",
        f"SET DEFAULT ROLE `r%s`@`%` TO {CLONE}",
    ]


def test_mysql_engine_clone_mysql8_half_made_clone_synchronised_from_its_state() -> None:
    """An attempt died after some statements; the clone also drifted (plugin, TLS, limits, a privilege)."""
    half_made_row = ("sha256_password", "", b"", b"", b"", 0, 0, 0, 0)
    half_made_grants = [
        "GRANT USAGE ON *.* TO `app_clone`@`10.0.%`",
        "GRANT DELETE ON `app\\_%`.* TO `app_clone`@`10.0.%`",
        "GRANT `r%s`@`%` TO `app_clone`@`10.0.%`",
    ]

    assert mysql8_clone_statements(half_made_row, half_made_grants) == [
        f"ALTER USER {CLONE} IDENTIFIED WITH caching_sha2_password BY '{PASSWORD}'",
        f"ALTER USER {CLONE} REQUIRE SSL",
        f"ALTER USER {CLONE} WITH {MYSQL8_LIMITS}",
        f"REVOKE DELETE ON `app\\_%`.* FROM {CLONE}",
        f"GRANT INSERT, SELECT ON `app\\_%`.* TO {CLONE} WITH GRANT OPTION",
        f"GRANT `reader`@`%` TO {CLONE}",
        f"SET DEFAULT ROLE `r%s`@`%` TO {CLONE}",
    ]
