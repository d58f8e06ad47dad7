"""Daily feature tables computed from validated records: per-entity window aggregates and per-record features.

Both tables are written to the lake as one partition per day and are what Feast reads as its offline store.
An entity-aggregate row of partition ``day`` summarises events up to the end of ``day``, so its
``event_timestamp`` is midnight (UTC) starting ``day + 1``: a point-in-time join of an event on ``day + 1``
sees it, an event during ``day`` does not, and no value computed from the future leaks into training.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from mlops_provider.domain.layout import entity_table, record_table, records_table  # noqa: F401 (re-exported)
from mlops_provider.io.lake import Lake, as_date

if TYPE_CHECKING:
    import pandas as pd

    from mlops_provider.config.project import ProjectConfig

log = logging.getLogger(__name__)

EVENT_TIMESTAMP = "event_timestamp"
CREATED_TIMESTAMP = "created_timestamp"


def windows(project: ProjectConfig) -> list[int]:
    return sorted(set(project.features["windows_days"]))


def max_window(project: ProjectConfig) -> int:
    return windows(project)[-1]


def feature_timestamp(day: str | dt.date) -> dt.datetime:
    """When the entity aggregates of partition ``day`` become known: midnight UTC starting ``day + 1``."""
    day = as_date(day)
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def entity_feature_names(project: ProjectConfig) -> list[str]:
    """Columns of the entity-aggregate table that are features (keys and timestamps excluded)."""
    feats = project.features
    names = []
    for w in windows(project):
        names.append(f"txn_count_{w}d")
        if "amount_column" in feats:
            names += [f"amount_sum_{w}d", f"amount_mean_{w}d"]
    big = max_window(project)
    if "category_column" in feats:
        names.append(f"distinct_categories_{big}d")
    if "home_column" in feats and "home_value" in feats:
        names.append(f"foreign_share_{big}d")
    names.append("hours_since_last_event")
    return names


def fill_missing_history(project: ProjectConfig, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of an entity without earlier events: no transactions, so zero counts, sums and means.

    Shares and the time since the last event stay missing (there is no value to report), exactly as
    :func:`compute_entity_features` writes a window without events.
    """
    zero = [n for n in entity_feature_names(project)
            if n.startswith(("txn_count_", "amount_sum_", "amount_mean_", "distinct_categories_"))]
    present = [c for c in zero if c in frame.columns]
    if present:
        frame[present] = frame[present].fillna(0)
    return frame


def record_feature_names(project: ProjectConfig) -> list[str]:
    return [*project.features.get("transaction_features", []), "hour_of_day"]


def _utc_naive(series: pd.Series) -> pd.Series:
    """Timestamps as naive UTC, whatever the ingestion stage stored (naive or tz-aware)."""
    import pandas as pd

    series = pd.to_datetime(series)
    if series.dt.tz is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return series


