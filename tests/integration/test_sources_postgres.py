"""The Postgres source against the local PostgreSQL (127.0.0.1:5432 unless devkit/services.py's variables say
otherwise): exact day extraction, quoting, labels.

A throwaway database is created for the test session and dropped after it. Its default TimeZone is
set away from UTC on purpose: day boundaries must still be UTC midnights.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid

import pytest

from devkit import services
from devkit.datagen import fraud

PG = {"host": services.pg_host(), "port": services.pg_port(), "user": services.pg_admin()}
CONN_ID = "mlops_test_pg"
SCHEMA, TABLE, LABELS = "Payments", "Card Transactions", "Fraud Labels"
DAYS = [dt.date(2024, 3, 1) + dt.timedelta(days=i) for i in range(4)]  # 1st..4th
DAY = DAYS[1]  # the day under test; its neighbours have rows right next to its midnights
ROWS = 300
COLUMNS = {
    "transaction_id": "text PRIMARY KEY", "customer_id": "text NOT NULL", "event_timestamp": "timestamp NOT NULL",
    "amount": "double precision", "merchant_category": "text", "channel": "text", "country": "text",
    "device": "text", "card_present": "boolean",
}

pytestmark = pytest.mark.integration


def _connect(dbname: str):
    import psycopg2

    return psycopg2.connect(dbname=dbname, connect_timeout=5, **PG)


@pytest.fixture(scope="session")
def pg_database():
    """A fresh database on the local PostgreSQL, dropped at the end of the session."""
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        admin = _connect("postgres")
    except psycopg2.OperationalError as exc:
        pytest.skip(f"no PostgreSQL on {PG['host']}:{PG['port']} (user {PG['user']}; start it, .ci/run does): {exc}")
    admin.autocommit = True
    name = f"mlops_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
        # Not UTC, so a naive bound interpreted in the session time zone would shift the day.
        cur.execute(f"""ALTER DATABASE "{name}" SET timezone TO 'America/New_York'""")
    try:
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _edge_id(day: dt.date, which: str) -> str:
    """A transaction id in the processor's format, out of the generator's sequence range."""
    return f"T{day:%Y%m%d}-{9999998 if which == 'first' else 9999999}"


def _edge_rows(day: dt.date) -> list[dict]:
    """Rows on the very edges of ``day``: its first and its last microsecond."""
    template = fraud.generate(day, 2).drop(columns=["is_fraud"]).iloc[0].to_dict()
    start = dt.datetime.combine(day, dt.time())
    return [
        {**template, "transaction_id": _edge_id(day, "first"), "event_timestamp": start},
        {**template, "transaction_id": _edge_id(day, "last"),
         "event_timestamp": start + dt.timedelta(days=1) - dt.timedelta(microseconds=1)},
    ]


@pytest.fixture(scope="session")
def pg_source_db(pg_database):
    """Four days of fraud transactions (+ edge rows) and their labels in mixed-case, schema-qualified tables."""
    import pandas as pd
    from psycopg2 import sql
    from psycopg2.extras import execute_values

    conn = _connect(pg_database)
    records = pd.concat(
        [fraud.generate(day, ROWS) for day in DAYS] + [pd.DataFrame(_edge_rows(day)) for day in DAYS],
        ignore_index=True,
    )
    labels = records[["transaction_id", "is_fraud", "event_timestamp"]].copy()
    labels["is_fraud"] = labels["is_fraud"].fillna(0).astype(int)
    # A label arrives three days after its transaction, at 06:00.
    labels["label_timestamp"] = labels["event_timestamp"].dt.normalize() + pd.Timedelta(days=3, hours=6)
    records = records.drop(columns=["is_fraud"])
    with conn, conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        cur.execute(sql.SQL("CREATE TABLE {} ({})").format(
            sql.Identifier(SCHEMA, TABLE),
            sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in COLUMNS.items()),
        ))
        cur.execute(sql.SQL(
            "CREATE TABLE {} (transaction_id text PRIMARY KEY, is_fraud integer NOT NULL, "
            "label_timestamp timestamptz NOT NULL)").format(sql.Identifier(SCHEMA, LABELS)))
        cur.execute("CREATE TABLE victim (x int)")
        rows = [tuple(r[c] for c in COLUMNS) for r in records.astype(object).to_dict("records")]
        rows = [tuple(v.to_pydatetime() if isinstance(v, pd.Timestamp) else v for v in r) for r in rows]
        execute_values(cur, sql.SQL("INSERT INTO {} VALUES %s").format(sql.Identifier(SCHEMA, TABLE)).as_string(cur),
                       rows)
        # label_timestamp is timestamptz: written as explicit UTC instants.
        execute_values(cur, sql.SQL("INSERT INTO {} VALUES %s").format(sql.Identifier(SCHEMA, LABELS)).as_string(cur),
                       [(r.transaction_id, int(r.is_fraud), r.label_timestamp.to_pydatetime().replace(tzinfo=dt.UTC))
                        for r in labels.itertuples()])
    conn.close()
    return pg_database


@pytest.fixture
def pg_conn(pg_source_db, monkeypatch):
    """The Airflow connection ``mlops_test_pg`` pointing at the session database (env-var JSON)."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(
        {"conn_type": "postgres", "host": PG["host"], "port": PG["port"], "login": PG["user"],
         "schema": pg_source_db}))
    return CONN_ID


