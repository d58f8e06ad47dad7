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
    random sample of that many rows (fixed seed, so a retried task reproduces the same verdict). The
    current day's sample is a *bottom-k* sample (see "A day in shards" below), the reference's a
    ``DataFrame.sample``.
    A distance is an *estimate of a population quantity*, not a p-value: it does not shrink towards
    "significant" as rows grow, and a uniform sample of n rows estimates it with an error of order
    1/sqrt(n). At the default 50,000 rows that error is about 0.005 reference standard deviations for
    the Wasserstein distance, and the Jensen-Shannon noise floor of k categories is about
    sqrt((k-1)/(4n)) (0.007 for k=12), both an order of magnitude below the default threshold of 0.1.
    A column can therefore only flip when its true distance lies within about 0.01 of the threshold,
    i.e. when it is borderline on the full data as well. (Corollary: keep high-cardinality columns
    such as ids out of the drift features; with k=1,000 the floor at 50,000 rows is 0.07.)
    Missing-value shares, new categories, means and category shares of the drifted columns'
    reference-vs-current summaries are cheap exact counts, so they always use every row; the current
    day's quantiles (p10/p50/p90) come from its sample when the day has more than ``sample_rows`` rows
    (exact otherwise: the sample is then the whole day). Performance metrics in the verdict are
    computed on every labelled row (with scikit-learn, like the training evaluation) and only the
    Evidently classification widgets in the HTML report use the sample.

