"""Feast objects of one project (entities, sources, feature views, feature service), built from its YAML.

The same function feeds the Airflow hook (programmatic ``FeatureStore``) and the CLI repository in
``include/feature_repo``, so ``feast apply`` from a shell and from a task register identical objects.

Each FileSource points at the partition files of a lake table, ``<table>/dt=*/data.parquet``. Feast's
``file`` offline store hands that path to ``dask.dataframe.read_parquet``, which expands the glob and
reads the partitions as one hive-partitioned dataset. The glob matters: reading the table *directory*
instead would also pick up the hidden ``.tmp-*.parquet`` file of a partition being written (Dask does
not skip hidden files), i.e. duplicated or half-written rows. Dask adds a ``dt`` column from the
directory names; Feast selects the columns it needs by name, so ``dt`` is harmless as long as no feature
or key is called ``dt`` (checked below). Every view declares its schema explicitly, so nothing is inferred
from the partitions, which may not exist yet at ``apply`` time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mlops_provider.config.environment import patched_environ
from mlops_provider.domain import features as F
from mlops_provider.domain import layout as L
from mlops_provider.exceptions import ProjectConfigError
from mlops_provider.io.lake import PARTITION_FILE

if TYPE_CHECKING:
    from mlops_provider.config.features import Aggregation, Entity
    from mlops_provider.config.project import ProjectConfig
    from mlops_provider.io.lake import Lake

PARTITION_COLUMN = "dt"
# Record features are read at the record's own timestamp; a small TTL keeps the as-of join exact and cheap.
RECORD_TTL = dt.timedelta(days=1)


def entity_view_name(project: ProjectConfig, entity: Entity | None = None) -> str:
    """The feature view of one entity's aggregates (default: the main entity's)."""
    return f"{project.name}_{(entity.name if entity else project.entity_name)}_aggregates"


def entity_views(project: ProjectConfig) -> dict[str, Entity]:
    """Feature view name -> the entity whose aggregates it serves, every entity of the project."""
    return {entity_view_name(project, e): e for e in project.feature_spec.entities}


def record_view_name(project: ProjectConfig) -> str:
    return f"{project.name}_record_features"


def feature_service_name(project: ProjectConfig) -> str:
    return project.model_name


def record_entity_name(project: ProjectConfig) -> str:
    return project.record_id


def feature_references(project: ProjectConfig) -> list[str]:
    """Every ``view:feature`` reference the model uses, in a stable order (entity aggregates first)."""
    return online_feature_references(project) + [
        f"{record_view_name(project)}:{n}" for n in F.record_feature_names(project)
    ]


def online_feature_references(project: ProjectConfig) -> list[str]:
    """References served from the online store: the entity aggregates (record features come with the request)."""
    return [f"{view}:{n}" for view, e in entity_views(project).items() for n in F.entity_feature_names(project, e)]


def feature_names(project: ProjectConfig) -> list[str]:
    """Column names of the model's features as returned by ``get_historical_features``."""
    return [ref.split(":", 1)[1] for ref in feature_references(project)]


def table_path(lake: Lake, table: str) -> str:
    """The partition files Feast reads: a plain path for a local lake (Feast mangles ``file://``), else a URI."""
    path = f"{lake.root}/{table}/{PARTITION_COLUMN}=*/{PARTITION_FILE}"
    return path if lake.is_local else f"{lake.root_uri.split('://', 1)[0]}://{path}"


def s3_settings(lake: Lake) -> dict[str, str] | None:
    """Endpoint, region and credentials of a lake on S3 (``None`` for any other filesystem).

    Taken from the lake's pyarrow ``S3FileSystem`` (built by the lake hook from the ``aws`` connection),
    so Feast's offline store reads the same endpoint with the same identity as the lake itself.
    """
    if lake.is_local or type(lake.fs).__name__ != "S3FileSystem":
        return None
    # pyarrow exposes a filesystem's settings only through its pickling arguments.
    options = lake.fs.__reduce__()[1][0]
    endpoint = options.get("endpoint_override") or ""
    if endpoint and "://" not in endpoint:
        endpoint = f"{options.get('scheme') or 'https'}://{endpoint}"
    return {"endpoint_url": endpoint, "region": options.get("region") or "",
            "access_key": options.get("access_key") or "", "secret_key": options.get("secret_key") or "",
            "session_token": options.get("session_token") or ""}


@contextlib.contextmanager
def s3_environment(lake: Lake) -> Iterator[None]:
    """The lake's S3 credentials and endpoint as ``AWS_*`` variables while Feast reads the offline store.

    Feast's file offline store reads ``s3://`` sources with Dask, i.e. through s3fs, which takes its
    credentials from the environment (a FileSource carries only the endpoint). A local lake changes nothing.
    """
    settings = s3_settings(lake)
    if settings is None:
        yield
        return
    wanted = {"AWS_ENDPOINT_URL": settings["endpoint_url"], "AWS_DEFAULT_REGION": settings["region"]}
    if settings["access_key"]:
        wanted.update(AWS_ACCESS_KEY_ID=settings["access_key"], AWS_SECRET_ACCESS_KEY=settings["secret_key"],
                      AWS_SESSION_TOKEN=settings["session_token"])
    with patched_environ(wanted):
        yield


def _feast_type(project: ProjectConfig, column: str) -> Any:
    from feast.types import Float64, Int64, String, UnixTimestamp

    kind = project.columns[column]["type"]
    return {"float": Float64, "integer": Int64, "boolean": Int64, "category": String, "string": String,
            "timestamp": UnixTimestamp}[kind]


