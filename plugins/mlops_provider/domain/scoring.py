"""Scoring policy: model inputs, champion and shadow-challenger predictions, the day's scoring summary.

What a predictions partition holds per task (besides ids, time and versions):

- binary: ``champion_score`` (the probability of label 1), ``decision`` (score >= ``model.alert_threshold``),
  ``challenger_score``;
- multiclass: ``champion_prediction`` (the most probable class), ``champion_score`` (its probability),
  ``champion_proba__<class>`` for every class, ``challenger_prediction``, ``challenger_score``;
- regression: ``champion_score`` (the predicted value), ``challenger_score``.

The shadow comparison is per task too: agreement on the decision (binary) or the class (multiclass),
mean absolute difference and KS statistic of the scores (binary) or values (regression).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mlops_provider.domain.metrics import model_classes
from mlops_provider.exceptions import MlopsError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SCORE = "champion_score"
PREDICTION = "champion_prediction"
PROBA_PREFIX = "champion_proba__"


def output_column(task: str, side: str = "champion") -> str:
    """The column the shadow comparison and prediction-drift monitoring read: the class of a multiclass
    model, else the score (a binary model's probability, a regression's value)."""
    return f"{side}_prediction" if task == "multiclass" else f"{side}_score"


def proba_columns(columns: Any) -> list[str]:
    """The per-class probability columns among ``columns`` (a multiclass model's predictions)."""
    return [c for c in columns if str(c).startswith(PROBA_PREFIX)]


def prediction_columns(model: Any, features: pd.DataFrame, task: str, side: str = "champion") -> dict[str, Any]:
    """``model``'s predictions on ``features`` as the columns a predictions partition stores (module doc)."""
    import numpy as np

    if task == "binary":
        return {f"{side}_score": model.predict_proba(features)[:, 1]}
    if task == "regression":
        return {f"{side}_score": np.asarray(model.predict(features), dtype="float64")}
    proba = model.predict_proba(features)
    classes = model_classes(model)
    best = proba.argmax(axis=1)
    out = {f"{side}_prediction": np.asarray(classes, dtype=object)[best],
           f"{side}_score": proba[np.arange(len(best)), best].astype("float64")}
    if side == "champion":
        out.update({f"{PROBA_PREFIX}{c}": proba[:, i].astype("float64") for i, c in enumerate(classes)})
    return out



def prepare_features(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The model input: numeric and boolean columns as float64, everything else as Python objects with NaN.

    Training, evaluation and scoring all go through here, so a column that arrives as ``bool`` from the
    generator, ``boolean`` from Parquet or ``string[pyarrow]`` from Feast reaches the model in one form.
    """
    import numpy as np
    import pandas as pd
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MlopsError(f"the frame lacks model input columns {missing} (has {list(frame.columns)})")
    out = {}
    for col in columns:
        series = frame[col]
        if is_bool_dtype(series.dtype) or is_numeric_dtype(series.dtype):
            out[col] = series.to_numpy(dtype="float64", na_value=np.nan)
        else:
            values = series.astype(object)
            out[col] = values.where(series.notna(), np.nan).to_numpy()
    return pd.DataFrame(out, index=frame.index)


def model_features(model: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` reduced to, and typed as, the columns ``model`` was fitted on."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        raise MlopsError(f"model {type(model).__name__} does not record its input columns (feature_names_in_)")
    return prepare_features(frame, [str(n) for n in names])


def ks_statistic(a: Any, b: Any) -> float:
    from scipy.stats import ks_2samp

    return float(ks_2samp(a, b).statistic) if len(a) and len(b) else float("nan")


def score_batch(frame: pd.DataFrame, *, models: tuple[Any, Any | None], versions: tuple[str, str | None],
                record_id: str, entity_key: str, threshold: float | None, model_name: str = "",
                event_timestamp: str = "event_timestamp", task: str = "binary") -> pd.DataFrame:
    """Predictions of ``frame`` by the pinned champion (and, in shadow, the challenger) of ``versions``.

    A challenger that cannot score (its inputs changed) is logged and left out: shadow scoring informs,
    it must never stop the champion's predictions from being written.
    """
    import numpy as np
    import pandas as pd

    (champion, challenger), (champion_model, challenger_model) = versions, models
    champion_out = prediction_columns(champion_model, model_features(champion_model, frame), task)
    challenger_out = None
    if challenger is not None and challenger_model is not None:
        try:
            challenger_out = prediction_columns(challenger_model, model_features(challenger_model, frame), task,
                                                side="challenger")
        except MlopsError as exc:
            log.warning("shadow scoring with %s v%s skipped: %s", model_name, challenger, exc)
    n = len(frame)
    columns: dict[str, Any] = {
        record_id: frame[record_id].to_numpy(),
        entity_key: frame[entity_key].to_numpy(),
        # ``.array`` keeps a tz-aware column as it is; ``to_numpy()`` would build one Timestamp object per row.
        event_timestamp: frame[event_timestamp].array if event_timestamp in frame else pd.NaT,
        "champion_version": np.full(n, int(champion), dtype="int64"),
    }
    if task == "multiclass":
        columns[PREDICTION] = pd.array(champion_out.pop(PREDICTION), dtype="string")
    columns[SCORE] = champion_out.pop(SCORE).astype("float64")
    if task == "binary":
        columns["decision"] = columns[SCORE] >= threshold
    columns.update(champion_out)  # a multiclass model's probability per class
    columns["challenger_version"] = pd.array([int(challenger) if challenger_out is not None else None] * n,
                                             dtype="Int64")
    if task == "multiclass":
        columns["challenger_prediction"] = pd.array(
            challenger_out["challenger_prediction"] if challenger_out is not None else [None] * n, dtype="string")
    columns["challenger_score"] = pd.array(challenger_out["challenger_score"] if challenger_out is not None
                                           else [None] * n, dtype="Float64")
    return pd.DataFrame(columns)


def summarize(champion_scores: Any, challenger_scores: Any, *, threshold: float | None, champion: str,
              challenger: str | None, model_name: str = "", task: str = "binary") -> dict[str, Any]:
    """The day's scoring summary, and the champion-vs-challenger comparison when one shadowed.

    ``champion_scores`` / ``challenger_scores`` are the task's :func:`output_column` values: scores
    (binary), classes (multiclass) or values (regression). Binary: decisions at ``threshold``, agreement
    on the decision; multiclass: rows per class, agreement on the class; regression: mean values, mean
    absolute difference. Scores and values are also compared by their KS statistic.
    """
    import numpy as np

    n = len(champion_scores)
    shadowed = bool(challenger is not None and challenger_scores is not None and len(challenger_scores) == n and n)
    if task == "binary":
        return _binary_summary(champion_scores, challenger_scores, threshold=float(threshold or 0.0),
                               champion=champion, challenger=challenger, model_name=model_name, shadowed=shadowed)
    summary: dict[str, Any] = {"rows": n, "task": task, "champion_version": champion,
                               "challenger_version": challenger if shadowed else None,
                               "agreement_rate": None, "mean_abs_score_diff": None, "ks_statistic": None}
    if task == "multiclass":
        summary["class_counts"] = _counts(champion_scores)
        summary["challenger_class_counts"] = _counts(challenger_scores) if shadowed else None
        if shadowed:
            summary["agreement_rate"] = float(np.mean(np.asarray(challenger_scores, dtype=object)
                                                      == np.asarray(champion_scores, dtype=object)))
        headline = f"{len(summary['class_counts'])} classes predicted"
    else:
        champion_scores = np.asarray(champion_scores, dtype=float)
        summary["mean_champion_score"] = float(champion_scores.mean()) if n else None
        summary["mean_challenger_score"] = None
        if shadowed:
            challenger_scores = np.asarray(challenger_scores, dtype=float)
            summary.update(mean_challenger_score=float(challenger_scores.mean()),
                           mean_abs_score_diff=float(np.abs(challenger_scores - champion_scores).mean()),
                           ks_statistic=ks_statistic(champion_scores, challenger_scores))
        headline = f"mean prediction {summary['mean_champion_score']}"
    shadow = ""
    if shadowed:
        shadow = (f"; shadow v{challenger} agrees on {summary['agreement_rate']:.1%}" if task == "multiclass" else
                  f"; shadow v{challenger} differs by {summary['mean_abs_score_diff']:.4g} on average, "
                  f"KS {summary['ks_statistic']:.3f}")
    log.info("scored %d rows with %s v%s: %s%s", n, model_name, champion, headline, shadow)
    return summary


def _counts(values: Any) -> dict[str, int]:
    import pandas as pd

    return {str(k): int(v) for k, v in pd.Series(values, dtype=object).value_counts().sort_index().items()}


def _binary_summary(champion_scores: Any, challenger_scores: Any, *, threshold: float, champion: str,
                    challenger: str | None, model_name: str, shadowed: bool) -> dict[str, Any]:
    """Alert counts at ``threshold``, and agreement on the decision when a challenger shadowed."""
    import numpy as np

    n = len(champion_scores)
    decisions = champion_scores >= threshold
    summary: dict[str, Any] = {
        "rows": n,
        "alerts": int(decisions.sum()),
        "alert_rate": float(decisions.mean()) if n else 0.0,
        "threshold": float(threshold),
        "champion_version": champion,
        "challenger_version": challenger if shadowed else None,
        "mean_champion_score": float(champion_scores.mean()) if n else None,
        "challenger_alerts": None,
        "agreement_rate": None,
        "mean_abs_score_diff": None,
        "ks_statistic": None,
    }
    if shadowed:
        challenger_decisions = challenger_scores >= threshold
        summary.update(
            challenger_alerts=int(challenger_decisions.sum()),
            agreement_rate=float((challenger_decisions == decisions).mean()),
            mean_abs_score_diff=float(np.abs(challenger_scores - champion_scores).mean()),
            ks_statistic=ks_statistic(champion_scores, challenger_scores),
        )
    log.info(
        "scored %d rows with %s v%s: %d alerts%s", n, model_name, champion, summary["alerts"],
        "" if not shadowed else
        f"; shadow v{challenger} agrees on {summary['agreement_rate']:.1%}, KS {summary['ks_statistic']:.3f}",
    )
    return summary
