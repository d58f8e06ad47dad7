"""Fixtures of the operator tests: the task context an operator reads, and one small real pipeline.

Operators are called the way the task runner calls them, ``execute(context)``, with the context keys
they read (``ti`` for XCom and extra links, ``run_id``, ``outlet_events``), on real objects: a local
lake and report store, Feast on SQLite, MLflow on a SQLite store, under a temporary MLOPS_HOME.

``world`` builds that pipeline once per session with the stage functions (not the operators under test):
ten ingested days of the fraud project (the ninth with covariate drift), their features in Feast, a
champion trained on them, and the last two days scored. ``pipeline`` gives each test a private copy of
the MLflow store and its own report store, so tests that move aliases or register versions never see
each other; the lake and the feature store are shared (operators rewrite a day's partition identically).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.unit.operators.support import DAYS, DRIFTED, MODEL, ROWS


@dataclass(frozen=True)
class World:
    home: Path
    mlflow_db: Path
    champion: str
    scored: list[dt.date]


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    from mlops_provider.config import paths
    from mlops_provider.config.project import load_project
    from mlops_provider.domain.features import feature_timestamp
    from mlops_provider.io import model_store
    from mlops_provider.io.feature_store import ProjectFeatureStore
    from mlops_provider.io.lake import Lake
    from mlops_provider.io.sources import LandingSource
    from mlops_provider.stages.features import compute_entity_features, compute_record_features
    from mlops_provider.stages.ingest import gate_day, stage_day
    from mlops_provider.stages.score import run_score
    from mlops_provider.stages.train import run_train

    from devkit.datagen.landing import write_landing_day

    home = tmp_path_factory.mktemp("operators") / "mlops"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        project = load_project("fraud")
        lake, reports = Lake(), Lake(paths.reports_uri())
        landing = paths.landing_dir() / "fraud"
        for day in DAYS:
            write_landing_day(project, landing, day, rows=ROWS,
                              scenario="covariate_drift" if day == DRIFTED else "clean")
            stage_day(project, lake, LandingSource(landing), day, run_id=f"world__{day}")
            gate_day(project, lake, reports, day, run_id=f"world__{day}")
            compute_entity_features(project, lake, day)
            compute_record_features(project, lake, day)
        store = ProjectFeatureStore(project, lake=lake)
        store.apply()
        store.materialize(feature_timestamp(DAYS[0]), feature_timestamp(DAYS[-1]))
        uri = paths.mlflow_tracking_uri()
        # Labels arrive three days late: trained on the events of days 1-6, as of day 9.
        trained = run_train(project, lake=lake, reports=reports, feature_store=store, as_of=DAYS[-2],
                            tracking_uri=uri, window_days=9, hpo_trials=1)
        model_store.promote(model_store.client_for(uri), MODEL, trained["version"], reason="operator tests")
        scored = DAYS[-2:]
        for day in scored:
            run_score(project, lake=lake, reports=reports, feature_store=store, day=day, tracking_uri=uri)
        yield World(home=home, mlflow_db=home / "mlflow" / "mlflow.db", champion=trained["version"], scored=scored)


@pytest.fixture
def pipeline(world: World, tmp_path, monkeypatch) -> World:
    """The session's pipeline with a private MLflow store (a copy) and an empty report store of its own."""
    db = tmp_path / "mlflow.db"
    with sqlite3.connect(world.mlflow_db) as src, sqlite3.connect(db) as dst:
        src.backup(dst)
    monkeypatch.setenv("MLOPS_HOME", str(world.home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    monkeypatch.setenv("MLOPS_REPORTS_URI", (tmp_path / "reports").as_uri())
    return world


@pytest.fixture
def mlflow_client(pipeline):
    from mlops_provider.io import model_store

    return model_store.client_for()
