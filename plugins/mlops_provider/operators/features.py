"""Operators of the feature stage: compute a day's feature tables, then publish them through Feast."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlops_provider.operators.base import MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class ComputeFeaturesOperator(MlopsBaseOperator):
    """Write partition ``day`` of the entity-aggregate and record feature tables from validated records.

    ``day`` may name several days, comma-separated (asset events merged into one run): they are
    computed oldest first, since each day's window aggregates read the days before it.
    """

    template_fields: Sequence[str] = ("project_name", "day")
    ui_color = "#eef8e8"

    def __init__(self, *, project_name: str, day: str, lake_conn_id: str = "mlops_lake_default", **kwargs: Any):
        super().__init__(**kwargs)
        self.project_name = project_name
        self.day = day
        self.lake_conn_id = lake_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.config.project import load_project
        from mlops_provider.dag_factory import split_days
        from mlops_provider.hooks.lake import LakeHook
        from mlops_provider.stages.features import compute_entity_features, compute_record_features

        project = load_project(self.project_name)
        lake = LakeHook(lake_conn_id=self.lake_conn_id).get_conn()
        results = []
        for day in split_days(self.day):
            entity = compute_entity_features(project, lake, day)
            record = compute_record_features(project, lake, day)
            results.append({"day": entity["day"], "entities": entity["entities"], "records": record["rows"],
                            "entity_partition": entity["uri"], "record_partition": record["uri"]})
        return {"project": project.name, **results[-1], "days": [r["day"] for r in results],
                "per_day": results}


class MaterializeFeaturesOperator(MlopsBaseOperator):
    """Apply the Feast definitions, load partitions ``start - overlap .. end`` online, then verify them.

    ``start`` and ``end`` are partition days (comma-separated lists allowed: the earliest start and the
    latest end are taken, so a run of merged asset events materializes all of its days); the window reaches back ``features.materialize_overlap_days``
    so a rerun that recomputed yesterday's partition also refreshes it online. The freshness check reads a
    sample of entities back from the online store and fails the task if they differ from partition ``end``.
    """

    template_fields: Sequence[str] = ("project_name", "start", "end")
    ui_color = "#e8f8f0"

    def __init__(self, *, project_name: str, start: str, end: str, feast_conn_id: str = "feast_default",
                 lake_conn_id: str = "mlops_lake_default", freshness_sample_size: int = 50, **kwargs: Any):
        super().__init__(**kwargs)
        self.project_name = project_name
        self.start = start
        self.end = end
        self.feast_conn_id = feast_conn_id
        self.lake_conn_id = lake_conn_id
        self.freshness_sample_size = freshness_sample_size

    def execute(self, context: Context) -> dict[str, Any]:
        import datetime as dt

        from mlops_provider.config.project import load_project
        from mlops_provider.domain.features import feature_timestamp
        from mlops_provider.domain.layout import as_date
        from mlops_provider.hooks.feast import FeastHook
        from mlops_provider.hooks.lake import LakeHook

        project = load_project(self.project_name)
        hook = FeastHook(project, feast_conn_id=self.feast_conn_id,
                         lake=LakeHook(lake_conn_id=self.lake_conn_id).get_conn()).feature_store()
        from mlops_provider.dag_factory import split_days

        start, end = as_date(split_days(self.start)[0]), as_date(split_days(self.end)[-1])
        first = start - dt.timedelta(days=int(project.features.get("materialize_overlap_days", 1)))
        hook.apply()
        # Partition d holds values known at the end of d, stamped midnight of d + 1.
        result = hook.materialize(feature_timestamp(first), feature_timestamp(end),
                                  chunk_days=int(project.features.get("materialize_chunk_days", 7)))
        freshness = hook.check_freshness(end, sample_size=self.freshness_sample_size)
        days = [d.isoformat() for d in (start + dt.timedelta(days=i) for i in range((end - start).days + 1))]
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = {"day": end.isoformat(), "days": days}
        return {"project": project.name, "first_partition": first.isoformat(), "last_partition": end.isoformat(),
                "chunks": result["chunks"], "rows_written": result["rows_written"],
                "online_store": result["online_store"], "freshness_checked": freshness["checked"],
                "freshness_mismatches": freshness["mismatches"]}
