"""Operator of the training stage: point-in-time training set from Feast, MLflow run, challenger version."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mlops_provider.links.artifacts import MlflowRunLink, ModelVersionLink, dag_run_url
from mlops_provider.operators.base import FeastBaseOperator, MlflowBaseOperator
from mlops_provider.operators.common import int_or_none, json_safe

if TYPE_CHECKING:
    from airflow.sdk import Context


def git_commit() -> str:
    """The commit of the checkout the DAGs run from (``MLOPS_GIT_COMMIT`` wins, e.g. baked into an image)."""
    if commit := os.environ.get("MLOPS_GIT_COMMIT"):
        return commit
    from mlops_provider.config import paths

    try:
        out = subprocess.run(["git", "-C", str(paths.repo_root()), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class TrainModelOperator(MlflowBaseOperator, FeastBaseOperator):
    """Train the project's model on the labelled days up to ``as_of`` and register it as ``challenger``.

    Retries of the same DAG run reuse the version an earlier try registered (looked up by the run id
    tag). Before any model was ever promoted, too little labelled data skips the task (the pipeline is
    still filling up); afterwards it fails it, because a champion exists and retraining is expected.

    :param as_of: last day (YYYY-MM-DD) whose labels may be used (templated).
    :param window_days: days of events to train on; empty = ``model.training_window_days`` (templated).
    :param hpo_trials: hyperparameter candidates; empty = ``model.hpo_trials`` (templated).
    :param trigger: why this run trains (``nightly``, ``drift``, ``manual``), recorded as a tag (templated).
    """

    template_fields: Sequence[str] = ("project_name", "as_of", "window_days", "hpo_trials", "trigger")
    operator_extra_links = (MlflowRunLink(), ModelVersionLink())
    ui_color = "#e3ecfa"

    def __init__(self, *, as_of: str, window_days: int | str | None = None, hpo_trials: int | str | None = None,
                 trigger: str = "nightly", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.as_of = as_of
        self.window_days = window_days
        self.hpo_trials = hpo_trials
        self.trigger = trigger

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.stages.train import run_train

        project, mlflow_hook, ti = self.project, self.mlflow_hook, context["ti"]
        tags = {
            "airflow_dag_id": ti.dag_id, "airflow_run_id": ti.run_id, "airflow_task_id": ti.task_id,
            "airflow_try_number": str(ti.try_number), "airflow_run_url": dag_run_url(ti.dag_id, ti.run_id),
            "git_commit": git_commit(), "trigger": self.trigger or "manual",
        }
        self.log.info("training %s as of %s (window %s days, %s HPO trials, trigger %s)", project.model_name,
                      self.as_of, self.window_days or project.model.get("training_window_days"),
                      self.hpo_trials or project.model.get("hpo_trials"), tags["trigger"])
        with mlflow_hook.environment(), self._skipped_until_a_first_model():
            result = run_train(
                project, lake=self.lake, reports=self.reports, feature_store=self.feature_store, as_of=self.as_of,
                tracking_uri=mlflow_hook.tracking_uri, registry_uri=mlflow_hook.registry_uri,
                artifact_location=mlflow_hook.artifact_location(project.name),
                window_days=int_or_none(self.window_days), hpo_trials=int_or_none(self.hpo_trials), run_tags=tags,
            )
        self._lineage(result)
        MlflowRunLink.persist(context, url=mlflow_hook.run_url(result["run_id"]))
        ModelVersionLink.persist(context, url=mlflow_hook.model_version_url(result["model_name"], result["version"]))
        primary = project.promotion["primary_metric"]
        self.log.info("%s v%s is challenger: holdout %s %.4f (baseline %.4f)%s", result["model_name"],
                      result["version"], primary, result["metrics"].get(primary, float("nan")),
                      result["baseline_metrics"].get(primary, float("nan")),
                      " [reused from an earlier try]" if result.get("reused") else "")
        return json_safe({**result, "as_of": self.as_of, "trigger": tags["trigger"]})

    def _lineage(self, result: dict[str, Any]) -> None:
        """The feature service and the labels in; the registered model version out, its metrics as a facet."""
        from mlops_provider.domain.layout import labels_table
        from mlops_provider.io import feast_repo
        from mlops_provider.operators.lineage import feature_view, lake_table, model_version

        project, hook = self.project, self.mlflow_hook
        self.lineage_input(feature_view(project, feast_repo.feature_service_name(project)),
                           lake_table(self.lake, labels_table(project)))
        self.lineage_output(model_version(
            hook.tracking_uri, result["model_name"], result["version"], run_id=result.get("run_id"),
            alias="challenger", as_of=str(self.as_of)[:10], metrics=result.get("metrics"),
            baseline_metrics=result.get("baseline_metrics"), url=hook.model_version_url(result["model_name"],
                                                                                       result["version"])))

    @contextmanager
    def _skipped_until_a_first_model(self) -> Iterator[None]:
        """Too little labelled data skips the task while no champion exists (the pipeline is filling up)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from mlops_provider.exceptions import ModelNotFoundError, TrainingDataError
        from mlops_provider.io import model_store

        try:
            yield
        except TrainingDataError as exc:
            try:
                champion = model_store.aliases(self.mlflow_hook.get_conn(), self.project.model_name)[model_store.CHAMPION]
            except ModelNotFoundError:
                champion = None
            if champion is None:
                raise AirflowSkipException(f"not enough labelled data yet to train a first model: {exc}") from exc
            raise
