"""Declared features of a project, typed: per-entity window aggregations and per-record features.

In the spirit of Chronon's GroupBy and Feast's feature views, the YAML declares *what* to compute and
the platform derives the names, the Feast definitions and the point-in-time training/serving join::

    features:
      windows_days: [1, 7, 30]              # default windows of every aggregation
      entities: [{name: route, key: route}] # more entities beside the project's main one (optional)
      aggregations:
        - {aggs: [count, hours_since_last]}                     # per main entity
        - {column: amount, aggs: [sum, mean, max, std]}
        - {column: merchant_category, aggs: [distinct_count], windows_days: [30]}
        - {column: country, aggs: [share], value: US, windows_days: [30]}
        - {entity: route, column: dep_delay, aggs: [mean, last], windows_days: [7]}
      record:
        columns: [amount, merchant_category]  # the record's own values, as they are
        time_parts: [hour_of_day, day_of_week]

Names: ``<entity>__<column>_<agg>_<w>d`` (``<entity>__count_<w>d`` without a column,
``<entity>__<column>_share_<value>_<w>d`` for a share, ``<entity>__hours_since_last``); record features
keep their column names, time parts are named as declared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: Aggregations over a window of an entity's records. ``count`` and ``hours_since_last`` take no column.
COLUMN_AGGS = ("sum", "mean", "min", "max", "std", "last", "distinct_count", "share")
ROW_AGGS = ("count", "hours_since_last")
NUMERIC_AGGS = ("sum", "mean", "min", "max", "std")
#: Parts of the event timestamp a record feature may be (UTC).
TIME_PARTS = ("hour_of_day", "day_of_week", "day_of_month", "month")
#: Aggregations whose value for an entity without records in the window is 0 (the others are missing).
ZERO_WITHOUT_HISTORY = ("count", "sum", "mean", "distinct_count")


def slug(value: Any) -> str:
    """``value`` as a name part: lower case, runs of other characters as one ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", str(value).lower()).strip("_") or "empty"


@dataclass(frozen=True)
class Entity:
    """What aggregates are keyed by: a name (used in feature names) and its key column in the records."""

    name: str
    key: str


@dataclass(frozen=True)
class Aggregation:
    """One aggregate feature: ``agg`` of ``column`` over the last ``window_days`` days of an entity's records."""

    entity: Entity
    agg: str
    column: str | None
    window_days: int
    value: Any = None  # the value whose share ``share`` measures

    @property
    def name(self) -> str:
        if self.agg == "hours_since_last":
            return f"{self.entity.name}__hours_since_last"
        if self.agg == "count":
            return f"{self.entity.name}__count_{self.window_days}d"
        what = f"share_{slug(self.value)}" if self.agg == "share" else self.agg
        return f"{self.entity.name}__{self.column}_{what}_{self.window_days}d"

    @property
    def integer(self) -> bool:
        """Counts are integers; every other aggregate is a float (``last`` takes its column's type)."""
        return self.agg in ("count", "distinct_count")


@dataclass(frozen=True)
class RecordFeature:
    """A record's own feature: one of its columns as it is, or a part of its event timestamp."""

    name: str
    column: str | None = None
    time_part: str | None = None


@dataclass(frozen=True)
class FeatureSpec:
    """Every declared feature of a project, in a stable order (aggregations by entity, then record features)."""

    entities: tuple[Entity, ...]
    aggregations: tuple[Aggregation, ...]
    record: tuple[RecordFeature, ...]

    def of(self, entity: Entity) -> list[Aggregation]:
        return [a for a in self.aggregations if a.entity == entity]

    def max_window(self, entity: Entity) -> int:
        """The longest window of ``entity``'s aggregations: how many days of records its table reads."""
        return max((a.window_days for a in self.of(entity)), default=1)

    def entity_feature_names(self, entity: Entity) -> list[str]:
        return list(dict.fromkeys(a.name for a in self.of(entity)))

    def record_feature_names(self) -> list[str]:
        return [r.name for r in self.record]

    def categorical_names(self, columns: dict[str, Any]) -> list[str]:
        """Features whose values are categories (a category/string column as it is, or its last value)."""
        def text(column: str | None) -> bool:
            return column is not None and columns[column]["type"] in ("category", "string")

        return [r.name for r in self.record if text(r.column)] + [
            a.name for a in self.aggregations if a.agg == "last" and text(a.column)]

    def source_columns(self, entity: Entity) -> list[str]:
        """The record columns ``entity``'s aggregations read (besides its key and the event timestamp)."""
        return list(dict.fromkeys(a.column for a in self.of(entity) if a.column))


