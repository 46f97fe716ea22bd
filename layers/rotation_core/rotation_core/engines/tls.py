"""Where the CA bundle for database TLS verification comes from.

Without ``DB_CA_BUNDLE`` the engines trust the runtime's system bundle plus Amazon RDS's CAs, which
ship with the layer (``certs/rds-global-bundle.pem``, side by side with this package: in the source
tree ``layers/rotation_core/certs/``, in Lambda ``/opt/python/certs/``). libpq takes one root file, so
the two are joined once per process into a private temporary file named by its content.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path

from rotation_core.errors import ConfigurationError

# The Lambda runtime (Amazon Linux 2023) first, then Debian/Ubuntu, then other common places.
SYSTEM_CA_BUNDLES = (
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/cert.pem",
)
RDS_CA_BUNDLE_NAME = "rds-global-bundle.pem"
# What a joined bundle's file name starts with, so that it explains itself in error messages.
COMBINED_BUNDLE_PREFIX = "db-ca-system-plus-rds-"

_combined_bundles: dict[str, str] = {}  # sha256 of the joined content -> the file holding it
_combined_lock = threading.Lock()


def rds_ca_bundle_path() -> Path:
    """The RDS CA bundle shipped with the layer: ``certs/`` next to the ``rotation_core`` package."""
    return Path(__file__).parent.parent.parent / "certs" / RDS_CA_BUNDLE_NAME


def system_ca_bundle() -> str:
    """The runtime's system CA bundle."""
    for path in SYSTEM_CA_BUNDLES:
        if os.path.isfile(path):
            return path
    raise ConfigurationError(
        f"no system CA bundle was found (looked for {', '.join(SYSTEM_CA_BUNDLES)}); set DB_CA_BUNDLE to a PEM "
        f"bundle holding the database's CA (for RDS and Aurora: /opt/python/certs/{RDS_CA_BUNDLE_NAME})"
    )


def resolve_ca_bundle(configured: str | None) -> str:
    """The CA bundle to verify database certificates with.

    ``configured`` is ``DB_CA_BUNDLE`` and replaces every default; without it, a file holding the
    runtime's system bundle followed by the RDS CA bundle shipped with the layer.
    """
    if configured:
        if not os.path.isfile(configured):
            raise ConfigurationError(
                "DB_CA_BUNDLE names a file that does not exist; point it at a PEM bundle shipped with "
                f"the function or layer (e.g. /opt/python/certs/{RDS_CA_BUNDLE_NAME}), or leave it empty "
                "to trust the system bundle and the RDS CAs"
            )
        return configured
    system = system_ca_bundle()
    rds = rds_ca_bundle_path()
    if not rds.is_file():
        raise ConfigurationError(
            f"the RDS CA bundle is missing from the layer (expected at {rds}); rebuild the layer from a "
            f"checkout that has layers/rotation_core/certs/{RDS_CA_BUNDLE_NAME}, or set DB_CA_BUNDLE to a PEM "
            "bundle holding the database's CA"
        )
    return combined_bundle(system, str(rds))


def combined_bundle(*paths: str) -> str:
    """One PEM file holding the certificates of ``paths``, in order.

    The file is created once per process and content (mode 0600, a fresh unpredictable name in the
    temporary directory, /tmp on Lambda) and reused while it exists.
    """
    content = b"".join(_ending_in_newline(_read_bundle(path)) for path in paths)
    digest = hashlib.sha256(content).hexdigest()
    with _combined_lock:
        known = _combined_bundles.get(digest)
        if known is not None and os.path.isfile(known):
            return known
        path = _write_private_file(content, prefix=f"{COMBINED_BUNDLE_PREFIX}{digest[:16]}-")
        _combined_bundles[digest] = path
        return path


def _read_bundle(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ConfigurationError(
            f"could not read the CA bundle {path} ({error.strerror or type(error).__name__}); set DB_CA_BUNDLE "
            "to a readable PEM bundle holding the database's CA"
        ) from None


def _ending_in_newline(pem: bytes) -> bytes:
    return pem if pem.endswith(b"\n") else pem + b"\n"


def _write_private_file(content: bytes, *, prefix: str) -> str:
    # mkstemp creates the file exclusively (no symlink or pre-created file is followed) with mode 0600.
    directory = tempfile.gettempdir()
    try:
        handle, path = tempfile.mkstemp(prefix=prefix, suffix=".pem", dir=directory)
    except OSError as error:
        raise ConfigurationError(
            f"could not create the combined CA bundle in {directory} ({error.strerror or type(error).__name__}); "
            "free space there, or set DB_CA_BUNDLE to one PEM file holding every CA the database may use"
        ) from None
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
    except OSError as error:
        Path(path).unlink(missing_ok=True)
        raise ConfigurationError(
            f"could not write the combined CA bundle {path} ({error.strerror or type(error).__name__}); free "
            "space there, or set DB_CA_BUNDLE to one PEM file holding every CA the database may use"
        ) from None
    return path
