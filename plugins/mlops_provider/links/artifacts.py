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

    from mlops_provider.io.lake import Lake

#: Where the provider's Airflow plugin mounts its pages (``mlops_provider.web``).
VIEW_PREFIX = "/mlops"


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


def report_view_url(project: str, path: str) -> str:
    """The http(s) address of report-store object ``<project>/<path>`` in the report view of the Airflow UI.

    The view streams it from the lake with its content type to anyone logged in to the UI with read
    access to the project's DAGs; the link itself carries no credential.
    """
    from urllib.parse import quote

    return f"{airflow_base_url()}{VIEW_PREFIX}/reports/{quote(project, safe='')}/{quote(path.lstrip('/'), safe='/=')}"


def report_link(reports: Lake, uri: str | None) -> str | None:
    """:func:`report_view_url` of a report-store URI (``s3://bucket/reports/<project>/...`` or ``file://...``).

    A URI outside the report store is returned as it is (nothing in the view could serve it).
    """
    if not uri:
        return None
    root = reports.uri(reports.root).rstrip("/") + "/"
    if not uri.startswith(root):
        return uri
    project, _, path = uri[len(root):].partition("/")
    return report_view_url(project, path) if project and path else uri


def runbook_view_url(anchor: str = "") -> str:
    """The on-call runbook rendered by the Airflow plugin (``MLOPS_RUNBOOK_URL`` overrides it)."""
    import os

    base = os.environ.get("MLOPS_RUNBOOK_URL") or f"{airflow_base_url()}{VIEW_PREFIX}/docs/runbook.md"
    return f"{base}#{anchor}" if anchor else base


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
