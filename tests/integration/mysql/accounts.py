"""Flavour-aware account helpers for the MySQL-function integration tests.

MySQL 8+ roles have a host part (``'r'@'%'``), take ``SET DEFAULT ROLE ... TO`` and keep default roles
in ``mysql.default_roles``; MariaDB roles have no host, take ``SET DEFAULT ROLE ... FOR`` and show the
default role in SHOW GRANTS. The helpers ask the server which one it is at run time, so the same tests
run on whichever server the ``mysql_server`` fixture provides.

Setup statements are sent verbatim (no parameters, so the driver does no ``%``-formatting) with names
quoted here, independently of the code under test: a name like ``app\\_%`` or ``r%s`` reaches the
server as written.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from pymysql.converters import escape_string

from helpers import LeakGuard
from integration.support import secret_at, unique
from rotation_core.engines.mysql.grants import Account, parse_grants
from rotation_core.engines.mysql.statements import Flavour, ServerVersion
from rotation_local.mysql_server import MySQLFamilyServer
from rotation_local.targets.mysql import TARGET

ACCOUNT_COLUMNS = ("plugin", "ssl_type", "ssl_cipher", "x509_issuer", "x509_subject")
LIMIT_COLUMNS = ("max_questions", "max_updates", "max_connections", "max_user_connections")
MARIADB_LIMIT_COLUMNS = ("max_statement_time",)


def server_version(server: MySQLFamilyServer) -> ServerVersion:
    version, comment = server.query("SELECT VERSION(), @@version_comment")[0]
    return ServerVersion.parse(str(version), str(comment or ""))


def is_mariadb(server: MySQLFamilyServer) -> bool:
    return server_version(server).flavour is Flavour.MARIADB


def ident(name: str) -> str:
    """A backtick-quoted name for a statement sent without parameters."""
    return "`" + name.replace("`", "``") + "`"


def account_text(user: str, host: str | None) -> str:
    """``'user'@'host'`` (or a MariaDB role's ``'role'``) as string literals, for a verbatim statement."""
    user_text = f"'{escape_string(user)}'"
    return user_text if host is None else f"{user_text}@'{escape_string(host)}'"


def create_role(server: MySQLFamilyServer, name: str) -> Account:
    """A role as the server models it: ``'name'@'%'`` on MySQL 8+, a bare name on MariaDB."""
    role = Account(name, None) if is_mariadb(server) else Account(name, "%")
    server.execute(f"CREATE ROLE {account_text(role.user, role.host)}")
    return role


def grant_role(server: MySQLFamilyServer, role: Account, user: str, host: str, *, admin_option: bool = False) -> None:
    option = " WITH ADMIN OPTION" if admin_option else ""
    server.execute(f"GRANT {account_text(role.user, role.host)} TO {account_text(user, host)}{option}")


def revoke_role(server: MySQLFamilyServer, role: Account, user: str, host: str) -> None:
    server.execute(f"REVOKE {account_text(role.user, role.host)} FROM {account_text(user, host)}")


def set_default_role(server: MySQLFamilyServer, role: Account | None, user: str, host: str) -> None:
    named = "NONE" if role is None else account_text(role.user, role.host)
    keyword = "FOR" if is_mariadb(server) else "TO"
    server.execute(f"SET DEFAULT ROLE {named} {keyword} {account_text(user, host)}")


def default_roles(server: MySQLFamilyServer, user: str, host: str) -> list[Account]:
    """The account's default roles that are in effect (granted)."""
    grants = parse_grants(server.grants(user, host), Account(user, host))
    granted = {grant.role for grant in grants.roles}
    if is_mariadb(server):
        return [role for role in grants.default_roles if role in granted]
    rows = server.query(
        "SELECT DEFAULT_ROLE_USER, DEFAULT_ROLE_HOST FROM mysql.default_roles WHERE USER = %s AND HOST = %s "
        "ORDER BY DEFAULT_ROLE_USER, DEFAULT_ROLE_HOST",
        (user, host),
    )
    return [Account(str(role_user), str(role_host)) for role_user, role_host in rows]


def account_row(server: MySQLFamilyServer, user: str, host: str) -> dict[str, Any]:
    """Plugin, TLS requirement and resource limits as ``mysql.user`` stores them."""
    columns = ACCOUNT_COLUMNS + LIMIT_COLUMNS + (MARIADB_LIMIT_COLUMNS if is_mariadb(server) else ())
    query = f"SELECT {', '.join(columns)} FROM mysql.user WHERE User = %s AND Host = %s"  # noqa: S608 (fixed names)
    rows = server.query(query, (user, host))
    assert len(rows) == 1, f"expected one mysql.user row for {user}@{host}, found {len(rows)}"
    return dict(zip(columns, rows[0], strict=True))


def account_state(server: MySQLFamilyServer, user: str, host: str) -> dict[str, Any]:
    """Everything the clone must copy, grantee removed, for comparing an account with its clone."""
    grants = parse_grants(server.grants(user, host), Account(user, host))
    return {
        "privileges": grants.privileges,
        "roles": grants.roles,
        "default_roles": default_roles(server, user, host),
        "account": account_row(server, user, host),
    }


def restrict_master(server: MySQLFamilyServer, master: str, *grants: str) -> None:
    """Take every privilege from ``master@127.0.0.1``, then run ``grants``, each naming it ``{master}``."""
    who = account_text(master, "127.0.0.1")
    server.execute(f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {who}")
    for grant in grants:
        server.execute(grant.format(master=who))


def short_name(prefix: str) -> str:
    """A user name that leaves room for ``_clone`` within 32 characters."""
    return unique(prefix)[:20]


def add_master(
    server: MySQLFamilyServer, sm_client: Any, leak_guard: LeakGuard, arn: str, *grants: str
) -> tuple[str, str]:
    """A master at 127.0.0.1 with just ``grants`` (statement parts "<privileges> ON <level>"), named by ``arn``."""
    master, password = short_name("master"), secrets.token_urlsafe(24)
    leak_guard.add(password)
    server.create_login(master, "127.0.0.1", password)
    for grant in grants:
        server.execute(f"GRANT {grant} TO %s@'127.0.0.1'", (master,))
    master_arn = sm_client.create_secret(
        Name=unique("master"), SecretString=json.dumps(TARGET.secret(server, master, password))
    )["ARN"]
    value = secret_at(sm_client, arn, "AWSCURRENT")
    sm_client.put_secret_value(SecretId=arn, SecretString=json.dumps({**value, "masterarn": master_arn}))
    return master, master_arn
