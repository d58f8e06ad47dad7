"""ScoreBatchOperator: every day of a merged run scored by the champion, the predictions asset event, failures."""

from __future__ import annotations

import json

import pytest

from tests.unit.operators.support import DAYS, MODEL, ROWS, asset, task_context


def test_scores_every_day_of_a_merged_run_and_announces_them(pipeline, mlflow_client):
    from mlops_provider.io.lake import Lake
    from mlops_provider.operators.scoring import ScoreBatchOperator

    predictions = asset("predictions")
    days = [DAYS[-3].isoformat(), DAYS[-4].isoformat()]  # as the days template renders merged events
    op = ScoreBatchOperator(task_id="score", project_name="fraud", day=",".join(days), outlets=[predictions])
    context = task_context(task_id="score")
    result = op.execute(context)

    json.dumps(result)  # small and XCom-able
    assert result["days"] == sorted(days) and result["day"] == max(days)  # oldest first, the latest summarised
    assert result["champion_version"] == pipeline.champion and result["model_name"] == MODEL
    assert result["rows"] == ROWS and result["challenger_version"] is None
    assert context["outlet_events"][predictions].extra == {"day": max(days), "days": sorted(days),
                                                           "champion_version": pipeline.champion}
    lake = Lake()
    for day in sorted(days):
        scored = lake.read("fraud/predictions", day)
        assert len(scored) == ROWS and set(scored["champion_version"].astype(str)) == {pipeline.champion}
    link = context["ti"].xcom["mlops_model_version"]["url"]
    assert link == mlflow_client.get_model_version_download_uri(MODEL, pipeline.champion)


def test_a_challenger_is_shadow_scored_beside_the_champion(pipeline, mlflow_client):
    from mlops_provider.config import paths
    from mlops_provider.io import model_store
    from mlops_provider.operators.scoring import ScoreBatchOperator

    copy = mlflow_client.get_model_version(MODEL, pipeline.champion)
    with model_store.tracking(paths.mlflow_tracking_uri()):  # a models:/m-... source resolves through it
        challenger = mlflow_client.create_model_version(MODEL, copy.source, run_id=copy.run_id)
    mlflow_client.set_registered_model_alias(MODEL, "challenger", challenger.version)
    day = DAYS[-4].isoformat()
    result = ScoreBatchOperator(task_id="score", project_name="fraud", day=day).execute(task_context())
    assert result["challenger_version"] == str(challenger.version)
    assert f"shadow.{day}" in mlflow_client.get_model_version(MODEL, challenger.version).tags


def test_a_day_without_validated_records_fails_with_retries(pipeline):
    from airflow.sdk.exceptions import AirflowFailException
    from mlops_provider.exceptions import MlopsError
    from mlops_provider.operators.scoring import ScoreBatchOperator

    op = ScoreBatchOperator(task_id="score", project_name="fraud", day="2023-01-01", outlets=[asset("predictions")])
    context = task_context()
    with pytest.raises(MlopsError, match="no validated records partition") as err:
        op.execute(context)
    assert not isinstance(err.value, AirflowFailException) and err.value.retryable
    assert not context["outlet_events"]


def test_without_a_champion_nothing_is_scored(pipeline, mlflow_client):
    """A champion that disappeared (its alias deleted) is an error that pages on-call."""
    from mlops_provider.exceptions import ModelNotFoundError
    from mlops_provider.operators.scoring import ScoreBatchOperator

    mlflow_client.set_registered_model_alias(MODEL, "previous_champion", pipeline.champion)
    mlflow_client.delete_registered_model_alias(MODEL, "champion")
    with pytest.raises(ModelNotFoundError, match="champion"):
        ScoreBatchOperator(task_id="score", project_name="fraud", day=DAYS[-4].isoformat()).execute(task_context())


def test_before_a_first_champion_scoring_skips_with_a_clear_line(pipeline, mlflow_client):
    """A fresh deployment: score fails three times with ModelNotFoundError and emails on-call; now it skips."""
    from airflow.sdk.exceptions import AirflowSkipException
    from mlops_provider.operators.scoring import ScoreBatchOperator

    for alias in ("champion", "previous_champion", "challenger"):
        try:
            mlflow_client.delete_registered_model_alias(MODEL, alias)
        except Exception:
            pass
    context = task_context()
    with pytest.raises(AirflowSkipException, match="nothing to score yet: .* has no champion"):
        ScoreBatchOperator(task_id="score", project_name="fraud", day=DAYS[-4].isoformat(),
                           outlets=[asset("predictions")]).execute(context)
    assert not context["outlet_events"]


def test_a_bad_project_fails_without_retries(pipeline):
    from airflow.sdk.exceptions import AirflowFailException
    from mlops_provider.exceptions import ProjectConfigError
    from mlops_provider.operators.scoring import ScoreBatchOperator

    with pytest.raises(AirflowFailException, match="no such project 'nope'") as err:
        ScoreBatchOperator(task_id="score", project_name="nope", day=DAYS[-1].isoformat()).execute(task_context())
    assert isinstance(err.value.__cause__, ProjectConfigError)
