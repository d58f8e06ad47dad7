"""The train stage: a point-in-time training set as of a day -> fitted models -> MLflow run -> challenger.

Idempotent twice over: a retry of the same Airflow run returns the version it already registered, and
the same data, config and budget (the ``training_key``) reuse the version trained on them before.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from mlops_provider.domain import training
from mlops_provider.domain.layout import as_date
from mlops_provider.domain.scoring import prediction_columns, prepare_features
from mlops_provider.io import feast_repo, model_store
from mlops_provider.stages.training_set import build_training_set

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


def monitoring_reference(project: ProjectConfig, trained: training.TrainedModel, seed: int) -> pd.DataFrame:
    """A seeded sample of the training rows with the model's own predictions, in the columns scoring writes
    them (``champion_score``; a multiclass model's class and probabilities too): the drift reference while champion."""
    reference = training.reference_sample(trained.splits, trained.logged_columns(project),
                                          int(project.monitoring["sample_rows"]), seed)
    with model_store.thread_limit():
        outputs = prediction_columns(trained.model, prepare_features(reference, trained.feature_columns),
                                     trained.task)
    for column, values in outputs.items():
        reference[column] = values
    return reference


def run_train(project: ProjectConfig, *, lake: Lake, reports: Lake, feature_store: Any, as_of: str | dt.date,
              tracking_uri: str, registry_uri: str | None = None, artifact_location: str | None = None,
              window_days: int | None = None, hpo_trials: int | None = None,
              run_tags: dict[str, Any] | None = None, seed: int = 42) -> dict[str, Any]:
    """Build the point-in-time training set as of ``as_of``, train, log to MLflow and register a challenger."""
    window_days = int(window_days or project.model["training_window_days"])
    hpo_trials = int(hpo_trials or project.model["hpo_trials"])
    run_tags = dict(run_tags or {})
    if run_tags.get("airflow_run_id"):
        # A retry (or a cleared rerun) of a run that already registered a version returns it before any
        # work: the data may have changed since, the run's result must not.
        client = model_store.client_for(tracking_uri, registry_uri)
        experiment_id = model_store.ensure_experiment(client, project.name, artifact_location
                                                      or model_store.default_artifact_location(tracking_uri, project.name))
        if found := model_store.registered_by(project, client, experiment_id, tag="airflow_run_id",
                                              value=str(run_tags["airflow_run_id"])):
            return _reused(client, found)
    training_set = build_training_set(project, lake, feature_store, as_of, window_days)
    run_tags = {
        "training_key": f"{as_date(as_of).isoformat()}|{project.config_hash()}|{window_days}d|{hpo_trials}trials|"
                        f"{len(training_set.frame)}rows",
        "config_hash": project.config_hash(),
        "feast_feature_service": feast_repo.feature_service_name(project),
        "feast_project": project.name,
        "training_as_of": as_date(as_of).isoformat(),
        "gx_validation_results": validation_results(project, reports, training_set.event_days),
        **run_tags,
    }
    return train_and_register(
        project, training_set.frame, feature_columns=training_set.feature_columns,
        categorical_columns=training_set.categorical_columns, tracking_uri=tracking_uri, registry_uri=registry_uri,
        run_tags=run_tags, dataset_sources=training_set.sources, hpo_trials=hpo_trials, seed=seed,
        artifact_location=artifact_location)


def _reused(client: Any, found: dict[str, Any]) -> dict[str, Any]:
    """An earlier run's registered version, aliased ``challenger`` again if that write never happened.

    A worker killed between registering a version and aliasing it leaves a version no alias names; its
    retry finds the version and finishes the job. :func:`~mlops_provider.io.model_store.set_challenger`
    leaves a version that already serves, or a newer challenger, as they are.
    """
    model_store.set_challenger(client, found["model_name"], found["version"])
    return found


def train_and_register(project: ProjectConfig, frame: pd.DataFrame, *, feature_columns: list[str],
                       categorical_columns: list[str], tracking_uri: str, registry_uri: str | None = None,
                       run_tags: dict[str, Any], dataset_sources: list[str], hpo_trials: int | None = None,
                       seed: int = 42, artifact_location: str | None = None) -> dict[str, Any]:
    """Train on a labelled ``frame``, log one MLflow run, register a version and alias it ``challenger``.

    Idempotent per ``run_tags["airflow_run_id"]`` and per ``run_tags["training_key"]``: an earlier run
    with the same value returns its registered version instead of training again.
    """
    client = model_store.client_for(tracking_uri, registry_uri)
    experiment_id = model_store.ensure_experiment(
        client, project.name, artifact_location or model_store.default_artifact_location(tracking_uri, project.name))
    # The same data, config and budget give the same model: a nightly run after a drift-triggered one for
    # the same day (or a second manual trigger) reuses that version instead of registering a copy.
    for tag in ("airflow_run_id", "training_key"):
        if run_tags.get(tag) and (found := model_store.registered_by(project, client, experiment_id, tag=tag,
                                                                      value=str(run_tags[tag]))):
            return _reused(client, found)
    with model_store.thread_limit():
        trained = training.fit(project, frame, feature_columns=feature_columns,
                               categorical_columns=categorical_columns,
                               hpo_trials=int(hpo_trials or project.model["hpo_trials"]), seed=seed)
    return model_store.log_training_run(
        project, trained, client=client, experiment_id=experiment_id, tracking_uri=tracking_uri,
        registry_uri=registry_uri, run_tags=run_tags, dataset_sources=dataset_sources,
        reference=monitoring_reference(project, trained, seed), seed=seed)
