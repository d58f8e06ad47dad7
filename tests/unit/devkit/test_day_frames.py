"""devkit.stack.day_frames: a day's generated rows, or another date's rows moved onto the day (seed_day)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from mlops_provider.config.project import load_project

from devkit.stack import day_frames, fraud_day_chunks

DAY, SEED = dt.date(2025, 3, 10), dt.date(2024, 7, 1)


@pytest.mark.parametrize("name", ["fraud", "churn"])
def test_seed_day_moves_that_dates_rows_onto_the_day(name):
    project = load_project(name)
    records, labels = day_frames(project, DAY, 200, seed_day=SEED)
    seeded, seeded_labels = day_frames(project, SEED, 200)

    ts, rid = project.event_timestamp, project.record_id
    assert (records[ts] - seeded[ts]).eq(pd.Timedelta(days=(DAY - SEED).days)).all()
    assert records[ts].dt.date.eq(DAY).all()
    assert records[rid].str.contains(f"{DAY:%Y%m%d}").all() and records[rid].is_unique
    assert records[rid].str.replace(f"{DAY:%Y%m%d}", f"{SEED:%Y%m%d}").tolist() == seeded[rid].tolist()
    features = [c for c in records.columns if c not in (ts, rid)]
    pd.testing.assert_frame_equal(records[features], seeded[features])
    assert labels[project.label_column].tolist() == seeded_labels[project.label_column].tolist()
    assert labels["label_timestamp"].eq(pd.Timestamp(DAY + dt.timedelta(days=project.label_delay_days)) + pd.Timedelta(hours=6)).all()


def test_without_seed_day_the_rows_follow_the_date():
    project = load_project("fraud")
    same, _ = day_frames(project, DAY, 200, seed_day=DAY)
    pd.testing.assert_frame_equal(same, day_frames(project, DAY, 200)[0])
    other, _ = day_frames(project, DAY + dt.timedelta(days=1), 200)
    assert not other["amount"].equals(same["amount"])


def test_chunks_make_one_day_of_distinct_records():
    project = load_project("fraud")
    chunks = list(fraud_day_chunks(project, DAY, 250, chunk_rows=100))
    records = pd.concat([r for r, _ in chunks], ignore_index=True)
    assert [len(r) for r, _ in chunks] == [100, 100, 50]
    assert records["transaction_id"].is_unique and records["event_timestamp"].dt.date.eq(DAY).all()
    assert records["transaction_id"].iloc[100] == f"T{DAY:%Y%m%d}-0000100"
