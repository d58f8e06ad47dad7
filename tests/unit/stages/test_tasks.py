"""Every task type end to end on small synthetic data with a real local MLflow (SQLite under a tmp MLOPS_HOME):
train + register, promote (first champion vs the baseline, then a worse challenger refused in the metric's
direction), score a day through the score stage (predictions in the task's shape, the shadow comparison),
monitor it through the monitor stage (the task's performance section, Evidently's report) and compose the
alert email. A second test round-trips every estimator of every task through MLflow's skops format."""

from __future__ import annotations

import datetime as dt
import itertools
import json

import numpy as np
import pandas as pd
import pytest
import yaml

START = dt.date(2024, 5, 1)
SCORE_DAY = dt.date(2024, 5, 12)
FEATURES = ["x1", "x2", "segment", "flag"]
CATEGORICAL = ["segment"]
CLASSES = ["high", "low", "mid"]
LABEL_TYPES = {"binary": "integer", "multiclass": "category", "regression": "float"}
PRIMARY = {"binary": "pr_auc", "multiclass": "macro_f1", "regression": "rmse"}


def synthetic(task: str, days: int, rows: int, start: dt.date = START, seed: int = 0, noise_days: int = 0
              ) -> pd.DataFrame:
    """Records with a non-linear signal (boosting beats the linear baseline) and a ``task`` label; the labels
    of the first ``noise_days`` days are shuffled (a model trained on them learns nothing)."""
    rng = np.random.default_rng(seed)
    frames = []
    for d in range(days):
        day = start + dt.timedelta(days=d)
        x1, x2 = rng.normal(size=rows), rng.uniform(-2, 2, size=rows)
        segment = rng.choice(["a", "b", "c"], size=rows, p=[0.5, 0.3, 0.2])
        signal = 1.2 * x1 + 1.5 * np.sin(2 * x2) + 1.0 * (segment == "b") + 0.8 * x1 * (x2 > 0)
        noisy = signal + rng.normal(scale=0.5, size=rows)
        if task == "binary":
            label = (noisy > 1.0).astype(int)
        elif task == "multiclass":
            label = np.array(["low", "mid", "high"], dtype=object)[np.digitize(noisy, [-0.3, 1.0])]
        else:
            label = 20.0 + 5.0 * noisy
        frames.append(pd.DataFrame({
            "rid": [f"{day}-{i}" for i in range(rows)],
            "unit": [f"u{k}" for k in rng.integers(0, 40, size=rows)],
            "ts": pd.Timestamp(day, tz="UTC") + pd.to_timedelta(rng.integers(0, 86_400, size=rows), unit="s"),
            "x1": x1, "x2": x2, "segment": segment, "flag": rng.random(rows) < 0.3, "target": label,
        }))
    frame = pd.concat(frames, ignore_index=True)
    noisy = frame["ts"].dt.date < start + dt.timedelta(days=noise_days)
    frame.loc[noisy, "target"] = np.random.default_rng(seed + 1).permutation(frame.loc[noisy, "target"].to_numpy())
    return frame


def project_for(task: str, tmp_path, estimator: str = "hist_gradient_boosting"):
    from mlops_provider.config.project import load_project_file

    data = {
        "name": f"tasks_{task}", "description": f"a {task} model", "owner": "tests", "start_date": "2024-01-01",
        "source": {"kind": "landing", "path": f"landing/tasks_{task}"},
        "entity": {"name": "unit", "key": "unit"}, "record_id": "rid", "event_timestamp": "ts",
        "label": {"column": "target", "delay_days": 0},
        "columns": {"rid": {"type": "string"}, "unit": {"type": "string"}, "ts": {"type": "timestamp"},
                    "x1": {"type": "float"}, "x2": {"type": "float"}, "segment": {"type": "category"},
                    "flag": {"type": "boolean"}, "target": {"type": LABEL_TYPES[task]}},
        "features": {"record": {"columns": FEATURES}},
        "model": {"name": f"{task}_model", "task": task, "estimator": estimator, "hpo_trials": 2},
        "promotion": {"guardrails": {"regression": {"mae": 30.0}, "multiclass": {"log_loss": 1.05},
                                     "binary": {"roc_auc": 0.6}}[task]},
        "monitoring": {"performance_limits": {"regression": {"rmse": 8.0}, "multiclass": {"accuracy": 0.4},
                                              "binary": {"roc_auc": 0.7}}[task]},
        "alerts": {"recipients": ["oncall@example.com"]},
    }
    path = tmp_path / f"tasks_{task}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_project_file(path)