def _write_project(directory, table: str, labels_table: str | None = f"{SCHEMA}.{LABELS}", label_feed=None):
    """The fraud project with a Postgres source, written as a YAML into ``directory``."""
    import yaml
    from mlops_provider.config import paths

    raw = yaml.safe_load((paths.repo_root() / "include" / "projects" / "fraud.yaml").read_text())
    raw["source"] = {"kind": "postgres", "conn_id": CONN_ID, "table": table}
    if labels_table:
        raw["source"]["labels_table"] = labels_table
    if label_feed:
        raw["label"]["feed"] = label_feed
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "fraud.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture
def pg_project(pg_conn, mlops_home, tmp_path, monkeypatch):
    """(project, lake, reports, source) with the Postgres source built the way the operator builds it."""
    from mlops_provider.config import paths
    from mlops_provider.config.project import load_project
    from mlops_provider.io.lake import Lake
    from mlops_provider.operators.ingest import _source

    projects = tmp_path / "projects"
    monkeypatch.setenv("MLOPS_PROJECTS_DIR", str(projects))
    _write_project(projects, f"{SCHEMA}.{TABLE}")
    project = load_project("fraud")
    assert project.source["kind"] == "postgres"
    return project, Lake(), Lake(paths.reports_uri()), _source(project)


def _expected_ids(day: dt.date) -> set[str]:
    return set(fraud.generate(day, ROWS)["transaction_id"]) | {r["transaction_id"] for r in _edge_rows(day)}


def test_stage_and_gate_extract_exactly_the_day(pg_project):
    from mlops_provider.stages.ingest import gate_day, labels_table, records_table, stage_day, staging_table

    project, lake, reports, source = pg_project
    staged = stage_day(project, lake, source, DAY, run_id="scheduled__2024-03-02")
    assert staged["rows"] == ROWS + 2
    assert staged["sources"] == [f"postgres://{SCHEMA}.{TABLE}?event_timestamp="
                                 f"[{DAY}T00:00:00,{DAY + dt.timedelta(days=1)}T00:00:00)"]
    frame = lake.read(staging_table(project), DAY)
    assert set(frame["transaction_id"]) == _expected_ids(DAY)
    # The previous day's last microsecond and the next day's midnight are not in it; both edges of DAY are.
    assert {_edge_id(DAY, "first"), _edge_id(DAY, "last")} <= set(frame["transaction_id"])
    assert not {_edge_id(DAYS[0], "last"), _edge_id(DAYS[2], "first")} & set(frame["transaction_id"])
    ts = frame["event_timestamp"]
    assert ts.dt.tz is None, "timestamps come out as naive UTC, like the file sources"
    assert ts.min() == dt.datetime.combine(DAY, dt.time())
    assert ts.max() == dt.datetime.combine(DAY, dt.time.max)

    # Labels are read by label_timestamp: those arriving on DAY belong to transactions of DAY - 3 ... none here.
    assert "labels" not in staged
    published = gate_day(project, lake, reports, DAY, run_id="scheduled__2024-03-02")
    assert published["success"], published["failed"]
    assert len(lake.read(records_table(project), DAY)) == ROWS + 2

    arrival = DAYS[0] + dt.timedelta(days=project.label_delay_days)  # labels of DAYS[0] arrive on the 4th
    labelled = stage_day(project, lake, source, arrival, run_id="scheduled__2024-03-04")
    assert not lake.exists(labels_table(project), arrival), "labels are published by the gate, not at extraction"
    gated = gate_day(project, lake, reports, arrival, run_id="scheduled__2024-03-04")
    labels = lake.read(labels_table(project), arrival)
    assert labelled["labels"]["rows"] == gated["labels"][arrival.isoformat()]["rows"] == len(labels) == ROWS + 2
    assert set(labels["transaction_id"]) == _expected_ids(DAYS[0])
    assert labels["label_timestamp"].dt.tz is None
    assert (labels["label_timestamp"] == dt.datetime.combine(arrival, dt.time(6))).all()


