"""PostgreSQL rotations end to end: the real function module, a real server, Secrets Manager over HTTP."""

from __future__ import annotations

from typing import Any

import psycopg2

from integration.conftest import rotate, secret_at, stages
from rotation_local.postgres_server import PostgresServer


def can_login(server: PostgresServer, ca_bundle: Any, secret: dict[str, Any]) -> bool:
    try:
        psycopg2.connect(
            host="127.0.0.1",
            port=server.port,
            user=secret["username"],
            password=secret["password"],
            dbname=secret["dbname"],
            sslmode="verify-full",
            sslrootcert=str(ca_bundle),
        ).close()
    except psycopg2.OperationalError:
        return False
    return True


def test_postgres_single_user_rotation_new_password_works_old_refused(
    pg_server: PostgresServer, sm_client: Any, pg_account: Any, postgres_function: Any, ca_bundle: Any
) -> None:
    account = pg_account()
    old = secret_at(sm_client, account.arn, "AWSCURRENT")

    token = rotate(postgres_function(), account.arn)

    new = secret_at(sm_client, account.arn, "AWSCURRENT")
    assert stages(sm_client, account.arn)[token] == ["AWSCURRENT"]
    assert secret_at(sm_client, account.arn, "AWSPREVIOUS") == old
    assert new["password"] != old["password"]
    assert {k: v for k, v in new.items() if k != "password"} == {k: v for k, v in old.items() if k != "password"}
    assert can_login(pg_server, ca_bundle, new)
    assert not can_login(pg_server, ca_bundle, old)
