"""Operator of the scoring stage: the champion scores a day, the challenger shadow-scores it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlops_provider.links.artifacts import ModelVersionLink
from mlops_provider.operators.base import FeastBaseOperator, MlflowBaseOperator
from mlops_provider.operators.common import json_safe

if TYPE_CHECKING:
    from airflow.sdk import Context


class ScoreBatchOperator(MlflowBaseOperator, FeastBaseOperator):
    """Score partition ``day`` with ``models:/<model>@champion``; write predictions to the lake.

    When a different version holds ``challenger`` it scores the same rows in shadow: its scores are
    stored beside the champion's (never used as decisions) and its agreement with the champion is
    recorded on its model version, for the promotion decision to cite. On success the ``outlets``
    asset event carries ``{"day": ..., "days": [...], "champion_version": ...}``. ``day`` may name
    several days, comma-separated (asset events merged into one run): each is scored.
    """

    template_fields: Sequence[str] = ("project_name", "day")
    operator_extra_links = (ModelVersionLink(),)
    ui_color = "#f3e8fd"

    def __init__(self, *, day: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.day = day

    def execute(self, context: Context) -> dict[str, Any]:
        with self.mlflow_hook.environment():
            self._skip_before_a_first_champion()
            summaries = self.each_day(self.day, self._score)
        summary, days = summaries[-1], [s["day"] for s in summaries]
        ModelVersionLink.persist(context, url=self.mlflow_hook.model_version_url(self.project.model_name,
                                                                                 summary["champion_version"]))
        self.emit_asset_events(context, {"day": summary["day"], "days": days,
                                         "champion_version": summary["champion_version"]})
        return json_safe({**summary, "days": days})

    def _skip_before_a_first_champion(self) -> None:
        """Skip (not fail, not page anyone) while no version was ever promoted: a fresh deployment."""
        from airflow.sdk.exceptions import AirflowSkipException

        from mlops_provider.exceptions import ModelNotFoundError
        from mlops_provider.io import model_store

        model = self.project.model_name
        try:
            current = model_store.aliases(self.mlflow_hook.get_conn(), model)
        except ModelNotFoundError:
            current = {model_store.CHAMPION: None, model_store.PREVIOUS_CHAMPION: None}
        if current[model_store.CHAMPION] is None and current[model_store.PREVIOUS_CHAMPION] is None:
            raise AirflowSkipException(
                f"nothing to score yet: {model} has no champion (a fresh deployment: the train DAG promotes the "
                f"first one). Days before it are not scored automatically; trigger {self.project.dag_id('score')} "
                f"with day=YYYY-MM-DD to score one afterwards.")

    def _score(self, day: str) -> dict[str, Any]:
        from mlops_provider.stages.score import run_score

        summary = run_score(self.project, lake=self.lake, reports=self.reports, feature_store=self.feature_store,
                            day=day, tracking_uri=self.mlflow_hook.tracking_uri,
                            registry_uri=self.mlflow_hook.registry_uri)
        self._lineage(summary)
        return summary

    def _lineage(self, summary: dict[str, Any]) -> None:
        """Records, feature views and the model versions in; the day's predictions out."""
        from mlops_provider.domain.layout import predictions_table, records_table
        from mlops_provider.io import feast_repo
        from mlops_provider.operators.lineage import feature_view, lake_table, model_version

        project, day = self.project, summary["day"]
        self.lineage_input(lake_table(self.lake, records_table(project), day=day))
        self.lineage_input(*(feature_view(project, name) for name in feast_repo.entity_views(project)),
                           feature_view(project, feast_repo.record_view_name(project)))
        for role in ("champion", "challenger"):
            if version := summary.get(f"{role}_version"):
                self.lineage_input(model_version(self.mlflow_hook.tracking_uri, project.model_name, version,
                                                 role=role))
        self.lineage_output(lake_table(self.lake, predictions_table(project), day=day, rows=summary.get("rows")))
