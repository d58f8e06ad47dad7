"""Train a baseline and a tuned gradient-boosting model on a time split, log one MLflow run, register it.

Split: whole days of ``event_timestamp``; the most recent ``model.holdout_days`` are the holdout, the
``model.validation_days`` before them the validation set, everything earlier the training set. Time order
matters: a random split would leak tomorrow's patterns into today's training rows.

Refit choice: the tuned model is fitted on the TRAINING days only and then calibrated (sigmoid) on the
validation days. Validation already chose the hyperparameters; reusing it to map the class-weighted
scores back to probabilities costs no extra data and keeps ``log_loss``, ``ece`` and the alert threshold
meaningful. Refitting on train+validation would gain two days of data but leave no untouched rows to
calibrate on, and the holdout must stay untouched for promotion.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_provider.domain.layout import labels_table, record_table
from mlops_provider.domain.metrics import classification_metrics, timed_scores
from mlops_provider.domain.scoring import prepare_features
from mlops_provider.exceptions import TrainingDataError

if TYPE_CHECKING:
    import pandas as pd

    from mlops_provider.config.project import ProjectConfig

log = logging.getLogger(__name__)

MIN_ROWS = {"train": 200, "validation": 50, "holdout": 50}
SPLITS = ("train", "validation", "holdout")
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


def time_split(
    frame: pd.DataFrame, *, event_timestamp: str, label_column: str, validation_days: int, holdout_days: int
) -> Splits:
    """Split ``frame`` by the calendar day of ``event_timestamp`` (most recent days = holdout)."""
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
        positives = int(part[label_column].sum())
        where = f"{name} split ({chosen[0]}..{chosen[-1]}, {len(part)} rows)"
        if len(part) < MIN_ROWS[name]:
            raise TrainingDataError(f"{where} has too few rows: need at least {MIN_ROWS[name]} labelled rows")
        if positives == 0:
            raise TrainingDataError(f"{where} has no positive labels ('{label_column}' == 1); cannot train or evaluate")
        if positives == len(part):
            raise TrainingDataError(f"{where} has only positive labels; cannot train or evaluate")
        parts[name] = part
    return Splits(parts["train"], parts["validation"], parts["holdout"], ranges)


# -- models -------------------------------------------------------------------------------------------
def build_baseline(numeric: list[str], categorical: list[str], seed: int = 42):
    """Logistic regression on one-hot categoricals and scaled numerics, classes balanced."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
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
    return Pipeline(
        [
            ("prep", ColumnTransformer(transformers)),
            ("clf", LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed)),
        ]
    )


def build_gbm(numeric: list[str], categorical: list[str], params: dict[str, Any], seed: int = 42):
    """HistGradientBoosting with native categorical splits (ordinal-encoded; unseen or missing -> NaN)."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
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
    clf = HistGradientBoostingClassifier(
        learning_rate=params["learning_rate"],
        max_leaf_nodes=params["max_leaf_nodes"],
        min_samples_leaf=params["min_samples_leaf"],
        l2_regularization=params["l2_regularization"],
        max_iter=params["max_iter"],
        class_weight=params["class_weight"],
        categorical_features=mask,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=15,
        random_state=seed,
    )
    return Pipeline([("prep", ColumnTransformer(transformers)), ("clf", clf)])


def hpo_candidates(trials: int, y_train: Any, seed: int) -> list[dict[str, Any]]:
    """``trials`` parameter sets: sensible defaults first, then a seeded random search in a bounded space."""
    import numpy as np

    positives = max(int(np.sum(y_train)), 1)
    ratio = (len(y_train) - positives) / positives
    # Both options up-weight the positive class; full balancing over-corrects on very rare classes, sqrt is gentler.
    weights = {"balanced": {0: 1.0, 1: float(ratio)}, "sqrt_balanced": {0: 1.0, 1: float(np.sqrt(ratio))}}
    rng = np.random.default_rng(seed)
    # First candidate: shallow, regularised trees; positive labels are often rare, deep trees memorise them.
    out = [
        {"learning_rate": 0.05, "max_leaf_nodes": 7, "min_samples_leaf": 40, "l2_regularization": 1.0,
         "max_iter": 300, "class_weight_name": "sqrt_balanced"}
    ]
    while len(out) < trials:
        out.append(
            {
                "learning_rate": float(np.round(10 ** rng.uniform(np.log10(0.02), np.log10(0.15)), 4)),
                "max_leaf_nodes": int(rng.choice([7, 15, 31])),
                "min_samples_leaf": int(rng.choice([20, 40, 100, 200])),
                "l2_regularization": float(rng.choice([0.0, 0.1, 1.0, 5.0])),
                "max_iter": 300,
                "class_weight_name": str(rng.choice(list(weights))),
            }
        )
    for params in out[:trials]:
        params["class_weight"] = weights[params["class_weight_name"]]
    return out[:trials]


def calibrate(model: Any, X: pd.DataFrame, y: Any):
    """Sigmoid-calibrate an already fitted ``model`` on (X, y) without refitting it."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    return CalibratedClassifierCV(FrozenEstimator(model), method="sigmoid").fit(X, y)