def test_rerun_replaces_the_partition(pg_project, pg_source_db):
    from mlops_provider.stages.ingest import gate_day, records_table, stage_day
    from psycopg2 import sql

    project, lake, reports, source = pg_project
    day = DAYS[2]
    stage_day(project, lake, source, day, run_id="scheduled__first")
    first = gate_day(project, lake, reports, day, run_id="scheduled__first")
    # A late correction in the source: one row deleted; the rerun must reflect it, not append to the partition.
    conn = _connect(pg_source_db)
    with conn, conn.cursor() as cur:
        cur.execute(sql.SQL("DELETE FROM {} WHERE transaction_id = %s").format(sql.Identifier(SCHEMA, TABLE)),
                    (_edge_id(day, "last"),))
    conn.close()
    stage_day(project, lake, source, day, run_id="manual__rerun")
    second = gate_day(project, lake, reports, day, run_id="manual__rerun")
    assert second["partition"] == first["partition"]
    frame = lake.read(records_table(project), day)
    assert len(frame) == ROWS + 1 and frame["transaction_id"].is_unique
    assert lake.partitions(records_table(project)) == [day]


def test_missing_day_is_a_source_error(pg_project):
    from mlops_provider.exceptions import SourceError
    from mlops_provider.stages.ingest import stage_day

    project, lake, _, source = pg_project
    with pytest.raises(SourceError, match=r"fraud 2024-03-09: nothing has landed .* postgres source") as err:
        stage_day(project, lake, source, dt.date(2024, 3, 9), run_id="scheduled__2024-03-09")
    assert (f"no rows in table {SCHEMA}.{TABLE} with event_timestamp in [2024-03-09T00:00:00, 2024-03-10T00:00:00) UTC"
            in str(err.value))
    assert err.value.retryable


@pytest.mark.parametrize(
    "table",
    [
        'victim; DROP TABLE victim; --',
        'victim" ; DROP TABLE victim; --',
        "Payments.Card Transactions WHERE 1=1 OR 1",
        "payments.card transactions",  # identifiers are case-sensitive once quoted: no silent fallback
    ],
)
def test_table_name_from_config_cannot_inject_sql(table, pg_conn, pg_source_db, mlops_home, tmp_path, monkeypatch):
    from mlops_provider.config.project import load_project
    from mlops_provider.io.lake import Lake
    from mlops_provider.io.sources import _sqlstate
    from mlops_provider.operators.ingest import _source
    from mlops_provider.stages.ingest import stage_day

    monkeypatch.setenv("MLOPS_PROJECTS_DIR", str(tmp_path / "projects"))
    _write_project(tmp_path / "projects", table, labels_table=None)
    project = load_project("fraud")
    # The server's undefined_table (ADBC's error carries the SQLSTATE like psycopg's UndefinedTable).
    with pytest.raises(Exception, match="does not exist") as err:
        stage_day(project, Lake(), _source(project), DAY, run_id="scheduled__evil")
    assert _sqlstate(err.value) == "42P01", err.value
    conn = _connect(pg_source_db)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('public.victim') IS NOT NULL")
        assert cur.fetchone()[0], "the victim table must survive"
    conn.close()


