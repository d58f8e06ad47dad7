"""Write a project's daily batch (and the labels that arrive later) into its landing directory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from devkit.datagen import deliveries, fraud, generic, tickets

# Projects with a realistic generator of their own; any other project gets rows from its YAML (generic).
GENERATORS = {"fraud": fraud.generate, "deliveries": deliveries.generate, "tickets": tickets.generate}

DRIFT_SCENARIOS = {"clean", "covariate_drift", "concept_drift", "label_noise"}
BAD_DATA_SCENARIOS = {
    "schema_break",      # a column disappears and another is renamed
    "wrong_type",        # amounts arrive as formatted strings
    "nulls",             # a fifth of the amounts are missing
    "out_of_range",      # negative amounts
    "unknown_category",  # a channel nobody has heard of
    "duplicates",        # the same transaction twice
    "empty",             # header only
    "outside_interval",  # timestamps of the next day
    "unreadable",        # not a CSV at all
}
SCENARIOS = sorted(DRIFT_SCENARIOS | BAD_DATA_SCENARIOS)


def generate_day(project, day: dt.date, rows: int, scenario: str = "clean") -> pd.DataFrame:
    """The day's rows with the label, shaped by a drift scenario (bad-data scenarios start clean)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario '{scenario}'; choose one of {', '.join(SCENARIOS)}")
    drift = {"covariate_drift": scenario == "covariate_drift", "concept_drift": scenario == "concept_drift"}
    if project.name in GENERATORS:
        frame = GENERATORS[project.name](day, rows, **drift)
    else:
        frame = generic.generate(project, day, rows, **drift)
    if scenario == "label_noise":
        # Same prevalence, no signal: the labels of the day are shuffled across its rows.
        rng = np.random.default_rng(int(day.strftime("%Y%m%d")))
        frame[project.label_column] = rng.permutation(frame[project.label_column].to_numpy())
    return frame


def _first(project, *kinds: str) -> str:
    """The first non-label column of the first of ``kinds`` the project has."""
    for kind in kinds:
        for column, spec in project.columns.items():
            if spec["type"] == kind and column != project.label_column:
                return column
    raise ValueError(f"project {project.name} has no {' or '.join(kinds)} column to break")


def break_batch(project, df: pd.DataFrame, scenario: str) -> pd.DataFrame:
    """Apply a bad-data scenario to a clean batch (without its label)."""
    df = df.copy()
    rng = np.random.default_rng(1)
    numeric = _first(project, "float", "integer")
    category = _first(project, "category")
    if scenario == "schema_break":
        df = df.drop(columns=[category]).rename(columns={numeric: f"{numeric}_usd"})
    elif scenario == "wrong_type":
        df[numeric] = [f"{v:,.2f} EUR" for v in df[numeric]]
    elif scenario == "nulls":
        df.loc[rng.random(len(df)) < 0.2, numeric] = np.nan
    elif scenario == "out_of_range":
        df.loc[rng.random(len(df)) < 0.05, numeric] = -abs(df[numeric]) - 1
    elif scenario == "unknown_category":
        df.loc[df.index[::50], category] = "carrier_pigeon"
    elif scenario == "duplicates":
        df = pd.concat([df, df.iloc[:25]], ignore_index=True)
    elif scenario == "empty":
        df = df.iloc[0:0]
    elif scenario == "outside_interval":
        df[project.event_timestamp] = df[project.event_timestamp] + pd.Timedelta(days=1)
    return df


TIMESTAMP_STYLES = ("naive", "offset")
# Offsets the "offset" style cycles through: the same UTC instants, written as local times of these zones.
_OFFSETS = [dt.timezone(dt.timedelta(hours=h, minutes=m)) for h, m in ((0, 0), (2, 0), (-5, 0), (5, 30), (-9, -30))]


def _layout(project) -> tuple[str, str, str]:
    """(format, records pattern, labels pattern) of a project's file source (the schema's defaults otherwise)."""
    source = project.source
    return (source.get("format", "csv"), source.get("pattern", "records/{date}.{format}"),
            source.get("labels_pattern", "labels/{date}.{format}"))


