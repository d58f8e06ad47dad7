"""Ingest against real services under faults: the lake on S3 (a ``moto_server`` on loopback) killed mid write
or unreachable, and a Postgres source whose connection is terminated mid-read (``pg_terminate_backend``)."""

from __future__ import annotations

import os
import uuid

import pytest

from devkit import services
from tests.faults.conftest import NEW_DAY, free_port
from tests.faults.support import Case
from tests.faults.test_ingest import check_partition, landed_ids

pytestmark = pytest.mark.faults

RUN = {"day": NEW_DAY.isoformat(), "run_id": "scheduled__faults"}


@pytest.fixture
def s3(s3_endpoint):
    """A fresh bucket; the driver's ``s3`` argument and the same lake for the checks."""
    import boto3

    bucket = f"faults-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket=bucket)
    return {"endpoint": s3_endpoint, "bucket": bucket}


def s3_lake(s3: dict):
    from tests.faults.driver import _lake

    return _lake({"s3": s3})


def test_kill_mid_s3_lake_write(home, s3):
    """SIGKILL with the staged file uploaded under its temporary key, before the copy to the partition's key."""
    from mlops_provider.config.project import load_project
    from mlops_provider.domain.layout import staging_table

    case = Case("SIGKILL mid lake write (S3)", "ingest.extract")
    killed = home.run("stage_day", {**RUN, "s3": s3}, failpoints="lake.write.publish=kill")
    assert killed.killed, killed.output
    lake, table = s3_lake(s3), staging_table(load_project("fraud"))
    case.check("killed try left no partial partition", not lake.exists(table, NEW_DAY))
    retry = home.run("stage_day", {**RUN, "s3": s3})
    assert retry.returncode == 0, retry.output
    check_partition(case, lake, table, NEW_DAY, landed_ids(home))
    case.verify()


def test_s3_unreachable_then_back(home, s3):
    """The S3 endpoint refuses (nothing listens); the retry against the real endpoint stages the day once."""
    from mlops_provider.config.project import load_project
    from mlops_provider.domain.layout import staging_table

    case = Case("S3 refused", "ingest.extract")
    down = home.run("stage_day", {**RUN, "s3": {**s3, "endpoint": f"http://127.0.0.1:{free_port()}"}})
    case.check("the outage fails the try", down.returncode not in (0, -9), down.output[-500:])
    retry = home.run("stage_day", {**RUN, "s3": s3})
    assert retry.returncode == 0, retry.output
    check_partition(case, s3_lake(s3), staging_table(load_project("fraud")), NEW_DAY, landed_ids(home))
    case.verify()


# -- Postgres -----------------------------------------------------------------------------------
PG = {"host": services.pg_host(), "port": services.pg_port(), "user": services.pg_admin()}
COLUMNS = {
    "transaction_id": "text PRIMARY KEY", "customer_id": "text NOT NULL", "event_timestamp": "timestamp NOT NULL",
    "amount": "double precision", "merchant_category": "text", "channel": "text", "country": "text",
    "device": "text", "card_present": "boolean",
}


@pytest.fixture(scope="module")
def pg_source():
    """A database with NEW_DAY's transactions in ``public.transactions``; dropped afterwards."""
    psycopg2 = pytest.importorskip("psycopg2")
    import pandas as pd
    from psycopg2.extras import execute_values

    from devkit.datagen import fraud

    try:
        admin = psycopg2.connect(dbname="postgres", connect_timeout=5, **PG)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"no PostgreSQL on {PG['host']}:{PG['port']} (start it; .ci/run does): {exc}")
    admin.autocommit = True
    name = f"mlops_faults_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        records = fraud.generate(NEW_DAY, 600).drop(columns=["is_fraud"])
        conn = psycopg2.connect(dbname=name, connect_timeout=5, **PG)
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE transactions ({})".format(", ".join(f"{c} {t}" for c, t in COLUMNS.items())))
            rows = [tuple(v.to_pydatetime() if isinstance(v, pd.Timestamp) else v for v in (r[c] for c in COLUMNS))
                    for r in records.astype(object).to_dict("records")]
            execute_values(cur, "INSERT INTO transactions VALUES %s", rows)
        conn.close()
        yield {**PG, "dbname": name, "table": "public.transactions", "batch_rows": 100,
               "ids": set(records["transaction_id"])}
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_postgres_read_cut_midway(home, pg_source):
    """The source's backend is terminated after the first batch of a streamed read; the retry stages the day once."""
    import psycopg2
    from mlops_provider.config.project import load_project
    from mlops_provider.domain.layout import staging_table
    from mlops_provider.io.lake import Lake

    case = Case("Postgres cut mid-read", "ingest.extract")
    pg = {k: v for k, v in pg_source.items() if k != "ids"}
    proc = home.start("stage_day", {**RUN, "postgres": pg}, failpoints="source.postgres.batch=pause")
    home.wait_reached("source.postgres.batch", proc)
    admin = psycopg2.connect(dbname="postgres", connect_timeout=5, **PG)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                    "AND application_name = 'mlops-faults'", (pg["dbname"],))
        terminated = cur.rowcount
    admin.close()
    home.resume("source.postgres.batch")
    cut = home.finish(proc)
    case.check("the cut fails the try", terminated == 1 and cut.returncode not in (0, -9), (terminated, cut.output[-500:]))
    table = staging_table(load_project("fraud"))
    case.check("the cut try staged nothing", not Lake().exists(table, NEW_DAY))
    retry = home.run("stage_day", {**RUN, "postgres": pg})
    assert retry.returncode == 0, retry.output
    check_partition(case, Lake(), table, NEW_DAY, pg_source["ids"])
    case.verify()