def _daily_partials(project: ProjectConfig, records: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Per (entity, day) sums of one day of records, and the (entity, category) pairs seen that day.

    Window aggregates are then sums of these partials, so a 30-day window never holds 30 days of raw rows.
    """
    import pandas as pd

    feats = project.features
    key = project.entity_key
    ts = _utc_naive(records[project.event_timestamp])
    frame = pd.DataFrame({key: records[key].astype(str), "_date": ts.dt.normalize(), "_last": ts, "_n": 1})
    aggs: dict[str, tuple[str, str]] = {"_n": ("_n", "sum"), "_last": ("_last", "max")}
    if "amount_column" in feats:
        amount = pd.to_numeric(records[feats["amount_column"]], errors="coerce").astype("float64")
        frame["_amount"] = amount
        frame["_amount_n"] = amount.notna().astype("int64")
        aggs |= {"_amount": ("_amount", "sum"), "_amount_n": ("_amount_n", "sum")}
    if "home_column" in feats and "home_value" in feats:
        home = records[feats["home_column"]]
        frame["_foreign"] = (home.notna() & (home.astype(str) != str(feats["home_value"]))).astype("int64")
        aggs["_foreign"] = ("_foreign", "sum")
    daily = frame.groupby([key, "_date"], sort=False, observed=True).agg(**aggs).reset_index()
    pairs = None
    if "category_column" in feats:
        cats = records[feats["category_column"]]
        pairs = (
            pd.DataFrame({key: frame[key], "_cat": cats.astype(str).where(cats.notna())})
            .dropna()
            .drop_duplicates()
        )
    return daily, pairs


def compute_entity_features(project: ProjectConfig, lake: Lake, day: str | dt.date) -> dict[str, Any]:
    """Write partition ``day`` of ``<project>/features/entity``: one row per entity seen in the largest window."""
    import pandas as pd

    day = as_date(day)
    feats = project.features
    key = project.entity_key
    big = max_window(project)
    start = day - dt.timedelta(days=big - 1)
    as_of = pd.Timestamp(feature_timestamp(day)).tz_localize(None)

    needed = [key, project.event_timestamp]
    needed += [feats[k] for k in ("amount_column", "category_column", "home_column") if k in feats]
    needed = list(dict.fromkeys(needed))
    dailies, pair_frames, source_rows, days_read = [], [], 0, 0
    for d in (start + dt.timedelta(days=i) for i in range(big)):
        if not lake.exists(records_table(project), d):
            continue
        records = lake.read(records_table(project), d, columns=needed)
        source_rows += len(records)
        days_read += 1
        daily, pairs = _daily_partials(project, records)
        dailies.append(daily)
        if pairs is not None:
            pair_frames.append(pairs)
    log.info("%s: read %d records from %d of %d days (%s..%s)", entity_table(project), source_rows, days_read,
             big, start, day)

    if dailies:
        daily = pd.concat(dailies, ignore_index=True)
    else:
        daily = pd.DataFrame({key: pd.Series(dtype="object"), "_date": pd.Series(dtype="datetime64[ns]"),
                              "_n": pd.Series(dtype="int64"), "_last": pd.Series(dtype="datetime64[ns]")})
    grouped = daily.groupby(key, sort=True)
    out = pd.DataFrame(index=grouped.size().index)
    for w in windows(project):
        in_window = daily[daily["_date"] >= pd.Timestamp(day - dt.timedelta(days=w - 1))]
        sums = in_window.groupby(key).sum(numeric_only=True).reindex(out.index, fill_value=0)
        out[f"txn_count_{w}d"] = sums["_n"].astype("int64")
        if "amount_column" in feats:
            out[f"amount_sum_{w}d"] = sums["_amount"].astype("float64")
            # A window without any (non-null) amount has mean 0.0, not NaN: models downstream need a number.
            n = sums["_amount_n"].astype("float64")
            out[f"amount_mean_{w}d"] = (sums["_amount"] / n.where(n > 0)).fillna(0.0)
    if "category_column" in feats:
        pairs = pd.concat(pair_frames, ignore_index=True) if pair_frames else pd.DataFrame(columns=[key, "_cat"])
        distinct = pairs.drop_duplicates().groupby(key).size()
        out[f"distinct_categories_{big}d"] = distinct.reindex(out.index, fill_value=0).astype("int64")
    if "home_column" in feats and "home_value" in feats:
        totals = grouped[["_foreign", "_n"]].sum()
        out[f"foreign_share_{big}d"] = (totals["_foreign"] / totals["_n"]).astype("float64")
    out["hours_since_last_event"] = ((as_of - grouped["_last"].max()) / pd.Timedelta(hours=1)).astype("float64")

    out = out.reset_index()
    out.insert(1, EVENT_TIMESTAMP, pd.Timestamp(feature_timestamp(day)))
    out.insert(2, CREATED_TIMESTAMP, pd.Timestamp.now(tz="UTC").floor("us"))
    out[EVENT_TIMESTAMP] = out[EVENT_TIMESTAMP].astype("datetime64[us, UTC]")
    out[CREATED_TIMESTAMP] = out[CREATED_TIMESTAMP].astype("datetime64[us, UTC]")
    uri = lake.write(entity_table(project), day, out)
    log.info("%s: %d entities for %s -> %s", entity_table(project), len(out), day, uri)
    return {"table": entity_table(project), "day": day.isoformat(), "rows": len(out), "entities": len(out),
            "source_rows": source_rows, "uri": uri}


def compute_record_features(project: ProjectConfig, lake: Lake, day: str | dt.date) -> dict[str, Any]:
    """Write partition ``day`` of ``<project>/features/record``: the model's per-record inputs, typed for Feast."""
    import pandas as pd

    day = as_date(day)
    feats = project.features
    cols = feats.get("transaction_features", [])
    needed = list(dict.fromkeys([project.record_id, project.event_timestamp, *cols]))
    records = lake.read(records_table(project), day, columns=needed)
    ts = _utc_naive(records[project.event_timestamp])
    out = pd.DataFrame({
        project.record_id: records[project.record_id].astype(str),
        EVENT_TIMESTAMP: ts.dt.tz_localize("UTC").astype("datetime64[us, UTC]"),
    })
    for col in cols:
        kind = project.columns[col]["type"]
        values = records[col]
        if kind == "boolean":
            # Feast's Bool does not survive every online store; an int 0/1 does, and models want numbers anyway.
            out[col] = values.astype("boolean").astype("Int64")
        elif kind in ("category", "string"):
            out[col] = values.astype(str).where(values.notna(), None)
        elif kind == "integer":
            out[col] = pd.to_numeric(values, errors="coerce").astype("Int64")
        elif kind == "float":
            out[col] = pd.to_numeric(values, errors="coerce").astype("float64")
        else:  # timestamp
            out[col] = _utc_naive(values).dt.tz_localize("UTC").astype("datetime64[us, UTC]")
    out["hour_of_day"] = ts.dt.hour.astype("int64")
    out[CREATED_TIMESTAMP] = pd.Timestamp.now(tz="UTC").floor("us")
    out[CREATED_TIMESTAMP] = out[CREATED_TIMESTAMP].astype("datetime64[us, UTC]")
    uri = lake.write(record_table(project), day, out)
    log.info("%s: %d records for %s -> %s", record_table(project), len(out), day, uri)
    return {"table": record_table(project), "day": day.isoformat(), "rows": len(out), "uri": uri}