class FeatureStore:
    """The point-in-time join the score stage asks Feast for: here, each record's own features by id."""

    def __init__(self, frame: pd.DataFrame):
        self.features = frame.set_index("rid")[FEATURES]

    def get_historical_features(self, entity_df: pd.DataFrame) -> pd.DataFrame:
        return entity_df.join(self.features, on="rid")


@pytest.fixture(scope="module", params=["binary", "multiclass", "regression"])
def pipeline(request, tmp_path_factory):
    """One task's run: v1 trained and promoted, v2 (noise labels) refused, the score day scored and monitored."""
    from mlops_provider.config import paths
    from mlops_provider.domain.layout import labels_table, records_table
    from mlops_provider.io import model_store
    from mlops_provider.io.lake import Lake
    from mlops_provider.stages import train as training
    from mlops_provider.stages.monitor import run_monitor
    from mlops_provider.stages.promote import gate_and_promote
    from mlops_provider.stages.score import run_score

    task = request.param
    root = tmp_path_factory.mktemp(f"tasks-{task}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(root / "mlops"))
        project = project_for(task, root)
        uri = paths.mlflow_tracking_uri()
        client = model_store.client_for(uri)
        common = dict(feature_columns=FEATURES, categorical_columns=CATEGORICAL, tracking_uri=uri, dataset_sources=[])
        first = training.train_and_register(project, synthetic(task, 8, 400), run_tags={"airflow_run_id": "a"},
                                            hpo_trials=2, **common)
        promoted = gate_and_promote(project, client)
        # Trained on shuffled labels, judged on clean holdout days: worse in every metric's direction.
        worse = training.train_and_register(project, synthetic(task, 8, 400, seed=3, noise_days=4),
                                            run_tags={"airflow_run_id": "b"}, hpo_trials=1, seed=7, **common)
        refused = gate_and_promote(project, client)
        # v2 stays challenger: the score day is shadow-scored by it.
        client.set_registered_model_alias(project.model_name, "challenger", worse["version"])

        lake, reports = Lake((root / "lake").as_uri()), Lake((root / "reports").as_uri())
        day = synthetic(task, 1, 600, start=SCORE_DAY, seed=11)
        lake.write(records_table(project), SCORE_DAY, day.drop(columns=["target"]))
        scored = run_score(project, lake=lake, reports=reports, feature_store=FeatureStore(day), day=SCORE_DAY,
                           tracking_uri=uri)
        predictions = lake.read(scored["predictions"].split(lake.root, 1)[1].strip("/").rsplit("/dt=", 1)[0],
                                SCORE_DAY)
        lake.write(labels_table(project), SCORE_DAY, day[["rid", "target"]])
        monitored = run_monitor(project, lake=lake, reports=reports, day=SCORE_DAY, tracking_uri=uri)
        yield {"task": task, "project": project, "client": client, "first": first, "promoted": promoted,
               "worse": worse, "refused": refused, "scored": scored, "predictions": predictions, "day": day,
               "monitored": monitored, "uri": uri}


def test_training_logs_the_tasks_metrics_and_beats_the_baseline(pipeline):
    from mlops_provider.domain.metrics import metrics_of

    task, first = pipeline["task"], pipeline["first"]
    assert set(first["metrics"]) == set(metrics_of(task)) == set(first["baseline_metrics"])
    run = pipeline["client"].get_run(first["run_id"])
    params = run.data.params
    assert params["task"] == task and params["estimator"] == "hist_gradient_boosting"
    search = {"binary": "pr_auc", "multiclass": "macro_f1", "regression": "rmse"}[task]
    assert f"hpo_validation_{search}" in run.data.metrics and f"hpo_best_validation_{search}" in params
    assert ("alert_threshold" in params) == (task == "binary")
    if task == "multiclass":
        assert json.loads(params["classes"]) == CLASSES
    plots = {a.path for a in pipeline["client"].list_artifacts(first["run_id"], "plots")}
    expected = {"binary": {"plots/roc_curve.png", "plots/pr_curve.png", "plots/confusion_matrix.png"},
                "multiclass": {"plots/confusion_matrix.png"},
                "regression": {"plots/predicted_vs_actual.png", "plots/residuals.png"}}[task]
    assert plots == expected | {"plots/feature_importance.png"}


def test_first_champion_beats_the_baseline_in_the_metrics_direction(pipeline):
    task, promoted = pipeline["task"], pipeline["promoted"]
    assert promoted["promoted"] and promoted["version"] == "1" and promoted["primary_metric"] == PRIMARY[task]
    if task == "regression":
        assert promoted["challenger_value"] < promoted["baseline_value"]  # lower RMSE is better
        assert "linear-regression baseline" in promoted["reason"] and "lower is better" in promoted["reason"]
    else:
        assert promoted["challenger_value"] > promoted["baseline_value"]
        assert "logistic-regression baseline" in promoted["reason"]


def test_a_worse_challenger_is_refused_in_the_metrics_direction(pipeline):
    task, refused = pipeline["task"], pipeline["refused"]
    assert refused["promoted"] is False and refused["compared_with"] == "1" and refused["version"] == "2"
    if task == "regression":  # the mae ceiling passes; a higher RMSE is no improvement
        assert refused["challenger_value"] > refused["champion_value"]
        assert "improvement -" in refused["reason"] and "(lower is better)" in refused["reason"]
    elif task == "multiclass":
        assert refused["challenger_value"] < refused["champion_value"]
        assert "log_loss=" in refused["reason"] and "> ceiling 1.0500" in refused["reason"]  # log loss: a ceiling
    else:
        assert refused["challenger_value"] < refused["champion_value"]


def test_scores_are_written_in_the_tasks_shape(pipeline):
    task, predictions, day = pipeline["task"], pipeline["predictions"], pipeline["day"]
    assert len(predictions) == len(day) and (predictions["champion_version"] == 1).all()
    assert (predictions["challenger_version"] == 2).all()
    columns = list(predictions.columns)
    if task == "binary":
        assert predictions["champion_score"].between(0, 1).all() and "decision" in columns
        assert "champion_prediction" not in columns
    elif task == "multiclass":
        probas = [f"champion_proba__{c}" for c in CLASSES]
        at = columns.index("champion_version") + 1
        assert columns[at:at + 5] == ["champion_prediction", "champion_score", *probas]
        assert set(predictions["champion_prediction"]) <= set(CLASSES)
        assert np.allclose(predictions[probas].sum(axis=1), 1.0)
        best = predictions[probas].to_numpy().argmax(axis=1)
        assert (predictions["champion_prediction"].to_numpy() == np.array(CLASSES, dtype=object)[best]).all()
        assert np.allclose(predictions["champion_score"], predictions[probas].max(axis=1))
        assert predictions["challenger_prediction"].notna().all() and "decision" not in columns
    else:
        assert "decision" not in columns and "champion_prediction" not in columns
        assert abs(predictions["champion_score"].mean() - day["target"].mean()) < 3.0  # values, not probabilities
    assert set(FEATURES) <= set(columns)


def test_the_shadow_comparison_fits_the_task(pipeline):
    task, summary, predictions = pipeline["task"], pipeline["scored"], pipeline["predictions"]
    assert summary["challenger_version"] == "2" and summary["rows"] == len(predictions)
    if task == "multiclass":
        agree = (predictions["champion_prediction"] == predictions["challenger_prediction"]).mean()
        assert summary["agreement_rate"] == pytest.approx(agree) and 0 <= agree < 1
        assert sum(summary["class_counts"].values()) == len(predictions)
        assert summary["mean_abs_score_diff"] is None and "alerts" not in summary
    elif task == "regression":
        diff = (predictions["challenger_score"] - predictions["champion_score"]).abs().mean()
        assert summary["mean_abs_score_diff"] == pytest.approx(diff) and diff > 0
        assert summary["agreement_rate"] is None and "alerts" not in summary
    else:
        assert summary["alerts"] == int(predictions["decision"].sum())
        assert 0 < summary["agreement_rate"] <= 1
    tags = pipeline["client"].get_model_version(pipeline["project"].model_name, "2").tags
    assert f"shadow.{SCORE_DAY}" in tags  # the shadow record sits on the challenger's version


def test_monitoring_reports_the_tasks_performance(pipeline):
    task, verdict = pipeline["task"], pipeline["monitored"]["verdict"]
    perf = verdict["performance"]
    assert perf["rows"] == len(pipeline["day"]) and perf["task"] == task
    names = {"binary": ("roc_auc", "pr_auc", "precision", "recall"), "multiclass": ("macro_f1", "log_loss", "accuracy"),
             "regression": ("rmse", "mae", "r2")}[task]
    for name in names:
        assert isinstance(perf[name], float) and isinstance(perf["reference"][name], float)
    limit = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}[task]
    assert perf["limits"][limit]["kind"] == ("ceiling" if task == "regression" else "floor")
    assert perf["limits"][limit]["breached"] is False and verdict["performance_alert"] is False
    assert perf["target_drift"]["drift_detected"] is False
    prediction = verdict["prediction_drift"]
    assert prediction["column"] == ("champion_prediction" if task == "multiclass" else "champion_score")
    assert prediction["stattest"] == ("jensenshannon" if task == "multiclass" else "wasserstein")
    html = pipeline["monitored"]["report"]["html"]
    assert html.endswith("report.html")


