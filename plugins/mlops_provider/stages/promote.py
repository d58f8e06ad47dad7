"""The promote stage: evaluate challenger and champion on the challenger's holdout, apply the gate, move aliases.

The policy is :func:`mlops_provider.domain.promotion.decide`; the alias moves (under the per-model lock)
are :mod:`mlops_provider.io.model_store`'s. A refusal is a normal outcome (``promoted: False``), not an error.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mlops_provider.domain.metrics import comparison_table, model_classes, timed_predictions
from mlops_provider.domain.metrics import evaluate as evaluate_predictions
from mlops_provider.domain.metrics import metrics_of as task_metrics
from mlops_provider.domain.promotion import decide
from mlops_provider.domain.scoring import model_features
from mlops_provider.exceptions import MlopsError, ModelNotFoundError
from mlops_provider.io import model_store
from mlops_provider.io.model_store import CHALLENGER, CHAMPION

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from mlops_provider.config.project import ProjectConfig

log = logging.getLogger(__name__)

# On a decided version: whether applying the decision moved the champion to it ("true") or not ("false").
CHANGED_CHAMPION_TAG = "promotion_changed_champion"


def evaluate(model_uri: str, frame: pd.DataFrame, label_column: str, threshold: float | None, *,
             tracking_uri: str | None = None, registry_uri: str | None = None, task: str = "binary"
             ) -> dict[str, float]:
    """Metrics of the ``task`` model at ``model_uri`` (``models:/name/version`` or any MLflow URI) on ``frame``."""
    from mlops_provider.domain.training import as_labels

    if frame.empty or label_column not in frame.columns:
        raise MlopsError(f"cannot evaluate {model_uri}: the frame is empty or has no label column '{label_column}'")
    model = model_store.load_model(model_uri, tracking_uri=tracking_uri, registry_uri=registry_uri)
    features = model_features(model, frame)
    with model_store.thread_limit():
        predictions, seconds = timed_predictions(model, features, task)
    labels = frame[label_column].to_numpy() if task == "binary" else as_labels(frame[label_column], task)
    metrics = evaluate_predictions(task, labels, predictions, threshold=threshold, classes=model_classes(model),
                                   scoring_seconds=seconds)
    metrics["rows"] = float(len(frame))
    if task == "binary":
        metrics["positives"] = float(frame[label_column].sum())
    return metrics


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

    A version this project's training did not register is refused before anything is loaded
    (:func:`~mlops_provider.io.model_store.check_registered_by_pipeline`, no retry).
    """
    model_name = project.model_name
    primary = project.promotion["primary_metric"]
    current = model_store.aliases(client, model_name)
    version = model_store.as_version(version) or current[CHALLENGER]
    if version is None:
        raise ModelNotFoundError(
            f"registered model '{model_name}' has no '{CHALLENGER}' alias and no version was given: nothing to promote"
        )
    mv = model_store.model_version(client, model_name, version)
    model_store.check_registered_by_pipeline(mv, project.name)
    if not mv.run_id:
        raise ModelNotFoundError(f"{model_name} v{version} has no source run, so it has no holdout to compare on")
    recorded = (mv.tags or {}).get("promotion_decision")
    if decision_key and recorded in ("promoted", "refused") and mv.tags.get(model_store.DECISION_KEY_TAG) == decision_key:
        log.info("%s v%s: %s already decided '%s' (%s); not deciding again", model_name, version, decision_key,
                 recorded, mv.tags.get("promotion_reason"))
        # Whether *this decision* moved the champion (recorded when it was applied): a retry after a successful
        # promotion must still announce the new champion, or scoring never picks it up.
        changed = mv.tags.get(CHANGED_CHAMPION_TAG)
        already = (changed != "true") if changed is not None else current[CHAMPION] == version
        return {**model_store.alias_summary(client, model_name), "promoted": recorded == "promoted", "already_decided": True,
                "already_champion": already, "version": version, "run_id": mv.run_id,
                "primary_metric": primary, "reason": mv.tags.get("promotion_reason", "")}
    result = _gate(project, client, mv, current, tracking_uri=tracking_uri, registry_uri=registry_uri,
                   max_attempts=max_attempts, approved=approved)
    if decision_key and not result.get("awaiting_approval"):
        changed = bool(result.get("promoted")) and not result.get("already_champion")
        model_store.set_version_tags(client, model_name, version, {model_store.DECISION_KEY_TAG: decision_key,
                                                                   CHANGED_CHAMPION_TAG: str(changed).lower()})
    return result


