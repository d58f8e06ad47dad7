"""A day scored in shards (plan, one task per shard, commit) gives the partition and summary of the unsharded
score stage (issue 16), for a binary and a multiclass model with a shadow challenger; the commit is atomic
and names what is missing; a retried shard replaces its own output."""

from __future__ import annotations

import pytest

from tests.shard_worlds import champion_world
from tests.unit.stages.test_tasks import SCORE_DAY

ROWS, GROUP_ROWS = 2600, 400  # 7 row groups


@pytest.fixture(scope="module", params=["binary", "multiclass"])
def world(request, tmp_path_factory):
    # Batches that straddle row groups and shards; a challenger to shadow-score.
    with champion_world(tmp_path_factory, request.param, "shards", rows=ROWS, group_rows=GROUP_ROWS, challenger=True,
                        env={"MLOPS_SCORE_BATCH_ROWS": "300"}) as built:
        yield built


def _predictions(world):
    from mlops_provider.domain.layout import predictions_table

    return world["lake"].read(predictions_table(world["project"]), SCORE_DAY)


def test_sharded_scoring_equals_unsharded(world):
    import pandas as pd
    from mlops_provider.stages.score import commit_score_shards, plan_score_shards, run_score, score_shard

    project, lake, reports, store, uri = (world[k] for k in ("project", "lake", "reports", "store", "uri"))
    whole = run_score(project, lake=lake, reports=reports, feature_store=store, day=SCORE_DAY, tracking_uri=uri)
    expected = _predictions(world)

    plan = plan_score_shards(project, lake=lake, day=SCORE_DAY, shard_rows=1000, tracking_uri=uri)
    assert [s["row_groups"] for s in plan["shards"]] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [s["start_row"] for s in plan["shards"]] == [0, 1200, 2400] and sum(s["rows"] for s in plan["shards"]) == ROWS
    for shard in reversed(plan["shards"]):  # any order, as parallel workers finish
        score_shard(project, lake=lake, feature_store=store, plan=plan, index=shard["index"], tracking_uri=uri)
    sharded = commit_score_shards(project, lake=lake, reports=reports, plan=plan, tracking_uri=uri)

    actual = _predictions(world)
    pd.testing.assert_frame_equal(actual.drop(columns=["scored_at"], errors="ignore"),
                                  expected.drop(columns=["scored_at"], errors="ignore"))
    assert whole["challenger_version"] and sharded["shards"] == 3
    same = {k: v for k, v in whole.items() if k not in ("predictions", "shadow_report")}
    assert {k: sharded[k] for k in same} == same
    assert not lake.list_files(f"_shards/{project.name}")
    # The commit keeps the shards' row groups (one per scoring batch of 300 rows), as the unsharded stage
    # writes them, instead of re-chunking them into pyarrow's read batches.
    meta = _predictions_file(world).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [300] * 8 + [200]


def _predictions_file(world):
    import pyarrow.parquet as pq
    from mlops_provider.domain.layout import predictions_table

    lake = world["lake"]
    return pq.ParquetFile(lake.partition_path(predictions_table(world["project"]), SCORE_DAY), filesystem=lake.fs)


def test_commit_refuses_a_day_with_a_missing_shard_and_leaves_the_partition(world):
    from mlops_provider.exceptions import MlopsError
    from mlops_provider.stages.score import commit_score_shards, plan_score_shards, score_shard

    project, lake, reports, store, uri = (world[k] for k in ("project", "lake", "reports", "store", "uri"))
    before = _predictions(world) if lake.exists(f"{project.name}/predictions", SCORE_DAY) else None
    plan = plan_score_shards(project, lake=lake, day=SCORE_DAY, shard_rows=1300, tracking_uri=uri)
    assert len(plan["shards"]) == 2
    score_shard(project, lake=lake, feature_store=store, plan=plan, index=0, tracking_uri=uri)
    first = lake.read(f"_shards/{project.name}/predictions/{SCORE_DAY}/{plan['plan_id']}/00000", SCORE_DAY)
    # A retried shard replaces its own output whole.
    score_shard(project, lake=lake, feature_store=store, plan=plan, index=0, tracking_uri=uri)
    again = lake.read(f"_shards/{project.name}/predictions/{SCORE_DAY}/{plan['plan_id']}/00000", SCORE_DAY)
    assert len(again) == len(first) == 1600 and again["rid"].tolist() == first["rid"].tolist()
    with pytest.raises(MlopsError, match=r"1 of 2 shard\(s\) not scored .*00001"):
        commit_score_shards(project, lake=lake, reports=reports, plan=plan, tracking_uri=uri)
    if before is not None:
        assert _predictions(world).equals(before)
    lake.delete_dir(f"_shards/{project.name}")


def test_a_day_that_fits_one_task_or_has_no_records_gets_no_plan(world):
    import datetime as dt

    from mlops_provider.stages.score import plan_score_shards

    project, lake, uri = (world[k] for k in ("project", "lake", "uri"))
    assert plan_score_shards(project, lake=lake, day=SCORE_DAY, shard_rows=ROWS, tracking_uri=uri) is None
    assert plan_score_shards(project, lake=lake, day=SCORE_DAY, shard_rows=ROWS - 1, tracking_uri=uri) is not None
    # No records partition: no plan either; the one-task scoring names the missing partition.
    assert plan_score_shards(project, lake=lake, day=SCORE_DAY + dt.timedelta(days=1), shard_rows=1,
                             tracking_uri=uri) is None
