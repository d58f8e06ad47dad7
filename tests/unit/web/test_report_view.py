"""The report view mounted in Airflow's api-server (mlops_provider.web): reports and Data Docs from a local or
an S3 report store with their Content-Type, nothing outside the project's prefix, Airflow's auth required."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")

from tests.unit.web.conftest import bearer  # noqa: E402

REPORT = b"<!DOCTYPE html><html><body><h1>drift report</h1></body></html>"
VERDICT = b'{"kind": "drift"}'


def fill(store) -> None:
    store.write_bytes("fraud/monitoring/dt=2024-01-12/report.html", REPORT)
    store.write_bytes("fraud/monitoring/dt=2024-01-12/report.verdict.json", VERDICT)
    store.write_bytes("fraud/data_docs/static/styles/data_docs_default_styles.css", b"body{color:#000}")
    store.write_bytes("churn/monitoring/dt=2024-01-12/report.html", b"<html>another project</html>")
    store.write_bytes("secret.txt", b"outside every project")


@pytest.fixture
def local_client(tmp_path, auth_manager):
    from fastapi.testclient import TestClient
    from mlops_provider.io.lake import Lake
    from mlops_provider.web.app import create_app

    store = Lake(f"file://{tmp_path / 'reports'}")
    fill(store)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "runbook.md").write_text("# On-call runbook\n\n## Data drift\n\nStep <script>x</script>\n")
    app = create_app(reports=lambda: store, docs_dir=tmp_path / "docs")
    return TestClient(app)


def test_serves_reports_with_their_content_type(local_client, auth_manager):
    auth = bearer(auth_manager)
    page = local_client.get("/reports/fraud/monitoring/dt=2024-01-12/report.html", headers=auth)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.content == REPORT
    verdict = local_client.get("/reports/fraud/monitoring/dt=2024-01-12/report.verdict.json", headers=auth)
    assert (verdict.status_code, verdict.headers["content-type"], verdict.content) == (200, "application/json", VERDICT)
    css = local_client.get("/reports/fraud/data_docs/static/styles/data_docs_default_styles.css", headers=auth)
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    missing = local_client.get("/reports/fraud/monitoring/dt=2024-01-13/report.html", headers=auth)
    assert missing.status_code == 404 and "no report" in missing.json()["detail"]


@pytest.mark.parametrize("path", [
    "/reports/fraud/..%2Fchurn%2Fmonitoring%2Fdt=2024-01-12%2Freport.html",
    "/reports/fraud/%2e%2e/secret.txt",
    "/reports/fraud/monitoring/%2e%2e/%2e%2e/secret.txt",
    "/reports/fraud/%2e%2e%2fsecret.txt",
    "/reports/fraud/monitoring//dt=2024-01-12/report.html",
    "/reports/fraud/monitoring/%2e/dt=2024-01-12/report.html",
    "/reports/fraud/..%5Csecret.txt",
    "/reports/fraud/monitoring/dt=2024-01-12/.tmp-1234-report.html",
    "/reports/%2e%2e/secret.txt",
])
def test_refuses_paths_outside_the_project_prefix(local_client, auth_manager, path):
    response = local_client.get(path, headers=bearer(auth_manager))
    assert response.status_code == 404, (path, response.status_code, response.content[:200])
    assert b"another project" not in response.content and b"outside every project" not in response.content


def test_object_path_keeps_to_the_project():
    from fastapi import HTTPException
    from mlops_provider.web.app import object_path

    assert object_path("fraud", "monitoring/dt=2024-01-12/report.html") == "fraud/monitoring/dt=2024-01-12/report.html"
    for project, path in [("fraud", "../churn/x.html"), ("fraud", "a/../../x"), ("..", "x"), ("fraud", "/etc/passwd"),
                          ("fraud", ""), ("fraud/..", "x"), ("fraud", "a\\..\\x"), ("fraud", "a\x00b")]:
        with pytest.raises(HTTPException) as raised:
            object_path(project, path)
        assert raised.value.status_code == 404


def test_unauthenticated_and_unauthorised_requests_are_refused(local_client, auth_manager):
    url = "/reports/fraud/monitoring/dt=2024-01-12/report.html"
    anonymous = local_client.get(url)
    assert anonymous.status_code == 401 and REPORT not in anonymous.content
    forged = local_client.get(url, headers={"Authorization": "Bearer not-a-token"})
    assert forged.status_code in (401, 403) and REPORT not in forged.content
    no_role = local_client.get(url, headers=bearer(auth_manager, role=None))
    assert no_role.status_code == 403 and "read access to DAG 'fraud__monitor'" in no_role.json()["detail"]
    assert local_client.get("/docs/runbook.md").status_code == 401
    assert local_client.get("/runbook", follow_redirects=False).status_code == 401
    # The UI's own session cookie is accepted as well as a bearer token.
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    token = bearer(auth_manager)["Authorization"].split(" ", 1)[1]
    local_client.cookies.set(COOKIE_NAME_JWT_TOKEN, token)
    assert local_client.get(url).content == REPORT


def test_runbook_is_rendered_with_anchors_and_escaped_html(local_client, auth_manager):
    auth = bearer(auth_manager)
    redirect = local_client.get("/runbook", headers=auth, follow_redirects=False)
    assert redirect.status_code == 307 and redirect.headers["location"] == "/mlops/docs/runbook.md"
    page = local_client.get("/docs/runbook.md", headers=auth)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<h2 id="data-drift">Data drift</h2>' in page.text
    assert "<script>x</script>" not in page.text and "&lt;script&gt;x&lt;/script&gt;" in page.text
    for name in ("..%2Fsecret.md", "RUNBOOK.md", "runbook.txt", "nothere.md"):
        assert local_client.get(f"/docs/{name}", headers=auth).status_code == 404


def test_the_checkouts_runbook_has_the_anchors_emails_link_to(auth_manager):
    """Every runbook anchor an email names exists in the rendered docs/runbook.md."""
    from mlops_provider.config import paths
    from mlops_provider.web.app import render_markdown

    page = render_markdown((paths.repo_root() / "docs" / "runbook.md").read_text(), "runbook.md")
    for anchor in ("data-drift", "prediction-drift", "performance", "validation-failure", "task-failure", "rollback",
                   "silence-and-cooldown"):
        assert f'id="{anchor}"' in page, anchor


def test_serves_reports_from_an_s3_report_store_through_the_lake_connection(s3_reports, auth_manager):
    """The default report store comes from the ``mlops_lake`` connection, here an S3 bucket (moto)."""
    from fastapi.testclient import TestClient
    from mlops_provider.web.app import create_app

    store = s3_reports
    assert not store.is_local
    fill(store)
    client = TestClient(create_app())
    auth = bearer(auth_manager)
    page = client.get("/reports/fraud/monitoring/dt=2024-01-12/report.html", headers=auth)
    assert (page.status_code, page.headers["content-type"], page.content) == (200, "text/html; charset=utf-8", REPORT)
    assert client.get("/reports/fraud/%2e%2e/secret.txt", headers=auth).status_code == 404
    assert client.get("/reports/fraud/monitoring/dt=2024-01-12/report.html").status_code == 401


def test_plugin_mounts_the_app_under_mlops():
    """Airflow finds the plugin through the package's ``airflow.plugins`` entry point."""
    from importlib.metadata import entry_points

    from mlops_provider.web.plugin import MlopsWebPlugin

    found = [ep for ep in entry_points(group="airflow.plugins") if ep.value == "mlops_provider.web.plugin:MlopsWebPlugin"]
    assert found, "pip install -e . registers the airflow.plugins entry point (pyproject.toml)"
    (mounted,) = MlopsWebPlugin.fastapi_apps
    assert mounted["url_prefix"] == "/mlops"


def test_airflow_api_server_mounts_the_report_view(tmp_path, airflow_client, auth_manager):
    """Airflow's own api-server app (what ``airflow api-server`` runs) serves /mlops/reports behind its login."""
    from mlops_provider.io.lake import Lake

    fill(Lake(f"file://{tmp_path / 'reports'}"))
    client = airflow_client(f"file://{tmp_path / 'reports'}")
    url = "/mlops/reports/fraud/monitoring/dt=2024-01-12/report.html"
    assert client.get(url).status_code == 401
    page = client.get(url, headers=bearer(auth_manager))
    assert (page.status_code, page.headers["content-type"], page.content) == (200, "text/html; charset=utf-8", REPORT)
