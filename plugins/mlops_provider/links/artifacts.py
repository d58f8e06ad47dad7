"""Extra links from task instances to the artifacts they produced (reports, MLflow runs, model versions).

Each operator calls ``SomeLink.persist(context, url=...)`` once the artifact exists; the link reads the
URL back from XCom, so the Airflow UI shows a button only for task instances that produced one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom

if TYPE_CHECKING:
    from airflow.models.taskinstancekey import TaskInstanceKey
    from airflow.sdk import Context


def airflow_base_url() -> str:
    """The Airflow UI's address (``[api] base_url``, default ``http://localhost:8080``), without a trailing slash."""
    from airflow.configuration import conf

    return (conf.get("api", "base_url", fallback=None) or "http://localhost:8080/").rstrip("/")


def dag_run_url(dag_id: str, run_id: str) -> str:
    """The Airflow UI page of one DAG run."""
    from urllib.parse import quote

    return f"{airflow_base_url()}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"


def task_instance_url(dag_id: str, run_id: str, task_id: str, *, map_index: int = -1,
                      try_number: int | None = None) -> str:
    """The Airflow UI page (with its log) of one task instance of a DAG run, at one try when given."""
    from urllib.parse import quote

    mapped = f"/mapped/{map_index}" if map_index >= 0 else ""
    tried = f"?try_number={try_number}" if try_number else ""
    return f"{dag_run_url(dag_id, run_id)}/tasks/{quote(task_id)}{mapped}{tried}"


class ArtifactLink(BaseOperatorLink):
    """A link whose target URL the task stored in XCom under ``key``."""

    name: ClassVar[str] = "Artifact"
    key: ClassVar[str] = "mlops_artifact_link"

    def get_link(self, operator, *, ti_key: TaskInstanceKey) -> str:
        try:
            value = XCom.get_value(key=self.key, ti_key=ti_key)
        except Exception:  # a missing XCom backend row must not break the task page
            return ""
        return (value or {}).get("url", "") if isinstance(value, dict) else ""

    @classmethod
    def persist(cls, context: Context, *, url: str) -> None:
        context["ti"].xcom_push(key=cls.key, value={"url": url})


class ValidationReportLink(ArtifactLink):
    name = "Validation report"
    key = "mlops_validation_report"


class MlflowRunLink(ArtifactLink):
    name = "MLflow run"
    key = "mlops_mlflow_run"


class ModelVersionLink(ArtifactLink):
    name = "Model version"
    key = "mlops_model_version"


class DriftReportLink(ArtifactLink):
    name = "Drift report"
    key = "mlops_drift_report"
