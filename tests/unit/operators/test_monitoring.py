"""MonitorDriftOperator: every day of a merged run monitored, one alert and one retrain request per drifted day."""

from __future__ import annotations

import json

import pytest

from tests.unit.operators.support import DAYS, DRIFTED, asset, task_context


def test_monitors_every_day_and_requests_retraining_for_the_drifted_one(pipeline):
    from mlops_provider.config import paths
    from mlops_provider.operators.announce import RequestRetrainOperator
    from mlops_provider.operators.monitoring import MonitorDriftOperator

    days = ",".join(d.isoformat() for d in reversed(pipeline.scored))
    op = MonitorDriftOperator(task_id="monitor", project_name="fraud", day=days)
    context = task_context(task_id="monitor")
    result = op.execute(context)

    json.dumps(result)  # small and XCom-able
    assert result["days"] == [d.isoformat() for d in pipeline.scored]  # oldest first
    assert [d["day"] for d in result["per_day"]] == result["days"]
    # The drifted day requested retraining, so it is the one the result (and the drift event) describes,
    # although a later day was monitored after it.
    assert result["days"][-1] > DRIFTED.isoformat()
    assert result["day"] == DRIFTED.isoformat() and result["kind"] != "ok" and result["retrain_requested"]
    assert result["model_version"] == pipeline.champion and result["drifted_columns"]
    assert result["alert"]["sent"] and result["alert"]["marker"]
    emails = len(list(paths.outbox_dir().rglob("*.eml")))
    assert emails >= 1
    assert result["report"]["html"].startswith(paths.reports_uri())
    # The task's links point at the last day monitored (each day persists its own), in the report view (http).
    assert context["ti"].xcom["mlops_drift_report"]["url"] == (
        f"http://localhost:8080/mlops/reports/fraud/monitoring/dt={result['days'][-1]}/report.html")
    # The alert links the same page, attaches the small summary, not the report itself.
    from email import policy
    from email.parser import BytesParser

    sent = [BytesParser(policy=policy.default).parsebytes(p.read_bytes()) for p in paths.outbox_dir().rglob("*.eml")]
    (alert,) = [m for m in sent if DRIFTED.isoformat() in str(m["Subject"])]
    text = alert.get_body(preferencelist=("plain",)).get_content()
    assert f"http://localhost:8080/mlops/reports/fraud/monitoring/dt={DRIFTED.isoformat()}/report.html" in text
    assert "http://localhost:8080/mlops/docs/runbook.md" in text
    assert [a.get_filename() for a in alert.iter_attachments()] == [f"fraud-{DRIFTED.isoformat()}-{result['kind']}-summary.html"]
    assert context["ti"].xcom["mlops_mlflow_run"]["url"].startswith("file://")

    drift = asset("drift")
    announced = RequestRetrainOperator(task_id="request_retrain", outlets=[drift]).execute(
        task_context(monitor=result))
    assert announced["day"] == DRIFTED.isoformat() and announced["model_version"] == pipeline.champion

    # A rerun of the same day neither emails again nor requests a second retrain.
    rerun = MonitorDriftOperator(task_id="monitor", project_name="fraud", day=DRIFTED.isoformat()).execute(
        task_context(task_id="monitor"))
    assert rerun["alert"]["duplicate"] and not rerun["retrain_requested"]
    assert len(list(paths.outbox_dir().rglob("*.eml"))) == emails


def test_a_day_that_was_not_scored_fails_with_retries(pipeline):
    from airflow.sdk.exceptions import AirflowFailException
    from mlops_provider.exceptions import MlopsError
    from mlops_provider.operators.monitoring import MonitorDriftOperator

    with pytest.raises(MlopsError, match="no predictions partition") as err:
        MonitorDriftOperator(task_id="monitor", project_name="fraud", day=DAYS[0].isoformat()).execute(task_context())
    assert not isinstance(err.value, AirflowFailException) and err.value.retryable


def test_a_bad_project_fails_without_retries(pipeline):
    from airflow.sdk.exceptions import AirflowFailException
    from mlops_provider.exceptions import ProjectConfigError
    from mlops_provider.operators.monitoring import MonitorDriftOperator

    with pytest.raises(AirflowFailException, match="no such project") as err:
        MonitorDriftOperator(task_id="monitor", project_name="nope", day=DRIFTED.isoformat()).execute(task_context())
    assert isinstance(err.value.__cause__, ProjectConfigError)
