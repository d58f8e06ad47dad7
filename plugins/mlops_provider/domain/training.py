"""Train a baseline and a tuned model on a time split, log one MLflow run, register it.

Task (``model.task``): a binary classifier (probability of label 1), a multiclass classifier (one
probability per class) or a regressor (a value). Estimator (``model.estimator``): one of an allow-list of
scikit-learn estimators, each with a bounded search space (:data:`SEARCH_SPACES`), built as a classifier
or a regressor by task (:func:`build_model`). The baseline beside it is a logistic regression
(classifiers) or a ridge linear regression (regressors) on one-hot categoricals and scaled numerics.

Split: whole days of ``event_timestamp``; the most recent ``model.holdout_days`` are the holdout, the
``model.validation_days`` before them the validation set, everything earlier the training set. Time order
matters: a random split would leak tomorrow's patterns into today's training rows.

Refit choice: the tuned model is fitted on the TRAINING days only and then, a classifier, calibrated
(sigmoid) on the validation days. Validation already chose the hyperparameters; reusing it to map the
class-weighted scores back to probabilities costs no extra data and keeps ``log_loss``, ``ece`` and the
alert threshold meaningful. Refitting on train+validation would gain two days of data but leave no
untouched rows to calibrate on, and the holdout must stay untouched for promotion.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_provider.domain.layout import labels_table, record_table
from mlops_provider.domain.metrics import (
    SEARCH_METRIC,
    as_classes,
    evaluate,
    higher_is_better,
    label,
    model_classes,
    timed_predictions,
)
from mlops_provider.domain.scoring import prepare_features
from mlops_provider.exceptions import TrainingDataError

if TYPE_CHECKING:
    import pandas as pd

    from mlops_provider.config.project import ProjectConfig

log = logging.getLogger(__name__)

MIN_ROWS = {"train": 200, "validation": 50, "holdout": 50}
SPLITS = ("train", "validation", "holdout")
#: MLflow param prefix of the tuned estimator's hyperparameters.
PARAM_PREFIX = {"hist_gradient_boosting": "gbm", "random_forest": "rf", "extra_trees": "et", "linear": "linear"}
_DT_IN_URI = re.compile(r"dt=(\d{4}-\d{2}-\d{2})")


@dataclass
class Splits:
    """Three consecutive, non-overlapping day ranges of one labelled frame."""

    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame
    days: dict[str, list[dt.date]]

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("train", "validation", "holdout"):
            days = self.days[name]
            out[f"{name}_start"] = days[0].isoformat()
            out[f"{name}_end"] = days[-1].isoformat()
            out[f"{name}_days"] = len(days)
        return out


def label_problem(labels: pd.Series, label_column: str, task: str) -> str | None:
    """Why a split's ``labels`` cannot train or evaluate a ``task`` model, or ``None``.

    Binary: both classes (a positive and a negative label); multiclass: at least two classes;
    regression: a target that varies.
    """
    if task == "binary":
        positives = int(labels.sum())
        if positives == 0:
            return f"has no positive labels ('{label_column}' == 1); cannot train or evaluate"
        if positives == len(labels):
            return "has only positive labels; cannot train or evaluate"
        return None
    values = labels.dropna().unique()
    if len(values) >= 2:
        return None
    only = ""
    if len(values):
        value = values[0].item() if hasattr(values[0], "item") else values[0]  # a plain value, not numpy's repr
        only = f" ('{label_column}' is always {value!r})"
    if task == "multiclass":
        return f"has a single class{only}; a multiclass model needs at least 2 classes to train or evaluate"
    return f"has a constant target{only}; a regression needs a target that varies to train or evaluate"


def time_split(
    frame: pd.DataFrame, *, event_timestamp: str, label_column: str, validation_days: int, holdout_days: int,
    task: str = "binary",
) -> Splits:
    """Split ``frame`` by the calendar day of ``event_timestamp`` (most recent days = holdout).

    Every split must have enough rows and labels a ``task`` model can learn from and be judged on
    (:func:`label_problem`).
    """
    import pandas as pd

    if event_timestamp not in frame.columns or label_column not in frame.columns:
        raise TrainingDataError(
            f"training frame needs columns '{event_timestamp}' and '{label_column}'; it has {list(frame.columns)}"
        )
    day = pd.to_datetime(frame[event_timestamp]).dt.date
    days = sorted(day.unique())
    needed = validation_days + holdout_days + 1
    if len(days) < needed:
        span = f"{days[0]}..{days[-1]}" if days else "no rows"
        raise TrainingDataError(
            f"training frame covers {len(days)} day(s) ({span}); a train/validation/holdout split needs at least "
            f"{needed} (1 train + model.validation_days={validation_days} + model.holdout_days={holdout_days})"
        )
    ranges = {
        "train": days[: len(days) - validation_days - holdout_days],
        "validation": days[len(days) - validation_days - holdout_days : len(days) - holdout_days],
        "holdout": days[len(days) - holdout_days :],
    }
    parts = {}
    for name, chosen in ranges.items():
        part = frame[day.isin(set(chosen))].reset_index(drop=True)
        where = f"{name} split ({chosen[0]}..{chosen[-1]}, {len(part)} rows)"
        if len(part) < MIN_ROWS[name]:
            raise TrainingDataError(f"{where} has too few rows: need at least {MIN_ROWS[name]} labelled rows")
        if problem := label_problem(part[label_column], label_column, task):
            raise TrainingDataError(f"{where} {problem}")
        parts[name] = part
    return Splits(parts["train"], parts["validation"], parts["holdout"], ranges)


# -- models -------------------------------------------------------------------------------------------
def _linear_inputs(numeric: list[str], categorical: list[str]):
    """Scaled numerics (median-imputed) and one-hot categoricals: what a linear model needs."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    transformers = []
    if numeric:
        transformers.append(
            ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric)
        )
    if categorical:
        transformers.append(
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", min_frequency=5)),
                    ]
                ),
                categorical,
            )
        )
    return ColumnTransformer(transformers)


