"""Model registry policy: evaluate, decide, promote, refuse and roll back with MLflow aliases.

Aliases are the only pointers a consumer follows: ``champion`` serves traffic, ``challenger`` is the
newest trained candidate and ``previous_champion`` is where a rollback goes. Every alias change runs
under an exclusive per-model lock and re-reads the aliases inside it, so two promotions never
interleave. The lock is an ``fcntl`` lock file under ``MLOPS_HOME/locks`` (enough for the embedded
default and for all workers of one host); a production deployment with several worker hosts also
routes every promotion / rollback task through an Airflow pool of size 1 (``pool=`` on those tasks).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_provider.config import paths
from mlops_provider.domain.errors import MlopsError, ModelNotFoundError

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from mlops_provider.config.project import ProjectConfig

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"

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

HOLDOUT_ARTIFACT = "holdout/holdout.parquet"
REFERENCE_ARTIFACT = "reference/reference.parquet"

_UNSET: Any = object()
_PENDING_PREVIOUS = "pending_previous_champion"
_DECISION_KEY = "promotion_decision_key"


# -- MLflow plumbing shared by training, scoring and the operators ------------------------------------
def client_for(tracking_uri: str | None = None, registry_uri: str | None = None) -> MlflowClient:
    from mlflow import MlflowClient

    tracking_uri = tracking_uri or paths.mlflow_tracking_uri()
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)


def default_artifact_location(tracking_uri: str, experiment_name: str) -> str | None:
    """Where a new experiment keeps artifacts when nobody configured it.

    A database store without an artifact root would write to ``./mlruns`` of whatever directory the
    worker runs in; the embedded default keeps them under ``MLOPS_HOME`` instead. A tracking server
    picks its own location, so ``None`` is returned for it.
    """
    scheme = tracking_uri.split(":", 1)[0].split("+", 1)[0] if "://" in tracking_uri else "file"
    if scheme in {"sqlite", "postgresql", "mysql", "mssql", "file"}:
        return f"{paths.mlflow_artifact_root().rstrip('/')}/{experiment_name}"
    return None


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str | None = None) -> str:
    """The id of experiment ``name``, created (with ``artifact_location`` when given) if missing."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:
        # Another task created it between our read and our write.
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


@contextmanager
def tracking(tracking_uri: str, registry_uri: str | None = None) -> Iterator[None]:
    """Point MLflow's fluent API at ``tracking_uri`` for the block, then restore exactly what was set before."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    saved_tracking, saved_registry = tracking_utils._tracking_uri, registry_utils._registry_uri
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri or tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved_tracking)
        registry_utils._registry_uri = saved_registry
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def thread_limit() -> Iterator[None]:
    """Cap OpenMP threads of model fitting and scoring (``MLOPS_MODEL_THREADS``, default 1).

    HistGradientBoosting's OpenMP threads stall when a worker's cores are shared with other tasks
    (0.3 s vs 9 s for the same fit, measured on 2 busy cores); raise the cap on dedicated hosts.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(os.environ.get("MLOPS_MODEL_THREADS", "1")), user_api="openmp"):
        yield


def _version(value: Any) -> str | None:
    return None if value is None else str(value)


# -- metrics ------------------------------------------------------------------------------------------
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


def classification_metrics(y_true: Any, scores: Any, threshold: float, *, scoring_seconds: float | None = None) -> dict[str, float]:
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


def timed_scores(model: Any, features: pd.DataFrame) -> tuple[Any, float]:
    """Positive-class probabilities of ``model`` on ``features`` and the seconds it took."""
    start = time.perf_counter()
    scores = model.predict_proba(features)[:, 1]
    return scores, time.perf_counter() - start


def evaluate(
    model_uri: str,
    frame: pd.DataFrame,
    label_column: str,
    threshold: float,
    *,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
) -> dict[str, float]:
    """Metrics of the model at ``model_uri`` (``models:/name/version`` or any MLflow URI) on ``frame``."""
    from mlops_provider.domain import scoring

    if frame.empty or label_column not in frame.columns:
        raise MlopsError(f"cannot evaluate {model_uri}: the frame is empty or has no label column '{label_column}'")
    model = scoring.load_model(model_uri, tracking_uri=tracking_uri, registry_uri=registry_uri)
    features = scoring.model_features(model, frame)
    with thread_limit():
        scores, seconds = timed_scores(model, features)
    metrics = classification_metrics(frame[label_column].to_numpy(), scores, threshold, scoring_seconds=seconds)
    metrics["rows"] = float(len(frame))
    metrics["positives"] = float(frame[label_column].sum())
    return metrics


