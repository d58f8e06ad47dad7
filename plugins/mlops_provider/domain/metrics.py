"""Model quality metrics: one module for training, promotion and monitoring, per task.

Training and promotion evaluate with :func:`evaluate` (a binary model with :func:`classification_metrics`,
a multiclass one with :func:`multiclass_metrics`, a regression with :func:`regression_metrics`; the names
per task are :func:`metrics_of`, their direction :func:`higher_is_better`, both declared in
``config/tasks.py``). Monitoring reports the same measurements on a day's labelled rows with
:func:`performance_metrics`, under the names its verdict and emails use (:data:`MONITORING_NAMES_BY_TASK`).

What a model's predictions are, per task: a binary model's probability of the positive class (1-D);
a multiclass model's probabilities, one column per class in the order of its ``classes`` (2-D); a
regression's predicted values (1-D). Class labels are strings everywhere (:func:`as_classes`).
"""

from __future__ import annotations

import math
import time
from typing import Any

from mlops_provider.config.tasks import MONITORED_METRICS, TASKS
from mlops_provider.config.tasks import bound_kind as bound_kind
from mlops_provider.config.tasks import higher_is_better as higher_is_better
from mlops_provider.config.tasks import metrics_of as metrics_of

# Metric names a binary evaluation returns (training logs the same names, prefixed ``baseline_`` for the baseline).
METRICS = metrics_of("binary")
#: Every metric name any task's evaluation returns.
ALL_METRICS = tuple(dict.fromkeys(m for task in TASKS for m in metrics_of(task)))

# Evaluation name -> the name monitoring verdicts (and alert emails) use for the same measurement (binary).
MONITORING_NAMES = {
    "roc_auc": "roc_auc",
    "pr_auc": "pr_auc",
    "precision_at_threshold": "precision",
    "recall_at_threshold": "recall",
    "alert_rate": "alert_rate",
}
MONITORING_NAMES_BY_TASK = {
    "binary": MONITORING_NAMES,
    **{task: {m: m for m in MONITORED_METRICS[task]} for task in ("multiclass", "regression")},
}
#: How tables and emails name a metric.
LABELS = {
    "roc_auc": "ROC AUC", "pr_auc": "PR AUC", "log_loss": "Log loss", "ece": "ECE",
    "precision_at_threshold": "Precision", "recall_at_threshold": "Recall", "precision": "Precision",
    "recall": "Recall", "alert_rate": "Alert rate", "macro_f1": "Macro F1", "accuracy": "Accuracy",
    "rmse": "RMSE", "mae": "MAE", "r2": "R2", "scoring_ms_per_1k": "Scoring ms per 1k",
}
#: What the hyperparameter search maximises (or, lower-is-better, minimises) on the validation days, per task.
SEARCH_METRIC = {"binary": "pr_auc", "multiclass": "macro_f1", "regression": "rmse"}


def label(metric: str) -> str:
    """A metric's name for people (``rmse`` -> ``RMSE``)."""
    return LABELS.get(metric, metric)


def monitored_name(task: str, metric: str) -> str:
    """The name monitoring reports evaluation metric ``metric`` of a ``task`` model under."""
    return MONITORING_NAMES_BY_TASK[task].get(metric, metric)


def as_classes(values: Any) -> Any:
    """Class labels as strings (an object array): ``1``, ``1.0`` and ``"1"`` are all the class ``"1"``."""
    import numpy as np
    import pandas as pd

    series = pd.Series(values)
    if pd.api.types.is_bool_dtype(series.dtype):
        series = series.astype("Int64")
    elif pd.api.types.is_float_dtype(series.dtype):
        whole = series.dropna()
        if len(whole) and (whole == whole.round()).all():
            series = series.astype("Int64")
    missing = series.isna().to_numpy()
    return np.asarray([None if gone else str(v) for v, gone in zip(series.astype(object), missing, strict=True)],
                      dtype=object)