def build_baseline(numeric: list[str], categorical: list[str], seed: int = 42, task: str = "binary"):
    """A linear model on one-hot categoricals and scaled numerics: a logistic regression with classes
    balanced (classifiers) or a ridge linear regression (regressors)."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline

    model = (Ridge(alpha=1.0) if task == "regression"
             else LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed))
    return Pipeline([("prep", _linear_inputs(numeric, categorical)), ("clf", model)])


def build_gbm(numeric: list[str], categorical: list[str], params: dict[str, Any], seed: int = 42,
              task: str = "binary"):
    """HistGradientBoosting with native categorical splits (ordinal-encoded; unseen or missing -> NaN)."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    transformers = []
    if categorical:
        transformers.append(
            (
                "cat",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan),
                categorical,
            )
        )
    if numeric:
        transformers.append(("num", "passthrough", numeric))
    mask = [True] * len(categorical) + [False] * len(numeric)
    common = dict(
        learning_rate=params["learning_rate"],
        max_leaf_nodes=params["max_leaf_nodes"],
        min_samples_leaf=params["min_samples_leaf"],
        l2_regularization=params["l2_regularization"],
        max_iter=params["max_iter"],
    )
    stopping = dict(categorical_features=mask, early_stopping=True, validation_fraction=0.1, n_iter_no_change=15,
                    random_state=seed)
    if task == "regression":
        clf = HistGradientBoostingRegressor(**common, **stopping)
    else:
        clf = HistGradientBoostingClassifier(**common, class_weight=params["class_weight"], **stopping)
    return Pipeline([("prep", ColumnTransformer(transformers)), ("clf", clf)])


