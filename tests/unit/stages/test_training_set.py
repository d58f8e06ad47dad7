"""Training sets: only labels that had arrived, point-in-time features, every labelled event kept."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from devkit.datagen import fraud

DAYS = [dt.date(2024, 5, 1) + dt.timedelta(days=i) for i in range(6)]
ROWS = 800
DELAY = 3  # fraud.yaml label.delay_days


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Six days of records, their labels filed under the arrival day, features computed, Feast applied."""
    home = tmp_path_factory.mktemp("trainset-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLOPS_HOME", str(home))
    from mlops_provider.config.project import load_project
    from mlops_provider.hooks.feast import FeastHook
    from mlops_provider.io.lake import Lake
    from mlops_provider.stages import features as SF

    project = load_project("fraud")
    lake = Lake()
    raw = []
    for day in DAYS:
        full = fraud.generate(day, ROWS)
        raw.append(full)
        lake.write("fraud/records", day, full.drop(columns=["is_fraud"]))
        arrival = day + dt.timedelta(days=DELAY)
        labels = pd.DataFrame({"transaction_id": full["transaction_id"], "is_fraud": full["is_fraud"],
                               "label_timestamp": pd.Timestamp(arrival) + pd.Timedelta(hours=6)})
        lake.write("fraud/labels", arrival, labels)
        SF.compute_entity_features(project, lake, day)
        SF.compute_record_features(project, lake, day)
    hook = FeastHook(project, lake=lake).feature_store()
    hook.apply()
    yield {"project": project, "lake": lake, "hook": hook, "raw": pd.concat(raw, ignore_index=True)}
    mp.undo()


def test_only_labels_arrived_by_as_of_are_used(world):
    from mlops_provider.stages.training_set import labelled_events

    as_of = DAYS[-1]  # labels of days 1..3 have arrived (days 4..6), the later ones not yet
    events = labelled_events(world["project"], world["lake"], DAYS[0], as_of)
    assert sorted({t.date() for t in events["event_timestamp"]}) == DAYS[: len(DAYS) - DELAY]
    assert len(events) == ROWS * (len(DAYS) - DELAY)
    assert (events["label_timestamp"] <= pd.Timestamp(as_of + dt.timedelta(days=1), tz="UTC")).all()
    assert (events["label_timestamp"] > events["event_timestamp"]).all()


def test_training_set_is_point_in_time_and_keeps_new_customers(world):
    """THE LEAKAGE TEST at the training-set level: each row's aggregates count only events before its day."""
    from mlops_provider.stages.training_set import build_training_set

    training = build_training_set(world["project"], world["lake"], world["hook"], DAYS[-1], window_days=10)
    frame, raw = training.frame, world["raw"]
    # Every labelled event is there, including first transactions of customers without history.
    assert len(frame) == ROWS * (len(DAYS) - DELAY)
    first_day = frame[frame["event_timestamp"].dt.date == DAYS[0]]
    assert len(first_day) == ROWS and (first_day["customer__count_30d"] == 0).all()
    assert first_day["customer__hours_since_last"].isna().all()

    raw = raw.assign(date=raw["event_timestamp"].dt.date)
    sample = frame.sample(n=300, random_state=0)
    for row in sample.itertuples(index=False):
        event_day = row.event_timestamp.date()
        history = raw[(raw["customer_id"] == row.customer_id) & (raw["date"] < event_day)]
        assert row.customer__count_30d == len(history)
        week = history[history["date"] >= event_day - dt.timedelta(days=7)]
        assert row.customer__amount_sum_7d == pytest.approx(week["amount"].sum())
        # Nothing from the event's own day (or later) and nothing known only at label time.
        assert row.label_timestamp > row.event_timestamp
    assert set(training.feature_columns) <= set(frame.columns)
    assert training.categorical_columns == ["merchant_category", "channel", "country", "device"]
    assert any("fraud/labels/dt=" in s for s in training.sources)


def test_too_few_labels_is_a_clear_error(world):
    from mlops_provider.exceptions import TrainingDataError
    from mlops_provider.stages.training_set import build_training_set

    with pytest.raises(TrainingDataError, match="no labelled events"):
        build_training_set(world["project"], world["lake"], world["hook"], DAYS[1], window_days=5)
