"""Operators for the first two stages: extract an interval into staging, then gate it with Great Expectations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlops_provider.links.artifacts import ValidationReportLink, report_link
from mlops_provider.operators.base import ProjectBaseOperator
from mlops_provider.operators.shards import plan_days, plan_of

if TYPE_CHECKING:
    from airflow.sdk import Context


def _source(project):
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
        # Unset keys stay None: PostgresSource applies the schema's defaults (one place).
        return sources.PostgresSource(hook.get_conn, spec["table"], project.event_timestamp,
                                      labels_table=spec.get("labels_table"), arrow_uri=_libpq_uri(hook),
                                      statement_timeout_s=spec.get("statement_timeout_seconds"),
                                      read_streams=spec.get("read_streams"))
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    client = S3Hook(aws_conn_id=spec.get("conn_id", "aws_default")).get_conn()
    return sources.S3Source(client, spec["bucket"], spec["prefix"])


# Connection extras that configure the hook itself, not libpq (the rest, e.g. sslmode, go to the URI).
_HOOK_EXTRAS = {"iam", "redshift", "redshift-serverless", "cursor", "cluster-identifier", "workgroup-name",
                "aws_conn_id", "sqlalchemy_query", "sqlalchemy_scheme", "enable_log_db_messages"}


def _libpq_uri(hook) -> str:
    """The hook's connection as a libpq URI (what ADBC connects with), libpq options from its extras."""
    extras = hook.connection.extra_dejson
    query = {k: str(v) for k, v in extras.items() if k not in _HOOK_EXTRAS and isinstance(v, str | int | float)}
    return hook.sqlalchemy_url.set(drivername="postgresql", query=query).render_as_string(hide_password=False)


def _source_dataset(project, source, read: list[str]):
    """The project's source as a lineage dataset: the landing directory, the S3 prefix or the Postgres table."""
    from mlops_provider.operators import lineage

    spec = project.source
    facet = {"kind": spec["kind"], "read": read}
    if spec["kind"] == "postgres":
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        conn = PostgresHook.get_connection(spec["conn_id"])
        return lineage.postgres_table(conn.host, conn.port, conn.schema, spec["table"],
                                      **{lineage.SOURCE_FACET: {**facet, "event_timestamp": project.event_timestamp}})
    facet["pattern"] = spec.get("pattern")
    root = source.root.as_uri() if spec["kind"] == "landing" else source.root_name
    return lineage.from_uri(root, **{lineage.SOURCE_FACET: facet})


class IngestOperator(ProjectBaseOperator):
    """Extract exactly one day of a project's source (and the labels that arrived that day) into staging."""

    template_fields: Sequence[str] = ("project_name", "day")
    ui_color = "#e8f4fd"

    def __init__(self, *, day: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.day = day

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.domain.layout import staging_labels_table, staging_table
        from mlops_provider.operators.lineage import lake_table
        from mlops_provider.stages.ingest import stage_day

        source = _source(self.project)
        summary = stage_day(self.project, self.lake, source, self.day, run_id=context["run_id"],
                            reports=self.reports)
        self.lineage_input(_source_dataset(self.project, source, summary["sources"]))
        self.lineage_output(lake_table(self.lake, staging_table(self.project), day=summary["day"], rows=summary["rows"]))
        if labels := summary.get("labels"):
            self.lineage_output(lake_table(self.lake, staging_labels_table(self.project), day=summary["day"],
                                           rows=labels["rows"]))
        return summary


class PlanValidationShardsOperator(ProjectBaseOperator):
    """Plan the validation shards of a staged batch of more than ``shard_rows`` rows.

    Returns one item per shard for the mapped :class:`ValidateShardOperator` (an empty list when the batch
    fits one task) and pushes ``{day: plan}`` under the XCom key ``plans``
    (:mod:`mlops_provider.operators.shards`).

    :param shard_rows: rows per shard; default the project's ``runs.shard_rows``.
    """

    template_fields: Sequence[str] = ("project_name", "day", "shard_rows")
    ui_color = "#fdf2e8"

    def __init__(self, *, day: str, shard_rows: int | str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.day = day
        self.shard_rows = shard_rows

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from mlops_provider.stages.ingest import plan_validation_shards

        return plan_days(self, context, "validation",
                         lambda day, rows: plan_validation_shards(self.project, self.lake, day, rows))


class ValidateShardOperator(ProjectBaseOperator):
    """Check one shard of a staged batch (``shard``: an item of :class:`PlanValidationShardsOperator`).

    Findings do not fail this task: the ``validate`` gate decides over every shard and quarantines the
    whole batch. The Validation report link opens this shard's Data Docs page.
    """

    template_fields: Sequence[str] = ("project_name", "shard")
    operator_extra_links = (ValidationReportLink(),)
    ui_color = "#fdf2e8"

    def __init__(self, *, shard: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shard = shard

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.stages.ingest import validate_shard

        plan, index = self.shard["plan"], int(self.shard["index"])
        self.log.info("%s %s: validation shard %d of %d (%d rows)", self.project_name, plan["day"], index + 1,
                      len(plan["shards"]), plan["shards"][index]["rows"])
        summary = validate_shard(self.project, self.lake, self.reports, plan, index, run_id=context["run_id"])
        if summary.get("data_docs"):
            ValidationReportLink.persist(context, url=report_link(self.reports, summary["data_docs"]))
        return summary


class ValidateBatchOperator(ProjectBaseOperator):
    """Run the Great Expectations suite on the staged batch; publish it, or quarantine it and fail.

    On success the ``outlets`` asset event carries ``{"day": ..., "partition": ..., "rows": ...}`` for
    downstream DAGs. A failed suite fails the task without retries (the batch is quarantined; the
    validation report link shows why). A batch planned in shards (``plans``: the XCom ``plans`` of
    :class:`PlanValidationShardsOperator`) is decided from its shards' results.
    """

    template_fields: Sequence[str] = ("project_name", "day", "plans")
    operator_extra_links = (ValidationReportLink(),)
    ui_color = "#fdf2e8"

    def __init__(self, *, day: str, plans: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.day = day
        self.plans = plans

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.exceptions import DataValidationError
        from mlops_provider.stages.ingest import gate_day

        try:
            summary = gate_day(self.project, self.lake, self.reports, self.day, run_id=context["run_id"],
                               plan=plan_of(self.plans, self.day))
        except DataValidationError as exc:
            # The Data Docs page (in the report store, served by the report view) shows the failed expectations
            # with their unexpected values.
            ValidationReportLink.persist(context, url=report_link(self.reports, exc.data_docs_url or exc.result_path))
            raise
        ValidationReportLink.persist(context, url=report_link(self.reports, summary.get("data_docs") or summary["result"]))
        self._lineage(summary)
        self.emit_asset_events(context, {"day": summary["day"], "partition": summary["partition"],
                                         "rows": summary["rows"]})
        return summary

    def _lineage(self, summary: dict[str, Any]) -> None:
        from mlops_provider.domain.layout import labels_table, records_table, staging_table
        from mlops_provider.operators.lineage import lake_table

        project, day = self.project, summary["day"]
        self.lineage_input(lake_table(self.lake, staging_table(project), day=day, rows=summary["rows"]))
        self.lineage_output(lake_table(self.lake, records_table(project), day=day, rows=summary["rows"]))
        for arrival, published in (summary.get("labels") or {}).items():
            self.lineage_output(lake_table(self.lake, labels_table(project), day=arrival, rows=published["rows"]))
