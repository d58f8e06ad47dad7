"""The features stage: read a day's validated records, compute the feature tables, write their partitions.

The computation is :mod:`mlops_provider.domain.features`; Feast definitions, materialization and
point-in-time retrieval are the feature store's (:mod:`mlops_provider.io.feature_store`).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from mlops_provider.domain import features as F
from mlops_provider.domain.layout import as_date, entity_table, record_table, records_table

if TYPE_CHECKING:
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
