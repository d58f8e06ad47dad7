"""Daily feature tables computed from validated records: per-entity window aggregates and per-record features.

Pure frame-in, frame-out computation; :mod:`mlops_provider.stages.features` reads the records and writes
the tables. Both tables are written to the lake as one partition per day and are what Feast reads as its offline store.
An entity-aggregate row of partition ``day`` summarises events up to the end of ``day``, so its
``event_timestamp`` is midnight (UTC) starting ``day + 1``: a point-in-time join of an event on ``day + 1``
sees it, an event during ``day`` does not, and no value computed from the future leaks into training.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from mlops_provider.domain.layout import as_date

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


def daily_partials(project: ProjectConfig, records: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
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


def entity_features(project: ProjectConfig, day: dt.date, dailies: list[pd.DataFrame],
                    pair_frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per entity seen in the largest window ending ``day``, from the window's :func:`daily_partials`."""
    import pandas as pd

    feats, key, big = project.features, project.entity_key, max_window(project)
    as_of = pd.Timestamp(feature_timestamp(day)).tz_localize(None)
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
    return out.astype({EVENT_TIMESTAMP: "datetime64[us, UTC]", CREATED_TIMESTAMP: "datetime64[us, UTC]"})


def entity_source_columns(project: ProjectConfig) -> list[str]:
    """The record columns the entity aggregates read."""
    feats = project.features
    needed = [project.entity_key, project.event_timestamp]
    needed += [feats[k] for k in ("amount_column", "category_column", "home_column") if k in feats]
    return list(dict.fromkeys(needed))


def record_source_columns(project: ProjectConfig) -> list[str]:
    """The record columns the per-record features read."""
    cols = project.features.get("transaction_features", [])
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
    return _utc_naive(values).dt.tz_localize("UTC").astype("datetime64[us, UTC]")  # timestamp


def record_features(project: ProjectConfig, records: pd.DataFrame) -> pd.DataFrame:
    """The model's per-record inputs of one day's records, typed for Feast."""
    import pandas as pd

    ts = _utc_naive(records[project.event_timestamp])
    out = pd.DataFrame({
        project.record_id: records[project.record_id].astype(str),
        EVENT_TIMESTAMP: ts.dt.tz_localize("UTC").astype("datetime64[us, UTC]"),
    })
    for col in project.features.get("transaction_features", []):
        out[col] = _typed_for_feast(project.columns[col]["type"], records[col])
    out["hour_of_day"] = ts.dt.hour.astype("int64")
    out[CREATED_TIMESTAMP] = pd.Timestamp.now(tz="UTC").floor("us")
    out[CREATED_TIMESTAMP] = out[CREATED_TIMESTAMP].astype("datetime64[us, UTC]")
    return out
