"""The metrics of every task: names, direction, values on hand-checked data, monitoring's view of them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mlops_provider.config.tasks import (
    MONITORED_METRICS,
    PRIMARY_METRICS,
    TASK_METRICS,
    TASKS,
    guardrail_metrics,
)
from mlops_provider.domain import metrics as M


def test_every_task_names_its_metrics_and_their_direction():
    assert M.METRICS == (*TASK_METRICS["binary"], "scoring_ms_per_1k")  # today's binary names, unchanged
    for task in TASKS:
        assert set(M.metrics_of(task)) <= set(M.ALL_METRICS)
        assert set(PRIMARY_METRICS[task]) <= set(M.metrics_of(task)) >= set(MONITORED_METRICS[task])
        assert all(M.label(m) != m for m in M.metrics_of(task))  # every metric has a name for people
    assert [m for m in M.ALL_METRICS if not M.higher_is_better(m)] == ["log_loss", "ece", "scoring_ms_per_1k",
                                                                       "rmse", "mae"]
    assert M.bound_kind("rmse") == "ceiling" and M.bound_kind("r2") == "floor"
    assert "alert_rate" not in guardrail_metrics("binary")  # a volume: neither better nor worse


def test_binary_evaluation_is_todays_classification_metrics():
    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.2).astype(int)
    scores = np.clip(y * 0.3 + rng.random(500) * 0.7, 0, 1)
    assert M.evaluate("binary", y, scores, threshold=0.4, scoring_seconds=0.01) == \
        M.classification_metrics(y, scores, 0.4, scoring_seconds=0.01)


def test_multiclass_metrics_on_a_small_example():
    classes = ["a", "b", "c"]
    y = ["a", "b", "c", "a"]
    proba = [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.1, 0.8, 0.1]]
    m = M.evaluate("multiclass", y, proba, classes=classes, scoring_seconds=0.002)
    assert m["accuracy"] == pytest.approx(0.75)
    # F1 per class: a = 2/3 (1 of 1 predicted right, 1 of 2 found), b = 2/3, c = 1.
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.7, 0.4, 0.1])))
    assert m["scoring_ms_per_1k"] == pytest.approx(500.0)
    assert set(m) == set(M.metrics_of("multiclass"))


def test_a_class_the_model_never_saw_is_a_miss_but_no_log_loss():
    m = M.multiclass_metrics(["a", "z"], [[0.9, 0.1], [0.6, 0.4]], ["a", "b"])
    assert m["accuracy"] == 0.5
    assert m["log_loss"] == pytest.approx(-math.log(0.9))
    with pytest.raises(ValueError, match="needs the model's classes"):
        M.evaluate("multiclass", ["a"], [[1.0]])


def test_regression_metrics_on_a_small_example():
    m = M.evaluate("regression", [1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.5, 5.0])
    assert m["rmse"] == pytest.approx(math.sqrt((0.25 + 0 + 0.25 + 1) / 4))
    assert m["mae"] == pytest.approx(0.5)
    assert m["r2"] == pytest.approx(1 - 1.5 / 5.0)
    assert math.isnan(M.regression_metrics([3.0, 3.0], [3.0, 2.0])["r2"])  # constant target: undefined
    assert all(math.isnan(v) for v in M.regression_metrics([], []).values())


def test_class_labels_are_strings_whatever_their_type():
    import pandas as pd

    assert list(M.as_classes([1, 2, 2])) == ["1", "2", "2"]
    assert list(M.as_classes(pd.Series([1.0, 2.0, None]))) == ["1", "2", None]  # what a nullable int becomes
    assert list(M.as_classes(pd.array([3, None], dtype="Int64"))) == ["3", None]
    assert list(M.as_classes([True, False])) == ["1", "0"]
    assert list(M.as_classes(["low", "high"])) == ["low", "high"]


def test_predictions_have_the_tasks_shape():
    from sklearn.dummy import DummyClassifier, DummyRegressor

    X = np.zeros((6, 1))
    multi = DummyClassifier(strategy="prior").fit(X, ["a", "b", "c", "a", "a", "b"])
    assert M.predict(multi, X, "multiclass").shape == (6, 3) and M.model_classes(multi) == ["a", "b", "c"]
    binary = DummyClassifier(strategy="prior").fit(X, [0, 1, 0, 0, 1, 0])
    assert M.predict(binary, X, "binary") == pytest.approx([2 / 6] * 6)
    regressor = DummyRegressor().fit(X, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert M.predict(regressor, X, "regression") == pytest.approx([3.5] * 6)
    assert M.model_classes(regressor) is None


def test_monitoring_view_per_task():
    binary = M.performance_metrics([0, 1, 1, 0], [0.1, 0.8, np.nan, 0.3], 0.5)
    assert binary["rows"] == 3 and binary["positives"] == 1 and binary["roc_auc"] == 1.0  # the unscored row dropped

    multi = M.performance_metrics(["a", "b", "b"], np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), None,
                                  task="multiclass", classes=["a", "b"])
    assert multi["rows"] == 3 and multi["accuracy"] == pytest.approx(0.6667, abs=1e-4)
    assert multi["label_shares"] == {"b": pytest.approx(0.666667), "a": pytest.approx(0.333333)}
    only_classes = M.performance_metrics(["a", "b"], None, None, task="multiclass", classes=["a", "b"],
                                         predicted=["a", "a"])
    assert only_classes["accuracy"] == 0.5 and only_classes["log_loss"] is None  # no probabilities: no log loss

    reg = M.performance_metrics([1.0, 2.0, 4.0], [1.0, 3.0, np.nan], None, task="regression")
    assert reg == {"rows": 2, "label_mean": 1.5, "prediction_mean": 2.0, "rmse": pytest.approx(0.7071),
                   "mae": 0.5, "r2": -1.0}


def test_holdout_metrics_as_monitoring_reference_per_task():
    binary = M.as_monitoring_reference({"roc_auc": 0.8, "precision_at_threshold": 0.4}, holdout_rows="100",
                                       holdout_positives="5")
    assert binary["roc_auc"] == 0.8 and binary["precision"] == 0.4 and binary["positive_rate"] == 0.05
    reg = M.as_monitoring_reference({"rmse": 3.0, "mae": 2.0, "r2": 0.5, "scoring_ms_per_1k": 1.0}, task="regression")
    assert reg == {"rmse": 3.0, "mae": 2.0, "r2": 0.5}
    assert set(M.as_monitoring_reference({}, task="multiclass")) == set(MONITORED_METRICS["multiclass"])