def test_a_breached_limit_is_a_performance_alert_in_the_email(pipeline):
    from mlops_provider.domain import drift
    from mlops_provider.domain.alerts import compose_alert
    from mlops_provider.io import model_store
    from mlops_provider.stages.monitor import _champion_reference

    task, project = pipeline["task"], pipeline["project"]
    _, reference = _champion_reference(model_store.client_for(pipeline["uri"]), project.model_name, "1")
    current = pipeline["predictions"]
    labelled = current.merge(pipeline["day"][["rid", "target"]], on="rid")
    # The labels of another population: the model is now wrong about them.
    labelled["target"] = synthetic(task, 1, len(labelled), start=SCORE_DAY, seed=99,
                                   noise_days=1)["target"].to_numpy()
    result = drift.monitor_day(project, reference=reference, current=current, feature_columns=FEATURES,
                               labelled=labelled, seed=1)
    verdict = result.verdict
    assert verdict["performance_alert"] is True and "performance" in verdict["kind"]
    message = compose_alert(project, verdict, day=SCORE_DAY, model_version=1, run_url=None, report_url=None,
                            mlflow_run_url=None, actions=[], attach_max_bytes=0)
    text = message.get_body(("plain",)).get_content()
    headline = {"binary": "PERFORMANCE (ROC AUC", "multiclass": "PERFORMANCE (Accuracy",
                "regression": "PERFORMANCE (RMSE"}[task]
    assert headline in message["Subject"]
    for label in {"binary": ("ROC AUC", "PR AUC"), "multiclass": ("Macro F1", "Log loss", "Accuracy"),
                  "regression": ("RMSE", "MAE", "R2")}[task]:
        assert f"  {label}:" in text
    if task != "binary":
        assert "positive" not in text.lower() and "ROC AUC" not in text