def build_forest(numeric: list[str], categorical: list[str], params: dict[str, Any], seed: int = 42,
                 task: str = "binary", *, extra: bool = False):
    """A random forest (``extra``: extremely randomised trees) on ordinal-encoded categoricals (unseen or
    missing -> -1) and median-imputed numerics."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    transformers = []
    if categorical:
        encode = Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
                           ("ordinal", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1))])
        transformers.append(("cat", encode, categorical))
    if numeric:
        transformers.append(("num", SimpleImputer(strategy="median", keep_empty_features=True), numeric))
    common = dict(n_estimators=params["n_estimators"], max_depth=params["max_depth"],
                  min_samples_leaf=params["min_samples_leaf"], max_features=params["max_features"],
                  random_state=seed, n_jobs=1)
    if task == "regression":
        clf = (ExtraTreesRegressor if extra else RandomForestRegressor)(**common)
    else:
        clf = (ExtraTreesClassifier if extra else RandomForestClassifier)(**common, class_weight=params["class_weight"])
    return Pipeline([("prep", ColumnTransformer(transformers)), ("clf", clf)])


def build_linear(numeric: list[str], categorical: list[str], params: dict[str, Any], seed: int = 42,
                 task: str = "binary"):
    """A regularised linear model: logistic regression (strength ``C``) or ridge regression (``alpha``)."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline

    model = (Ridge(alpha=params["alpha"]) if task == "regression"
             else LogisticRegression(C=params["C"], class_weight=params["class_weight"], max_iter=2000,
                                     random_state=seed))
    return Pipeline([("prep", _linear_inputs(numeric, categorical)), ("clf", model)])


def build_model(task: str, estimator: str, numeric: list[str], categorical: list[str], params: dict[str, Any],
                seed: int = 42):
    """The ``estimator`` of the allow-list with ``params``, a classifier or a regressor by ``task``."""
    if estimator == "hist_gradient_boosting":
        return build_gbm(numeric, categorical, params, seed, task)
    if estimator in ("random_forest", "extra_trees"):
        return build_forest(numeric, categorical, params, seed, task, extra=estimator == "extra_trees")
    if estimator == "linear":
        return build_linear(numeric, categorical, params, seed, task)
    raise ValueError(f"unknown estimator {estimator!r}; one of hist_gradient_boosting, random_forest, extra_trees, "
                     "linear")


# -- the search ---------------------------------------------------------------------------------------
# Each estimator's bounded search space: a tuple of choices, or ("log_uniform", low, high). Class-weight
# choices depend on the task (none for a regressor); positive labels are often rare, so a binary
# classifier's options all up-weight them.
LOG_UNIFORM = "log_uniform"
_CLASS_WEIGHTS = {
    "hist_gradient_boosting": {"binary": ("balanced", "sqrt_balanced"), "multiclass": ("none", "balanced")},
    "random_forest": {"binary": ("none", "balanced_subsample"), "multiclass": ("none", "balanced_subsample")},
    "extra_trees": {"binary": ("none", "balanced_subsample"), "multiclass": ("none", "balanced_subsample")},
    "linear": {"binary": ("none", "balanced"), "multiclass": ("none", "balanced")},
}
_FOREST_SPACE = {"n_estimators": (100, 200), "max_depth": (None, 8, 16), "min_samples_leaf": (1, 5, 20, 50),
                 "max_features": ("sqrt", 0.5, 1.0)}
SEARCH_SPACES: dict[str, dict[str, tuple]] = {
    "hist_gradient_boosting": {"learning_rate": (LOG_UNIFORM, 0.02, 0.15), "max_leaf_nodes": (7, 15, 31),
                               "min_samples_leaf": (20, 40, 100, 200), "l2_regularization": (0.0, 0.1, 1.0, 5.0),
                               "max_iter": (300,)},
    "random_forest": _FOREST_SPACE,
    "extra_trees": _FOREST_SPACE,
    "linear": {"C": (LOG_UNIFORM, 0.01, 10.0)},
}
_LINEAR_REGRESSION_SPACE = {"alpha": (LOG_UNIFORM, 0.01, 100.0)}
# The first candidate of every search: sensible defaults (shallow, regularised trees for boosting: deep
# trees memorise rare positives).
_FIRST = {
    "hist_gradient_boosting": {"learning_rate": 0.05, "max_leaf_nodes": 7, "min_samples_leaf": 40,
                               "l2_regularization": 1.0, "max_iter": 300},
    "random_forest": {"n_estimators": 100, "max_depth": None, "min_samples_leaf": 5, "max_features": "sqrt"},
    "extra_trees": {"n_estimators": 100, "max_depth": None, "min_samples_leaf": 5, "max_features": "sqrt"},
    "linear": {"C": 1.0},
}
_FIRST_CLASS_WEIGHT = {"hist_gradient_boosting": {"binary": "sqrt_balanced", "multiclass": "balanced"},
                       "random_forest": "balanced_subsample", "extra_trees": "balanced_subsample",
                       "linear": "balanced"}


