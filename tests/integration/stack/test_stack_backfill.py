"""``airflow backfill create`` over a range of days on the production stack chains through the asset events.

Runs after test_stack.py (file order) on the same session stack: the churn source (CSV objects in S3)
holds every day of DAYS; the backfill re-ingests three of them and the features DAG, triggered by the
``churn.validated`` asset events, must compute every backfilled day (runs merged or not).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.integration.stack.support import CHURN_ROWS, DAYS

pytestmark = [pytest.mark.integration, pytest.mark.stack]

RUN_TIMEOUT = 600


def _objects(stack, prefix: str) -> list[str]:
    pages = stack.s3().get_paginator("list_objects_v2").paginate(Bucket=stack.bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []) if not o["Key"].endswith("/"))


def test_backfill_create_ingests_each_day_and_chains_to_features(stack, api):
    import io

    import pyarrow.parquet as pq

    from devkit.stack import wait_for

    days = DAYS[:3]
    for dag_id in ("churn__ingest", "churn__features"):
        api.unpause(dag_id)
    before = {r["dag_run_id"] for r in api.runs("churn__features")}
    created = subprocess.run(
        ["airflow", "backfill", "create", "--dag-id", "churn__ingest", "--from-date", days[0].isoformat(),
         "--to-date", days[-1].isoformat(), "--reprocess-behavior", "completed", "--max-active-runs", "1"],
        env={**os.environ, **stack.env}, capture_output=True, text=True, timeout=300)
    assert created.returncode == 0, f"{created.stdout}\n{created.stderr}"

    def backfill_runs():
        return [r for r in api.runs("churn__ingest") if r["run_type"] == "backfill"]

    wait_for("three backfill runs settled", lambda: len(backfill_runs()) == 3
             and all(r["state"] in ("success", "failed") for r in backfill_runs()), RUN_TIMEOUT,
             lambda: f"{[(r['dag_run_id'], r['state']) for r in backfill_runs()]}\n{stack.logs()}")
    runs = backfill_runs()
    failed = {r["dag_run_id"]: [(t["task_id"], t["state"], t["try_number"])
                                for t in api.task_instances("churn__ingest", r["dag_run_id"])]
              for r in runs if r["state"] != "success"}
    assert not failed, f"{failed}\n{stack.logs()}"
    # One run per day, each ingesting the day of its logical date (the start of its data interval).
    assert sorted(r["logical_date"][:10] for r in runs) == [d.isoformat() for d in days], runs
    s3 = stack.s3()
    for day in days:
        key = f"lake/churn/records/dt={day.isoformat()}/data.parquet"
        assert _objects(stack, f"lake/churn/records/dt={day.isoformat()}/") == [key]
        frame = pq.read_table(io.BytesIO(s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read())).to_pandas()
        assert len(frame) == CHURN_ROWS and frame["usage_id"].is_unique

    # The backfill's asset events trigger features; every backfilled day gets its partitions.
    def missing():
        return [d for d in days if not _objects(stack, f"lake/churn/features/entity/subscriber/dt={d.isoformat()}/")]

    wait_for("features of the backfilled days", lambda: not missing() and all(
        r["state"] in ("success", "failed") for r in api.runs("churn__features")), RUN_TIMEOUT,
        lambda: f"missing {missing()}\n{stack.logs()}")
    new = [r for r in api.runs("churn__features") if r["dag_run_id"] not in before]
    assert new and {r["state"] for r in new} == {"success"}, new
    assert all(r["run_type"] == "asset_triggered" for r in new), new
