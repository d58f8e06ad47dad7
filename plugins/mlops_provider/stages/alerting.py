"""The alerting stage: compose the on-call email for a monitoring verdict and deliver it once; follow it up
on the same thread when the retrain it requested is promoted or refused.

The caller chooses the delivery transport (:mod:`mlops_provider.io.email`; the Airflow layer passes
``mlops_provider.hooks.smtp.ConnectionTransport``), the sender address and the links (the Airflow layer
passes http(s) addresses: the report view, the Airflow run and task, MLflow).

Each alert that went out leaves its thread record in the report store,
``<project>/alerts/dt=<day>/<kind>.json`` (``message_id``, ``subject``): the report store is shared by
every worker (S3 in production), so the follow-up, sent by the promotion task on any worker days later,
can reply on the alert's thread.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_provider.config import paths
from mlops_provider.domain import alerts
from mlops_provider.domain.layout import as_date
from mlops_provider.io.email import deliver

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mlops_provider.config.project import ProjectConfig
    from mlops_provider.io.email import SentMarkers, Transport
    from mlops_provider.io.lake import Lake

log = logging.getLogger(__name__)


def runbook_base(default: str | None = None) -> str:
    """Where on-call finds the runbook: ``MLOPS_RUNBOOK_URL``, else ``default`` (the Airflow layer passes the
    report view's runbook page), else docs/runbook.md in the checkout."""
    return (os.environ.get("MLOPS_RUNBOOK_URL") or default
            or (paths.repo_root() / "docs" / "runbook.md").as_uri())


def thread_path(project: ProjectConfig, day: str | dt.date, kind: str) -> str:
    """Where the thread record of the (``day``, ``kind``) alert lives in the report store."""
    return f"{project.name}/alerts/dt={as_date(day).isoformat()}/{kind}.json"


def send_monitoring_alert(project: ProjectConfig, summary: dict[str, Any], *, transport: Transport,
                          actions: list[str], run_url: str | None, report_url: str | None,
                          mlflow_run_url: str | None, task_url: str | None = None, reports: Lake | None = None,
                          runbook: str | None = None, sender: str = alerts.DEFAULT_FROM,
                          markers: SentMarkers | None = None) -> dict[str, Any]:
    """Email on-call about a non-ok verdict through ``transport``, once per (project, day, kind) whatever
    model version scored the day; with ``reports``, record the thread the retrain's follow-up replies to."""
    verdict, day, version = summary["verdict"], summary["day"], summary["model_version"]
    message = alerts.compose_alert(
        project, verdict, day=day, model_version=version, run_url=run_url, report_url=report_url,
        mlflow_run_url=mlflow_run_url, task_url=task_url, actions=actions,
        attach_max_bytes=int(project.alerts["attach_max_bytes"]), sender=sender, runbook=runbook_base(runbook),
    )
    key = alerts.dedup_key(project, day, verdict["kind"])
    result = deliver(message, transport=transport, dedup_key=key, markers=markers)
    if result.get("sent") and reports is not None:
        record = {"key": key, "message_id": str(message["Message-ID"]), "subject": str(message["Subject"]),
                  "model_version": str(version), "sent_at": dt.datetime.now(dt.UTC).isoformat()}
        result["thread"] = reports.write_bytes(thread_path(project, day, verdict["kind"]),
                                               json.dumps(record, indent=2).encode())
    return result


def pending_retrain_request(project: ProjectConfig, reports: Lake) -> dict[str, Any] | None:
    """The newest retrain request (``day``, ``kind``) of the project (:mod:`mlops_provider.stages.retrain`), if any."""
    requests = sorted(p for p in reports.list_files(f"{project.name}/retrain_requests") if p.endswith(".json"))
    if not requests:
        return None
    record = json.loads(reports.read_bytes(requests[-1]))
    record.setdefault("day", Path(requests[-1]).stem)
    return record


def _thread(project: ProjectConfig, reports: Lake, day: str, kind: str) -> dict[str, Any] | None:
    import pyarrow.fs as pafs

    path = thread_path(project, day, kind)
    if reports.fs.get_file_info(f"{reports.root}/{path}").type != pafs.FileType.File:
        return None
    return json.loads(reports.read_bytes(path))


def send_retrain_outcome(project: ProjectConfig, reports: Lake, outcome: dict[str, Any], *, transport: Transport,
                         links: Sequence[tuple[str, str | None]], runbook: str | None = None,
                         sender: str = alerts.DEFAULT_FROM, markers: SentMarkers | None = None) -> dict[str, Any] | None:
    """Tell on-call, on the alert's thread, how the retrain that the newest alert requested ended.

    ``outcome`` is a promotion result (``promoted``, ``version``, ``reason``). Nothing is sent for a
    decision still awaiting a human (``awaiting_approval``) or when no retrain was ever requested; the
    follow-up goes out once per request (dedup key :func:`~mlops_provider.domain.alerts.retrain_outcome_key`):
    the first promotion decided after the request answers it, a later one does not mail again.
    """
    if outcome.get("awaiting_approval"):
        return None
    request = pending_retrain_request(project, reports)
    if request is None:
        log.info("%s: no retrain request on record: no follow-up email", project.name)
        return None
    day, kind = str(request["day"])[:10], str(request.get("kind") or "drift")
    thread = _thread(project, reports, day, kind)
    message = alerts.compose_retrain_outcome(project, outcome, alert_day=day, alert_kind=kind, thread=thread,
                                             links=links, sender=sender, runbook=runbook_base(runbook))
    result = deliver(message, transport=transport, dedup_key=alerts.retrain_outcome_key(project, day, kind),
                     markers=markers)
    log.info("%s: follow-up on the %s alert of %s (%s): %s", project.name, kind, day,
             "same thread" if thread else "no thread record: own thread", result)
    return result