A day in shards (mergeable statistics of the current day)
    The current day is never needed whole: :func:`current_statistics` turns any slice of its rows (a
    Parquet row group, a shard of a large day) into small *statistics* -- rows; per column the missing
    count, a numeric column's exact sum (an integer times a power of two, so adding shards in any order
    gives the same bits), a categorical column's exact value counts; the binary score's rows at or
    above the alert threshold -- and a *bottom-k sample*: every row gets a pseudo-random key, a keyed
    hash of (seed, record id), and the ``sample_rows`` rows with the smallest keys are kept (ties broken
    by the row's position in the day). :func:`merge_statistics` adds the counts and keeps the smallest
    ``sample_rows`` keys of all parts, which is a uniform sample without replacement of the whole day
    and the same rows however the day was split. :func:`monitor_day` reads only merged statistics (a
    ``DataFrame`` given as ``current`` is one part), so a day monitored in shards gets the verdict and
    report of the day monitored at once. Everything but the sample is JSON; the sample is a small frame
    (numbers as float64, categories as strings) that stages as Parquet.

Per task (``model.task``)
    The prediction whose drift is measured is the score (a binary model's probability, a regression's
    value; Wasserstein) or a multiclass model's predicted class (Jensen-Shannon). Performance is
    measured with the task's metrics (``domain/metrics.py``) and shown with Evidently's matching preset:
    ``ClassificationQuality`` of a binary or a multiclass classification, ``RegressionQuality`` of a
    regression. A performance alert is a crossed limit: ``monitoring.performance_limits`` (a floor for
    a higher-is-better metric, a ceiling for a lower-is-better one; default the promotion guardrails on
    monitored metrics) or, binary, ``monitoring.min_roc_auc`` (default the ``roc_auc`` guardrail).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_provider.config.tasks import MONITORED_METRICS
from mlops_provider.domain.metrics import (
    as_classes,
    bound_kind,
    json_number,
    monitored_name,
    performance_metrics,
)
from mlops_provider.domain.scoring import PROBA_PREFIX, output_column, proba_columns

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


def _summary(kind: str, reference: pd.Series, current: _Current, col: str) -> dict[str, Any]:
    """Reference-vs-current summary a human can read in an alert (counts and means of all rows; the
    current quantiles of its sample, see the module's docstring)."""
    if kind == "numerical":
        return {"kind": kind, "reference": _numeric_summary(reference), "current": current.numeric_summary(col)}
    ref, cur = _category_shares(reference), current.category_shares(col)
    # The categories whose share moved most explain a categorical drift best (ties by value: deterministic).
    moved = sorted(set(ref) | set(cur), key=lambda c: (-abs(cur.get(c, 0.0) - ref.get(c, 0.0)), c))
    top = [{"value": c, "reference": json_number(ref.get(c, 0.0), 4), "current": json_number(cur.get(c, 0.0), 4)}
           for c in moved[:TOP_CATEGORIES]]
    return {"kind": kind, "categories": top}


def _data_quality(reference: pd.DataFrame, current: _Current, kinds: dict[str, str]) -> dict[str, Any]:
    """Missing-value shares and categories never seen in the reference, over every row."""
    missing, missing_ref, new_categories, new_category_rows = {}, {}, {}, {}
    for col, kind in kinds.items():
        missing[col] = json_number(current.missing_share(col), 6)
        if col in reference:
            missing_ref[col] = json_number(reference[col].isna().mean() if len(reference) else 0.0, 6)
        if kind == "categorical" and col in reference:
            seen = set(_category_counts(reference[col]).index)
            counts = current.category_counts(col)  # in value order: equal counts list by value
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


# -- the current day's statistics: computed per part of the day, merged exactly --------------------
SAMPLE_KEY, SAMPLE_ROW = "_sample_key", "_sample_row"


def _hash_key(seed: int) -> str:
    """The 16-character key of pandas' keyed string hash (SipHash) for ``seed``."""
    return format(int(seed) % 2**64, "016x")


def _exact_sum(values: Any) -> list[int]:
    """The exact sum of finite float64 ``values`` as ``[numerator, exponent]`` (``numerator * 2**exponent``).

    Every float64 is an integer of at most 53 bits times a power of two; the integers are added exactly
    per exponent (in two 26/27-bit halves, so int64 cannot overflow below 2**36 values) and then as
    Python integers. Sums of parts therefore add up to the same bits in any order and any split.
    """
    import numpy as np

    if not len(values):
        return [0, 0]
    mantissa, exponent = np.frexp(values)
    ints = (mantissa * 2.0**53).astype(np.int64)
    exponent = exponent.astype(np.int64) - 53
    order = np.argsort(exponent, kind="stable")
    ints, exponent = ints[order], exponent[order]
    starts = np.flatnonzero(np.r_[True, exponent[1:] != exponent[:-1]])
    high = np.add.reduceat(ints >> 26, starts)
    low = np.add.reduceat(ints & ((1 << 26) - 1), starts)
    lowest = int(exponent[0])
    total = sum(((int(h) << 26) + int(lo)) << (int(e) - lowest)
                for h, lo, e in zip(high, low, exponent[starts], strict=True))
    return _canonical_sum(total, lowest)


def _canonical_sum(numerator: int, exponent: int) -> list[int]:
    """``[numerator, exponent]`` with an odd numerator (``[0, 0]`` for zero): one spelling per value."""
    if not numerator:
        return [0, 0]
    zeros = (numerator & -numerator).bit_length() - 1
    return [numerator >> zeros, exponent + zeros]


def _add_sums(a: list[int], b: list[int]) -> list[int]:
    lowest = min(a[1], b[1])
    return _canonical_sum((a[0] << (a[1] - lowest)) + (b[0] << (b[1] - lowest)), lowest)


def _as_numbers(series: pd.Series) -> Any:
    """A numeric column as a float64 array with NaN for missing (nullable dtypes and unparsable values included)."""
    import numpy as np
    import pandas as pd

    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "fiu":
        return series.to_numpy(dtype="float64")
    values = pd.to_numeric(series, errors="coerce").astype("Float64")
    return values.to_numpy(dtype="float64", na_value=np.nan)


def _sample_keys(project: ProjectConfig, frame: pd.DataFrame, positions: Any, seed: int) -> Any:
    """Each row's sample key: a keyed hash (SipHash, key from ``seed``) of its record id as a string.

    Record ids read as strings (what the monitor stage passes) are hashed as they are, a missing one as
    ``"None"``; other ids as their ``str``; without an id column, the row positions.
    """
    import numpy as np
    import pandas as pd

    ids = frame[project.record_id] if project.record_id in frame.columns else pd.Series(positions)
    ids = ids.reset_index(drop=True)

    def hashed(values: pd.Series) -> Any:
        return pd.util.hash_pandas_object(values, index=False, hash_key=_hash_key(seed),
                                          categorize=False).to_numpy(dtype=np.uint64)

    if ids.dtype == object:
        ids = ids.where(ids.notna(), "None")
        try:
            return hashed(ids)
        except TypeError:  # not only strings: their str, as below (a string's str is itself)
            pass
    return hashed(ids.astype(str))


def _statistic_kinds(project: ProjectConfig, frame: pd.DataFrame, columns: list[str],
                     score_column: str) -> dict[str, str]:
    """The kind of each column statistics are kept of: the score's by the task, the others as for drift."""
    kinds = _column_kinds(project, frame, [c for c in columns if c != score_column])
    if score_column in columns:
        kinds[score_column] = "categorical" if project.task == "multiclass" else "numerical"
    return kinds


def current_statistics(project: ProjectConfig, frame: pd.DataFrame, *, columns: list[str], seed: int,
                       start_row: int = 0, score_column: str | None = None) -> dict[str, Any]:
    """Mergeable statistics of some rows of the current day (a row group, a shard, the whole day).

    ``columns`` are the monitored columns (those absent from ``frame`` are left out: the checks name
    them); ``start_row`` is the position of the frame's first row in the day (ties of the sample key
    are broken by it); the sample key hashes ``project.record_id`` (the position when the frame has no
    such column) with ``seed``. Returns a dict that is JSON but for ``"sample"`` (a frame of at most
    ``monitoring.sample_rows`` rows: the columns, numbers as float64 and categories as strings, plus
    the key and the row position), see :func:`merge_statistics`.
    """
    import numpy as np
    import pandas as pd

    settings = _Settings.of(project)
    score_column = score_column or output_column(settings.task)
    present = [c for c in dict.fromkeys(columns) if c in frame.columns]
    kinds = _statistic_kinds(project, frame, present, score_column)
    n = len(frame)
    positions = np.arange(start_row, start_row + n, dtype=np.int64)
    keys = _sample_keys(project, frame, positions, seed)
    keep = np.lexsort((positions, keys))[:settings.sample_rows]
    stats: dict[str, dict[str, Any]] = {}
    sample = pd.DataFrame(index=pd.RangeIndex(len(keep)))
    for col in present:
        series = frame[col].reset_index(drop=True)
        entry: dict[str, Any] = {"kind": kinds[col], "missing": int(series.isna().sum())}
        if kinds[col] == "numerical":
            values = _as_numbers(series)
            finite = np.isfinite(values)
            entry.update(count=int((~np.isnan(values)).sum()), sum=_exact_sum(values[finite]),
                         infinite=[int((values == np.inf).sum()), int((values == -np.inf).sum())])
            if col == score_column and settings.alert_threshold is not None:
                entry["at_or_above_alert_threshold"] = int((values >= settings.alert_threshold).sum())
            sample[col] = values[keep]
        else:
            entry["categories"] = {str(k): int(v) for k, v in sorted(_category_counts(series).items())}
            sample[col] = _as_category_strings(series.iloc[keep].reset_index(drop=True))
        stats[col] = entry
    sample[SAMPLE_KEY], sample[SAMPLE_ROW] = keys[keep], positions[keep]
    return {"rows": n, "seed": int(seed), "sample_rows": settings.sample_rows, "score_column": score_column,
            "columns": stats, "sample": sample}


def _merge_column(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = {"kind": a["kind"], "missing": a["missing"] + b["missing"]}
    if a["kind"] == "numerical":
        out.update(count=a["count"] + b["count"], sum=_add_sums(a["sum"], b["sum"]),
                   infinite=[a["infinite"][0] + b["infinite"][0], a["infinite"][1] + b["infinite"][1]])
        if "at_or_above_alert_threshold" in a:
            out["at_or_above_alert_threshold"] = a["at_or_above_alert_threshold"] + b["at_or_above_alert_threshold"]
    else:
        counts = dict(a["categories"])
        for value, count in b["categories"].items():
            counts[value] = counts.get(value, 0) + count
        out["categories"] = dict(sorted(counts.items()))
    return out


def merge_statistics(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The statistics of the union of the rows of ``parts`` (of :func:`current_statistics`), exactly.

    Counts and sums add up; the sample keeps the ``sample_rows`` smallest keys of all parts, ties by row
    position: the result does not depend on how the day was split nor on the order of ``parts``.
    """
    import numpy as np
    import pandas as pd

    if not parts:
        raise ValueError("no statistics to merge")
    first = parts[0]
    for part in parts[1:]:
        for what in ("seed", "sample_rows", "score_column"):
            if part[what] != first[what]:
                raise ValueError(f"statistics of different runs cannot be merged: {what} "
                                 f"{first[what]!r} != {part[what]!r}")
        kinds = {c: e["kind"] for c, e in part["columns"].items()}
        if kinds != {c: e["kind"] for c, e in first["columns"].items()}:
            raise ValueError(f"statistics of different columns cannot be merged: {sorted(kinds.items())} != "
                             f"{sorted((c, e['kind']) for c, e in first['columns'].items())}")
    columns = dict(first["columns"])
    for part in parts[1:]:
        columns = {c: _merge_column(columns[c], part["columns"][c]) for c in columns}
    samples = [p["sample"] for p in parts if len(p["sample"])] or [first["sample"]]
    sample = pd.concat(samples, ignore_index=True) if len(samples) > 1 else samples[0]
    keep = np.lexsort((sample[SAMPLE_ROW].to_numpy(), sample[SAMPLE_KEY].to_numpy()))[:first["sample_rows"]]
    return {**{k: first[k] for k in ("seed", "sample_rows", "score_column")},
            "rows": sum(p["rows"] for p in parts), "columns": columns,
            "sample": sample.iloc[keep].reset_index(drop=True)}


class _Current:
    """The current day as the monitoring run reads it: merged statistics of every row and their sample."""

    def __init__(self, statistics: dict[str, Any]):
        self.statistics = statistics
        self.rows: int = int(statistics["rows"])
        self.stats: dict[str, dict[str, Any]] = statistics["columns"]
        self.columns = list(self.stats)
        self.sample = statistics["sample"].drop(columns=[SAMPLE_KEY, SAMPLE_ROW])
        self.kinds = {c: e["kind"] for c, e in self.stats.items()}

    def __len__(self) -> int:
        return self.rows

    def missing_share(self, col: str) -> float:
        return self.stats[col]["missing"] / self.rows if self.rows else 0.0

    def all_missing(self, col: str) -> bool:
        return col not in self.stats or self.stats[col]["missing"] == self.rows

    def category_counts(self, col: str) -> pd.Series:
        import pandas as pd

        counts = self.stats[col]["categories"]
        return pd.Series(list(counts.values()), index=pd.Index(list(counts), dtype=object), dtype="int64")

    def category_shares(self, col: str) -> dict[str, float]:
        counts = self.stats[col]["categories"]
        total = sum(counts.values())
        return {k: float(v) / total for k, v in counts.items()} if total else {}

    def mean(self, col: str) -> float | None:
        """The exact mean of the column's values (``None`` without any; infinities as pandas gives them)."""
        from fractions import Fraction

        entry = self.stats[col]
        if not entry["count"]:
            return None
        positive, negative = entry["infinite"]
        if positive or negative:
            return math.nan if positive and negative else (math.inf if positive else -math.inf)
        numerator, exponent = entry["sum"]
        total = Fraction(numerator * 2**exponent) if exponent >= 0 else Fraction(numerator, 2**-exponent)
        return float(total / entry["count"])

    def numeric_summary(self, col: str) -> dict[str, Any]:
        """Exact mean; p10/p50/p90 of the sample (of every row when the day fits in the sample)."""
        values = self.sample[col].dropna()
        q = values.quantile([0.1, 0.5, 0.9]) if len(values) else {0.1: None, 0.5: None, 0.9: None}
        return {"mean": json_number(self.mean(col), 4), "p10": json_number(q[0.1], 4),
                "p50": json_number(q[0.5], 4), "p90": json_number(q[0.9], 4)}

    def alert_rate(self, col: str) -> float:
        return self.stats[col]["at_or_above_alert_threshold"] / self.rows if self.rows else 0.0


# -- the monitoring run ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Settings:
    """The project's monitoring thresholds and sample size (the schema fills their defaults)."""

    column_threshold: float
    share_threshold: float
    prediction_threshold: float
    sample_rows: int
    min_roc_auc: Any
    alert_threshold: float | None
    task: str = "binary"
    limits: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, project: ProjectConfig) -> _Settings:
        """The settings of ``project``; the ROC AUC floor falls back to the promotion guardrail."""
        mon, task = project.monitoring, project.task
        guardrails = project.promotion.get("guardrails") or {}
        min_roc_auc = mon.get("min_roc_auc", guardrails.get("roc_auc")) if task == "binary" else None
        limits = {} if min_roc_auc is None else {"roc_auc": float(min_roc_auc)}
        explicit = mon.get("performance_limits")
        if explicit is None and task != "binary":
            explicit = {k: v for k, v in guardrails.items() if k in MONITORED_METRICS[task]}
        limits.update({k: float(v) for k, v in (explicit or {}).items()})
        return cls(
            column_threshold=float(mon["column_drift_threshold"]),
            share_threshold=float(mon["drift_share_threshold"]),
            prediction_threshold=float(mon["prediction_drift_threshold"]),
            sample_rows=int(mon["sample_rows"]),
            min_roc_auc=min_roc_auc,
            alert_threshold=float(project.model["alert_threshold"]) if task == "binary" else None,
            task=task,
            limits=limits,
        )


@dataclass(frozen=True, eq=False)
class _Inputs:
    """One monitoring run's checked inputs: what every step of :func:`monitor_day` reads."""

    project: ProjectConfig
    settings: _Settings
    reference: pd.DataFrame
    current: _Current
    features: list[str]
    kinds: dict[str, str]
    score_column: str
    has_score: bool
    seed: int
    score_kind: str = "numerical"

    @property
    def sampled(self) -> bool:
        rows = self.settings.sample_rows
        return len(self.reference) > rows or self.current.rows > rows


def monitor_day(
    project: ProjectConfig,
    *,
    reference: pd.DataFrame,
    current: pd.DataFrame | None = None,
    feature_columns: list[str],
    score_column: str | None = None,
    label_column: str | None = None,
    labelled: pd.DataFrame | None = None,
    seed: int = 0,
    reference_metrics: dict[str, Any] | None = None,
    statistics: dict[str, Any] | None = None,
) -> MonitoringResult:
    """Data drift, prediction drift, data quality and (given labels) performance of one day.

    ``reference`` is the champion's training data (with ``score_column`` holding the champion's
    predictions on it -- by default the task's :func:`~mlops_provider.domain.scoring.output_column`, a
    multiclass model's probability columns beside it -- and the label when reference performance is
    wanted); ``current`` is the day's scored records, or ``statistics`` their merged
    :func:`current_statistics` (computed with the same ``seed`` over the features and the score: a day
    streamed or monitored in shards; a ``current`` frame is one part of them); ``labelled`` is
    current-period rows joined with their delayed labels.
    ``reference_metrics`` (for example the champion's holdout metrics from MLflow) replaces the
    performance computed on the reference rows when given: in-sample scores flatter the champion.
    """
    settings = _Settings.of(project)
    label_column = label_column or project.label_column
    score_column = score_column or output_column(settings.task)
    features = list(dict.fromkeys(feature_columns))
    if (current is None) == (statistics is None):
        raise ValueError(f"project '{project.name}': monitor the current day from either its rows or its statistics")
    if statistics is None:
        statistics = merge_statistics([current_statistics(project, current, columns=[*features, score_column],
                                                          seed=seed, score_column=score_column)])
    elif statistics["seed"] != seed or statistics["score_column"] != score_column:
        raise ValueError(f"project '{project.name}': statistics of seed {statistics['seed']} and score "
                         f"'{statistics['score_column']}' given for seed {seed} and score '{score_column}'")
    today = _Current(statistics)
    _check_inputs(project, reference, today, features)
    run = _Inputs(
        project=project, settings=settings, reference=reference, current=today,
        features=features, kinds={c: today.kinds[c] for c in features}, score_column=score_column,
        has_score=_has_score(reference, today, score_column), seed=seed,
        score_kind="categorical" if settings.task == "multiclass" else "numerical",
    )
    _log_start(run)
    drift_snapshot, values, empty = _data_drift_report(run)
    drifted = _drifted_columns(run, values, empty)
    prediction_drift = _prediction_drift(run, values)
    data_quality = _data_quality(reference, today, _quality_kinds(run))
    snapshots = [drift_snapshot]
    performance = None
    if labelled is not None:
        performance, perf_snapshot = _performance(run, labelled=labelled, label_column=label_column,
                                                  reference_metrics=reference_metrics)
        if perf_snapshot is not None:
            snapshots.append(perf_snapshot)
    verdict = _verdict(run, drifted=drifted, values=values, prediction_drift=prediction_drift,
                       data_quality=data_quality, performance=performance, labelled=labelled)
    log.info(
        "verdict for %s: %s (%d/%d features drifted, prediction drift %s, performance alert %s)",
        project.name, verdict["kind"], len(drifted), len(features), prediction_drift["drift_detected"],
        verdict["performance_alert"],
    )
    return MonitoringResult(project=project.name, verdict=verdict, snapshot=_merge_snapshots(snapshots))


# -- inputs ----------------------------------------------------------------------------------------
def _check_inputs(project: ProjectConfig, reference: pd.DataFrame, current: _Current,
                  features: list[str]) -> None:
    """Refuse, with the reason, inputs that no verdict can be computed from."""
    if not features:
        raise ValueError(f"project '{project.name}': no feature columns to monitor")
    missing = [c for c in features if c not in current.columns or c not in reference.columns]
    if missing:
        raise ValueError(
            f"project '{project.name}': feature columns {missing} are missing from the reference "
            f"({len(reference.columns)} columns) or the current data ({len(current.columns)} monitored columns)"
        )
    if not current.rows or reference.empty:
        raise ValueError(
            f"project '{project.name}': cannot monitor with {len(reference)} reference rows and "
            f"{current.rows} current rows"
        )


def _has_score(reference: pd.DataFrame, current: _Current, score_column: str) -> bool:
    """Whether both sides carry model scores, i.e. whether prediction drift can be measured."""
    return bool(score_column in current.columns and score_column in reference.columns
                and not current.all_missing(score_column) and reference[score_column].notna().any())


def _log_start(run: _Inputs) -> None:
    """Log the sizes the run works on, so a slow day can be explained from the task log."""
    rows = run.settings.sample_rows
    log.info(
        "monitoring %s: %d reference rows, %d current rows, %d features%s",
        run.project.name, len(run.reference), run.current.rows, len(run.features),
        f" (uniform samples of {rows} rows, seed {run.seed})" if run.sampled else "",
    )


def _evidently_frame(df: pd.DataFrame, columns: list[str], categorical: set[str]) -> pd.DataFrame:
    """The columns Evidently compares: categorical values as strings, numbers as float64.

    Pandas' nullable dtypes (``Int64``, ``Float64``, ``boolean``: what Parquet gives back for an integer
    column with nulls) reach numpy as object arrays, on which Evidently's statistics crash.
    """
    df = df[columns].copy()
    for col in columns:
        if col in categorical:
            df[col] = _as_category_strings(df[col])
        elif str(df[col].dtype) in ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
                                    "Float32", "Float64", "boolean"):
            df[col] = df[col].astype("Float64").to_numpy(dtype="float64", na_value=float("nan"))
    return df


# -- data drift ------------------------------------------------------------------------------------
def _empty_columns(run: _Inputs, cur_sample: pd.DataFrame, ref_sample: pd.DataFrame) -> dict[str, str]:
    """Features without any value on one side: column -> the side ("current" or "reference") it is empty on."""
    # A column without any value on one side has no distribution to compare (Evidently refuses it);
    # a feature that vanished (or appeared) entirely is drifted by definition.
    return {c: ("current" if cur_sample[c].isna().all() else "reference") for c in run.features
            if cur_sample[c].isna().all() or ref_sample[c].isna().all()}


def _drift_metrics(run: _Inputs, comparable: list[str]) -> list[Any]:
    """Evidently metrics of the data-drift report: the dataset preset, plus the score's drift when scored."""
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    s = run.settings
    metrics: list[Any] = [
        DataDriftPreset(
            columns=comparable,
            drift_share=s.share_threshold,
            num_method=NUM_METHOD,
            cat_method=CAT_METHOD,
            threshold=s.column_threshold,
        )
    ]
    if run.has_score:
        method = CAT_METHOD if run.score_kind == "categorical" else NUM_METHOD
        metrics.append(ValueDrift(column=run.score_column, method=method, threshold=s.prediction_threshold))
    return metrics


def _report_metadata(run: _Inputs) -> dict[str, str]:
    """What the saved report says about its inputs (Evidently metadata values are strings)."""
    return {
        "project": run.project.name,
        "model": run.project.model_name,
        "reference_rows": str(len(run.reference)),
        "current_rows": str(run.current.rows),
        "sample_rows": str(run.settings.sample_rows if run.sampled else "none"),
    }


def _data_drift_report(run: _Inputs) -> tuple[Snapshot, dict[str, dict[str, Any]], dict[str, str]]:
    """The Evidently data-drift report on the (sampled) day, its per-column results and the empty features."""
    from evidently import DataDefinition, Dataset, Report

    project, score_column = run.project, run.score_column
    cur_sample = run.current.sample  # bottom-k: the same rows however the day was split
    ref_sample = _sample(run.reference, run.settings.sample_rows, run.seed)
    empty = _empty_columns(run, cur_sample, ref_sample)
    comparable = [c for c in run.features if c not in empty]
    numerical = [c for c in comparable if run.kinds[c] == "numerical"]
    categorical = [c for c in comparable if run.kinds[c] == "categorical"]
    drift_columns = comparable + ([score_column] if run.has_score else [])
    if not drift_columns:
        raise ValueError(
            f"project '{project.name}': none of the features {run.features} nor '{score_column}' has a value "
            "on both sides; nothing to compare"
        )
    scored = [score_column] if run.has_score else []
    score_categorical = scored if run.score_kind == "categorical" else []
    definition = DataDefinition(
        numerical_columns=numerical + [c for c in scored if c not in score_categorical],
        categorical_columns=categorical + score_categorical,
    )
    as_categories = set(categorical) | set(score_categorical)
    report = Report(_drift_metrics(run, comparable), metadata=_report_metadata(run), tags=[project.name, "drift"])
    snapshot = report.run(
        Dataset.from_pandas(_evidently_frame(cur_sample, drift_columns, as_categories), data_definition=definition),
        Dataset.from_pandas(_evidently_frame(ref_sample, drift_columns, as_categories), data_definition=definition),
        name=f"{project.name} drift",
    )
    values = _drift_values(snapshot)
    log.info("drift computed for %d columns", len(values))
    return snapshot, values, empty


def _drifted_columns(run: _Inputs, values: dict[str, dict[str, Any]], empty: dict[str, str]) -> list[dict[str, Any]]:
    """The drifted features, each with its statistic and a readable summary, largest distance first."""
    drifted = []
    for col in run.features:
        if col in empty:
            if run.current.all_missing(col) != run.reference[col].isna().all():
                drifted.append(_all_missing_drift(run, col, empty[col]))
            continue
        result = values[col]
        if result["score"] is not None and result["score"] >= result["threshold"]:
            drifted.append({
                "column": col,
                "type": run.kinds[col],
                "stattest": result["stattest"],
                "stattest_name": STATTEST_NAMES.get(result["stattest"], result["stattest"]),
                "score": json_number(result["score"], 4),
                "threshold": result["threshold"],
                "summary": _summary(run.kinds[col], run.reference[col], run.current, col),
            })
    # A feature missing entirely has no distance but is the most drifted of all.
    drifted.sort(key=lambda d: -(math.inf if d["score"] is None else d["score"]))
    return drifted


def _all_missing_drift(run: _Inputs, col: str, side: str) -> dict[str, Any]:
    """The drift entry of a feature whose values are all missing on one ``side`` only."""
    return {
        "column": col, "type": run.kinds[col], "stattest": "all_missing",
        "stattest_name": f"all values missing in the {side} data", "score": None,
        "threshold": run.settings.column_threshold,
        "summary": _summary(run.kinds[col], run.reference[col], run.current, col),
    }


# -- prediction drift and data quality -------------------------------------------------------------
def _prediction_drift(run: _Inputs, values: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Drift of the model's score and its alert rate on both sides, or why it was not measured."""
    score_column, reference, current = run.score_column, run.reference, run.current
    if not run.has_score:
        absent_today = current.all_missing(score_column)
        where = "current data" if absent_today else "reference"
        return {
            "column": score_column,
            "drift_detected": False,
            "skipped": f"column '{score_column}' is missing or empty in the {where}",
        }
    threshold, alert_threshold = run.settings.prediction_threshold, run.settings.alert_threshold
    result = values[score_column]
    summary = _summary(run.score_kind, reference[score_column], current, score_column)
    out = {
        "column": score_column,
        "stattest": result["stattest"],
        "stattest_name": STATTEST_NAMES.get(result["stattest"], result["stattest"]),
        "score": json_number(result["score"], 4),
        "threshold": threshold,
        "drift_detected": result["score"] is not None and result["score"] >= threshold,
    }
    if run.score_kind == "categorical":  # a multiclass model's classes: the shares that moved most
        return {**out, "categories": summary["categories"]}
    out.update(reference=summary["reference"], current=summary["current"])
    if alert_threshold is not None:  # a binary model's decisions
        out.update(alert_rate_reference=json_number((reference[score_column] >= alert_threshold).mean(), 6),
                   alert_rate_current=json_number(current.alert_rate(score_column), 6))
    return out


def _quality_kinds(run: _Inputs) -> dict[str, str]:
    """Columns whose data quality is reported: the features, and the score when the day has one."""
    kinds = dict(run.kinds)
    if run.score_column in run.current.columns:
        kinds[run.score_column] = run.score_kind
    return kinds


# -- the verdict -----------------------------------------------------------------------------------
def _performance_alert(performance: dict[str, Any] | None) -> bool:
    """Whether a performance limit was crossed (never without labels or without a limit)."""
    return bool(performance is not None and any(limit["breached"] for limit in performance["limits"].values()))


def _limits(settings: _Settings, measured: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each limit (under monitoring's name of its metric): its bound, floor or ceiling, the value, whether crossed.

    A value that could not be measured (no labels of both classes, a constant target) crosses nothing.
    """
    out = {}
    for metric, bound in sorted(settings.limits.items()):
        name = monitored_name(settings.task, metric)
        value, kind = measured.get(name), bound_kind(metric)
        breached = value is not None and (value < bound if kind == "floor" else value > bound)
        out[name] = {"metric": metric, "bound": bound, "kind": kind, "value": value, "breached": breached}
    return out


def _verdict(
    run: _Inputs,
    *,
    drifted: list[dict[str, Any]],
    values: dict[str, dict[str, Any]],
    prediction_drift: dict[str, Any],
    data_quality: dict[str, Any],
    performance: dict[str, Any] | None,
    labelled: pd.DataFrame | None,
) -> dict[str, Any]:
    """The JSON-able verdict that alerting and branching read (its keys and order are a contract)."""
    s, features = run.settings, run.features
    share_drifted = len(drifted) / len(features) if features else 0.0
    drift_detected = bool(features) and share_drifted >= s.share_threshold
    performance_alert = _performance_alert(performance)
    any_drift = drift_detected or prediction_drift["drift_detected"]
    kind = {(False, False): "ok", (True, False): "drift", (False, True): "performance",
            (True, True): "drift+performance"}[(any_drift, performance_alert)]
    return {
        "kind": kind,
        "drift_detected": drift_detected,
        "share_drifted": json_number(share_drifted, 4),
        "drift_share_threshold": s.share_threshold,
        "column_drift_threshold": s.column_threshold,
        "n_features": len(features),
        "n_drifted": len(drifted),
        "drifted_columns": drifted,
        "column_scores": {c: values[c]["score"] if c in values else None for c in features},
        "prediction_drift": prediction_drift,
        "data_quality": data_quality,
        "performance": performance,
        "performance_alert": performance_alert,
        "rows": {
            "reference": int(len(run.reference)),
            "current": run.current.rows,
            "labelled": None if labelled is None else int(len(labelled)),
            "sampled_to": s.sample_rows if run.sampled else None,
            "seed": run.seed,
        },
    }


# -- performance -----------------------------------------------------------------------------------
def _performance(
    run: _Inputs,
    *,
    labelled: pd.DataFrame,
    label_column: str,
    reference_metrics: dict[str, Any] | None,
) -> tuple[dict[str, Any], Snapshot | None]:
    """The task's performance and target drift on labelled rows, vs the reference, with its limits."""
    score_column, s = run.score_column, run.settings
    _check_labelled(run.project, labelled, score_column, label_column)
    labelled = labelled.dropna(subset=[label_column, score_column])
    current = _measure(run, labelled, label_column)
    ref_perf = _reference_performance(run, label_column, reference_metrics)
    target_drift, snapshot = None, None
    if len(labelled):
        target_drift, snapshot = _performance_report(run, labelled, label_column, current.get("positive_rate"))
    limits = _limits(s, current)
    if s.task == "binary":
        performance = {
            **current,
            "alert_threshold": s.alert_threshold,
            "min_roc_auc": None if s.min_roc_auc is None else float(s.min_roc_auc),
            "reference": ref_perf,
            "target_drift": target_drift,
        }
        log.info(
            "performance on %d labelled rows: ROC AUC %s (reference %s, minimum %s)",
            current["rows"], current["roc_auc"], (ref_perf or {}).get("roc_auc"), s.min_roc_auc,
        )
    else:
        performance = {**current, "reference": ref_perf, "target_drift": target_drift}
        log.info("performance on %d labelled rows: %s (reference %s, limits %s)", current["rows"],
                 {k: current[k] for k in MONITORED_METRICS[s.task]},
                 {k: (ref_perf or {}).get(k) for k in MONITORED_METRICS[s.task]}, s.limits or "none")
    return {**performance, "task": s.task, "limits": limits}, snapshot


def _measure(run: _Inputs, rows: pd.DataFrame, label_column: str) -> dict[str, Any]:
    """The task's monitoring metrics of ``rows`` (labels and the model's predictions)."""
    task = run.settings.task
    if task == "multiclass":
        probas = proba_columns(rows.columns)
        classes = [c[len(PROBA_PREFIX):] for c in probas]
        return performance_metrics(rows[label_column], rows[probas].to_numpy(dtype=float) if probas else None,
                                   None, task=task, classes=classes, predicted=rows[run.score_column])
    return performance_metrics(rows[label_column], rows[run.score_column], run.settings.alert_threshold, task=task)


def _check_labelled(project: ProjectConfig, labelled: pd.DataFrame, score_column: str, label_column: str) -> None:
    """Refuse labelled data without the score or the label, naming the columns it has."""
    for col in (score_column, label_column):
        if col not in labelled.columns:
            raise ValueError(
                f"project '{project.name}': the labelled data has no column '{col}' "
                f"(columns: {', '.join(map(str, labelled.columns))})"
            )


def _reference_labelled(run: _Inputs, label_column: str) -> bool:
    """Whether the reference carries labels and scores, i.e. reference performance and target drift exist."""
    return label_column in run.reference.columns and run.score_column in run.reference.columns


def _reference_performance(run: _Inputs, label_column: str,
                           reference_metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    """The performance to compare with: the given metrics (rounded), else the reference rows', else none."""
    if reference_metrics is not None:
        return {k: json_number(v, 4) if isinstance(v, (int, float)) else v for k, v in reference_metrics.items()}
    if _reference_labelled(run, label_column):
        return _measure(run, run.reference.dropna(subset=[label_column, run.score_column]), label_column)
    return None


def _labelled_frame(run: _Inputs, df: pd.DataFrame, label_column: str) -> pd.DataFrame:
    """What the performance report reads of labelled rows, sampled like the drift report: the label (an
    integer of a binary model, a class, a value) and the prediction (a multiclass model's class and its
    probabilities, named by their class as Evidently wants them)."""
    task, score = run.settings.task, run.score_column
    probas = proba_columns(df.columns) if task == "multiclass" else []
    df = _sample(df[[score, label_column, *probas]].dropna(subset=[score, label_column]), run.settings.sample_rows,
                 run.seed).copy()
    if task == "binary":
        df = df[[score, label_column]]
        df[label_column] = df[label_column].astype(int)
    elif task == "multiclass":
        df[label_column] = as_classes(df[label_column])
        df[score] = as_classes(df[score])
        df = df.rename(columns={c: c[len(PROBA_PREFIX):] for c in probas})
        df[[c[len(PROBA_PREFIX):] for c in probas]] = df[[c[len(PROBA_PREFIX):] for c in probas]].fillna(0.0)
    else:
        df[label_column] = df[label_column].astype(float)
        df[score] = df[score].astype(float)
    return df


def _quality(run: _Inputs, labelled: pd.DataFrame, label_column: str, n_labels: int) -> tuple[Any, list[Any]]:
    """The task's Evidently data definition of the labelled rows and its quality preset (none when the
    rows cannot be judged: a single class, fewer than two rows; ``n_labels``: distinct labels of all rows)."""
    from evidently import BinaryClassification, DataDefinition, MulticlassClassification, Regression
    from evidently.presets import ClassificationQuality, RegressionQuality

    task, score, s = run.settings.task, run.score_column, run.settings
    if task == "regression":
        judged = n_labels > 1
        return DataDefinition(numerical_columns=[score, label_column],
                              regression=[Regression(target=label_column, prediction=score)] if judged else None), \
            [RegressionQuality(pred_actual_plot=True, error_plot=True, error_distr=True)] if judged else []
    both_classes = n_labels >= 2
    if task == "binary":
        return DataDefinition(
            numerical_columns=[score],
            categorical_columns=[label_column],
            classification=[BinaryClassification(target=label_column, prediction_probas=score, pos_label=1)]
            if both_classes else None,
        ), [ClassificationQuality(probas_threshold=s.alert_threshold, conf_matrix=True)] if both_classes else []
    classes = [c[len(PROBA_PREFIX):] for c in proba_columns(labelled.columns)]
    # Evidently names probability columns by their class; a class named like the label or the prediction
    # column cannot be told apart, so the report then judges the predicted classes only.
    named = classes and not {label_column, score} & set(classes)
    return DataDefinition(
        numerical_columns=classes if named else [],
        categorical_columns=[label_column, score],
        classification=[MulticlassClassification(target=label_column, prediction_labels=score,
                                                  prediction_probas=classes if named else None)]
        if both_classes else None,
    ), [ClassificationQuality(conf_matrix=True)] if both_classes else []


def _performance_report(run: _Inputs, labelled: pd.DataFrame, label_column: str,
                        positive_rate: Any) -> tuple[dict[str, Any] | None, Snapshot | None]:
    """The Evidently target-drift / quality report of the labelled rows, and the target drift it found."""
    from evidently import Dataset, Report
    from evidently.metrics import ValueDrift
    from sklearn.exceptions import UndefinedMetricWarning

    s, project = run.settings, run.project
    current = _labelled_frame(run, labelled, label_column)
    definition, quality = _quality(run, current, label_column, labelled[label_column].nunique())
    metrics: list[Any] = []
    ref_ds = None
    if _reference_labelled(run, label_column):
        method = NUM_METHOD if s.task == "regression" else CAT_METHOD
        metrics.append(ValueDrift(column=label_column, method=method, threshold=s.column_threshold))
        reference = _labelled_frame(run, run.reference, label_column)
        for column in current.columns.difference(reference.columns):  # a class the reference never predicted
            reference[column] = 0.0
        ref_ds = Dataset.from_pandas(reference[list(current.columns)], data_definition=definition)
    metrics += quality
    if not metrics:
        return None, None
    with warnings.catch_warnings():
        # Precision is undefined on a day without any score above the threshold; the verdict
        # reports 0 for it and the daily log should not carry sklearn's warning about it.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        snapshot = Report(metrics, tags=[project.name, "performance"]).run(
            Dataset.from_pandas(current, data_definition=definition), ref_ds, name=f"{project.name} performance",
        )
    if ref_ds is None:
        return None, snapshot
    return _target_drift(run, snapshot, label_column, positive_rate), snapshot


def _target_drift(run: _Inputs, snapshot: Snapshot, label_column: str, positive_rate: Any) -> dict[str, Any]:
    """Drift of the label between reference and labelled rows: both positive rates of a binary label, the
    shares that moved most of a class, the summaries of a value."""
    threshold = run.settings.column_threshold
    drift = _drift_values(snapshot)[label_column]
    out = {
        "column": label_column,
        "stattest": drift["stattest"],
        "stattest_name": STATTEST_NAMES.get(drift["stattest"], drift["stattest"]),
        "score": json_number(drift["score"], 4),
        "threshold": threshold,
        "drift_detected": drift["score"] is not None and drift["score"] >= threshold,
    }
    if run.settings.task == "binary":
        return {**out, "positive_rate_reference": json_number(run.reference[label_column].astype(float).mean(), 6),
                "positive_rate_current": positive_rate}
    return out
