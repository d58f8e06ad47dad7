"""ComputeFeaturesOperator and MaterializeFeaturesOperator over the days of a merged run, the features event."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.unit.operators.support import DAYS, ROWS, asset, task_context


def test_compute_writes_every_day_of_a_merged_run_oldest_first(pipeline):
    from mlops_provider.io.lake import Lake
    from mlops_provider.operators.features import ComputeFeaturesOperator

    days = f"{DAYS[4].isoformat()},{DAYS[3].isoformat()}"  # as the days template renders merged events
    result = ComputeFeaturesOperator(task_id="compute_features", project_name="fraud", day=days).execute(
        task_context())
    json.dumps(result)  # small and XCom-able
    assert result["project"] == "fraud" and result["days"] == [DAYS[3].isoformat(), DAYS[4].isoformat()]
    assert [r["day"] for r in result["per_day"]] == result["days"] and result["day"] == DAYS[4].isoformat()
    assert all(r["records"] == ROWS and r["entities"] > 0 for r in result["per_day"])
    lake = Lake()
    for day in DAYS[3:5]:
        assert len(lake.read("fraud/features/record", day)) == ROWS
        assert f"dt={day}" in result["per_day"][DAYS.index(day) - 3]["entity_partition"]


def test_materialize_loads_the_whole_range_checks_freshness_and_announces_every_day(pipeline):
    from mlops_provider.operators.features import MaterializeFeaturesOperator

    features = asset("features")
    days = ",".join(d.isoformat() for d in (DAYS[5], DAYS[3], DAYS[4]))
    op = MaterializeFeaturesOperator(task_id="materialize", project_name="fraud", start=days, end=days,
                                     freshness_sample_size=20, outlets=[features])
    context = task_context()
    result = op.execute(context)
    json.dumps(result)
    # The earliest start minus the project's one day of overlap, up to the latest end.
    assert (result["first_partition"], result["last_partition"]) == (DAYS[2].isoformat(), DAYS[5].isoformat())
    assert result["rows_written"] > 0 and result["online_store"] == "sqlite"
    assert (result["freshness_checked"], result["freshness_mismatches"]) == (20, 0)
    assert context["outlet_events"][features].extra == {
        "day": DAYS[5].isoformat(), "days": [d.isoformat() for d in DAYS[3:6]]}


def test_a_bad_project_fails_without_retries(pipeline):
    from airflow.sdk.exceptions import AirflowFailException
    from mlops_provider.exceptions import ProjectConfigError
    from mlops_provider.operators.features import ComputeFeaturesOperator

    with pytest.raises(AirflowFailException, match="no such project") as err:
        ComputeFeaturesOperator(task_id="compute_features", project_name="nope", day=DAYS[0].isoformat()).execute(
            task_context())
    assert isinstance(err.value.__cause__, ProjectConfigError)


def test_a_day_above_shard_rows_is_computed_in_shards_like_one_task(pipeline):
    import pyarrow as pa
    from mlops_provider.domain.features import CREATED_TIMESTAMP
    from mlops_provider.io.lake import Lake
    from mlops_provider.operators.features import (
        ComputeFeatureShardOperator,
        ComputeFeaturesOperator,
        PlanFeatureShardsOperator,
    )
    from mlops_provider.operators.shards import PLANS_KEY

    lake, day = Lake(), DAYS[3].isoformat()
    tables = ("fraud/features/entity/customer", "fraud/features/record")
    records = lake.read_arrow("fraud/records", day)
    # The same rows in row groups of 250 (a big day's ingest writes many): record shards of whole row groups.
    lake.write("fraud/records", day, records.to_batches(max_chunksize=250))
    try:
        ComputeFeaturesOperator(task_id="compute_features", project_name="fraud", day=day).execute(task_context())
        expected = {t: lake.read(t, day).drop(columns=[CREATED_TIMESTAMP]) for t in tables}

        plan_context = task_context(task_id="plan_shards")
        items = PlanFeatureShardsOperator(task_id="plan_shards", project_name="fraud", day=day,
                                          shard_rows="500").execute(plan_context)
        plans = plan_context["ti"].xcom[PLANS_KEY]
        json.dumps(items)
        assert set(plans) == {day} and [i["index"] for i in items] == list(range(len(plans[day]["shards"])))
        assert len(items) >= 2 and {s["buckets"] for s in plans[day]["shards"]} == {len(items)}
        for item in items:
            ComputeFeatureShardOperator(task_id="compute_shard", project_name="fraud", shard=item).execute(
                task_context())
        result = ComputeFeaturesOperator(task_id="compute_features", project_name="fraud", day=day,
                                         plans=plans).execute(task_context())
        json.dumps(result)
        assert result["shards"] == len(items) and result["records"] == ROWS
        for table, frame in expected.items():
            pd.testing.assert_frame_equal(lake.read(table, day).drop(columns=[CREATED_TIMESTAMP]), frame, obj=table)

        # A small day: nothing planned, the compute task computes it alone, as before.
        none = task_context(task_id="plan_shards")
        assert PlanFeatureShardsOperator(task_id="plan_shards", project_name="fraud", day=day).execute(none) == []
        assert none["ti"].xcom[PLANS_KEY] == {}
    finally:
        lake.write("fraud/records", day, pa.Table.from_batches(records.to_batches()))
