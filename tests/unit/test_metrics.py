"""Rotation metrics in Embedded Metric Format: documents, dimensions, causes; metrics never fail a step."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from helpers import REPO_ROOT, emf_documents, lambda_context, log_records
from rotation_core import metrics
from rotation_core.causes import CAUSES
from rotation_core.errors import Category, RotationError
from rotation_core.handler import RotationHandler
from rotation_core.metrics import InvocationMetrics
from rotation_core.preflight import (
    ALTERNATING_CHECKS,
    API_KEY_CHECKS,
    CONFIGURATION_CHECKS,
    DATABASE_CHECKS,
    DUAL_PASSWORD_CHECKS,
    PROBE_CHECKS,
    SECRET_CHECKS,
    SINGLE_USER_CHECKS,
)
from rotation_core.settings import DEFAULT_METRICS_NAMESPACE, MetricsSettings
from rotation_local import service
from unit.fakes import FakeDatabase


def metric_names(document: dict[str, Any]) -> list[str]:
    return [m["Name"] for block in document["_aws"]["CloudWatchMetrics"] for m in block["Metrics"]]


def dimension_sets(document: dict[str, Any]) -> list[list[str]]:
    return [names for block in document["_aws"]["CloudWatchMetrics"] for names in block["Dimensions"]]


def test_causes_every_category_has_a_cause_and_fix() -> None:
    assert set(CAUSES) == set(Category)
    for category, cause in CAUSES.items():
        assert cause.category is category
        assert cause.title
        assert cause.fix.endswith(".")
        assert len(f"{cause.title}. {cause.fix}") < 900  # fits an alarm description (1024)


def test_operations_doc_names_every_category_cause_metric_and_preflight_check() -> None:
    text = (REPO_ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    for category, cause in CAUSES.items():
        assert f"`{category.value}`" in text
        assert cause.title in text
    for name in (metrics.STEP_SUCCEEDED, metrics.STEP_FAILED, metrics.STEP_DURATION, metrics.ROTATION_COMPLETED,
                 metrics.CREDENTIAL_STILL_IN_USE):  # fmt: skip
        assert f"`{name}`" in text
    for plan in (CONFIGURATION_CHECKS, SECRET_CHECKS, DATABASE_CHECKS, SINGLE_USER_CHECKS, ALTERNATING_CHECKS,
                 DUAL_PASSWORD_CHECKS, PROBE_CHECKS, API_KEY_CHECKS):  # fmt: skip
        for name, category in plan:
            assert f"`{name}`" in text, name
            assert f"`{category.value}`" in text


def test_metrics_settings_namespace_default_and_deployment_from_environment() -> None:
    assert MetricsSettings.from_env({}) == MetricsSettings(DEFAULT_METRICS_NAMESPACE, None)
    configured = MetricsSettings.from_env(
        {"POWERTOOLS_METRICS_NAMESPACE": " Team/Rotation ", "METRICS_DEPLOYMENT": "s"}
    )
    assert configured == MetricsSettings("Team/Rotation", "s")


def test_metrics_step_succeeded_document_dimensions_without_secret(capfd: pytest.CaptureFixture[str]) -> None:
    recorder = InvocationMetrics(MetricsSettings("Ns", "stack"), function_name="fn", target="postgres")

    recorder.step_succeeded("setSecret", rotation_completed=False)

    (document,) = emf_documents(capfd.readouterr().out)
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Ns"
    assert metric_names(document) == ["StepSucceeded", "StepDuration"]
    assert dimension_sets(document) == [["FunctionName", "Target", "Step"], ["FunctionName", "Target"]]
    assert (document["FunctionName"], document["Target"], document["Step"]) == ("fn", "postgres", "setSecret")
    assert document["StepSucceeded"] == [1.0]
    assert "service" not in document


def test_metrics_rotation_completed_second_document_per_function_and_deployment(
    capfd: pytest.CaptureFixture[str],
) -> None:
    recorder = InvocationMetrics(MetricsSettings("Ns", "stack"), function_name="fn", target="mysql")

    recorder.step_succeeded("finishSecret", rotation_completed=True)

    step, completed = emf_documents(capfd.readouterr().out)
    assert "RotationCompleted" not in metric_names(step)
    assert metric_names(completed) == ["RotationCompleted"]
    assert dimension_sets(completed) == [["FunctionName", "Target"], ["Deployment"]]
    assert "Step" not in completed


def test_metrics_step_failed_document_category_cause_and_fix(capfd: pytest.CaptureFixture[str]) -> None:
    recorder = InvocationMetrics(MetricsSettings("Ns", "stack"), function_name="fn", target="postgres")

    recorder.step_failed("setSecret", Category.TLS)

    (document,) = emf_documents(capfd.readouterr().out)
    assert metric_names(document) == ["StepFailed", "StepDuration"]
    assert dimension_sets(document) == [
        ["FunctionName", "Target", "Step"],
        ["FunctionName", "Target"],
        ["FunctionName", "Category"],
        ["Deployment", "Category"],
    ]
    assert (document["Category"], document["Deployment"]) == ("tls", "stack")
    assert document["Cause"] == CAUSES[Category.TLS].title
    assert document["Fix"] == CAUSES[Category.TLS].fix


def test_metrics_without_deployment_no_deployment_dimension(capfd: pytest.CaptureFixture[str]) -> None:
    InvocationMetrics(MetricsSettings("Ns", None), function_name=None, target="x").step_failed(
        "unknown", Category.EVENT
    )

    (document,) = emf_documents(capfd.readouterr().out)
    assert ["Deployment", "Category"] not in dimension_sets(document)
    assert document["FunctionName"] == "unknown"


def test_metrics_write_failure_logged_never_raised(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    import aws_lambda_powertools.metrics as powertools_metrics

    def broken(**_kwargs: Any) -> Any:
        raise RuntimeError("no metrics today")

    monkeypatch.setattr(powertools_metrics, "EphemeralMetrics", broken)

    InvocationMetrics(MetricsSettings(), function_name="fn", target="x").step_succeeded(
        "setSecret", rotation_completed=False
    )

    records = log_records(capfd.readouterr().out)
    assert [r["message"] for r in records] == ["could not write the invocation's metrics"]
    assert records[0]["error_type"] == "RuntimeError"


def test_metrics_disabled_by_powertools_variable_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")

    InvocationMetrics(MetricsSettings(), function_name="fn", target="x").step_succeeded(
        "setSecret", rotation_completed=False
    )

    assert emf_documents(capfd.readouterr().out) == []


def test_metrics_note_target_outside_invocation_is_ignored() -> None:
    metrics.note_target("datadog")  # no invocation: nothing to note, nothing raised


def test_metrics_step_of_bounded_values() -> None:
    assert metrics.step_of({"Step": "testSecret"}) == "testSecret"
    assert metrics.step_of({"Step": "rm -rf"}) == "unknown"
    assert metrics.step_of(["Step"]) == "unknown"


def test_handler_rotation_emits_step_documents_and_completed_once(
    make_secret: Callable[..., str], make_handler: Callable[..., RotationHandler], capfd: pytest.CaptureFixture[str]
) -> None:
    arn = make_secret()
    handler = make_handler(METRICS_DEPLOYMENT="stack-1")
    context = lambda_context("rotator-fn")

    token = service.rotate(arn, lambda event: handler(dict(event), context))
    handler(service.event("finishSecret", arn, token), context)  # a retried finishSecret: nothing to do

    documents = emf_documents(capfd.readouterr().out)
    steps = [d["Step"] for d in documents if "StepSucceeded" in d]
    assert steps == [*service.STEPS, "finishSecret"]
    completed = [d for d in documents if "RotationCompleted" in d]
    assert len(completed) == 1
    assert (completed[0]["FunctionName"], completed[0]["Target"], completed[0]["Deployment"]) == (
        "rotator-fn",
        "fake",
        "stack-1",
    )
    text = json.dumps(documents)
    assert arn not in text
    assert "app-secret" not in text  # the secret's name is never a dimension or property


def test_handler_failed_step_log_line_and_metric_name_the_cause(
    pending: tuple[str, str],
    make_handler: Callable[..., RotationHandler],
    database: FakeDatabase,
    capfd: pytest.CaptureFixture[str],
) -> None:
    arn, token = pending
    database.reachable = False
    handler = make_handler()
    handler(service.event("createSecret", arn, token), lambda_context())

    with pytest.raises(RotationError):
        handler(service.event("setSecret", arn, token), lambda_context())

    out = capfd.readouterr().out
    (error,) = [r for r in log_records(out) if r["level"] == "ERROR"]
    cause = CAUSES[Category.UNREACHABLE]
    assert (error["category"], error["cause"], error["fix"]) == ("unreachable", cause.title, cause.fix)
    assert error["secret_arn"] == arn  # the ARN is in the log line, not in the metric
    failed = [d for d in emf_documents(out) if "StepFailed" in d]
    assert len(failed) == 1
    assert (failed[0]["Step"], failed[0]["Category"], failed[0]["Cause"]) == ("setSecret", "unreachable", cause.title)


def test_handler_unexpected_error_counts_as_internal_failure(capfd: pytest.CaptureFixture[str]) -> None:
    def explode(_env: Any) -> Any:
        raise ValueError("a bug")

    with pytest.raises(RotationError):
        RotationHandler(explode, environ={})(service.event("createSecret", "s", "t"), None)

    (failed,) = [d for d in emf_documents(capfd.readouterr().out) if "StepFailed" in d]
    assert failed["Category"] == "internal"
