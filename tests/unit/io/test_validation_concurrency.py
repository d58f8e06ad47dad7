"""Validations share no Great Expectations state on disk: concurrent runs (two workers, two days of one
backfill) cannot trip over each other, and a worker needs no directory another worker wrote.

Found on the production stack by ``airflow backfill create`` over three days: with one file-mode GX
context under MLOPS_HOME, one day's validation failed with ``CheckpointRelatedResourcesFreshnessError``
("ValidationDefinition 'churn.records' has changed since it has last been saved").
"""

from __future__ import annotations

import multiprocessing
import os

ROWS = 300


def _frame(project_name: str, day: str):
    import datetime as dt

    import pandas as pd
    from mlops_provider.config.project import load_project

    from devkit.stack import day_frames

    project = load_project(project_name)
    records, _ = day_frames(project, dt.date.fromisoformat(day), ROWS)
    # As the ingest stage hands a staged batch to the gate: naive UTC event times, naive interval bounds.
    return records.assign(**{project.event_timestamp: pd.to_datetime(records[project.event_timestamp], utc=True).dt.tz_localize(None)})


def _validate_many(home: str, project_name: str, day: str, runs: int, start, queue) -> None:
    os.environ["MLOPS_HOME"] = home
    try:
        import datetime as dt

        from mlops_provider.config.project import load_project
        from mlops_provider.io.validation import validate_frame

        project = load_project(project_name)
        frame = _frame(project_name, day)
        begin = dt.datetime.fromisoformat(day)
        start.wait(120)
        for i in range(runs):
            outcome = validate_frame(project, frame, interval_start=begin, interval_end=begin + dt.timedelta(days=1),
                                     run_name=f"{day}-{os.getpid()}-{i}")
            if not outcome.success:
                queue.put(f"failed: {outcome.failed[:3]} {outcome.errors[:3]}")
                return
        queue.put("ok")
    except Exception as exc:  # reported to the test, which fails naming it
        queue.put(f"{type(exc).__name__}: {exc}")


def test_concurrent_validations_of_one_project_all_succeed(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    start, queue = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_validate_many, args=(str(tmp_path), "churn", day, 3, start, queue))
             for day in ("2024-01-02", "2024-01-03")]
    for p in procs:
        p.start()
    results = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(60)
    assert results == ["ok", "ok"], results


def test_a_validation_writes_only_its_own_data_docs(tmp_path, monkeypatch):
    import datetime as dt

    from mlops_provider.config import paths
    from mlops_provider.config.project import load_project
    from mlops_provider.io.validation import data_docs_dir, validate_frame

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    project = load_project("churn")
    begin = dt.datetime(2024, 1, 2)
    outcome = validate_frame(project, _frame("churn", "2024-01-02"), interval_start=begin,
                             interval_end=begin + dt.timedelta(days=1), run_name="manual__2024-01-02")
    assert outcome.success, outcome.failed
    own = data_docs_dir(project, "manual__2024-01-02")
    written = [p for p in paths.gx_dir().rglob("*") if p.is_file()]
    assert written and all(own in p.parents for p in written), sorted(map(str, written))[:10]
    assert outcome.data_docs_url and outcome.data_docs_url.startswith(own.as_uri())
    assert (own / "index.html").is_file()