def test_ingest_operator_extracts_the_day_through_the_connection(pg_project):
    from mlops_provider.operators.ingest import IngestOperator
    from mlops_provider.stages.ingest import staging_table

    project, lake, _, _ = pg_project
    operator = IngestOperator(task_id="extract", project_name="fraud", day=DAYS[3].isoformat())
    summary = operator.execute({"run_id": "scheduled__2024-03-04"})
    assert summary["rows"] == ROWS + 2
    assert set(lake.read(staging_table(project), DAYS[3])["transaction_id"]) == _expected_ids(DAYS[3])


# -- issue 13: time zones, null tokens and a label feed with its own names, on the Postgres source ------------
ZONED, CHARGEBACKS = "Zoned Transactions", "Chargebacks"


@pytest.fixture(scope="session")
def pg_zoned_db(pg_source_db):
    """A ``timestamptz`` records table written with several UTC offsets and empty / 'NULL' text, and a
    chargeback feed with its own column names (``txn``, ``fraud_flag``, ``reported_at``)."""
    from psycopg2 import sql

    template = _edge_rows(DAY)[0]
    rows = []
    # (id, local time, offset hours): the instant in UTC decides the day, not the local date.
    for i, (local, hours) in enumerate([
        ("2024-03-02 01:30:00", 2),     # 2024-03-01 23:30 UTC: the day before
        ("2024-03-02 02:30:00", 2),     # 00:30 UTC: in
        ("2024-03-01 20:00:00", -5),    # 2024-03-02 01:00 UTC: in, although its local date is the 1st
        ("2024-03-02 23:30:00", 0),     # in
        ("2024-03-02 20:00:00", -5),    # 2024-03-03 01:00 UTC: the day after
        ("2024-03-02 12:00:00", 5.5),   # 06:30 UTC: in
    ]):
        stamp = dt.datetime.fromisoformat(local).replace(tzinfo=dt.timezone(dt.timedelta(hours=hours)))
        device = ["", "NULL", "mobile", "desktop", "mobile", "mobile"][i]
        rows.append({**template, "transaction_id": f"T20240302-88{i:05d}", "event_timestamp": stamp, "device": device})
    conn = _connect(pg_source_db)
    with conn, conn.cursor() as cur:
        columns = {**COLUMNS, "event_timestamp": "timestamptz NOT NULL"}
        cur.execute(sql.SQL("CREATE TABLE {} ({})").format(
            sql.Identifier(SCHEMA, ZONED),
            sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in columns.items()),
        ))
        for row in rows:
            cur.execute(sql.SQL("INSERT INTO {} VALUES ({})").format(
                sql.Identifier(SCHEMA, ZONED), sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS))),
                [row[c] for c in COLUMNS])
        cur.execute(sql.SQL("CREATE TABLE {} (txn text, fraud_flag integer, reported_at timestamptz)").format(
            sql.Identifier(SCHEMA, CHARGEBACKS)))
        tz = dt.timezone(dt.timedelta(hours=-8))
        cur.execute(sql.SQL("INSERT INTO {} VALUES (%s, 1, %s), (%s, 0, %s), (%s, 1, %s)").format(
            sql.Identifier(SCHEMA, CHARGEBACKS)),
            ["T20240302-8800001", dt.datetime(2024, 3, 4, 15, 0, tzinfo=tz),    # 23:00 UTC on the 4th
             "T20240302-8800002", dt.datetime(2024, 3, 3, 17, 0, tzinfo=tz),    # 01:00 UTC on the 4th
             "T20240302-8800003", dt.datetime(2024, 3, 4, 17, 0, tzinfo=tz)])   # 01:00 UTC on the 5th
    conn.close()
    return rows


