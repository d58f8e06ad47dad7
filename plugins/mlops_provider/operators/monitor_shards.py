"""Operators of a day monitored in shards: plan, one mapped task per shard; the monitor task merges.

A day with more predictions than the project's ``runs.shard_rows`` is split into shards of whole row
groups (:func:`~mlops_provider.stages.monitor.plan_monitor_shards`); Airflow's dynamic task mapping runs
one :class:`MonitorShardOperator` per shard, each staging the statistics of its rows in the lake;
:class:`~mlops_provider.operators.monitoring.MonitorDriftOperator` (task id ``monitor``, as before) then
merges the staged statistics of each sharded day and computes the small days' itself. The merge is
exact, so either way the verdict and report are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlops_provider.operators.base import ProjectBaseOperator
from mlops_provider.operators.common import json_safe
from mlops_provider.operators.shards import PLANS_KEY, plan_days

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["PLANS_KEY", "MonitorShardOperator", "PlanMonitorShardsOperator"]


class PlanMonitorShardsOperator(ProjectBaseOperator):
    """Plan the shards of every day of ``day`` whose predictions have more than ``shard_rows`` rows.

    Returns one item ``{"day", "index", "plan"}`` per shard (what the mapped shard tasks expand over; an
    empty list when every day is small) and pushes ``{day: plan}`` under the XCom key ``plans``. A day
    without predictions is left to the monitor task, which names the missing partition.

    :param shard_rows: rows per shard; default the project's ``runs.shard_rows``.
    """

    template_fields: Sequence[str] = ("project_name", "day")
    ui_color = "#fdebe8"

    def __init__(self, *, day: str, shard_rows: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.day = day
        self.shard_rows = shard_rows

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from mlops_provider.stages.monitor import plan_monitor_shards

        return plan_days(self, context, "monitoring",
                         lambda day, rows: plan_monitor_shards(self.project, lake=self.lake, day=day, shard_rows=rows))


class MonitorShardOperator(ProjectBaseOperator):
    """Stage the monitoring statistics of one shard (``shard`` = an item of :class:`PlanMonitorShardsOperator`)."""

    template_fields: Sequence[str] = ("project_name", "shard")
    ui_color = "#fdebe8"

    def __init__(self, *, shard: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shard = shard

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.stages.monitor import monitor_shard

        plan, index = self.shard["plan"], int(self.shard["index"])
        self.log.info("%s %s: monitoring shard %d of %d (%d predictions)", self.project_name, plan["day"], index + 1,
                      len(plan["shards"]), plan["shards"][index]["rows"])
        return json_safe(monitor_shard(self.project, lake=self.lake, plan=plan, index=index))
