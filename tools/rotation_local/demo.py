"""The local end-to-end run: real rotations, no AWS account, no Docker.

For each target — a throwaway server of every local database target (``rotation_local.targets``: the
host's PostgreSQL and MariaDB, TLS on with a CA made for the run, so the default ``verify-full`` is
exercised) and a fake Datadog API — it emulates Secrets Manager, plays the
service's side of ``RotateSecret`` and invokes the function's handler for each step in its own
process. Before the first rotation it runs the function's preflight of the secret (every check passes);
after the first database target's rotations, the preflight of a second secret whose password was
changed outside Secrets Manager (its login check fails, with what to do). It prints versions and
labels, which credentials work afterwards, and a leak check of every line the functions printed;
never a secret value.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rotation_local import emulator, service
from rotation_local.invoke import REPO_ROOT, Invocation, invoke
from rotation_local.preflight import run_preflight
from rotation_local.server_kinds import ServerKind, start_server
from rotation_local.targets import database_target, database_targets
from rotation_local.tls import LocalCA

API_KEY = "api_key"
ENGINES = (*database_targets(), API_KEY)  # every local database target, then the fake API
APP_USER = "app_user"
MASTER_USER = "rotation_master"

Out = Callable[[str], None]


class StepFailedError(Exception):
    pass


class TargetUnavailableError(Exception):
    """The target's server software is not installed; the message says how to get it."""


@dataclass
class DemoSubject:
    """One thing to rotate: how to reach it, which function rotates it, how to check a credential."""

    title: str
    function: str
    env: dict[str, str]
    works: Callable[[Mapping[str, Any]], bool]
    stop: Callable[[], None]
    build_secret: Callable[[str | None], dict[str, Any]]  # given the master/admin secret's ARN, if any
    master_value: dict[str, Any] | None = None
    known_values: list[str] = field(default_factory=list)
    keeps_previous: bool = False  # the previous credential stays valid after a rotation


def demo_server_kind(engine: str) -> ServerKind:
    """The server the demo starts for ``engine``: its target's first kind, the host's own packages."""
    return database_target(engine).kinds[0]


def demo_server_kinds() -> list[ServerKind]:
    """Every server kind the demo starts (what `make demo` must install, and nothing more)."""
    return [demo_server_kind(engine) for engine in database_targets()]


def database_subject(engine: str, strategy: str, scratch: Path) -> DemoSubject:
    """A throwaway server of ``engine``'s first kind (the host's packages), with TLS on, and a login on it."""
    target = database_target(engine)
    kind = demo_server_kind(engine)
    ca = LocalCA.create(scratch)
    try:
        server = start_server(kind, tls=ca.server_material(), log_statements=False)
    except (OSError, RuntimeError) as error:
        raise TargetUnavailableError(str(error)) from None
    initial = secrets.token_urlsafe(24)
    target.create_login(server, APP_USER, initial, database="app")
    value = target.secret(server, APP_USER, initial, dbname="app", team="payments")
    master = None
    if strategy == "alternating_users":
        master_password = secrets.token_urlsafe(24)
        target.create_master(server, MASTER_USER, master_password)
        target.allow_master(server, MASTER_USER, APP_USER)
        master = target.secret(server, MASTER_USER, master_password)
    version = re.match(r"[0-9.]*", server.version.strip())
    # An engine without the asked strategy (Valkey has dual passwords only) runs its first one.
    offered = [s.value for s in target.strategies(kind)]
    chosen = strategy if strategy in offered else offered[0]
    return DemoSubject(
        title=f"{kind.title} {version.group() if version else ''} on 127.0.0.1:{server.port}, TLS verify-full",
        function=engine,
        env={"DB_CA_BUNDLE": str(ca.bundle_path), "ROTATION_STRATEGY": chosen},
        works=lambda secret: target.logs_in(server, secret, ca.bundle_path),
        stop=server.stop,
        build_secret=lambda master_arn: {**value, "masterarn": master_arn} if master_arn else dict(value),
        master_value=master,
        known_values=[server.admin_password],
        keeps_previous=chosen in ("alternating_users", "dual_password"),
    )


