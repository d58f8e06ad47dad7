"""Training on a time split, one MLflow run per model, registration as challenger, idempotent retries."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from mlops_provider.stages.promote import evaluate

from tests.mlflow_fixtures import FEATURES, MODEL, START, fraud_frame, mlflow_home, train_and_register


def sources(days: int = 8, start: dt.date = START) -> list[str]:
    """The partitions a training set of ``days`` reads: record and entity features, and labels (3 days late)."""
    return [f"file:///lake/fraud/{table}/dt={start + dt.timedelta(days=i)}/data.parquet"
            for table in ("features/record", "features/entity", "labels") for i in range(days + 3)]


RUN_TAGS = {
    "airflow_dag_id": "fraud__train",
    "airflow_run_id": "scheduled__2024-03-09T00:00:00+00:00",
    "airflow_try_number": "1",
    "git_commit": "abc1234",
    "config_hash": "cfg0001",
    "gx_validation_results": ["file:///reports/fraud/gx/2024-03-08.json"],
    "feast_feature_service": "fraud_v1",
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One trained and registered model in a fresh MLflow SQLite store (shared by this module's tests)."""
    with mlflow_home(tmp_path_factory, "train") as (home, project, uri):
        frame = fraud_frame()
        result = train_and_register(project, frame, RUN_TAGS["airflow_run_id"], tracking_uri=uri, hpo_trials=2,
                                    run_tags=RUN_TAGS, dataset_sources=sources())
        yield {"project": project, "frame": frame, "result": result, "uri": uri, "home": home}


def retrain(store):
    """The store's training again, as a retry (try 2) of the same Airflow run."""
    return train_and_register(store["project"], store["frame"], RUN_TAGS["airflow_run_id"], tracking_uri=store["uri"],
                              hpo_trials=2, run_tags={**RUN_TAGS, "airflow_try_number": "2"},
                              dataset_sources=sources())


def test_time_split_uses_most_recent_days_for_holdout(fraud_project):
    from mlops_provider.domain.training import time_split

    frame = fraud_frame(days=6, rows=400)
    splits = time_split(frame, event_timestamp="event_timestamp", label_column="is_fraud",
                        validation_days=2, holdout_days=2)
    assert splits.days["holdout"] == [START + dt.timedelta(days=4), START + dt.timedelta(days=5)]
    assert splits.days["validation"] == [START + dt.timedelta(days=2), START + dt.timedelta(days=3)]
    assert splits.days["train"] == [START, START + dt.timedelta(days=1)]
    assert len(splits.train) + len(splits.validation) + len(splits.holdout) == len(frame)
    assert splits.train["event_timestamp"].max() < splits.validation["event_timestamp"].min()
    assert splits.validation["event_timestamp"].max() < splits.holdout["event_timestamp"].min()


def test_time_split_rejects_missing_positives_and_short_frames():
    from mlops_provider.domain.training import time_split
    from mlops_provider.exceptions import TrainingDataError

    frame = fraud_frame(days=6, rows=400)
    no_fraud_in_holdout = frame.copy()
    no_fraud_in_holdout.loc[no_fraud_in_holdout["event_timestamp"].dt.date >= START + dt.timedelta(days=4),
                            "is_fraud"] = 0
    with pytest.raises(TrainingDataError, match=r"holdout split .* no positive labels"):
        time_split(no_fraud_in_holdout, event_timestamp="event_timestamp", label_column="is_fraud",
                   validation_days=2, holdout_days=2)
    with pytest.raises(TrainingDataError, match=r"covers 3 day\(s\).*at least 5"):
        time_split(fraud_frame(days=3, rows=400), event_timestamp="event_timestamp", label_column="is_fraud",
                   validation_days=2, holdout_days=2)
    with pytest.raises(TrainingDataError, match="too few rows"):
        time_split(fraud_frame(days=6, rows=30), event_timestamp="event_timestamp", label_column="is_fraud",
                   validation_days=2, holdout_days=2)


def test_metrics_are_present_and_sane(store):
    result = store["result"]
    m, b = result["metrics"], result["baseline_metrics"]
    for metrics in (m, b):
        assert set(metrics) >= {"roc_auc", "pr_auc", "log_loss", "ece", "precision_at_threshold",
                                "recall_at_threshold", "scoring_ms_per_1k"}
        assert 0.0 <= metrics["ece"] <= 1.0 and metrics["scoring_ms_per_1k"] > 0
    prevalence = store["frame"]["is_fraud"].mean()
    assert m["roc_auc"] > 0.7
    assert m["pr_auc"] > 2 * prevalence
    # Calibrated on validation: far better calibrated than the class-balanced logistic regression.
    assert m["ece"] < b["ece"] and m["log_loss"] < b["log_loss"]
    assert result["version"] == "1" and not result["reused"]


