"""How an application keeps using a database whose password rotates, without a restart (docs/consumers.md).

Three habits, all shown here and all used by the consumer benchmark (``make bench``) and its integration test:

1. Cache the secret for a short time only (Powertools ``max_age``), so a new AWSCURRENT value is seen
   within minutes, without calling Secrets Manager on every request.
2. When the database rejects the cached credentials, fetch the secret again, bypassing the cache
   (``force_fetch``), and retry once (:func:`call_with_fresh_credentials`). Right after a rotation this is what
   makes the switch immediate.
3. Keep pooled connections: no server drops a session when its user's password changes, so a pooled connection
   keeps working through a rotation; it is reopened (with the same refresh-and-retry) only when it breaks.

With alternating users or dual passwords the credentials an application holds stay valid until the next rotation,
so habit 1 alone is enough. With a single user there is a window, from setSecret changing the password to
finishSecret promoting it, in which the refreshed AWSCURRENT is still the old password: a new connection opened
then fails even after the retry (docs/consumers.md has the measured figures).

Run it against a real secret (prints the username and whether a query worked; never the password)::

    python examples/refresh_on_rotation.py <secret-id> [max-age-seconds] [ca-bundle.pem]
"""

from __future__ import annotations

import contextlib
import ssl
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.parameters import SecretsProvider

T = TypeVar("T")
DEFAULT_MAX_AGE = 300  # seconds; well below the shortest rotation interval
CONNECT_TIMEOUT = 5
POSTGRES_ENGINES = frozenset({"postgres", "aurora-postgresql"})
MYSQL_ENGINES = frozenset({"mysql", "aurora-mysql", "mariadb"})
VALKEY_ENGINES = frozenset({"valkey", "redis"})  # and secrets naming an ElastiCache/MemoryDB user ("user_arn")
_MYSQL_ACCESS_DENIED = 1045


class RotatingSecret:
    """A JSON secret read through a short-lived cache."""

    def __init__(self, secret_id: str, *, max_age: int = DEFAULT_MAX_AGE, provider: SecretsProvider | None = None):
        self.secret_id = secret_id
        self.max_age = max_age
        self._provider = provider or SecretsProvider()

    def get(self, *, refresh: bool = False) -> dict[str, Any]:
        """The secret's AWSCURRENT value; ``refresh=True`` skips the cache (after an auth failure)."""
        # AWSCURRENT is AWS's default, named anyway: moto (the local emulator) would answer with its first version.
        value = self._provider.get(
            self.secret_id, max_age=self.max_age, transform="json", force_fetch=refresh, VersionStage="AWSCURRENT"
        )
        if not isinstance(value, dict):
            raise TypeError(f"secret {self.secret_id} does not hold a JSON object")
        return value


def call_with_fresh_credentials(
    secret: RotatingSecret,
    use: Callable[[dict[str, Any]], T],
    *,
    is_auth_failure: Callable[[Exception], bool],
    on_refresh: Callable[[], None] | None = None,
) -> T:
    """``use(credentials)``; on an authentication failure, fetch the secret again and retry once."""
    try:
        return use(secret.get())
    except Exception as error:
        if not is_auth_failure(error):
            raise
    if on_refresh is not None:
        on_refresh()
    return use(secret.get(refresh=True))


