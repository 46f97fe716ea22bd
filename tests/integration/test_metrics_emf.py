"""Rotation metrics from real rotations: the EMF documents the functions print, as CloudWatch would read them.

Every server kind of every engine (``db_kind``): each step's document, the one
``RotationCompleted`` per rotation, a failure's category and troubleshooting cause, and never a secret's
name or ARN in a dimension or property.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trustme

from helpers import LeakGuard, emf_documents, lambda_context
from integration.support import create_account, run_steps, unique
from rotation_core.causes import CAUSES
from rotation_core.errors import Category, TargetError
from rotation_local import emulator, service
from rotation_local.server_kinds import ServerKind
from rotation_local.targets import DatabaseTarget

NAMESPACE = "Test/SecretsRotation"


def metric_names(document: dict[str, Any]) -> set[str]:
    return {m["Name"] for block in document["_aws"]["CloudWatchMetrics"] for m in block["Metrics"]}


def namespaces(documents: list[dict[str, Any]]) -> set[str]:
    return {block["Namespace"] for d in documents for block in d["_aws"]["CloudWatchMetrics"]}


def dimension_names(documents: list[dict[str, Any]]) -> set[str]:
    return {
        name for d in documents for block in d["_aws"]["CloudWatchMetrics"] for s in block["Dimensions"] for name in s
    }


@pytest.fixture
def metrics_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE)
    monkeypatch.setenv("METRICS_DEPLOYMENT", "rotation-stack")
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)


def test_metrics_database_rotation_emits_each_step_and_one_completed(
    db_kind: ServerKind, db_server: Any, db_target: DatabaseTarget, sm_client: Any, db_function: Any,
    leak_guard: LeakGuard, metrics_env: None, capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    account = create_account(db_target, db_server, sm_client, leak_guard, username=unique("emf")[:16])
    app = db_function()
    context = lambda_context("rotation-fn")

    service.rotate(account.arn, lambda event: app.lambda_handler(dict(event), context))

    out = capfd.readouterr().out
    print(out, end="")  # the leak guard searches it too
    documents = emf_documents(out)
    assert namespaces(documents) == {NAMESPACE}
    steps = [d for d in documents if "StepSucceeded" in d]
    assert [d["Step"] for d in steps] == list(service.STEPS)
    for document in steps:
        assert (document["FunctionName"], document["Target"]) == ("rotation-fn", db_kind.family)
        assert metric_names(document) == {"StepSucceeded", "StepDuration"}
        assert document["StepDuration"][0] > 0
    (completed,) = [d for d in documents if "RotationCompleted" in d]
    assert (completed["FunctionName"], completed["Target"], completed["Deployment"]) == (
        "rotation-fn", db_kind.family, "rotation-stack",
    )  # fmt: skip
    assert not [d for d in documents if "StepFailed" in d]
    assert dimension_names(documents) == {"FunctionName", "Target", "Step", "Deployment"}
    text = json.dumps(documents)
    assert account.arn not in text
    assert account.arn.split(":")[-1] not in text  # nor the secret's name


def test_metrics_database_failed_step_emits_category_and_cause(
    db_kind: ServerKind, db_server: Any, db_target: DatabaseTarget, sm_client: Any, db_function: Any,
    leak_guard: LeakGuard, metrics_env: None, capfd: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:  # fmt: skip
    account = create_account(db_target, db_server, sm_client, leak_guard, username=unique("emf")[:16])
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    app = db_function(DB_CA_BUNDLE=str(other_ca))
    token = emulator.stage_pending_placeholder(account.arn)
    run_steps(app, account.arn, token, "createSecret")

    with pytest.raises(TargetError):
        app.lambda_handler(service.event("setSecret", account.arn, token), lambda_context("rotation-fn"))

    out = capfd.readouterr().out
    print(out, end="")
    (failed,) = [d for d in emf_documents(out) if "StepFailed" in d]
    assert (failed["Step"], failed["Category"], failed["Target"]) == ("setSecret", "tls", db_kind.family)
    assert (failed["Cause"], failed["Fix"]) == (CAUSES[Category.TLS].title, CAUSES[Category.TLS].fix)
    dimensions = [s for block in failed["_aws"]["CloudWatchMetrics"] for s in block["Dimensions"]]
    assert ["Deployment", "Category"] in dimensions  # what the template's alarms watch
    assert ["FunctionName", "Category"] in dimensions
    emulator.drop_pending(account.arn)