def _key_type(project: ProjectConfig, column: str) -> tuple[Any, Any]:
    from feast.types import Int64, String
    from feast.value_type import ValueType

    if project.columns[column]["type"] == "integer":
        return ValueType.INT64, Int64
    return ValueType.STRING, String


def feature_definitions(project: ProjectConfig, lake: Lake) -> list[Any]:
    """Entities, FileSources, FeatureViews and the FeatureService of ``project``, reading ``lake``."""
    from feast import FeatureService

    _check_reserved_columns(project)
    tags = {"project": project.name, "owner": project.owner, "config_hash": project.config_hash()}
    # A custom S3 endpoint (MinIO, moto) travels with the source; None (local lake, AWS itself) = Feast's default.
    endpoint = (s3_settings(lake) or {}).get("endpoint_url") or None
    objects, views = [], []
    for entity in project.feature_spec.entities:
        if not project.feature_spec.of(entity):
            continue  # an entity without aggregations has no table and no view
        feast_entity = _entity(project, entity.name, entity.key, f"{project.name}: {entity.name} aggregates are keyed by",
                               tags)
        source = _file_source(lake, L.entity_table(project, entity.name), f"{project.name}_{entity.name}_source",
                              endpoint, tags, f"daily {entity.name} window aggregates (lake, one partition per day)")
        views.append(_entity_view(project, entity, feast_entity, source, tags))
        objects += [feast_entity, source]
    record = _entity(project, record_entity_name(project), project.record_id, f"{project.name}: one scored record",
                     tags)
    record_source = _file_source(lake, L.record_table(project), f"{project.name}_record_source", endpoint, tags,
                                 "per-record model inputs (lake, one partition per event day)")
    views.append(_record_view(project, record, record_source, tags))
    service = FeatureService(name=feature_service_name(project), features=views,
                             description=f"every feature of model {project.model_name}", tags=tags)
    return [*objects, record, record_source, *views, service]


def _check_reserved_columns(project: ProjectConfig) -> None:
    """Refuse a key or record feature named like the partition column Dask adds to every offline row."""
    keys = {e.key for e in project.feature_spec.entities}
    clash = {PARTITION_COLUMN} & {*keys, project.record_id, *F.record_feature_names(project)}
    if clash:
        raise ProjectConfigError(f"{project.path}: column '{PARTITION_COLUMN}' is reserved for lake partitions")


def _entity(project: ProjectConfig, name: str, key: str, description: str, tags: dict[str, str]) -> Any:
    """A Feast entity keyed by column ``key``."""
    from feast import Entity

    value_type, _ = _key_type(project, key)
    return Entity(name=name, join_keys=[key], value_type=value_type, description=description, tags=tags)


def _file_source(lake: Lake, table: str, name: str, endpoint: str | None, tags: dict[str, str],
                 description: str) -> Any:
    """A FileSource over the partition files of lake ``table``."""
    from feast import FileSource
    from feast.data_format import ParquetFormat

    return FileSource(
        name=name,
        path=table_path(lake, table),
        file_format=ParquetFormat(),
        s3_endpoint_override=endpoint,
        timestamp_field=F.EVENT_TIMESTAMP,
        created_timestamp_column=F.CREATED_TIMESTAMP,
        description=description,
        tags=tags,
    )


def _aggregate_type(project: ProjectConfig, agg: Aggregation) -> Any:
    """Feast type of an aggregate: counts are integers, a last value keeps its column's kind, the rest float."""
    from feast.types import Float64, Int64, String

    if agg.integer:
        return Int64
    if agg.agg == "last" and project.columns[agg.column]["type"] in ("category", "string"):
        return String
    return Float64


def _entity_view(project: ProjectConfig, entity: Entity, feast_entity: Any, source: Any, tags: dict[str, str]) -> Any:
    """The online view of one entity's window aggregates, kept for its longest window plus a day."""
    from feast import FeatureView, Field

    _, key_type = _key_type(project, entity.key)
    aggregations = {a.name: a for a in project.feature_spec.of(entity)}
    return FeatureView(
        name=entity_view_name(project, entity),
        entities=[feast_entity],
        ttl=dt.timedelta(days=project.feature_spec.max_window(entity) + 1),
        schema=[Field(name=entity.key, dtype=key_type)]
        + [Field(name=n, dtype=_aggregate_type(project, a)) for n, a in aggregations.items()],
        source=source,
        online=True,
        description=f"per-{entity.name} window aggregates known at the end of each day",
        tags=tags,
        owner=project.owner,
    )


def _record_view(project: ProjectConfig, record: Any, source: Any, tags: dict[str, str]) -> Any:
    """The offline-only view of each record's own model inputs (its columns and parts of its timestamp)."""
    from feast import FeatureView, Field
    from feast.types import Int64

    _, record_field_type = _key_type(project, project.record_id)
    fields = [Field(name=r.name, dtype=_feast_type(project, r.column) if r.column else Int64)
              for r in project.feature_spec.record]
    return FeatureView(
        name=record_view_name(project),
        entities=[record],
        ttl=RECORD_TTL,
        schema=[Field(name=project.record_id, dtype=record_field_type), *fields],
        source=source,
        # A record is scored once, from the request itself: copying every record into the online store
        # would cost writes per event and never be read, so this view is offline (training) only.
        online=False,
        description="per-record model inputs, for training sets",
        tags=tags,
        owner=project.owner,
    )
