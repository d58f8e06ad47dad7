"""The alerting stage: compose the on-call email for a monitoring verdict and deliver it once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_provider.config.project import ProjectConfig


def send_monitoring_alert(project: ProjectConfig, summary: dict[str, Any], *, actions: list[str],
                          run_url: str | None, report_url: str | None, mlflow_run_url: str | None,
                          report_html: bytes | None) -> dict[str, Any]:
    """Email on-call about a non-ok verdict, once per (project, model version, day, kind)."""
    from mlops_provider.domain import alerts

    verdict, day, version = summary["verdict"], summary["day"], summary["model_version"]
    message = alerts.compose_alert(
        project, verdict, day=day, model_version=version, run_url=run_url, report_url=report_url,
        mlflow_run_url=mlflow_run_url, actions=actions, report_html=report_html,
        attach_max_bytes=int(project.alerts["attach_max_bytes"]),
    )
    return alerts.send_alert(message, smtp_conn_id=project.alerts.get("smtp_conn_id", "smtp_default"),
                             dedup_key=alerts.dedup_key(project, version, day, verdict["kind"]))
