"""request_retrain marks the monitor's retrain request announced, so a rerun of the monitor requests nothing new
while the retry of a monitor try that died before returning still announces it (issue 14)."""

from __future__ import annotations

import json

from tests.unit.operators.support import task_context


def test_announcing_marks_the_request_so_a_rerun_requests_nothing_new(mlops_home, fraud_project):
    from airflow.sdk import Asset
    from mlops_provider.config import paths
    from mlops_provider.io.lake import Lake
    from mlops_provider.operators.announce import RequestRetrainOperator
    from mlops_provider.stages.retrain import record_retrain_request, request_retrain

    reports, monitor = Lake(paths.reports_uri()), "fraud__monitor/manual__test/monitor"
    decision = request_retrain(fraud_project, reports, "2024-01-12", "drift", record=False, requested_by=monitor)
    marker = record_retrain_request(fraud_project, reports, decision, requested_by=monitor)
    # The monitoring try died before returning: its retry requests the recorded day again.
    retry = request_retrain(fraud_project, reports, "2024-01-12", "drift", record=False, requested_by=monitor)
    assert retry["requested"] and retry["recorded"]
    result = {"project": "fraud", "lake_conn_id": None, "day": "2024-01-12", "kind": "drift", "model_version": "3",
              "retrain_requested": True, "retrain": retry, "drifted_columns": ["amount"], "roc_auc": None,
              "report": {"html": "file:///r/report.html"}}
    drift = Asset(name="fraud.drift", uri="x-mlops://fraud/drift")
    context = task_context(task_id="request_retrain", monitor=result)
    extra = RequestRetrainOperator(task_id="request_retrain", outlets=[drift]).execute(context)
    assert extra["day"] == "2024-01-12" and context["outlet_events"][drift].extra == extra
    record = json.loads(reports.read_bytes("fraud/retrain_requests/2024-01-12.json"))
    assert record["requested_by"] == monitor and record["announced_by"] == "fraud__test/manual__test/request_retrain"
    assert marker.endswith("fraud/retrain_requests/2024-01-12.json")
    rerun = request_retrain(fraud_project, reports, "2024-01-12", "drift", record=False, requested_by=monitor)
    assert rerun["requested"] is False and rerun["duplicate"] is True
