"""Report links carry no credential (issue 14): Airflow 3 stores every extra link's URL in XCom, so an ``s3://``
report links its S3 console page (the person's own AWS login), never a presigned URL."""

from __future__ import annotations

import json


def test_an_s3_report_links_its_console_page_not_a_presigned_url(monkeypatch):
    from mlops_provider.hooks.lake import LakeHook

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws", "login": "AKIAEXAMPLE",
                                                               "password": "aws-secret-key-123"}))
    url = LakeHook().browser_url("s3://reports-bucket/fraud/monitoring/dt=2024-01-09/report.html")
    assert url == ("https://s3.console.aws.amazon.com/s3/object/reports-bucket"
                   "?prefix=fraud/monitoring/dt%3D2024-01-09/report.html")
    assert "X-Amz" not in url and "Signature" not in url and "aws-secret-key-123" not in url


def test_a_custom_endpoint_or_a_local_report_links_the_plain_uri(monkeypatch):
    from mlops_provider.hooks.lake import LakeHook

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    assert LakeHook().browser_url("s3://bucket/report.html") == "s3://bucket/report.html"
    assert LakeHook().browser_url("file:///tmp/reports/report.html") == "file:///tmp/reports/report.html"
