"""PostgreSQL statements as data: a ``{}`` template and the identifiers and literals that fill it.

Nothing here imports the driver. The engine composes each :class:`Statement` with ``psycopg2.sql``
(``Identifier`` / ``Literal``) and sends it without parameters, so no ``%``-formatting ever touches a
name: a role called ``dba%team`` reaches the server as it is. Passwords never appear: the statements
carry the SCRAM-SHA-256 verifier computed on the client.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Ident:
    """A name, quoted as an identifier."""

    name: str


@dataclass(frozen=True)
class Literal:
    """A value, quoted as a string literal (a verifier: never shown)."""

    value: str = field(repr=False)


@dataclass(frozen=True)
class Statement:
    template: str  # SQL with one "{}" per part
    parts: tuple[Ident | Literal, ...] = ()


def own_password(username: str, verifier: str) -> list[Statement]:
    """As the user itself: act as itself (an alternating clone's default role is another), set the password."""
    return [
        Statement("SET ROLE NONE"),
        Statement("ALTER ROLE {} PASSWORD {}", (Ident(username), Literal(verifier))),
    ]


def role_exists(name: str) -> Statement:
    return Statement("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {}", (Literal(name),))


def original_password(original: str, verifier: str) -> list[Statement]:
    """As admin, when the original user's turn has come round again."""
    return [Statement("ALTER ROLE {} WITH LOGIN PASSWORD {}", (Ident(original), Literal(verifier)))]


def clone_password(original: str, clone: str, verifier: str, *, exists: bool) -> list[Statement]:
    """As admin: the clone logs in with the password, is a member of the original and acts as it.

    Membership plus a default role: what the clone creates belongs to the original, and every grant
    the original gets later applies to the clone too. Only for a clone that owns nothing (see
    :func:`owned_objects`): a clone that owns objects would lose access to them by acting as the original.
    """
    verb = "ALTER" if exists else "CREATE"
    return [
        Statement(verb + " ROLE {} WITH LOGIN PASSWORD {}", (Ident(clone), Literal(verifier))),
        Statement("GRANT {} TO {}", (Ident(original), Ident(clone))),
        acts_as(clone, original),
    ]


def keep_clone_password(original: str, clone: str, verifier: str) -> list[Statement]:
    """As admin, for an existing clone that owns objects: new password and membership, nothing else.

    Who its sessions act as is left alone (AWS's rotation function makes the clone a plain member of the
    original that acts as itself and owns what it creates; a default role would cut it off from that).
    """
    return [
        Statement("ALTER ROLE {} WITH LOGIN PASSWORD {}", (Ident(clone), Literal(verifier))),
        Statement("GRANT {} TO {}", (Ident(original), Ident(clone))),
    ]


def owned_objects(role: str) -> Statement:
    """Per database, how many objects ``role`` owns; a NULL database name counts shared objects (databases).

    ``pg_shdepend`` is a shared catalog: one query from any database sees every database's owners.
    """
    return Statement(
        "SELECT d.datname, count(*) FROM pg_catalog.pg_shdepend s "
        "LEFT JOIN pg_catalog.pg_database d ON d.oid = s.dbid "
        "WHERE s.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass AND s.deptype = 'o' "
        "AND s.refobjid = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = {}) "
        "GROUP BY d.datname ORDER BY d.datname NULLS FIRST",
        (Literal(role),),
    )


def may_reassign(source: str, target: str) -> Statement:
    """Whether the session's role has the privileges of both roles, which REASSIGN OWNED requires."""
    return Statement(
        "SELECT pg_catalog.pg_has_role(current_user, {}, 'USAGE') "
        "AND pg_catalog.pg_has_role(current_user, {}, 'USAGE')",
        (Literal(source), Literal(target)),
    )


def current_database() -> Statement:
    return Statement("SELECT pg_catalog.current_database()")


def reassign_owned(source: str, target: str) -> Statement:
    """Give ``target`` what ``source`` owns in the session's database (and shared objects such as databases)."""
    return Statement("REASSIGN OWNED BY {} TO {}", (Ident(source), Ident(target)))


def acts_as(clone: str, original: str) -> Statement:
    """The default role that makes every session of ``clone`` act as ``original``."""
    return Statement("ALTER ROLE {} SET role TO {}", (Ident(clone), Ident(original)))


# --- proving a pair before the master acts on it (see :mod:`.pair`) ---------------------------------------

#: Predefined and managed-service roles whose members can read or write any data, server files or programs,
#: signal other sessions or manage passwords: membership makes a role superuser-class, like the attributes.
PRIVILEGED_ROLES = (
    "pg_read_server_files", "pg_write_server_files", "pg_execute_server_program", "pg_read_all_data",
    "pg_write_all_data", "pg_signal_backend", "pg_signal_autovacuum_worker", "pg_checkpoint", "pg_maintain",
    "pg_create_subscription", "pg_use_reserved_connections", "rds_superuser", "rds_replication", "rds_password",
    "rdsadmin", "azure_pg_admin", "cloudsqlsuperuser",
)  # fmt: skip


def session_roles() -> Statement:
    """Who the admin session is: its login and the role it acts as."""
    return Statement("SELECT session_user, current_user")


def role_rights(first: str, second: str) -> Statement:
    """Per existing role of the two: its name, its superuser-class attributes and the superuser-class roles it
    is a member of, directly or through other roles (a member may SET ROLE to any of them)."""
    return Statement(
        "SELECT r.rolname, r.rolsuper, r.rolcreaterole, r.rolreplication, r.rolbypassrls, "
        "CASE WHEN r.rolsuper THEN ARRAY[]::text[] ELSE "  # a superuser is a member of every role
        "ARRAY(SELECT g.rolname::text FROM pg_catalog.pg_roles g WHERE g.oid <> r.oid "
        "AND pg_catalog.pg_has_role(r.oid, g.oid, 'MEMBER') AND (g.rolsuper OR g.rolcreaterole OR "
        "g.rolreplication OR g.rolbypassrls OR g.rolname = ANY ({}::text[])) ORDER BY 1) END "
        "FROM pg_catalog.pg_roles r WHERE r.rolname IN ({}, {})",
        (Literal("{" + ",".join(PRIVILEGED_ROLES) + "}"), Literal(first), Literal(second)),
    )


def membership_grantors(role: str, member: str) -> Statement:
    """Who granted ``member`` its membership in ``role`` (one row per grant; PostgreSQL 16+ may keep several):
    the grantor's name (NULL if it was dropped) and whether it is a superuser."""
    return Statement(
        "SELECT g.rolname, COALESCE(g.rolsuper, false) FROM pg_catalog.pg_auth_members m "
        "LEFT JOIN pg_catalog.pg_roles g ON g.oid = m.grantor "
        "WHERE m.roleid = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = {}) "
        "AND m.member = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = {}) ORDER BY 1",
        (Literal(role), Literal(member)),
    )


def memberships_beyond(member: str, role: str) -> Statement:
    """The roles ``member`` is a direct member of that are neither ``role`` nor roles ``role`` is a member of."""
    return Statement(
        "SELECT r.rolname FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles r ON r.oid = m.roleid "
        "WHERE m.member = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = {}) AND r.rolname <> {} "
        "AND NOT pg_catalog.pg_has_role((SELECT oid FROM pg_catalog.pg_roles WHERE rolname = {}), r.oid, 'MEMBER') "
        "ORDER BY 1",
        (Literal(member), Literal(role), Literal(role)),
    )