def search_space(estimator: str, task: str) -> dict[str, tuple]:
    """The bounded space the search draws ``estimator``'s hyperparameters from for a ``task`` model."""
    space = dict(_LINEAR_REGRESSION_SPACE if (estimator, task) == ("linear", "regression") else SEARCH_SPACES[estimator])
    if task != "regression":
        space["class_weight_name"] = _CLASS_WEIGHTS[estimator][task]
    return space


def _first_candidate(estimator: str, task: str) -> dict[str, Any]:
    first = {"alpha": 1.0} if (estimator, task) == ("linear", "regression") else dict(_FIRST[estimator])
    if task == "regression":
        if "max_features" in first:
            first["max_features"] = 1.0  # a regression forest's usual default: every feature at each split
        return first
    weight = _FIRST_CLASS_WEIGHT[estimator]
    first["class_weight_name"] = weight[task] if isinstance(weight, dict) else weight
    return first


def _draw(rng: Any, spec: tuple) -> Any:
    import numpy as np

    if spec[0] == LOG_UNIFORM:
        return float(np.round(10 ** rng.uniform(np.log10(spec[1]), np.log10(spec[2])), 4))
    if len(spec) == 1:
        return spec[0]
    return spec[int(rng.choice(len(spec)))]  # the draw of rng.choice(spec), keeping each choice's own type


def _class_weight(name: str, y_train: Any, estimator: str, task: str) -> Any:
    """The ``class_weight`` argument of option ``name``: a binary gradient boosting weighs the positive class by
    the negative/positive ratio (``balanced``) or its square root; other options are scikit-learn's own."""
    import numpy as np

    if name == "none":
        return None
    if estimator == "hist_gradient_boosting" and task == "binary":
        positives = max(int(np.sum(y_train)), 1)
        ratio = (len(y_train) - positives) / positives
        # Full balancing over-corrects on very rare classes, sqrt is gentler.
        return {0: 1.0, 1: float(ratio) if name == "balanced" else float(np.sqrt(ratio))}
    return name


def hpo_candidates(trials: int, y_train: Any, seed: int, *, estimator: str = "hist_gradient_boosting",
                   task: str = "binary") -> list[dict[str, Any]]:
    """``trials`` parameter sets: sensible defaults first, then a seeded random search in the bounded space."""
    import numpy as np

    rng = np.random.default_rng(seed)
    space = search_space(estimator, task)
    out = [_first_candidate(estimator, task)]
    while len(out) < trials:
        out.append({name: _draw(rng, spec) for name, spec in space.items()})
    for params in out[:trials]:
        if "class_weight_name" in params:
            params["class_weight"] = _class_weight(params["class_weight_name"], y_train, estimator, task)
    return out[:trials]


