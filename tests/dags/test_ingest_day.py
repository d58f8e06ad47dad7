"""Which day an ingest run processes: the day its logical date names, scheduled or `airflow dags test`.

The runs' logical dates and data intervals come from the DAG's own (core) timetable, the way the
scheduler and ``airflow dags test`` compute them; the task's ``day`` field is rendered with the
DAG's Jinja environment (StrictUndefined), as the task runner renders it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import pytest

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "ingest.py"
UTC = dt.UTC


@pytest.fixture(scope="module")
def ingest_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags["fraud__ingest"]


@pytest.fixture(scope="module")
def timetable(ingest_dag):
    from airflow.serialization.encoders import coerce_to_core_timetable

    return coerce_to_core_timetable(ingest_dag.timetable)


def _render(dag, *, logical_date=None, data_interval=None, run_after, day=None) -> dict[str, str]:
    """The rendered ``day`` of each task for a run with that logical date, interval and run_after."""
    from airflow.sdk.execution_time.context import MacrosAccessor

    context = {"params": {"day": day}, "macros": MacrosAccessor(), "dag_run": SimpleNamespace(run_after=run_after)}
    if logical_date is not None:  # the task runner only sets these keys when the run has a logical date
        context.update(logical_date=logical_date, data_interval_start=data_interval.start,
                       data_interval_end=data_interval.end)
    return {t.task_id: t.render_template(t.day, context) for t in dag.tasks if hasattr(t, "day")}


def test_scheduled_run_ingests_the_day_of_its_logical_date(ingest_dag, timetable):
    from airflow.timetables.base import DataInterval, TimeRestriction

    day = dt.datetime(2024, 1, 5, tzinfo=UTC)
    info = timetable.next_dagrun_info(
        last_automated_data_interval=DataInterval(day - dt.timedelta(days=1), day),
        restriction=TimeRestriction(earliest=ingest_dag.start_date, latest=None, catchup=True),
    )
    # CronDataIntervalTimetable: logical date == interval start, the run starts at the interval end.
    assert (info.logical_date, info.data_interval.start, info.run_after) == (day, day, day + dt.timedelta(days=1))
    rendered = _render(ingest_dag, logical_date=info.logical_date, data_interval=info.data_interval,
                       run_after=info.run_after)
    assert rendered == {"wait_for_data": "2024-01-05", "extract": "2024-01-05", "plan_shards": "2024-01-05", "validate": "2024-01-05"}


def test_dags_test_with_a_date_ingests_that_date(ingest_dag, timetable):
    """``airflow dags test fraud__ingest 2024-01-05`` (and a trigger with that logical date)."""
    logical = dt.datetime(2024, 1, 5, tzinfo=UTC)
    interval = timetable.infer_manual_data_interval(run_after=logical)
    # The trap: a manual run's interval ends at its logical date, so data_interval_start is the 4th.
    assert (interval.start, interval.end) == (logical - dt.timedelta(days=1), logical)
    rendered = _render(ingest_dag, logical_date=logical, data_interval=interval,
                       run_after=dt.datetime(2026, 11, 23, 18, 13, tzinfo=UTC))
    assert rendered == {"wait_for_data": "2024-01-05", "extract": "2024-01-05", "plan_shards": "2024-01-05", "validate": "2024-01-05"}


def test_run_without_logical_date_ingests_the_last_complete_day(ingest_dag):
    rendered = _render(ingest_dag, run_after=dt.datetime(2024, 1, 6, 9, 30, tzinfo=UTC))
    assert rendered == {"wait_for_data": "2024-01-05", "extract": "2024-01-05", "plan_shards": "2024-01-05", "validate": "2024-01-05"}


def test_day_param_wins(ingest_dag, timetable):
    logical = dt.datetime(2024, 1, 5, tzinfo=UTC)
    rendered = _render(ingest_dag, logical_date=logical, data_interval=timetable.infer_manual_data_interval(
        run_after=logical), run_after=logical, day="2023-12-24")
    assert rendered == {"wait_for_data": "2023-12-24", "extract": "2023-12-24", "plan_shards": "2023-12-24", "validate": "2023-12-24"}
    assert _render(ingest_dag, run_after=logical, day="2023-12-24")["extract"] == "2023-12-24"
