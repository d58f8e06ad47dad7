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
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_provider.domain.errors import TrainingDataError
from mlops_provider.io import model_store

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from mlops_provider.config.project import ProjectConfig

log = logging.getLogger(__name__)

MIN_ROWS = {"train": 200, "validation": 50, "holdout": 50}
HOLDOUT_ARTIFACT = model_store.HOLDOUT_ARTIFACT
REFERENCE_ARTIFACT = model_store.REFERENCE_ARTIFACT
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
def _figures(y_true, scores: dict[str, Any], threshold: float, importance: pd.Series) -> dict[str, Any]:
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
def _split_source(project: ProjectConfig, sources: list[str], days: list[dt.date]) -> tuple[str | None, list[str]]:
    """The partition URIs of ``sources`` behind the rows of ``days``, and the table their rows come from.

    Feature partitions are named by event day; label partitions by the day the labels *arrived*
    (``label.delay_days`` later), so a split of events on ``days`` draws on those arrival days. The
    returned name is the record-feature table (the split's own rows), or the only partition.
    """
    from mlops_provider.domain.features import record_table
    from mlops_provider.stages.training_set import labels_table

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


def find_registered_run(
    client: MlflowClient, experiment_id: str, project: str, model_name: str, airflow_run_id: str | None = None,
    *, tag: str = "airflow_run_id", value: str | None = None,
) -> dict[str, Any] | None:
    """The result of an earlier run with the same ``tag`` value (by default: an earlier try of the same
    Airflow run) that already registered a version, if any."""
    value = airflow_run_id if value is None else value
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.{tag} = '{_quote(value)}' and tags.project = '{_quote(project)}'",
        order_by=["attributes.start_time ASC"],
    )
    for run in runs:
        versions = client.search_model_versions(f"name = '{_quote(model_name)}' and run_id = '{run.info.run_id}'")
        if not versions:
            continue
        version = min(versions, key=lambda v: int(v.version))
        metrics = dict(run.data.metrics)
        return {
            "run_id": run.info.run_id,
            "experiment_id": experiment_id,
            "model_name": model_name,
            "version": str(version.version),
            "metrics": {k: v for k, v in metrics.items() if k in model_store.METRICS},
            "baseline_metrics": {k[9:]: v for k, v in metrics.items() if k.startswith("baseline_")},
            "holdout_uri": run.data.tags.get("holdout_uri") or f"{run.info.artifact_uri}/{HOLDOUT_ARTIFACT}",
            "reused": True,
        }
    return None


def _reference_sample(splits: Splits, columns: list[str], rows: int, seed: int) -> pd.DataFrame:
    """Up to ``rows`` training and validation rows (uniform, seeded) with ``columns``."""
    import pandas as pd

    both = pd.concat([splits.train[columns], splits.validation[columns]], ignore_index=True)
    return both.sample(n=rows, random_state=seed).reset_index(drop=True) if len(both) > rows else both


def registered_by(project: ProjectConfig, tracking_uri: str, registry_uri: str | None, artifact_location: str | None,
                  *, tag: str, value: str) -> dict[str, Any] | None:
    """The registered result of an earlier training run of ``project`` tagged ``tag = value``, if any."""
    client = model_store.client_for(tracking_uri, registry_uri)
    experiment_id = model_store.ensure_experiment(
        client, project.name, artifact_location or model_store.default_artifact_location(tracking_uri, project.name)
    )
    earlier = find_registered_run(client, experiment_id, project.name, project.model_name, tag=tag, value=value)
    if earlier:
        log.info("%s = %s already registered %s v%s (MLflow run %s); not training again", tag, value,
                 project.model_name, earlier["version"], earlier["run_id"])
    return earlier


def _quote(value: str) -> str:
    return str(value).replace("'", "\\'")


def _skops_trusted_types(model: Any) -> list[str]:
    """The types of our own freshly built model, so skops (MLflow's safe default format) will load it back."""
    import skops.io

    with _quiet_warnings():
        return skops.io.get_untrusted_types(data=skops.io.dumps(model))