def _training_as_of(client: MlflowClient, model_name: str, version: str | None) -> str | None:
    """The day ``version`` was trained up to (its run's ``training_as_of``): the promotion policy's data time."""
    if version is None:
        return None
    run_id = model_store.model_version(client, model_name, version).run_id
    return client.get_run(run_id).data.tags.get("training_as_of") if run_id else None


def _gate(project: ProjectConfig, client: MlflowClient, mv: Any, current: dict[str, Any], *,
          tracking_uri: str | None, registry_uri: str | None, max_attempts: int, approved: bool) -> dict[str, Any]:
    model_name, version = project.model_name, str(mv.version)
    primary = project.promotion["primary_metric"]
    task = project.task
    threshold = float(project.model.get("alert_threshold", 0.5)) if task == "binary" else None
    holdout = model_store.load_holdout(client, mv.run_id)
    run = client.get_run(mv.run_id)
    run_metrics = run.data.metrics
    baseline = {k[len("baseline_"):]: v for k, v in run_metrics.items() if k.startswith("baseline_")}
    label = project.label_column

    def metrics_of(v: str) -> dict[str, float]:
        return evaluate(f"models:/{model_name}/{v}", holdout, label, threshold,
                        tracking_uri=tracking_uri, registry_uri=registry_uri, task=task)

    challenger_metrics = metrics_of(version)
    evaluated: dict[str, dict[str, float]] = {}
    for _attempt in range(max_attempts):
        champion = model_store.aliases(client, model_name)[CHAMPION]
        if champion == version:
            result = model_store.promote(client, model_name, version, reason="already champion")
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
            "%s: holdout of run %s (%s)\n%s", model_name, mv.run_id,
            f"{len(holdout)} rows, {int(holdout[label].sum())} positives, threshold {threshold:.2f}"
            if task == "binary" else f"{len(holdout)} rows, {task}",
            comparison_table({f"challenger v{version}": challenger_metrics,
                              f"champion v{champion}" if champion else "champion": champion_metrics,
                              "baseline (training)": baseline}, task_metrics(task)),
        )
        decision = decide(project, challenger_metrics, champion_metrics, baseline, champion=champion,
                          challenger_as_of=run.data.tags.get("training_as_of"),
                          champion_as_of=_training_as_of(client, model_name, champion))
        log.info("decision for %s v%s: %s - %s", model_name, version, "PROMOTE" if decision.promote else "REFUSE",
                 decision.reason)
        common = {"run_id": mv.run_id, "primary_metric": primary, "challenger_value": challenger_metrics.get(primary),
                  "champion_value": None if champion_metrics is None else champion_metrics.get(primary),
                  "baseline_value": baseline.get(primary), "compared_with": champion}
        if not decision.promote:
            return {**model_store.refuse(client, model_name, version, decision.reason), **common, CHAMPION: champion}
        if project.promotion.get("require_approval") and not approved:
            reason = f"passed the gate but promotion.require_approval is set: awaiting a human ({decision.reason})"
            model_store.set_version_tags(client, model_name, version, {"promotion_decision": "awaiting_approval",
                                                    "promotion_reason": reason, "decided_at": model_store.now_iso()})
            return {"promoted": False, "awaiting_approval": True, "model_name": model_name, "version": version,
                    "reason": reason, **common, CHAMPION: champion}
        result = model_store.promote(client, model_name, version, reason=decision.reason, expected_champion=champion)
        if not result.get("stale"):
            return {**result, **common}
    raise MlopsError(f"{model_name}: the champion changed {max_attempts} times while v{version} was evaluated; "
                     "retry the task")