# -- decision -----------------------------------------------------------------------------------------
@dataclass
class Decision:
    """Outcome of the promotion gate: whether to promote, why (for a log line) and the numbers behind it."""

    promote: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


def _ok(value: Any) -> bool:
    return value is not None and value == value  # NaN is not equal to itself


def decide(
    project: ProjectConfig,
    challenger_metrics: dict[str, float],
    champion_metrics: dict[str, float] | None,
    baseline_metrics: dict[str, float],
) -> Decision:
    """Apply the project's promotion gate to metrics measured on the same holdout rows."""
    promo = project.promotion
    primary = promo["primary_metric"]
    min_improvement = float(promo.get("min_improvement", 0.0))
    guardrails = dict(promo.get("guardrails") or {})
    chal = challenger_metrics.get(primary)
    details: dict[str, Any] = {
        "primary_metric": primary,
        "min_improvement": min_improvement,
        "challenger": chal,
        "champion": None if champion_metrics is None else champion_metrics.get(primary),
        "baseline": baseline_metrics.get(primary),
        "guardrails": {},
    }
    if not _ok(chal):
        return Decision(False, f"challenger has no usable {primary} on the holdout (got {chal})", details)

    failed = []
    for metric, floor in sorted(guardrails.items()):
        value = challenger_metrics.get(metric)
        passed = _ok(value) and value >= float(floor)
        details["guardrails"][metric] = {"value": value, "floor": float(floor), "passed": passed}
        if not passed:
            failed.append(f"{metric}={_fmt(value)} < floor {float(floor):.4f}")
    if failed:
        return Decision(False, "challenger fails guardrails: " + "; ".join(failed), details)

    if champion_metrics is None:
        base = baseline_metrics.get(primary)
        if not _ok(base):
            return Decision(False, f"no champion and no usable baseline {primary} to compare with", details)
        details["improvement"] = chal - base
        if chal > base:
            return Decision(
                True,
                f"first champion: {primary} {chal:.4f} beats the logistic-regression baseline {base:.4f} "
                f"(+{chal - base:.4f}); guardrails pass",
                details,
            )
        return Decision(
            False, f"no champion yet and {primary} {chal:.4f} does not beat the baseline {base:.4f}", details
        )

    champ = champion_metrics.get(primary)
    if not _ok(champ):
        details["improvement"] = None
        return Decision(True, f"champion has no usable {primary} on this holdout; challenger {chal:.4f} passes guardrails", details)
    improvement = chal - champ
    details["improvement"] = improvement
    # A tie never promotes: swapping models that are equally good only adds risk.
    if improvement > 0 and improvement >= min_improvement:
        return Decision(
            True,
            f"{primary} {chal:.4f} beats champion {champ:.4f} by {improvement:+.4f} "
            f"(needed >= {min_improvement:.4f}); guardrails pass",
            details,
        )
    return Decision(
        False,
        f"{primary} {chal:.4f} vs champion {champ:.4f}: improvement {improvement:+.4f} is below the required "
        f"{min_improvement:.4f} (and must be > 0)",
        details,
    )


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) and _ok(value) else str(value)


def comparison_table(rows: dict[str, dict[str, float] | None], metrics: tuple[str, ...] = METRICS) -> str:
    """A fixed-width text table of metrics per model, for task logs (``-``: not measured)."""
    names = [n for n, m in rows.items() if m is not None]
    widths = [max(12, len(n) + 2) for n in names]
    lines = [f"{'metric':<24}" + "".join(f"{n:>{w}}" for n, w in zip(names, widths, strict=True))]
    for metric in metrics:
        cells = ""
        for name, width in zip(names, widths, strict=True):
            value = (rows[name] or {}).get(metric)
            cells += f"{(_fmt(value) if _ok(value) else '-'):>{width}}"
        lines.append(f"{metric:<24}{cells}")
    return "\n".join(lines)


# -- aliases ------------------------------------------------------------------------------------------
def _lock_path(model_name: str):
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", model_name)
    return paths.mlops_home() / "locks" / f"{safe}.lock"


