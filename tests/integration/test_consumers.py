"""Applications using a secret while it rotates: zero consumer-visible failures where a strategy promises it.

Consumers built from ``examples/refresh_on_rotation.py`` (a cached secret; half the requests on new connections,
half on a pooled one; an authentication failure refreshes the secret and retries once) run against a real server
while the function rotates the secret several times through the emulator (``rotation_local.consumers``). On
every server kind and every strategy that promises zero downtime (``ZERO_DOWNTIME_STRATEGIES``: alternating users
everywhere, dual passwords on MySQL 9.7) no request may fail after its retry and no fresh AWSCURRENT may be refused.
Counts only: how long anything took is the benchmark's business (``make bench``).
"""

from __future__ import annotations

from typing import Any

import pytest

from integration.support import DatabaseSetup, create_account, unique
from rotation_core.registry import ZERO_DOWNTIME_STRATEGIES
from rotation_core.settings import Strategy
from rotation_local import emulator
from rotation_local.consumers import LoadSettings, function_steps, run_under_load

SETTINGS = LoadSettings(consumers=4, rotations=3, step_gap=0.2, settle=0.5)


@pytest.mark.strategies(*sorted(strategy.value for strategy in ZERO_DOWNTIME_STRATEGIES))
def test_consumers_zero_downtime_strategy_no_visible_failure_no_refused_fresh_login(
    db: DatabaseSetup, db_strategy: str, db_function: Any, sm_server: emulator.EmulatorServer
) -> None:
    strategy = Strategy(db_strategy)
    account = create_account(
        db.target, db.server, db.sm_client, db.leak_guard, username=unique("cons")[:16],
        master_username=unique("cm")[:16], with_master=strategy is Strategy.ALTERNATING_USERS,
        login_options=db.target.login_options(strategy),
    )  # fmt: skip
    app = db_function(ROTATION_STRATEGY=db_strategy)

    result = run_under_load(
        secret_id=account.arn, endpoint_url=sm_server.endpoint_url, ca_bundle=str(db.ca_bundle),
        run_step=function_steps(app), settings=SETTINGS,
    )  # fmt: skip

    counts = result.counts
    assert result.errors == []
    assert result.completed == result.rotations == SETTINGS.rotations
    assert counts.new_connection > 0
    assert counts.pooled > 0
    assert counts.visible == 0, result.as_dict()
    assert counts.other_errors == 0, result.as_dict()
    assert result.probes > 0
    assert result.refused_probes == 0, result.as_dict()
    assert result.probe_errors == 0
