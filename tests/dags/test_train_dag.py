"""Shape of the generated training DAG: schedule, typed params, and the human approval step when configured."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "train.py"
PROJECTS = Path(__file__).resolve().parents[2] / "include" / "projects"


def _train_dag(monkeypatch, tmp_path, require_approval: bool):
    from airflow.dag_processing.dagbag import DagBag

    raw = yaml.safe_load((PROJECTS / "fraud.yaml").read_text())
    raw["promotion"]["require_approval"] = require_approval
    (tmp_path / "fraud.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("MLOPS_PROJECTS_DIR", str(tmp_path))
    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags["fraud__train"]


def test_nightly_or_on_drift_with_typed_params(monkeypatch, tmp_path):
    dag = _train_dag(monkeypatch, tmp_path, require_approval=False)
    schedule = dag.timetable
    assert type(schedule).__name__ == "AssetOrTimeSchedule"
    assert schedule.timetable.expression == "0 2 * * *"
    assert schedule.asset_condition.name == "fraud.drift"
    params = dag.params
    assert params["training_window_days"] == 21 and params["hpo_trials"] == 4
    schema = params.get_param("hpo_trials").schema
    assert schema["type"] == "integer" and schema["maximum"] == 20
    with pytest.raises(Exception, match="maximum|less than"):
        params.get_param("hpo_trials").resolve(value=50)
    assert [t.task_id for t in dag.topological_sort()] == ["train", "promote", "announce_champion"]
    assert dag.get_task("promote").pool == "mlops_promotion"
    assert [o.name for o in dag.get_task("announce_champion").outlets] == ["fraud.model"]


def test_required_approval_adds_a_hitl_step_before_the_alias_moves(monkeypatch, tmp_path):
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    dag = _train_dag(monkeypatch, tmp_path, require_approval=True)
    order = [t.task_id for t in dag.topological_sort()]
    assert order == ["train", "promote", "needs_approval", "approve", "promote_approved", "announce_champion"]
    assert isinstance(dag.get_task("approve"), ApprovalOperator)
    approved = dag.get_task("promote_approved")
    assert approved.approved is True and approved.pool == "mlops_promotion"
    assert dag.get_task("announce_champion").upstream_task_ids == {"promote_approved"}
    assert dag.get_task("announce_champion").decision_task_id == "promote_approved"
