"""What the provider's operators read and wrote, as OpenLineage datasets (apache-airflow-providers-openlineage).

An operator records its inputs and outputs while it runs (:meth:`MlopsBaseOperator.lineage_input` /
:meth:`~MlopsBaseOperator.lineage_output`, plain :class:`LineageDataset` values); the OpenLineage listener
then calls :meth:`MlopsBaseOperator.get_openlineage_facets_on_complete` on the same operator object, which
turns them into OpenLineage datasets. Nothing here imports OpenLineage: only that method does, when lineage
is enabled (an ``[openlineage] transport`` is configured).

Names follow OpenLineage's dataset naming: a local path is namespace ``file`` and the absolute path; an S3
object ``s3://<bucket>`` and the key; a PostgreSQL table ``postgres://<host>:<port>`` and
``<database>.<schema>.<table>``. A lake table is one dataset (``.../<project>/records``), whatever the
day; the day's partition is its ``mlops_partition`` facet, so lineage links every day of a table.
Feature views are ``feast://<project>`` datasets, model versions ``mlflow://<host>`` datasets named
``models/<model>/<version>``. No credential ever enters a name: URIs lose their user information.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from mlops_provider.config.project import ProjectConfig
    from mlops_provider.io.lake import Lake

#: The facet that names the day's partition of a lake table (``day``, ``uri``).
PARTITION_FACET = "mlops_partition"
#: The facet of a model version: name, version, MLflow run, aliases, metrics.
MODEL_FACET = "mlops_model_version"
#: The facet of a source: kind, pattern or table, the files (or query) read.
SOURCE_FACET = "mlops_source"


@dataclass(frozen=True)
class LineageDataset:
    """One dataset an operator read or wrote: OpenLineage namespace and name, facets as plain dicts.

    ``rows`` becomes the standard output statistics facet of an output (``rowCount``).
    """

    namespace: str
    name: str
    facets: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)
    rows: int | None = field(default=None, compare=False)


def _without_userinfo(netloc: str) -> str:
    return netloc.rsplit("@", 1)[-1]


def from_uri(uri: str, **facets: dict[str, Any]) -> LineageDataset:
    """The dataset at ``file:///path``, ``s3://bucket/key`` or a plain path, named as OpenLineage does."""
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        return LineageDataset("file", parts.path or uri, facets)
    if parts.scheme in ("s3", "s3a", "gs"):
        return LineageDataset(f"{parts.scheme}://{_without_userinfo(parts.netloc)}", parts.path.lstrip("/"), facets)
    return LineageDataset(f"{parts.scheme}://{_without_userinfo(parts.netloc)}", parts.path.lstrip("/") or "/", facets)


def lake_table(lake: Lake, table: str, *, day: Any = None, rows: int | None = None) -> LineageDataset:
    """A lake table (``<project>/records``...), with the day's partition as a facet when ``day`` is given."""
    dataset = from_uri(lake.uri(f"{lake.root}/{table}"))
    facets = {}
    if day is not None:
        facets[PARTITION_FACET] = {"day": str(day)[:10], "uri": lake.uri(lake.partition_path(table, day))}
    return LineageDataset(dataset.namespace, dataset.name, facets, rows)


def feature_view(project: ProjectConfig, name: str, **facets: dict[str, Any]) -> LineageDataset:
    """A Feast feature view (or feature service) of the project's Feast project."""
    return LineageDataset(f"feast://{project.name}", name, facets)


def model_version(tracking_uri: str | None, model_name: str, version: Any, **details: Any) -> LineageDataset:
    """A registered model version; ``details`` (run id, metrics, aliases, url) become its model facet."""
    parts = urlsplit(tracking_uri or "")
    host = _without_userinfo(parts.netloc) if parts.scheme in ("http", "https", "databricks") else "embedded"
    facet = {"model_name": model_name, "version": str(version), **{k: v for k, v in details.items() if v is not None}}
    return LineageDataset(f"mlflow://{host}", f"models/{model_name}/{version}", {MODEL_FACET: facet})


def postgres_table(host: str | None, port: Any, database: str | None, table: str, **facets: dict[str, Any]
                   ) -> LineageDataset:
    """A PostgreSQL table (``schema.table`` or ``table``, schema ``public``)."""
    schema, _, name = table.rpartition(".")
    return LineageDataset(f"postgres://{host or 'localhost'}:{port or 5432}",
                          f"{database or 'postgres'}.{schema or 'public'}.{name}", facets)
