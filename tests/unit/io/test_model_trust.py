"""The artifact store and the registry are not trusted: models load only as skops with the provider's pinned
types, and promote / rollback refuse versions this pipeline's training did not register (issue 14)."""

from __future__ import annotations

import os

import pytest

from tests.unit.stages.test_promote import MODEL, aliases, client, template  # noqa: F401 (fixtures)


class _Booby:
    """Unpickling this object creates a directory: the proof that a pickle ran code."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def _register_pickled(client, tmp_path, obj, tags=None) -> str:  # noqa: F811 (client is the registry fixture)
    """A version registered by hand whose MLmodel says ``serialization_format: pickle``."""
    import mlflow
    import mlflow.sklearn
    from mlops_provider.config import paths
    from mlops_provider.io import model_store

    uri = paths.mlflow_tracking_uri()
    with model_store.tracking(uri), model_store.quiet_warnings():
        mlflow.set_experiment("hand-made")
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(obj, name="model", serialization_format="pickle")
        # Linked to the trained v1's run, so the gate finds a holdout and gets as far as loading the model.
        mv = client.create_model_version(MODEL, info.model_uri, run_id=client.get_model_version(MODEL, "1").run_id,
                                         tags=tags or {})
    if isinstance(obj, _Booby) and os.path.isdir(obj.marker):
        os.rmdir(obj.marker)  # MLflow itself unpickles the model once while logging it
    return str(mv.version)


def test_a_pickled_model_is_refused_and_never_unpickled(client, tmp_path):  # noqa: F811
    from mlops_provider.config import paths
    from mlops_provider.exceptions import ModelNotFoundError, UntrustedModelError
    from mlops_provider.io import model_store

    marker = tmp_path / "pwned"
    version = _register_pickled(client, tmp_path, _Booby(str(marker)), tags={"project": "fraud"})
    model_store.clear_cache()
    with pytest.raises(UntrustedModelError, match="serialization_format 'pickle'.*only 'skops'") as err:
        model_store.load_model(f"models:/{MODEL}/{version}", tracking_uri=paths.mlflow_tracking_uri())
    assert isinstance(err.value, ModelNotFoundError) and not err.value.retryable
    assert not marker.exists()


def test_a_trained_version_still_loads_with_the_pinned_types(client):  # noqa: F811
    from mlops_provider.config import paths
    from mlops_provider.io import model_store

    model_store.clear_cache()
    model = model_store.load_model(f"models:/{MODEL}/1", tracking_uri=paths.mlflow_tracking_uri())
    assert hasattr(model, "predict_proba")


def test_types_outside_the_pinned_list_are_refused_even_when_the_model_lists_them(client, monkeypatch):  # noqa: F811
    from mlops_provider.config import paths
    from mlops_provider.exceptions import UntrustedModelError
    from mlops_provider.io import model_store

    # The MLmodel of v1 lists the types training recorded; the loader ignores that list and uses the pinned one.
    monkeypatch.setattr(model_store, "TRUSTED_SKOPS_TYPES", frozenset())
    model_store.clear_cache()
    with pytest.raises(UntrustedModelError, match="types this provider does not trust"):
        model_store.load_model(f"models:/{MODEL}/1", tracking_uri=paths.mlflow_tracking_uri())


def test_promote_refuses_a_pickled_version_and_one_registered_by_hand(client, tmp_path):  # noqa: F811
    from mlops_provider.config import paths
    from mlops_provider.config.project import load_project
    from mlops_provider.exceptions import UntrustedModelError
    from mlops_provider.io import model_store
    from mlops_provider.stages.promote import gate_and_promote

    project, uri = load_project("fraud"), paths.mlflow_tracking_uri()
    model = model_store.load_model(f"models:/{MODEL}/1", tracking_uri=uri)
    marker = tmp_path / "pwned"
    pickled = _register_pickled(client, tmp_path, _Booby(str(marker)), tags={"project": "fraud"})
    model_store.clear_cache()
    with pytest.raises(UntrustedModelError, match="only 'skops'"):
        gate_and_promote(project, client, version=pickled, tracking_uri=uri)
    assert not marker.exists() and "champion" not in aliases(client)

    by_hand = _register_pickled(client, tmp_path, model)  # a real sklearn model, but no project tag
    with pytest.raises(UntrustedModelError, match="no 'project' tag"):
        gate_and_promote(project, client, version=by_hand, tracking_uri=uri)
    other = _register_pickled(client, tmp_path, model, tags={"project": "churn"})
    with pytest.raises(UntrustedModelError, match="registered by project 'churn', not 'fraud'"):
        gate_and_promote(project, client, version=other, tracking_uri=uri)
    assert "champion" not in aliases(client)


def test_rollback_refuses_a_version_this_pipeline_did_not_register(client, tmp_path):  # noqa: F811
    from mlops_provider.exceptions import UntrustedModelError
    from mlops_provider.io import model_store

    client.set_registered_model_alias(MODEL, "champion", "1")
    by_hand = _register_pickled(client, tmp_path, _Booby(str(tmp_path / "pwned")))
    with pytest.raises(UntrustedModelError, match="no 'project' tag"):
        model_store.rollback(client, MODEL, to=by_hand, project="fraud")
    assert aliases(client) == {"champion": "1"}


def test_every_estimator_needs_only_the_pinned_types():
    """Each model the training module builds (every task x estimator it offers, calibrated, baseline) fits the pinned list."""
    import warnings

    import numpy as np
    import pandas as pd
    import skops.io
    from mlops_provider.domain import training
    from mlops_provider.io.model_store import TRUSTED_SKOPS_TYPES

    warnings.filterwarnings("ignore")
    rng, n = np.random.default_rng(0), 300
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y", "z"], n)})
    X.loc[::7, "a"] = np.nan
    binary = (rng.random(n) < 0.3).astype(int)
    models = [training.build_baseline(["a", "b"], ["c"], 0).fit(X, binary)]
    if hasattr(training, "build_model"):  # several tasks and estimators
        labels = {"binary": binary, "multiclass": rng.choice(["p", "q", "r"], n), "regression": rng.normal(size=n)}
        for task, y in labels.items():
            for estimator, space in training.SEARCH_SPACES.items():
                if estimator == "linear" and task == "regression":
                    space = training._LINEAR_REGRESSION_SPACE
                params = {k: (v[1] if v[0] == training.LOG_UNIFORM else v[0]) for k, v in space.items()}
                params.update({"n_estimators": 5} if "n_estimators" in params else {})
                params.update({"class_weight": None} if task != "regression" else {})
                model = training.build_model(task, estimator, ["a", "b"], ["c"], params, 0).fit(X, y)
                models += [model, training.calibrate(model, X, y)] if task == "binary" else [model]
    else:
        params = {"learning_rate": 0.1, "max_leaf_nodes": 15, "min_samples_leaf": 20, "l2_regularization": 0.0,
                  "max_iter": 20, "class_weight": None}
        model = training.build_gbm(["a", "b"], ["c"], params, 0).fit(X, binary)
        models += [model, training.calibrate(model, X, binary)]
    needed: set[str] = set()
    for model in models:
        needed |= set(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    assert needed <= TRUSTED_SKOPS_TYPES, sorted(needed - TRUSTED_SKOPS_TYPES)
