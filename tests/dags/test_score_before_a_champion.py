"""Before a first champion the score DAG skips (plan_shards skips, so do score_shard and score) instead of
failing ``score`` on the skipped plan's missing ``plans`` XCom; the run itself succeeds and pages nobody."""

from __future__ import annotations

import datetime as dt


def test_score_run_before_a_first_champion_is_skipped_not_failed(airflow_db, mlops_home):
    from mlops_provider.io import model_store
    from mlops_provider.runner import PipelineRunner

    model_store.clear_cache()
    result = PipelineRunner("fraud").run("score", dt.date(2024, 1, 5))
    assert result.ok, result.tasks
    assert result.tasks == {"plan_shards": "skipped", "score_shard": "skipped", "score": "skipped"}
