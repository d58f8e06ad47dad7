"""Write a project's daily batch (and the labels that arrive later) into its landing directory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from devkit.datagen import fraud, generic

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
    if project.name == "fraud":
        frame = fraud.generate(day, rows, **drift)
    else:
        frame = generic.generate(project, day, rows, **drift)
    if scenario == "label_noise":
        # Same prevalence, no signal: the labels of the day are shuffled across its rows.
        rng = np.random.default_rng(int(day.strftime("%Y%m%d")))
        frame[project.label_column] = rng.permutation(frame[project.label_column].to_numpy())
    return frame


def _first(project, kind: str) -> str:
    return next(c for c, s in project.columns.items() if s["type"] == kind and c not in (project.label_column,))


def break_batch(project, df: pd.DataFrame, scenario: str) -> pd.DataFrame:
    """Apply a bad-data scenario to a clean batch (without its label)."""
    df = df.copy()
    rng = np.random.default_rng(1)
    numeric = _first(project, "float")
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


def landing_paths(root: Path, day: dt.date) -> tuple[Path, Path]:
    """(transactions file of ``day``, labels file that arrives on ``day``) under a landing root."""
    return root / "records" / f"{day.isoformat()}.csv", root / "labels" / f"{day.isoformat()}.csv"


def write_landing_day(project, root: Path, day: dt.date, rows: int = 5000, scenario: str = "clean") -> Path:
    """Write the day's file and the labels of that day (arriving ``label.delay_days`` later); return the file."""
    full = generate_day(project, day, rows, scenario if scenario in DRIFT_SCENARIOS else "clean")
    records_path, _ = landing_paths(root, day)
    _, labels_path = landing_paths(root, day + dt.timedelta(days=project.label_delay_days))
    records_path.parent.mkdir(parents=True, exist_ok=True)
    labels_path.parent.mkdir(parents=True, exist_ok=True)
    batch = full.drop(columns=[project.label_column])
    if scenario == "unreadable":
        records_path.write_bytes(b"\x00\x01PK\x03\x04 this is a zip fragment, not a CSV \xff\xfe" * 10)
    else:
        batch = break_batch(project, batch, scenario)
        tmp = records_path.with_suffix(".tmp")
        batch.to_csv(tmp, index=False, date_format="%Y-%m-%dT%H:%M:%S")
        tmp.replace(records_path)
    labels = pd.DataFrame(
        {
            project.record_id: full[project.record_id],
            project.label_column: full[project.label_column],
            "label_timestamp": pd.Timestamp(day + dt.timedelta(days=project.label_delay_days)) + pd.Timedelta(hours=6),
        }
    )
    tmp = labels_path.with_suffix(".tmp")
    labels.to_csv(tmp, index=False, date_format="%Y-%m-%dT%H:%M:%S")
    tmp.replace(labels_path)
    return records_path