def parse_features(data: dict[str, Any]) -> FeatureSpec:
    """The typed spec of a schema-valid project dict (``data["features"]``; names checked by the loader)."""
    feats = data["features"]
    main = Entity(data["entity"]["name"], data["entity"]["key"])
    entities = [main, *(Entity(e["name"], e["key"]) for e in feats.get("entities", []))]
    by_name = {e.name: e for e in entities}
    default_windows = feats["windows_days"]
    aggregations = []
    for item in feats.get("aggregations", []):
        entity = by_name[item.get("entity", main.name)]
        for agg in item["aggs"]:
            windows = item.get("windows_days", default_windows)
            if agg == "hours_since_last":  # one feature, looking back over the item's longest window
                windows = [max(windows)]
            for window in sorted(set(windows)):
                aggregations.append(Aggregation(entity, agg, None if agg in ROW_AGGS else item.get("column"),
                                                window, item.get("value")))
    record = feats.get("record", {})
    records = [RecordFeature(c, column=c) for c in record.get("columns", [])]
    records += [RecordFeature(p, time_part=p) for p in record.get("time_parts", [])]
    return FeatureSpec(tuple(entities), tuple(aggregations), tuple(records))


def check_features(data: dict[str, Any]) -> list[tuple[str, str]]:
    """``(key, problem)`` for every feature declaration that cannot work with the project's columns."""
    feats, columns = data["features"], data["columns"]
    problems: list[tuple[str, str]] = []
    names = [data["entity"]["name"], *(e["name"] for e in feats.get("entities", []))]
    for i, extra in enumerate(feats.get("entities", [])):
        if extra["key"] not in columns:
            problems.append((f"features.entities[{i}].key", f"column '{extra['key']}' is not declared under 'columns'"))
    if len(set(names)) != len(names):
        problems.append(("features.entities", f"entity names must be unique (got {names})"))
    for i, item in enumerate(feats.get("aggregations", [])):
        where = f"features.aggregations[{i}]"
        problems += _check_aggregation(where, item, names, columns, data["event_timestamp"])
        if item.get("column") and item["column"] == data["label"]["column"]:
            problems.append((f"{where}.column", f"'{item['column']}' is the label: aggregating it would leak labels "
                                                "not yet known at scoring time into the features"))
    if not problems:
        spec = parse_features(data)
        seen = [a.name for a in spec.aggregations] + spec.record_feature_names()
        twice = sorted({n for n in seen if seen.count(n) > 1})
        if twice:
            problems.append(("features", f"features {twice} are declared twice"))
    for c in feats.get("record", {}).get("columns", []):
        if c not in columns:
            problems.append(("features.record.columns", f"column '{c}' is not declared under 'columns'"))
        elif c == data["label"]["column"]:
            problems.append(("features.record.columns", f"'{c}' is the label: a model must not see it as a feature"))
    return problems


def _check_aggregation(where: str, item: dict[str, Any], entities: list[str], columns: dict[str, Any],
                       event_timestamp: str) -> list[tuple[str, str]]:
    problems = []
    if item.get("entity", entities[0]) not in entities:
        problems.append((f"{where}.entity", f"'{item['entity']}' is not an entity (choose from {entities})"))
    column = item.get("column")
    needs_column = [a for a in item["aggs"] if a in COLUMN_AGGS]
    if needs_column and not column:
        problems.append((f"{where}.column", f"aggs {needs_column} need a column"))
    if column and column not in columns:
        problems.append((f"{where}.column", f"column '{column}' is not declared under 'columns'"))
    elif column and column == event_timestamp:
        problems.append((f"{where}.column", "the event timestamp is not aggregated: use aggs [hours_since_last]"))
    elif column:
        kind = columns[column]["type"]
        numeric = [a for a in item["aggs"] if a in NUMERIC_AGGS]
        if numeric and kind not in ("integer", "float", "boolean"):
            problems.append((f"{where}.aggs", f"{numeric} need a numeric column; '{column}' is {kind}"))
    if "share" in item["aggs"] and "value" not in item:
        problems.append((f"{where}.value", "aggs [share] need the value whose share is measured"))
    return problems
