"""The model half of the pipeline as plain functions: train, score a day, monitor a day, request a retrain.

Operators call these with objects built from Airflow connections; a plain Python script (or a
benchmark) can call them with the embedded defaults. Each returns a small JSON-able summary.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_provider.domain import features as F
from mlops_provider.domain.errors import MlopsError, ModelNotFoundError
from mlops_provider.domain.layout import predictions_table
from mlops_provider.io import model_store
from mlops_provider.io.lake import as_date
from mlops_provider.stages.training_set import (
    labels_table,
    model_feature_columns,
    monitored_features,
    utc_timestamps,
)

if TYPE_CHECKING:
    import pandas as pd

    from mlops_provider.config.project import ProjectConfig
    from mlops_provider.io.lake import Lake

log = logging.getLogger(__name__)


def validation_results(project: ProjectConfig, reports: Lake, event_days: list[dt.date]) -> list[str]:
    """URIs of the GX validation results of the days a model was trained on."""
    out = []
    for day in event_days:
        out += [reports.uri(f"{reports.root}/{p}")
                for p in reports.list_files(f"{project.name}/validation/dt={day.isoformat()}")]
    return out


# -- training ---------------------------------------------------------------------------------------
def train_model(project: ProjectConfig, *, lake: Lake, reports: Lake, feature_store: Any, as_of: str | dt.date,
                tracking_uri: str, registry_uri: str | None = None, artifact_location: str | None = None,
                window_days: int | None = None, hpo_trials: int | None = None,
                run_tags: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the point-in-time training set as of ``as_of``, train, log to MLflow and register a challenger."""
    from mlops_provider.domain import training
    from mlops_provider.io import feast_repo as R
    from mlops_provider.stages.training_set import build_training_set

    window_days = int(window_days or project.model["training_window_days"])
    hpo_trials = int(hpo_trials or project.model["hpo_trials"])
    airflow_run_id = (run_tags or {}).get("airflow_run_id")
    if airflow_run_id:
        # A retry (or a cleared rerun) of a run that already registered a version returns it before any
        # work: the data may have changed since, the run's result must not.
        earlier = training.registered_by(project, tracking_uri, registry_uri, artifact_location,
                                         tag="airflow_run_id", value=str(airflow_run_id))
        if earlier:
            return earlier
    training_set = build_training_set(project, lake, feature_store, as_of, window_days)
    tags = {
        "training_key": f"{as_date(as_of).isoformat()}|{project.config_hash()}|{window_days}d|{hpo_trials}trials|"
                        f"{len(training_set.frame)}rows",
        "config_hash": project.config_hash(),
        "feast_feature_service": R.feature_service_name(project),
        "feast_project": project.name,
        "training_as_of": as_date(as_of).isoformat(),
        "gx_validation_results": validation_results(project, reports, training_set.event_days),
        **(run_tags or {}),
    }
    return training.train_and_register(
        project, training_set.frame, feature_columns=training_set.feature_columns,
        categorical_columns=training_set.categorical_columns, tracking_uri=tracking_uri, registry_uri=registry_uri,
        run_tags=tags, dataset_sources=training_set.sources, hpo_trials=hpo_trials,
        artifact_location=artifact_location,
    )


# -- scoring ----------------------------------------------------------------------------------------
SCORE_BATCH_ROWS = 500_000  # ``MLOPS_SCORE_BATCH_ROWS`` overrides


