"""The alerting stage: compose the on-call email for a monitoring verdict and deliver it once.

The caller chooses the delivery transport (:mod:`mlops_provider.io.email`; the Airflow layer passes
``mlops_provider.hooks.smtp.ConnectionTransport``) and the sender address.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from mlops_provider.config import paths
from mlops_provider.domain import alerts
from mlops_provider.io.email import deliver

if TYPE_CHECKING:
    from mlops_provider.config.project import ProjectConfig
    from mlops_provider.io.email import SentMarkers, Transport


def runbook_base() -> str:
    """Where on-call finds the runbook: ``MLOPS_RUNBOOK_URL`` or docs/runbook.md in the checkout."""
    return os.environ.get("MLOPS_RUNBOOK_URL") or (paths.repo_root() / "docs" / "runbook.md").as_uri()


def send_monitoring_alert(project: ProjectConfig, summary: dict[str, Any], *, transport: Transport,
                          actions: list[str], run_url: str | None, report_url: str | None,
                          mlflow_run_url: str | None, report_html: bytes | None,
                          sender: str = alerts.DEFAULT_FROM, markers: SentMarkers | None = None) -> dict[str, Any]:
    """Email on-call about a non-ok verdict through ``transport``, once per (project, model version, day, kind)."""
    verdict, day, version = summary["verdict"], summary["day"], summary["model_version"]
    message = alerts.compose_alert(
        project, verdict, day=day, model_version=version, run_url=run_url, report_url=report_url,
        mlflow_run_url=mlflow_run_url, actions=actions, report_html=report_html,
        attach_max_bytes=int(project.alerts["attach_max_bytes"]), sender=sender, runbook=runbook_base(),
    )
    return deliver(message, transport=transport, dedup_key=alerts.dedup_key(project, version, day, verdict["kind"]),
                   markers=markers)