@contextmanager
def _quiet_warnings() -> Iterator[None]:
    # skops locates scipy ufuncs by probing every loaded module, which trips each Airflow
    # deprecation shim once per ufunc: hundreds of irrelevant warnings per saved model.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def pip_requirements() -> list[str]:
    """Pinned requirements of the logged model; stating them skips MLflow's slow subprocess inference."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("mlflow", "scikit-learn", "skops", "numpy", "pandas", "scipy", "cloudpickle"):
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return out


def train_and_register(
    project: ProjectConfig,
    frame: pd.DataFrame,
    *,
    feature_columns: list[str],
    categorical_columns: list[str],
    tracking_uri: str,
    registry_uri: str | None = None,
    run_tags: dict[str, Any],
    dataset_sources: list[str],
    hpo_trials: int | None = None,
    seed: int = 42,
    artifact_location: str | None = None,
) -> dict[str, Any]:
    """Train, evaluate, log and register one model version for ``project``; alias it ``challenger``.

    Idempotent per ``run_tags["airflow_run_id"]``: a retry of a run that already registered a version
    returns that version's result instead of training again.
    """
    import mlflow
    import mlflow.data
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import average_precision_score

    from mlops_provider.domain.scoring import prepare_features

    model_cfg = project.model
    label, ts = project.label_column, project.event_timestamp
    model_name = project.model_name
    threshold = float(model_cfg.get("alert_threshold", 0.5))
    trials = int(hpo_trials or model_cfg["hpo_trials"])
    unknown = sorted(set(categorical_columns) - set(feature_columns))
    if unknown:
        raise TrainingDataError(f"categorical_columns {unknown} are not in feature_columns {feature_columns}")
    categorical = [c for c in feature_columns if c in set(categorical_columns)]
    numeric = [c for c in feature_columns if c not in set(categorical_columns)]

    client = model_store.client_for(tracking_uri, registry_uri)
    experiment_id = model_store.ensure_experiment(
        client, project.name, artifact_location or model_store.default_artifact_location(tracking_uri, project.name)
    )
    airflow_run_id = run_tags.get("airflow_run_id")
    if airflow_run_id:
        earlier = find_registered_run(client, experiment_id, project.name, model_name, str(airflow_run_id))
        if earlier:
            log.info("Airflow run %s already registered %s v%s (MLflow run %s); not training again",
                     airflow_run_id, model_name, earlier["version"], earlier["run_id"])
            return earlier
    # The same data, config and budget give the same model: a nightly run after a drift-triggered one for
    # the same day (or a second manual trigger) reuses that version instead of registering a copy.
    training_key = run_tags.get("training_key")
    if training_key:
        earlier = find_registered_run(client, experiment_id, project.name, model_name, tag="training_key",
                                      value=str(training_key))
        if earlier:
            log.info("%s v%s (MLflow run %s) was already trained on the same data, config and budget (%s); "
                     "not training again", model_name, earlier["version"], earlier["run_id"], training_key)
            return earlier

    labelled = frame[frame[label].notna()].copy()
    if len(labelled) < len(frame):
        log.info("dropping %d rows whose label has not arrived", len(frame) - len(labelled))
    labelled[label] = labelled[label].astype(int)
    splits = time_split(labelled, event_timestamp=ts, label_column=label,
                        validation_days=int(model_cfg.get("validation_days", 2)),
                        holdout_days=int(model_cfg.get("holdout_days", 2)))
    X = {name: prepare_features(getattr(splits, name), feature_columns) for name in ("train", "validation", "holdout")}
    y = {name: getattr(splits, name)[label].to_numpy() for name in ("train", "validation", "holdout")}
    log.info("split %s: train %d rows (%d positive), validation %d (%d), holdout %d (%d)", splits.describe(),
             len(y["train"]), y["train"].sum(), len(y["validation"]), y["validation"].sum(),
             len(y["holdout"]), y["holdout"].sum())

    with model_store.thread_limit():
        baseline = build_baseline(numeric, categorical, seed).fit(X["train"], y["train"])
        baseline_scores, seconds = model_store.timed_scores(baseline, X["holdout"])
        baseline_metrics = model_store.classification_metrics(y["holdout"], baseline_scores, threshold, scoring_seconds=seconds)
        log.info("baseline holdout: %s", {k: round(v, 4) for k, v in baseline_metrics.items()})

        best, best_params, best_score, trial_scores = None, None, -1.0, []
        for i, params in enumerate(hpo_candidates(trials, y["train"], seed)):
            candidate = build_gbm(numeric, categorical, params, seed).fit(X["train"], y["train"])
            val_pr_auc = float(average_precision_score(y["validation"], candidate.predict_proba(X["validation"])[:, 1]))
            trial_scores.append(val_pr_auc)
            log.info("HPO trial %d/%d: validation PR AUC %.4f with %s", i + 1, trials, val_pr_auc,
                     {k: v for k, v in params.items() if k != "class_weight"})
            if val_pr_auc > best_score:
                best, best_params, best_score = candidate, params, val_pr_auc
        model = calibrate(best, X["validation"], y["validation"])
        scores, seconds = model_store.timed_scores(model, X["holdout"])
        metrics = model_store.classification_metrics(y["holdout"], scores, threshold, scoring_seconds=seconds)
        log.info("model holdout: %s", {k: round(v, 4) for k, v in metrics.items()})

        # Importance of each input column (not of encoded columns), on a sample: enough to rank features.
        sample = X["holdout"].sample(n=min(1500, len(X["holdout"])), random_state=seed)
        imp = permutation_importance(model, sample, y["holdout"][X["holdout"].index.get_indexer(sample.index)],
                                     scoring="average_precision", n_repeats=2, random_state=seed, n_jobs=1)
        importance = pd.Series(imp.importances_mean, index=feature_columns)

    keep = [c for c in dict.fromkeys([project.record_id, project.entity_key, ts, *feature_columns, label])
            if c in splits.holdout.columns]
    primary = project.promotion["primary_metric"]
    params_out = {
        **splits.describe(),
        **{f"gbm_{k}": v for k, v in best_params.items() if k != "class_weight"},
        "gbm_n_iter": int(best.named_steps["clf"].n_iter_),
        "hpo_trials": trials,
        "hpo_best_validation_pr_auc": round(best_score, 6),
        "refit": "train only; sigmoid-calibrated on validation",
        "train_rows": len(y["train"]), "validation_rows": len(y["validation"]), "holdout_rows": len(y["holdout"]),
        "train_positives": int(y["train"].sum()), "validation_positives": int(y["validation"].sum()),
        "holdout_positives": int(y["holdout"].sum()),
        "feature_columns": json.dumps(feature_columns), "categorical_columns": json.dumps(categorical),
        "alert_threshold": threshold, "seed": seed, "model_name": model_name, "label_column": label,
    }
    tags = {k: (v if isinstance(v, str) else json.dumps(v, default=str)) for k, v in run_tags.items() if v is not None}
    tags.update({"project": project.name, "mlops.stage": "train"})

    with model_store.tracking(tracking_uri, registry_uri), tempfile.TemporaryDirectory(prefix="mlops-train-") as tmp:
        run_name = f"{project.name}-{splits.days['holdout'][-1].isoformat()}"
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
            run_id = run.info.run_id
            log.info("MLflow run %s (experiment %s) at %s", run_id, experiment_id, tracking_uri)
            mlflow.log_params(params_out)
            mlflow.log_metrics(metrics)
            mlflow.log_metrics({f"baseline_{k}": v for k, v in baseline_metrics.items()})
            for step, value in enumerate(trial_scores):
                mlflow.log_metric("hpo_validation_pr_auc", value, step=step)

            datasets = {}
            for name, context in (("train", "training"), ("validation", "validation"), ("holdout", "evaluation")):
                part = getattr(splits, name)
                source, uris = _split_source(project, dataset_sources, splits.days[name])
                datasets[name] = uris
                with warnings.catch_warnings():
                    # Labels and counts are integers on purpose; MLflow's hint about NaN-free ints is noise here.
                    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
                    warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
                    ds = mlflow.data.from_pandas(part[keep], source=source, targets=label,
                                                 name=f"{project.name}_{name}")
                    mlflow.log_input(ds, context=context)
            mlflow.log_dict(datasets, "datasets/sources.json")

            for path, fig in _figures(y["holdout"], {"model": scores, "baseline": baseline_scores},
                                      threshold, importance).items():
                mlflow.log_figure(fig, path)
            mlflow.log_dict({k: float(v) for k, v in importance.items()}, "feature_importance.json")

            holdout_file = Path(tmp) / Path(HOLDOUT_ARTIFACT).name
            splits.holdout[keep].to_parquet(holdout_file, index=False)
            mlflow.log_artifact(str(holdout_file), artifact_path=str(Path(HOLDOUT_ARTIFACT).parent))
            holdout_uri = mlflow.get_artifact_uri(HOLDOUT_ARTIFACT)

            # Monitoring compares each day with what this model learnt from: a seeded sample of its
            # training rows with its own scores on them (the drift reference while it is champion).
            reference = _reference_sample(splits, keep, int(project.monitoring.get("sample_rows", 50000)), seed)
            with model_store.thread_limit():
                reference["champion_score"] = model.predict_proba(prepare_features(reference, feature_columns))[:, 1]
            reference_file = Path(tmp) / Path(REFERENCE_ARTIFACT).name
            reference.to_parquet(reference_file, index=False)
            mlflow.log_artifact(str(reference_file), artifact_path=str(Path(REFERENCE_ARTIFACT).parent))

            example = X["train"].head(5)
            signature = infer_signature(X["holdout"].head(200), model.predict_proba(X["holdout"].head(200))[:, 1])
            with _quiet_warnings():
                info = mlflow.sklearn.log_model(
                    model, name="model", signature=signature, input_example=example,
                    pyfunc_predict_fn="predict_proba", skops_trusted_types=_skops_trusted_types(model),
                    pip_requirements=pip_requirements(),
                )
            version = mlflow.register_model(
                info.model_uri, model_name,
                tags={"run_id": run_id, "config_hash": project.config_hash(),
                      f"baseline_{primary}": str(baseline_metrics[primary]),
                      "airflow_run_id": str(airflow_run_id or ""), "project": project.name,
                      "trigger": str(tags.get("trigger") or "")},
            )
            client.set_registered_model_alias(model_name, model_store.CHALLENGER, version.version)
            mlflow.set_tags({"registered_model": model_name, "registered_version": str(version.version),
                             "holdout_uri": holdout_uri})
    log.info("registered %s v%s as challenger (holdout %s %.4f vs baseline %.4f)", model_name, version.version,
             primary, metrics[primary], baseline_metrics[primary])
    return {
        "run_id": run_id,
        "experiment_id": experiment_id,
        "model_name": model_name,
        "version": str(version.version),
        "metrics": metrics,
        "baseline_metrics": baseline_metrics,
        "holdout_uri": holdout_uri,
        "reused": False,
    }

