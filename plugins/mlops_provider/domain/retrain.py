"""Retrain policy: does an alert on a day ask for retraining, given the requests made before it?

One request per day at most (a rerun of the day requests nothing new), and none while an earlier
request is younger than ``model.retrain_cooldown_hours`` in data time: a drifting week retrains once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_provider.config.project import ProjectConfig


def decide_retrain(project: ProjectConfig, day: dt.date, kind: str, requested_days: Iterable[dt.date]
                   ) -> dict[str, Any]:
    """The decision for an alert of ``kind`` on ``day``; ``requested_days``: the days already requested."""
    if kind == "ok":
        return {"requested": False, "reason": "no alert condition: nothing to retrain"}
    earlier = sorted(requested_days)
    if day in earlier:
        return {"requested": False, "duplicate": True,
                "reason": f"retraining was already requested for {day} (this is a rerun): not requested again"}
    cooldown = dt.timedelta(hours=float(project.model["retrain_cooldown_hours"]))
    hours = f"{cooldown.total_seconds() / 3600:g}h"
    recent = [d for d in earlier if d < day and dt.timedelta(days=(day - d).days) < cooldown]
    if recent:
        until = recent[-1] + cooldown
        return {"requested": False, "cooldown": True, "previous_request": recent[-1].isoformat(),
                "reason": f"retraining NOT triggered: on cooldown since the request of {recent[-1]} "
                          f"(cooldown {hours}, until {until:%Y-%m-%d %H:%M})"}
    return {"requested": True, "day": day.isoformat(), "kind": kind,
            "reason": f"retraining requested: {kind} on {day} triggers DAG {project.dag_id('train')} "
                      f"(cooldown {hours})"}
