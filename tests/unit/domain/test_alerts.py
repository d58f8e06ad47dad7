"""On-call alerts through a real SMTP server on loopback (aiosmtpd), the outbox fallback and the failure notifier.

Delivery goes through the Airflow layer (``hooks.smtp.send_alert``: connection id -> SMTP or outbox).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from email import policy
from email.parser import BytesParser

import pytest
from mlops_provider.config import paths
from mlops_provider.domain import alerts
from mlops_provider.exceptions import MlopsError
from mlops_provider.hooks.smtp import send_alert

from tests.smtp import Collector, free_port, start_smtp_server

PASSWORD = "s3cr3t-Pa55word-xyz"
CONN_ID = "smtp_test"
DAY = dt.date(2024, 1, 9)
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def smtp_server(monkeypatch, mlops_home):
    from aiosmtpd.smtp import AuthResult

    collector = Collector()

    def authenticator(server, session, envelope, mechanism, auth_data):
        collector.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password.decode() == PASSWORD)

    controller, port = start_smtp_server(collector, authenticator)
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port, "login": "alerts", "password": PASSWORD,
        "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "mlops@example.com",
                  "retry_limit": 0, "timeout": 10},
    }))
    yield collector
    controller.stop()


def verdict(**overrides):
    base = {
        "kind": "drift",
        "drift_detected": True,
        "share_drifted": 0.4,
        "drift_share_threshold": 0.3,
        "column_drift_threshold": 0.1,
        "n_features": 10,
        "n_drifted": 4,
        "drifted_columns": [
            {"column": "amount", "type": "numerical", "stattest": "wasserstein",
             "stattest_name": "Wasserstein distance (normed)", "score": 1.31, "threshold": 0.1,
             "summary": {"kind": "numerical", "reference": {"mean": 95.2, "p10": 18.0, "p50": 55.0, "p90": 210.0},
                         "current": {"mean": 238.1, "p10": 45.0, "p50": 137.5, "p90": 525.0}}},
            {"column": "merchant_category", "type": "categorical", "stattest": "jensenshannon",
             "stattest_name": "Jensen-Shannon distance", "score": 0.21, "threshold": 0.1,
             "summary": {"kind": "categorical", "categories": [
                 {"value": SCRIPT, "reference": 0.0, "current": 0.12},
                 {"value": "grocery", "reference": 0.26, "current": 0.2}]}},
            {"column": "channel", "type": "categorical", "stattest": "jensenshannon",
             "stattest_name": "Jensen-Shannon distance", "score": 0.19, "threshold": 0.1,
             "summary": {"kind": "categorical", "categories": [{"value": "online", "reference": 0.31, "current": 0.58}]}},
            {"column": "country", "type": "categorical", "stattest": "jensenshannon",
             "stattest_name": "Jensen-Shannon distance", "score": 0.15, "threshold": 0.1,
             "summary": {"kind": "categorical", "categories": [{"value": "US", "reference": 0.92, "current": 0.8}]}},
        ],
        "prediction_drift": {"column": "champion_score", "stattest": "wasserstein",
                             "stattest_name": "Wasserstein distance (normed)", "score": 0.5, "threshold": 0.1,
                             "drift_detected": True, "reference": {"mean": 0.03}, "current": {"mean": 0.07},
                             "alert_rate_reference": 0.001, "alert_rate_current": 0.02},
        "data_quality": {"missing_share": {"amount": 0.02}, "missing_share_reference": {"amount": 0.0},
                         "new_categories": {"merchant_category": [SCRIPT]},
                         "new_category_rows": {"merchant_category": 600}},
        "performance": None,
        "performance_alert": False,
    }
    base.update(overrides)
    return base


REPORT_URL = "https://airflow.example.com/mlops/reports/fraud/monitoring/dt=2024-01-09/report.html"
TASK_URL = "https://airflow.example.com/dags/fraud__monitor/runs/scheduled__2024-01-09/tasks/monitor"
RUNBOOK = "https://airflow.example.com/mlops/docs/runbook.md"


def compose(project, v=None, *, attach_max_bytes=2_000_000, **kw):
    args = dict(
        day=DAY, model_version=3,
        run_url=f"https://admin:{PASSWORD}@airflow.example.com/dags/fraud__monitor/runs/scheduled__2024-01-09",
        report_url=REPORT_URL, task_url=TASK_URL,
        mlflow_run_url=f"http://mlflow.example.com/#/experiments/1/runs/abc?token={PASSWORD}",
        actions=["retraining triggered: fraud__train run manual__2024-01-09"],
        attach_max_bytes=attach_max_bytes, runbook=RUNBOOK,
    )
    args.update(kw)
    return alerts.compose_alert(project, v or verdict(), **args)


def parts(message):
    html = message.get_body(preferencelist=("html",)).get_content()
    text = message.get_body(preferencelist=("plain",)).get_content()
    return html, text, list(message.iter_attachments())


def test_alert_is_delivered_over_smtp_readable_escaped_and_without_secrets(fraud_project, smtp_server):
    message = compose(fraud_project)
    result = send_alert(message, smtp_conn_id=CONN_ID, dedup_key=alerts.dedup_key(fraud_project, DAY, "drift"))

    assert result["sent"] is True and result["via"] == "smtp"
    assert len(smtp_server.envelopes) == 1
    envelope = smtp_server.envelopes[0]
    assert envelope.rcpt_tos == ["oncall-fraud@example.com"]
    assert smtp_server.logins == [("alerts", PASSWORD)]  # the password authenticated the session...
    assert PASSWORD.encode() not in envelope.original_content  # ...and appears nowhere in the mail

    received = smtp_server.messages()[0]
    assert received["Subject"] == (
        "[MLOps] fraud / fraud_classifier v3 / 2024-01-09: DATA DRIFT (4/10 features) + PREDICTION DRIFT "
        "(champion_score 0.5 >= 0.1)")
    assert received["From"] == "mlops@example.com"
    html, text, attachments = parts(received)
    assert SCRIPT not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.index("DATA DRIFT") < html.index("Drifted features") < html.index("What the system already did")
    assert "Wasserstein distance (normed)" in html and "amount" in html
    assert "retraining triggered" in html and "retraining triggered" in text
    assert "https://airflow.example.com/dags/fraud__monitor" in html and "admin" not in html
    assert "fraud__model_ops" in text and '"action": "rollback"' in text
    assert SCRIPT in text  # plain text needs no escaping
    # Links a phone opens: the report view (http), the Airflow task and run, MLflow, the runbook sections.
    assert f"<a href='{REPORT_URL}'" in html and f"<a href='{TASK_URL}'" in html
    assert f"<a href='{RUNBOOK}#data-drift'" in html and f"<a href='{RUNBOOK}'" in html
    assert REPORT_URL in text and f"{RUNBOOK}#data-drift" not in text and RUNBOOK in text
    # The attachment is the compact static summary, not the multi-megabyte interactive report.
    (summary,) = attachments
    assert summary.get_filename() == "fraud-2024-01-09-drift-summary.html"
    page = summary.get_content()
    assert len(page.encode()) < alerts.SUMMARY_MAX_BYTES and "<script" not in page.replace("&lt;script", "")
    assert "amount" in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and SCRIPT not in page
    assert "Drifted features (4/10)" in page and REPORT_URL in page


def test_links_a_mail_client_cannot_open_are_text_not_links(fraud_project, smtp_server):
    message = compose(fraud_project, report_url="s3://bucket/reports/fraud/monitoring/dt=2024-01-09/report.html",
                      task_url=None, runbook="file:///srv/checkout/docs/runbook.md")
    html, text, _ = parts(message)
    assert "href='s3://" not in html and "<code>s3://bucket/reports/fraud/monitoring/dt=2024-01-09/report.html</code>" in html
    assert "href='file://" not in html and "javascript:" not in html


def test_summary_attachment_stays_small_and_escaped_whatever_the_data(fraud_project):
    """A thousand drifted columns with hostile names: the summary is cut to fit, every value escaped."""
    column = {"column": "x", "stattest_name": "PSI", "score": 0.5, "threshold": 0.1,
              "summary": {"kind": "categorical", "categories": [{"value": SCRIPT * 5, "reference": 0.1, "current": 0.9}]}}
    many = verdict(n_features=1000, n_drifted=1000, drifted_columns=[{**column, "column": f"{SCRIPT}-{i}"}
                                                                      for i in range(1000)],
                   data_quality={"new_categories": {"c": [f"{SCRIPT}{i}" for i in range(500)]},
                                 "new_category_rows": {"c": 500}})
    message = compose(fraud_project, many)
    (summary,) = [a for a in message.iter_attachments()]
    page = summary.get_content()
    assert len(page.encode()) < alerts.SUMMARY_MAX_BYTES
    assert "more drifted features: see the full report" in page and "and 480 more" in page
    assert SCRIPT not in page
    # attach_max_bytes 0: nothing attached, the report stays one click away.
    assert not list(compose(fraud_project, attach_max_bytes=0).iter_attachments())


def test_second_send_of_the_same_event_is_not_delivered(fraud_project, smtp_server, mlops_home):
    key = alerts.dedup_key(fraud_project, DAY, "drift")
    first = send_alert(compose(fraud_project), smtp_conn_id=CONN_ID, dedup_key=key)
    second = send_alert(compose(fraud_project), smtp_conn_id=CONN_ID, dedup_key=key)
    other_day = send_alert(compose(fraud_project, day=DAY + dt.timedelta(days=1)), smtp_conn_id=CONN_ID,
                           dedup_key=alerts.dedup_key(fraud_project, DAY + dt.timedelta(days=1), "drift"))

    assert first["sent"] is True
    assert second == {"sent": False, "duplicate": True, "marker": first["marker"]}
    assert other_day["sent"] is True
    assert len(smtp_server.envelopes) == 2
    marker = mlops_home / "alerts" / "sent" / f"{hashlib.sha256(key.encode()).hexdigest()}.json"
    assert json.loads(marker.read_text())["key"] == key
    assert not list(marker.parent.glob("*.sending"))  # the in-flight claim is released


def test_failed_delivery_leaves_no_marker_so_a_retry_sends(fraud_project, monkeypatch, mlops_home):
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DOWN", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": free_port(),
        "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0, "timeout": 2}}))
    with pytest.raises(MlopsError, match="smtp_down"):
        send_alert(compose(fraud_project), smtp_conn_id="smtp_down", dedup_key="retry-me")
    assert not (mlops_home / "alerts" / "sent").exists() or not list((mlops_home / "alerts" / "sent").iterdir())


def test_without_a_connection_the_alert_lands_in_the_outbox(fraud_project, mlops_home):
    message = compose(fraud_project, verdict(kind="drift+performance", performance_alert=True, performance={
        "rows": 5000, "positives": 500, "positive_rate": 0.1, "roc_auc": 0.61, "pr_auc": 0.08, "precision": 0.2,
        "recall": 0.1, "alert_threshold": 0.5, "min_roc_auc": 0.75,
        "reference": {"roc_auc": 0.82, "pr_auc": 0.3, "precision": 0.6, "recall": 0.3, "positive_rate": 0.025},
        "target_drift": None}))
    result = send_alert(message, smtp_conn_id="smtp_not_configured", dedup_key="outbox-1")

    assert result["sent"] is True and result["via"] == "outbox"
    path = paths.outbox_dir() / result["path"].rsplit("/", 1)[-1]
    assert path.suffix == ".eml" and path.parent == mlops_home / "outbox"
    parsed = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert parsed["Subject"].endswith("+ PERFORMANCE (ROC AUC 0.61 < 0.75)")
    assert parsed["To"] == "oncall-fraud@example.com"
    html, text, _ = parts(parsed)
    assert "0.82" in html and "0.61" in html and "-0.210" in text
    assert PASSWORD not in path.read_text()


def test_strip_userinfo_and_redact():
    assert alerts.strip_userinfo("https://u:p@host:8080/a?b=1&token=zz&X-Amz-Signature=q") == "https://host:8080/a?b=1"
    assert "hunter2" not in alerts.redact("could not connect to postgresql+psycopg2://etl:hunter2@db:5432/x")
    # One alert per project, day and kind, whatever model version scored the day.
    assert alerts.dedup_key("fraud", "2024-01-09T00:00:00", "drift") == "monitoring|fraud|2024-01-09|drift"


@pytest.fixture
def failure_context():
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    with DAG("fraud__ingest", schedule=None, start_date=dt.datetime(2024, 1, 1)) as dag:
        validate_batch = EmptyOperator(task_id="validate_batch", retries=1)
    task = validate_batch
    run_id = "scheduled__2024-01-09T00:00:00+00:00"

    def make(try_number: int):
        ti = RuntimeTaskInstance.model_construct(
            id=uuid.uuid4(), task_id=task.task_id, dag_id=dag.dag_id, run_id=run_id, try_number=try_number,
            map_index=-1, max_tries=1, task=task,
        )
        error = RuntimeError("<b>broken</b> source postgresql://etl:hunter2-secret@db:5432/fraud " + "x" * 9000)
        return {"dag": dag, "task": task, "ti": ti, "run_id": run_id, "exception": error}

    return make


def test_notifier_emails_one_failure_per_try(failure_context, smtp_server, monkeypatch):
    from mlops_provider.notifiers.oncall import OnCallEmailNotifier

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    notifier = OnCallEmailNotifier(project="{{ dag.dag_id.split('__')[0] }}", smtp_conn_id=CONN_ID)
    notifier(failure_context(2))
    OnCallEmailNotifier(smtp_conn_id=CONN_ID)(failure_context(2))  # same ti and try: deduplicated

    assert len(smtp_server.envelopes) == 1
    message = smtp_server.messages()[0]
    assert message["Subject"] == "[MLOps] fraud / TASK FAILED: fraud__ingest.validate_batch (try 2)"
    html, text, _ = parts(message)
    for value in ("fraud__ingest", "validate_batch", "scheduled__2024-01-09T00:00:00+00:00"):
        assert value in text
    assert "&lt;b&gt;broken&lt;/b&gt;" in html and "<b>broken</b>" not in html
    assert "hunter2-secret" not in html and "hunter2-secret" not in text
    assert "truncated" in text and len(text) < 8000
    assert ("https://airflow.example.com/dags/fraud__ingest/runs/scheduled__2024-01-09T00%3A00%3A00%2B00%3A00"
            "/tasks/validate_batch?try_number=2") in text
    assert "No retries left" in text

    notifier(failure_context(3))  # a new try is a new event
    assert len(smtp_server.envelopes) == 2


def test_notifier_as_dag_failure_callback(failure_context, smtp_server):
    from mlops_provider.notifiers.oncall import OnCallEmailNotifier

    context = failure_context(1)
    dag_context = {"dag": context["dag"], "run_id": context["run_id"], "reason": "task_failure"}
    OnCallEmailNotifier(project="fraud", smtp_conn_id=CONN_ID)(dag_context)

    message = smtp_server.messages()[0]
    assert message["Subject"] == "[MLOps] fraud / DAG RUN FAILED: fraud__ingest"
    assert "task_failure" in parts(message)[1]


@pytest.mark.parametrize(
    ("error", "promise"),
    [
        ("fail", "Not retried: a retry cannot fix this error"),
        ("domain", "Not retried: a retry cannot fix this error"),
        ("outage", "Airflow retries the task automatically (this was try 1; 2 tries in total)"),
    ],
)
def test_notifier_promises_retries_only_when_they_follow(failure_context, smtp_server, error, promise):
    """Was: a fail-fast error (AirflowFailException: a quarantined batch) promised retries that never came."""
    from airflow.sdk.exceptions import AirflowFailException
    from mlops_provider.exceptions import DataValidationError
    from mlops_provider.notifiers.oncall import OnCallEmailNotifier

    context = failure_context(1)  # try 1 of 2: tries are left, but a fail-fast error uses none of them
    context["exception"] = {
        "fail": AirflowFailException("fraud 2024-01-09: most likely cause: ...; batch quarantined"),
        "domain": DataValidationError("quarantined", failed=[], result_path="r", quarantine_path="q"),
        "outage": ConnectionError("S3 endpoint unreachable"),
    }[error]
    OnCallEmailNotifier(project="fraud", smtp_conn_id=CONN_ID)(context)
    text = parts(smtp_server.messages()[0])[1]
    assert promise in text
    if error != "outage":
        assert "retries the task automatically" not in text


def test_notifier_escapes_raw_binary_in_the_error(failure_context, smtp_server):
    from mlops_provider.notifiers.oncall import OnCallEmailNotifier

    context = failure_context(2)
    context["exception"] = ValueError("CSV parse error: \x1b[31mred\x00\x07 " + "\ufeff" + "z" * 9000)
    OnCallEmailNotifier(project="fraud", smtp_conn_id=CONN_ID)(context)
    html, text, _ = parts(smtp_server.messages()[0])
    for part in (html, text):
        assert "\x1b" not in part and "\x00" not in part and "\x07" not in part and "\ufeff" not in part
    assert "\\x1b[31mred\\x00\\x07" in text and "truncated" in text and len(text) < 8000


def test_a_failed_run_sends_one_final_email_task_or_dag_level(failure_context, smtp_server):
    """Every DAG has a task-level and a DAG-level notifier: a task's final failure email stands for its run, so
    the DAG-level one of that run is not sent; a run with no final task email (timed out) gets the DAG-level one."""
    from mlops_provider.notifiers.oncall import OnCallEmailNotifier

    notifier = OnCallEmailNotifier(project="fraud", smtp_conn_id=CONN_ID)
    retrying = failure_context(1)  # try 1 of 2: "Airflow retries the task"
    notifier(retrying)
    dag_level = {"dag": retrying["dag"], "run_id": retrying["run_id"], "reason": "task_failure",
                 "ti": retrying["ti"]}  # Airflow 3 attaches the run's last task instance
    final = failure_context(2)  # try 2 of 2: no retry follows
    notifier(final)
    notifier(dag_level)
    subjects = [str(m["Subject"]) for m in smtp_server.messages()]
    assert subjects == ["[MLOps] fraud / TASK FAILED: fraud__ingest.validate_batch (try 1)",
                        "[MLOps] fraud / TASK FAILED: fraud__ingest.validate_batch (try 2)"]
    assert [str(m["X-MLOps-Final"]) for m in smtp_server.messages()] == ["no", "yes"]

    # Another run that failed without a final task email (past dagrun_timeout): the DAG-level email goes out, once.
    timed_out = {"dag": retrying["dag"], "run_id": "scheduled__2024-01-10T00:00:00+00:00", "reason": "timed_out"}
    notifier(timed_out)
    notifier(timed_out)
    assert [str(m["Subject"]) for m in smtp_server.messages()][2:] == ["[MLOps] fraud / DAG RUN FAILED: fraud__ingest"]
    text = parts(smtp_server.messages()[2])[1]
    assert "timed_out" in text and "no task of it sent a final failure email" in text
