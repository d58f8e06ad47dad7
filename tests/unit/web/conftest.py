"""What the report view's tests share: Airflow's auth manager and its bearer tokens, Airflow's own api-server app
with the plugin mounted, and an S3 report store (moto) behind the ``mlops_lake`` connection."""

from __future__ import annotations

import json
import uuid

import pytest


@pytest.fixture(scope="module")
def auth_manager(airflow_db):
    """Airflow's configured auth manager (the simple one on the embedded default), as the api-server creates it;
    a token is checked against the metadata database (revoked tokens)."""
    from airflow.api_fastapi.app import create_auth_manager

    return create_auth_manager()


def bearer(auth_manager, role: str | None = "viewer") -> dict[str, str]:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return {"Authorization": f"Bearer {auth_manager.generate_jwt(SimpleAuthManagerUser(username='oncall', role=role))}"}


@pytest.fixture
def airflow_client(monkeypatch):
    """Airflow's own api-server app (what ``airflow api-server`` runs, the plugin under /mlops) as a test client,
    reading reports from the report store at the URI given (``MLOPS_REPORTS_URI``)."""
    from airflow.api_fastapi.app import create_app as airflow_app
    from fastapi.testclient import TestClient

    def client(reports_uri: str) -> TestClient:
        monkeypatch.setenv("MLOPS_REPORTS_URI", reports_uri)
        return TestClient(airflow_app(apps="core"))

    return client


@pytest.fixture
def s3_reports(s3_endpoint, monkeypatch):
    """A fresh S3 bucket (moto) as the default report store of the ``mlops_lake`` connection; that store, as
    ``LakeHook().get_reports()`` gives it (what the plugin app reads without a store of its own)."""
    import boto3
    from mlops_provider.hooks.lake import LakeHook

    bucket = f"reports-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=bucket)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_REPORTS_TEST", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}}))
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_LAKE_DEFAULT", json.dumps({
        "conn_type": "mlops_lake", "extra": {"lake_uri": f"s3://{bucket}/lake", "reports_uri": f"s3://{bucket}/reports",
                                             "aws_conn_id": "aws_reports_test"}}))
    return LakeHook().get_reports()
