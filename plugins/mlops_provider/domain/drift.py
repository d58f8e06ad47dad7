"""Daily drift, data-quality and performance monitoring of a served model with Evidently.

``monitor_day`` compares one day of scored records with the champion's training data (the
*reference*) and returns a :class:`MonitoringResult`: the Evidently snapshot (saved as HTML and as a
JSON snapshot by :func:`save_report`) and a small JSON-able ``verdict`` that alerting and branching
tasks read.

Drift statistics
    Every column uses a *distance* with a fixed meaning instead of Evidently's size-dependent
    auto-selection (which switches from K-S / chi-squared p-values to distances at 1,000 rows, so the
    same threshold would mean two different things): normalised Wasserstein distance (Wasserstein
    distance in units of the reference standard deviation) for numeric columns and the score, and
    Jensen-Shannon distance for categorical columns and the label. A column drifts when its distance
    is >= ``monitoring.column_drift_threshold`` (``prediction_drift_threshold`` for the score); the
    dataset drifts when the share of drifted feature columns is >= ``drift_share_threshold``
    (Evidently's own dataset-drift rule).

Why sampling does not change the verdict materially
    Above ``monitoring.sample_rows`` rows, reference and current are each replaced by a uniform
    random sample of that many rows (fixed seed, so a retried task reproduces the same verdict).
    A distance is an *estimate of a population quantity*, not a p-value: it does not shrink towards
    "significant" as rows grow, and a uniform sample of n rows estimates it with an error of order
    1/sqrt(n). At the default 50,000 rows that error is about 0.005 reference standard deviations for
    the Wasserstein distance, and the Jensen-Shannon noise floor of k categories is about
    sqrt((k-1)/(4n)) (0.007 for k=12), both an order of magnitude below the default threshold of 0.1.
    A column can therefore only flip when its true distance lies within about 0.01 of the threshold,
    i.e. when it is borderline on the full data as well. (Corollary: keep high-cardinality columns
    such as ids out of the drift features; with k=1,000 the floor at 50,000 rows is 0.07.)
    Missing-value shares, new categories and the drifted columns' reference-vs-current summaries are
    cheap exact counts, so they always use every row; performance metrics in the verdict are also
    computed on every labelled row (with scikit-learn, like the training evaluation) and only the
    Evidently classification widgets in the HTML report use the sample.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_provider.domain.metrics import json_number, performance_metrics

if TYPE_CHECKING:
    import pandas as pd
    from evidently.core.report import Snapshot

    from mlops_provider.config.project import ProjectConfig

log = logging.getLogger(__name__)

NUM_METHOD = "wasserstein"
CAT_METHOD = "jensenshannon"
STATTEST_NAMES = {NUM_METHOD: "Wasserstein distance (normed)", CAT_METHOD: "Jensen-Shannon distance"}
NUMERIC_TYPES = {"float", "integer"}
MAX_NEW_CATEGORIES_LISTED = 20
TOP_CATEGORIES = 3


@dataclass
class MonitoringResult:
    """One day's monitoring outcome: the JSON-able verdict plus the Evidently snapshot behind it."""

    project: str
    verdict: dict[str, Any]
    snapshot: Snapshot = field(repr=False)

    @property
    def kind(self) -> str:
        return self.verdict["kind"]


# -- small helpers ---------------------------------------------------------------------------------
def _column_kinds(project: ProjectConfig, df: pd.DataFrame, columns: list[str]) -> dict[str, str]:
    """'numerical' or 'categorical' per column: declared type first, pandas dtype for derived columns."""
    import pandas as pd

    kinds = {}
    for col in columns:
        declared = project.columns.get(col, {}).get("type")
        if declared is not None:
            kinds[col] = "numerical" if declared in NUMERIC_TYPES else "categorical"
        elif pd.api.types.is_bool_dtype(df[col]) or not pd.api.types.is_numeric_dtype(df[col]):
            kinds[col] = "categorical"
        else:
            kinds[col] = "numerical"
    return kinds


def _as_category_strings(series: pd.Series) -> pd.Series:
    """Categorical values as strings (booleans included) with missing values kept missing."""
    return series.astype(str).astype("object").where(series.notna(), None)


