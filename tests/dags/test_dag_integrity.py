"""DAG integrity: every DAG file imports cleanly, fast, with owner, tags, retries, docs, and the right ids."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlops_provider.config.project import load_projects

DAGS = Path(__file__).resolve().parents[2] / "dags"
# boto3 is left out: Airflow itself imports it while it discovers the amazon provider's asset URI handlers.
HEAVY = ("great_expectations", "mlflow", "feast", "evidently", "sklearn", "pandas", "pyarrow")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_one_dag_per_project_and_stage(dagbag):
    stems = sorted(p.stem for p in DAGS.glob("*.py"))
    expected = {p.dag_id(stem) for p in load_projects() for stem in stems}
    assert set(dagbag.dag_ids) == expected


@pytest.mark.parametrize("project", [p.name for p in load_projects()])
def test_dag_conventions(dagbag, project):
    dags = [d for d in dagbag.dags.values() if d.dag_id.startswith(f"{project}__")]
    assert dags
    for dag in dags:
        assert dag.doc_md and dag.tags and project in dag.tags, dag.dag_id
        for t in dag.tasks:
            assert t.owner and t.owner != "airflow", (dag.dag_id, t.task_id)
            assert t.retries >= 2, (dag.dag_id, t.task_id)
            assert t.on_failure_callback, (dag.dag_id, t.task_id)


def test_dag_files_import_nothing_heavy():
    code = (
        "import sys, runpy, glob\n"
        f"for f in sorted(glob.glob({str(DAGS)!r} + '/*.py')): runpy.run_path(f)\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("HEAVY="))
    assert line == "HEAVY=", f"DAG parse imported heavy modules: {line}"


def test_run_settings_come_from_the_project(tmp_path, monkeypatch):
    """``runs`` in the YAML sets every task's retries, delay and timeout and every DAG run's timeout."""
    import datetime as dt
    import shutil

    import yaml
    from airflow.dag_processing.dagbag import DagBag
    from mlops_provider.config import paths

    raw = yaml.safe_load((paths.projects_dir() / "churn.yaml").read_text())
    raw["runs"] = {"retries": 4, "retry_delay_minutes": 3, "execution_timeout_minutes": 30,
                   "dagrun_timeout_minutes": 90, "source_wait_hours": 1}
    (tmp_path / "churn.yaml").write_text(yaml.safe_dump(raw))
    shutil.copy(paths.projects_dir() / "fraud.yaml", tmp_path / "fraud.yaml")
    monkeypatch.setenv("MLOPS_PROJECTS_DIR", str(tmp_path))
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    for dag in bag.dags.values():
        churn = dag.dag_id.startswith("churn__")
        assert dag.dagrun_timeout == dt.timedelta(minutes=90 if churn else 360), dag.dag_id
        for task in dag.tasks:
            assert task.retries == (4 if churn else 2), (dag.dag_id, task.task_id)
            assert task.execution_timeout == dt.timedelta(minutes=30 if churn else 120), (dag.dag_id, task.task_id)
            assert task.retry_delay == dt.timedelta(minutes=3 if churn else 1), (dag.dag_id, task.task_id)


def test_model_ops_form_cannot_roll_production_back_in_one_click(dagbag):
    """The trigger form of model_ops has no default action and no prefilled reason: a human chooses both."""
    from airflow.sdk.definitions.param import ParamValidationError

    for project in load_projects():
        params = dagbag.dags[project.dag_id("model_ops")].params
        assert params.dump()["action"] is None and params.dump()["reason"] is None
        with pytest.raises(ParamValidationError, match="action"):
            params.validate()
        train = dagbag.dags[project.dag_id("train")].params.get_param("trigger")
        # Every choice of the train form has a label (a None choice would show as a literal "null").
        assert set(train.schema["values_display"]) == set(train.schema["enum"])


def test_monitor_dag_computes_a_large_day_in_shards_before_the_monitor_task(dagbag):
    """plan_shards -> monitor_shard (one mapped task per shard) -> monitor -> request_retrain: ``monitor`` keeps
    its id (request_retrain reads its XCom) and runs when no day needed shards (the mapped task is then skipped)."""
    for project in load_projects():
        dag = dagbag.dags[project.dag_id("monitor")]
        tasks = {t.task_id: t for t in dag.tasks}
        assert set(tasks) == {"plan_shards", "monitor_shard", "monitor", "request_retrain"}
        assert tasks["monitor_shard"].upstream_task_ids == {"plan_shards"}
        assert type(tasks["monitor_shard"]).__name__ == "MappedOperator"
        assert tasks["monitor"].upstream_task_ids == {"plan_shards", "monitor_shard"}
        assert tasks["monitor"].trigger_rule == "none_failed_min_one_success"
        assert tasks["request_retrain"].upstream_task_ids == {"monitor"}
        assert tasks["request_retrain"].trigger_rule == "all_done"
        assert tasks["request_retrain"].monitor_task_id == "monitor"