def calibrate(model: Any, X: pd.DataFrame, y: Any):
    """Sigmoid-calibrate an already fitted ``model`` on (X, y) without refitting it."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    return CalibratedClassifierCV(FrozenEstimator(model), method="sigmoid").fit(X, y)


# -- plots --------------------------------------------------------------------------------------------
def figures(y_true, scores: dict[str, Any], threshold: float | None, importance: pd.Series, *, task: str = "binary",
            classes: list[str] | None = None) -> dict[str, Any]:
    """The holdout's figures per task (no pyplot: no global backend state): ROC, PR and confusion matrix of a
    binary model; the confusion matrix of a multiclass one; predicted-vs-actual and residuals of a regression;
    and permutation importance for every task."""
    if task == "multiclass":
        out = _multiclass_figures(y_true, next(iter(scores.values())), classes or [])
    elif task == "regression":
        out = _regression_figures(y_true, scores)
    else:
        out = _binary_figures(y_true, scores, 0.5 if threshold is None else threshold)
    out["plots/feature_importance.png"] = _importance_figure(importance, task)
    return out


def _binary_figures(y_true, scores: dict[str, Any], threshold: float) -> dict[str, Any]:
    import numpy as np
    from matplotlib.figure import Figure
    from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

    out = {}
    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(y_true, s)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (holdout)")
    ax.legend(loc="lower right")
    out["plots/roc_curve.png"] = fig

    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    for name, s in scores.items():
        precision, recall, _ = precision_recall_curve(y_true, s)
        ax.plot(recall, precision, label=name)
    ax.axhline(float(np.mean(y_true)), ls=":", c="grey", label="prevalence")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (holdout)")
    ax.legend(loc="upper right")
    out["plots/pr_curve.png"] = fig

    main = next(iter(scores.values()))
    cm = confusion_matrix(y_true, (np.asarray(main) >= threshold).astype(int), labels=[0, 1])
    out["plots/confusion_matrix.png"] = _confusion_figure(cm, ["negative", "positive"],
                                                          f"Confusion matrix @ {threshold:g}")
    return out


def _confusion_figure(cm: Any, names: list[str], title: str) -> Any:
    import numpy as np
    from matplotlib.figure import Figure

    size = max(4, 0.6 * len(names) + 2)
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="black")
    ticks = list(range(len(names)))
    ax.set(xticks=ticks, yticks=ticks, xticklabels=names, yticklabels=names, xlabel="predicted", ylabel="actual",
           title=title)
    return fig


def _multiclass_figures(y_true, proba: Any, classes: list[str]) -> dict[str, Any]:
    import numpy as np
    from sklearn.metrics import confusion_matrix

    predicted = np.asarray(classes, dtype=object)[np.asarray(proba).argmax(axis=1)]
    cm = confusion_matrix(as_classes(y_true), predicted, labels=classes)
    return {"plots/confusion_matrix.png": _confusion_figure(cm, classes, "Confusion matrix (most probable class)")}


def _regression_figures(y_true, predictions: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    from matplotlib.figure import Figure

    y = np.asarray(y_true, dtype=float)
    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    for name, p in predictions.items():
        ax.scatter(y, p, s=4, alpha=0.4, label=name)
    low, high = float(np.nanmin(y)), float(np.nanmax(y))
    ax.plot([low, high], [low, high], ls=":", c="grey")
    ax.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual (holdout)")
    ax.legend(loc="upper left")
    out = {"plots/predicted_vs_actual.png": fig}

    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    for name, p in predictions.items():
        ax.hist(np.asarray(p, dtype=float) - y, bins=50, alpha=0.5, label=name)
    ax.axvline(0.0, ls=":", c="grey")
    ax.set(xlabel="predicted - actual", ylabel="rows", title="Residuals (holdout)")
    ax.legend(loc="upper right")
    out["plots/residuals.png"] = fig
    return out


def _importance_figure(importance: pd.Series, task: str) -> Any:
    from matplotlib.figure import Figure

    metric = SEARCH_METRIC[task]
    change = "drop" if higher_is_better(metric) else "rise"
    fig = Figure(figsize=(6, max(2.5, 0.4 * len(importance) + 1)))
    ax = fig.subplots()
    ordered = importance.sort_values()
    ax.barh(list(ordered.index), ordered.to_numpy())
    ax.set(xlabel=f"{change} in {label(metric)} when shuffled", title="Permutation importance (holdout sample)")
    fig.tight_layout()
    return fig


# -- MLflow bookkeeping -------------------------------------------------------------------------------
def split_source(project: ProjectConfig, sources: list[str], days: list[dt.date]) -> tuple[str | None, list[str]]:
    """The partition URIs of ``sources`` behind the rows of ``days``, and the table their rows come from.

    Feature partitions are named by event day; label partitions by the day the labels *arrived*
    (``label.delay_days`` later), so a split of events on ``days`` draws on those arrival days. The
    returned name is the record-feature table (the split's own rows), or the only partition.
    """
    delay = dt.timedelta(days=project.label_delay_days)
    event_days = {d.isoformat() for d in days}
    arrival_days = {(d + delay).isoformat() for d in days}
    labels, records = f"/{labels_table(project)}/", f"/{record_table(project)}/"
    chosen = [s for s in sources if (m := _DT_IN_URI.search(s)) is None
              or m.group(1) in (arrival_days if labels in s else event_days)]
    if not chosen:
        return None, []
    primary = [s for s in chosen if records in s] or chosen
    if len(primary) == 1:
        return primary[0], chosen
    return primary[0].split("/dt=", 1)[0], chosen


def reference_sample(splits: Splits, columns: list[str], rows: int, seed: int) -> pd.DataFrame:
    """Up to ``rows`` training and validation rows (uniform, seeded) with ``columns``."""
    import pandas as pd

    both = pd.concat([splits.train[columns], splits.validation[columns]], ignore_index=True)
    return both.sample(n=rows, random_state=seed).reset_index(drop=True) if len(both) > rows else both




# -- fitting ------------------------------------------------------------------------------------------
@dataclass
class TrainedModel:
    """Everything one training produced: the models, their holdout predictions and metrics, the search trail.

    ``scores`` / ``baseline_scores`` are the holdout predictions in the task's shape
    (:mod:`mlops_provider.domain.metrics`); ``classes`` a classifier's classes (their probability columns'
    order), ``threshold`` a binary model's alert threshold (``None`` for other tasks).
    """

    model: Any
    baseline: Any
    splits: Splits
    features: dict[str, pd.DataFrame]
    labels: dict[str, Any]
    feature_columns: list[str]
    categorical_columns: list[str]
    scores: Any
    baseline_scores: Any
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    best_params: dict[str, Any]
    best_validation_score: float
    trial_scores: list[float]
    importance: pd.Series
    threshold: float | None
    task: str = "binary"
    estimator: str = "hist_gradient_boosting"
    classes: list[str] | None = None

    @property
    def search_metric(self) -> str:
        """The validation metric the search chose by (``pr_auc``, ``macro_f1``, ``rmse``)."""
        return SEARCH_METRIC[self.task]

    def logged_columns(self, project: ProjectConfig) -> list[str]:
        """The holdout and reference columns kept with the run: ids, time, inputs, label."""
        wanted = [project.record_id, project.entity_key, project.event_timestamp, *self.feature_columns,
                  project.label_column]
        return [c for c in dict.fromkeys(wanted) if c in self.splits.holdout.columns]

    def _label_params(self) -> dict[str, Any]:
        """Per split: positives (binary), rows per class (multiclass), the label's mean (regression)."""
        import pandas as pd

        y = self.labels
        if self.task == "binary":
            return {f"{n}_positives": int(y[n].sum()) for n in SPLITS}
        if self.task == "multiclass":
            return {"classes": json.dumps(self.classes),
                    **{f"{n}_class_rows": json.dumps({str(k): int(v) for k, v in
                                                     pd.Series(y[n]).value_counts().sort_index().items()})
                       for n in SPLITS}}
        return {f"{n}_label_mean": round(float(y[n].mean()), 6) for n in SPLITS}

    def run_params(self, project: ProjectConfig, seed: int) -> dict[str, Any]:
        """The MLflow run's params: split, search, sizes and the model's inputs."""
        y = self.labels
        prefix = PARAM_PREFIX[self.estimator]
        return {
            **self.splits.describe(),
            **{f"{prefix}_{k}": v for k, v in self.best_params.items() if k != "class_weight"},
            "hpo_trials": len(self.trial_scores),
            f"hpo_best_validation_{self.search_metric}": round(self.best_validation_score, 6),
            "refit": "train only" if self.task == "regression" else "train only; sigmoid-calibrated on validation",
            **{f"{n}_rows": len(y[n]) for n in SPLITS},
            **self._label_params(),
            "feature_columns": json.dumps(self.feature_columns),
            "categorical_columns": json.dumps(self.categorical_columns),
            **({"alert_threshold": self.threshold} if self.task == "binary" else {}),
            "seed": seed, "model_name": project.model_name,
            "label_column": project.label_column, "task": self.task, "estimator": self.estimator,
        }


