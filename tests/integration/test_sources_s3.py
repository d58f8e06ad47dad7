"""The S3 source and the lake on S3, against a local S3 endpoint (``moto_server`` started for the session).

The objects are read and written through the amazon provider's hooks (``S3Hook`` for the source, the
lake's S3 filesystem from the same ``aws`` connection), as in production against S3 or MinIO.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from devkit.datagen.landing import write_landing_day

pytestmark = pytest.mark.integration

S3_CONN_ID = "mlops_test_s3"
@pytest.fixture
def s3_conn(s3_endpoint, monkeypatch):
    """An Airflow ``aws`` connection to the local endpoint (env-var JSON), and no AWS settings from outside."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv(f"AIRFLOW_CONN_{S3_CONN_ID.upper()}", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
    }))
    return S3_CONN_ID


@pytest.fixture
def s3_client(s3_conn):
    """A boto3 S3 client built by the amazon provider's S3Hook from that connection."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=s3_conn).get_conn()

SOURCE_BUCKET, PREFIX = "raw-data", "exports/fraud"
LAKE_CONN_ID = "mlops_test_lake_s3"
DAYS = [dt.date(2024, 5, 1) + dt.timedelta(days=i) for i in range(3)]
DAY = DAYS[1]


def _upload_dir(client, local: Path, bucket: str, prefix: str) -> list[str]:
    keys = []
    for path in sorted(p for p in local.rglob("*") if p.is_file() and not p.name.startswith(".")):
        key = f"{prefix}/{path.relative_to(local).as_posix()}"
        client.upload_file(str(path), bucket, key)
        keys.append(key)
    return keys


def _make_s3_project(s3_client, tmp_path, monkeypatch, options: dict | None = None, timestamps: str = "naive"):
    """The fraud project reading daily files from ``s3://raw-data-.../exports/fraud`` (three days uploaded);
    ``options`` are extra ``source`` keys (format, pattern, ...)."""
    import yaml
    from mlops_provider.config import paths
    from mlops_provider.config.project import load_project

    bucket = f"{SOURCE_BUCKET}-{tmp_path.name.lower().replace('_', '-')[-30:]}"
    s3_client.create_bucket(Bucket=bucket)
    raw = yaml.safe_load((paths.repo_root() / "include" / "projects" / "fraud.yaml").read_text())
    raw["source"] = {"kind": "s3", "conn_id": S3_CONN_ID, "bucket": bucket, "prefix": f"/{PREFIX}/", **(options or {})}
    projects = tmp_path / "projects"
    projects.mkdir()
    (projects / "fraud.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("MLOPS_PROJECTS_DIR", str(projects))
    project = load_project("fraud")
    assert project.source["kind"] == "s3"
    local = tmp_path / "export"
    for day in DAYS:
        write_landing_day(project, local, day, rows=300, timestamps=timestamps)
    _upload_dir(s3_client, local, bucket, PREFIX)
    return project, bucket, local


@pytest.fixture
def s3_project(s3_client, mlops_home, tmp_path, monkeypatch):
    """The fraud project reading daily CSVs from ``s3://raw-data/exports/fraud`` (three days uploaded)."""
    return _make_s3_project(s3_client, tmp_path, monkeypatch)


def _source(project):
    from mlops_provider.operators.ingest import _source as build

    return build(project)


def test_s3_source_extracts_exactly_the_day_and_rerun_replaces(s3_project, s3_client):
    from mlops_provider.config import paths
    from mlops_provider.io.lake import Lake
    from mlops_provider.stages.ingest import gate_day, labels_table, records_table, stage_day

    project, bucket, local = s3_project
    lake, reports, source = Lake(), Lake(paths.reports_uri()), _source(project)
    staged = stage_day(project, lake, source, DAY, run_id="scheduled__2024-05-02")
    assert staged["sources"] == [f"s3://{bucket}/{PREFIX}/records/{DAY}.csv"]
    assert staged["rows"] == 300
    published = gate_day(project, lake, reports, DAY, run_id="scheduled__2024-05-02")
    assert published["success"], published["failed"]
    frame = lake.read(records_table(project), DAY)
    assert set(frame["transaction_id"].str[1:9]) == {f"{DAY:%Y%m%d}"}, "no rows of the neighbouring days"
    assert frame["event_timestamp"].min() >= dt.datetime.combine(DAY, dt.time())
    assert frame["event_timestamp"].max() < dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time())
    assert lake.partitions(records_table(project)) == [DAY]

    # A corrected export of the day (fewer rows) replaces the partition on rerun.
    write_landing_day(project, local, DAY, rows=250)
    s3_client.upload_file(str(local / "records" / f"{DAY}.csv"), bucket, f"{PREFIX}/records/{DAY}.csv")
    stage_day(project, lake, source, DAY, run_id="manual__rerun")
    again = gate_day(project, lake, reports, DAY, run_id="manual__rerun")
    assert again["partition"] == published["partition"]
    assert len(lake.read(records_table(project), DAY)) == 250

    # Labels are read from labels/<arrival day>.csv: those of DAYS[0] arrive label.delay_days later.
    arrival = DAYS[0] + dt.timedelta(days=project.label_delay_days)
    write_landing_day(project, local, arrival, rows=120)  # the arrival day's own records must exist too
    _upload_dir(s3_client, local, bucket, PREFIX)
    labelled = stage_day(project, lake, source, arrival, run_id="scheduled__labels")
    assert labelled["labels"]["rows"] == 300
    assert not lake.exists(labels_table(project), arrival), "published by the gate, not at extraction"
    gate_day(project, lake, reports, arrival, run_id="scheduled__labels")
    assert set(lake.read(labels_table(project), arrival)["transaction_id"].str[1:9]) == {f"{DAYS[0]:%Y%m%d}"}


