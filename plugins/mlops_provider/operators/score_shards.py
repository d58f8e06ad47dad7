"""Operators of a day scored in shards: plan, one mapped task per shard, commit.

A day with more records than the project's ``runs.shard_rows`` is split into shards of whole row groups
(:func:`~mlops_provider.stages.score.plan_score_shards`); Airflow's dynamic task mapping runs one
:class:`ScoreShardOperator` per shard on whichever workers are free; :class:`ScoreDayOperator` (task id
``score``, as before) then publishes each sharded day's partition at once and scores the small days
itself, exactly as :class:`~mlops_provider.operators.scoring.ScoreBatchOperator` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlops_provider.operators.base import FeastBaseOperator, MlflowBaseOperator
from mlops_provider.operators.common import json_safe
from mlops_provider.operators.scoring import ScoreBatchOperator
from mlops_provider.operators.shards import PLANS_KEY, plan_days, plan_of

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["PLANS_KEY", "PlanScoreShardsOperator", "ScoreDayOperator", "ScoreShardOperator"]


class PlanScoreShardsOperator(ScoreBatchOperator):
    """Plan the shards of every day of ``day`` that has more than ``shard_rows`` records.

    Returns one item ``{"day", "index", "plan"}`` per shard (what the mapped shard tasks expand over; an
    empty list when every day is small) and pushes ``{day: plan}`` under the XCom key ``plans``.
    Skips, like scoring, before a first champion.

    :param shard_rows: rows per shard; default the project's ``runs.shard_rows``.
    """

    operator_extra_links = ()

    def __init__(self, *, shard_rows: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shard_rows = shard_rows

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from mlops_provider.stages.score import plan_score_shards

        hook = self.mlflow_hook
        with hook.environment():
            self._skip_before_a_first_champion()
            return plan_days(self, context, "score", lambda day, rows: plan_score_shards(
                self.project, lake=self.lake, day=day, shard_rows=rows, tracking_uri=hook.tracking_uri,
                registry_uri=hook.registry_uri))


class ScoreShardOperator(MlflowBaseOperator, FeastBaseOperator):
    """Score one shard (``shard`` = an item of :class:`PlanScoreShardsOperator`) into its staging partition."""

    template_fields: Sequence[str] = ("project_name", "shard")
    ui_color = "#f3e8fd"

    def __init__(self, *, shard: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shard = shard

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.stages.score import score_shard

        plan, index = self.shard["plan"], int(self.shard["index"])
        self.log.info("%s %s: shard %d of %d (%d records)", self.project_name, plan["day"], index + 1,
                      len(plan["shards"]), plan["shards"][index]["rows"])
        with self.mlflow_hook.environment():
            result = score_shard(self.project, lake=self.lake, feature_store=self.feature_store, plan=plan,
                                 index=index, tracking_uri=self.mlflow_hook.tracking_uri,
                                 registry_uri=self.mlflow_hook.registry_uri)
        return json_safe(result)


class ScoreDayOperator(ScoreBatchOperator):
    """Score every day of ``day``: commit the sharded ones from their shards, score the others in this task.

    :param plans: ``{day: plan}`` of :class:`PlanScoreShardsOperator` (its XCom ``plans``).
    """

    template_fields: Sequence[str] = (*ScoreBatchOperator.template_fields, "plans")

    def __init__(self, *, plans: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plans = plans

    def _score(self, day: str) -> dict[str, Any]:
        from mlops_provider.stages.score import commit_score_shards

        plan = plan_of(self.plans, day)
        if plan is None:
            return super()._score(day)
        summary = commit_score_shards(self.project, lake=self.lake, reports=self.reports, plan=plan,
                                      tracking_uri=self.mlflow_hook.tracking_uri,
                                      registry_uri=self.mlflow_hook.registry_uri)
        self._lineage(summary)
        return summary