def score_day(project: ProjectConfig, *, lake: Lake, reports: Lake, feature_store: Any, day: str | dt.date,
              tracking_uri: str, registry_uri: str | None = None) -> dict[str, Any]:
    """Score partition ``day`` with the champion (shadow: the challenger); write predictions to the lake.

    Features come from the same point-in-time retrieval as training, so a record is scored with exactly
    the values it would have had in a training set. The predictions partition keeps the model inputs
    next to the scores: monitoring compares them with the champion's training reference.

    The day is streamed in batches of ``SCORE_BATCH_ROWS`` records (features, scores, Parquet row group),
    so memory stays bounded by one batch whatever the day's size; the champion and challenger versions
    are resolved once, so a promotion during the run never mixes versions within a partition.
    """
    import os

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops_provider.domain import scoring

    day = as_date(day)
    rid, key, ts = project.record_id, project.entity_key, project.event_timestamp
    table = F.records_table(project)
    if not lake.exists(table, day):
        raise MlopsError(f"{project.name} {day}: no validated records partition "
                         f"{lake.uri(lake.partition_path(table, day))} to score")
    features, _ = model_feature_columns(project)
    threshold = float(project.model.get("alert_threshold", 0.5))
    versions = scoring.resolve_versions(project.model_name, tracking_uri=tracking_uri, registry_uri=registry_uri)
    batch_rows = max(1, int(os.environ.get("MLOPS_SCORE_BATCH_ROWS", SCORE_BATCH_ROWS)))
    source = pq.ParquetFile(lake.partition_path(table, day), filesystem=lake.fs)
    total = source.metadata.num_rows
    if not total:
        raise MlopsError(f"{project.name} {day}: records partition {lake.uri(lake.partition_path(table, day))} "
                         "is empty: nothing to score")
    champion_scores, challenger_scores = [], []
    schema: list[pa.Schema] = []

    def batches():
        done = 0
        for batch in source.iter_batches(batch_size=batch_rows, columns=[rid, key, ts]):
            records = batch.to_pandas()
            entity_df = records.rename(columns={ts: F.EVENT_TIMESTAMP}) if ts != F.EVENT_TIMESTAMP else records
            entity_df[F.EVENT_TIMESTAMP] = utc_timestamps(entity_df[F.EVENT_TIMESTAMP])
            entity_df[key] = entity_df[key].astype(str)
            frame = feature_store.get_historical_features(entity_df)
            predictions = scoring.score_batch(
                frame, versions=versions, tracking_uri=tracking_uri, registry_uri=registry_uri,
                model_name=project.model_name, record_id=rid, entity_key=key, threshold=threshold,
                event_timestamp=F.EVENT_TIMESTAMP,
            )
            champion_scores.append(predictions["champion_score"].to_numpy())
            shadow = predictions["challenger_score"]
            challenger_scores.append(shadow.to_numpy(dtype="float64", na_value=np.nan) if shadow.notna().all()
                                     else None)
            out = predictions.merge(frame[[rid, *features]], on=rid, how="left", validate="one_to_one")
            out.insert(3, "model_name", project.model_name)
            # Every batch is written with the first batch's schema (one Parquet file, one schema).
            arrow = pa.Table.from_pandas(out, schema=schema[0] if schema else None, preserve_index=False)
            if not schema:
                schema.append(arrow.schema)
            done += len(out)
            if total > batch_rows:
                log.info("%s %s: scored %d of %d records", project.name, day, done, total)
            yield from arrow.to_batches()

    uri = lake.write(predictions_table(project), day, batches())
    shadowed = all(c is not None for c in challenger_scores) and challenger_scores
    summary = scoring.summarize(
        np.concatenate(champion_scores) if champion_scores else np.array([]),
        np.concatenate(challenger_scores) if shadowed else None,
        threshold=threshold, champion=versions[0], challenger=versions[1], model_name=project.model_name,
    )
    summary = {"day": day.isoformat(), "model_name": project.model_name, "predictions": uri, **summary}
    shadow_uri = reports.write_bytes(f"{project.name}/shadow/dt={day.isoformat()}.json",
                                     json.dumps(summary, indent=2, default=str).encode())
    summary["shadow_report"] = shadow_uri
    if summary.get("challenger_version"):
        # The challenger's version carries its shadow record, so a promotion decision can cite it.
        client = model_store.client_for(tracking_uri, registry_uri)
        shadow = {k: summary[k] for k in ("agreement_rate", "mean_abs_score_diff", "ks_statistic", "rows")}
        client.set_model_version_tag(project.model_name, str(summary["challenger_version"]),
                                     f"shadow.{day.isoformat()}", json.dumps(shadow))
    return summary


# -- monitoring -------------------------------------------------------------------------------------
def _reference_metrics(run: Any) -> dict[str, Any]:
    """The champion's holdout metrics under the names monitoring reports (its honest reference)."""
    metrics, params = run.data.metrics, run.data.params
    out = {"roc_auc": metrics.get("roc_auc"), "pr_auc": metrics.get("pr_auc"),
           "precision": metrics.get("precision_at_threshold"), "recall": metrics.get("recall_at_threshold"),
           "alert_rate": metrics.get("alert_rate")}
    try:
        out["positive_rate"] = int(params["holdout_positives"]) / int(params["holdout_rows"])
    except (KeyError, ValueError, ZeroDivisionError):
        out["positive_rate"] = None
    return out


def _labelled_predictions(project: ProjectConfig, lake: Lake, day: dt.date) -> pd.DataFrame | None:
    """Predictions of earlier days joined with the labels that arrived on ``day`` (``None``: none arrived)."""
    rid, label = project.record_id, project.label_column
    if not lake.exists(labels_table(project), day):
        return None
    labels = lake.read(labels_table(project), day, columns=[rid, label])
    first = day - dt.timedelta(days=project.label_delay_days + 1)
    # Only what performance needs: a large day's predictions carry every model input as well.
    scored = lake.read_range(predictions_table(project), first, day, columns=[rid, "champion_score"])
    if scored.empty:
        return None
    labelled = scored.merge(labels.astype({rid: str}), on=rid, how="inner")
    return labelled if len(labelled) else None


