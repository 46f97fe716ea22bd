"""The local end-to-end run: real rotations of a throwaway PostgreSQL user, no AWS account, no Docker.

It starts PostgreSQL on 127.0.0.1 with TLS (a CA made for the run, so the default ``verify-full``
is exercised), emulates Secrets Manager, plays the service's side of ``RotateSecret`` and invokes
the PostgreSQL function's handler for each step in its own process. It prints versions and labels,
which logins work afterwards, and a leak check of every log line; never a secret value.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rotation_local import emulator, service
from rotation_local.invoke import REPO_ROOT, Invocation, invoke
from rotation_local.postgres_server import PostgresServer

POSTGRES_FUNCTION = REPO_ROOT / "functions" / "postgres"
APP_USER = "app_user"
MASTER_USER = "rotation_master"


class StepFailedError(Exception):
    pass


def _short(version_id: str) -> str:
    return version_id[:8]


def _login_works(server: PostgresServer, ca_path: Path, username: str, password: str) -> bool:
    import psycopg2

    try:
        psycopg2.connect(
            host="127.0.0.1", port=server.port, user=username, password=password, dbname="postgres",
            sslmode="verify-full", sslrootcert=str(ca_path), connect_timeout=5,
        ).close()  # fmt: skip
    except psycopg2.OperationalError:
        return False
    return True


def _log_messages(invocation: Invocation) -> list[str]:
    messages = []
    for line in invocation.stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            messages.append(line)
            continue
        if isinstance(record, dict) and "message" in record:
            messages.append(f"{record.get('level', '?')}: {record['message']}")
    return messages


def run(strategy: str = "single_user", rotations: int = 2, python: str | None = None,
        out: Callable[[str], None] = print) -> int:  # fmt: skip
    """Run the demo; returns a process exit code (0 when every rotation and check passed)."""
    import boto3
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    out("Starting a throwaway PostgreSQL server on 127.0.0.1 (TLS on, certificate from a CA made for this run)")
    server = PostgresServer.start(
        tls_cert_pem=b"".join(blob.bytes() for blob in cert.cert_chain_pems),
        tls_key_pem=cert.private_key_pem.bytes(),
    )
    sm_server = emulator.EmulatorServer().start()
    output_seen: list[str] = []
    try:
        ca_path = server.workdir / "demo-ca.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        version = server.version.split()[0]
        out(f"  PostgreSQL {version} on port {server.port}; Secrets Manager emulator at {sm_server.endpoint_url}")
        client = boto3.client(
            "secretsmanager", endpoint_url=sm_server.endpoint_url, region_name=emulator.DEFAULT_REGION,
            aws_access_key_id="testing", aws_secret_access_key="testing",  # noqa: S106 (emulator)
        )  # fmt: skip
        run_id = secrets.token_hex(3)
        initial = secrets.token_urlsafe(24)
        server.create_login(APP_USER, initial)
        server.execute(f"CREATE DATABASE app OWNER {APP_USER}")
        value: dict[str, Any] = {
            "engine": "postgres", "host": "127.0.0.1", "port": server.port, "username": APP_USER,
            "password": initial, "dbname": "app", "team": "payments",
        }  # fmt: skip
        if strategy == "alternating_users":
            master_password = secrets.token_urlsafe(24)
            server.create_login(MASTER_USER, master_password, "CREATEROLE")
            server.execute(f"GRANT {APP_USER} TO {MASTER_USER} WITH ADMIN OPTION")
            master = client.create_secret(
                Name=f"demo/postgres/master-{run_id}",
                SecretString=json.dumps({**value, "username": MASTER_USER, "password": master_password}),
            )
            value["masterarn"] = master["ARN"]
        arn = client.create_secret(Name=f"demo/postgres/{APP_USER}-{run_id}", SecretString=json.dumps(value))["ARN"]
        emulator.enable_rotation(arn)
        out(f"  Secret {arn}\n  Strategy {strategy} (ROTATION_STRATEGY); secret values are never printed\n")

        env = {
            "AWS_ENDPOINT_URL_SECRETSMANAGER": sm_server.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": emulator.DEFAULT_REGION,
            "DB_CA_BUNDLE": str(ca_path),
            "ROTATION_STRATEGY": strategy,
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
        failures: list[Invocation] = []

        def run_step(step_event: Mapping[str, Any]) -> None:
            started = time.perf_counter()
            result = invoke(POSTGRES_FUNCTION, step_event, env=env, python=python)
            output_seen.extend([result.stdout, result.stderr, result.error_message or ""])
            status = "ok" if result.ok else f"FAILED ({result.error_type})"
            out(f"  {step_event['Step']:<13} {status:<8} {time.perf_counter() - started:5.2f} s")
            for message in _log_messages(result):
                out(f"      {message}")
            if not result.ok:
                failures.append(result)
                raise StepFailedError

        for number in range(1, rotations + 1):
            before = emulator.version_stages(arn)
            old = client.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")
            old_value = json.loads(old["SecretString"])
            token = emulator.stage_pending_placeholder(arn)
            out(f"Rotation {number}: RotateSecret staged AWSPENDING on new version {_short(token)} (no value yet)")
            try:
                service.rotate(arn, run_step, token=token)
            except StepFailedError:
                out(f"      error: {failures[-1].error_message}")
                return 1
            after = emulator.version_stages(arn)
            out("  versions (before -> after):")
            for version_id in sorted(after, key=lambda v: (v != token, v)):
                was = ",".join(before.get(version_id, [])) or "-"
                now = ",".join(after[version_id]) or "(no label)"
                out(f"    {_short(version_id)}  {was:<12} -> {now}")
            new_value = json.loads(client.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])
            new_ok = _login_works(server, ca_path, new_value["username"], new_value["password"])
            old_ok = _login_works(server, ca_path, old_value["username"], old_value["password"])
            kept = sorted(set(new_value) - {"password", "username"})
            out(f"  login as {new_value['username']} with the new AWSCURRENT password (verify-full TLS): "
                f"{'accepted' if new_ok else 'REFUSED'}")  # fmt: skip
            if strategy == "single_user":
                out(f"  login with the old password: {'ACCEPTED' if old_ok else 'refused'}")
                passed = new_ok and not old_ok
            else:
                out(f"  login as {old_value['username']} (the previous user, kept until the next rotation): "
                    f"{'still works' if old_ok else 'REFUSED'}")  # fmt: skip
                passed = new_ok and old_ok
            out(f"  other keys kept: {', '.join(kept)}\n")
            if not passed:
                return 1

        known = [server.admin_password]
        for text in emulator.all_secret_strings():
            known.extend(v for k, v in json.loads(text).items() if k == "password")
        seen = "\n".join(output_seen)
        leaks = sum(1 for value in known if value in seen)
        lines = sum(text.count("\n") for text in output_seen)
        out(f"Leak check: {len(known)} passwords searched for in {lines} lines of function output: {leaks} found")
        return 0 if leaks == 0 else 1
    finally:
        sm_server.stop()
        server.stop()