def test_zoned_timestamps_are_extracted_by_their_utc_day_as_naive_utc(pg_zoned_db, pg_conn, mlops_home, tmp_path,
                                                                      monkeypatch):
    from mlops_provider.config import paths
    from mlops_provider.config.project import load_project
    from mlops_provider.io.lake import Lake
    from mlops_provider.operators.ingest import _source
    from mlops_provider.stages.ingest import gate_day, stage_day, staging_table

    monkeypatch.setenv("MLOPS_PROJECTS_DIR", str(tmp_path / "projects"))
    _write_project(tmp_path / "projects", f"{SCHEMA}.{ZONED}", labels_table=None)
    project = load_project("fraud")
    lake = Lake()
    staged = stage_day(project, lake, _source(project), DAY, run_id="scheduled__zoned")
    frame = lake.read(staging_table(project), DAY).sort_values("event_timestamp")
    expected = sorted(r["event_timestamp"].astimezone(dt.UTC).replace(tzinfo=None) for r in pg_zoned_db
                      if r["event_timestamp"].astimezone(dt.UTC).date() == DAY)
    assert staged["rows"] == len(expected) == 4
    assert frame["event_timestamp"].dt.tz is None and frame["event_timestamp"].tolist() == expected
    # '' and 'NULL' in a text column are nulls (source.null_values), so the not-null expectation fires.
    by_id = dict(zip(frame["transaction_id"], frame["device"], strict=True))
    assert by_id["T20240302-8800001"] is None and by_id["T20240302-8800002"] == "mobile"
    with pytest.raises(Exception, match=r"expect_column_values_to_not_be_null\[device\]: 1 unexpected"):
        gate_day(project, lake, Lake(paths.reports_uri()), DAY, run_id="scheduled__zoned")


def test_a_label_feed_table_with_its_own_names(pg_zoned_db, pg_conn, mlops_home, tmp_path, monkeypatch):
    from mlops_provider.config import paths
    from mlops_provider.config.project import load_project
    from mlops_provider.io.lake import Lake
    from mlops_provider.operators.ingest import _source
    from mlops_provider.stages.ingest import gate_day, labels_table, stage_day

    monkeypatch.setenv("MLOPS_PROJECTS_DIR", str(tmp_path / "projects"))
    _write_project(tmp_path / "projects", f"{SCHEMA}.{TABLE}", labels_table=f"{SCHEMA}.{CHARGEBACKS}",
                   label_feed={"record_id": "txn", "column": "fraud_flag", "arrived_at": "reported_at"})
    project = load_project("fraud")
    arrival, lake = DAYS[3], Lake()
    staged = stage_day(project, lake, _source(project), arrival, run_id="scheduled__feed")
    assert staged["labels"]["sources"] == [
        f"postgres://{SCHEMA}.{CHARGEBACKS}?reported_at=[2024-03-04T00:00:00,2024-03-05T00:00:00)"]
    assert gate_day(project, lake, Lake(paths.reports_uri()), arrival, run_id="scheduled__feed")["success"]
    frame = lake.read(labels_table(project), arrival).sort_values("transaction_id")
    assert list(frame.columns) == ["transaction_id", "is_fraud", "label_timestamp"]
    assert frame["transaction_id"].tolist() == ["T20240302-8800001", "T20240302-8800002"], "read by UTC arrival day"
    assert frame["is_fraud"].tolist() == [1, 0]
    assert frame["label_timestamp"].tolist() == [dt.datetime(2024, 3, 4, 23), dt.datetime(2024, 3, 4, 1)]