def test_s3_unreadable_file_is_quarantined_with_a_clear_error(s3_project, s3_client):
    from mlops_provider.exceptions import DataValidationError
    from mlops_provider.io.lake import Lake
    from mlops_provider.stages.ingest import records_table, stage_day, staging_table

    project, bucket, local = s3_project
    bad = dt.date(2024, 5, 10)
    write_landing_day(project, local, bad, rows=200, scenario="unreadable")
    key = f"{PREFIX}/records/{bad}.csv"
    s3_client.upload_file(str(local / "records" / f"{bad}.csv"), bucket, key)
    lake = Lake()
    with pytest.raises(DataValidationError) as err:
        stage_day(project, lake, _source(project), bad, run_id="scheduled__2024-05-10")
    message = str(err.value)
    assert f"s3://{bucket}/{key}: not a readable CSV file" in message and "quarantined" in message
    assert not lake.exists(records_table(project), bad) and not lake.exists(staging_table(project), bad)
    where = f"_quarantine/fraud/dt={bad}/scheduled__2024-05-10"
    assert lake.read_bytes(f"{where}/raw-{bad}.csv") == (local / "records" / f"{bad}.csv").read_bytes()
    assert json.loads(lake.read_bytes(f"{where}/validation.json"))["source"] == f"s3://{bucket}/{key}"


def test_s3_empty_object_is_quarantined_with_a_clear_error(s3_project, s3_client):
    from mlops_provider.exceptions import DataValidationError
    from mlops_provider.io.lake import Lake
    from mlops_provider.stages.ingest import stage_day

    project, bucket, _ = s3_project
    empty = dt.date(2024, 5, 11)
    s3_client.put_object(Bucket=bucket, Key=f"{PREFIX}/records/{empty}.csv", Body=b"")
    with pytest.raises(DataValidationError, match=r"not a readable CSV file: .*Empty CSV file"):
        stage_day(project, Lake(), _source(project), empty, run_id="scheduled__2024-05-11")


def test_s3_missing_day_is_a_source_error_naming_it(s3_project):
    from mlops_provider.exceptions import SourceError
    from mlops_provider.io.lake import Lake
    from mlops_provider.stages.ingest import stage_day

    project, bucket, _ = s3_project
    with pytest.raises(SourceError, match=r"fraud 2024-05-20: nothing has landed for this interval in the s3 source") as err:
        stage_day(project, Lake(), _source(project), dt.date(2024, 5, 20), run_id="scheduled__2024-05-20")
    assert err.value.retryable
    assert (f"records/2024-05-20.csv is not in s3://{bucket}/{PREFIX} yet (3 files fit the pattern "
            "'records/{date}.{format}', e.g. records/2024-05-03.csv)") in str(err.value)


# -- issue 13: time zones, formats and patterns on S3 ------------------------------------------------------
def test_s3_timestamps_with_offsets_pass_the_gate_as_utc(s3_client, mlops_home, tmp_path, monkeypatch):
    from mlops_provider.config import paths
    from mlops_provider.io.lake import Lake
    from mlops_provider.stages.ingest import gate_day, records_table, stage_day

    from devkit.datagen.landing import generate_day

    project, bucket, local = _make_s3_project(s3_client, tmp_path, monkeypatch, timestamps="offset")
    assert "-05:00" in (local / "records" / f"{DAY}.csv").read_text()
    lake = Lake()
    stage_day(project, lake, _source(project), DAY, run_id="scheduled__zoned")
    summary = gate_day(project, lake, Lake(paths.reports_uri()), DAY, run_id="scheduled__zoned")
    assert summary["success"], summary["failed"]
    published = lake.read(records_table(project), DAY)["event_timestamp"]
    assert published.dt.tz is None
    assert published.tolist() == generate_day(project, DAY, 300)["event_timestamp"].tolist()


