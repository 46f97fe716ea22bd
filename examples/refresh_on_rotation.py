"""How an application picks up a rotated secret without a restart.

Two complementary habits, both shown here:

1. Cache the secret for a short time only (Powertools ``max_age``), so a new AWSCURRENT value is seen
   within minutes, without calling Secrets Manager on every request.
2. When the database (or API) rejects the cached credentials, fetch the secret again, bypassing the
   cache (``force_fetch``), and retry once. Right after a rotation this is what makes the switch
   immediate; an alternating-users rotation keeps the old user valid, so mostly (1) is enough.

Run it against a real secret (prints the username and never the password)::

    python examples/refresh_on_rotation.py <secret-id> [max-age-seconds]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.parameters import SecretsProvider

T = TypeVar("T")
DEFAULT_MAX_AGE = 300  # seconds; well below the shortest rotation interval


class RotatingSecret:
    """A JSON secret read through a short-lived cache."""

    def __init__(self, secret_id: str, *, max_age: int = DEFAULT_MAX_AGE, provider: SecretsProvider | None = None):
        self.secret_id = secret_id
        self.max_age = max_age
        self._provider = provider or SecretsProvider()

    def get(self, *, refresh: bool = False) -> dict[str, Any]:
        """The secret's AWSCURRENT value; ``refresh=True`` skips the cache (after an auth failure)."""
        value = self._provider.get(self.secret_id, max_age=self.max_age, transform="json", force_fetch=refresh)
        if not isinstance(value, dict):
            raise TypeError(f"secret {self.secret_id} does not hold a JSON object")
        return value


def call_with_fresh_credentials(
    secret: RotatingSecret,
    use: Callable[[dict[str, Any]], T],
    *,
    is_auth_failure: Callable[[Exception], bool],
) -> T:
    """``use(credentials)``; on an authentication failure, fetch the secret again and retry once."""
    try:
        return use(secret.get())
    except Exception as error:
        if not is_auth_failure(error):
            raise
    return use(secret.get(refresh=True))


def main(argv: list[str]) -> int:
    if len(argv) not in {2, 3}:
        print(__doc__)
        return 2
    secret = RotatingSecret(argv[1], max_age=int(argv[2]) if len(argv) == 3 else DEFAULT_MAX_AGE)
    while True:
        print(f"username={secret.get().get('username')!r} (cached for up to {secret.max_age}s)", flush=True)
        time.sleep(10)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
