"""Where the CA bundle for database TLS verification comes from."""

from __future__ import annotations

import os

from rotation_core.errors import ConfigurationError

# The Lambda runtime (Amazon Linux 2023) first, then Debian/Ubuntu, then other common places.
SYSTEM_CA_BUNDLES = (
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/cert.pem",
)


def resolve_ca_bundle(configured: str | None) -> str:
    """The CA bundle to verify database certificates with.

    ``configured`` is ``DB_CA_BUNDLE``; without it, the runtime's system bundle.
    """
    if configured:
        if not os.path.isfile(configured):
            raise ConfigurationError(
                "DB_CA_BUNDLE names a file that does not exist; point it at a PEM bundle shipped with "
                "the function or layer (e.g. /opt/python/certs/rds-global-bundle.pem)"
            )
        return configured
    for path in SYSTEM_CA_BUNDLES:
        if os.path.isfile(path):
            return path
    raise ConfigurationError("no system CA bundle was found; set DB_CA_BUNDLE to a PEM bundle")