def json_number(value: Any, digits: int = 6) -> float | None:
    """A JSON-safe float (``None``, NaN and infinities become ``None``), rounded to ``digits``."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else round(value, digits)


def usable(value: Any) -> bool:
    """A measured value: not ``None`` and not NaN."""
    return value is not None and value == value  # NaN is not equal to itself


def expected_calibration_error(y_true: Any, scores: Any, bins: int = 10) -> float:
    """Weighted mean gap between predicted probability and observed rate over equal-width bins."""
    import numpy as np

    y_true = np.asarray(y_true, dtype=float)
    scores = np.asarray(scores, dtype=float)
    if len(scores) == 0:
        return float("nan")
    which = np.minimum((scores * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(scores[mask].mean() - y_true[mask].mean())
    return float(total / len(scores))


def classification_metrics(y_true: Any, scores: Any, threshold: float, *, scoring_seconds: float | None = None
                           ) -> dict[str, float]:
    """Ranking, calibration and alerting quality of ``scores`` against binary labels ``y_true``."""
    import numpy as np
    from sklearn.metrics import (
        average_precision_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    y_true = np.asarray(y_true).astype(int)
    scores = np.clip(np.asarray(scores, dtype=float), 0.0, 1.0)
    both = len(np.unique(y_true)) == 2
    decisions = (scores >= threshold).astype(int)
    out = {
        "roc_auc": float(roc_auc_score(y_true, scores)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y_true, scores)) if both else float("nan"),
        "log_loss": float(log_loss(y_true, scores, labels=[0, 1])) if len(y_true) else float("nan"),
        "ece": expected_calibration_error(y_true, scores),
        "precision_at_threshold": float(precision_score(y_true, decisions, zero_division=0)),
        "recall_at_threshold": float(recall_score(y_true, decisions, zero_division=0)),
        "alert_rate": float(decisions.mean()) if len(decisions) else float("nan"),
    }
    if scoring_seconds is not None and len(y_true):
        out["scoring_ms_per_1k"] = float(scoring_seconds * 1000.0 / len(y_true) * 1000.0)
    return out


def multiclass_metrics(y_true: Any, proba: Any, classes: list[str], *, predicted: Any = None) -> dict[str, float]:
    """Macro F1, log loss and accuracy of a multiclass model's ``proba`` (one column per class of ``classes``).

    The predicted class is the most probable one (or ``predicted`` when given without probabilities).
    A label the model never saw counts as a miss for F1 and accuracy and is left out of the log loss,
    which is undefined for it.
    """
    import numpy as np
    from sklearn.metrics import f1_score, log_loss

    y = as_classes(y_true)
    classes = [str(c) for c in classes]
    if proba is not None:
        proba = np.asarray(proba, dtype=float)
        predicted = np.asarray(classes, dtype=object)[proba.argmax(axis=1)] if len(y) else np.asarray([], dtype=object)
    else:
        predicted = as_classes(predicted)
    if not len(y):
        return {"macro_f1": float("nan"), "log_loss": float("nan"), "accuracy": float("nan")}
    known = np.isin(y, classes)
    loss = float("nan")
    if proba is not None and known.any():
        rows = proba[known]
        loss = float(log_loss(y[known], rows / rows.sum(axis=1, keepdims=True), labels=classes))
    return {
        "macro_f1": float(f1_score(y, predicted, average="macro", zero_division=0)),
        "log_loss": loss,
        "accuracy": float(np.mean(y == predicted)),
    }


def regression_metrics(y_true: Any, predicted: Any) -> dict[str, float]:
    """RMSE, MAE and R2 of ``predicted`` against ``y_true`` (R2 undefined on fewer than 2 rows or a constant target)."""
    import numpy as np
    from sklearn.metrics import r2_score

    y = np.asarray(y_true, dtype=float)
    p = np.asarray(predicted, dtype=float)
    if not len(y):
        return {"rmse": float("nan"), "mae": float("nan"), "r2": float("nan")}
    error = p - y
    varying = len(y) > 1 and float(np.var(y)) > 0
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "r2": float(r2_score(y, p)) if varying else float("nan"),
    }


def evaluate(task: str, y_true: Any, predictions: Any, *, threshold: float | None = None,
             classes: list[str] | None = None, scoring_seconds: float | None = None) -> dict[str, float]:
    """The metrics of a ``task`` model's ``predictions`` (see the module doc) against ``y_true``."""
    if task == "binary":
        return classification_metrics(y_true, predictions, 0.5 if threshold is None else threshold,
                                      scoring_seconds=scoring_seconds)
    if task == "multiclass":
        if classes is None:
            raise ValueError("a multiclass evaluation needs the model's classes (one per probability column)")
        out = multiclass_metrics(y_true, predictions, classes)
    elif task == "regression":
        out = regression_metrics(y_true, predictions)
    else:
        raise ValueError(f"unknown task {task!r}; one of {', '.join(TASKS)}")
    if scoring_seconds is not None and len(y_true):
        out["scoring_ms_per_1k"] = float(scoring_seconds * 1000.0 / len(y_true) * 1000.0)
    return out


def model_classes(model: Any) -> list[str] | None:
    """A classifier's classes as strings (the order of its probability columns); ``None`` for a regressor."""
    classes = getattr(model, "classes_", None)
    return None if classes is None else [str(c) for c in classes]


def predict(model: Any, features: Any, task: str) -> Any:
    """A ``task`` model's predictions on ``features`` (see the module doc)."""
    if task == "binary":
        return model.predict_proba(features)[:, 1]
    if task == "multiclass":
        return model.predict_proba(features)
    return model.predict(features)


def timed_predictions(model: Any, features: Any, task: str) -> tuple[Any, float]:
    """:func:`predict` and the seconds it took."""
    start = time.perf_counter()
    predictions = predict(model, features, task)
    return predictions, time.perf_counter() - start


