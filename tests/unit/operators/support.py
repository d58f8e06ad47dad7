"""Helpers of the operator tests: the task context operators read, the pipeline's days, asset names."""

from __future__ import annotations

import datetime as dt
from typing import Any

MODEL = "fraud_classifier"
START = dt.date(2024, 2, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(10)]
ROWS = 1200
DRIFTED = DAYS[-2]  # covariate drift; the last day is clean again


class TaskInstance:
    """What operators use of the task instance: ids, XCom pushes (extra links) and pulls."""

    def __init__(self, *, task_id: str = "task", returns: dict[str, Any] | None = None) -> None:
        self.dag_id, self.run_id, self.task_id, self.try_number = "fraud__test", "manual__test", task_id, 1
        self.returns = returns or {}
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value

    def xcom_pull(self, task_ids: str) -> Any:
        return self.returns.get(task_ids)


class AssetEvent:
    extra: dict[str, Any] | None = None


class OutletEvents(dict):
    """``context["outlet_events"]``: an accessor per outlet, created on first use."""

    def __missing__(self, key: Any) -> AssetEvent:
        self[key] = AssetEvent()
        return self[key]


def task_context(*, task_id: str = "task", run_id: str = "manual__test", **returns: Any) -> dict[str, Any]:
    """A task context with a fresh task instance and no emitted asset event yet."""
    return {"ti": TaskInstance(task_id=task_id, returns=returns), "run_id": run_id, "outlet_events": OutletEvents()}


def asset(stage: str):
    from airflow.sdk import Asset

    return Asset(name=f"fraud.{stage}", uri=f"x-mlops://fraud/{stage}")


def aliases(client) -> dict[str, str]:
    from mlops_provider.io import model_store

    return {k: v for k, v in model_store.aliases(client, MODEL).items() if v is not None}