def monitor_day(project: ProjectConfig, *, lake: Lake, reports: Lake, day: str | dt.date, tracking_uri: str,
                registry_uri: str | None = None) -> dict[str, Any]:
    """Drift, data quality and (labels permitting) performance of day ``day`` against the champion's reference.

    The report is saved as HTML, Evidently JSON and a verdict JSON in the report store and logged to
    the MLflow run of the model version that scored the day.
    """
    from mlops_provider.domain import drift

    day = as_date(day)
    if not lake.exists(predictions_table(project), day):
        raise MlopsError(f"{project.name} {day}: no predictions partition "
                         f"{lake.uri(lake.partition_path(predictions_table(project), day))}; run the score DAG first")
    # The monitored inputs and the scores only: a 10M-row day read whole took 5.6 GiB.
    columns = list(dict.fromkeys([*monitored_features(project), "champion_score", "champion_version"]))
    current = lake.read(predictions_table(project), day, columns=columns)
    version = str(int(current["champion_version"].iloc[0]))
    client = model_store.client_for(tracking_uri, registry_uri)
    mv = client.get_model_version(project.model_name, version)
    run = client.get_run(mv.run_id)
    with tempfile.TemporaryDirectory(prefix="mlops-monitor-") as tmp:
        try:
            local = client.download_artifacts(mv.run_id, model_store.REFERENCE_ARTIFACT, tmp)
        except Exception as exc:
            raise ModelNotFoundError(f"{project.model_name} v{version} (run {mv.run_id}) has no training reference "
                                     f"'{model_store.REFERENCE_ARTIFACT}' to monitor against: {exc}") from exc
        import pandas as pd

        reference = pd.read_parquet(local)
    labelled = _labelled_predictions(project, lake, day)
    result = drift.monitor_day(
        project, reference=reference, current=current, feature_columns=monitored_features(project),
        labelled=labelled,
        seed=day.toordinal(), reference_metrics=_reference_metrics(run),
    )
    uris = drift.save_report(result, reports, f"{project.name}/monitoring/dt={day.isoformat()}/report")
    with tempfile.TemporaryDirectory(prefix="mlops-report-") as tmp:
        for kind, name in (("html", "report.html"), ("json", "evidently_snapshot.json"), ("verdict", "verdict.json")):
            path = Path(tmp) / name
            path.write_bytes(reports.read_bytes(uris[kind].split(reports.root, 1)[1].lstrip("/")))
            client.log_artifact(mv.run_id, str(path), f"monitoring/dt={day.isoformat()}")
    log.info("%s %s: monitoring verdict %s; report %s (logged to MLflow run %s)", project.name, day,
             result.kind, uris["html"], mv.run_id)
    return {"day": day.isoformat(), "kind": result.kind, "model_name": project.model_name,
            "model_version": version, "run_id": mv.run_id, "report": uris, "verdict": result.verdict}


# -- closing the loop -------------------------------------------------------------------------------
def request_retrain(project: ProjectConfig, reports: Lake, day: str | dt.date, kind: str,
                    record: bool = True) -> dict[str, Any]:
    """Decide whether an alert of ``kind`` on ``day`` triggers retraining, and record the request.

    One request per day at most (a rerun of the day requests nothing new), and none while an earlier
    request is younger than ``model.retrain_cooldown_hours`` in data time: a drifting week retrains once.
    With ``record=False`` only the decision is returned; the caller records it with
    :func:`record_retrain_request` once everything before the announcement (the alert email) succeeded,
    so a failed email and its retry do not lose the retrain.
    """
    day = as_date(day)
    if kind == "ok":
        return {"requested": False, "reason": "no alert condition: nothing to retrain"}
    prefix = _retrain_prefix(project)
    earlier = sorted(as_date(Path(p).stem) for p in reports.list_files(prefix) if p.endswith(".json"))
    if day in earlier:
        return {"requested": False, "duplicate": True,
                "reason": f"retraining was already requested for {day} (this is a rerun): not requested again"}
    cooldown = dt.timedelta(hours=float(project.model.get("retrain_cooldown_hours", 24)))
    recent = [d for d in earlier if d < day and dt.timedelta(days=(day - d).days) < cooldown]
    if recent:
        until = recent[-1] + cooldown
        return {"requested": False, "cooldown": True, "previous_request": recent[-1].isoformat(),
                "reason": f"retraining NOT triggered: on cooldown since the request of {recent[-1]} "
                          f"(cooldown {cooldown.total_seconds() / 3600:g}h, until {until:%Y-%m-%d %H:%M})"}
    decision = {"requested": True, "day": day.isoformat(), "kind": kind,
                "reason": f"retraining requested: {kind} on {day} triggers DAG {project.dag_id('train')} "
                          f"(cooldown {cooldown.total_seconds() / 3600:g}h)"}
    if record:
        decision["marker"] = record_retrain_request(project, reports, decision)
    return decision


def _retrain_prefix(project: ProjectConfig) -> str:
    return f"{project.name}/retrain_requests"


def record_retrain_request(project: ProjectConfig, reports: Lake, decision: dict[str, Any]) -> str:
    """Persist a ``requested`` decision of :func:`request_retrain` (the marker later days' cooldown reads)."""
    record = {"day": decision["day"], "kind": decision["kind"],
              "requested_at": dt.datetime.now(dt.UTC).isoformat()}
    return reports.write_bytes(f"{_retrain_prefix(project)}/{decision['day']}.json", json.dumps(record).encode())