def test_a_hung_query_is_cancelled_by_the_statement_timeout(pg_conn, pg_source_db, mlops_home, tmp_path, monkeypatch):
    """Was: no statement_timeout, so one hung query blocked the DAG forever (max_active_runs=1)."""
    import time

    import yaml
    from mlops_provider.config.project import load_project
    from mlops_provider.exceptions import DataValidationError, SourceError
    from mlops_provider.io.lake import Lake
    from mlops_provider.operators.ingest import _source
    from mlops_provider.stages.ingest import stage_day
    from psycopg2 import sql

    # A view that takes 3 s per statement: what a lock wait or a runaway scan looks like from the client.
    conn = _connect(pg_source_db)
    with conn, conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE OR REPLACE VIEW {} AS SELECT t.* FROM {} t, pg_sleep(3)").format(
            sql.Identifier(SCHEMA, "slow"), sql.Identifier(SCHEMA, TABLE)))
    conn.close()
    projects = tmp_path / "projects"
    monkeypatch.setenv("MLOPS_PROJECTS_DIR", str(projects))
    _write_project(projects, f"{SCHEMA}.slow", labels_table=None)
    path = projects / "fraud.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["source"]["statement_timeout_seconds"] = 0.5
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    project = load_project("fraud")
    source = _source(project)
    assert source.statement_timeout_s == 0.5
    started = time.monotonic()
    with pytest.raises(SourceError) as err:
        stage_day(project, Lake(), source, DAY, run_id="r")
    assert time.monotonic() - started < 3, "cancelled by the server, not waited out"
    assert err.value.retryable and not isinstance(err.value, DataValidationError)
    message = str(err.value)
    assert f"postgres table {SCHEMA}.slow" in message
    assert "ran longer than source.statement_timeout_seconds (0.5 s)" in message and "statement timeout" in message

    # The default is ten minutes, set on every extraction's session; the reader applies the schema's defaults.
    raw["source"].pop("statement_timeout_seconds")
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    default = _source(load_project("fraud"))
    assert default.statement_timeout_s == 600 and default.read_streams == 2
    raw["source"]["read_streams"] = 3
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert _source(load_project("fraud")).read_streams == 3


# -- the ADBC extraction (arrow_uri) gives what the DB-API path gives -------------------------------------
TYPED = "Typed Records"


@pytest.fixture(scope="session")
def pg_typed_db(pg_source_db):
    """One table with the server types a user's table may have, over two days, with nulls and edge values."""
    conn = _connect(pg_source_db)
    with conn, conn.cursor() as cur:
        cur.execute(f'''CREATE TABLE "{SCHEMA}"."{TYPED}" (
            id text, small smallint, whole integer, big bigint, single real, double double precision,
            amount numeric(12, 2), ratio numeric, flag boolean, seen timestamptz, local_time timestamp, on_day date,
            ref uuid, body text)''')
        cur.execute(f'''INSERT INTO "{SCHEMA}"."{TYPED}"
            SELECT 'r-' || g, g % 100, g * 3, g * 100000000000, g / 3.0, g / 7.0, g / 100.0, g / 8.0,
                   CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 = 0 END,
                   timestamptz '2024-03-02 00:00:00+00' + g * interval '1 minute',
                   timestamp '2024-03-01 00:00:00' + g * interval '1 minute', date '2024-03-02',
                   md5(g::text)::uuid, CASE WHEN g % 5 = 0 THEN NULL WHEN g % 7 = 0 THEN '' ELSE 'x' || g END
            FROM generate_series(-10, 2000) g''')
    conn.close()
    return f"{SCHEMA}.{TYPED}"


