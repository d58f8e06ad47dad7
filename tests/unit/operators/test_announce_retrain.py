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


def test_smtp_down_for_every_try_loses_neither_the_retraining_nor_the_alert(pipeline, monkeypatch):
    """Was: the request was recorded only after the alert email, so an SMTP outage longer than the monitor's
    retries lost the retraining with the email. Now the monitor records it first, request_retrain (all_done)
    announces it although the monitor failed, and a rerun once SMTP is back delivers the alert once and
    requests nothing new."""
    from mlops_provider.config import paths

    def smtp_at(port: int) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": port,
            "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0, "timeout": 5}}))

    # The session's pipeline keeps sent-alert markers under its shared MLOPS_HOME: this test starts from none
    # (an earlier test may have alerted on the same day) and leaves the markers as it found them.
    import shutil

    markers = paths.mlops_home() / "alerts"
    kept = markers.with_name("alerts.kept-by-test")
    if markers.exists():
        markers.rename(kept)
    try:
        _smtp_down_then_back(smtp_at=smtp_at)
    finally:
        shutil.rmtree(markers, ignore_errors=True)
        if kept.exists():
            kept.rename(markers)


def _smtp_down_then_back(*, smtp_at) -> None:
    from airflow.sdk import Asset
    from mlops_provider.config import paths
    from mlops_provider.io.lake import Lake
    from mlops_provider.operators.announce import RequestRetrainOperator
    from mlops_provider.operators.monitoring import MonitorDriftOperator

    from tests.smtp import Collector, free_port, start_smtp_server
    from tests.unit.operators.support import DRIFTED

    day = DRIFTED.isoformat()
    smtp_at(free_port())  # nothing listens: every try of the monitor fails to send
    monitor = MonitorDriftOperator(task_id="monitor", project_name="fraud", day=day)
    for _ in range(2):
        try:
            monitor.execute(task_context(task_id="monitor"))
        except Exception as exc:  # the SMTP error, as Airflow would record it
            assert "connect" in str(exc).lower() or "refused" in str(exc).lower(), exc
        else:
            raise AssertionError("the monitor sent an alert with no SMTP server listening")
    reports = Lake(paths.reports_uri())
    record = json.loads(reports.read_bytes(f"fraud/retrain_requests/{day}.json"))
    assert record["requested_by"] == "fraud__test/manual__test/monitor" and not record.get("announced_by")

    drift = Asset(name="fraud.drift", uri="x-mlops://fraud/drift")
    context = task_context(task_id="request_retrain")  # the failed monitor returned nothing
    extra = RequestRetrainOperator(task_id="request_retrain", project_name="fraud", day=day,
                                   outlets=[drift]).execute(context)
    assert extra["day"] == day and extra["recovered"] and context["outlet_events"][drift].extra == extra
    assert json.loads(reports.read_bytes(f"fraud/retrain_requests/{day}.json"))["announced_by"]

    collector = Collector()
    controller, port = start_smtp_server(collector)
    try:
        smtp_at(port)
        rerun = monitor.execute(task_context(task_id="monitor"))
    finally:
        controller.stop()
    assert rerun["alert"]["sent"] and len(collector.messages()) == 1
    assert rerun["retrain_requested"] is False  # announced already: the retraining is not asked twice
