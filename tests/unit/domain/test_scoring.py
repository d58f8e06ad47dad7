"""Batch scoring with the champion, shadow scoring with the challenger, and the model cache."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from tests.mlflow_fixtures import MODEL, fraud_frame, mlflow_home, train_and_register, without_aliases

THRESHOLD = 0.1  # calibrated probabilities of a ~2.5% class rarely reach 0.5; 0.1 gives alerts to count


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two different registered versions: v1 (8 days x 3000) and v2 (a smaller, differently tuned model)."""
    with mlflow_home(tmp_path_factory, "scoring") as (_, project, uri):
        train_and_register(project, fraud_frame(8, 3000), "a", tracking_uri=uri, hpo_trials=2)
        train_and_register(project, fraud_frame(6, 2000), "b", tracking_uri=uri, hpo_trials=1, seed=7)
        yield {"uri": uri, "batch": fraud_frame(1, 2500, start=dt.date(2024, 3, 12))}


@pytest.fixture
def client(store):
    from mlops_provider.io import model_store

    return without_aliases(model_store.client_for(store["uri"]), "champion", "challenger")


def run_score(store, frame=None):
    """Score a frame as the score stage does: pin versions, load both models, score, summarize."""
    from mlops_provider.domain import scoring
    from mlops_provider.io import model_store

    frame = frame if frame is not None else store["batch"]
    versions = model_store.resolve_versions(MODEL, tracking_uri=store["uri"])
    models = model_store.load_pinned(MODEL, versions, tracking_uri=store["uri"])
    predictions = scoring.score_batch(frame, models=models, versions=versions, model_name=MODEL,
                                      record_id="transaction_id", entity_key="customer_id", threshold=THRESHOLD)
    shadow = predictions["challenger_score"]
    summary = scoring.summarize(predictions["champion_score"].to_numpy(),
                                shadow.to_numpy(dtype="float64", na_value=float("nan")) if shadow.notna().all() else None,
                                threshold=THRESHOLD, champion=versions[0], challenger=versions[1], model_name=MODEL)
    return predictions, summary


def test_scoring_without_champion_is_a_clear_error(store, client):
    from mlops_provider.exceptions import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="has no 'champion' alias"):
        run_score(store)


def test_champion_only(store, client, tmp_path):
    client.set_registered_model_alias(MODEL, "champion", "1")
    predictions, summary = run_score(store)
    batch = store["batch"]
    assert list(predictions.columns) == ["transaction_id", "customer_id", "event_timestamp", "champion_version",
                                         "champion_score", "decision", "challenger_version", "challenger_score"]
    assert len(predictions) == len(batch) == summary["rows"]
    assert (predictions["transaction_id"].to_numpy() == batch["transaction_id"].to_numpy()).all()
    assert (predictions["champion_version"] == 1).all()
    assert predictions["champion_score"].between(0, 1).all()
    assert (predictions["decision"] == (predictions["champion_score"] >= THRESHOLD)).all()
    assert predictions["challenger_version"].isna().all() and predictions["challenger_score"].isna().all()
    assert summary["alerts"] == int(predictions["decision"].sum()) > 0
    assert summary["champion_version"] == "1" and summary["challenger_version"] is None
    assert summary["agreement_rate"] is None and summary["ks_statistic"] is None
    # Nulls survive the lake's Parquet format as nulls, not as NaN or 0.
    predictions.to_parquet(tmp_path / "p.parquet")
    back = pd.read_parquet(tmp_path / "p.parquet", dtype_backend="pyarrow")
    assert back["challenger_score"].isna().all() and back["challenger_version"].isna().all()


def test_shadow_scoring_with_a_different_challenger(store, client):
    client.set_registered_model_alias(MODEL, "champion", "1")
    client.set_registered_model_alias(MODEL, "challenger", "2")
    predictions, summary = run_score(store)
    assert (predictions["challenger_version"] == 2).all()
    champ = predictions["champion_score"].to_numpy()
    chal = predictions["challenger_score"].to_numpy(dtype=float)
    assert not np.isnan(chal).any() and not np.allclose(champ, chal)
    agree = ((chal >= THRESHOLD) == (champ >= THRESHOLD)).mean()
    assert summary["challenger_version"] == "2"
    assert summary["agreement_rate"] == pytest.approx(agree) and 0.5 < agree < 1.0
    assert summary["mean_abs_score_diff"] == pytest.approx(np.abs(chal - champ).mean())
    assert summary["ks_statistic"] == pytest.approx(ks_2samp(champ, chal).statistic)
    assert summary["challenger_alerts"] == int((chal >= THRESHOLD).sum())


def test_challenger_equal_to_champion_is_not_shadow_scored(store, client):
    client.set_registered_model_alias(MODEL, "champion", "2")
    client.set_registered_model_alias(MODEL, "challenger", "2")
    predictions, summary = run_score(store)
    assert summary["challenger_version"] is None and predictions["challenger_score"].isna().all()
    assert (predictions["champion_version"] == 2).all()


def test_models_are_cached_per_version_and_follow_the_alias(store, client):
    from mlops_provider.io import model_store

    first = model_store.load_model(f"models:/{MODEL}/1", tracking_uri=store["uri"])
    assert model_store.load_model(f"models:/{MODEL}/1", tracking_uri=store["uri"]) is first
    client.set_registered_model_alias(MODEL, "champion", "1")
    assert model_store.load_model(f"models:/{MODEL}@champion", tracking_uri=store["uri"]) is first
    client.set_registered_model_alias(MODEL, "champion", "2")
    assert model_store.load_model(f"models:/{MODEL}@champion", tracking_uri=store["uri"]) is not first
    _, summary = run_score(store)
    assert summary["champion_version"] == "2"


def test_missing_feature_column_names_the_columns(store, client):
    from mlops_provider.exceptions import MlopsError

    client.set_registered_model_alias(MODEL, "champion", "1")
    with pytest.raises(MlopsError, match=r"lacks model input columns \['hour'\]"):
        run_score(store, store["batch"].drop(columns=["hour"]))