@contextmanager
def model_lock(model_name: str, timeout: float = 300.0) -> Iterator[None]:
    """Exclusive lock on the aliases of ``model_name`` (``flock``: held per open file, so threads exclude too)."""
    path = _lock_path(model_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise MlopsError(f"could not lock {path} within {timeout:.0f}s: another promotion holds it") from None
                time.sleep(0.05)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def aliases(client: MlflowClient, model_name: str) -> dict[str, Any]:
    """Alias -> version of the registered model (``champion``/``challenger``/``previous_champion`` always present)."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(model_name)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            raise ModelNotFoundError(f"registered model '{model_name}' does not exist in the MLflow registry") from exc
        raise
    found = {alias: _version(v) for alias, v in (model.aliases or {}).items()}
    summary = {CHAMPION: None, CHALLENGER: None, PREVIOUS_CHAMPION: None}
    summary.update(found)
    return summary


def _model_version(client: MlflowClient, model_name: str, version: str | int):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(model_name, str(version))
    except MlflowException as exc:
        raise ModelNotFoundError(f"model version {model_name} v{version} does not exist in the MLflow registry") from exc


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _set_tags(client: MlflowClient, model_name: str, version: str, tags: dict[str, Any]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, str(value))


def promote(
    client: MlflowClient,
    model_name: str,
    version: str | int,
    *,
    reason: str,
    expected_champion: str | int | None = _UNSET,
) -> dict[str, Any]:
    """Make ``version`` the champion; the replaced champion becomes ``previous_champion``.

    Write order (a crash between any two writes leaves champion set and vetted):
    1. decision tags on ``version`` (it is vetted before anything points at it), including a
       ``pending_previous_champion`` tag naming the champion it replaces;
    2. ``champion`` -> ``version`` (one atomic alias move, champion is never missing);
    3. ``previous_champion`` -> the replaced champion;
    4. drop ``challenger`` if it points at ``version``;
    5. delete the pending tag. A retry that finds the tag redoes 3-5.
    With ``expected_champion`` given (the champion the decision was made against), a champion that moved
    in the meantime returns ``{"promoted": False, "stale": True}`` so the caller re-evaluates.
    """
    version = str(version)
    with model_lock(model_name):
        current = aliases(client, model_name)  # re-read inside the lock: the caller's view may be stale
        mv = _model_version(client, model_name, version)
        old = current[CHAMPION]
        if expected_champion is not _UNSET and _version(expected_champion) != old and old != version:
            log.warning("%s: champion moved from v%s to v%s while v%s was evaluated", model_name, expected_champion, old, version)
            return {
                "promoted": False,
                "stale": True,
                "model_name": model_name,
                "version": version,
                "champion": old,
                "reason": f"champion moved from v{expected_champion} to v{old} while v{version} was evaluated; "
                "re-evaluate against the new champion",
            }
        if old == version:
            # Already champion. A tag left pending means an earlier attempt died between its alias
            # writes: finish that bookkeeping (and only that; a later rollback must not be undone).
            pending = mv.tags.get(_PENDING_PREVIOUS)
            if pending is not None:
                if pending and pending != version:
                    client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, pending)
                if current[CHALLENGER] == version:
                    client.delete_registered_model_alias(model_name, CHALLENGER)
                client.delete_model_version_tag(model_name, version, _PENDING_PREVIOUS)
                log.warning("%s v%s: finished an interrupted promotion (previous_champion v%s)", model_name,
                            version, pending or None)
            else:
                log.info("%s v%s is already champion; nothing to move", model_name, version)
            return {**_result(client, model_name), "promoted": True, "already_champion": True,
                    "version": version, "reason": mv.tags.get("promotion_reason", reason)}

        tags = {"promotion_decision": "promoted", "promotion_reason": reason, "promoted_at": _now(),
                _PENDING_PREVIOUS: old or ""}
        if old:
            tags["replaced_champion"] = old
        _set_tags(client, model_name, version, tags)
        client.set_registered_model_alias(model_name, CHAMPION, version)
        if old:
            client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, old)
        elif current[PREVIOUS_CHAMPION] == version:
            client.delete_registered_model_alias(model_name, PREVIOUS_CHAMPION)
        if current[CHALLENGER] == version:
            client.delete_registered_model_alias(model_name, CHALLENGER)
        client.delete_model_version_tag(model_name, version, _PENDING_PREVIOUS)
        log.info("%s: champion v%s -> v%s (%s)", model_name, old, version, reason)
        return {**_result(client, model_name), "promoted": True, "version": version, "replaced": old, "reason": reason}


def _result(client: MlflowClient, model_name: str) -> dict[str, Any]:
    now = aliases(client, model_name)
    return {"model_name": model_name, CHAMPION: now[CHAMPION], PREVIOUS_CHAMPION: now[PREVIOUS_CHAMPION],
            CHALLENGER: now[CHALLENGER]}


def refuse(client: MlflowClient, model_name: str, version: str | int, reason: str) -> dict[str, Any]:
    """Record on the version why it was not promoted; aliases stay as they are."""
    version = str(version)
    _model_version(client, model_name, version)
    _set_tags(client, model_name, version,
              {"promotion_decision": "refused", "promotion_reason": reason, "decided_at": _now()})
    log.info("%s v%s refused: %s", model_name, version, reason)
    return {"promoted": False, "model_name": model_name, "version": version, "reason": reason}


def rollback(client: MlflowClient, model_name: str, to: str | int = "previous") -> dict[str, Any]:
    """Point ``champion`` back at ``previous_champion`` (or at version ``to``); the old champion becomes previous.

    ``champion`` is written first (to a version that served before or that an operator named), then
    ``previous_champion``; a crash in between leaves a valid champion.
    """
    with model_lock(model_name):
        current = aliases(client, model_name)
        old = current[CHAMPION]
        if str(to) == "previous":
            target = current[PREVIOUS_CHAMPION]
            if target is None:
                raise ModelNotFoundError(
                    f"cannot roll back {model_name}: it has no '{PREVIOUS_CHAMPION}' alias (champion is "
                    f"v{old}); nothing to roll back to. Pass to=<version> to pick a version explicitly."
                )
        else:
            target = str(int(to))
        _model_version(client, model_name, target)
        if target == old:
            raise ModelNotFoundError(
                f"cannot roll back {model_name}: v{target} is already the champion; nothing to roll back to"
            )
        _set_tags(client, model_name, target, {"rollback_from": old or "", "rolled_back_at": _now()})
        client.set_registered_model_alias(model_name, CHAMPION, target)
        if old:
            client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, old)
            _set_tags(client, model_name, old, {"rolled_back_to": target, "rolled_back_at": _now()})
        elif current[PREVIOUS_CHAMPION] == target:
            client.delete_registered_model_alias(model_name, PREVIOUS_CHAMPION)
        log.warning("%s rolled back: champion v%s -> v%s", model_name, old, target)
        return {**_result(client, model_name), "rolled_back_from": old, "version": target}


def shadow_record(client: MlflowClient, model_name: str, version: str | int) -> dict[str, Any]:
    """What shadow scoring observed for ``version`` while it was challenger (``shadow.<day>`` version tags)."""
    import json

    tags = _model_version(client, model_name, version).tags or {}
    days = {k.split(".", 1)[1]: json.loads(v) for k, v in tags.items() if k.startswith("shadow.")}
    agreement = [d["agreement_rate"] for d in days.values() if d.get("agreement_rate") is not None]
    return {"days": len(days), "first_day": min(days, default=None), "last_day": max(days, default=None),
            "mean_agreement_rate": sum(agreement) / len(agreement) if agreement else None,
            "max_ks_statistic": max((d.get("ks_statistic") or 0.0 for d in days.values()), default=None)}


# -- the whole gate -----------------------------------------------------------------------------------
def load_holdout(client: MlflowClient, run_id: str) -> pd.DataFrame:
    """The holdout rows a training run evaluated on (challenger and champion are compared on exactly these)."""
    import pandas as pd
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="mlops-holdout-") as tmp:
        try:
            local = client.download_artifacts(run_id, HOLDOUT_ARTIFACT, tmp)
        except (MlflowException, OSError) as exc:
            raise ModelNotFoundError(f"run {run_id} has no holdout artifact '{HOLDOUT_ARTIFACT}': {exc}") from exc
        return pd.read_parquet(local)


def gate_and_promote(
    project: ProjectConfig,
    client: MlflowClient,
    *,
    version: str | int | None = None,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    max_attempts: int = 3,
    approved: bool = False,
    decision_key: str | None = None,
) -> dict[str, Any]:
    """Evaluate ``version`` (default: the challenger) and the champion on the challenger's holdout, decide,
    then promote or refuse. A refusal is a normal outcome (``promoted: False``), not an error.

    The decision is made outside the lock (evaluation takes seconds) and applied with
    ``expected_champion``: if another promotion moved the champion meanwhile, the comparison is redone
    against the new champion, up to ``max_attempts`` times. ``approved`` records that a human already
    approved this version (``promotion.require_approval``); the gate itself still applies.

    ``decision_key`` (the Airflow task that decides) makes reruns idempotent: a version this key already
    promoted or refused gets the recorded decision back instead of a new comparison against whatever
    the champion is by then.
    """
    model_name = project.model_name
    primary = project.promotion["primary_metric"]
    current = aliases(client, model_name)
    version = _version(version) or current[CHALLENGER]
    if version is None:
        raise ModelNotFoundError(
            f"registered model '{model_name}' has no '{CHALLENGER}' alias and no version was given: nothing to promote"
        )
    mv = _model_version(client, model_name, version)
    if not mv.run_id:
        raise ModelNotFoundError(f"{model_name} v{version} has no source run, so it has no holdout to compare on")
    recorded = (mv.tags or {}).get("promotion_decision")
    if decision_key and recorded in ("promoted", "refused") and mv.tags.get(_DECISION_KEY) == decision_key:
        log.info("%s v%s: %s already decided '%s' (%s); not deciding again", model_name, version, decision_key,
                 recorded, mv.tags.get("promotion_reason"))
        return {**_result(client, model_name), "promoted": recorded == "promoted", "already_decided": True,
                "already_champion": current[CHAMPION] == version, "version": version, "run_id": mv.run_id,
                "primary_metric": primary, "reason": mv.tags.get("promotion_reason", "")}
    result = _gate(project, client, mv, current, tracking_uri=tracking_uri, registry_uri=registry_uri,
                   max_attempts=max_attempts, approved=approved)
    if decision_key and not result.get("awaiting_approval"):
        _set_tags(client, model_name, version, {_DECISION_KEY: decision_key})
    return result


def _gate(project: ProjectConfig, client: MlflowClient, mv: Any, current: dict[str, Any], *,
          tracking_uri: str | None, registry_uri: str | None, max_attempts: int, approved: bool) -> dict[str, Any]:
    model_name, version = project.model_name, str(mv.version)
    primary = project.promotion["primary_metric"]
    threshold = float(project.model.get("alert_threshold", 0.5))
    holdout = load_holdout(client, mv.run_id)
    run_metrics = client.get_run(mv.run_id).data.metrics
    baseline = {k[len("baseline_"):]: v for k, v in run_metrics.items() if k.startswith("baseline_")}
    label = project.label_column

    def metrics_of(v: str) -> dict[str, float]:
        return evaluate(f"models:/{model_name}/{v}", holdout, label, threshold,
                        tracking_uri=tracking_uri, registry_uri=registry_uri)

    challenger_metrics = metrics_of(version)
    evaluated: dict[str, dict[str, float]] = {}
    for _attempt in range(max_attempts):
        champion = aliases(client, model_name)[CHAMPION]
        if champion == version:
            result = promote(client, model_name, version, reason="already champion")
            return {**result, "run_id": mv.run_id, "primary_metric": primary,
                    "challenger_value": challenger_metrics.get(primary)}
        champion_metrics = None
        if champion is not None:
            if champion not in evaluated:
                try:
                    evaluated[champion] = metrics_of(champion)
                except MlopsError as exc:
                    # e.g. the champion needs a column this holdout no longer has: it cannot be compared.
                    log.warning("champion v%s cannot be evaluated on v%s's holdout: %s", champion, version, exc)
                    evaluated[champion] = {primary: float("nan")}
            champion_metrics = evaluated[champion]
        log.info(
            "%s: holdout of run %s (%d rows, %d positives), threshold %.2f\n%s",
            model_name, mv.run_id, len(holdout), int(holdout[label].sum()), threshold,
            comparison_table({f"challenger v{version}": challenger_metrics,
                              f"champion v{champion}" if champion else "champion": champion_metrics,
                              "baseline (training)": baseline}),
        )
        decision = decide(project, challenger_metrics, champion_metrics, baseline)
        log.info("decision for %s v%s: %s - %s", model_name, version, "PROMOTE" if decision.promote else "REFUSE",
                 decision.reason)
        common = {"run_id": mv.run_id, "primary_metric": primary, "challenger_value": challenger_metrics.get(primary),
                  "champion_value": None if champion_metrics is None else champion_metrics.get(primary),
                  "baseline_value": baseline.get(primary), "compared_with": champion}
        if not decision.promote:
            return {**refuse(client, model_name, version, decision.reason), **common, CHAMPION: champion}
        if project.promotion.get("require_approval") and not approved:
            reason = f"passed the gate but promotion.require_approval is set: awaiting a human ({decision.reason})"
            _set_tags(client, model_name, version, {"promotion_decision": "awaiting_approval",
                                                    "promotion_reason": reason, "decided_at": _now()})
            return {"promoted": False, "awaiting_approval": True, "model_name": model_name, "version": version,
                    "reason": reason, **common, CHAMPION: champion}
        result = promote(client, model_name, version, reason=decision.reason, expected_champion=champion)
        if not result.get("stale"):
            return {**result, **common}
    raise MlopsError(f"{model_name}: the champion changed {max_attempts} times while v{version} was evaluated; "
                     "retry the task")
