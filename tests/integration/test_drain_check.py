"""The drain check on every database server kind: a consumer still holding a session on the user an alternating-users
rotation is about to reset shows up in the metric and a warning, and the rotation goes on.

An application logs in with the secret, keeps its connection open and never refreshes; the next rotation makes its
user AWSPREVIOUS, and the one after resets that user's password: its setSecret counts the open session
(``pg_stat_activity``, ``information_schema.PROCESSLIST``), writes ``CredentialStillInUse`` and warns. A rotation
with nobody left on that user writes 0 and no warning.
"""

from __future__ import annotations

from typing import Any

import pytest

from helpers import emf_documents, lambda_context, log_records
from integration.support import DatabaseSetup, create_account, secret_at, unique
from rotation_local import service
from rotation_local.targets import ClientTls

# Alternating users only: the kinds whose engine offers it (not Valkey/Redis).
pytestmark = pytest.mark.strategies("alternating_users")


def in_use(documents: list[dict[str, Any]]) -> list[Any]:
    return [d["CredentialStillInUse"][0] for d in documents if "CredentialStillInUse" in d]


def test_drain_check_session_held_on_user_being_reset_counted_in_metric_and_warning(
    db: DatabaseSetup, db_function: Any, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METRICS_DEPLOYMENT", "rotation-stack")
    account = create_account(
        db.target, db.server, db.sm_client, db.leak_guard, username=unique("drain")[:16],
        master_username=unique("dm")[:16], with_master=True,
    )  # fmt: skip
    app = db_function(ROTATION_STRATEGY="alternating_users")
    context = lambda_context("rotation-fn")

    def rotate(app: Any, arn: str) -> None:
        service.rotate(arn, lambda event: app.lambda_handler(dict(event), context))

    held = db.target.connect(db.server, secret_at(db.sm_client, account.arn, "AWSCURRENT"), ClientTls(db.ca_bundle))
    try:
        rotate(app, account.arn)  # the clone becomes AWSCURRENT; the application stays on the original user
        capfd.readouterr()

        rotate(app, account.arn)  # resets the original user's password: its session is counted first
        out = capfd.readouterr().out
    finally:
        held.close()
    rotate(app, account.arn)  # the clone's turn: nobody holds a session on it
    quiet = capfd.readouterr().out
    print(out + quiet, end="")  # the leak guard searches it too

    documents = emf_documents(out)
    assert in_use(documents) == [1]
    (document,) = [d for d in documents if "CredentialStillInUse" in d]
    assert (document["FunctionName"], document["Target"], document["Deployment"]) == (
        "rotation-fn", db.target.engine, "rotation-stack",
    )  # fmt: skip
    warnings = [r for r in log_records(out) if r["level"] == "WARNING" and "drain check" in r["message"]]
    assert len(warnings) == 1
    assert "1 open session(s)" in warnings[0]["message"]
    assert account.username in warnings[0]["message"]
    assert "fails on its next new connection" in warnings[0]["message"]
    assert warnings[0]["sessions"] == 1
    assert in_use(emf_documents(quiet)) == [0]
    assert not [r for r in log_records(quiet) if r["level"] == "WARNING"]
    assert db.logs_in(secret_at(db.sm_client, account.arn, "AWSCURRENT"))
