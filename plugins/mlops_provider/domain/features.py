"""Daily feature tables computed from validated records: per-entity window aggregates and per-record features.

What is computed is declared in the project's YAML (:mod:`mlops_provider.config.features`); this module
is pure frame-in, frame-out computation, and :mod:`mlops_provider.stages.features` reads the records and
writes the tables. Every table is written to the lake as one partition per day and is what Feast reads
as its offline store. An entity-aggregate row of partition ``day`` summarises records up to the end of
``day``, so its ``event_timestamp`` is midnight (UTC) starting ``day + 1``: a point-in-time join of a
record on ``day + 1`` sees it, a record during ``day`` does not, and no value computed from the future
leaks into training.

Windows are computed from *daily partials* (per entity and day: counts, sums, sums of squares, minima,
maxima, the last value, counts of a shared value, the distinct values seen), so a 30-day window never
holds 30 days of raw records.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlops_provider.config.features import ZERO_WITHOUT_HISTORY, Aggregation, Entity, slug
from mlops_provider.domain.layout import as_date

if TYPE_CHECKING:
    import pandas as pd

    from mlops_provider.config.project import ProjectConfig

log = logging.getLogger(__name__)

EVENT_TIMESTAMP = "event_timestamp"
CREATED_TIMESTAMP = "created_timestamp"
_DATE, _N, _LAST_TS = "_date", "_n", "_last_ts"


def feature_timestamp(day: str | dt.date) -> dt.datetime:
    """When the entity aggregates of partition ``day`` become known: midnight UTC starting ``day + 1``."""
    day = as_date(day)
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def entity_feature_names(project: ProjectConfig, entity: Entity | None = None) -> list[str]:
    """Feature columns of one entity's aggregate table (default: every entity's, in declaration order)."""
    spec = project.feature_spec
    return [n for e in ([entity] if entity else spec.entities) for n in spec.entity_feature_names(e)]


def record_feature_names(project: ProjectConfig) -> list[str]:
    return project.feature_spec.record_feature_names()


def fill_missing_history(project: ProjectConfig, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of an entity without earlier records: zero counts, sums, means and distinct counts.

    Minima, maxima, deviations, last values, shares and the time since the last record stay missing
    (there is no value to report), exactly as :func:`entity_features` writes a window without records.
    """
    zero = [a.name for a in project.feature_spec.aggregations if a.agg in ZERO_WITHOUT_HISTORY]
    present = [c for c in dict.fromkeys(zero) if c in frame.columns]
    if present:
        frame[present] = frame[present].fillna(0)
    return frame


def utc_naive(series: pd.Series) -> pd.Series:
    """Timestamps as naive UTC, whatever the ingestion stage stored (naive or tz-aware)."""
    import pandas as pd

    series = pd.to_datetime(series)
    if series.dt.tz is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return series


def _numeric(series: pd.Series) -> pd.Series:
    import pandas as pd
    from pandas.api.types import is_bool_dtype

    if is_bool_dtype(series.dtype) or str(series.dtype) == "boolean":
        return series.astype("Float64").astype("float64")
    return pd.to_numeric(series, errors="coerce").astype("float64")


# -- daily partials -----------------------------------------------------------------------------------
@dataclass
class DailyPartials:
    """One day of an entity's records, reduced: one row per (key, day), plus (key, day, value) per distinct column."""

    daily: pd.DataFrame
    distinct: dict[str, pd.DataFrame]


def _column_partials(aggs: list[Aggregation], column: str, frame: pd.DataFrame, values: pd.Series
                     ) -> dict[str, tuple[str, str]]:
    """Add the per-row helper columns ``column``'s aggregations need to ``frame``; return their reductions."""
    kinds = {a.agg for a in aggs if a.column == column}
    reductions: dict[str, tuple[str, str]] = {}
    if kinds & {"sum", "mean", "std", "min", "max"}:
        number = _numeric(values)
        frame[f"{column}:n"] = number.notna().astype("int64")
        frame[f"{column}:sum"] = number.fillna(0.0)
        frame[f"{column}:min"], frame[f"{column}:max"] = number, number
        reductions |= {f"{column}:{part}": (f"{column}:{part}", how)
                       for part, how in (("n", "sum"), ("sum", "sum"), ("min", "min"), ("max", "max"))}
        if "std" in kinds:
            frame[f"{column}:sumsq"] = (number * number).fillna(0.0)
            reductions[f"{column}:sumsq"] = (f"{column}:sumsq", "sum")
    for a in aggs:
        if a.column == column and a.agg == "share":
            eq = f"{column}:eq:{slug(a.value)}"
            frame[eq] = (values.notna() & (values.astype(str) == str(a.value))).astype("int64")
            reductions[eq] = (eq, "sum")
    return reductions