def as_labels(values: Any, task: str) -> Any:
    """Labels as a ``task`` model learns them: 0/1 integers, class strings, or floats."""
    import numpy as np

    if task == "binary":
        return np.asarray(values).astype(int)
    if task == "multiclass":
        return as_classes(values)
    return np.asarray(values, dtype=float)


def _model_inputs(project: ProjectConfig, frame: pd.DataFrame, feature_columns: list[str]
                  ) -> tuple[Splits, dict[str, pd.DataFrame], dict[str, Any]]:
    """Labelled rows split by time, as model inputs and labels per split."""
    label, task = project.label_column, project.task
    labelled = frame[frame[label].notna()].copy()
    if len(labelled) < len(frame):
        log.info("dropping %d rows whose label has not arrived", len(frame) - len(labelled))
    labelled[label] = as_labels(labelled[label], task)
    splits = time_split(labelled, event_timestamp=project.event_timestamp, label_column=label,
                        validation_days=int(project.model["validation_days"]),
                        holdout_days=int(project.model["holdout_days"]), task=task)
    X = {name: prepare_features(getattr(splits, name), feature_columns) for name in SPLITS}
    y = {name: getattr(splits, name)[label].to_numpy() for name in SPLITS}
    if task == "binary":
        log.info("split %s: train %d rows (%d positive), validation %d (%d), holdout %d (%d)", splits.describe(),
                 len(y["train"]), y["train"].sum(), len(y["validation"]), y["validation"].sum(),
                 len(y["holdout"]), y["holdout"].sum())
    else:
        log.info("split %s: train %d rows, validation %d, holdout %d (%s)", splits.describe(), len(y["train"]),
                 len(y["validation"]), len(y["holdout"]),
                 f"{len(set(y['train']))} classes in train" if task == "multiclass"
                 else f"train label mean {float(y['train'].mean()):.4g}")
    return splits, X, y


