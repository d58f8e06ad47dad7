"""What every sharded stage's operators share: the plan task's XCom shape.

A plan task returns one item ``{"day", "index", "plan"}`` per shard (what the mapped shard tasks expand
over; an empty list when every day fits one task) and pushes ``{day: plan}`` under the XCom key
:data:`PLANS_KEY` for the stage's commit task (see :mod:`mlops_provider.domain.shards`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Context

PLANS_KEY = "plans"


def publish_plans(context: Context, plans: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Push ``{day: plan}`` for the commit task; return the mapped tasks' items, one per shard."""
    context["ti"].xcom_push(key=PLANS_KEY, value=plans)
    return [{"day": day, "index": s["index"], "plan": plan} for day, plan in plans.items() for s in plan["shards"]]


def plan_of(plans: Any, day: str) -> dict[str, Any] | None:
    """The plan of ``day`` in a commit task's rendered ``plans`` (``None``: the day was not split)."""
    return plans.get(day) if isinstance(plans, dict) else None


def plan_days(operator: Any, context: Context, stage: str,
              plan_day: Callable[[str, int], dict[str, Any] | None]) -> list[dict[str, Any]]:
    """What every stage's plan task does: plan each day of ``operator.day`` with ``plan_day(day, shard_rows)``
    (``None``: the day fits one task), publish the plans (:func:`publish_plans`), log, return the items.

    ``shard_rows`` is the operator's ``shard_rows`` when set, else the project's ``runs.shard_rows``.
    """
    from mlops_provider.operators.common import int_or_none

    shard_rows = int_or_none(operator.shard_rows) or int(operator.project.runs["shard_rows"])
    plans = {p["day"]: p for p in operator.each_day(operator.day, lambda day: plan_day(day, shard_rows)) if p}
    items = publish_plans(context, plans)
    operator.log.info("%s: %d day(s) in %s shards, %d shard task(s)", operator.project_name, len(plans), stage,
                      len(items))
    return items
