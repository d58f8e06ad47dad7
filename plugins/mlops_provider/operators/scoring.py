"""Operator of the scoring stage: the champion scores a day, the challenger shadow-scores it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlops_provider.hooks.mlflow import MlflowHook
from mlops_provider.links.artifacts import ModelVersionLink
from mlops_provider.operators.base import MlopsBaseOperator
from mlops_provider.operators.common import json_safe

if TYPE_CHECKING:
    from airflow.sdk import Context


class ScoreBatchOperator(MlopsBaseOperator):
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

    def __init__(self, *, project_name: str, day: str, mlflow_conn_id: str = MlflowHook.default_conn_name,
                 feast_conn_id: str = "feast_default", lake_conn_id: str = "mlops_lake_default", **kwargs: Any):
        super().__init__(**kwargs)
        self.project_name = project_name
        self.day = day
        self.mlflow_conn_id = mlflow_conn_id
        self.feast_conn_id = feast_conn_id
        self.lake_conn_id = lake_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.config.project import load_project
        from mlops_provider.dag_factory import split_days
        from mlops_provider.hooks.feast import FeastHook
        from mlops_provider.hooks.lake import LakeHook
        from mlops_provider.stages.score import run_score

        project = load_project(self.project_name)
        lake_hook = LakeHook(lake_conn_id=self.lake_conn_id)
        lake = lake_hook.get_conn()
        mlflow_hook = MlflowHook(mlflow_conn_id=self.mlflow_conn_id)
        feature_store = FeastHook(project, feast_conn_id=self.feast_conn_id, lake=lake).feature_store()
        summaries = []
        with mlflow_hook.environment():
            for day in split_days(self.day):
                summaries.append(run_score(
                    project, lake=lake, reports=lake_hook.get_reports(), feature_store=feature_store, day=day,
                    tracking_uri=mlflow_hook.tracking_uri, registry_uri=mlflow_hook.registry_uri,
                ))
        summary = summaries[-1]
        ModelVersionLink.persist(context, url=mlflow_hook.model_version_url(project.model_name,
                                                                            summary["champion_version"]))
        days = [s["day"] for s in summaries]
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = {"day": summary["day"], "days": days,
                                                      "champion_version": summary["champion_version"]}
        return json_safe({**summary, "days": days})
