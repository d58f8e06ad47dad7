"""Passwords inside URI-valued connection extras are registered with Airflow's secrets masker and never logged
by the hooks (issue 14): MLflow ``tracking_uri`` / ``registry_uri``, Feast ``registry.path``, lake URIs, SMTP."""

from __future__ import annotations

import json
import logging

import pytest

SECRET = "s3cret-in-uri"
URI = f"postgresql://user:{SECRET}@db.internal/mlflow"


def _masked(secret: str) -> bool:
    from airflow.sdk.log import redact

    return secret not in str(redact(f"before {secret} after"))


@pytest.fixture
def caplog():
    """Every record the provider's and Airflow's loggers emit during the test (Airflow's logging setup
    replaces the root handlers, so pytest's own ``caplog`` sees nothing)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler, loggers = Keep(logging.DEBUG), [logging.getLogger(n) for n in ("mlops_provider", "airflow")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    yield records
    for lg, level in zip(loggers, levels, strict=True):
        lg.removeHandler(handler)
        lg.setLevel(level)


def _logged(records) -> str:
    return "\n".join(f"{r.getMessage()} {r.args}" for r in records)


def test_uri_secrets_finds_passwords_and_secret_parameters():
    from mlops_provider.hooks.masking import secrets_in

    extra = {"tracking_uri": "postgresql://u:p%40ss-word@h/db", "other": ["https://h/x?X-Amz-Signature=abcdef123&a=1"],
             "online_store": {"connection_string": "redis:6379,db=0,password=redis-pass-1"},
             "plain": "http://host:5000", "nested": {"path": "s3://bucket/key"}}
    assert set(secrets_in(extra)) == {"p%40ss-word", "p@ss-word", "abcdef123", "redis-pass-1"}


def test_mlflow_hook_masks_and_never_logs_a_password_in_its_uris(monkeypatch, caplog):
    from mlops_provider.hooks.mlflow import MlflowHook

    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_SECRET_TEST", json.dumps({
        "conn_type": "mlflow", "extra": {"tracking_uri": URI, "registry_uri": URI.replace("mlflow", "registry")}}))
    hook = MlflowHook(mlflow_conn_id="mlflow_secret_test")
    assert hook.tracking_uri == URI  # MLflow still gets the real URI
    assert SECRET not in _logged(caplog) and "db.internal" in _logged(caplog)
    assert _masked(SECRET)


def test_feast_hook_masks_and_never_logs_a_registry_password(monkeypatch, caplog, fraud_project):
    from mlops_provider.hooks.feast import FeastHook

    secret = "feast-registry-pw"
    monkeypatch.setenv("AIRFLOW_CONN_FEAST_SECRET_TEST", json.dumps({"conn_type": "feast", "extra": {
        "registry": {"registry_type": "sql", "path": f"postgresql://feast:{secret}@db.internal/feast"}}}))
    settings = FeastHook(fraud_project, feast_conn_id="feast_secret_test").settings()
    assert secret in settings["registry"]["path"]
    assert secret not in _logged(caplog) and "db.internal/feast" in _logged(caplog)
    assert _masked(secret)


def test_lake_and_smtp_hooks_mask_passwords_inside_uris(monkeypatch, caplog):
    from mlops_provider.hooks.lake import LakeHook
    from mlops_provider.hooks.smtp import smtp_settings

    monkeypatch.setenv("AIRFLOW_CONN_LAKE_SECRET_TEST", json.dumps({"conn_type": "mlops_lake", "extra": {
        "lake_uri": "file:///tmp/lake", "reports_uri": "s3://key:lake-secret-1@bucket/reports"}}))
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_SECRET_TEST", json.dumps({"conn_type": "smtp", "host": "mail",
        "extra": {"proxy_url": "http://proxy:smtp-secret-1@proxy.internal:3128"}}))
    LakeHook(lake_conn_id="lake_secret_test")._extra()
    assert smtp_settings("smtp_secret_test").host == "mail"
    assert _masked("lake-secret-1") and _masked("smtp-secret-1")
    assert "lake-secret-1" not in _logged(caplog) and "smtp-secret-1" not in _logged(caplog)


@pytest.mark.parametrize("uri", [URI, f"{URI}?sslmode=require&password={SECRET}"])
def test_provider_log_lines_strip_credentials_from_store_uris(uri):
    from mlops_provider.hooks.masking import safe_uri

    assert SECRET not in safe_uri(uri) and safe_uri(uri).startswith("postgresql://db.internal/mlflow")
