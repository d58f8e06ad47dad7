"""Links to reports and the runbook are http(s) addresses of the report view in the Airflow UI."""

from __future__ import annotations

from mlops_provider.io.lake import Lake
from mlops_provider.links.artifacts import report_link, report_view_url, runbook_view_url


def test_report_store_uris_become_report_view_urls(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    local = Lake(f"file://{tmp_path / 'reports'}")
    uri = local.uri(f"{local.root}/fraud/monitoring/dt=2024-01-12/report.html")
    assert report_link(local, uri) == "https://airflow.example.com/mlops/reports/fraud/monitoring/dt=2024-01-12/report.html"
    import pyarrow.fs as pafs

    s3 = Lake("s3://bucket/reports", filesystem=pafs.S3FileSystem(anonymous=True, region="us-east-1"))  # URIs only
    assert report_link(s3, "s3://bucket/reports/churn/data_docs/manual__2024-01-12T00:00:00+00:00/v.html") == (
        "https://airflow.example.com/mlops/reports/churn/data_docs/manual__2024-01-12T00%3A00%3A00%2B00%3A00/v.html")
    # Outside the report store: nothing the view could serve, returned as it is.
    assert report_link(s3, "s3://other/x.html") == "s3://other/x.html"
    assert report_link(s3, None) is None
    assert report_view_url("fraud", "a b/<x>.html") == "https://airflow.example.com/mlops/reports/fraud/a%20b/%3Cx%3E.html"


def test_runbook_url_is_the_plugin_page_unless_configured(monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com")
    monkeypatch.delenv("MLOPS_RUNBOOK_URL", raising=False)
    assert runbook_view_url("data-drift") == "https://airflow.example.com/mlops/docs/runbook.md#data-drift"
    monkeypatch.setenv("MLOPS_RUNBOOK_URL", "https://wiki.example.com/mlops-runbook")
    assert runbook_view_url() == "https://wiki.example.com/mlops-runbook"
