"""Local targets: each engine's local knowledge, written once, behind :class:`.base.DatabaseTarget`.

A target knows which throwaway servers its engine runs on (:class:`~rotation_local.targets.base.ServerKind`),
how to start one, create a login (and a database it may use), create a master that may manage logins,
build the secret a user of that server would store, and check whether a secret logs in. The demo,
``bench/``, the integration fixtures and the fault matrix all go through it; each module of this package
holds one ``TARGET`` for the registry engine of the same name (``rotation_core.registry.engines()``),
and nothing else here names an engine.
"""

from __future__ import annotations

import importlib
import pkgutil

from rotation_local.targets.base import ClientTls, DatabaseServer, DatabaseTarget, ServerKind
from rotation_local.tls import TlsMaterial


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


__all__ = [
    "ClientTls",
    "DatabaseServer",
    "DatabaseTarget",
    "ServerKind",
    "TlsMaterial",
    "database_target",
    "database_targets",
    "server_kinds",
]
