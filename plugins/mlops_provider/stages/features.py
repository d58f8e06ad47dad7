"""The features stage: read a day's validated records, compute the feature tables, write their partitions.

The computation is :mod:`mlops_provider.domain.features`; Feast definitions, materialization and
point-in-time retrieval are the feature store's (:mod:`mlops_provider.io.feature_store`).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from typing import TYPE_CHECKING, Any

from mlops_provider.domain import features as F
from mlops_provider.domain.layout import as_date, entity_table, record_table, records_table
from mlops_provider.exceptions import MlopsError
from mlops_provider.stages import beside, shard_row_groups

if TYPE_CHECKING:
    import pandas as pd

    from mlops_provider.config.features import Entity
    from mlops_provider.config.project import ProjectConfig
    from mlops_provider.io.lake import Lake

log = logging.getLogger(__name__)


def compute_entity_table(project: ProjectConfig, lake: Lake, entity: Entity, day: dt.date) -> dict[str, Any]:
    """Write partition ``day`` of ``entity``'s aggregate table: one row per key seen in its longest window."""
    big = project.feature_spec.max_window(entity)
    start = day - dt.timedelta(days=big - 1)
    table = entity_table(project, entity.name)
    partials, source_rows, days_read = [], 0, 0
    for d in (start + dt.timedelta(days=i) for i in range(big)):
        if not lake.exists(records_table(project), d):
            continue
        records = lake.read(records_table(project), d, columns=F.entity_source_columns(project, entity))
        source_rows += len(records)
        days_read += 1
        partials.append(F.daily_partials(project, entity, records))
    log.info("%s: read %d records from %d of %d days (%s..%s)", table, source_rows, days_read, big, start, day)
    out = F.entity_features(project, entity, day, partials)
    uri = lake.write(table, day, out)
    log.info("%s: %d %s keys, %d features for %s -> %s", table, len(out), entity.name,
             len(project.feature_spec.of(entity)), day, uri)
    return {"table": table, "entities": len(out), "source_rows": source_rows, "uri": uri}


def compute_entity_features(project: ProjectConfig, lake: Lake, day: str | dt.date) -> dict[str, Any]:
    """Write partition ``day`` of every entity's aggregate table (the main entity's summary first)."""
    day = as_date(day)
    per_entity = {e.name: compute_entity_table(project, lake, e, day) for e in project.feature_spec.entities}
    main = per_entity[project.entity_name]
    return {**main, "day": day.isoformat(), "rows": main["entities"], "per_entity": per_entity}


def compute_record_features(project: ProjectConfig, lake: Lake, day: str | dt.date) -> dict[str, Any]:
    """Write partition ``day`` of ``<project>/features/record``: the model's per-record inputs, typed for Feast."""
    day = as_date(day)
    records = lake.read(records_table(project), day, columns=F.record_source_columns(project))
    out = F.record_features(project, records)
    uri = lake.write(record_table(project), day, out)
    log.info("%s: %d records for %s -> %s", record_table(project), len(out), day, uri)
    return {"table": record_table(project), "day": day.isoformat(), "rows": len(out), "uri": uri}


# -- a day in shards: plan, compute each shard (in parallel on the executor's workers), commit ----------
#
# Entity aggregates shard by key: shard i of n computes every entity whose key hashes to i (a stable hash,
# the same in every process), reading the window's records and keeping its keys only, so it holds about
# 1/n of the window's partials. Record features shard by whole row groups of the day's records. The commit
# writes each table's partition from its shards in the unsharded path's order (entity keys sorted, records
# in file order), so the sharded partitions are the unsharded ones.
STAGE = "features"
RECORD_PART = "record"


def key_buckets(keys: Any, buckets: int) -> Any:
    """Which of ``buckets`` shards each key belongs to: a stable hash of its string form (numpy array)."""
    import pandas as pd

    values = pd.Series(keys).astype(str).to_numpy(dtype=object)
    return pd.util.hash_array(values) % buckets


def plan_feature_shards(project: ProjectConfig, lake: Lake, day: str | dt.date, shard_rows: int) -> dict[str, Any] | None:
    """Split the day into shards of about ``shard_rows`` records (``None``: the day fits one task).

    Every shard is ``{"index", "buckets", "row_groups", "start_row", "rows"}``: it computes the entity
    aggregates of key bucket ``index`` of ``buckets`` and the record features of its row groups (none
    for a shard past the last row group).
    """

    from mlops_provider.domain.shards import new_plan_id, row_group_shards, shard_count

    day = as_date(day)
    table = records_table(project)
    if not lake.exists(table, day):
        raise MlopsError(f"{project.name} {day}: no validated records partition "
                         f"{lake.uri(lake.partition_path(table, day))} to compute features from")
    meta = lake.open_partition(table, day).metadata
    if meta.num_rows <= shard_rows:
        log.info("%s %s: %d records <= runs.shard_rows %d: features computed in one task", project.name, day,
                 meta.num_rows, shard_rows)
        return None
    groups = row_group_shards([meta.row_group(i).num_rows for i in range(meta.num_row_groups)], shard_rows)
    count = max(len(groups), shard_count(meta.num_rows, shard_rows))
    empty = {"row_groups": [], "start_row": meta.num_rows, "rows": 0}
    shards = [{**(groups[i] if i < len(groups) else empty), "index": i, "buckets": count} for i in range(count)]
    log.info("%s %s: %d records -> %d feature shard(s): entity keys by hash, records by row group", project.name,
             day, meta.num_rows, count)
    return {"day": day.isoformat(), "plan_id": new_plan_id(), "rows": meta.num_rows, "shards": shards}


