"""SourceDataSensor and the sources' cheap "has the day landed?" look, per source kind.

The sensor's ``poke`` is called as the task runner calls it, on a real landing directory, a real S3
endpoint (moto_server on loopback) and the local PostgreSQL; the whole DAG with reschedules is
tests/dags/test_wait_for_data.py.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from tests.unit.operators.support import task_context

DAY = dt.date(2024, 1, 10)


class _Ti:
    """The sensor's task instance: when it first looked (``None``: this is its first look)."""

    def __init__(self, first_look: dt.datetime | None = None) -> None:
        self.first_look = first_look

    def get_first_reschedule_date(self, context):
        return self.first_look


def _context(first_look: dt.datetime | None = None) -> dict:
    return {**task_context(task_id="wait_for_data"), "ti": _Ti(first_look)}


@pytest.fixture
def landing(mlops_home, fraud_project):
    from mlops_provider.config import paths

    return paths.landing_dir() / "fraud"


def _sensor(day: dt.date = DAY, **kwargs):
    from mlops_provider.sensors.source import SourceDataSensor

    return SourceDataSensor(task_id="wait_for_data", project_name="fraud", day=day.isoformat(), **kwargs)


def test_deadline_is_hours_after_the_day_ends_in_utc():
    from mlops_provider.sensors.source import deadline

    assert deadline(DAY, 4) == dt.datetime(2024, 1, 11, 4, tzinfo=dt.UTC)
    assert deadline(DAY, 0.5) == dt.datetime(2024, 1, 11, 0, 30, tzinfo=dt.UTC)


def test_the_schema_is_the_one_source_of_the_default():
    from mlops_provider.config.project import load_project, schema_default

    assert load_project("fraud").runs["source_wait_hours"] == schema_default("runs.source_wait_hours") == 4


