"""The base every local target implements: an engine's throwaway servers, logins and secrets.

A target declares the :class:`ServerKind` s it runs on (what they are: data). What needs every target's kinds at
once (the root filesystem a suite's kinds share, starting a kind's server through its target) is
:mod:`rotation_local.server_kinds`, above the targets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rotation_local.tls import TlsMaterial

if TYPE_CHECKING:  # the runner imports this package before the layer is on its path
    from rotation_core.settings import Strategy


POSTGRESQL, MARIADB, ORACLE_MYSQL = "postgresql", "mariadb", "mysql"  # flavours
FLAVOUR_TITLES = {POSTGRESQL: "PostgreSQL", MARIADB: "MariaDB", ORACLE_MYSQL: "MySQL"}


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
    """A database server the tests run against: the engine that rotates it, its flavour and version, and where its
    binaries come from (a Debian suite's private root filesystem, or the host's packages)."""

    name: str
    family: str  # the registry engine that rotates it ("postgres", "mysql")
    flavour: str  # POSTGRESQL | MARIADB | ORACLE_MYSQL
    version: str  # the major (PostgreSQL) or major.minor (MariaDB, MySQL) the kind stands for
    suite: str | None = None  # None: the host's own packages
    packages: tuple[str, ...] = ()  # what the root needs for this kind
    version_package: str = ""  # the package whose version must be ``version`` (default: the first package)

    @property
    def title(self) -> str:
        """The server's product name, as people write it ("MariaDB")."""
        return FLAVOUR_TITLES.get(self.flavour, self.flavour)

    @property
    def from_host(self) -> bool:
        return self.suite is None

    def matches_version(self, server_version: str) -> bool:
        """``17.12 (Debian ...)`` is a 17, ``11.8.9-MariaDB-...`` an 11.8, ``9.7.4-2`` a 9.7."""
        return re.match(rf"{re.escape(self.version)}(?![0-9])", server_version.strip()) is not None


@dataclass(frozen=True)
class ClientTls:
    """How a test client connects: TLS verified with ``ca_bundle`` (None: no TLS), host name checked or not."""

    ca_bundle: Path | None
    check_host_name: bool = True


class DatabaseTarget:
    """One engine's throwaway servers, logins and secrets (subclasses: ``rotation_local.targets.<engine>``)."""

    def __init__(
        self, engine: str, kinds: tuple[ServerKind, ...], driver_module: str, driver_connect: str = "connect"
    ) -> None:
        self.engine = engine  # the registry's engine name
        self.kinds = kinds  # the servers it runs on; the first one comes from the host's packages
        self.driver_module = driver_module  # what the function imports: the fault matrix redirects its connects
        self.driver_connect = driver_connect  # the driver's callable that opens a connection (given ``port=``)

    def strategies(self, kind: ServerKind) -> tuple[Strategy, ...]:
        """The registry's strategies of this engine that servers of ``kind`` support (default: every one)."""
        from rotation_core.registry import engine

        return engine(self.engine).strategies

    def kind_for(self, strategy: Strategy) -> ServerKind | None:
        """The first of this engine's kinds whose servers support ``strategy`` (None: no kind does)."""
        return next((kind for kind in self.kinds if strategy in self.strategies(kind)), None)

    def login_options(self, strategy: Strategy) -> dict[str, str]:
        """What :meth:`create_login` needs for a user rotated with ``strategy`` (its own privileges); default none."""
        return {}

    def start(
        self, kind: ServerKind, *, root: Path | None = None, tls: TlsMaterial | None = None, log_statements: bool = True
    ) -> Any:
        """A running server of ``kind``, from the root filesystem ``root`` (None: the host's packages; see
        :func:`rotation_local.server_kinds.start_server`), TLS on with ``tls``, every statement logged with
        ``log_statements``."""
        raise NotImplementedError

    def create_login(self, server: Any, username: str, password: str, *, database: str | None = None,
                     **options: str) -> None:  # fmt: skip
        """A login that may connect over TLS (and use ``database``, created for it); options are the engine's."""
        raise NotImplementedError

    def create_master(self, server: Any, username: str, password: str) -> None:
        """An admin that may create and change logins (the alternating-users master)."""
        raise NotImplementedError

    def allow_master(self, server: Any, master: str, username: str) -> None:
        """What the master needs beyond :meth:`create_master` to manage ``username`` (docs list it)."""
        raise NotImplementedError

    def secret(self, server: Any, username: str, password: str, **extra: Any) -> dict[str, Any]:
        """The secret a user of ``server`` stores for this login (loopback host, the server's port)."""
        raise NotImplementedError

    def takes_master(self, server: Any) -> bool:
        """Whether a master secret ("masterarn") can change this server's users (not where a service manages them)."""
        return True

    def secret_created(self, server: Any, secret: Mapping[str, Any], arn: str) -> None:
        """What an operator does once the secret ``arn`` exists (binding a managed user to it); default nothing."""

    def connect(self, server: Any, secret: Mapping[str, Any], tls: ClientTls, database: str | None = None) -> Any:
        """A driver connection as the secret's user (to ``database``, default the secret's ``dbname``).

        Raises the driver's error when the login fails.
        """
        raise NotImplementedError

    def login_error(self) -> type[Exception]:
        """The driver's exception for a refused or failed login."""
        raise NotImplementedError

    def logs_in(
        self, server: Any, secret: Mapping[str, Any], ca_bundle: Path | None, *, check_host_name: bool = True
    ) -> bool:
        """True if the secret's user and password log in now.

        Over TLS verified with ``ca_bundle`` (the certificate's host name checked unless
        ``check_host_name`` is false); ``ca_bundle=None``: without TLS.
        """
        try:
            self.connect(server, secret, ClientTls(ca_bundle, check_host_name)).close()
        except self.login_error():
            return False
        return True

    def statement_log(self, server: Any) -> Path:
        """The file where the server records every statement it receives (the leak guard reads it)."""
        path: Path = server.log_path
        return path
