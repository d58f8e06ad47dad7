"""Operators that move the ``champion`` alias: gated promotion of a challenger, and rollback.

Both take the per-model lock of ``core.registry``; with several worker hosts, also put these tasks in an
Airflow pool of size 1 (e.g. ``pool="mlops_registry"``) so only one alias writer runs at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops_provider.hooks.mlflow import MlflowHook
from mlops_provider.links.artifacts import MlflowRunLink, ModelVersionLink
from mlops_provider.operators.common import json_safe

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)


class PromoteModelOperator(BaseOperator):
    """Compare a challenger with the champion on the challenger's holdout; promote it or record why not.

    A refusal is a successful task returning ``{"promoted": False, "reason": ...}``: the pipeline worked,
    the model simply was not better. ``version`` defaults to the version aliased ``challenger``.
    """

    template_fields: Sequence[str] = ("project_name", "version", "mlflow_conn_id")
    operator_extra_links = (ModelVersionLink(), MlflowRunLink())
    ui_color = "#d7f0e3"

    def __init__(
        self,
        *,
        project_name: str,
        version: str | int | None = None,
        approved: bool = False,
        mlflow_conn_id: str = MlflowHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.project_name = project_name
        self.version = version
        self.approved = approved
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import registry
        from mlops_provider.core.config import load_project

        project = load_project(self.project_name)
        hook = MlflowHook(mlflow_conn_id=self.mlflow_conn_id)
        version = None if self.version in (None, "", "None") else str(self.version)
        with hook.environment():
            result = registry.gate_and_promote(
                project, hook.get_conn(), version=version,
                tracking_uri=hook.tracking_uri, registry_uri=hook.registry_uri, approved=self.approved,
                decision_key=f"{context['ti'].dag_id}|{context['ti'].run_id}|{context['ti'].task_id}",
            )
            result["shadow"] = registry.shadow_record(hook.get_conn(), result["model_name"], result["version"])
        ModelVersionLink.persist(context, url=hook.model_version_url(result["model_name"], result["version"]))
        if result.get("run_id"):
            MlflowRunLink.persist(context, url=hook.run_url(result["run_id"]))
        if result["shadow"]["days"]:
            self.log.info("shadow record of v%s: %s", result["version"], result["shadow"])
        if result["promoted"]:
            self.log.info("%s v%s is champion: %s", result["model_name"], result["version"], result["reason"])
        else:
            self.log.warning("%s v%s NOT promoted: %s", result["model_name"], result["version"], result["reason"])
        return json_safe(result)


class RollbackModelOperator(BaseOperator):
    """Point ``champion`` back at ``previous_champion`` (``to="previous"``) or at an explicit version."""

    template_fields: Sequence[str] = ("project_name", "to", "mlflow_conn_id")
    operator_extra_links = (ModelVersionLink(),)
    ui_color = "#f6d8d8"

    def __init__(
        self,
        *,
        project_name: str,
        to: str | int = "previous",
        mlflow_conn_id: str = MlflowHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.project_name = project_name
        self.to = to
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import registry
        from mlops_provider.core.config import load_project

        project = load_project(self.project_name)
        hook = MlflowHook(mlflow_conn_id=self.mlflow_conn_id)
        to = str(self.to).strip() or "previous"
        with hook.environment():
            result = registry.rollback(hook.get_conn(), project.model_name, to=to)
        ModelVersionLink.persist(context, url=hook.model_version_url(result["model_name"], result["version"]))
        self.log.warning("%s rolled back: champion v%s -> v%s", result["model_name"], result["rolled_back_from"],
                         result["version"])
        return result
