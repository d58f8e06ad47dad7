"""TrainModelOperator: a challenger with lineage tags and links; skipped before a first model, failed after."""

from __future__ import annotations

import json

import pytest

from tests.unit.operators.support import DAYS, MODEL, aliases, task_context


def test_trains_a_challenger_with_lineage_and_a_retry_reuses_it(pipeline, mlflow_client):
    from mlops_provider.operators.training import TrainModelOperator

    op = TrainModelOperator(task_id="train", project_name="fraud", as_of=DAYS[-2].isoformat(), window_days="8",
                            hpo_trials="1", trigger="drift")
    context = task_context(task_id="train")
    result = op.execute(context)

    json.dumps(result)  # small and XCom-able
    assert result["model_name"] == MODEL and result["version"] != pipeline.champion
    assert result["as_of"] == DAYS[-2].isoformat() and result["trigger"] == "drift"
    assert aliases(mlflow_client) == {"champion": pipeline.champion, "challenger": result["version"]}
    tags = mlflow_client.get_run(result["run_id"]).data.tags
    assert tags["airflow_dag_id"] == "fraud__test" and tags["airflow_task_id"] == "train"
    assert tags["airflow_run_id"] == "manual__test" and tags["trigger"] == "drift"
    assert tags["training_as_of"] == DAYS[-2].isoformat() and "8d|1trials" in tags["training_key"]
    # The run is named by the day it trains as of (was: its last labelled event day, three days earlier).
    assert mlflow_client.get_run(result["run_id"]).info.run_name == f"fraud-{DAYS[-2].isoformat()}"
    assert context["ti"].xcom["mlops_mlflow_run"]["url"].startswith("file://")
    assert context["ti"].xcom["mlops_model_version"]["url"]

    # A retry of the same Airflow run returns the version the first try registered.
    again = TrainModelOperator(task_id="train", project_name="fraud", as_of=DAYS[-2].isoformat(), window_days=8,
                               hpo_trials=1, trigger="drift").execute(task_context(task_id="train"))
    assert again["version"] == result["version"] and again["reused"]


def test_too_little_data_fails_without_retries_once_a_champion_exists(pipeline):
    from airflow.sdk.exceptions import AirflowFailException
    from mlops_provider.exceptions import TrainingDataError
    from mlops_provider.operators.training import TrainModelOperator

    # Labels arrive three days late: as of day 3 none has arrived yet (and a retry would see the same).
    op = TrainModelOperator(task_id="train", project_name="fraud", as_of=DAYS[2].isoformat(), window_days=3)
    with pytest.raises(AirflowFailException, match="no labelled events") as err:
        op.execute(task_context(task_id="train"))
    assert isinstance(err.value.__cause__, TrainingDataError)


def test_too_little_data_skips_before_a_first_model(pipeline, mlflow_client):
    from airflow.sdk.exceptions import AirflowSkipException
    from mlops_provider.operators.training import TrainModelOperator

    mlflow_client.delete_registered_model_alias(MODEL, "champion")
    op = TrainModelOperator(task_id="train", project_name="fraud", as_of=DAYS[2].isoformat(), window_days="")
    with pytest.raises(AirflowSkipException, match="not enough labelled data yet to train a first model"):
        op.execute(task_context(task_id="train"))


def test_a_bad_project_fails_without_retries(pipeline):
    from airflow.sdk.exceptions import AirflowFailException
    from mlops_provider.exceptions import ProjectConfigError
    from mlops_provider.operators.training import TrainModelOperator

    with pytest.raises(AirflowFailException, match="no such project") as err:
        TrainModelOperator(task_id="train", project_name="nope", as_of=DAYS[-1].isoformat()).execute(task_context())
    assert isinstance(err.value.__cause__, ProjectConfigError)
