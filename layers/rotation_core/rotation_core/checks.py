"""One walk through a database setup's checks, taken two ways.

A database strategy's ``check_configuration`` (:mod:`rotation_core.strategies`, :mod:`rotation_core.dual_password`)
runs each check through a :class:`CheckRunner`, by the name the preflight reports it under (``current_login``,
``test_query``, ``master_secret`` ...). Secrets Manager's configuration test takes :class:`FirstFailureRaises`: the
first failure is raised as it is, and what passed is logged. The preflight (:mod:`rotation_core.preflight`) records
every check's outcome instead, reads a refused login as unreachable, TLS or refused, and goes on with the checks that
do not depend on a failed one. So "the current credentials log in, pass the probe, the master logs in" is written
once, in the strategies, for both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from rotation_core.log import get_logger

if TYPE_CHECKING:
    from rotation_core.engines.base import DatabaseEngine, DatabaseLogin, Session

T = TypeVar("T")


class CheckRunner(Protocol):
    """Runs the checks of a walk and keeps (or raises) their outcomes."""

    #: Also check, read-only, the rights a password change needs (``own_password_change``, ``master_privileges``).
    #: The preflight does; the configuration test leaves them to the rotation, which meets the server's refusal.
    checks_rights: bool

    def run(self, name: str, check: Callable[[], T], *, also: str | None = None) -> T | None:
        """The check's result, or None when it failed (recorded; a runner that raises never returns None).

        ``also`` names a second check the same call answers: it passes with ``name``, and a failure of another
        category than ``name`` reports is ``also``'s (``name`` passing).
        """
        ...

    def login(self, engine: DatabaseEngine, login: DatabaseLogin) -> Session | None:
        """The current credentials log in (``current_login``): the session, or None when they did not (recorded)."""
        ...

    def skip(self, name: str, why: str) -> None:
        """The check does not apply to this setup, for the reason given."""
        ...

    def passed(self, message: str, **extra: object) -> None:
        """What the checks run so far proved, for the log (the preflight logs each check's outcome instead)."""
        ...


class FirstFailureRaises:
    """The configuration test's way through the checks: each runs as it is, the first failure is raised."""

    checks_rights = False

    def run(self, name: str, check: Callable[[], T], *, also: str | None = None) -> T | None:
        return check()

    def login(self, engine: DatabaseEngine, login: DatabaseLogin) -> Session | None:
        return engine.connect(login)

    def skip(self, name: str, why: str) -> None:
        """Nothing to report: the configuration test says what it checked, not what it left out."""

    def passed(self, message: str, **extra: object) -> None:
        get_logger().info(f"checked: {message}", extra=extra)
