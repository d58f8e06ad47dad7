"""The two other example projects end to end, by YAML alone: a regression and a multiclass model.

Each runs its days through every DAG with ``dag.test()`` (the runner's chaining): ingest from its own
file layout, declared features per entity, nightly training from the first day with enough labels, the
gate, scoring with the champion, and monitoring with the task's own performance metrics once the
labels of a scored day have arrived.

    deliveries  regression   labels in the record (held back a day), Parquet files, courier + depot
    tickets     multiclass   labels in the helpdesk's export (own file and column names), CSV files
"""

from __future__ import annotations

import datetime as dt

import pytest

pytestmark = pytest.mark.slow

CASES = {
    # project: (days simulated, first nightly training day, primary metric, task metric monitored)
    "deliveries": (11, 8, "rmse", "rmse"),
    "tickets": (12, 8, "macro_f1", "macro_f1"),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def run(request, airflow_db, tmp_path_factory):
    from mlops_provider.io import model_store

    from devkit.simulation import Simulation

    name = request.param
    days, first_train, _, _ = CASES[name]
    home = tmp_path_factory.mktemp(f"e2e-{name}") / "mlops"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        model_store.clear_cache()
        sim = Simulation(name, start=dt.date(2024, 2, 1), rows=500, echo=print)
        for number in range(1, days + 1):
            sim.simulate_day(number, nightly_train=number >= first_train)
        yield {"name": name, "sim": sim, "home": home}


def test_every_run_succeeds_and_a_champion_serves(run):
    from mlops_provider.io import model_store

    sim = run["sim"]
    failed = [(r.dag_id, r.day, r.tasks) for r in sim.results if not r.ok]
    assert not failed, failed
    assert sim.has_champion(), [r.returns.get("promote") for r in sim.results if r.dag_id.endswith("__train")]
    client = model_store.client_for()
    champion = model_store.aliases(client, sim.project.model_name)["champion"]
    version = client.get_model_version(sim.project.model_name, champion)
    assert version.tags["project"] == run["name"]


def test_training_logs_the_tasks_metrics_and_the_gate_ranks_on_them(run):
    sim = run["sim"]
    _, _, primary, _ = CASES[run["name"]]
    trains = [r for r in sim.results if r.dag_id.endswith("__train") and "train" in r.returns]
    assert trains
    metrics = trains[0].returns["train"]["metrics"]
    assert primary in metrics and metrics[primary] == metrics[primary]  # measured, not NaN
    promoted = [r.returns["promote"] for r in trains if (r.returns.get("promote") or {}).get("promoted")]
    assert promoted and promoted[0]["primary_metric"] == primary


def test_scores_are_written_in_the_tasks_shape(run):
    import pandas as pd

    sim = run["sim"]
    scored = [r for r in sim.results if r.dag_id.endswith("__score") and r.ok]
    assert scored
    day = scored[-1].day
    path = run["home"] / "lake" / run["name"] / "predictions" / f"dt={day.isoformat()}" / "data.parquet"
    predictions = pd.read_parquet(path)
    assert len(predictions) == 500 and predictions[sim.project.record_id].is_unique
    if sim.project.model["task"] == "regression":
        assert predictions["champion_score"].between(0, 600).all()
    else:
        classes = ["account", "billing", "shipping", "technical"]
        probabilities = predictions[[c for c in predictions.columns if c.startswith("champion_proba")]]
        assert probabilities.shape[1] == len(classes)
        assert (probabilities.sum(axis=1) - 1).abs().max() < 1e-6
        assert set(predictions["champion_prediction"]) <= set(classes)
        assert predictions["champion_score"].between(0, 1).all()


def test_monitoring_reports_the_tasks_performance_once_labels_arrive(run):
    sim = run["sim"]
    _, _, _, metric = CASES[run["name"]]
    import json
    from pathlib import Path

    monitors = [r.returns["monitor"] for r in sim.results if r.dag_id.endswith("__monitor") and r.ok]
    assert monitors
    verdicts = [json.loads(Path(m["report"]["verdict"].removeprefix("file://")).read_text()) for m in monitors]
    measured = [v["performance"] for v in verdicts if (v.get("performance") or {}).get(metric) is not None]
    assert measured, verdicts[-1]
    assert measured[-1]["rows"] > 0
