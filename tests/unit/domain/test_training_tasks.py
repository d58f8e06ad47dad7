"""Training per task and estimator: the split's label checks, the baseline, each estimator's model and its
bounded search space, and a whole ``fit`` per task on small synthetic data."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pandas as pd
import pytest
from mlops_provider.config.tasks import ESTIMATORS, TASKS
from mlops_provider.domain import training
from mlops_provider.exceptions import TrainingDataError

START = dt.date(2024, 5, 1)


def frame(labels_per_day: list, rows: int = 300) -> pd.DataFrame:
    """``rows`` records a day; day i's labels are drawn from ``labels_per_day[i]``."""
    rng = np.random.default_rng(0)
    parts = []
    for i, choices in enumerate(labels_per_day):
        parts.append(pd.DataFrame({
            "ts": pd.Timestamp(START + dt.timedelta(days=i), tz="UTC") + pd.to_timedelta(np.arange(rows), unit="min"),
            "x": rng.normal(size=rows), "target": rng.choice(choices, size=rows)}))
    return pd.concat(parts, ignore_index=True)


def split(df: pd.DataFrame, task: str) -> training.Splits:
    return training.time_split(df, event_timestamp="ts", label_column="target", validation_days=1, holdout_days=1,
                               task=task)


def test_binary_split_needs_both_classes_as_today():
    with pytest.raises(TrainingDataError, match=r"holdout split \(2024-05-03\.\.2024-05-03, 300 rows\) has no "
                                                r"positive labels \('target' == 1\)"):
        split(frame([[0, 1], [0, 1], [0]]), "binary")
    with pytest.raises(TrainingDataError, match="validation split .* has only positive labels"):
        split(frame([[0, 1], [1], [0, 1]]), "binary")
    assert len(split(frame([[0, 1]] * 3), "binary").holdout) == 300


def test_multiclass_split_needs_two_classes():
    with pytest.raises(TrainingDataError, match=r"train split .* has a single class \('target' is always 'a'\); "
                                                r"a multiclass model needs at least 2 classes"):
        split(frame([["a"], ["a", "b"], ["a", "c"]]), "multiclass")
    assert len(split(frame([["a", "b", "c"], ["a", "b"], ["b", "c"]]), "multiclass").train) == 300


def test_regression_split_needs_a_varying_target():
    with pytest.raises(TrainingDataError, match=r"holdout split .* has a constant target \('target' is always 2\.5\); "
                                                r"a regression needs a target that varies"):
        split(frame([[1.0, 2.0], [0.5, 3.0], [2.5]]), "regression")
    # Positive labels mean nothing for a regression: a target that is never 1 is fine.
    assert len(split(frame([[-1.0, 2.0], [0.5, 3.0], [2.5, 4.0]]), "regression").validation) == 300


def test_baseline_per_task():
    from sklearn.linear_model import LogisticRegression, Ridge

    X = pd.DataFrame({"x": np.linspace(-1, 1, 60), "c": np.array(["u", "v", np.nan], dtype=object).repeat(20)})
    for task, y, kind in (("binary", np.tile([0, 1], 30), LogisticRegression),
                          ("multiclass", np.tile(["a", "b", "c"], 20), LogisticRegression),
                          ("regression", np.linspace(0, 5, 60), Ridge)):
        model = training.build_baseline(["x"], ["c"], task=task).fit(X, y)
        assert isinstance(model.named_steps["clf"], kind)
    assert training.build_baseline(["x"], ["c"]).named_steps["clf"].class_weight == "balanced"  # today's


@pytest.mark.parametrize(("task", "estimator"), list(itertools.product(TASKS, ESTIMATORS)))
def test_every_estimator_searches_a_bounded_space_and_fits(task, estimator):
    from sklearn.base import is_classifier, is_regressor

    y = {"binary": np.tile([0, 0, 0, 1], 25), "multiclass": np.tile(["a", "b", "c", "a"], 25),
         "regression": np.linspace(0, 10, 100)}[task]
    space = training.search_space(estimator, task)
    assert ("class_weight_name" in space) == (task != "regression")
    candidates = training.hpo_candidates(12, y, seed=3, estimator=estimator, task=task)
    assert len(candidates) == 12 and len({str(sorted(c.items(), key=str)) for c in candidates}) > 1
    for params in candidates:
        for name, spec in space.items():
            value = params[name]
            if spec[0] == training.LOG_UNIFORM:
                assert spec[1] <= value <= spec[2], (name, value)
            else:
                assert value in spec, (name, value)
    X = pd.DataFrame({"x": np.linspace(-1, 1, 100), "c": np.tile(np.array(["u", "v", None], dtype=object), 34)[:100]})
    model = training.build_model(task, estimator, ["x"], ["c"], candidates[-1], seed=1).fit(X, y)
    assert is_regressor(model) if task == "regression" else is_classifier(model)
    unseen = pd.DataFrame({"x": [np.nan, 0.5], "c": ["never-seen", np.nan]})  # missing and unseen inputs score
    assert len(model.predict(unseen)) == 2


def test_binary_gradient_boosting_keeps_todays_search():
    y = np.r_[np.zeros(97), np.ones(3)]
    first = training.hpo_candidates(1, y, seed=42)[0]
    assert first == {"learning_rate": 0.05, "max_leaf_nodes": 7, "min_samples_leaf": 40, "l2_regularization": 1.0,
                     "max_iter": 300, "class_weight_name": "sqrt_balanced",
                     "class_weight": {0: 1.0, 1: pytest.approx(np.sqrt(97 / 3))}}
    assert training.search_space("hist_gradient_boosting", "binary")["class_weight_name"] == ("balanced",
                                                                                              "sqrt_balanced")


def test_unknown_estimator_is_named():
    with pytest.raises(ValueError, match="unknown estimator 'xgboost'"):
        training.build_model("binary", "xgboost", ["x"], [], {})