def test_s3_parquet_objects_named_by_a_pattern(s3_client, mlops_home, tmp_path, monkeypatch):
    from mlops_provider.config import paths
    from mlops_provider.io.lake import Lake
    from mlops_provider.stages.ingest import gate_day, labels_table, records_table, stage_day

    options = {"format": "parquet", "pattern": "tx/{date:%Y/%m/%d}/part-*.parquet",
               "labels_pattern": "chargebacks/{date}.parquet"}
    project, bucket, local = _make_s3_project(s3_client, tmp_path, monkeypatch, options, timestamps="offset")
    arrival = DAYS[0] + dt.timedelta(days=project.label_delay_days)
    write_landing_day(project, local, arrival, rows=100)
    _upload_dir(s3_client, local, bucket, PREFIX)
    lake, source = Lake(), _source(project)
    staged = stage_day(project, lake, source, arrival, run_id="scheduled__parquet")
    assert staged["sources"] == [f"s3://{bucket}/{PREFIX}/tx/2024/05/04/part-0.parquet"]
    assert staged["labels"]["sources"] == [f"s3://{bucket}/{PREFIX}/chargebacks/2024-05-04.parquet"]
    summary = gate_day(project, lake, Lake(paths.reports_uri()), arrival, run_id="scheduled__parquet")
    assert summary["success"], summary["failed"]
    assert len(lake.read(records_table(project), arrival)) == 100
    labels = lake.read(labels_table(project), arrival)
    assert len(labels) == 300 and labels["label_timestamp"].dt.tz is None

    # A misnamed object: found vs expected, not retried.
    from mlops_provider.io.sources import SourceMismatchError

    s3_client.put_object(Bucket=bucket, Key=f"{PREFIX}/other/fraud_2024-05-09.parquet", Body=b"x")
    for key in [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/tx/")["Contents"]]:
        s3_client.delete_object(Bucket=bucket, Key=key)
    with pytest.raises(SourceMismatchError) as err:
        stage_day(project, lake, source, dt.date(2024, 5, 9), run_id="scheduled__misnamed")
    assert (f"found other/fraud_2024-05-09.parquet in s3://{bucket}/{PREFIX}, expected pattern "
            "'tx/{date:%Y/%m/%d}/part-*.parquet' (tx/2024/05/09/part-*.parquet for 2024-05-09)") in str(err.value)
    assert "Set source.pattern: 'other/fraud_{date}.parquet'" in str(err.value)


# -- the lake itself on S3 ----------------------------------------------------------------------------
@pytest.fixture
def s3_lake_conn(s3_client, s3_conn, monkeypatch, tmp_path):
    """An ``mlops_lake`` connection putting the lake and the reports in a fresh bucket; returns (conn id, bucket)."""
    bucket = f"lake-{tmp_path.name.lower().replace('_', '-')[-30:]}"
    s3_client.create_bucket(Bucket=bucket)
    monkeypatch.setenv(f"AIRFLOW_CONN_{LAKE_CONN_ID.upper()}", json.dumps({"conn_type": "mlops_lake", "extra": {
        "lake_uri": f"s3://{bucket}/lake", "reports_uri": f"s3://{bucket}/reports", "aws_conn_id": s3_conn}}))
    return LAKE_CONN_ID, bucket


def _keys(client, bucket: str, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
                  if not o["Key"].endswith("/"))


def test_lake_on_s3_writes_atomically_and_replaces(s3_lake_conn, s3_client):
    import pyarrow as pa
    from mlops_provider.hooks.lake import LakeHook

    conn_id, bucket = s3_lake_conn
    hook = LakeHook(lake_conn_id=conn_id)
    assert hook.test_connection()[0]
    lake = hook.get_conn()
    assert lake.root_uri == f"s3://{bucket}/lake" and not lake.is_local
    prefix = "lake/t/dt=2024-05-02/"

    uri = lake.write("t", DAY, pa.table({"x": [1, 2, 3]}))
    assert uri == f"s3://{bucket}/lake/t/dt=2024-05-02/data.parquet"
    assert _keys(s3_client, bucket, prefix) == [prefix + "data.parquet"], "no temporary object left behind"
    assert lake.partitions("t") == [DAY]

    # A rerun replaces the partition (one object, the new rows), streamed as record batches.
    lake.write("t", DAY, iter([pa.record_batch({"x": [7, 8]}), pa.record_batch({"x": [9]})]))
    assert lake.read("t", DAY)["x"].tolist() == [7, 8, 9]
    assert _keys(s3_client, bucket, prefix) == [prefix + "data.parquet"]

    # A writer that dies half-way leaves the previous partition intact and nothing else.
    def crashing():
        yield pa.record_batch({"x": list(range(50_000))})
        raise RuntimeError("worker killed mid-write")

    with pytest.raises(RuntimeError, match="mid-write"):
        lake.write("t", DAY, crashing())
    import gc

    gc.collect()  # an unclosed writer would finish its upload now
    assert lake.read("t", DAY)["x"].tolist() == [7, 8, 9]
    assert _keys(s3_client, bucket, prefix) == [prefix + "data.parquet"]

    lake.delete("t", DAY)
    assert lake.partitions("t") == [] and _keys(s3_client, bucket, prefix) == []


def test_ingest_and_gate_with_source_and_lake_on_s3(s3_project, s3_lake_conn, s3_client):
    """The operators' path end to end on S3: raw CSV -> staging -> GX -> lake partition, reports on S3."""
    from mlops_provider.operators.ingest import IngestOperator, ValidateBatchOperator

    project, _, _ = s3_project
    conn_id, bucket = s3_lake_conn
    context = {"run_id": "scheduled__2024-05-03"}
    staged = IngestOperator(task_id="extract", project_name="fraud", day=DAYS[2].isoformat(),
                            lake_conn_id=conn_id).execute(context)
    assert staged["staged"] == f"s3://{bucket}/lake/_staging/fraud/records/dt={DAYS[2]}/data.parquet"

    validate = ValidateBatchOperator(task_id="validate", project_name="fraud", day=DAYS[2].isoformat(),
                                     lake_conn_id=conn_id)
    pushed = {}
    ti = SimpleNamespace(xcom_push=lambda key, value: pushed.update({key: value}))
    summary = validate.execute({**context, "ti": ti})
    assert summary["success"] and summary["partition"] == f"s3://{bucket}/lake/fraud/records/dt={DAYS[2]}/data.parquet"
    assert summary["result"].startswith(f"s3://{bucket}/reports/fraud/validation/dt={DAYS[2]}/")
    assert _keys(s3_client, bucket, "lake/_staging/") == []
    assert _keys(s3_client, bucket, f"lake/fraud/records/dt={DAYS[2]}/") == [
        f"lake/fraud/records/dt={DAYS[2]}/data.parquet"]
    # The gate published its Data Docs page to the S3 report store (as HTML); the task's extra link opens it in the
    # report view of the Airflow UI (http), which streams it from there.
    assert summary["data_docs"].startswith(f"s3://{bucket}/reports/fraud/data_docs/")
    page = summary["data_docs"][len(f"s3://{bucket}/"):]
    assert s3_client.head_object(Bucket=bucket, Key=page)["ContentType"] == "text/html; charset=utf-8"
    assert pushed["mlops_validation_report"]["url"] == "http://localhost:8080/mlops/" + page.replace(":", "%3A")


def test_lake_on_s3_write_bytes_is_whole_or_absent_and_sweeps_leftovers(s3_lake_conn, s3_client):
    """Was: ``write_bytes`` streamed straight to the final key, so a dropped connection published half a file."""
    import datetime as dt

    from mlops_provider.hooks.lake import LakeHook

    conn_id, bucket = s3_lake_conn
    lake = LakeHook(lake_conn_id=conn_id).get_conn()
    lake.write_bytes("r/x.json", b'{"v": 1}')
    assert _keys(s3_client, bucket, "lake/r/") == ["lake/r/x.json"], "no temporary object left behind"

    class Broken:
        def __init__(self, real):
            self.real = real

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.real.close()  # pyarrow's stream completes the upload of what was written

        def write(self, data):
            self.real.write(data[: len(data) // 2])
            raise OSError("connection reset by peer")

    real = lake.fs

    class Proxy:
        def __getattr__(self, name):
            if name == "open_output_stream":
                return lambda path, **kwargs: Broken(real.open_output_stream(path, **kwargs))
            return getattr(real, name)

    lake.fs = Proxy()
    with pytest.raises(OSError, match="connection reset"):
        lake.write_bytes("r/x.json", b'{"v": 2, "padding": "' + b"x" * 1000 + b'"}')
    lake.fs = real
    assert lake.read_bytes("r/x.json") == b'{"v": 1}', "the final key holds the last whole file"
    assert _keys(s3_client, bucket, "lake/r/") == ["lake/r/x.json"]

    # A writer killed outright leaves its temporary object; the next write into the directory sweeps it.
    s3_client.put_object(Bucket=bucket, Key="lake/r/.tmp-deadbeef-y.json", Body=b"{")
    lake.tmp_max_age = dt.timedelta(0)
    lake.write_bytes("r/z.json", b"[]")
    assert _keys(s3_client, bucket, "lake/r/") == ["lake/r/x.json", "lake/r/z.json"]
