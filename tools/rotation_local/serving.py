"""A loopback server answering from a daemon thread until it is stopped (the local tools' servers share this)."""

from __future__ import annotations

import threading
from typing import Protocol, Self


class Servable(Protocol):
    """What ``socketserver`` servers and werkzeug's server both offer."""

    def serve_forever(self, poll_interval: float = 0.5) -> None: ...

    def shutdown(self) -> None: ...

    def server_close(self) -> None: ...


class BackgroundServing:
    """Serves ``server`` from a daemon thread named ``name`` between :meth:`start` and :meth:`stop`."""

    def __init__(self, server: Servable, name: str, *, poll_interval: float = 0.5, join_timeout: float = 10) -> None:
        self.server = server
        self._name = name
        self._poll_interval = poll_interval
        self._join_timeout = join_timeout
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": self._poll_interval}, name=self._name,
            daemon=True,
        )  # fmt: skip
        self._thread.start()

    def stop(self) -> None:
        """Shut the server down (only while it serves: shutdown() waits for serve_forever) and close its socket."""
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=self._join_timeout)
            self._thread = None
        self.server.server_close()


class ServedInBackground:
    """Start and stop (or a ``with`` block) of an object that serves through its ``_serving``."""

    _serving: BackgroundServing

    def start(self) -> Self:
        self._serving.start()
        return self

    def stop(self) -> None:
        self._serving.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
