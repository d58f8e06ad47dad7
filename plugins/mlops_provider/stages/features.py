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
    from mlops_provider.config.project import ProjectConfig
    from mlops_provider.io.lake import Lake

log = logging.getLogger(__name__)


def compute_entity_features(project: ProjectConfig, lake: Lake, day: str | dt.date) -> dict[str, Any]:
    """Write partition ``day`` of ``<project>/features/entity``: one row per entity seen in the largest window."""
    day = as_date(day)
    big = F.max_window(project)
    start = day - dt.timedelta(days=big - 1)
    dailies, pair_frames, source_rows, days_read = [], [], 0, 0
    for d in (start + dt.timedelta(days=i) for i in range(big)):
        if not lake.exists(records_table(project), d):
            continue
        records = lake.read(records_table(project), d, columns=F.entity_source_columns(project))
        source_rows += len(records)
        days_read += 1
        daily, pairs = F.daily_partials(project, records)
        dailies.append(daily)
        if pairs is not None:
            pair_frames.append(pairs)
    log.info("%s: read %d records from %d of %d days (%s..%s)", entity_table(project), source_rows, days_read,
             big, start, day)
    out = F.entity_features(project, day, dailies, pair_frames)
    uri = lake.write(entity_table(project), day, out)
    log.info("%s: %d entities for %s -> %s", entity_table(project), len(out), day, uri)
    return {"table": entity_table(project), "day": day.isoformat(), "rows": len(out), "entities": len(out),
            "source_rows": source_rows, "uri": uri}


def compute_record_features(project: ProjectConfig, lake: Lake, day: str | dt.date) -> dict[str, Any]:
    """Write partition ``day`` of ``<project>/features/record``: the model's per-record inputs, typed for Feast."""
    day = as_date(day)
    records = lake.read(records_table(project), day, columns=F.record_source_columns(project))
    out = F.record_features(project, records)
    uri = lake.write(record_table(project), day, out)
    log.info("%s: %d records for %s -> %s", record_table(project), len(out), day, uri)
    return {"table": record_table(project), "day": day.isoformat(), "rows": len(out), "uri": uri}