def validation_score(task: str, model: Any, X: Any, y: Any) -> float:
    """The search's measure of ``model`` on the validation rows (:data:`SEARCH_METRIC` of the task)."""
    import numpy as np
    from sklearn.metrics import average_precision_score, f1_score

    if task == "binary":
        return float(average_precision_score(y, model.predict_proba(X)[:, 1]))
    if task == "multiclass":
        return float(f1_score(y, as_classes(model.predict(X)), average="macro", zero_division=0))
    return float(np.sqrt(np.mean((model.predict(X) - np.asarray(y, dtype=float)) ** 2)))


def _search(numeric: list[str], categorical: list[str], X: dict[str, Any], y: dict[str, Any], trials: int,
            seed: int, *, task: str = "binary", estimator: str = "hist_gradient_boosting"
            ) -> tuple[Any, dict[str, Any], float, list[float]]:
    """The candidate with the best validation score: ``(model, params, score, every trial's score)``."""
    metric = SEARCH_METRIC[task]
    higher = higher_is_better(metric)
    best, best_params, best_score, trial_scores = None, None, (-1.0 if higher else float("inf")), []
    for i, params in enumerate(hpo_candidates(trials, y["train"], seed, estimator=estimator, task=task)):
        candidate = build_model(task, estimator, numeric, categorical, params, seed).fit(X["train"], y["train"])
        score = validation_score(task, candidate, X["validation"], y["validation"])
        trial_scores.append(score)
        log.info("HPO trial %d/%d: validation %s %.4f with %s", i + 1, trials, label(metric), score,
                 {k: v for k, v in params.items() if k != "class_weight"})
        # The first candidate stands until one scores better (a NaN score never does).
        if best is None or ((score > best_score) if higher else (score < best_score)):
            best, best_params, best_score = candidate, params, score
    return best, best_params, best_score, trial_scores


