"""The base every local target implements: an engine's throwaway servers, logins and secrets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rotation_local.server_kinds import ServerKind
from rotation_local.tls import TlsMaterial

if TYPE_CHECKING:  # the runner imports this package before the layer is on its path
    from rotation_core.settings import Strategy


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

    def start(self, kind: ServerKind, *, tls: TlsMaterial | None = None, log_statements: bool = True) -> Any:
        """A running server of ``kind`` (TLS on with ``tls``; every statement logged with ``log_statements``)."""
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
