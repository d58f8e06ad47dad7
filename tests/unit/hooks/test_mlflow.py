"""MlflowHook: connection parsing (JSON env var), the embedded fallback, credentials scoping and links."""

from __future__ import annotations

import json
import os
import socket

import pytest


def test_missing_connection_falls_back_to_embedded_store(mlops_home, monkeypatch):
    from mlops_provider.hooks.mlflow import MlflowHook

    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)
    hook = MlflowHook()
    assert hook.tracking_uri == f"sqlite:///{mlops_home / 'mlflow' / 'mlflow.db'}"
    assert hook.registry_uri == hook.tracking_uri
    assert hook.artifact_location("fraud") == (mlops_home / "mlflow" / "artifacts").as_uri() + "/fraud"

    ok, message = hook.test_connection()
    assert ok and hook.tracking_uri in message
    exp_id = hook.ensure_experiment("fraud")
    assert hook.ensure_experiment("fraud") == exp_id  # idempotent
    experiment = hook.get_conn().get_experiment(exp_id)
    assert experiment.artifact_location == hook.artifact_location("fraud")


def test_links_for_the_embedded_store(mlops_home, monkeypatch):
    from mlops_provider.hooks.mlflow import MlflowHook

    monkeypatch.delenv("MLOPS_MLFLOW_UI_URL", raising=False)
    hook = MlflowHook()
    client = hook.get_conn()
    exp_id = hook.ensure_experiment("links")
    run = client.create_run(exp_id)
    client.set_terminated(run.info.run_id)
    url = hook.run_url(run.info.run_id)
    assert url.startswith("file://") and url.endswith(f"{run.info.run_id}/artifacts")
    assert str(mlops_home) in url

    monkeypatch.setenv("MLOPS_MLFLOW_UI_URL", "http://localhost:5000/")
    assert hook.run_url(run.info.run_id) == f"http://localhost:5000/#/experiments/{exp_id}/runs/{run.info.run_id}"
    assert hook.model_version_url("fraud classifier", 3) == "http://localhost:5000/#/models/fraud%20classifier/versions/3"


def test_connection_from_json_env_var(monkeypatch):
    from mlops_provider.hooks.mlflow import MlflowHook

    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({
        "conn_type": "mlflow", "host": "http://127.0.0.1", "port": 5000, "login": "ml-user",
        "password": "s3cret-pass",
        "extra": {"registry_uri": "postgresql://reg@db/registry", "artifact_location": "s3://bucket/mlflow/"},
    }))
    monkeypatch.delenv("MLOPS_MLFLOW_UI_URL", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "someone-else")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    hook = MlflowHook()
    assert hook.tracking_uri == "http://127.0.0.1:5000"
    assert hook.registry_uri == "postgresql://reg@db/registry"
    assert hook.artifact_location("fraud") == "s3://bucket/mlflow/fraud"
    assert hook.model_version_url("fraud_classifier", "7") == "http://127.0.0.1:5000/#/models/fraud_classifier/versions/7"

    with hook.environment():
        assert os.environ["MLFLOW_TRACKING_USERNAME"] == "ml-user"
        assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "s3cret-pass"
        import mlflow

        assert mlflow.get_tracking_uri() == "http://127.0.0.1:5000"
    # Credentials are scoped to the block: the process's own values come back, absent ones stay absent.
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "someone-else"
    assert "MLFLOW_TRACKING_PASSWORD" not in os.environ
    assert os.environ.get("MLFLOW_TRACKING_URI") is None


@pytest.mark.parametrize(
    ("conn", "expected"),
    [
        ({"conn_type": "mlflow", "host": "mlflow.internal", "schema": "https", "port": 8443},
         "https://mlflow.internal:8443"),
        ({"conn_type": "mlflow", "host": "mlflow.internal"}, "http://mlflow.internal"),
        ({"conn_type": "mlflow", "host": "https://mlflow.example.com/prefix/"}, "https://mlflow.example.com/prefix"),
        ({"conn_type": "mlflow", "extra": {"tracking_uri": "sqlite:////tmp/x/mlflow.db"}}, "sqlite:////tmp/x/mlflow.db"),
    ],
)
def test_tracking_uri_forms(monkeypatch, conn, expected):
    from mlops_provider.hooks.mlflow import MlflowHook

    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_FORMS", json.dumps(conn))
    hook = MlflowHook(mlflow_conn_id="mlflow_forms")
    assert hook.tracking_uri == expected and hook.registry_uri == expected


def test_unreachable_server_fails_test_connection(monkeypatch):
    from mlops_provider.hooks.mlflow import MlflowHook

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DOWN", json.dumps({"conn_type": "mlflow", "host": "127.0.0.1",
                                                               "port": port}))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    ok, message = MlflowHook(mlflow_conn_id="mlflow_down").test_connection()
    assert not ok and f"127.0.0.1:{port}" in message


def test_hook_metadata_matches_provider_info():
    from mlops_provider.get_provider_info import get_provider_info
    from mlops_provider.hooks.mlflow import MlflowHook

    assert (MlflowHook.conn_type, MlflowHook.hook_name, MlflowHook.default_conn_name) == ("mlflow", "MLflow",
                                                                                          "mlflow_default")
    entry = {c["connection-type"]: c["hook-class-name"] for c in get_provider_info()["connection-types"]}
    assert entry["mlflow"] == "mlops_provider.hooks.mlflow.MlflowHook"
    behaviour = MlflowHook.get_ui_field_behaviour()
    assert {"hidden_fields", "relabeling", "placeholders"} <= set(behaviour)
    assert "registry_uri" in behaviour["placeholders"]["extra"]