_IMPORTANCE_SCORING = {"binary": "average_precision", "multiclass": "f1_macro",
                       "regression": "neg_root_mean_squared_error"}


def _importance(model: Any, X: pd.DataFrame, y: Any, feature_columns: list[str], seed: int,
                task: str = "binary") -> pd.Series:
    """Permutation importance of each input column (not of encoded columns), on a sample: enough to rank."""
    import pandas as pd
    from sklearn.inspection import permutation_importance

    sample = X.sample(n=min(1500, len(X)), random_state=seed)
    imp = permutation_importance(model, sample, y[X.index.get_indexer(sample.index)],
                                 scoring=_IMPORTANCE_SCORING[task], n_repeats=2, random_state=seed, n_jobs=1)
    return pd.Series(imp.importances_mean, index=feature_columns)


def _calibrated(task: str, best: Any, X: Any, y: Any) -> Any:
    """A classifier sigmoid-calibrated on the validation rows of classes it knows; a regressor as it is."""
    import numpy as np

    if task == "regression":
        return best
    known = np.isin(y, best.classes_)
    if not known.all():
        log.warning("calibrating on %d of %d validation rows: classes %s never occur in the training days", known.sum(),
                    len(y), sorted(set(np.asarray(y)[~known].tolist())))
        X, y = X[known], y[known]
    return calibrate(best, X, y)


def fit(project: ProjectConfig, frame: pd.DataFrame, *, feature_columns: list[str], categorical_columns: list[str],
        hpo_trials: int, seed: int = 42) -> TrainedModel:
    """Split by time, fit the baseline and the tuned model, calibrate, and score both on the holdout."""
    unknown = sorted(set(categorical_columns) - set(feature_columns))
    if unknown:
        raise TrainingDataError(f"categorical_columns {unknown} are not in feature_columns {feature_columns}")
    task, estimator = project.task, project.estimator
    categorical = [c for c in feature_columns if c in set(categorical_columns)]
    numeric = [c for c in feature_columns if c not in set(categorical_columns)]
    threshold = float(project.model["alert_threshold"]) if task == "binary" else None
    splits, X, y = _model_inputs(project, frame, feature_columns)

    baseline = build_baseline(numeric, categorical, seed, task=task).fit(X["train"], y["train"])
    baseline_scores, seconds = timed_predictions(baseline, X["holdout"], task)
    baseline_metrics = evaluate(task, y["holdout"], baseline_scores, threshold=threshold,
                                classes=model_classes(baseline), scoring_seconds=seconds)
    log.info("baseline holdout: %s", {k: round(v, 4) for k, v in baseline_metrics.items()})

    best, best_params, best_score, trial_scores = _search(numeric, categorical, X, y, hpo_trials, seed, task=task,
                                                          estimator=estimator)
    model = _calibrated(task, best, X["validation"], y["validation"])
    scores, seconds = timed_predictions(model, X["holdout"], task)
    classes = model_classes(model)
    metrics = evaluate(task, y["holdout"], scores, threshold=threshold, classes=classes, scoring_seconds=seconds)
    log.info("model holdout: %s", {k: round(v, 4) for k, v in metrics.items()})
    n_iter = best.named_steps["clf"].n_iter_ if estimator == "hist_gradient_boosting" else None
    return TrainedModel(
        model=model, baseline=baseline, splits=splits, features=X, labels=y, feature_columns=feature_columns,
        categorical_columns=categorical, scores=scores, baseline_scores=baseline_scores, metrics=metrics,
        baseline_metrics=baseline_metrics,
        best_params={**best_params, **({"n_iter": int(n_iter)} if n_iter is not None else {})},
        best_validation_score=best_score, trial_scores=trial_scores,
        importance=_importance(model, X["holdout"], y["holdout"], feature_columns, seed, task), threshold=threshold,
        task=task, estimator=estimator, classes=classes if task == "multiclass" else None,
    )
