"""Local targets: each engine's local knowledge, written once, behind :class:`DatabaseTarget`.

A target knows which throwaway servers its engine runs on (:class:`~rotation_local.server_kinds.ServerKind`),
how to start one, create a login (and a database it may use), create a master that may manage logins,
build the secret a user of that server would store, and check whether a secret logs in. The demo,
``bench/``, the integration fixtures and the fault matrix all go through it; each module of this package
holds one ``TARGET`` for the registry engine of the same name (``rotation_core.registry.engines()``),
and nothing else here names an engine.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from rotation_local.server_kinds import DatabaseServer, ServerKind
from rotation_local.tls import TlsMaterial


class DatabaseTarget(Protocol):
    """One engine's throwaway servers, logins and secrets."""

    engine: str  # the registry's engine name
    kinds: tuple[ServerKind, ...]  # the servers it runs on; the first one comes from the host's packages
    driver_module: str  # the driver the function imports ("psycopg2"): the fault matrix redirects its connects

    def start(self, kind: ServerKind, *, tls: TlsMaterial | None = None, log_statements: bool = True) -> Any:
        """A running server of ``kind`` (TLS on with ``tls``; every statement logged with ``log_statements``)."""
        ...

    def create_login(
        self, server: Any, username: str, password: str, *, database: str | None = None, **options: str
    ) -> None:
        """A login that may connect over TLS (and use ``database``, created for it); options are the engine's."""
        ...

    def create_master(self, server: Any, username: str, password: str) -> None:
        """An admin that may create and change logins (the alternating-users master)."""
        ...

    def allow_master(self, server: Any, master: str, username: str) -> None:
        """What the master needs beyond :meth:`create_master` to manage ``username`` (docs list it)."""
        ...

    def secret(self, server: Any, username: str, password: str, **extra: Any) -> dict[str, Any]:
        """The secret a user of ``server`` stores for this login (loopback host, the server's port)."""
        ...

    def logs_in(
        self, server: Any, secret: Mapping[str, Any], ca_bundle: Path | None, *, check_host_name: bool = True
    ) -> bool:
        """True if the secret's user and password log in now.

        Over TLS verified with ``ca_bundle`` (the certificate's host name checked unless
        ``check_host_name`` is false); ``ca_bundle=None``: without TLS.
        """
        ...

    def statement_log(self, server: Any) -> Path:
        """The file where the server records every statement it receives (the leak guard reads it)."""
        ...


def database_targets() -> dict[str, DatabaseTarget]:
    """Every target of this package, by engine name."""
    found: dict[str, DatabaseTarget] = {}
    for module in pkgutil.iter_modules(__path__):
        target = getattr(importlib.import_module(f"{__name__}.{module.name}"), "TARGET", None)
        if target is not None:
            found[target.engine] = target
    return dict(sorted(found.items()))


def database_target(engine: str) -> DatabaseTarget:
    target: DatabaseTarget | None = database_targets().get(engine)
    if target is None:
        raise KeyError(f"no local target for the engine {engine!r}; add rotation_local/targets/{engine}.py")
    return target


def server_kinds() -> tuple[ServerKind, ...]:
    """Every server kind of every target, in target order."""
    return tuple(kind for target in database_targets().values() for kind in target.kinds)


__all__ = ["DatabaseServer", "DatabaseTarget", "TlsMaterial", "database_target", "database_targets", "server_kinds"]
