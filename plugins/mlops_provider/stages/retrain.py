"""Closing the loop: record a retrain request for an alerting day (the policy is :mod:`domain.retrain`)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_provider.config.failpoints import hit
from mlops_provider.domain.layout import as_date
from mlops_provider.domain.retrain import decide_retrain

if TYPE_CHECKING:
    from mlops_provider.config.project import ProjectConfig
    from mlops_provider.io.lake import Lake


def _requests_prefix(project: ProjectConfig) -> str:
    return f"{project.name}/retrain_requests"


def request_retrain(project: ProjectConfig, reports: Lake, day: str | dt.date, kind: str,
                    record: bool = True) -> dict[str, Any]:
    """Decide whether an alert of ``kind`` on ``day`` triggers retraining, and record the request.

    With ``record=False`` only the decision is returned; the caller records it with
    :func:`record_retrain_request` once everything before the announcement (the alert email) succeeded,
    so a failed email and its retry do not lose the retrain.
    """
    day = as_date(day)
    if kind == "ok":
        return decide_retrain(project, day, kind, [])
    requested = [as_date(Path(p).stem) for p in reports.list_files(_requests_prefix(project)) if p.endswith(".json")]
    decision = decide_retrain(project, day, kind, requested)
    if decision["requested"] and record:
        decision["marker"] = record_retrain_request(project, reports, decision)
    return decision


def record_retrain_request(project: ProjectConfig, reports: Lake, decision: dict[str, Any]) -> str:
    """Persist a ``requested`` decision of :func:`request_retrain` (the marker later days' cooldown reads)."""
    record = {"day": decision["day"], "kind": decision["kind"],
              "requested_at": dt.datetime.now(dt.UTC).isoformat()}
    hit("retrain.record")  # decided (and alerted), not recorded
    return reports.write_bytes(f"{_requests_prefix(project)}/{decision['day']}.json", json.dumps(record).encode())
