"""PromoteModelOperator, RollbackModelOperator and ModelOpsActionOperator on a real MLflow registry.

A change of champion announces the newest scored day on the ``model`` asset (scoring redoes it); a
refusal announces nothing; contradictory on-call requests fail without retries before anything moves.
"""

from __future__ import annotations

import json

import pytest

from tests.unit.operators.support import MODEL, aliases, asset, task_context


@pytest.fixture
def copy_of_champion(pipeline, mlflow_client) -> str:
    """A second version holding the champion's files (identical metrics: a tie the gate refuses)."""
    from mlops_provider.config import paths
    from mlops_provider.io import model_store

    champion = mlflow_client.get_model_version(MODEL, pipeline.champion)
    with model_store.tracking(paths.mlflow_tracking_uri()):  # a models:/m-... source resolves through it
        copy = mlflow_client.create_model_version(MODEL, champion.source, run_id=champion.run_id,
                                                  tags={"project": "fraud"})  # as training tags its versions
    return str(copy.version)


def test_a_promotion_announces_the_newest_scored_day(pipeline, mlflow_client):
    from mlops_provider.operators.registry import PromoteModelOperator

    # The pipeline's model as a challenger before any champion: the gate compares it with the baseline.
    mlflow_client.delete_registered_model_alias(MODEL, "champion")
    mlflow_client.set_registered_model_alias(MODEL, "challenger", pipeline.champion)
    model = asset("model")
    context = task_context(task_id="promote")
    result = PromoteModelOperator(task_id="promote", project_name="fraud", outlets=[model]).execute(context)

    json.dumps(result)  # small and XCom-able
    assert result["promoted"] and result["version"] == pipeline.champion and result["model_name"] == MODEL
    assert aliases(mlflow_client) == {"champion": pipeline.champion}
    assert context["outlet_events"][model].extra == {"day": pipeline.scored[-1].isoformat(), "model_name": MODEL,
                                                     "version": pipeline.champion}
    assert context["ti"].xcom["mlops_model_version"]["url"] and context["ti"].xcom["mlops_mlflow_run"]["url"]
    tags = mlflow_client.get_model_version(MODEL, pipeline.champion).tags
    assert tags["promotion_decision"] == "promoted"


def test_a_refused_promotion_announces_nothing_or_skips(pipeline, mlflow_client, copy_of_champion):
    from airflow.sdk.exceptions import AirflowSkipException
    from mlops_provider.operators.registry import PromoteModelOperator

    model = asset("model")
    context = task_context(task_id="promote")
    refused = PromoteModelOperator(task_id="promote", project_name="fraud", version=copy_of_champion,
                                   outlets=[model]).execute(context)
    assert refused["promoted"] is False and refused["reason"]  # a refusal is not a failure
    assert not context["outlet_events"] and aliases(mlflow_client)["champion"] == pipeline.champion

    context = task_context(task_id="promote")
    op = PromoteModelOperator(task_id="promote", project_name="fraud", version=copy_of_champion,
                              skip_if_refused=True, request_reason="on-call: try it", outlets=[model])
    with pytest.raises(AirflowSkipException, match=f"v{copy_of_champion} not promoted"):
        op.execute(context)
    assert context["ti"].xcom["return_value"]["promoted"] is False and not context["outlet_events"]
    assert mlflow_client.get_model_version(MODEL, copy_of_champion).tags["promotion_request_reason"] == \
        "on-call: try it"


def test_a_rollback_restores_the_previous_champion_and_announces_it(pipeline, mlflow_client, copy_of_champion):
    from mlops_provider.io import model_store
    from mlops_provider.operators.registry import RollbackModelOperator

    model_store.promote(mlflow_client, MODEL, copy_of_champion, reason="by hand")
    model = asset("model")
    context = task_context(task_id="rollback")
    result = RollbackModelOperator(task_id="rollback", project_name="fraud", to="previous", reason="INC-7",
                                   outlets=[model]).execute(context)
    assert (result["version"], result["rolled_back_from"]) == (pipeline.champion, copy_of_champion)
    assert aliases(mlflow_client) == {"champion": pipeline.champion, "previous_champion": copy_of_champion}
    assert context["outlet_events"][model].extra == {"day": pipeline.scored[-1].isoformat(), "model_name": MODEL,
                                                     "version": pipeline.champion}
    assert mlflow_client.get_model_version(MODEL, pipeline.champion).tags["rollback_reason"] == "INC-7"


def test_before_any_scoring_the_event_names_no_day(pipeline, mlflow_client, copy_of_champion, tmp_path,
                                                   monkeypatch):
    from mlops_provider.io import model_store
    from mlops_provider.operators.registry import RollbackModelOperator

    monkeypatch.setenv("MLOPS_LAKE_URI", (tmp_path / "unscored-lake").as_uri())
    model_store.promote(mlflow_client, MODEL, copy_of_champion, reason="by hand")
    model = asset("model")
    context = task_context(task_id="rollback")
    RollbackModelOperator(task_id="rollback", project_name="fraud", outlets=[model]).execute(context)
    assert context["outlet_events"][model].extra == {"model_name": MODEL, "version": pipeline.champion}


def test_contradictory_requests_fail_without_retries_before_anything_moves(pipeline, mlflow_client):
    from airflow.sdk.exceptions import AirflowFailException
    from mlops_provider.exceptions import ModelOpsRequestError
    from mlops_provider.operators.registry import (
        ModelOpsActionOperator,
        PromoteModelOperator,
        RollbackModelOperator,
    )

    before = aliases(mlflow_client)
    for op in (RollbackModelOperator(task_id="rollback", project_name="fraud", to="challenger"),
               PromoteModelOperator(task_id="promote", project_name="fraud", version="previous"),
               ModelOpsActionOperator(task_id="choose_action", action="rollback", version="challenger")):
        context = task_context()
        with pytest.raises(AirflowFailException, match="action=") as err:
            op.choose_branch(context) if isinstance(op, ModelOpsActionOperator) else op.execute(context)
        assert isinstance(err.value.__cause__, ModelOpsRequestError)
        assert not context["outlet_events"]
    assert aliases(mlflow_client) == before
    route = ModelOpsActionOperator(task_id="choose_action", action="promote", version="challenger")
    assert route.choose_branch(task_context()) == "promote"
