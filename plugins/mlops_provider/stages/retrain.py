"""Closing the loop: record a retrain request for an alerting day (the policy is :mod:`domain.retrain`).

A request is a marker ``<project>/retrain_requests/<day>.json`` in the report store (later days' cooldown
reads them). It names the task that recorded it (``requested_by``) and, once the announcing task handed it
to Airflow, that task (``announced_by``). The monitoring task records it before it emails on-call, so an
SMTP outage cannot lose it: a retry of the task that recorded a request nobody announced yet (the worker
died, or the email failed) decides "requested" again, and if every try fails the announcing task (which
runs whatever the monitoring task's outcome) announces the recorded request itself
(:func:`unannounced_requests`). Each request is announced once; a rerun after the announcement requests
nothing new.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_provider.config.failpoints import hit
from mlops_provider.domain.layout import as_date
from mlops_provider.domain.retrain import decide_retrain

if TYPE_CHECKING:
    from mlops_provider.config.project import ProjectConfig
    from mlops_provider.io.lake import Lake

log = logging.getLogger(__name__)


def _requests_prefix(project: ProjectConfig) -> str:
    return f"{project.name}/retrain_requests"


def _marker_path(project: ProjectConfig, day: str | dt.date) -> str:
    return f"{_requests_prefix(project)}/{as_date(day).isoformat()}.json"


def request_retrain(project: ProjectConfig, reports: Lake, day: str | dt.date, kind: str,
                    record: bool = True, requested_by: str | None = None) -> dict[str, Any]:
    """Decide whether an alert of ``kind`` on ``day`` triggers retraining, and record the request.

    With ``record=False`` only the decision is returned; the caller records it with
    :func:`record_retrain_request` (before its alert email). ``requested_by`` names the deciding task
    (the same for every try of it): a request it recorded itself and that was not announced yet is
    returned as requested again (``recorded: True``), for the retry of a try that died before returning.
    """
    day = as_date(day)
    if kind == "ok":
        return decide_retrain(project, day, kind, [])
    requested = [as_date(Path(p).stem) for p in reports.list_files(_requests_prefix(project)) if p.endswith(".json")]
    if requested_by and day in requested and (own := _unannounced_own_request(project, reports, day, requested_by)):
        return own
    decision = decide_retrain(project, day, kind, requested)
    if decision["requested"] and record:
        decision["marker"] = record_retrain_request(project, reports, decision, requested_by=requested_by)
    return decision


def _unannounced_own_request(project: ProjectConfig, reports: Lake, day: dt.date, requested_by: str
                             ) -> dict[str, Any] | None:
    """The request of ``day`` if ``requested_by`` recorded it and no task announced it yet, as a decision."""
    path = _marker_path(project, day)
    marker = json.loads(reports.read_bytes(path))
    if marker.get("requested_by") != requested_by or marker.get("announced_by"):
        return None
    log.warning("%s %s: the retrain request recorded at %s by an earlier try of %s was never announced; "
                "announcing it now", project.name, day, marker.get("requested_at"), requested_by)
    return {"requested": True, "recorded": True, "day": day.isoformat(), "kind": marker["kind"],
            "marker": reports.uri(f"{reports.root}/{path}"),
            "reason": f"retraining requested: {marker['kind']} on {day} triggers DAG {project.dag_id('train')} "
                      f"(recorded by an earlier try of this task, not announced yet)"}


def record_retrain_request(project: ProjectConfig, reports: Lake, decision: dict[str, Any],
                           requested_by: str | None = None) -> str:
    """Persist a ``requested`` decision of :func:`request_retrain` (the marker later days' cooldown reads)."""
    record = {"day": decision["day"], "kind": decision["kind"],
              "requested_at": dt.datetime.now(dt.UTC).isoformat(), "requested_by": requested_by}
    hit("retrain.record")  # decided, not recorded (nor alerted)
    return reports.write_bytes(_marker_path(project, decision["day"]), json.dumps(record).encode())


def unannounced_requests(project: ProjectConfig, reports: Lake, days: list[str], requested_by: str
                         ) -> list[dict[str, Any]]:
    """The requests of ``days`` that ``requested_by`` recorded and no task announced yet (their markers).

    What the announcing task hands to Airflow when the deciding task failed after recording them (its
    alert email could not be sent on any try): the retraining is then not lost with the email.
    """
    on_record = set(reports.list_files(_requests_prefix(project)))
    found = []
    for day in days:
        path = _marker_path(project, day)
        if path in on_record:
            marker = json.loads(reports.read_bytes(path))
            if marker.get("requested_by") == requested_by and not marker.get("announced_by"):
                found.append(marker)
    return found


def mark_retrain_announced(project: ProjectConfig, reports: Lake, day: str | dt.date, announced_by: str) -> str | None:
    """Note on ``day``'s request that ``announced_by`` hands it to Airflow: a later rerun of the deciding
    task then requests nothing new. ``None`` when no request of ``day`` is on record."""
    path = _marker_path(project, day)
    if path not in reports.list_files(_requests_prefix(project)):
        log.warning("%s %s: no retrain request on record to mark announced", project.name, as_date(day))
        return None
    marker = json.loads(reports.read_bytes(path))
    marker.update(announced_by=announced_by, announced_at=dt.datetime.now(dt.UTC).isoformat())
    return reports.write_bytes(path, json.dumps(marker).encode())
