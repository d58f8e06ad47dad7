"""Operators for the first two stages: extract an interval into staging, then gate it with Great Expectations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlops_provider.links.artifacts import ValidationReportLink
from mlops_provider.operators.base import MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


def _source(project, lake_home=None):
    """The reader for the project's configured source kind, built from Airflow connections."""
    from mlops_provider.config import paths
    from mlops_provider.io import sources

    spec = project.source
    if spec["kind"] == "landing":
        from pathlib import Path

        path = Path(spec["path"])
        return sources.LandingSource(path if path.is_absolute() else paths.mlops_home() / path)
    if spec["kind"] == "postgres":
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        hook = PostgresHook(postgres_conn_id=spec["conn_id"])
        return sources.PostgresSource(hook.get_conn, spec["table"], project.event_timestamp,
                                      labels_table=spec.get("labels_table"))
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    client = S3Hook(aws_conn_id=spec.get("conn_id", "aws_default")).get_conn()
    return sources.S3Source(client, spec["bucket"], spec["prefix"])


class IngestOperator(MlopsBaseOperator):
    """Extract exactly one day of a project's source (and the labels that arrived that day) into staging."""

    template_fields: Sequence[str] = ("project_name", "day")
    ui_color = "#e8f4fd"

    def __init__(self, *, project_name: str, day: str, lake_conn_id: str = "mlops_lake_default", **kwargs: Any):
        super().__init__(**kwargs)
        self.project_name = project_name
        self.day = day
        self.lake_conn_id = lake_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.config.project import load_project
        from mlops_provider.hooks.lake import LakeHook
        from mlops_provider.stages.ingest import stage_day

        project = load_project(self.project_name)
        lake = LakeHook(lake_conn_id=self.lake_conn_id).get_conn()
        return stage_day(project, lake, _source(project), self.day, run_id=context["run_id"])


class ValidateBatchOperator(MlopsBaseOperator):
    """Run the Great Expectations suite on the staged batch; publish it, or quarantine it and fail.

    On success the ``outlets`` asset event carries ``{"day": ..., "partition": ...}`` for downstream DAGs.
    """

    template_fields: Sequence[str] = ("project_name", "day")
    operator_extra_links = (ValidationReportLink(),)
    ui_color = "#fdf2e8"

    def __init__(self, *, project_name: str, day: str, lake_conn_id: str = "mlops_lake_default", **kwargs: Any):
        super().__init__(**kwargs)
        self.project_name = project_name
        self.day = day
        self.lake_conn_id = lake_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.config.project import load_project
        from mlops_provider.exceptions import DataValidationError
        from mlops_provider.hooks.lake import LakeHook
        from mlops_provider.stages.ingest import gate_day

        project = load_project(self.project_name)
        hook = LakeHook(lake_conn_id=self.lake_conn_id)
        try:
            summary = gate_day(project, hook.get_conn(), hook.get_reports(), self.day, run_id=context["run_id"])
        except DataValidationError as exc:
            # The Data Docs page shows the failed expectations with their unexpected values.
            ValidationReportLink.persist(context, url=exc.data_docs_url or hook.browser_url(exc.result_path))
            raise
        ValidationReportLink.persist(context, url=summary.get("data_docs") or hook.browser_url(summary["result"]))
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = {"day": summary["day"], "partition": summary["partition"],
                                                      "rows": summary["rows"]}
        return summary