def test_run_records_params_tags_datasets_and_artifacts(store):
    from mlops_provider.io import model_store

    client = model_store.client_for(store["uri"])
    run = client.get_run(store["result"]["run_id"])
    params, tags = run.data.params, run.data.tags
    assert params["holdout_start"] == "2024-03-07" and params["holdout_end"] == "2024-03-08"
    assert params["validation_start"] == "2024-03-05" and params["train_end"] == "2024-03-04"
    assert int(params["train_rows"]) == 12000 and int(params["holdout_rows"]) == 6000
    assert {"gbm_learning_rate", "gbm_max_leaf_nodes", "gbm_class_weight_name", "refit"} <= set(params)
    assert json.loads(params["feature_columns"]) == FEATURES
    assert tags["airflow_run_id"] == RUN_TAGS["airflow_run_id"] and tags["git_commit"] == "abc1234"
    assert json.loads(tags["gx_validation_results"]) == RUN_TAGS["gx_validation_results"]
    assert tags["feast_feature_service"] == "fraud_v1" and tags["project"] == "fraud"
    assert "baseline_pr_auc" in run.data.metrics and "hpo_validation_pr_auc" in run.data.metrics

    inputs = {i.tags[0].value if i.tags else "": i.dataset for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"training", "validation", "evaluation"}
    holdout_source = json.loads(inputs["evaluation"].source)
    assert "features/record" in json.dumps(holdout_source)

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"plots", "holdout", "datasets", "feature_importance.json"} <= artifacts
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/roc_curve.png", "plots/pr_curve.png", "plots/confusion_matrix.png",
                     "plots/feature_importance.png"}
    assert inputs["evaluation"].name == "fraud_holdout"
    split_sources = json.loads(open(client.download_artifacts(run.info.run_id, "datasets/sources.json")).read())
    by_table = {t: [s.split("dt=")[1][:10] for s in split_sources["holdout"] if f"/{t}/" in s]
                for t in ("features/record", "features/entity", "labels")}
    assert by_table["features/record"] == by_table["features/entity"] == ["2024-03-07", "2024-03-08"]
    assert by_table["labels"] == ["2024-03-10", "2024-03-11"]  # the holdout's labels arrived 3 days later
    assert len(split_sources["train"]) == 3 * 4
    assert holdout_source["uri"].endswith("/lake/fraud/features/record")


def test_holdout_artifact_is_the_most_recent_days(store):
    from mlops_provider.io import model_store

    holdout = model_store.load_holdout(model_store.client_for(store["uri"]), store["result"]["run_id"])
    assert set(holdout["event_timestamp"].dt.date) == {dt.date(2024, 3, 7), dt.date(2024, 3, 8)}
    assert set(FEATURES) | {"is_fraud", "event_timestamp", "transaction_id"} <= set(holdout.columns)
    assert len(holdout) == 6000


def test_version_is_challenger_with_tags_and_loads_back(store):
    from mlops_provider.io import model_store

    client = model_store.client_for(store["uri"])
    result = store["result"]
    assert model_store.aliases(client, MODEL)["challenger"] == "1"
    mv = client.get_model_version(MODEL, "1")
    assert mv.tags["run_id"] == result["run_id"]
    assert mv.tags["config_hash"] == store["project"].config_hash()
    assert float(mv.tags["baseline_pr_auc"]) == pytest.approx(result["baseline_metrics"]["pr_auc"])
    assert mv.tags["airflow_run_id"] == RUN_TAGS["airflow_run_id"]
    # The registered model scores the holdout exactly as training measured it.
    holdout = model_store.load_holdout(client, result["run_id"])
    again = evaluate(f"models:/{MODEL}/1", holdout, "is_fraud", 0.5, tracking_uri=store["uri"])
    assert again["pr_auc"] == pytest.approx(result["metrics"]["pr_auc"])


def test_retry_of_same_airflow_run_registers_nothing_new(store, monkeypatch):
    from mlops_provider.io import model_store

    monkeypatch.setenv("MLOPS_HOME", str(store["home"]))
    client = model_store.client_for(store["uri"])
    runs_before = len(client.search_runs([store["result"]["experiment_id"]]))
    again = retrain(store)
    assert again["reused"] and again["version"] == "1" and again["run_id"] == store["result"]["run_id"]
    assert again["metrics"]["pr_auc"] == pytest.approx(store["result"]["metrics"]["pr_auc"])
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == 1
    assert len(client.search_runs([store["result"]["experiment_id"]])) == runs_before


def test_retry_after_a_kill_between_registration_and_alias_sets_the_challenger(store, monkeypatch):
    """The version was registered but the worker died before aliasing it: the retry reuses it and aliases it."""
    from mlops_provider.io import model_store

    monkeypatch.setenv("MLOPS_HOME", str(store["home"]))
    client = model_store.client_for(store["uri"])
    client.delete_registered_model_alias(MODEL, "challenger")
    try:
        again = retrain(store)
        assert again["reused"] and again["version"] == "1"
        assert model_store.aliases(client, MODEL)["challenger"] == "1"
    finally:
        client.set_registered_model_alias(MODEL, "challenger", "1")
