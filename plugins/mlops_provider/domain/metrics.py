"""Model quality metrics: one module for training, promotion and monitoring.

Training and promotion evaluate with :func:`classification_metrics` (names in :data:`METRICS`);
monitoring reports the same measurements on a day's labelled rows with :func:`performance_metrics`,
under the shorter names its verdict and emails use (:data:`MONITORING_NAMES`).
"""

from __future__ import annotations

import math
import time
from typing import Any

# Metric names every evaluation returns (training logs the same names, prefixed ``baseline_`` for the baseline).
METRICS = (
    "roc_auc",
    "pr_auc",
    "log_loss",
    "ece",
    "precision_at_threshold",
    "recall_at_threshold",
    "alert_rate",
    "scoring_ms_per_1k",
)

# Evaluation name -> the name monitoring verdicts (and alert emails) use for the same measurement.
MONITORING_NAMES = {
    "roc_auc": "roc_auc",
    "pr_auc": "pr_auc",
    "precision_at_threshold": "precision",
    "recall_at_threshold": "recall",
    "alert_rate": "alert_rate",
}


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


def timed_scores(model: Any, features: Any) -> tuple[Any, float]:
    """Positive-class probabilities of ``model`` on ``features`` and the seconds it took."""
    start = time.perf_counter()
    scores = model.predict_proba(features)[:, 1]
    return scores, time.perf_counter() - start


def performance_metrics(labels: Any, scores: Any, threshold: float) -> dict[str, Any]:
    """Monitoring's view of :func:`classification_metrics` on a day's labelled rows (unscored rows dropped).

    Counts and the positive rate are added; values are rounded and JSON-safe (``None`` where undefined).
    """
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


def as_monitoring_reference(metrics: dict[str, Any], *, holdout_rows: Any = None, holdout_positives: Any = None
                            ) -> dict[str, Any]:
    """A training run's holdout metrics under monitoring's names: the day's performance reference."""
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
