"""Mergeable statistics of the current day (issue 16): the statistics of a day split into parts and merged
are those of the whole day, in any order; the bottom-k sample is the same rows however the day is split;
counts, means, missing shares and new categories stay exact over every row."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
from mlops_provider.config.project import ProjectConfig
from mlops_provider.domain.drift import (
    SAMPLE_KEY,
    SAMPLE_ROW,
    current_statistics,
    merge_statistics,
    monitor_day,
)

SAMPLE_ROWS = 1000


@pytest.fixture(scope="module")
def project() -> ProjectConfig:
    from mlops_provider.config.project import load_project

    fraud = load_project("fraud")
    raw = copy.deepcopy(fraud.raw)
    raw["monitoring"]["sample_rows"] = SAMPLE_ROWS
    return ProjectConfig(path=fraud.path, raw=raw)


def day_frame(project: ProjectConfig, rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.gamma(2.0, 40.0, rows)
    amount[rng.random(rows) < 0.05] = np.nan
    channel = rng.choice(["online", "pos", "atm"], rows, p=[0.5, 0.3, 0.2]).astype(object)
    channel[rng.random(rows) < 0.02] = None
    return pd.DataFrame({
        project.record_id: [f"r{seed}-{i}" for i in range(rows)],
        "amount": amount,
        "hour": pd.array(rng.integers(0, 24, rows), dtype="Int64"),
        "channel": channel,
        "champion_score": rng.random(rows),
    })


COLUMNS = ["amount", "hour", "channel", "champion_score"]


def statistics_of(project, frame, cuts, seed=7):
    parts, start = [], 0
    for end in [*cuts, len(frame)]:
        parts.append(current_statistics(project, frame.iloc[start:end], columns=COLUMNS, seed=seed, start_row=start))
        start = end
    return parts


def json_part(stats):
    return json.loads(json.dumps({k: v for k, v in stats.items() if k != "sample"}))


def test_merged_parts_equal_the_whole_day_in_any_order(project):
    frame = day_frame(project, 5000)
    whole = merge_statistics(statistics_of(project, frame, []))
    parts = statistics_of(project, frame, [1234, 1235, 4000])  # a one-row part among them
    for merged in (merge_statistics(parts), merge_statistics(parts[::-1]),
                   merge_statistics([merge_statistics(parts[:2]), merge_statistics(parts[2:])])):
        assert json_part(merged) == json_part(whole)
        pd.testing.assert_frame_equal(merged["sample"], whole["sample"])


def test_counts_are_exact_over_every_row(project):
    frame = day_frame(project, 5000)
    stats = merge_statistics(statistics_of(project, frame, [2500]))
    assert stats["rows"] == 5000
    amount, channel = stats["columns"]["amount"], stats["columns"]["channel"]
    assert amount["missing"] == frame["amount"].isna().sum() and amount["count"] == frame["amount"].notna().sum()
    assert channel["categories"] == {k: int(v) for k, v in frame["channel"].value_counts().sort_index().items()}
    alert = project.model["alert_threshold"]
    assert stats["columns"]["champion_score"]["at_or_above_alert_threshold"] == (frame["champion_score"] >= alert).sum()
    json.dumps(json_part(stats))  # stages as JSON


def test_the_sample_is_the_smallest_keys_of_the_whole_day(project):
    frame = day_frame(project, 5000)
    stats = merge_statistics(statistics_of(project, frame, [1000, 3000]))
    sample = stats["sample"]
    assert len(sample) == SAMPLE_ROWS and sample[SAMPLE_ROW].is_unique
    keys = pd.util.hash_pandas_object(frame[project.record_id], index=False,
                                      hash_key=format(7, "016x")).to_numpy()
    assert sorted(sample[SAMPLE_ROW]) == sorted(np.argsort(keys, kind="stable")[:SAMPLE_ROWS])
    assert (sample[SAMPLE_KEY].to_numpy() == keys[sample[SAMPLE_ROW].to_numpy()]).all()
    # The sampled rows' values (numbers as float64, categories as strings).
    rows = frame.iloc[sample[SAMPLE_ROW].to_numpy()].reset_index(drop=True)
    np.testing.assert_array_equal(sample["amount"].to_numpy(), rows["amount"].to_numpy())
    assert sample["channel"].tolist() == rows["channel"].tolist() and sample["hour"].dtype == "float64"
    # Another seed draws other rows; the same seed the same rows.
    other = merge_statistics(statistics_of(project, frame, [], seed=8))["sample"]
    assert set(other[SAMPLE_ROW]) != set(sample[SAMPLE_ROW])
    assert merge_statistics(statistics_of(project, frame, [2222]))["sample"].equals(sample)


def test_statistics_of_different_runs_are_not_merged(project):
    frame = day_frame(project, 100)
    a = current_statistics(project, frame, columns=COLUMNS, seed=1)
    with pytest.raises(ValueError, match="seed"):
        merge_statistics([a, current_statistics(project, frame, columns=COLUMNS, seed=2)])
    with pytest.raises(ValueError, match="different columns"):
        merge_statistics([a, current_statistics(project, frame, columns=COLUMNS[:2], seed=1)])


def test_monitoring_from_merged_statistics_equals_monitoring_the_frame(project):
    """monitor_day from a day's parts (as shards give them) is monitor_day of the frame: verdict and summaries;
    the mean is exact, quantiles of the sample above sample_rows and exact below."""
    reference = day_frame(project, 3000, seed=1)
    current = day_frame(project, 4000, seed=2)
    current["amount"] *= 1.8  # drifted
    features = ["amount", "hour", "channel"]
    whole = monitor_day(project, reference=reference, current=current, feature_columns=features, seed=7).verdict
    sharded = monitor_day(project, reference=reference, statistics=merge_statistics(
        statistics_of(project, current, [1000, 2500])), feature_columns=features, seed=7).verdict
    assert sharded == whole and whole["rows"]["sampled_to"] == SAMPLE_ROWS
    (amount,) = [d for d in whole["drifted_columns"] if d["column"] == "amount"]
    assert amount["summary"]["current"]["mean"] == round(current["amount"].mean(), 4)
    assert whole["data_quality"]["missing_share"]["amount"] == round(current["amount"].isna().mean(), 6)
    assert whole["prediction_drift"]["alert_rate_current"] == round(
        (current["champion_score"] >= project.model["alert_threshold"]).mean(), 6)
    small = current.iloc[:SAMPLE_ROWS]
    exact = monitor_day(project, reference=reference, current=small, feature_columns=features, seed=7).verdict
    (amount,) = [d for d in exact["drifted_columns"] if d["column"] == "amount"]
    q = small["amount"].quantile([0.1, 0.5, 0.9])
    assert [amount["summary"]["current"][k] for k in ("p10", "p50", "p90")] == [round(v, 4) for v in q]
    with pytest.raises(ValueError, match="seed"):
        monitor_day(project, reference=reference, statistics=merge_statistics(statistics_of(project, current, [])),
                    feature_columns=features, seed=8)
