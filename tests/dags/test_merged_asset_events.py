"""Asset-triggered runs process every day their (possibly merged) asset events name, not only the latest.

When upstream runs finish faster than a downstream DAG, Airflow queues their asset events and the next
downstream run receives all of them; the rendered ``day`` of each task must list every day, oldest first.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    bags = {name: DagBag(dag_folder=str(DAGS / f"{name}.py")) for name in ("features", "score", "monitor")}
    assert all(b.import_errors == {} for b in bags.values())
    return {dag_id: dag for b in bags.values() for dag_id, dag in b.dags.items()}


def _events(*extras):
    return {"fraud.validated": [SimpleNamespace(extra=e) for e in extras]}


def _render(dag, field: str, task_id: str, *, day=None, events=None) -> str:
    from airflow.sdk.execution_time.context import MacrosAccessor

    task = dag.get_task(task_id)
    context = {"params": {"day": day}, "macros": MacrosAccessor(), "triggering_asset_events": events or {},
               "dag_run": SimpleNamespace(run_after=dt.datetime(2024, 1, 9, 1, tzinfo=dt.UTC)),
               "logical_date": None}
    context.update(dag.user_defined_macros)
    return task.render_template(getattr(task, field), context)


def test_merged_events_render_every_day_oldest_first(bag):
    events = _events({"day": "2024-01-05"}, {"day": "2024-01-03"}, {"day": "2024-01-04"}, {"day": "2024-01-05"})
    features = bag["fraud__features"]
    assert _render(features, "day", "compute_features", events=events) == "2024-01-03,2024-01-04,2024-01-05"
    assert _render(features, "start", "materialize", events=events) == "2024-01-03,2024-01-04,2024-01-05"
    # A score run triggered by a features event that already covered several days.
    score_events = {"fraud.features": [SimpleNamespace(extra={"day": "2024-01-05",
                                                              "days": ["2024-01-04", "2024-01-05"]})]}
    assert _render(bag["fraud__score"], "day", "score", events=score_events) == "2024-01-04,2024-01-05"
    assert _render(bag["fraud__monitor"], "day", "monitor", events=events).count(",") == 2


def test_day_param_wins_and_run_date_is_the_fallback(bag):
    features = bag["fraud__features"]
    assert _render(features, "day", "compute_features", day="2024-01-02", events=_events({"day": "2024-01-05"})) \
        == "2024-01-02"
    assert _render(features, "day", "compute_features") == "2024-01-09"


def test_split_days():
    from mlops_provider.dag_factory import split_days

    assert split_days("2024-01-04, 2024-01-03,2024-01-04") == ["2024-01-03", "2024-01-04"]
    assert split_days("2024-01-03") == ["2024-01-03"]
    with pytest.raises(ValueError, match="pass the 'day' param"):
        split_days(" , ")