def timed_scores(model: Any, features: Any) -> tuple[Any, float]:
    """Positive-class probabilities of a binary ``model`` on ``features`` and the seconds it took."""
    return timed_predictions(model, features, "binary")


def performance_metrics(labels: Any, scores: Any, threshold: float | None, *, task: str = "binary",
                        classes: list[str] | None = None, predicted: Any = None) -> dict[str, Any]:
    """Monitoring's view of :func:`evaluate` on a day's labelled rows (unscored rows dropped).

    Counts (and a binary model's positive rate, a regression's label and prediction means) are added;
    values are rounded and JSON-safe (``None`` where undefined). A multiclass model's ``scores`` are its
    probabilities (columns in the order of ``classes``), or ``None`` with the ``predicted`` classes.
    """
    if task == "multiclass":
        return _multiclass_performance(labels, scores, classes or [], predicted)
    if task == "regression":
        return _regression_performance(labels, scores)
    import numpy as np

    y = np.asarray(labels).astype(int)
    s = np.asarray(scores, dtype=float)
    keep = ~np.isnan(s)
    y, s = y[keep], s[keep]
    out: dict[str, Any] = {"rows": int(len(y)), "positives": int(y.sum()),
                           "positive_rate": json_number(y.mean() if len(y) else None, 6)}
    if not len(y):
        return {**out, "roc_auc": None, "pr_auc": None, "precision": None, "recall": None, "alert_rate": None}
    measured = classification_metrics(y, s, threshold)
    digits = {"alert_rate": 6}
    out.update({MONITORING_NAMES[k]: json_number(measured[k], digits.get(k, 4)) for k in MONITORING_NAMES})
    return out


def _multiclass_performance(labels: Any, proba: Any, classes: list[str], predicted: Any) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    y = as_classes(labels)
    if proba is not None:
        proba = np.asarray(proba, dtype=float)
        keep = ~np.isnan(proba).all(axis=1) if proba.ndim == 2 and len(proba) else np.ones(len(y), dtype=bool)
        y, proba = y[keep], np.nan_to_num(proba[keep])
    else:
        predicted = as_classes(predicted)
        keep = np.asarray(pd.notna(predicted), dtype=bool)
        y, predicted = y[keep], predicted[keep]
    counts = pd.Series(y).value_counts()
    out: dict[str, Any] = {"rows": int(len(y)),
                           "label_shares": {str(k): json_number(v / len(y), 6) for k, v in counts.items()}}
    measured = multiclass_metrics(y, proba, classes, predicted=predicted)
    return {**out, **{name: json_number(measured[name], 4) for name in MONITORED_METRICS["multiclass"]}}


def _regression_performance(labels: Any, values: Any) -> dict[str, Any]:
    import numpy as np

    y, p = np.asarray(labels, dtype=float), np.asarray(values, dtype=float)
    keep = ~np.isnan(p) & ~np.isnan(y)
    y, p = y[keep], p[keep]
    out: dict[str, Any] = {"rows": int(len(y)), "label_mean": json_number(y.mean() if len(y) else None, 4),
                           "prediction_mean": json_number(p.mean() if len(p) else None, 4)}
    measured = regression_metrics(y, p)
    return {**out, **{name: json_number(measured[name], 4) for name in MONITORED_METRICS["regression"]}}


def as_monitoring_reference(metrics: dict[str, Any], *, holdout_rows: Any = None, holdout_positives: Any = None,
                            task: str = "binary") -> dict[str, Any]:
    """A training run's holdout metrics under monitoring's names: the day's performance reference."""
    names = MONITORING_NAMES_BY_TASK[task]
    if task != "binary":
        return {names[k]: metrics.get(k) for k in names}
    out = {MONITORING_NAMES[k]: metrics.get(k) for k in MONITORING_NAMES}
    try:
        out["positive_rate"] = int(holdout_positives) / int(holdout_rows)
    except (TypeError, ValueError, ZeroDivisionError):
        out["positive_rate"] = None
    return out


def format_value(value: Any) -> str:
    """A metric for a log line: four decimals for a measured float, else as it is."""
    return f"{value:.4f}" if isinstance(value, float) and usable(value) else str(value)


def comparison_table(rows: dict[str, dict[str, float] | None], metrics: tuple[str, ...] = METRICS) -> str:
    """A fixed-width text table of metrics per model, for task logs (``-``: not measured)."""
    names = [n for n, m in rows.items() if m is not None]
    widths = [max(12, len(n) + 2) for n in names]
    lines = [f"{'metric':<24}" + "".join(f"{n:>{w}}" for n, w in zip(names, widths, strict=True))]
    for metric in metrics:
        cells = ""
        for name, width in zip(names, widths, strict=True):
            value = (rows[name] or {}).get(metric)
            cells += f"{format_value(value) if usable(value) else '-':>{width}}"
        lines.append(f"{metric:<24}{cells}")
    return "\n".join(lines)
