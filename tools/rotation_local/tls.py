"""A certificate authority made for one local run, and the TLS material its servers need."""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOCAL_NAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class TlsMaterial:
    """A server certificate chain and its key (PEM), what a throwaway server is started with."""

    cert_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)


@dataclass
class LocalCA:
    """A throwaway CA (trustme); ``bundle_path`` is what clients verify with (DB_CA_BUNDLE, API_CA_BUNDLE)."""

    ca: Any = field(repr=False)
    bundle_path: Path
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @classmethod
    def create(cls, folder: Path | None = None) -> LocalCA:
        import trustme

        tmp = None
        if folder is None:
            tmp = tempfile.TemporaryDirectory(prefix="rotation-ca-")
            folder = Path(tmp.name)
        ca = trustme.CA()
        bundle = folder / "local-ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        return cls(ca=ca, bundle_path=bundle, _tmp=tmp)

    def server_material(self, *names: str) -> TlsMaterial:
        """A certificate chain and its private key for ``names`` (default: 127.0.0.1 and localhost)."""
        return material_from(self.ca, *(names or LOCAL_NAMES))

    def server_context(self, *names: str) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*(names or LOCAL_NAMES)).configure_cert(context)
        return context

    def cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def material_from(ca: Any, *names: str) -> TlsMaterial:
    """A server certificate for ``names`` from a trustme CA."""
    cert = ca.issue_cert(*names)
    return TlsMaterial(b"".join(blob.bytes() for blob in cert.cert_chain_pems), cert.private_key_pem.bytes())