def _category_counts(series: pd.Series) -> pd.Series:
    """Counts per category as strings; counting first converts only the distinct values (cheap on all rows)."""
    counts = series.value_counts(dropna=True)
    counts.index = counts.index.map(str)
    return counts.groupby(level=0).sum()


def _sample(df: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    return df.sample(n=rows, random_state=seed) if len(df) > rows else df


def _numeric_summary(series: pd.Series) -> dict[str, Any]:
    import pandas as pd

    values = pd.to_numeric(series, errors="coerce").dropna()
    if values.empty:
        return {"mean": None, "p10": None, "p50": None, "p90": None}
    q = values.quantile([0.1, 0.5, 0.9])
    return {"mean": json_number(values.mean(), 4), "p10": json_number(q[0.1], 4), "p50": json_number(q[0.5], 4),
            "p90": json_number(q[0.9], 4)}


def _category_shares(series: pd.Series) -> dict[str, float]:
    counts = _category_counts(series)
    total = counts.sum()
    return {str(k): float(v) / total for k, v in counts.items()} if total else {}


def _summary(kind: str, reference: pd.Series, current: pd.Series) -> dict[str, Any]:
    """Reference-vs-current summary a human can read in an alert (computed on all rows)."""
    if kind == "numerical":
        ref, cur = _numeric_summary(reference), _numeric_summary(current)
        return {"kind": kind, "reference": ref, "current": cur}
    ref, cur = _category_shares(reference), _category_shares(current)
    # The categories whose share moved most explain a categorical drift best.
    moved = sorted(set(ref) | set(cur), key=lambda c: -abs(cur.get(c, 0.0) - ref.get(c, 0.0)))
    top = [{"value": c, "reference": json_number(ref.get(c, 0.0), 4), "current": json_number(cur.get(c, 0.0), 4)}
           for c in moved[:TOP_CATEGORIES]]
    return {"kind": kind, "categories": top}


def _data_quality(reference: pd.DataFrame, current: pd.DataFrame, kinds: dict[str, str]) -> dict[str, Any]:
    """Missing-value shares and categories never seen in the reference, over every row."""
    missing, missing_ref, new_categories, new_category_rows = {}, {}, {}, {}
    for col, kind in kinds.items():
        missing[col] = json_number(current[col].isna().mean() if len(current) else 0.0, 6)
        if col in reference:
            missing_ref[col] = json_number(reference[col].isna().mean() if len(reference) else 0.0, 6)
        if kind == "categorical" and col in reference:
            seen = set(_category_counts(reference[col]).index)
            counts = _category_counts(current[col])
            unseen = counts[~counts.index.isin(seen)].sort_values(ascending=False, kind="stable")
            if len(unseen):
                new_categories[col] = [str(v) for v in unseen.index[:MAX_NEW_CATEGORIES_LISTED]]
                new_category_rows[col] = int(unseen.sum())
    return {
        "missing_share": missing,
        "missing_share_reference": missing_ref,
        "new_categories": new_categories,
        "new_category_rows": new_category_rows,
    }


def _drift_values(snapshot: Snapshot) -> dict[str, dict[str, Any]]:
    """Per-column ValueDrift results of a snapshot: {column: {stattest, score, threshold}}."""
    out = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith(":ValueDrift"):
            out[config["column"]] = {
                "stattest": config.get("method"),
                "score": json_number(metric["value"]),
                "threshold": config.get("threshold"),
            }
    return out


def _merge_snapshots(snapshots: list[Snapshot]) -> Snapshot:
    """One snapshot (one HTML page, one JSON) out of reports run on different dataset pairs."""
    from evidently.core.report import Snapshot

    if len(snapshots) == 1:
        return snapshots[0]
    models = [s.to_snapshot_model() for s in snapshots]
    merged = models[0].copy(deep=True)
    for model in models[1:]:
        merged.metric_results.update(model.metric_results)
        merged.top_level_metrics.extend(model.top_level_metrics)
        merged.widgets.extend(model.widgets)
        merged.tests_widgets.extend(model.tests_widgets)
    return Snapshot.load_model(merged)


# -- the monitoring run ----------------------------------------------------------------------------
def monitor_day(
    project: ProjectConfig,
    *,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    feature_columns: list[str],
    score_column: str = "champion_score",
    label_column: str | None = None,
    labelled: pd.DataFrame | None = None,
    seed: int = 0,
    reference_metrics: dict[str, Any] | None = None,
) -> MonitoringResult:
    """Data drift, prediction drift, data quality and (given labels) performance of one day.

    ``reference`` is the champion's training data (with ``score_column`` holding the champion's scores
    on it, and the label when reference performance is wanted); ``current`` is the day's scored
    records; ``labelled`` is current-period rows joined with their delayed labels.
    ``reference_metrics`` (for example the champion's holdout metrics from MLflow) replaces the
    performance computed on the reference rows when given: in-sample scores flatter the champion.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    mon = project.monitoring
    column_threshold = float(mon.get("column_drift_threshold", 0.1))
    share_threshold = float(mon.get("drift_share_threshold", 0.3))
    prediction_threshold = float(mon.get("prediction_drift_threshold", 0.1))
    sample_rows = int(mon.get("sample_rows", 50000))
    min_roc_auc = mon.get("min_roc_auc", project.promotion.get("guardrails", {}).get("roc_auc"))
    alert_threshold = float(project.model.get("alert_threshold", 0.5))
    label_column = label_column or project.label_column

    features = list(dict.fromkeys(feature_columns))
    if not features:
        raise ValueError(f"project '{project.name}': no feature columns to monitor")
    missing = [c for c in features if c not in current.columns or c not in reference.columns]
    if missing:
        raise ValueError(
            f"project '{project.name}': feature columns {missing} are missing from the reference "
            f"({len(reference.columns)} columns) or the current data ({len(current.columns)} columns)"
        )
    if current.empty or reference.empty:
        raise ValueError(
            f"project '{project.name}': cannot monitor with {len(reference)} reference rows and "
            f"{len(current)} current rows"
        )
    has_score = (score_column in current.columns and score_column in reference.columns
                 and current[score_column].notna().any() and reference[score_column].notna().any())
    kinds = _column_kinds(project, current, features)
    sampled = len(reference) > sample_rows or len(current) > sample_rows
    log.info(
        "monitoring %s: %d reference rows, %d current rows, %d features%s",
        project.name, len(reference), len(current), len(features),
        f" (uniform samples of {sample_rows} rows, seed {seed})" if sampled else "",
    )

    def evidently_frame(df: pd.DataFrame, columns: list[str], categorical: set[str]) -> pd.DataFrame:
        df = df[columns].copy()
        for col in categorical:
            df[col] = _as_category_strings(df[col])
        return df

    cur_sample = _sample(current, sample_rows, seed)
    ref_sample = _sample(reference, sample_rows, seed)
    # A column without any value on one side has no distribution to compare (Evidently refuses it);
    # a feature that vanished (or appeared) entirely is drifted by definition.
    empty = {c: ("current" if cur_sample[c].isna().all() else "reference") for c in features
             if cur_sample[c].isna().all() or ref_sample[c].isna().all()}
    comparable = [c for c in features if c not in empty]
    numerical = [c for c in comparable if kinds[c] == "numerical"]
    categorical = [c for c in comparable if kinds[c] == "categorical"]
    drift_columns = comparable + ([score_column] if has_score else [])
    if not drift_columns:
        raise ValueError(
            f"project '{project.name}': none of the features {features} nor '{score_column}' has a value "
            "on both sides; nothing to compare"
        )
    definition = DataDefinition(
        numerical_columns=numerical + ([score_column] if has_score else []),
        categorical_columns=categorical,
    )
    metrics: list[Any] = [
        DataDriftPreset(
            columns=comparable,
            drift_share=share_threshold,
            num_method=NUM_METHOD,
            cat_method=CAT_METHOD,
            threshold=column_threshold,
        )
    ]
    if has_score:
        metrics.append(ValueDrift(column=score_column, method=NUM_METHOD, threshold=prediction_threshold))
    metadata = {
        "project": project.name,
        "model": project.model_name,
        "reference_rows": str(len(reference)),
        "current_rows": str(len(current)),
        "sample_rows": str(sample_rows if sampled else "none"),
    }
    drift_snapshot = Report(metrics, metadata=metadata, tags=[project.name, "drift"]).run(
        Dataset.from_pandas(evidently_frame(cur_sample, drift_columns, set(categorical)), data_definition=definition),
        Dataset.from_pandas(evidently_frame(ref_sample, drift_columns, set(categorical)), data_definition=definition),
        name=f"{project.name} drift",
    )
    values = _drift_values(drift_snapshot)
    log.info("drift computed for %d columns", len(values))

    drifted = []
    for col in features:
        if col in empty:
            if current[col].isna().all() != reference[col].isna().all():
                drifted.append({
                    "column": col, "type": kinds[col], "stattest": "all_missing",
                    "stattest_name": f"all values missing in the {empty[col]} data", "score": None,
                    "threshold": column_threshold,
                    "summary": _summary(kinds[col], reference[col], current[col]),
                })
            continue
        result = values[col]
        if result["score"] is not None and result["score"] >= result["threshold"]:
            drifted.append({
                "column": col,
                "type": kinds[col],
                "stattest": result["stattest"],
                "stattest_name": STATTEST_NAMES.get(result["stattest"], result["stattest"]),
                "score": json_number(result["score"], 4),
                "threshold": result["threshold"],
                "summary": _summary(kinds[col], reference[col], current[col]),
            })
    drifted.sort(key=lambda d: -(math.inf if d["score"] is None else d["score"]))
    share_drifted = len(drifted) / len(features) if features else 0.0
    drift_detected = bool(features) and share_drifted >= share_threshold

    if has_score:
        result = values[score_column]
        summary = _summary("numerical", reference[score_column], current[score_column])
        prediction_drift = {
            "column": score_column,
            "stattest": result["stattest"],
            "stattest_name": STATTEST_NAMES.get(result["stattest"], result["stattest"]),
            "score": json_number(result["score"], 4),
            "threshold": prediction_threshold,
            "drift_detected": result["score"] is not None and result["score"] >= prediction_threshold,
            "reference": summary["reference"],
            "current": summary["current"],
            "alert_rate_reference": json_number((reference[score_column] >= alert_threshold).mean(), 6),
            "alert_rate_current": json_number((current[score_column] >= alert_threshold).mean(), 6),
        }
    else:
        absent_today = score_column not in current.columns or current[score_column].isna().all()
        where = "current data" if absent_today else "reference"
        prediction_drift = {
            "column": score_column,
            "drift_detected": False,
            "skipped": f"column '{score_column}' is missing or empty in the {where}",
        }

    quality_kinds = dict(kinds)
    if score_column in current.columns:
        quality_kinds[score_column] = "numerical"
    data_quality = _data_quality(reference, current, quality_kinds)

    snapshots = [drift_snapshot]
    performance = None
    if labelled is not None:
        performance, perf_snapshot = _performance(
            project, reference=reference, labelled=labelled, score_column=score_column,
            label_column=label_column, alert_threshold=alert_threshold, min_roc_auc=min_roc_auc,
            column_threshold=column_threshold, sample_rows=sample_rows, seed=seed,
            reference_metrics=reference_metrics,
        )
        if perf_snapshot is not None:
            snapshots.append(perf_snapshot)
    performance_alert = bool(
        performance is not None
        and performance["roc_auc"] is not None
        and min_roc_auc is not None
        and performance["roc_auc"] < float(min_roc_auc)
    )

    any_drift = drift_detected or prediction_drift["drift_detected"]
    kind = {(False, False): "ok", (True, False): "drift", (False, True): "performance",
            (True, True): "drift+performance"}[(any_drift, performance_alert)]
    verdict = {
        "kind": kind,
        "drift_detected": drift_detected,
        "share_drifted": json_number(share_drifted, 4),
        "drift_share_threshold": share_threshold,
        "column_drift_threshold": column_threshold,
        "n_features": len(features),
        "n_drifted": len(drifted),
        "drifted_columns": drifted,
        "column_scores": {c: values[c]["score"] if c in values else None for c in features},
        "prediction_drift": prediction_drift,
        "data_quality": data_quality,
        "performance": performance,
        "performance_alert": performance_alert,
        "rows": {
            "reference": int(len(reference)),
            "current": int(len(current)),
            "labelled": None if labelled is None else int(len(labelled)),
            "sampled_to": sample_rows if sampled else None,
            "seed": seed,
        },
    }
    log.info(
        "verdict for %s: %s (%d/%d features drifted, prediction drift %s, performance alert %s)",
        project.name, kind, len(drifted), len(features), prediction_drift["drift_detected"], performance_alert,
    )
    return MonitoringResult(project=project.name, verdict=verdict, snapshot=_merge_snapshots(snapshots))


def _performance(
    project: ProjectConfig,
    *,
    reference: pd.DataFrame,
    labelled: pd.DataFrame,
    score_column: str,
    label_column: str,
    alert_threshold: float,
    min_roc_auc: float | None,
    column_threshold: float,
    sample_rows: int,
    seed: int,
    reference_metrics: dict[str, Any] | None,
) -> tuple[dict[str, Any], Snapshot | None]:
    """Classification performance and target drift on labelled rows, vs the reference."""
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import ClassificationQuality
    from sklearn.exceptions import UndefinedMetricWarning

    for col in (score_column, label_column):
        if col not in labelled.columns:
            raise ValueError(
                f"project '{project.name}': the labelled data has no column '{col}' "
                f"(columns: {', '.join(map(str, labelled.columns))})"
            )
    labelled = labelled.dropna(subset=[label_column, score_column])
    current = performance_metrics(labelled[label_column], labelled[score_column], alert_threshold)
    ref_has_labels = label_column in reference.columns and score_column in reference.columns
    if reference_metrics is not None:
        ref_perf = {k: json_number(v, 4) if isinstance(v, (int, float)) else v for k, v in reference_metrics.items()}
    elif ref_has_labels:
        ref_rows = reference.dropna(subset=[label_column, score_column])
        ref_perf = performance_metrics(ref_rows[label_column], ref_rows[score_column], alert_threshold)
    else:
        ref_perf = None

    target_drift = None
    snapshot = None
    if len(labelled):
        both_classes = labelled[label_column].nunique() == 2
        definition = DataDefinition(
            numerical_columns=[score_column],
            categorical_columns=[label_column],
            classification=[BinaryClassification(target=label_column, prediction_probas=score_column, pos_label=1)]
            if both_classes else None,
        )

        def frame(df: pd.DataFrame) -> pd.DataFrame:
            df = _sample(df[[score_column, label_column]].dropna(), sample_rows, seed).copy()
            df[label_column] = df[label_column].astype(int)
            return df

        metrics: list[Any] = []
        ref_ds = None
        if label_column in reference.columns and score_column in reference.columns:
            metrics.append(ValueDrift(column=label_column, method=CAT_METHOD, threshold=column_threshold))
            ref_ds = Dataset.from_pandas(frame(reference), data_definition=definition)
        if both_classes:
            metrics.append(ClassificationQuality(probas_threshold=alert_threshold, conf_matrix=True))
        if metrics:
            with warnings.catch_warnings():
                # Precision is undefined on a day without any score above the threshold; the verdict
                # reports 0 for it and the daily log should not carry sklearn's warning about it.
                warnings.simplefilter("ignore", UndefinedMetricWarning)
                snapshot = Report(metrics, tags=[project.name, "performance"]).run(
                    Dataset.from_pandas(frame(labelled), data_definition=definition), ref_ds,
                    name=f"{project.name} performance",
                )
            if ref_ds is not None:
                drift = _drift_values(snapshot)[label_column]
                target_drift = {
                    "column": label_column,
                    "stattest": drift["stattest"],
                    "stattest_name": STATTEST_NAMES.get(drift["stattest"], drift["stattest"]),
                    "score": json_number(drift["score"], 4),
                    "threshold": column_threshold,
                    "drift_detected": drift["score"] is not None and drift["score"] >= column_threshold,
                    "positive_rate_reference": json_number(reference[label_column].astype(float).mean(), 6),
                    "positive_rate_current": current["positive_rate"],
                }
    performance = {
        **current,
        "alert_threshold": alert_threshold,
        "min_roc_auc": None if min_roc_auc is None else float(min_roc_auc),
        "reference": ref_perf,
        "target_drift": target_drift,
    }
    log.info(
        "performance on %d labelled rows: ROC AUC %s (reference %s, minimum %s)",
        current["rows"], current["roc_auc"], (ref_perf or {}).get("roc_auc"), min_roc_auc,
    )
    return performance, snapshot
