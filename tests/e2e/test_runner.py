"""The runner for real data: a user's landed files through every stage, one command, over a range of days."""

from __future__ import annotations

import datetime as dt

import pytest

from devkit.datagen.landing import write_landing_day

pytestmark = pytest.mark.slow


def test_runner_runs_landed_days_and_prints_a_summary(airflow_db, mlops_home, capsys):
    from mlops_provider.config.project import load_project
    from mlops_provider.runner import main

    project = load_project("churn")
    days = [dt.date(2024, 3, 1) + dt.timedelta(days=i) for i in range(2)]
    for day in days:
        write_landing_day(project, mlops_home / project.source["path"], day, rows=300)
    # A day with nothing landed fails its ingest and the runner says so (exit 1), the others still run.
    code = main(["--project", "churn", "--start", "2024-03-01", "--end", "2024-03-03", "--train", "never"])
    out = capsys.readouterr().out
    assert code == 1
    assert "[##############################] 3/3" in out
    table = out.split("day         ingest", 1)[1]
    for day in days:
        assert f"{day.isoformat()}  ok        ok        -" in table
    assert "2024-03-03  FAILED    -" in table
    assert "FAILED churn__ingest 2024-03-03" in out
    # Said as what it is (the wait's deadline), not as a quarantined batch.
    failed_line = next(line for line in out.splitlines() if line.split()[:2] == ["churn__ingest", "failed"])
    assert "nothing landed in the source by the day's deadline" in failed_line, failed_line
    assert (mlops_home / "lake" / "churn" / "features" / "entity" / "subscriber" / "dt=2024-03-02").is_dir()


def test_runner_rejects_an_end_before_the_start(capsys):
    from mlops_provider.runner import main

    with pytest.raises(SystemExit):
        main(["--project", "churn", "--start", "2024-03-05", "--end", "2024-03-01"])
    assert "is before --start" in capsys.readouterr().err


def test_summary_table_and_progress_bar():
    from mlops_provider.runner import DagResult, progress_bar, summary_table

    day = dt.date(2024, 1, 2)
    results = [DagResult("p__ingest", day, "success", 1.0, "r1"), DagResult("p__train", day, "failed", 1.0, "r2"),
               DagResult("p__train", day, "success", 1.0, "r3")]
    assert summary_table(results).splitlines()[1] == "2024-01-02  ok        -         -         -         FAILED,ok "
    assert progress_bar(1, 4, width=8) == "[##......] 1/4"
