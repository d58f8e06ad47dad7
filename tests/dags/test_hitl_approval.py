"""Human approval of a promotion, end to end: the train DAG of a project with ``promotion.require_approval``.

The whole ``<project>__train`` DAG runs with ``dag.test()`` on the operator tests' pipeline (lake,
Feast, a private MLflow registry): train -> promote (the gate passes, the promotion awaits a human) ->
needs_approval -> approve (Airflow's ApprovalOperator, parked in ``awaiting_input``) -> promote_approved
-> announce_champion. A person's answer goes through Airflow's own REST API, the call the UI's
"Required actions" page makes (``PATCH .../taskInstances/approve/-1/hitlDetails``), with a token of the
configured auth manager. Approve: the champion alias moves to the new version. Reject: nothing moves.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.unit.operators.conftest import mlflow_client, pipeline, world  # noqa: F401 (fixtures)
from tests.unit.operators.support import DAYS, MODEL, aliases

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture
def approval_dag(pipeline, tmp_path, monkeypatch, airflow_db):  # noqa: F811
    """The train DAG of ``fraud`` with ``promotion.require_approval: true``."""
    from airflow.dag_processing.dagbag import DagBag
    from mlops_provider.config import paths

    raw = yaml.safe_load((paths.projects_dir() / "fraud.yaml").read_text())
    raw["promotion"]["require_approval"] = True
    projects = tmp_path / "projects"
    projects.mkdir()
    (projects / "fraud.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("MLOPS_PROJECTS_DIR", str(projects))
    bag = DagBag(dag_folder=str(DAGS / "train.py"))
    assert bag.import_errors == {}
    dag = bag.dags["fraud__train"]
    assert "approve" in dag.task_dict
    return dag


@pytest.fixture(scope="module")
def api(airflow_db):
    """Airflow's REST API app and a bearer token of an admin of the configured (simple) auth manager."""
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    client = TestClient(create_app())
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="oncall", role="admin"))
    return client, {"Authorization": f"Bearer {token}"}


def _states(dag_id: str, run_id: str) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id).all()
        return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in tis}


def _answer_when_asked(api, dag_id: str, option: str, answered: dict) -> threading.Thread:
    """Wait for the approval task to await input, then answer it through the REST API, as a person would."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    client, auth = api

    def answer() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with create_session() as session:
                ti = session.query(TaskInstance).filter_by(dag_id=dag_id, task_id="approve",
                                                           state="awaiting_input").one_or_none()
                run_id = ti.run_id if ti is not None else None
            if run_id:
                asked = client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails",
                                   headers=auth)
                response = client.patch(
                    f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails",
                    json={"chosen_options": [option]}, headers=auth)
                answered.update(asked=asked.json(), status=response.status_code, body=response.json())
                return
            time.sleep(0.5)
        answered["status"] = "never asked"

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return thread


def _run(dag, api, option: str):
    answered: dict = {}
    responder = _answer_when_asked(api, dag.dag_id, option, answered)
    run = dag.test(logical_date=dt.datetime.now(dt.UTC), run_conf={
        "day": DAYS[-2].isoformat(), "training_window_days": 8, "hpo_trials": 1, "trigger": "manual"})
    responder.join(timeout=5)
    return run, _states(dag.dag_id, run.run_id), answered


def _new_version(mlflow_client) -> str:  # noqa: F811
    return str(max(int(v.version) for v in mlflow_client.search_model_versions(f"name='{MODEL}'")))


def test_approve_moves_the_champion_to_the_new_version(approval_dag, api, pipeline, mlflow_client):  # noqa: F811
    # No champion yet: the gate compares the new model with its baseline, so it passes and awaits a human.
    mlflow_client.delete_registered_model_alias(MODEL, "champion")
    run, states, answered = _run(approval_dag, api, "Approve")

    assert answered["status"] == 200, answered
    assert answered["asked"]["subject"].startswith(f"Promote {MODEL} v")
    assert answered["body"]["chosen_options"] == ["Approve"] and answered["body"]["responded_by"]["name"] == "oncall"
    assert str(getattr(run.state, "value", run.state)) == "success", states
    assert states == {"train": "success", "promote": "success", "needs_approval": "success", "approve": "success",
                      "promote_approved": "success", "announce_champion": "success"}
    new = _new_version(mlflow_client)
    assert new != pipeline.champion
    assert aliases(mlflow_client)["champion"] == new
    tags = mlflow_client.get_model_version(MODEL, new).tags
    assert tags["promotion_decision"] == "promoted"


def test_reject_moves_nothing(approval_dag, api, pipeline, mlflow_client):  # noqa: F811
    mlflow_client.delete_registered_model_alias(MODEL, "champion")
    run, states, answered = _run(approval_dag, api, "Reject")

    assert answered["status"] == 200, answered
    assert str(getattr(run.state, "value", run.state)) == "success", states
    assert states == {"train": "success", "promote": "success", "needs_approval": "success", "approve": "success",
                      "promote_approved": "skipped", "announce_champion": "skipped"}
    new = _new_version(mlflow_client)
    assert aliases(mlflow_client) == {"challenger": new}, "no champion was made, no alias moved but the new challenger"
    assert mlflow_client.get_model_version(MODEL, new).tags["promotion_decision"] == "awaiting_approval"
