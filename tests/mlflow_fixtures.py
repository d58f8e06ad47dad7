"""What the tests on a real, local MLflow store share: the example project's feature frames as the feature stage
delivers them, a private MLOPS_HOME whose MLflow SQLite store is the tracking and registry store, and small models
trained and registered into it by the train stage."""

from __future__ import annotations

import contextlib
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from devkit.datagen import fraud

FEATURES = ["amount", "amount_vs_customer_mean", "hour", "merchant_category", "channel", "country", "device", "card_present"]
CATEGORICAL = ["merchant_category", "channel", "country", "device"]
START = dt.date(2024, 3, 1)
MODEL = "fraud_classifier"


def fraud_frame(days: int = 8, rows: int = 3000, start: dt.date = START, shuffle_train_days: int = 0) -> pd.DataFrame:
    """Feature frame as the feature stage delivers it; optionally with noise labels on the first days."""
    df = pd.concat([fraud.generate(start + dt.timedelta(days=i), rows) for i in range(days)], ignore_index=True)
    df["amount_vs_customer_mean"] = np.log(df["amount"] / df.groupby("customer_id")["amount"].transform("mean"))
    df["hour"] = df["event_timestamp"].dt.hour
    if shuffle_train_days:
        noisy = df["event_timestamp"].dt.date < start + dt.timedelta(days=shuffle_train_days)
        df.loc[noisy, "is_fraud"] = np.random.default_rng(0).permutation(df.loc[noisy, "is_fraud"].to_numpy())
    return df


@contextlib.contextmanager
def mlflow_home(tmp_path_factory, name: str):
    """A fresh MLOPS_HOME (a ``name`` temp folder) for the block: (home, the project, its MLflow tracking URI)."""
    from mlops_provider.config import paths
    from mlops_provider.config.project import load_project

    home = tmp_path_factory.mktemp(name) / "mlops"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        yield home, load_project("fraud"), paths.mlflow_tracking_uri()


def train_and_register(project, frame: pd.DataFrame, run_id: str, *, tracking_uri: str, hpo_trials: int,
                       run_tags: dict | None = None, dataset_sources: list[str] | None = None, **kwargs):
    """The train stage on ``frame`` (FEATURES, CATEGORICAL), its run tagged ``run_id`` (and ``run_tags``);
    no dataset sources unless given."""
    from mlops_provider.stages import train as training

    return training.train_and_register(project, frame, feature_columns=FEATURES, categorical_columns=CATEGORICAL,
                                       tracking_uri=tracking_uri, dataset_sources=list(dataset_sources or []),
                                       hpo_trials=hpo_trials, run_tags={"airflow_run_id": run_id, **(run_tags or {})},
                                       **kwargs)


def without_aliases(client, *aliases: str):
    """``client``, with none of ``aliases`` set on MODEL (a test starts from no champion or challenger)."""
    for alias in aliases:
        if alias in client.get_registered_model(MODEL).aliases:
            client.delete_registered_model_alias(MODEL, alias)
    return client