def test_adbc_extraction_equals_the_db_api_path(pg_typed_db, pg_source_db):
    """Same rows, same Arrow types, same values: the staged batch does not depend on the reader."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from mlops_provider.io.sources import PostgresSource

    uri = f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{pg_source_db}"
    rows = PostgresSource(lambda: _connect(pg_source_db), pg_typed_db, "seen", batch_rows=500)
    arrow = PostgresSource(lambda: _connect(pg_source_db), pg_typed_db, "seen", arrow_uri=uri)
    assert arrow.arrow_uri and not rows.arrow_uri
    by_rows, _ = rows._records(DAY, DAY, None)
    by_arrow, where = arrow._records(DAY, DAY, None)
    assert where == [f"postgres://{pg_typed_db}?seen=[2024-03-02T00:00:00,2024-03-03T00:00:00)"]
    assert by_arrow.num_rows == by_rows.num_rows == 1440  # the minutes of the UTC day
    # numeric(p, s) keeps its declared precision (the DB-API path infers one from the values); an unconstrained
    # numeric has none to keep: a float. Every other column has the DB-API path's type.
    numeric = {"amount": pa.decimal128(12, 2), "ratio": pa.float64()}
    assert {f.name: f.type for f in by_arrow.schema if f.name in numeric} == numeric
    assert [(f.name, f.type) for f in by_arrow.schema if f.name not in numeric] == \
        [(f.name, f.type) for f in by_rows.schema if f.name not in numeric]
    same = by_rows.cast(by_arrow.schema)
    # A real is read as its 4 binary bytes, not as the text the DB-API driver parses: equal to float32 precision.
    assert [name for name in by_arrow.column_names if not by_arrow.column(name).equals(same.column(name))] == ["single"]
    assert pc.max(pc.abs(pc.subtract(by_arrow.column("single"), same.column("single")))).as_py() < 1e-4
    assert by_arrow.column("body").null_count == by_rows.column("body").null_count > 0
    assert by_arrow.column("ref")[0].as_py() == by_rows.column("ref")[0].as_py()


# -- the ADBC extraction in time slices, all in one snapshot --------------------------------------------------
def _typed_source(pg_source_db: str, table: str, streams: int):
    from mlops_provider.io.sources import PostgresSource

    uri = f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{pg_source_db}"
    return PostgresSource(lambda: _connect(pg_source_db), table, "seen", arrow_uri=uri, read_streams=streams)


@pytest.mark.parametrize("streams", [2, 3, 7])
def test_a_day_read_in_slices_equals_it_read_in_one_query(pg_typed_db, pg_source_db, streams):
    """Same rows, in the same order, with the same types: slices are adjacent and read in order."""
    whole, where = _typed_source(pg_source_db, pg_typed_db, 1)._records(DAY, DAY, None)
    sliced, where_sliced = _typed_source(pg_source_db, pg_typed_db, streams)._records(DAY, DAY, None)
    assert where_sliced == where
    assert sliced.num_rows == whole.num_rows == 1440
    assert sliced.schema == whole.schema
    assert sliced.equals(whole)


def test_every_slice_reads_the_snapshot_of_the_first(pg_typed_db, pg_source_db, tmp_path, monkeypatch):
    """A row committed while the slices are open, none read yet, is in none of them (and in the next read)."""
    import threading

    monkeypatch.setenv("MLOPS_FAILPOINTS", "source.postgres.snapshot=pause")
    monkeypatch.setenv("MLOPS_FAILPOINTS_DIR", str(tmp_path))
    late = dt.datetime.combine(DAY, dt.time(23, 59, 30), tzinfo=dt.UTC)  # in the last of the three slices

    def insert_while_paused() -> None:
        reached = tmp_path / "source.postgres.snapshot.reached"
        for _ in range(600):
            if reached.exists():
                break
            threading.Event().wait(0.05)
        conn = _connect(pg_source_db)
        with conn, conn.cursor() as cur:
            schema, name = pg_typed_db.split(".")
            cur.execute(f'INSERT INTO "{schema}"."{name}" (id, seen) VALUES (%s, %s)', ("late", late))
        conn.close()
        (tmp_path / "source.postgres.snapshot.resume").touch()

    writer = threading.Thread(target=insert_while_paused)
    writer.start()
    try:
        during, _ = _typed_source(pg_source_db, pg_typed_db, 3)._records(DAY, DAY, None)
    finally:
        writer.join(60)
    monkeypatch.delenv("MLOPS_FAILPOINTS")
    try:
        assert (tmp_path / "source.postgres.snapshot.reached").exists()
        assert "late" not in during.column("id").to_pylist() and during.num_rows == 1440
        after, _ = _typed_source(pg_source_db, pg_typed_db, 3)._records(DAY, DAY, None)
        assert after.column("id").to_pylist()[-1] == "late" and after.num_rows == 1441
    finally:
        conn = _connect(pg_source_db)
        with conn, conn.cursor() as cur:
            schema, name = pg_typed_db.split(".")
            cur.execute(f'DELETE FROM "{schema}"."{name}" WHERE id = %s', ("late",))
        conn.close()
