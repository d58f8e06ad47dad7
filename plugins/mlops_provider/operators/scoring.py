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
            summaries = self.each_day(self.day, self._score)
        summary, days = summaries[-1], [s["day"] for s in summaries]
        ModelVersionLink.persist(context, url=self.mlflow_hook.model_version_url(self.project.model_name,
                                                                                 summary["champion_version"]))
        self.emit_asset_events(context, {"day": summary["day"], "days": days,
                                         "champion_version": summary["champion_version"]})
        return json_safe({**summary, "days": days})

    def _score(self, day: str) -> dict[str, Any]:
        from mlops_provider.stages.score import run_score

        return run_score(self.project, lake=self.lake, reports=self.reports, feature_store=self.feature_store,
                         day=day, tracking_uri=self.mlflow_hook.tracking_uri,
                         registry_uri=self.mlflow_hook.registry_uri)