def api_key_subject(_strategy: str, scratch: Path) -> DemoSubject:
    from rotation_local.fake_providers import start_fake

    ca = LocalCA.create(scratch)
    fake = start_fake("datadog", ca=ca)
    return DemoSubject(
        title=f"a fake Datadog API on {fake.base_url}, TLS verified (old keys revoked one rotation later)",
        function="api_key",
        env={"API_VERIFY_DELAY": "0", "API_CA_BUNDLE": str(ca.bundle_path)},
        works=lambda secret: fake.is_valid(str(secret["api_key"])),
        stop=fake.stop,
        build_secret=lambda admin_arn: fake.seed_secret(str(admin_arn)),
        master_value=fake.admin_secret(),
        known_values=fake.admin_values(),
        keeps_previous=True,
    )


def demo_subject(engine: str, strategy: str, scratch: Path) -> DemoSubject:
    if engine == API_KEY:
        return api_key_subject(strategy, scratch)
    return database_subject(engine, strategy, scratch)


def _short(version_id: str) -> str:
    return version_id[:8]


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


def run(
    engines: tuple[str, ...] = ENGINES,
    strategy: str = "single_user",
    rotations: int = 2,
    python: str | None = None,
    out: Out = print,
) -> int:
    """Run the demo; returns a process exit code (0 when every rotation and check passed)."""
    import tempfile

    sm_server = emulator.EmulatorServer().start()
    client = sm_server.client()
    output_seen: list[str] = []
    known: list[str] = []
    failed = False
    failing_shown = False
    try:
        out(f"Secrets Manager emulator at {sm_server.endpoint_url}; secret values are never printed")
        for engine in engines:
            with tempfile.TemporaryDirectory(prefix="rotation-demo-") as scratch:
                try:
                    target = demo_subject(engine, strategy, Path(scratch))
                except TargetUnavailableError as error:
                    out(f"\n== {engine}: skipped, its server is not installed here: {error}")
                    continue
                try:
                    show_failing = not failing_shown and engine != API_KEY
                    ok = _rotate_target(
                        target, client, endpoint_url=sm_server.endpoint_url, strategy=strategy,
                        rotations=rotations, python=python, out=out, output_seen=output_seen,
                        show_failing_preflight=show_failing,
                    )  # fmt: skip
                    failing_shown = failing_shown or show_failing
                    failed = failed or not ok
                finally:
                    known.extend(target.known_values)
                    target.stop()
        for text in emulator.all_secret_strings():
            value = json.loads(text)
            known.extend(str(v) for k, v in value.items() if k in {"password", "api_key", "app_key"})
        seen = "\n".join(output_seen)
        leaks = sum(1 for value in known if value in seen)
        lines = sum(text.count("\n") for text in output_seen)
        out(f"\nLeak check: {len(known)} secret values searched for in {lines} lines of function output: {leaks} found")
        return 1 if failed or leaks else 0
    finally:
        sm_server.stop()


