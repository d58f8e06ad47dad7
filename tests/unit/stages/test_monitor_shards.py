"""A day monitored in shards (plan, one task per shard staging its statistics, the monitor merging them) gets
the verdict and statistics of the day monitored in one task (issue 16), for a binary and a multiclass model,
on a day larger than ``monitoring.sample_rows``; a missing shard is named; a retried shard replaces its file."""

from __future__ import annotations

import json

import pytest

from tests.shard_worlds import champion_world
from tests.unit.stages.test_tasks import SCORE_DAY

ROWS, SAMPLE_ROWS = 2600, 1000


def _with_missing_x1(day):
    day.loc[day.index % 7 == 0, "x1"] = None  # missing values, counted over every row


@pytest.fixture(scope="module", params=["binary", "multiclass"])
def world(request, tmp_path_factory):
    from mlops_provider.stages.score import run_score

    # Predictions in row groups of 300 rows, monitored in batches of 250 that straddle them.
    with champion_world(tmp_path_factory, request.param, "monitor-shards", rows=ROWS,
                        env={"MLOPS_SCORE_BATCH_ROWS": "300", "MLOPS_MONITOR_BATCH_ROWS": "250"},
                        config={"monitoring": {"sample_rows": SAMPLE_ROWS}}, edit_day=_with_missing_x1) as built:
        run_score(built["project"], lake=built["lake"], reports=built["reports"], feature_store=built["store"],
                  day=SCORE_DAY, tracking_uri=built["uri"])
        yield built


def _json(stats):
    return json.loads(json.dumps({k: v for k, v in stats.items() if k != "sample"}))


def test_sharded_monitoring_equals_unsharded(world):
    import pandas as pd
    from mlops_provider.stages.monitor import (
        _staged_statistics,
        _statistics,
        drop_monitor_shards,
        monitor_shard,
        plan_monitor_shards,
        run_monitor,
    )

    project, lake, reports, uri = (world[k] for k in ("project", "lake", "reports", "uri"))
    whole = run_monitor(project, lake=lake, reports=reports, day=SCORE_DAY, tracking_uri=uri)
    expected = _statistics(project, lake, SCORE_DAY)
    assert expected["rows"] == ROWS and len(expected["sample"]) == SAMPLE_ROWS
    assert whole["verdict"]["rows"] == {**whole["verdict"]["rows"], "current": ROWS, "sampled_to": SAMPLE_ROWS}
    assert whole["verdict"]["data_quality"]["missing_share"]["x1"] == round(len(range(0, ROWS, 7)) / ROWS, 6)

    plan = plan_monitor_shards(project, lake=lake, day=SCORE_DAY, shard_rows=1000)
    assert [s["row_groups"] for s in plan["shards"]] == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
    assert [s["start_row"] for s in plan["shards"]] == [0, 1200, 2400]
    for shard in reversed(plan["shards"]):  # any order, as parallel workers finish
        monitor_shard(project, lake=lake, plan=plan, index=shard["index"])
    merged = _staged_statistics(project, lake, plan)
    assert _json(merged) == _json(expected)
    pd.testing.assert_frame_equal(merged["sample"], expected["sample"])  # the same rows, the same values

    sharded = run_monitor(project, lake=lake, reports=reports, day=SCORE_DAY, tracking_uri=uri, plan=plan)
    assert sharded["shards"] == 3
    assert sharded["verdict"] == whole["verdict"]
    assert {k: v for k, v in sharded.items() if k != "shards"} == whole
    drop_monitor_shards(project, lake, SCORE_DAY)
    assert not lake.list_files(f"_shards/{project.name}")


def test_a_missing_shard_is_named_and_a_retried_shard_replaces_its_file(world):
    from mlops_provider.exceptions import MlopsError
    from mlops_provider.stages.monitor import (
        _staged_statistics,
        drop_monitor_shards,
        monitor_shard,
        plan_monitor_shards,
        run_monitor,
    )

    project, lake, reports, uri = (world[k] for k in ("project", "lake", "reports", "uri"))
    plan = plan_monitor_shards(project, lake=lake, day=SCORE_DAY, shard_rows=1300)
    assert len(plan["shards"]) == 2
    first = monitor_shard(project, lake=lake, plan=plan, index=0)
    again = monitor_shard(project, lake=lake, plan=plan, index=0)  # a retry
    assert again == first and len(lake.list_files(f"_shards/{project.name}")) == 1
    with pytest.raises(MlopsError, match=r"1 of 2 monitoring shard\(s\) not computed .*/00001"):
        run_monitor(project, lake=lake, reports=reports, day=SCORE_DAY, tracking_uri=uri, plan=plan)
    monitor_shard(project, lake=lake, plan=plan, index=1)
    assert _staged_statistics(project, lake, plan)["rows"] == ROWS
    drop_monitor_shards(project, lake, SCORE_DAY)
    assert not lake.list_files(f"_shards/{project.name}")


def test_a_day_of_at_most_shard_rows_or_without_predictions_gets_no_plan(world):
    import datetime as dt

    from mlops_provider.stages.monitor import plan_monitor_shards

    project, lake = world["project"], world["lake"]
    assert plan_monitor_shards(project, lake=lake, day=SCORE_DAY, shard_rows=ROWS) is None  # monitored in one task
    plan = plan_monitor_shards(project, lake=lake, day=SCORE_DAY, shard_rows=ROWS - 1)  # one row more: planned
    assert sum(s["rows"] for s in plan["shards"]) == ROWS
    # No partition: no plan; the monitor task names the missing partition.
    assert plan_monitor_shards(project, lake=lake, day=SCORE_DAY + dt.timedelta(days=1), shard_rows=1) is None
