"""Scoring policy: model inputs, champion and shadow-challenger predictions, the day's scoring summary."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mlops_provider.exceptions import MlopsError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)



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
                record_id: str, entity_key: str, threshold: float, model_name: str = "",
                event_timestamp: str = "event_timestamp") -> pd.DataFrame:
    """Predictions of ``frame`` by the pinned champion (and, in shadow, the challenger) of ``versions``.

    A challenger that cannot score (its inputs changed) is logged and left out: shadow scoring informs,
    it must never stop the champion's predictions from being written.
    """
    import numpy as np
    import pandas as pd

    (champion, challenger), (champion_model, challenger_model) = versions, models
    champion_scores = champion_model.predict_proba(model_features(champion_model, frame))[:, 1]
    challenger_scores = None
    if challenger is not None and challenger_model is not None:
        try:
            challenger_scores = challenger_model.predict_proba(model_features(challenger_model, frame))[:, 1]
        except MlopsError as exc:
            log.warning("shadow scoring with %s v%s skipped: %s", model_name, challenger, exc)
    n = len(frame)
    return pd.DataFrame(
        {
            record_id: frame[record_id].to_numpy(),
            entity_key: frame[entity_key].to_numpy(),
            # ``.array`` keeps a tz-aware column as it is; ``to_numpy()`` would build one Timestamp object per row.
            event_timestamp: frame[event_timestamp].array if event_timestamp in frame else pd.NaT,
            "champion_version": np.full(n, int(champion), dtype="int64"),
            "champion_score": champion_scores.astype("float64"),
            "decision": champion_scores >= threshold,
            "challenger_version": pd.array([int(challenger) if challenger_scores is not None else None] * n,
                                           dtype="Int64"),
            "challenger_score": pd.array(challenger_scores if challenger_scores is not None else [None] * n,
                                         dtype="Float64"),
        }
    )


def summarize(champion_scores: Any, challenger_scores: Any, *, threshold: float, champion: str,
              challenger: str | None, model_name: str = "") -> dict[str, Any]:
    """The day's scoring summary: alert counts, and champion-vs-challenger agreement when one shadowed."""
    import numpy as np

    n = len(champion_scores)
    decisions = champion_scores >= threshold
    shadowed = challenger is not None and challenger_scores is not None and len(challenger_scores) == n and n
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
