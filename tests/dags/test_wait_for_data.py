"""The ingest DAG waits for its day's data with a deadline instead of failing (``wait_for_data``).

Each test runs the whole ``<project>__ingest`` DAG with ``dag.test()`` (the scheduler's dependency loop,
reschedules included) on a fresh MLOPS_HOME with the landing source, and reads the outcome from the
metadata database and the on-call outbox (failure emails land there without an SMTP connection).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pytest

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "ingest.py"
ROWS = 200


@pytest.fixture
def ingest(airflow_db, mlops_home):
    """A fresh parse of the ingest DAG of ``fraud``, its sensor looking every second."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    dag = bag.dags["fraud__ingest"]
    dag.task_dict["wait_for_data"].poke_interval = 1
    return dag


def _states(dag_run) -> dict[str, tuple[str, int]]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).all()
        return {ti.task_id: (str(getattr(ti.state, "value", ti.state)), ti.try_number) for ti in tis}


def _reschedules(dag_id: str, run_id: str | None = None) -> int:
    """How many times ``wait_for_data`` looked, found nothing and was rescheduled (in ``run_id``, or any run)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session

    with create_session() as session:
        query = session.query(TaskReschedule).join(TaskInstance, TaskReschedule.ti_id == TaskInstance.id).filter(
            TaskInstance.dag_id == dag_id, TaskInstance.task_id == "wait_for_data")
        if run_id:
            query = query.filter(TaskInstance.run_id == run_id)
        return query.count()


def _emails(home: Path) -> list[str]:
    """Subject and plain-text body of each email in the outbox."""
    from email import policy
    from email.parser import BytesParser

    found = []
    for path in sorted((home / "outbox").glob("*.eml")):
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        found.append(f"{message['Subject']}\n{message.get_body(preferencelist=('plain',)).get_content()}")
    return found


def _land_after_looks(day: dt.date, looks: int) -> threading.Thread:
    """Land the day's file once the sensor has looked and been rescheduled ``looks`` times."""
    from mlops_provider.config import paths
    from mlops_provider.config.project import load_project

    from devkit.datagen.landing import write_landing_day

    project, landing = load_project("fraud"), paths.landing_dir() / "fraud"

    def land() -> None:
        deadline = time.monotonic() + 120
        while _reschedules("fraud__ingest") < looks and time.monotonic() < deadline:
            time.sleep(0.2)
        write_landing_day(project, landing, day, rows=ROWS)

    thread = threading.Thread(target=land, daemon=True)
    thread.start()
    return thread


def _run(dag, day: dt.date):
    logical = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return dag.test(logical_date=logical, run_conf={"day": day.isoformat()})


def test_a_day_not_landed_yet_waits_then_is_ingested_once_it_lands(ingest, mlops_home):
    """Was: the extract failed 'nothing has landed', was retried twice and emailed on-call each time."""
    today = dt.datetime.now(dt.UTC).date()  # not over: its deadline is tomorrow + runs.source_wait_hours
    lander = _land_after_looks(today, 2)
    dag_run = _run(ingest, today)
    lander.join()
    states = _states(dag_run)
    assert str(getattr(dag_run.state, "value", dag_run.state)) == "success", states
    assert states == {"wait_for_data": ("success", 1), "extract": ("success", 1), "plan_shards": ("success", 1),
                      "validate_shard": ("skipped", 0), "validate": ("success", 1)}
    assert _reschedules(dag_run.dag_id, dag_run.run_id) >= 2, "it looked, found nothing and was rescheduled"
    assert _emails(mlops_home) == [], "waiting is not a failure: nobody is emailed"


def test_after_the_deadline_it_fails_once_naming_the_source_and_the_expected_file(ingest, mlops_home):
    """A day whose deadline passed (a backfill, a late unpause) fails on its first look, without retries."""
    from mlops_provider.config import paths

    day = dt.date(2024, 1, 5)  # deadline 2024-01-06 04:00 UTC, long gone
    (paths.landing_dir() / "fraud" / "records").mkdir(parents=True)
    dag_run = _run(ingest, day)
    states = _states(dag_run)
    assert str(getattr(dag_run.state, "value", dag_run.state)) == "failed", states
    assert states["wait_for_data"] == ("failed", 1), "not retried: waiting longer is what the deadline is for"
    assert states["extract"][0] == states["validate"][0] == "upstream_failed"
    assert _reschedules(dag_run.dag_id, dag_run.run_id) == 0
    emails = _emails(mlops_home)
    task_emails = [e for e in emails if "wait_for_data" in e]
    assert task_emails, emails
    text = task_emails[0]
    for expected in ("nothing has landed in the landing source by the deadline 2024-01-06 04:00 UTC",
                     "runs.source_wait_hours", "records/{date}.{format}", "records/2024-01-05.csv",
                     str(paths.landing_dir() / "fraud"), "day=2024-01-05", "Not retried"):
        assert expected in text, (expected, text)


def test_a_wait_that_runs_out_before_the_deadline_skips_without_paging(ingest, mlops_home, monkeypatch):
    """A manual run for a day not over yet: its own wait ends before the day is late, so it skips, not fails."""
    today = dt.datetime.now(dt.UTC).date()
    ingest.task_dict["wait_for_data"].wait_hours = 3 / 3600  # 3 seconds of waiting, deadline 00:00:03 tomorrow
    dag_run = _run(ingest, today)
    states = _states(dag_run)
    assert str(getattr(dag_run.state, "value", dag_run.state)) == "success", states
    assert states == {"wait_for_data": ("skipped", 1), "extract": ("skipped", 0), "plan_shards": ("skipped", 0),
                      "validate_shard": ("skipped", 0), "validate": ("skipped", 0)}
    assert _reschedules(dag_run.dag_id, dag_run.run_id) >= 1
    assert _emails(mlops_home) == []