def connect(credentials: Mapping[str, Any], *, ca_bundle: str | None = None) -> Any:
    """A DB-API connection with the secret's fields: TLS verified (``ca_bundle``: e.g. the RDS CA bundle) unless the
    secret says ``"ssl": false``."""
    engine = str(credentials.get("engine", "postgres"))  # AWS's ElastiCache secrets name no engine, a "user_arn"
    tls = credentials.get("ssl", True) not in (False, "false")
    if engine in VALKEY_ENGINES or "user_arn" in credentials:
        import redis

        return redis.Redis(
            host=credentials["host"], port=int(credentials.get("port", 6379)), username=credentials["username"],
            password=credentials["password"], ssl=tls, ssl_ca_certs=ca_bundle if tls else None,
            socket_connect_timeout=CONNECT_TIMEOUT, single_connection_client=True,  # connects (and AUTHs) here
        )  # fmt: skip
    if engine in POSTGRES_ENGINES:
        import psycopg2

        options: dict[str, Any] = (
            {"sslmode": "verify-full", "sslrootcert": ca_bundle} if tls else {"sslmode": "disable"}
        )
        return psycopg2.connect(
            host=credentials["host"], port=int(credentials.get("port", 5432)), user=credentials["username"],
            password=credentials["password"], dbname=credentials.get("dbname") or "postgres",
            connect_timeout=CONNECT_TIMEOUT, **options,
        )  # fmt: skip
    if engine in MYSQL_ENGINES:
        import pymysql

        return pymysql.connect(
            host=credentials["host"], port=int(credentials.get("port", 3306)), user=credentials["username"],
            password=credentials["password"], database=credentials.get("dbname"), autocommit=True,
            ssl=ssl.create_default_context(cafile=ca_bundle) if tls else None, connect_timeout=CONNECT_TIMEOUT,
        )  # fmt: skip
    raise ValueError(f"no driver for the engine {engine!r}")


def is_auth_failure(error: Exception) -> bool:
    """Did the server refuse the user name and password (rather than being unreachable)?"""
    if type(error).__module__.startswith("psycopg2"):
        return "password authentication failed" in str(error)
    if type(error).__module__.startswith("pymysql"):
        return bool(error.args) and error.args[0] == _MYSQL_ACCESS_DENIED
    if type(error).__module__.startswith("redis"):
        return type(error).__name__ == "AuthenticationError"
    return False


class Database:
    """One application's way to a database whose password rotates: new connections and one pooled connection.

    ``refreshes`` counts the authentication failures that made it fetch the secret again.
    """

    def __init__(self, secret: RotatingSecret, *, ca_bundle: str | None = None) -> None:
        self.secret = secret
        self.ca_bundle = ca_bundle
        self.refreshes = 0
        self._pooled: Any = None

    def query_new_connection(self, sql: str = "SELECT 1") -> Any:
        """Open a connection (refreshing the secret and retrying once if the login is refused), query, close."""
        conn = self._open()
        try:
            return _run(conn, sql)
        finally:
            conn.close()

    def query_pooled(self, sql: str = "SELECT 1") -> Any:
        """Query on the pooled connection; one that broke is reopened once, as a new connection is."""
        if self._pooled is None:
            self._pooled = self._open()
        try:
            return _run(self._pooled, sql)
        except Exception:  # noqa: BLE001 (whatever broke the connection, it is reopened once)
            self.close()
        self._pooled = self._open()
        return _run(self._pooled, sql)

    def close(self) -> None:
        if self._pooled is not None:
            with contextlib.suppress(Exception):  # a broken connection may refuse to close; it is dropped anyway
                self._pooled.close()
            self._pooled = None

    def _open(self) -> Any:
        return call_with_fresh_credentials(
            self.secret,
            lambda credentials: connect(credentials, ca_bundle=self.ca_bundle),
            is_auth_failure=is_auth_failure,
            on_refresh=self._count_refresh,
        )

    def _count_refresh(self) -> None:
        self.refreshes += 1


def _run(conn: Any, sql: str) -> Any:
    if not hasattr(conn, "cursor"):  # Valkey/Redis: a PING instead of the query
        return conn.ping()
    with conn.cursor() as cursor:
        cursor.execute(sql)
        row = cursor.fetchone()
    rollback = getattr(conn, "rollback", None)
    if callable(rollback):
        rollback()  # end the read-only transaction psycopg2 opened
    return row


def main(argv: list[str]) -> int:
    if len(argv) not in {2, 3, 4}:
        print(__doc__)
        return 2
    secret = RotatingSecret(argv[1], max_age=int(argv[2]) if len(argv) >= 3 else DEFAULT_MAX_AGE)
    database = Database(secret, ca_bundle=argv[3] if len(argv) == 4 else None)
    while True:
        pooled = database.query_pooled() is not None
        fresh = database.query_new_connection() is not None
        print(
            f"username={secret.get().get('username')!r}: pooled query {pooled}, new connection {fresh} "
            f"(cached for up to {secret.max_age}s; {database.refreshes} refreshes)",
            flush=True,
        )
        time.sleep(10)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