def _path(root: Path, pattern: str, day: dt.date, fmt: str) -> Path:
    # A glob in the pattern names several files; the generator writes one of them.
    return root / pattern.format(date=day, format=fmt).replace("*", "0").replace("?", "0")


def landing_paths(root: Path, day: dt.date, project=None) -> tuple[Path, Path]:
    """(records file of ``day``, label feed file that arrives on ``day``) under a landing root, by the project's
    ``source.pattern`` / ``labels_pattern`` (default ``records/<day>.csv``, ``labels/<day>.csv``)."""
    fmt, pattern, labels_pattern = _layout(project) if project is not None else ("csv", "records/{date}.{format}",
                                                                                   "labels/{date}.{format}")
    return _path(root, pattern, day, fmt), _path(root, labels_pattern, day, fmt)


def _with_offsets(values: pd.Series) -> pd.Series:
    """Naive UTC timestamps as ISO text with varying UTC offsets (``2024-01-10 12:00:00+02:00``), same instants."""
    return pd.Series([None if pd.isna(t) else t.tz_localize("UTC").tz_convert(_OFFSETS[i % len(_OFFSETS)]).isoformat(sep=" ")
                      for i, t in enumerate(values)], index=values.index, dtype=object)


def write_frame(frame: pd.DataFrame, path: Path, fmt: str = "csv", timestamps: str = "naive") -> Path:
    """Write ``frame`` atomically as CSV or Parquet; ``timestamps="offset"`` writes its timestamps time-zone-aware
    (CSV: ISO text with varying offsets; Parquet: a zoned column), ``"naive"`` as naive UTC."""
    if timestamps not in TIMESTAMP_STYLES:
        raise ValueError(f"unknown timestamp style '{timestamps}'; choose one of {', '.join(TIMESTAMP_STYLES)}")
    frame = frame.copy()
    stamps = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "parquet":
        if timestamps == "offset":
            for column in stamps:
                frame[column] = frame[column].dt.tz_localize("UTC").dt.tz_convert("America/New_York")
        frame.to_parquet(tmp, index=False)
    elif fmt == "csv":
        if timestamps == "offset":
            for column in stamps:
                frame[column] = _with_offsets(frame[column])
        frame.to_csv(tmp, index=False, date_format="%Y-%m-%dT%H:%M:%S")
    else:
        raise ValueError(f"unknown format '{fmt}'")
    tmp.replace(path)
    return path


def labels_frame(project, full: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """The label feed rows of ``day``'s records, under the feed's column names, arriving ``delay_days`` later at 06:00."""
    feed = project.raw["label"].get("feed") or {}
    arrived_at = feed.get("arrived_at", "label_timestamp")
    data = {feed.get("record_id", project.record_id): full[project.record_id],
            feed.get("column", project.label_column): full[project.label_column]}
    if arrived_at:
        data[arrived_at] = pd.Timestamp(day + dt.timedelta(days=project.label_delay_days)) + pd.Timedelta(hours=6)
    return pd.DataFrame(data)


def write_landing_day(project, root: Path, day: dt.date, rows: int = 5000, scenario: str = "clean",
                      timestamps: str = "naive") -> Path:
    """Write the day's file where the project's source looks for it and the label feed of that day (arriving
    ``label.delay_days`` later; with ``label.from: record`` the label stays in the records); return the file."""
    full = generate_day(project, day, rows, scenario if scenario in DRIFT_SCENARIOS else "clean")
    fmt = _layout(project)[0]
    records_path, _ = landing_paths(root, day, project)
    _, labels_path = landing_paths(root, day + dt.timedelta(days=project.label_delay_days), project)
    in_record = project.raw["label"].get("from") == "record"
    batch = full if in_record else full.drop(columns=[project.label_column])
    if scenario == "unreadable":
        records_path.parent.mkdir(parents=True, exist_ok=True)
        records_path.write_bytes(b"\x00\x01PK\x03\x04 this is a zip fragment, not a CSV \xff\xfe" * 10)
    else:
        write_frame(break_batch(project, batch, scenario), records_path, fmt, timestamps)
    if not in_record:
        write_frame(labels_frame(project, full, day), labels_path, fmt, timestamps)
    return records_path