def _last_values(key: str, frame: pd.DataFrame, ts: pd.Series, column: str, values: pd.Series) -> pd.DataFrame:
    """Per (key, day): the latest non-null value of ``column`` and its time."""
    import pandas as pd

    known = pd.DataFrame({key: frame[key], _DATE: frame[_DATE], f"{column}:last": values, f"{column}:last_ts": ts})
    known = known[values.notna().to_numpy()].sort_values(f"{column}:last_ts", kind="stable")
    return known.drop_duplicates([key, _DATE], keep="last")


def daily_partials(project: ProjectConfig, entity: Entity, records: pd.DataFrame) -> DailyPartials:
    """The partials of one day of records for ``entity``'s declared aggregations."""
    import pandas as pd

    aggs = project.feature_spec.of(entity)
    key = entity.key
    ts = utc_naive(records[project.event_timestamp])
    frame = pd.DataFrame({key: records[key].astype(str).to_numpy(), _DATE: ts.dt.normalize().to_numpy(),
                          _LAST_TS: ts.to_numpy(), _N: 1})
    reductions: dict[str, tuple[str, str]] = {_N: (_N, "sum"), _LAST_TS: (_LAST_TS, "max")}
    columns = project.feature_spec.source_columns(entity)
    for column in columns:
        reductions |= _column_partials(aggs, column, frame, records[column].reset_index(drop=True))
    daily = frame.groupby([key, _DATE], sort=False, observed=True).agg(**reductions).reset_index()
    distinct: dict[str, pd.DataFrame] = {}
    for column in columns:
        values = records[column].reset_index(drop=True)
        if any(a.column == column and a.agg == "last" for a in aggs):
            daily = daily.merge(_last_values(key, frame, frame[_LAST_TS], column, values), on=[key, _DATE],
                                how="left")
        if any(a.column == column and a.agg == "distinct_count" for a in aggs):
            pairs = pd.DataFrame({key: frame[key], _DATE: frame[_DATE], "value": values.astype(str)})
            distinct[column] = pairs[values.notna().to_numpy()].drop_duplicates()
    return DailyPartials(daily, distinct)


# -- windows ------------------------------------------------------------------------------------------
def _window_value(a: Aggregation, window: pd.DataFrame, distinct: pd.DataFrame | None, index: pd.Index,
                  as_of: pd.Timestamp) -> pd.Series:
    """The value of aggregation ``a`` per entity of ``index``, from the partials of its window."""
    import numpy as np
    import pandas as pd

    key = index.name
    if a.agg == "distinct_count":
        counts = distinct.drop_duplicates([key, "value"]).groupby(key).size() if distinct is not None else None
        return (counts if counts is not None else pd.Series(dtype="int64")).reindex(index, fill_value=0).astype("int64")
    if a.agg == "last":
        rows = window.dropna(subset=[f"{a.column}:last_ts"]).sort_values(f"{a.column}:last_ts", kind="stable")
        return rows.drop_duplicates(key, keep="last").set_index(key)[f"{a.column}:last"].reindex(index)
    if a.agg == "hours_since_last":
        return ((as_of - window.groupby(key)[_LAST_TS].max()) / pd.Timedelta(hours=1)).reindex(index).astype("float64")
    if a.agg in ("min", "max"):
        return window.groupby(key)[f"{a.column}:{a.agg}"].agg(a.agg).reindex(index).astype("float64")
    sums = window.groupby(key).sum(numeric_only=True).reindex(index, fill_value=0)
    if a.agg == "count":
        return sums[_N].astype("int64")
    if a.agg == "share":
        n = sums[_N].astype("float64")
        return (sums[f"{a.column}:eq:{slug(a.value)}"] / n.where(n > 0)).astype("float64")
    n, total = sums[f"{a.column}:n"].astype("float64"), sums[f"{a.column}:sum"].astype("float64")
    if a.agg == "sum":
        return total
    if a.agg == "mean":
        # A window without any (non-null) value has mean 0.0, not NaN: models downstream need a number.
        return (total / n.where(n > 0)).fillna(0.0)
    variance = (sums[f"{a.column}:sumsq"] - total * total / n.where(n > 0)) / (n - 1).where(n > 1)
    return np.sqrt(variance.clip(lower=0.0))  # std: sample standard deviation (missing below two values)


