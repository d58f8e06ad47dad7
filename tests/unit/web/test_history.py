"""The monitoring history page of the report view (web/history.py): real verdicts saved by the monitor stage's
save_report, an alert thread record and a retrain request written by their stages, scoring summaries; the page
through the plugin app and through Airflow's own api-server, behind Airflow's auth."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

pytest.importorskip("fastapi")

from tests.unit.domain.test_drift import scored  # noqa: E402  (a stand-in champion's scores on generated days)
from tests.unit.web.conftest import bearer  # noqa: E402

ROWS = 2000
CLEAN, MISSING, DRIFTED, CONCEPT = (dt.date(2024, 1, 10) + dt.timedelta(days=i) for i in range(4))
CHAMPIONS = {CLEAN: "3", DRIFTED: "3", CONCEPT: "4"}


@pytest.fixture(scope="module")
def project():
    from mlops_provider.config.project import load_project

    return load_project("fraud")


@pytest.fixture(scope="module")
def store(tmp_path_factory, project):
    """A report store as the stages leave it: three monitored days (one missing), an alert and a retrain."""
    import pandas as pd
    from mlops_provider.domain import scoring
    from mlops_provider.domain.drift import monitor_day
    from mlops_provider.io.email import FileSentMarkers, OutboxTransport
    from mlops_provider.io.lake import Lake
    from mlops_provider.stages.alerting import send_monitoring_alert
    from mlops_provider.stages.monitor import save_report
    from mlops_provider.stages.retrain import request_retrain

    tmp = tmp_path_factory.mktemp("history")
    reports = Lake(f"file://{tmp / 'reports'}")
    features = list(project.features["record"]["columns"])
    reference = pd.concat([scored(dt.date(2024, 1, d), ROWS // 2) for d in (1, 2)], ignore_index=True)
    days = {CLEAN: scored(CLEAN, ROWS), DRIFTED: scored(DRIFTED, ROWS, covariate_drift=True),
            CONCEPT: scored(CONCEPT, ROWS, concept_drift=True)}
    verdicts = {}
    for day, current in days.items():
        result = monitor_day(project, reference=reference, current=current, feature_columns=features,
                             labelled=None if day == DRIFTED else current, seed=day.toordinal())
        save_report(result, reports, f"fraud/monitoring/dt={day.isoformat()}/report")
        verdicts[day] = result.verdict
        summary = scoring.summarize(current["champion_score"].to_numpy(), None, threshold=0.5,
                                    champion=CHAMPIONS[day], challenger=None, model_name=project.model_name)
        reports.write_bytes(f"fraud/shadow/dt={day.isoformat()}.json",
                            json.dumps({"day": day.isoformat(), **summary}, default=str).encode())
    assert [verdicts[d]["kind"] for d in days] == ["ok", "drift", "performance"]
    sent = send_monitoring_alert(
        project, {"verdict": verdicts[DRIFTED], "day": DRIFTED.isoformat(), "model_version": "3"},
        transport=OutboxTransport(tmp / "outbox"), actions=["drift"], run_url=None, report_url=None,
        mlflow_run_url=None, reports=reports, runbook="https://runbook.example/runbook.md",
        markers=FileSentMarkers(tmp / "sent"))
    assert sent["sent"] and sent["thread"].endswith("fraud/alerts/dt=2024-01-12/drift.json")
    assert request_retrain(project, reports, DRIFTED, "drift")["requested"]
    return reports, verdicts


@pytest.fixture
def client(store):
    from fastapi.testclient import TestClient
    from mlops_provider.web.app import create_app

    reports, _ = store
    return TestClient(create_app(reports=lambda: reports))


def rows(page: str) -> list[str]:
    return re.findall(r"<tr>\n<td>(\d{4}-\d{2}-\d{2})</td>", page)


def test_the_page_shows_the_real_days(client, auth_manager, store, project):
    _, verdicts = store
    response = client.get("/monitoring/fraud", params={"days": 4}, headers=bearer(auth_manager))

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    page = response.text
    assert rows(page) == [d.isoformat() for d in (CONCEPT, DRIFTED, MISSING, CLEAN)]  # up to the newest day
    assert "<script" not in page and page.count("<svg") == 2
    # The threshold line of the project config, the binary model's ROC AUC limit (min_roc_auc).
    threshold = project.monitoring["drift_share_threshold"]
    assert f"threshold {threshold:.0%}" in page and f"minimum {project.monitoring['min_roc_auc']:.3g}" in page
    assert "ROC AUC per labelled day" in page
    for day in (CLEAN, CONCEPT):  # the labelled days' ROC AUC, as the verdict has it
        assert f"{verdicts[day]['performance']['roc_auc']:.4g}" in page
    share = verdicts[DRIFTED]["share_drifted"]
    assert f"{share:.0%} ({verdicts[DRIFTED]['n_drifted']}/{verdicts[DRIFTED]['n_features']})" in page
    assert verdicts[DRIFTED]["drifted_columns"][0]["column"] in page
    assert "v3" in page and "v4" in page and page.count("no monitoring report</td>") == 1
    assert f"{DRIFTED}: alert sent (drift)" in page and f"{DRIFTED}: retrain requested (drift)" in page
    headline = " ".join(page.split())
    assert "(4 days): 3 monitored, 2 not ok, 1 alert sent, 1 retrain requested." in headline
    assert f"Latest verdict: <b>performance</b> on {CONCEPT}" in headline


def test_each_days_report_link_opens_the_evidently_report(client, auth_manager):
    auth = bearer(auth_manager)
    page = client.get("/monitoring/fraud", params={"days": 4}, headers=auth).text
    links = re.findall(r'href="/mlops(/reports/[^"]+)"', page)
    assert links == [f"/reports/fraud/monitoring/dt={d}/report.html" for d in (CONCEPT, DRIFTED, CLEAN)]
    report = client.get(links[1], headers=auth)
    assert report.status_code == 200 and report.headers["content-type"] == "text/html; charset=utf-8"
    assert len(report.content) > 100_000  # Evidently's page


def test_days_and_until_choose_the_window(client, auth_manager):
    auth = bearer(auth_manager)
    default = client.get("/monitoring/fraud", headers=auth).text  # 60 days, from the first day on record
    assert rows(default) == [d.isoformat() for d in (CONCEPT, DRIFTED, MISSING, CLEAN)]
    assert 'href="/mlops/monitoring/fraud?days=14"' in default
    assert rows(client.get("/monitoring/fraud", params={"days": 2}, headers=auth).text) == \
        [CONCEPT.isoformat(), DRIFTED.isoformat()]
    earlier = client.get("/monitoring/fraud", params={"days": 2, "until": MISSING.isoformat()}, headers=auth).text
    assert rows(earlier) == [MISSING.isoformat(), CLEAN.isoformat()] and "report.html" in earlier
    for bad in ({"days": 0}, {"days": 367}, {"until": "yesterday"}):
        assert client.get("/monitoring/fraud", params=bad, headers=auth).status_code == 422, bad


def test_auth_is_the_reports_auth(client, auth_manager):
    assert client.get("/monitoring/fraud").status_code == 401
    refused = client.get("/monitoring/fraud", headers=bearer(auth_manager, role=None))
    assert refused.status_code == 403 and "read access to DAG 'fraud__monitor'" in refused.json()["detail"]
    assert client.get("/monitoring/dag/fraud__monitor", follow_redirects=False).status_code == 401


def test_unknown_projects_and_unreadable_verdicts(client, auth_manager, store):
    auth = bearer(auth_manager)
    unknown = client.get("/monitoring/nothing_here", headers=auth)
    assert unknown.status_code == 404 and "no monitoring history of 'nothing_here'" in unknown.json()["detail"]
    assert client.get("/monitoring/%2e%2e", headers=auth).status_code == 404
    reports, _ = store
    bad_day = CONCEPT + dt.timedelta(days=1)
    path = f"fraud/monitoring/dt={bad_day}/report.verdict.json"
    reports.write_bytes(path, b'{"kind": "drift", truncated')
    try:
        page = client.get("/monitoring/fraud", params={"days": 5}, headers=auth).text
    finally:
        reports.fs.delete_file(f"{reports.root}/{path}")
    assert rows(page)[0] == bad_day.isoformat() and f"{path} could not be read (JSONDecodeError)" in page


def test_a_dags_tab_opens_its_projects_history(client, auth_manager):
    auth = bearer(auth_manager)
    for dag_id in ("fraud__monitor", "fraud__model_ops"):
        redirect = client.get(f"/monitoring/dag/{dag_id}", headers=auth, follow_redirects=False)
        assert redirect.status_code == 307 and redirect.headers["location"] == "/mlops/monitoring/fraud"
    other = client.get("/monitoring/dag/example_dag", headers=auth)
    assert other.status_code == 404 and "not a project DAG" in other.json()["detail"]


def test_airflow_serves_the_page_and_lists_the_dag_tab(airflow_client, auth_manager, store):
    """Airflow's own api-server app: the page under /mlops, and the external view every DAG page shows."""
    reports, _ = store
    client = airflow_client(reports.root_uri)
    assert client.get("/mlops/monitoring/fraud").status_code == 401
    page = client.get("/mlops/monitoring/fraud", params={"days": 4}, headers=bearer(auth_manager))
    assert page.status_code == 200 and rows(page.text)[0] == CONCEPT.isoformat()
    plugins = client.get("/api/v2/plugins", headers=bearer(auth_manager, role="admin"))
    assert plugins.status_code == 200, plugins.text
    (mlops,) = [p for p in plugins.json()["plugins"] if p["name"] == "mlops"]
    (view,) = [v for v in mlops["external_views"] if v["name"] == "Monitoring history"]
    assert (view["destination"], view["href"], view["url_route"]) == \
        ("dag", "/mlops/monitoring/dag/{DAG_ID}", "mlops-monitoring-history")


def test_the_page_from_an_s3_report_store(s3_reports, auth_manager, store):
    """The default report store of the ``mlops_lake`` connection, an S3 bucket (moto): same page, same rows."""
    from fastapi.testclient import TestClient
    from mlops_provider.web.app import create_app

    local, _ = store
    s3 = s3_reports
    assert not s3.is_local
    for path in local.list_files("fraud"):
        if not path.endswith(".html"):  # the verdicts, the alert thread, the retrain request, the summaries
            s3.write_bytes(path, local.read_bytes(path))
    local_page = TestClient(create_app(reports=lambda: local)).get(
        "/monitoring/fraud", params={"days": 4}, headers=bearer(auth_manager)).text
    page = TestClient(create_app()).get("/monitoring/fraud", params={"days": 4}, headers=bearer(auth_manager))
    assert page.status_code == 200, page.text
    assert rows(page.text) == [d.isoformat() for d in (CONCEPT, DRIFTED, MISSING, CLEAN)]
    assert page.text == local_page