# -- plots --------------------------------------------------------------------------------------------
def figures(y_true, scores: dict[str, Any], threshold: float, importance: pd.Series) -> dict[str, Any]:
    """ROC, PR, confusion-matrix and feature-importance figures (no pyplot: no global backend state)."""
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
    fig = Figure(figsize=(4, 4))
    ax = fig.subplots()
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["negative", "positive"], yticklabels=["negative", "positive"],
           xlabel="predicted", ylabel="actual", title=f"Confusion matrix @ {threshold:g}")
    out["plots/confusion_matrix.png"] = fig

    fig = Figure(figsize=(6, max(2.5, 0.4 * len(importance) + 1)))
    ax = fig.subplots()
    ordered = importance.sort_values()
    ax.barh(list(ordered.index), ordered.to_numpy())
    ax.set(xlabel="drop in PR AUC when shuffled", title="Permutation importance (holdout sample)")
    fig.tight_layout()
    out["plots/feature_importance.png"] = fig
    return out


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
    """Everything one training produced: the models, their holdout scores and metrics, the search trail."""

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
    best_validation_pr_auc: float
    trial_scores: list[float]
    importance: pd.Series
    threshold: float

    def logged_columns(self, project: ProjectConfig) -> list[str]:
        """The holdout and reference columns kept with the run: ids, time, inputs, label."""
        wanted = [project.record_id, project.entity_key, project.event_timestamp, *self.feature_columns,
                  project.label_column]
        return [c for c in dict.fromkeys(wanted) if c in self.splits.holdout.columns]

    def run_params(self, project: ProjectConfig, seed: int) -> dict[str, Any]:
        """The MLflow run's params: split, search, sizes and the model's inputs."""
        y = self.labels
        return {
            **self.splits.describe(),
            **{f"gbm_{k}": v for k, v in self.best_params.items() if k != "class_weight"},
            "hpo_trials": len(self.trial_scores),
            "hpo_best_validation_pr_auc": round(self.best_validation_pr_auc, 6),
            "refit": "train only; sigmoid-calibrated on validation",
            **{f"{n}_rows": len(y[n]) for n in SPLITS},
            **{f"{n}_positives": int(y[n].sum()) for n in SPLITS},
            "feature_columns": json.dumps(self.feature_columns),
            "categorical_columns": json.dumps(self.categorical_columns),
            "alert_threshold": self.threshold, "seed": seed, "model_name": project.model_name,
            "label_column": project.label_column,
        }


def _model_inputs(project: ProjectConfig, frame: pd.DataFrame, feature_columns: list[str]
                  ) -> tuple[Splits, dict[str, pd.DataFrame], dict[str, Any]]:
    """Labelled rows split by time, as model inputs and labels per split."""
    label = project.label_column
    labelled = frame[frame[label].notna()].copy()
    if len(labelled) < len(frame):
        log.info("dropping %d rows whose label has not arrived", len(frame) - len(labelled))
    labelled[label] = labelled[label].astype(int)
    splits = time_split(labelled, event_timestamp=project.event_timestamp, label_column=label,
                        validation_days=int(project.model["validation_days"]),
                        holdout_days=int(project.model["holdout_days"]))
    X = {name: prepare_features(getattr(splits, name), feature_columns) for name in SPLITS}
    y = {name: getattr(splits, name)[label].to_numpy() for name in SPLITS}
    log.info("split %s: train %d rows (%d positive), validation %d (%d), holdout %d (%d)", splits.describe(),
             len(y["train"]), y["train"].sum(), len(y["validation"]), y["validation"].sum(),
             len(y["holdout"]), y["holdout"].sum())
    return splits, X, y