def _rotate_target(
    target: DemoSubject,
    client: Any,
    *,
    endpoint_url: str,
    strategy: str,
    rotations: int,
    python: str | None,
    out: Out,
    output_seen: list[str],
    show_failing_preflight: bool = False,
) -> bool:
    run_id = secrets.token_hex(3)
    strategy_text = strategy if target.function != API_KEY else "API key generations"
    out(f"\n== {target.function}: {target.title}\n   strategy: {strategy_text}")
    master_arn = None
    if target.master_value is not None:
        label = "admin" if target.function == API_KEY else "master"
        master_arn = client.create_secret(
            Name=f"demo/{target.function}/{label}-{run_id}", SecretString=json.dumps(target.master_value)
        )["ARN"]
    value = target.build_secret(master_arn)
    arn = client.create_secret(Name=f"demo/{target.function}/app-{run_id}", SecretString=json.dumps(value))["ARN"]
    function_name = f"demo-{target.function.replace('_', '-')}-rotation"
    emulator.enable_rotation(arn, lambda_arn=emulator.function_arn(function_name))
    out(f"   secret {arn}, rotation function {function_name}")
    env = {
        "AWS_ENDPOINT_URL_SECRETSMANAGER": endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": emulator.DEFAULT_REGION,
        "ROTATION_STRATEGY": strategy,
        "POWERTOOLS_LOG_LEVEL": "INFO",
        **target.env,
    }
    function_dir = REPO_ROOT / "functions" / target.function
    failures: list[Invocation] = []

    def preflight(secret_arn: str, *, expect_ok: bool) -> bool:
        """The function's preflight of ``secret_arn``; True when its outcome is the one expected."""
        started = time.perf_counter()
        result = run_preflight(function_dir, secret_arn, env=env, function_name=function_name, python=python)
        output_seen.extend([result.stdout, result.stderr, json.dumps(result.result)])
        report = result.result if isinstance(result.result, dict) else {}
        checks = report.get("checks", [])
        failed = [check for check in checks if check["status"] == "failed"]
        status = "ok" if report.get("ok") else ("FAILED" if report else f"ERROR ({result.error_type})")
        out(f"  {'preflight':<13} {status:<8} {time.perf_counter() - started:5.2f} s  ({len(checks)} checks, "
            f"{len(failed)} failed; nothing is changed)")  # fmt: skip
        for check in checks:
            if check["status"] != "ok":
                out(f"      {check['status']}: {check['name']} ({check['category']})")
        for check in failed:
            out(f"      fix: {check['fix']}")
        return bool(report) and bool(report.get("ok")) is expect_ok

    def run_step(step_event: Mapping[str, Any]) -> None:
        started = time.perf_counter()
        result = invoke(function_dir, step_event, env=env, python=python, function_name=function_name)
        output_seen.extend([result.stdout, result.stderr, result.error_message or ""])
        status = "ok" if result.ok else f"FAILED ({result.error_type})"
        out(f"  {step_event['Step']:<13} {status:<8} {time.perf_counter() - started:5.2f} s")
        for message in _log_messages(result):
            if not message.endswith("step complete"):
                out(f"      {message}")
        if not result.ok:
            failures.append(result)
            raise StepFailedError

    out(" Preflight: what the first rotation will need, checked by the function itself")
    if not preflight(arn, expect_ok=True):
        return False
    history: list[dict[str, Any]] = [value]
    for number in range(1, rotations + 1):
        before = emulator.version_stages(arn)
        token = emulator.stage_pending_placeholder(arn)
        out(f" Rotation {number}: RotateSecret staged AWSPENDING on new version {_short(token)} (no value yet)")
        try:
            service.rotate(arn, run_step, token=token)
        except StepFailedError:
            out(f"      error: {failures[-1].error_message}")
            return False
        after = emulator.version_stages(arn)
        out("  versions (before -> after):")
        for version_id in sorted(after, key=lambda v: (v != token, v)):
            was = ",".join(before.get(version_id, [])) or "-"
            now = ",".join(after[version_id]) or "(no label)"
            out(f"    {_short(version_id)}  {was:<12} -> {now}")
        new = json.loads(client.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])
        history.append(new)
        if not _report(target, history, out):
            return False
    if show_failing_preflight:
        # A second secret for the same user, holding a password the database never had (as after a change made
        # outside Secrets Manager): the preflight says so before any rotation would fail on it.
        stale = {**history[-1], "password": secrets.token_urlsafe(24)}
        stale_arn = client.create_secret(Name=f"demo/{target.function}/stale-{run_id}", SecretString=json.dumps(stale))[
            "ARN"
        ]
        emulator.enable_rotation(stale_arn, lambda_arn=emulator.function_arn(function_name))
        out(f"\n Preflight of {stale_arn}, whose password was changed outside Secrets Manager (it must fail):")
        if not preflight(stale_arn, expect_ok=False):
            return False
    return True


def _report(target: DemoSubject, history: list[dict[str, Any]], out: Out) -> bool:
    """Print which credentials work now; True when that is what the strategy promises."""
    new, old = history[-1], history[-2]
    who = f"as {new['username']} " if "username" in new else ""
    new_ok, old_ok = target.works(new), target.works(old)
    out(f"  new AWSCURRENT {who}works: {'yes' if new_ok else 'NO'}")
    if target.keeps_previous:
        out(f"  previous credentials still work (kept until the next rotation): {'yes' if old_ok else 'NO'}")
        passed = new_ok and old_ok
        if target.function == API_KEY and len(history) >= 3:
            older_ok = target.works(history[-3])
            out(f"  key from two generations ago revoked: {'yes' if not older_ok else 'NO'}")
            passed = passed and not older_ok
    else:
        out(f"  old password refused: {'yes' if not old_ok else 'NO'}")
        passed = new_ok and not old_ok
    kept = sorted(k for k, v in new.items() if old.get(k) == v and k not in {"password", "username"})
    out(f"  other keys kept: {', '.join(kept)}")
    return passed
