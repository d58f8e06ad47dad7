"""What a project's model is asked to do (``model.task``), how (``model.estimator``), and the metric names
each task is measured with: which names ``promotion`` and ``monitoring`` may use, and which way is better.

Names and checks only; the metrics are computed in ``domain/metrics.py``, the estimators built in
``domain/training.py``.

    model:
      task: regression                  # binary (default) | multiclass | regression
      estimator: random_forest          # hist_gradient_boosting (default) | random_forest | extra_trees | linear
    promotion:
      primary_metric: rmse              # default per task: pr_auc | macro_f1 | rmse
      guardrails: {r2: 0.3, mae: 12.0}  # a floor for a higher-is-better metric, a ceiling for a lower-is-better one
    monitoring:
      performance_limits: {rmse: 15.0}  # the day's labelled rows: alert beyond these (default: the guardrails)
"""

from __future__ import annotations

from typing import Any

TASKS = ("binary", "multiclass", "regression")
ESTIMATORS = ("hist_gradient_boosting", "random_forest", "extra_trees", "linear")

#: Evaluation metrics of each task, in the order tables show them (training logs them, promotion compares them).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "pr_auc", "log_loss", "ece", "precision_at_threshold", "recall_at_threshold", "alert_rate"),
    "multiclass": ("macro_f1", "log_loss", "accuracy"),
    "regression": ("rmse", "mae", "r2"),
}
#: Measured for every task: scoring time per 1,000 rows.
TIMING_METRIC = "scoring_ms_per_1k"
#: Metrics a promotion may rank on, per task; the first is the default ``promotion.primary_metric``.
PRIMARY_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("pr_auc", "roc_auc", "log_loss"),
    "multiclass": ("macro_f1", "log_loss", "accuracy"),
    "regression": ("rmse", "mae", "r2"),
}
#: Metrics monitoring measures on a day's labelled rows (by their evaluation names), per task.
MONITORED_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "pr_auc", "precision_at_threshold", "recall_at_threshold"),
    "multiclass": ("macro_f1", "log_loss", "accuracy"),
    "regression": ("rmse", "mae", "r2"),
}
#: Smaller is better for these; a bound on one of them is a ceiling, on any other a floor.
LOWER_IS_BETTER = frozenset({"log_loss", "ece", "rmse", "mae", TIMING_METRIC})
#: Neither better nor worse when larger (a volume): never a guardrail.
NO_DIRECTION = frozenset({"alert_rate"})


def metrics_of(task: str) -> tuple[str, ...]:
    """Every metric an evaluation of a ``task`` model returns."""
    return (*TASK_METRICS[task], TIMING_METRIC)


def guardrail_metrics(task: str) -> tuple[str, ...]:
    """The metrics a ``task`` model may be bounded on (promotion guardrails)."""
    return tuple(m for m in metrics_of(task) if m not in NO_DIRECTION)


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def bound_kind(metric: str) -> str:
    """``floor`` for a higher-is-better metric, ``ceiling`` for a lower-is-better one."""
    return "floor" if higher_is_better(metric) else "ceiling"


def task_of(data: dict[str, Any]) -> str:
    return (data.get("model") or {}).get("task", "binary")


#: Column types a label of each task may have (``columns.<label>.type``).
LABEL_TYPES = {"binary": ("integer", "boolean"), "multiclass": ("string", "category", "integer", "boolean"),
               "regression": ("integer", "float")}


def check_task(data: dict[str, Any]) -> list[tuple[str, str]]:
    """``(key, problem)`` of every task-related key that does not fit ``model.task``, on the file as written."""
    task = task_of(data)
    model, promotion, monitoring = data.get("model") or {}, data.get("promotion") or {}, data.get("monitoring") or {}
    problems = []
    label = (data.get("label") or {}).get("column")
    label_type = ((data.get("columns") or {}).get(label) or {}).get("type")
    if label_type is not None and label_type not in LABEL_TYPES[task]:
        problems.append((f"columns.{label}.type", f"the label of a {task} model must be of type "
                                                  f"{' or '.join(LABEL_TYPES[task])}, not {label_type}"))
    if task != "binary":
        if "alert_threshold" in model:
            problems.append(("model.alert_threshold", f"only a binary model has an alert threshold; remove it for "
                                                      f"model.task: {task}"))
        if "min_roc_auc" in monitoring:
            problems.append(("monitoring.min_roc_auc", f"only a binary model has a ROC AUC; for model.task: {task} "
                                                       f"use monitoring.performance_limits (e.g. "
                                                       f"{{{MONITORED_METRICS[task][0]}: ...}})"))
    primary = promotion.get("primary_metric")
    if primary is not None and primary not in PRIMARY_METRICS[task]:
        problems.append(("promotion.primary_metric", f"{primary} is not a metric of a {task} model; choose from "
                                                     f"{', '.join(PRIMARY_METRICS[task])}"))
    for metric in promotion.get("guardrails") or {}:
        if metric not in guardrail_metrics(task):
            problems.append((f"promotion.guardrails.{metric}", f"{metric} is not a metric a {task} model can be "
                                                               f"bounded on; choose from {', '.join(guardrail_metrics(task))}"))
    for metric in monitoring.get("performance_limits") or {}:
        if metric not in MONITORED_METRICS[task]:
            problems.append((f"monitoring.performance_limits.{metric}", f"{metric} is not measured when a {task} "
                                                                        f"model is monitored; choose from "
                                                                        f"{', '.join(MONITORED_METRICS[task])}"))
    return problems


def fill_task(data: dict[str, Any]) -> None:
    """Defaults that depend on the task: the primary metric; no alert threshold unless binary."""
    task = task_of(data)
    data["promotion"].setdefault("primary_metric", PRIMARY_METRICS[task][0])
    if task != "binary":
        data["model"].pop("alert_threshold", None)
