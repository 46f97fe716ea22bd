"""The consumer benchmark: what applications see while a secret rotates, per engine, strategy and server kind.

For every local database target, every server kind it runs (TLS on, verify-full) and every strategy the kind
supports (``rotation_local.targets``), ``rotation_local.consumers`` runs N consumers
(``examples/refresh_on_rotation.py``) and a prober while R rotations run through our function with a gap between
the service's step invocations. Single user also runs through AWS's single-user function as
``tests/integration/aws_functions.py`` emulates it (its documented behaviour, not its code; PostgreSQL and MariaDB
only, the kinds that emulation covers).
Writes ``bench/results/consumers.json``; nothing here asserts anything.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from rotation_core.registry import ZERO_DOWNTIME_STRATEGIES
from rotation_core.settings import Strategy
from rotation_local import emulator
from rotation_local.consumers import LoadSettings, StepRunner, function_steps, run_under_load
from rotation_local.invoke import load_function
from rotation_local.server_kinds import MARIADB, POSTGRESQL, ServerKind, start_server, unavailable_reason
from rotation_local.targets import DatabaseTarget, database_targets
from rotation_local.tls import LocalCA

REPO = Path(__file__).resolve().parents[1]
AWS_FUNCTIONS = REPO / "tests" / "integration" / "aws_functions.py"
#: Server flavours whose AWS single-user function the emulation drives (it sends MariaDB's native hashes).
AWS_FLAVOURS = frozenset({POSTGRESQL, MARIADB})
_AWS_STEPS = {"createSecret": "create_secret", "setSecret": "set_secret", "testSecret": "test_secret",
              "finishSecret": "finish_secret"}  # fmt: skip


class _Passwords:
    """Stands in for the tests' leak guard where the emulation registers the passwords it makes."""

    def add(self, *values: str) -> None:
        """Nothing to search here: the benchmark prints no secret value."""


def _aws_functions() -> ModuleType:
    spec = importlib.util.spec_from_file_location("aws_functions", AWS_FUNCTIONS)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {AWS_FUNCTIONS}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up while it is being defined
    spec.loader.exec_module(module)
    return module


def _configurations(target: DatabaseTarget, kind: ServerKind) -> list[tuple[str, str]]:
    """(function, strategy) of every run on this kind: ours per strategy, AWS's single user."""
    runs: list[tuple[str, str]] = []
    for strategy in target.strategies(kind):
        runs.append(("ours", strategy.value))
        if strategy is Strategy.SINGLE_USER and kind.flavour in AWS_FLAVOURS:
            runs.append(("aws", strategy.value))
    return runs


def _new_secret(target: DatabaseTarget, server: Any, client: Any, strategy: Strategy) -> str:
    name = f"cons_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(24)
    target.create_login(server, name, password, database=name, **target.login_options(strategy))
    value = target.secret(server, name, password, dbname=name)
    if strategy is Strategy.ALTERNATING_USERS:
        master, master_password = f"consm_{secrets.token_hex(4)}", secrets.token_urlsafe(24)
        target.create_master(server, master, master_password)
        target.allow_master(server, master, name)
        master_value = target.secret(server, master, master_password)
        value["masterarn"] = client.create_secret(Name=master, SecretString=json.dumps(master_value))["ARN"]
    arn: str = client.create_secret(Name=name, SecretString=json.dumps(value))["ARN"]
    target.secret_created(server, value, arn)  # a managed user's tag naming the secret (Valkey)
    emulator.enable_rotation(arn)
    return arn


def _steps(function: str, strategy: Strategy, where: _Where) -> StepRunner:
    target = where.target
    if function == "aws":
        aws = _aws_functions().AwsRotationFunction(
            target, where.server, where.client, where.ca_bundle, _Passwords(), alternating=False
        )

        def run(step: str, arn: str, token: str) -> None:
            getattr(aws, _AWS_STEPS[step])(arn, token)

        return run
    os.environ["ROTATION_STRATEGY"] = strategy.value
    return function_steps(load_function(target.engine))  # settings are read on its first step, from this env


@dataclass(frozen=True)
class _Where:
    """The server a configuration runs on, and the emulator's client and CA bundle."""

    target: DatabaseTarget
    server: Any
    client: Any
    ca_bundle: Path


def _run_kind(
    engine: str,
    kind: ServerKind,
    where: _Where,
    settings: LoadSettings,
    *,
    endpoint_url: str,
    say: Callable[[str], None],
    runs: Callable[[str, str], bool],
) -> list[dict[str, Any]]:
    rows = []
    for function, strategy_name in _configurations(where.target, kind):
        if not runs(function, strategy_name):
            continue
        strategy = Strategy(strategy_name)
        arn = _new_secret(where.target, where.server, where.client, strategy)
        steps = _steps(function, strategy, where)
        result = run_under_load(
            secret_id=arn, endpoint_url=endpoint_url, ca_bundle=str(where.ca_bundle), run_step=steps, settings=settings
        )
        row = {
            "engine": engine,
            "kind": kind.name,
            "version": where.server.version,
            "strategy": strategy_name,
            "function": function,
            "zero_downtime": strategy in ZERO_DOWNTIME_STRATEGIES,
            **result.as_dict(),
        }
        rows.append(row)
        say(
            f"  {kind.name} {function} {strategy_name}: {row['requests']} requests, {row['visible']} "
            f"visible, {row['absorbed']} absorbed, longest window {row['longest_window_ms']:.0f} ms, "
            f"{row['completed']}/{row['rotations']} rotations"
        )
    return rows


def measure_consumers(
    settings: LoadSettings,
    *,
    kinds: Callable[[ServerKind], bool] = lambda _kind: True,
    runs: Callable[[str, str], bool] = lambda _function, _strategy: True,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Every configuration on every selected kind; the report written to bench/results/consumers.json."""
    rows: list[dict[str, Any]] = []
    sm = emulator.EmulatorServer().start()
    os.environ.update({"AWS_ENDPOINT_URL_SECRETSMANAGER": sm.endpoint_url, "AWS_ENDPOINT_URL": sm.endpoint_url,
                       "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": emulator.DEFAULT_REGION})  # fmt: skip
    try:
        with tempfile.TemporaryDirectory(prefix="bench-consumers-") as scratch:
            ca = LocalCA.create(Path(scratch))
            os.environ["DB_CA_BUNDLE"] = str(ca.bundle_path)
            client = sm.client()
            for engine, target in database_targets().items():
                for kind in target.kinds:
                    if not kinds(kind):
                        continue
                    unavailable = unavailable_reason(kind)
                    if unavailable is not None:
                        say(f"  {kind.name}: skipped ({unavailable})")
                        continue
                    server = start_server(kind, tls=ca.server_material(), log_statements=False)
                    try:
                        where = _Where(target, server, client, ca.bundle_path)
                        rows += _run_kind(
                            engine, kind, where, settings, endpoint_url=sm.endpoint_url, say=say, runs=runs
                        )
                    finally:
                        server.stop()
    finally:
        sm.stop()
    return {
        "machine": {"python": sys.version.split()[0], "cpus": os.cpu_count()},
        "settings": asdict(settings),
        "rows": rows,
    }
