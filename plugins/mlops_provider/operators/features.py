"""Operators of the feature stage: compute a day's feature tables, then publish them through Feast."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlops_provider.operators.base import FeastBaseOperator, ProjectBaseOperator
from mlops_provider.operators.shards import plan_days, plan_of

if TYPE_CHECKING:
    from airflow.sdk import Context


class PlanFeatureShardsOperator(ProjectBaseOperator):
    """Plan the feature shards of every day of ``day`` that has more than ``shard_rows`` records.

    Returns one item per shard for the mapped :class:`ComputeFeatureShardOperator` (an empty list when
    every day fits one task) and pushes ``{day: plan}`` under the XCom key ``plans``
    (:mod:`mlops_provider.operators.shards`).

    :param shard_rows: records per shard; default the project's ``runs.shard_rows``.
    """

    template_fields: Sequence[str] = ("project_name", "day", "shard_rows")
    ui_color = "#eef8e8"

    def __init__(self, *, day: str, shard_rows: int | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.day = day
        self.shard_rows = shard_rows

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from mlops_provider.stages.features import plan_feature_shards

        return plan_days(self, context, "feature",
                         lambda day, rows: plan_feature_shards(self.project, self.lake, day, rows))


class ComputeFeatureShardOperator(ProjectBaseOperator):
    """Compute one feature shard (``shard``: an item of :class:`PlanFeatureShardsOperator`) into its staging tables."""

    template_fields: Sequence[str] = ("project_name", "shard")
    ui_color = "#eef8e8"

    def __init__(self, *, shard: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shard = shard

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.stages.features import compute_feature_shard

        plan, index = self.shard["plan"], int(self.shard["index"])
        self.log.info("%s %s: feature shard %d of %d (entity key bucket %d, %d records)", self.project_name,
                      plan["day"], index + 1, len(plan["shards"]), index, plan["shards"][index]["rows"])
        return compute_feature_shard(self.project, self.lake, plan, index)


class ComputeFeaturesOperator(ProjectBaseOperator):
    """Write partition ``day`` of the entity-aggregate and record feature tables from validated records.

    ``day`` may name several days, comma-separated (asset events merged into one run): they are
    computed oldest first, since each day's window aggregates read the days before it. A day planned in
    shards (``plans``: the XCom ``plans`` of :class:`PlanFeatureShardsOperator`) is committed from its
    shards instead of computed here.
    """

    template_fields: Sequence[str] = ("project_name", "day", "plans")
    ui_color = "#eef8e8"

    def __init__(self, *, day: str, plans: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.day = day
        self.plans = plans

    def execute(self, context: Context) -> dict[str, Any]:
        results = self.each_day(self.day, self._compute)
        return {"project": self.project.name, **results[-1], "days": [r["day"] for r in results],
                "per_day": results}

    def _compute(self, day: str) -> dict[str, Any]:
        from mlops_provider.domain.layout import record_table, records_table
        from mlops_provider.operators.lineage import lake_table
        from mlops_provider.stages.features import (
            commit_feature_shards,
            compute_entity_features,
            compute_record_features,
        )

        plan = plan_of(self.plans, day)
        if plan is not None:
            result = commit_feature_shards(self.project, self.lake, plan)
        else:
            entity = compute_entity_features(self.project, self.lake, day)
            record = compute_record_features(self.project, self.lake, day)
            result = {"day": entity["day"], "entities": entity["entities"], "records": record["rows"],
                      "entity_partition": entity["uri"], "record_partition": record["uri"],
                      "per_entity": entity["per_entity"]}
        self.lineage_input(lake_table(self.lake, records_table(self.project), day=result["day"]))
        self.lineage_output(*(lake_table(self.lake, e["table"], day=result["day"], rows=e["entities"])
                              for e in result["per_entity"].values()),
                            lake_table(self.lake, record_table(self.project), day=result["day"],
                                       rows=result["records"]))
        return {k: v for k, v in result.items() if k != "per_entity"}


class MaterializeFeaturesOperator(FeastBaseOperator):
    """Apply the Feast definitions, load partitions ``start - overlap .. end`` online, then verify them.

    ``start`` and ``end`` are partition days (comma-separated lists allowed: the earliest start and the
    latest end are taken, so a run of merged asset events materializes all of its days); the window
    reaches back ``features.materialize_overlap_days`` so a rerun that recomputed yesterday's partition
    also refreshes it online. The freshness check reads a sample of entities back from the online store
    and fails the task if they differ from partition ``end``. The ``outlets`` asset event carries
    ``{"day": end, "days": [start .. end]}``.
    """

    template_fields: Sequence[str] = ("project_name", "start", "end")
    ui_color = "#e8f8f0"

    def __init__(self, *, start: str, end: str, freshness_sample_size: int = 50, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start = start
        self.end = end
        self.freshness_sample_size = freshness_sample_size

    def execute(self, context: Context) -> dict[str, Any]:
        import datetime as dt

        from mlops_provider.domain.features import feature_timestamp
        from mlops_provider.domain.layout import as_date, days

        project, store = self.project, self.feature_store
        start, end = as_date(self.split_days(self.start)[0]), as_date(self.split_days(self.end)[-1])
        first = start - dt.timedelta(days=int(project.features["materialize_overlap_days"]))
        store.apply()
        # Partition d holds values known at the end of d, stamped midnight of d + 1.
        result = store.materialize(feature_timestamp(first), feature_timestamp(end),
                                   chunk_days=int(project.features["materialize_chunk_days"]))
        freshness = store.check_freshness(end, sample_size=self.freshness_sample_size)
        self._lineage(first, end, result)
        self.emit_asset_events(context, {"day": end.isoformat(), "days": [d.isoformat() for d in days(start, end)]})
        return {"project": project.name, "first_partition": first.isoformat(), "last_partition": end.isoformat(),
                "chunks": result["chunks"], "rows_written": result["rows_written"],
                "online_store": result["online_store"], "freshness_checked": freshness["checked"],
                "freshness_mismatches": freshness["mismatches"]}

    def _lineage(self, first: Any, end: Any, result: dict[str, Any]) -> None:
        """Offline feature tables in, feature views (their online store) out."""
        from mlops_provider.domain.layout import entity_table, record_table
        from mlops_provider.io import feast_repo
        from mlops_provider.operators.lineage import feature_view, lake_table

        project, window = self.project, {"first_partition": first.isoformat(), "last_partition": end.isoformat()}
        online = {"online_store": str(result.get("online_store")), **window}
        for name, entity in feast_repo.entity_views(project).items():
            self.lineage_input(lake_table(self.lake, entity_table(project, entity.name), day=end))
            self.lineage_output(feature_view(project, name, mlops_materialization=online))
        self.lineage_input(lake_table(self.lake, record_table(project), day=end))
        self.lineage_output(feature_view(project, feast_repo.record_view_name(project), mlops_materialization=online))
