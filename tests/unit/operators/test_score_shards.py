"""The score DAG's sharded path: plan_shards -> one score_shard per shard -> score (commit), on the operators'
real pipeline (Feast retrieval, the MLflow champion); the result equals the one-task scoring of the day."""

from __future__ import annotations

import pandas as pd

from tests.shard_worlds import in_row_groups
from tests.unit.operators.support import DAYS, ROWS, asset, task_context


def test_a_day_above_shard_rows_is_scored_in_shards_like_one_task(pipeline):
    from mlops_provider.io.lake import Lake
    from mlops_provider.operators.score_shards import (
        PLANS_KEY,
        PlanScoreShardsOperator,
        ScoreDayOperator,
        ScoreShardOperator,
    )
    from mlops_provider.operators.scoring import ScoreBatchOperator

    lake, day = Lake(), DAYS[-3].isoformat()
    # The same rows in row groups of 250 (a big day's ingest writes many): shards of whole row groups.
    with in_row_groups(lake, "fraud/records", day, 250):
        ScoreBatchOperator(task_id="score", project_name="fraud", day=day).execute(task_context())
        expected = lake.read("fraud/predictions", day)

        plan_context = task_context(task_id="plan_shards")
        items = PlanScoreShardsOperator(task_id="plan_shards", project_name="fraud", day=day,
                                        shard_rows=500).execute(plan_context)
        plans = plan_context["ti"].xcom[PLANS_KEY]
        assert [i["index"] for i in items] == [0, 1, 2] and set(plans) == {day}
        assert [s["rows"] for s in plans[day]["shards"]] == [500, 500, ROWS - 1000]
        for item in items:
            ScoreShardOperator(task_id="score_shard", project_name="fraud", shard=item).execute(task_context())
        predictions = asset("predictions")
        context = task_context(task_id="score")
        result = ScoreDayOperator(task_id="score", project_name="fraud", day=day, plans=plans,
                                  outlets=[predictions]).execute(context)
        assert result["shards"] == 3 and result["rows"] == ROWS
        assert context["outlet_events"][predictions].extra["day"] == day
        pd.testing.assert_frame_equal(lake.read("fraud/predictions", day), expected)

        # A small day (or no plan): the score task scores it alone, as before.
        none = task_context(task_id="plan_shards")
        assert PlanScoreShardsOperator(task_id="plan_shards", project_name="fraud", day=day).execute(none) == []
        assert none["ti"].xcom[PLANS_KEY] == {}
        alone = ScoreDayOperator(task_id="score", project_name="fraud", day=day, plans={}).execute(task_context())
        assert "shards" not in alone and alone["rows"] == ROWS
