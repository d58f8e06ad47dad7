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


def _write_project(directory, table: str, labels_table: str | None = f"{SCHEMA}.{LABELS}"):
    """The fraud project with a Postgres source, written as a YAML into ``directory``."""
    import yaml
    from mlops_provider.config import paths

    raw = yaml.safe_load((paths.repo_root() / "include" / "projects" / "fraud.yaml").read_text())
    raw["source"] = {"kind": "postgres", "conn_id": CONN_ID, "table": table}
    if labels_table:
        raw["source"]["labels_table"] = labels_table
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
    labels = lake.read(labels_table(project), arrival)
    assert labelled["labels"]["rows"] == len(labels) == ROWS + 2
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
    assert f"postgres table {SCHEMA}.{TABLE} by event_timestamp" in str(err.value)


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
    from mlops_provider.operators.ingest import _source
    from mlops_provider.stages.ingest import stage_day

    monkeypatch.setenv("MLOPS_PROJECTS_DIR", str(tmp_path / "projects"))
    _write_project(tmp_path / "projects", table, labels_table=None)
    project = load_project("fraud")
    # psycopg.errors or psycopg2.errors, whichever driver the postgres provider picked.
    with pytest.raises(Exception, match="does not exist") as err:
        stage_day(project, Lake(), _source(project), DAY, run_id="scheduled__evil")
    assert type(err.value).__name__ == "UndefinedTable"
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