def test_a_wait_longer_than_the_dag_run_timeout_is_refused_at_load(tmp_path, monkeypatch):
    import yaml
    from mlops_provider.config import paths
    from mlops_provider.config.project import load_project
    from mlops_provider.exceptions import ProjectConfigError

    raw = yaml.safe_load((paths.projects_dir() / "fraud.yaml").read_text())
    raw["runs"] = {"dagrun_timeout_minutes": 120, "source_wait_hours": 3}
    (tmp_path / "fraud.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("MLOPS_PROJECTS_DIR", str(tmp_path))
    with pytest.raises(ProjectConfigError, match=r"runs.source_wait_hours.*does not fit in runs.dagrun_timeout_minutes"):
        load_project("fraud")


def test_landing_is_found_the_moment_the_file_is_there(landing, fraud_project):
    from mlops_provider.io.sources import LandingSource, ReadSpec

    from devkit.datagen.landing import write_landing_day

    source, spec = LandingSource(landing), ReadSpec.from_project(fraud_project)
    assert not source.has_data(DAY, spec)
    today = dt.datetime.now(dt.UTC).date()  # deadline tomorrow: the sensor waits
    assert _sensor(today).poke(_context()) is False
    write_landing_day(fraud_project, landing, DAY, rows=120)
    assert source.has_data(DAY, spec) and not source.has_data(DAY + dt.timedelta(days=1), spec)
    assert _sensor(DAY).poke(_context()) is True


def test_landing_globs_and_parquet(landing):
    from mlops_provider.io.sources import LandingSource, ReadSpec

    spec = ReadSpec(format="parquet", pattern="exports/{date:%Y%m%d}/part-*.{format}", label_feed=None)
    source = LandingSource(landing)
    (landing / "exports" / "20240110").mkdir(parents=True)
    (landing / "exports" / "20240110" / "part-0.csv").write_text("x\n1\n")  # another format: not the day's data
    assert not source.has_data(DAY, spec)
    (landing / "exports" / "20240110" / "part-0.parquet").write_bytes(b"PAR1")
    assert source.has_data(DAY, spec)


def test_files_that_do_not_fit_the_pattern_fail_at_once_with_the_fix(landing):
    """Waiting cannot help a misnamed export: the sensor fails on its first look, naming the pattern to set."""
    from airflow.sdk.exceptions import AirflowFailException

    (landing / "records").mkdir(parents=True)
    (landing / "records" / f"export_{DAY:%Y%m%d}.csv").write_text("a\n1\n")
    today_sensor = _sensor(DAY, wait_hours=72)
    with pytest.raises(AirflowFailException, match=r"Set source.pattern: 'records/export_\{date:%Y%m%d\}.csv'"):
        today_sensor.poke(_context())


def test_before_the_deadline_it_waits_then_skips_when_its_own_wait_is_over(landing):
    from airflow.sdk.exceptions import AirflowSkipException

    today = dt.datetime.now(dt.UTC).date()
    now = dt.datetime.now(dt.UTC)
    assert _sensor(today, wait_hours=1).poke(_context(now - dt.timedelta(minutes=59))) is False
    with pytest.raises(AirflowSkipException, match=r"skipped, not failed, nobody paged.*day=" + today.isoformat()):
        _sensor(today, wait_hours=1).poke(_context(now - dt.timedelta(minutes=61)))


def test_after_the_deadline_it_fails_naming_the_source_and_pattern(landing):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as failed:
        _sensor(DAY, wait_hours=2).poke(_context())
    message = str(failed.value)
    assert "by the deadline 2024-01-11 02:00 UTC (2 h after the day ended, runs.source_wait_hours)" in message
    assert f"no files under {landing}" in message and "records/2024-01-10.csv" in message


# -- S3 (moto_server on loopback) ----------------------------------------------------------------------
def test_s3_has_data_by_key_and_by_glob(s3_endpoint):
    import boto3
    from mlops_provider.io.sources import ReadSpec, S3Source

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    bucket = f"wait-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    source = S3Source(client, bucket, "exports/records")
    exact = ReadSpec(pattern="{date}.csv", label_feed=None)
    globbed = ReadSpec(pattern="{date}/part-*.parquet", format="parquet", label_feed=None)
    assert not source.has_data(DAY, exact) and not source.has_data(DAY, globbed)
    client.put_object(Bucket=bucket, Key=f"exports/records/{DAY}.csv", Body=b"a\n1\n")
    client.put_object(Bucket=bucket, Key=f"exports/records/{DAY}/part-3.parquet", Body=b"PAR1")
    assert source.has_data(DAY, exact) and source.has_data(DAY, globbed)
    assert not source.has_data(DAY + dt.timedelta(days=1), exact)


# -- PostgreSQL (the local server) ---------------------------------------------------------------------
def test_postgres_has_data_looks_at_utc_days_only():
    psycopg2 = pytest.importorskip("psycopg2")
    from mlops_provider.io.sources import PostgresSource

    from devkit import services

    params = {"host": services.pg_host(), "port": services.pg_port(), "user": services.pg_admin(),
              "dbname": "postgres", "connect_timeout": 5}
    try:
        psycopg2.connect(**params).close()
    except psycopg2.OperationalError as exc:
        pytest.skip(f"no PostgreSQL on {params['host']}:{params['port']} (start it, .ci/run does): {exc}")
    table = f"wait_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(**params)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE TABLE public."{table}" (id text, "event time" timestamptz)')
            # 23:59:59 of the 9th in UTC is the 10th in +01:00: it must not count for the 10th.
            cur.execute(f'INSERT INTO public."{table}" VALUES (%s, %s)', ("a", "2024-01-10T00:59:59+01:00"))
        source = PostgresSource(lambda: psycopg2.connect(**params), f"public.{table}", "event time")
        assert not source.has_data(DAY)
        with admin.cursor() as cur:
            cur.execute(f'INSERT INTO public."{table}" VALUES (%s, %s)', ("b", "2024-01-10T23:59:59+00:00"))
        assert source.has_data(DAY) and not source.has_data(DAY + dt.timedelta(days=1))
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP TABLE IF EXISTS public."{table}"')
        admin.close()
