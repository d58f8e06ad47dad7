"""airflow_settings.yaml and its loader: environment references, typed extras, idempotent apply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlops_provider import settings_loader as loader

REPO = Path(__file__).resolve().parents[2]
STACK_ENV = {
    "MLOPS_MLFLOW_URL": "http://127.0.0.1:5000", "MLOPS_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
    "MLOPS_S3_ACCESS_KEY_ID": "key", "MLOPS_S3_SECRET_ACCESS_KEY": "s3-secret", "MLOPS_S3_BUCKET": "lake-bucket",
    "MLOPS_REDIS_HOST": "127.0.0.1", "MLOPS_REDIS_PORT": "6379", "MLOPS_FEAST_REDIS_DB": "9",
    "MLOPS_FEAST_REGISTRY_URI": "postgresql+psycopg2://u:p@127.0.0.1/feast",
    "MLOPS_SMTP_HOST": "127.0.0.1", "MLOPS_SMTP_PORT": "1025", "MLOPS_SMTP_DISABLE_TLS": "true",
    "MLOPS_SOURCE_PG_HOST": "127.0.0.1", "MLOPS_SOURCE_PG_DB": "src", "MLOPS_SOURCE_PG_USER": "src",
    "MLOPS_SOURCE_PG_PASSWORD": "pg-secret",
    "MLOPS_STATE_PG_HOST": "127.0.0.1", "MLOPS_STATE_PG_DB": "state", "MLOPS_STATE_PG_USER": "state",
    "MLOPS_STATE_PG_PASSWORD": "state-secret",
}


def test_references_defaults_and_typed_extras():
    missing: set[str] = set()
    value = {"conn_host": "${A}", "conn_extra": {"flag": "${B:-false}", "n": "${C}", "s": "db=${C}", "lit": "true"}}
    out = loader.substitute(value, {"A": "h", "C": "7"}, missing)
    assert out == {"conn_host": "h", "conn_extra": {"flag": False, "n": 7, "s": "db=7", "lit": "true"}}
    assert not missing
    loader.substitute("${NOPE}-${ALSO_NOPE:-x}", {}, missing)
    assert missing == {"NOPE"}


def test_bundled_settings_resolve_and_name_every_missing_variable():
    settings = loader.load(REPO / "airflow_settings.yaml", env=STACK_ENV)
    conns = {c["conn_id"]: c for c in settings["connections"]}
    assert set(conns) == {"mlflow_default", "feast_default", "mlops_lake_default", "aws_default", "smtp_default",
                          "mlops_source_postgres", "mlops_state_default"}
    assert conns["mlops_state_default"]["conn_type"] == "postgres" and conns["mlops_state_default"]["conn_port"] == "5432"
    assert conns["feast_default"]["conn_extra"]["online_store"] == {"type": "redis",
                                                                    "connection_string": "127.0.0.1:6379,db=9"}
    assert conns["mlops_lake_default"]["conn_extra"]["lake_uri"] == "s3://lake-bucket/lake"
    assert conns["smtp_default"]["conn_extra"]["disable_tls"] is True  # the stack's sink, explicitly
    assert [p["pool_name"] for p in settings["pools"]] == ["mlops_promotion"]
    with pytest.raises(SystemExit, match="MLOPS_S3_BUCKET"):
        loader.load(REPO / "airflow_settings.yaml", env={k: v for k, v in STACK_ENV.items() if k != "MLOPS_S3_BUCKET"})


def test_shipped_smtp_default_uses_starttls(monkeypatch):
    """Without MLOPS_SMTP_DISABLE_TLS the bundled SMTP connection, and the hook's defaults, use STARTTLS."""
    from mlops_provider.hooks.smtp import smtp_settings

    env = {k: v for k, v in STACK_ENV.items() if k != "MLOPS_SMTP_DISABLE_TLS"}
    conns = {c["conn_id"]: c for c in loader.load(REPO / "airflow_settings.yaml", env=env)["connections"]}
    assert conns["smtp_default"]["conn_extra"]["disable_tls"] is False
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_TLS_TEST", json.dumps({"conn_type": "smtp", "host": "smtp.internal"}))
    assert smtp_settings("smtp_tls_test").starttls is True


@pytest.fixture
def connections_restored(airflow_db):
    """The metadata DB's connections and pools as they were before the test: the bundled settings point at a
    stack that is not running (an S3 lake on :9000), and the DB is shared with the tests that run after."""
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session
    from sqlalchemy import select

    fields = ("conn_type", "host", "schema", "login", "password", "port", "extra")
    with create_session() as session:
        connections = {c.conn_id: [getattr(c, f) for f in fields] for c in session.scalars(select(Connection))}
        pools = {p.pool: (p.slots, p.description) for p in session.scalars(select(Pool))}
    yield
    with create_session() as session:
        for conn in session.scalars(select(Connection)):
            if conn.conn_id not in connections:
                session.delete(conn)
            else:
                for name, value in zip(fields, connections[conn.conn_id], strict=True):
                    setattr(conn, name, value)
        for pool in session.scalars(select(Pool)):
            if pool.pool not in pools:
                session.delete(pool)
            else:
                pool.slots, pool.description = pools[pool.pool]


def test_apply_twice_updates_in_place(connections_restored, tmp_path):
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    settings = loader.load(REPO / "airflow_settings.yaml", env=STACK_ENV)
    first = loader.apply(settings)
    assert all("created" in c or "updated" in c for c in first["connections"])
    second = loader.apply(loader.load(REPO / "airflow_settings.yaml", env={**STACK_ENV, "MLOPS_SMTP_PORT": "2525"}))
    assert all("updated" in c for c in second["connections"])
    with create_session() as session:
        assert session.scalar(select(func.count()).select_from(Connection)
                              .where(Connection.conn_id == "smtp_default")) == 1
        smtp = session.scalar(select(Connection).where(Connection.conn_id == "smtp_default"))
        assert smtp.port == 2525 and json.loads(smtp.extra)["retry_limit"] == 3
        aws = session.scalar(select(Connection).where(Connection.conn_id == "aws_default"))
        assert aws.password == "s3-secret"  # stored encrypted when a Fernet key is set, read back decrypted
        pool = session.scalar(select(Pool).where(Pool.pool == "mlops_promotion"))
        assert pool.slots == 1