def _bucket_records(project: ProjectConfig, lake: Lake, table: str, day: dt.date, columns: list[str], key: str,
                    bucket: int, buckets: int) -> pd.DataFrame:
    """The records of ``day`` whose ``key`` falls in ``bucket``, read batch by batch (never the whole day)."""
    import pyarrow as pa

    source = lake.open_partition(table, day)
    kept = []
    for batch in source.iter_batches(columns=columns):
        mask = key_buckets(batch.column(key).to_pandas(), buckets) == bucket
        kept.append(batch.filter(pa.array(mask)))
    if not kept:
        return source.schema_arrow.empty_table().select(columns).to_pandas()
    return pa.Table.from_batches(kept).to_pandas()


def _entity_shard(project: ProjectConfig, lake: Lake, entity: Entity, day: dt.date, bucket: int,
                  buckets: int) -> pd.DataFrame:
    big = project.feature_spec.max_window(entity)
    start = day - dt.timedelta(days=big - 1)
    table, columns = records_table(project), F.entity_source_columns(project, entity)
    partials = []
    for d in (start + dt.timedelta(days=i) for i in range(big)):
        if lake.exists(table, d):
            records = _bucket_records(project, lake, table, d, columns, entity.key, bucket, buckets)
            partials.append(F.daily_partials(project, entity, records))
    return F.entity_features(project, entity, day, partials)


def compute_feature_shard(project: ProjectConfig, lake: Lake, plan: dict[str, Any], index: int) -> dict[str, Any]:
    """Compute shard ``index`` of ``plan`` into its staging tables (each replaced whole on a retry)."""

    from mlops_provider.domain.shards import shard_table

    day, shard = as_date(plan["day"]), plan["shards"][index]
    stage = functools.partial(shard_table, project, STAGE, day, plan["plan_id"], index)
    keys = {}
    for entity in project.feature_spec.entities:
        out = _entity_shard(project, lake, entity, day, index, int(shard["buckets"]))
        lake.write(stage(entity.name), day, out)
        keys[entity.name] = len(out)
    if shard["row_groups"]:
        source = lake.open_partition(records_table(project), day)
        records = source.read_row_groups(shard["row_groups"], columns=F.record_source_columns(project)).to_pandas()
        lake.write(stage(RECORD_PART), day, F.record_features(project, records))
    log.info("%s %s: feature shard %d of %d: %s keys, %d records", project.name, day, index + 1,
             len(plan["shards"]), keys, shard["rows"])
    return {"index": index, "entities": keys, "records": shard["rows"]}


def commit_feature_shards(project: ProjectConfig, lake: Lake, plan: dict[str, Any]) -> dict[str, Any]:
    """Write the day's feature partitions from every shard, then drop the shards.

    Refuses (naming them) while any shard's staging table is missing. Entity rows are sorted by key and
    record rows keep the records' order, as :func:`compute_entity_features` and
    :func:`compute_record_features` write them. The entity tables are written :func:`beside` the record
    rows' rewrite.
    """
    import pyarrow as pa

    from mlops_provider.domain.shards import shard_table, staging_dir

    day = as_date(plan["day"])
    stage = functools.partial(shard_table, project, STAGE, day, plan["plan_id"])
    wanted = [stage(s["index"], e.name) for s in plan["shards"] for e in project.feature_spec.entities]
    records = [stage(s["index"], RECORD_PART) for s in plan["shards"] if s["row_groups"]]
    missing = [t for t in [*wanted, *records] if not lake.exists(t, day)]
    if missing:
        raise MlopsError(f"{project.name} {day}: {len(missing)} feature shard table(s) not computed "
                         f"({', '.join(missing[:3])}): clear the failed compute_shard tasks, then this one")

    def write_entities() -> dict[str, dict[str, Any]]:
        per_entity = {}
        for entity in project.feature_spec.entities:
            parts = [lake.read_arrow(stage(s["index"], entity.name), day) for s in plan["shards"]]
            out = pa.concat_tables(parts, promote_options="permissive").sort_by(entity.key)
            uri = lake.write(entity_table(project, entity.name), day, out)
            per_entity[entity.name] = {"table": entity_table(project, entity.name), "entities": out.num_rows,
                                       "uri": uri}
            log.info("%s: %d %s keys from %d shards -> %s", entity_table(project, entity.name), out.num_rows,
                     entity.name, len(parts), uri)
        return per_entity

    files = [lake.open_partition(t, day) for t in records]
    schema = files[0].schema_arrow

    rows = shard_row_groups(files, schema, name="record-features-read")
    record_uri, per_entity = beside(write_entities, lambda: lake.write(record_table(project), day, rows, schema=schema),
                                    name="entity-features")
    log.info("%s: %d records from %d shards -> %s", record_table(project), plan["rows"], len(files), record_uri)
    lake.delete_dir(staging_dir(project, STAGE, day))
    main = per_entity[project.entity_name]
    return {"day": day.isoformat(), "entities": main["entities"], "records": plan["rows"],
            "entity_partition": main["uri"], "record_partition": record_uri, "per_entity": per_entity,
            "shards": len(plan["shards"])}
