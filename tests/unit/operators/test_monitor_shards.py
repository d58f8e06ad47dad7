"""The monitor DAG's sharded path: plan_shards -> one monitor_shard per shard -> monitor (merge), on the operators'
real pipeline (the lake's predictions, the MLflow champion and its reference); the verdict equals the one of
the day monitored in one task; the staged statistics are dropped once the monitor task succeeded."""

from __future__ import annotations

import json

import pytest

from tests.unit.operators.support import DRIFTED, ROWS, task_context


def _verdict(reports, result):
    return json.loads(reports.read_bytes(result["report"]["verdict"].split(reports.root, 1)[1].lstrip("/")))


def test_a_day_above_shard_rows_is_monitored_in_shards_like_one_task(pipeline):
    import pyarrow as pa
    from mlops_provider.config import paths
    from mlops_provider.exceptions import MlopsError
    from mlops_provider.io.lake import Lake
    from mlops_provider.operators.monitor_shards import (
        PLANS_KEY,
        MonitorShardOperator,
        PlanMonitorShardsOperator,
    )
    from mlops_provider.operators.monitoring import MonitorDriftOperator

    lake, reports, day = Lake(), Lake(paths.reports_uri()), DRIFTED.isoformat()
    # The session's pipeline keeps sent-alert markers (and the outbox) under its shared MLOPS_HOME: the alert
    # this test sends must not look already sent to the tests after it.
    left = [paths.mlops_home() / "alerts", paths.outbox_dir()]
    before = {p for d in left for p in d.rglob("*") if p.is_file()}
    predictions = lake.read_arrow("fraud/predictions", day)
    # The same rows in row groups of 250 (a big day's scoring writes many): shards of whole row groups.
    lake.write("fraud/predictions", day, predictions.to_batches(max_chunksize=250))
    try:
        alone = MonitorDriftOperator(task_id="monitor", project_name="fraud", day=day).execute(
            task_context(task_id="monitor"))
        expected = _verdict(reports, alone)
        assert alone["kind"] != "ok" and alone["drifted_columns"]

        plan_context = task_context(task_id="plan_shards")
        items = PlanMonitorShardsOperator(task_id="plan_shards", project_name="fraud", day=day,
                                          shard_rows=500).execute(plan_context)
        plans = plan_context["ti"].xcom[PLANS_KEY]
        assert [i["index"] for i in items] == [0, 1, 2] and set(plans) == {day}
        assert [s["rows"] for s in plans[day]["shards"]] == [500, 500, ROWS - 1000]
        json.dumps(items)  # XCom-able
        for item in items:
            staged = MonitorShardOperator(task_id="monitor_shard", project_name="fraud", shard=item).execute(
                task_context(task_id="monitor_shard"))
            assert staged["index"] == item["index"] and staged["rows"] == plans[day]["shards"][item["index"]]["rows"]
        assert len(lake.list_files("_shards/fraud/monitoring")) == 3
        sharded = MonitorDriftOperator(task_id="monitor", project_name="fraud", day=day, plans=plans).execute(
            task_context(task_id="monitor"))
        assert _verdict(reports, sharded) == expected
        same = ("day", "kind", "model_version", "run_id", "report", "n_drifted", "drifted_columns",
                "prediction_drift", "performance_alert", "roc_auc", "days")
        assert {k: sharded[k] for k in same} == {k: alone[k] for k in same}
        assert sharded["alert"]["duplicate"]  # the same day and verdict: on-call is not emailed twice
        assert not lake.list_files("_shards/fraud/monitoring")  # dropped once the monitor task succeeded

        # A missing shard fails the monitor task (retryable), naming it; the staged shard stays for the retry.
        partial = task_context(task_id="plan_shards")
        (first, _, _) = PlanMonitorShardsOperator(task_id="plan_shards", project_name="fraud", day=day,
                                                  shard_rows=500).execute(partial)
        MonitorShardOperator(task_id="monitor_shard", project_name="fraud", shard=first).execute(task_context())
        with pytest.raises(MlopsError, match=r"2 of 3 monitoring shard\(s\) not computed .*/00001") as err:
            MonitorDriftOperator(task_id="monitor", project_name="fraud", day=day,
                                 plans=partial["ti"].xcom[PLANS_KEY]).execute(task_context(task_id="monitor"))
        assert err.value.retryable and len(lake.list_files("_shards/fraud/monitoring")) == 1

        # A small day: no plan, no shard task; the monitor task reads the day itself.
        none = task_context(task_id="plan_shards")
        assert PlanMonitorShardsOperator(task_id="plan_shards", project_name="fraud", day=day).execute(none) == []
        assert none["ti"].xcom[PLANS_KEY] == {}
    finally:
        for path in {p for d in left for p in d.rglob("*") if p.is_file()} - before:
            path.unlink()
        lake.delete_dir("_shards/fraud/monitoring")
        lake.write("fraud/predictions", day, pa.Table.from_batches(predictions.to_batches()))