# -- every estimator through MLflow's skops format ----------------------------------------------------------
@pytest.mark.parametrize(("task", "estimator"), list(itertools.product(
    ["binary", "multiclass", "regression"], ["hist_gradient_boosting", "random_forest", "extra_trees", "linear"])))
def test_every_estimator_round_trips_through_mlflow(tmp_path, monkeypatch, task, estimator):
    import mlflow
    from mlops_provider.config import paths
    from mlops_provider.domain import training
    from mlops_provider.domain.metrics import predict
    from mlops_provider.io import model_store

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "mlops"))
    project = project_for(task, tmp_path, estimator)
    trained = training.fit(project, synthetic(task, 5, 220), feature_columns=FEATURES,
                           categorical_columns=CATEGORICAL, hpo_trials=1)
    expected = {"hist_gradient_boosting": "HistGradientBoosting", "random_forest": "RandomForest",
                "extra_trees": "ExtraTrees", "linear": "Ridge" if task == "regression" else "LogisticRegression"}
    inner = trained.model if task == "regression" else trained.model.estimator.estimator  # calibrated: frozen inside
    assert type(inner.named_steps["clf"]).__name__.startswith(expected[estimator])
    assert type(inner.named_steps["clf"]).__name__.endswith("Regressor" if task == "regression" and
                                                           estimator != "linear" else "")
    uri = paths.mlflow_tracking_uri()
    # An explicit experiment of this store: the fluent API's active experiment may be another test's.
    experiment_id = model_store.ensure_experiment(model_store.client_for(uri), "roundtrip",
                                                  model_store.default_artifact_location(uri, "roundtrip"))
    with model_store.tracking(uri), mlflow.start_run(experiment_id=experiment_id):
        info = model_store._log_model(trained)
    back = model_store.load_model(info.model_uri, tracking_uri=uri)
    holdout = trained.features["holdout"]
    assert np.allclose(predict(back, holdout, task), predict(trained.model, holdout, task))
    if task == "multiclass":
        assert list(back.classes_) == CLASSES