def _search(numeric: list[str], categorical: list[str], X: dict[str, Any], y: dict[str, Any], trials: int,
            seed: int) -> tuple[Any, dict[str, Any], float, list[float]]:
    """The candidate with the best validation PR AUC: ``(model, params, score, every trial's score)``."""
    from sklearn.metrics import average_precision_score

    best, best_params, best_score, trial_scores = None, None, -1.0, []
    for i, params in enumerate(hpo_candidates(trials, y["train"], seed)):
        candidate = build_gbm(numeric, categorical, params, seed).fit(X["train"], y["train"])
        val_pr_auc = float(average_precision_score(y["validation"], candidate.predict_proba(X["validation"])[:, 1]))
        trial_scores.append(val_pr_auc)
        log.info("HPO trial %d/%d: validation PR AUC %.4f with %s", i + 1, trials, val_pr_auc,
                 {k: v for k, v in params.items() if k != "class_weight"})
        if val_pr_auc > best_score:
            best, best_params, best_score = candidate, params, val_pr_auc
    return best, best_params, best_score, trial_scores


def _importance(model: Any, X: pd.DataFrame, y: Any, feature_columns: list[str], seed: int) -> pd.Series:
    """Permutation importance of each input column (not of encoded columns), on a sample: enough to rank."""
    import pandas as pd
    from sklearn.inspection import permutation_importance

    sample = X.sample(n=min(1500, len(X)), random_state=seed)
    imp = permutation_importance(model, sample, y[X.index.get_indexer(sample.index)],
                                 scoring="average_precision", n_repeats=2, random_state=seed, n_jobs=1)
    return pd.Series(imp.importances_mean, index=feature_columns)


def fit(project: ProjectConfig, frame: pd.DataFrame, *, feature_columns: list[str], categorical_columns: list[str],
        hpo_trials: int, seed: int = 42) -> TrainedModel:
    """Split by time, fit the baseline and the tuned model, calibrate, and score both on the holdout."""
    unknown = sorted(set(categorical_columns) - set(feature_columns))
    if unknown:
        raise TrainingDataError(f"categorical_columns {unknown} are not in feature_columns {feature_columns}")
    categorical = [c for c in feature_columns if c in set(categorical_columns)]
    numeric = [c for c in feature_columns if c not in set(categorical_columns)]
    threshold = float(project.model["alert_threshold"])
    splits, X, y = _model_inputs(project, frame, feature_columns)

    baseline = build_baseline(numeric, categorical, seed).fit(X["train"], y["train"])
    baseline_scores, seconds = timed_scores(baseline, X["holdout"])
    baseline_metrics = classification_metrics(y["holdout"], baseline_scores, threshold, scoring_seconds=seconds)
    log.info("baseline holdout: %s", {k: round(v, 4) for k, v in baseline_metrics.items()})

    best, best_params, best_score, trial_scores = _search(numeric, categorical, X, y, hpo_trials, seed)
    model = calibrate(best, X["validation"], y["validation"])
    scores, seconds = timed_scores(model, X["holdout"])
    metrics = classification_metrics(y["holdout"], scores, threshold, scoring_seconds=seconds)
    log.info("model holdout: %s", {k: round(v, 4) for k, v in metrics.items()})
    return TrainedModel(
        model=model, baseline=baseline, splits=splits, features=X, labels=y, feature_columns=feature_columns,
        categorical_columns=categorical, scores=scores, baseline_scores=baseline_scores, metrics=metrics,
        baseline_metrics=baseline_metrics, best_params={**best_params, "n_iter": int(best.named_steps["clf"].n_iter_)},
        best_validation_pr_auc=best_score, trial_scores=trial_scores,
        importance=_importance(model, X["holdout"], y["holdout"], feature_columns, seed), threshold=threshold,
    )