def entity_features(project: ProjectConfig, entity: Entity, day: dt.date, partials: list[DailyPartials]
                    ) -> pd.DataFrame:
    """One row per ``entity`` seen in its longest window ending ``day``, from the window's :func:`daily_partials`."""
    import pandas as pd

    spec, key = project.feature_spec, entity.key
    as_of = pd.Timestamp(feature_timestamp(day)).tz_localize(None)
    frames = [p.daily for p in partials if len(p.daily)]
    daily = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        {key: pd.Series(dtype="object"), _DATE: pd.Series(dtype="datetime64[ns]"), _N: pd.Series(dtype="int64"),
         _LAST_TS: pd.Series(dtype="datetime64[ns]")})
    index = pd.Index(sorted(daily[key].unique()), name=key, dtype="object")
    out = pd.DataFrame(index=index)
    for a in spec.of(entity):
        start = pd.Timestamp(day - dt.timedelta(days=a.window_days - 1))
        window = daily[daily[_DATE] >= start]
        distinct = None
        if a.agg == "distinct_count":
            parts = [p.distinct[a.column] for p in partials if a.column in p.distinct]
            distinct = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[key, _DATE, "value"])
            distinct = distinct[pd.to_datetime(distinct[_DATE]) >= start]
        out[a.name] = _window_value(a, window, distinct, index, as_of)
    out = out.reset_index()
    out.insert(1, EVENT_TIMESTAMP, pd.Timestamp(feature_timestamp(day)))
    out.insert(2, CREATED_TIMESTAMP, pd.Timestamp.now(tz="UTC").floor("us"))
    return out.astype({EVENT_TIMESTAMP: "datetime64[us, UTC]", CREATED_TIMESTAMP: "datetime64[us, UTC]"})


def entity_source_columns(project: ProjectConfig, entity: Entity) -> list[str]:
    """The record columns ``entity``'s aggregates read."""
    return list(dict.fromkeys([entity.key, project.event_timestamp, *project.feature_spec.source_columns(entity)]))


# -- record features ----------------------------------------------------------------------------------
def record_source_columns(project: ProjectConfig) -> list[str]:
    """The record columns the per-record features read."""
    cols = [r.column for r in project.feature_spec.record if r.column]
    return list(dict.fromkeys([project.record_id, project.event_timestamp, *cols]))


def _typed_for_feast(kind: str, values: pd.Series) -> pd.Series:
    import pandas as pd

    if kind == "boolean":
        # Feast's Bool does not survive every online store; an int 0/1 does, and models want numbers anyway.
        return values.astype("boolean").astype("Int64")
    if kind in ("category", "string"):
        return values.astype(str).where(values.notna(), None)
    if kind == "integer":
        return pd.to_numeric(values, errors="coerce").astype("Int64")
    if kind == "float":
        return pd.to_numeric(values, errors="coerce").astype("float64")
    return utc_naive(values).dt.tz_localize("UTC").astype("datetime64[us, UTC]")  # timestamp


def _time_part(ts: pd.Series, part: str) -> pd.Series:
    values = {"hour_of_day": ts.dt.hour, "day_of_week": ts.dt.dayofweek, "day_of_month": ts.dt.day,
              "month": ts.dt.month}[part]
    return values.astype("int64")


def record_features(project: ProjectConfig, records: pd.DataFrame) -> pd.DataFrame:
    """The model's per-record inputs of one day's records, typed for Feast."""
    import pandas as pd

    ts = utc_naive(records[project.event_timestamp])
    out = pd.DataFrame({
        project.record_id: records[project.record_id].astype(str),
        EVENT_TIMESTAMP: ts.dt.tz_localize("UTC").astype("datetime64[us, UTC]"),
    })
    for feature in project.feature_spec.record:
        if feature.column:
            out[feature.name] = _typed_for_feast(project.columns[feature.column]["type"], records[feature.column])
        else:
            out[feature.name] = _time_part(ts, feature.time_part)
    out[CREATED_TIMESTAMP] = pd.Timestamp.now(tz="UTC").floor("us")
    out[CREATED_TIMESTAMP] = out[CREATED_TIMESTAMP].astype("datetime64[us, UTC]")
    return out
