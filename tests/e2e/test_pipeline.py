"""End to end on the embedded default: 20 simulated days through every DAG with ``dag.test()``.

One timeline (the fixture) exercises the whole loop, then each test checks one promise against the
real artefacts: lake partitions, the MLflow registry, the Evidently reports and the emails a real SMTP
server on loopback received.

    day  1-10  clean (day 4: a batch with 20 % null amounts -> quarantined); night 10: first training
    day 11     clean                      -> monitoring ok, no alert
    day 12     covariate drift            -> drift alert email, one drift-triggered retrain
               (monitor of day 12 rerun   -> no new email, no new retrain)
    day 13     concept drift              -> its labels arrive on day 16: performance alert (cooldown)
    day 14-15  label noise (labels shuffled)
    day 16-20  clean
    night 20   training on days 13-17 only (train: concept drift, validation: noise, holdout: clean)
               -> a worse challenger, refused; then rollback through the model_ops DAG
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.smtp import Collector, start_smtp_server

pytestmark = pytest.mark.slow

SCENARIOS = {4: "nulls", 12: "covariate_drift", 13: "concept_drift", 14: "label_noise", 15: "label_noise"}
ROWS = 2000


@pytest.fixture(scope="module")
def world(airflow_db, tmp_path_factory):
    from mlops_provider.io import model_store

    from devkit.simulation import Simulation

    home = tmp_path_factory.mktemp("e2e") / "mlops"
    collector = Collector()
    controller, port = start_smtp_server(collector)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        mp.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": port,
            "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "mlops@example.com",
                      "retry_limit": 0, "timeout": 10}}))
        model_store.clear_cache()
        sim = Simulation("fraud", start=dt.date(2024, 1, 1), rows=ROWS, echo=print)
        log: dict[str, object] = {"sim": sim, "smtp": collector, "home": home}
        for number in range(1, 21):
            sim.simulate_day(number, SCENARIOS.get(number, "clean"), nightly_train=number == 10)
            if number == 10:
                log["first_champion"] = model_store.aliases(model_store.client_for(), "fraud_classifier")
            if number == 12:
                log["emails_before_rerun"] = len(collector.envelopes)
                first_monitor = next(r for r in sim.results if r.dag_id == "fraud__monitor" and r.day == sim.day(12))
                log["monitor_rerun"] = sim.rerun(first_monitor)
                log["emails_after_rerun"] = len(collector.envelopes)
        log["aliases_before_refusal"] = model_store.aliases(model_store.client_for(), "fraud_classifier")
        log["refusal"] = sim.run("train", sim.day(20), {"training_window_days": 8, "hpo_trials": 2})
        log["aliases_after_refusal"] = model_store.aliases(model_store.client_for(), "fraud_classifier")
        # The refused challenger keeps its alias: rescoring the last day shadow-scores it.
        log["shadow_score"] = sim.run("score", sim.day(20))
        yield log
    controller.stop()


def runs(world, stage: str, day: int | None = None):
    sim = world["sim"]
    return [r for r in sim.results if r.dag_id == f"fraud__{stage}" and (day is None or r.day == sim.day(day))]


def subjects(world) -> list[str]:
    return [str(m["Subject"]) for m in world["smtp"].messages()]


def test_bad_batch_is_quarantined_and_never_reaches_features_or_training(world):
    from mlops_provider.io.lake import Lake

    day4 = world["sim"].day(4)
    assert runs(world, "ingest", 4)[0].state == "failed"
    assert not runs(world, "features", 4)
    lake = Lake((world["home"] / "lake").as_uri())
    assert not lake.exists("fraud/records", day4)
    assert not lake.exists("fraud/features/record", day4)
    assert (world["home"] / "lake" / "_quarantine" / "fraud" / f"dt={day4}").is_dir()
    failure = [s for s in subjects(world) if "TASK FAILED: fraud__ingest.validate" in s]
    assert len(failure) == 1


def test_first_model_becomes_champion_with_full_lineage(world):
    from mlops_provider.io import model_store

    train = runs(world, "train", 10)[0]
    assert train.ok, train
    assert train.returns["promote"]["promoted"] is True
    assert "first champion" in train.returns["promote"]["reason"]
    assert world["first_champion"]["champion"] == train.returns["train"]["version"]

    client = model_store.client_for()
    run = client.get_run(train.returns["train"]["run_id"])
    tags = run.data.tags
    assert tags["airflow_dag_id"] == "fraud__train" and tags["airflow_run_id"] == train.run_id
    assert tags["trigger"] == "nightly" and tags["training_as_of"] == "2024-01-10"
    assert len(tags["git_commit"]) >= 7 and tags["feast_feature_service"] == "fraud_classifier"
    # Day 4's batch was quarantined, and with it the label feed that arrived on day 4 (the labels of day 1's
    # events): a quarantined day publishes nothing (issue 14), so day 1 has no labelled events yet.
    assert "validation/dt=2024-01-02" in tags["gx_validation_results"]
    assert "validation/dt=2024-01-01" not in tags["gx_validation_results"]
    for metric in ("roc_auc", "pr_auc", "log_loss", "ece", "precision_at_threshold", "scoring_ms_per_1k"):
        assert metric in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/roc_curve.png", "plots/pr_curve.png", "plots/confusion_matrix.png",
            "plots/feature_importance.png"} <= artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "reference")} == {"reference/reference.parquet"}
    inputs = {d.dataset.name for d in run.inputs.dataset_inputs}
    assert inputs == {"fraud_train", "fraud_validation", "fraud_holdout"}


def test_rerunning_a_training_run_registers_no_second_version(world):
    from mlops_provider.io import model_store

    client = model_store.client_for()
    before = len(client.search_model_versions("name = 'fraud_classifier'"))
    rerun = world["sim"].rerun(runs(world, "train", 10)[0])
    assert rerun.ok and rerun.returns["train"]["reused"] is True
    assert len(client.search_model_versions("name = 'fraud_classifier'")) == before


def test_scoring_writes_champion_and_shadow_predictions(world):
    from mlops_provider.io.lake import Lake

    lake = Lake((world["home"] / "lake").as_uri())
    day = world["sim"].day(11)
    predictions = lake.read("fraud/predictions", day)
    assert len(predictions) == ROWS
    assert set(predictions["model_name"]) == {"fraud_classifier"}
    assert predictions["champion_score"].between(0, 1).all()
    score = runs(world, "score", 11)[-1].returns["score"]
    assert str(predictions["champion_version"].iloc[0]) == score["champion_version"]
    # A challenger that exists scores in shadow: beside the champion, never as the decision.
    shadowed = [r.returns["score"] for r in runs(world, "score") if r.ok and r.returns["score"]["challenger_version"]]
    assert shadowed, "no scoring run had a challenger to shadow-score"
    for s in shadowed:
        assert s["agreement_rate"] is not None and 0 <= s["agreement_rate"] <= 1


def test_shadow_record_is_kept_on_the_challenger_for_promotion_to_cite(world):
    from mlops_provider.io import model_store
    from mlops_provider.io.lake import Lake

    shadow = world["shadow_score"]
    assert shadow.ok
    score, challenger = shadow.returns["score"], world["refusal"].returns["train"]["version"]
    assert score["challenger_version"] == challenger and score["champion_version"] != challenger
    day20 = world["sim"].day(20).isoformat()
    predictions = Lake((world["home"] / "lake").as_uri()).read("fraud/predictions", day20)
    assert predictions["challenger_score"].notna().all() and (predictions["challenger_version"] == int(challenger)).all()
    # Decisions are the champion's alone.
    assert (predictions["decision"] == (predictions["champion_score"] >= score["threshold"])).all()
    client = model_store.client_for()
    tag = json.loads(client.get_model_version("fraud_classifier", challenger).tags[f"shadow.{day20}"])
    assert tag["rows"] == ROWS and tag["agreement_rate"] == pytest.approx(score["agreement_rate"])
    record = model_store.shadow_record(client, "fraud_classifier", challenger)
    assert record["days"] >= 1 and record["last_day"] == day20 and record["mean_agreement_rate"] is not None


def test_scoring_in_batches_writes_the_same_predictions(world, monkeypatch):
    """A large day is streamed in batches (bounded memory); the result must not depend on the batch size."""
    import pandas as pd
    from mlops_provider.config import paths
    from mlops_provider.config.project import load_project
    from mlops_provider.hooks.feast import FeastHook
    from mlops_provider.io.lake import Lake
    from mlops_provider.stages.score import run_score

    project = load_project("fraud")
    lake, reports = Lake((world["home"] / "lake").as_uri()), Lake((world["home"] / "reports").as_uri())
    day = world["sim"].day(20)

    def score(batch_rows: int):
        monkeypatch.setenv("MLOPS_SCORE_BATCH_ROWS", str(batch_rows))
        summary = run_score(project, lake=lake, reports=reports, feature_store=FeastHook(project, lake=lake).feature_store(),
                                   day=day, tracking_uri=paths.mlflow_tracking_uri())
        return summary, lake.read("fraud/predictions", day)

    whole, whole_rows = score(10_000_000)
    batched, batched_rows = score(700)  # 2,000 rows: three batches
    pd.testing.assert_frame_equal(whole_rows, batched_rows)
    for key in ("rows", "alerts", "champion_version", "challenger_version", "agreement_rate", "ks_statistic"):
        assert whole[key] == batched[key], key


def test_clean_day_sends_no_alert(world):
    monitor = runs(world, "monitor", 11)[0]
    assert monitor.ok and monitor.returns["monitor"]["kind"] == "ok"
    assert monitor.tasks["request_retrain"] == "skipped"
    assert not [s for s in subjects(world) if "2024-01-11" in s]


def test_covariate_drift_day_sends_one_alert_and_causes_one_retrain(world):
    monitor = runs(world, "monitor", 12)[0]
    verdict = monitor.returns["monitor"]
    assert verdict["kind"] in ("drift", "drift+performance")
    assert {"amount", "channel"} & set(verdict["drifted_columns"])
    assert verdict["retrain_requested"] is True and monitor.tasks["request_retrain"] == "success"
    # The report (HTML, Evidently snapshot, verdict) is logged to the MLflow run of the champion that saw it.
    from mlops_provider.io import model_store

    logged = {a.path for a in model_store.client_for().list_artifacts(verdict["run_id"], "monitoring/dt=2024-01-12")}
    assert logged == {f"monitoring/dt=2024-01-12/{n}" for n in ("report.html", "evidently_snapshot.json",
                                                                "verdict.json")}
    drift_trains = [r for r in runs(world, "train") if r.returns.get("train", {}).get("trigger") == "drift"]
    assert len(drift_trains) == 1 and drift_trains[0].day == world["sim"].day(12)

    # One email for the champion that saw the drift (a retrained champion re-scores the day and reports
    # its own verdict under its own version).
    version = verdict["model_version"]
    thread = [m for m in world["smtp"].messages() if f"v{version} / 2024-01-12" in str(m["Subject"])]
    alerts = [m for m in thread if m["X-MLOps-Kind"] != "retrain-outcome"]
    assert len(alerts) == 1
    message = alerts[0]
    # The drift-triggered retrain's outcome (promoted or refused) follows once, on the alert's thread.
    (follow_up,) = [m for m in thread if m["X-MLOps-Kind"] == "retrain-outcome"]
    assert follow_up["In-Reply-To"] == message["Message-ID"] == follow_up["References"]
    assert "RETRAIN PROMOTED" in follow_up.get_body(preferencelist=("plain",)).get_content() or \
        "RETRAIN REFUSED" in follow_up.get_body(preferencelist=("plain",)).get_content()
    assert message["To"] == "oncall-fraud@example.com"
    assert "fraud / fraud_classifier v" in str(message["Subject"]) and "DRIFT" in str(message["Subject"])
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "DRIFTED FEATURES" in text and "retraining requested" in text
    assert "monitoring/dt=2024-01-12/report.html" in text and "fraud__monitor" in text
    assert "<table" in html and "What to do (runbook)" in html
    # The full report (Evidently, several MB) is linked through the report view (http); a small static summary
    # of the alert is attached.
    assert "http://localhost:8080/mlops/reports/fraud/monitoring/dt=2024-01-12/report.html" in text
    (attachment,) = message.iter_attachments()
    assert attachment.get_filename().startswith("fraud-2024-01-12-drift") and attachment.get_content_type() == "text/html"
    assert len(attachment.get_content().encode()) < 100_000


def test_rerun_of_an_alerted_day_sends_nothing_new(world):
    rerun = world["monitor_rerun"]
    assert rerun.ok
    assert world["emails_after_rerun"] == world["emails_before_rerun"]
    assert rerun.returns["monitor"]["retrain_requested"] is False
    assert rerun.tasks["request_retrain"] == "skipped"
    assert len([r for r in runs(world, "train") if r.returns.get("train", {}).get("trigger") == "drift"]) == 1


def test_concept_drift_raises_performance_alert_when_its_labels_arrive(world):
    monitor = runs(world, "monitor", 16)[0].returns["monitor"]
    assert monitor["performance_alert"] is True and monitor["roc_auc"] < 0.75
    assert monitor["retrain"].get("cooldown") is True  # day 12's request is still within the cooldown
    alerts = [m for m in world["smtp"].messages() if "2024-01-16" in str(m["Subject"])]
    assert len(alerts) == 1 and "PERFORMANCE" in str(alerts[0]["Subject"])
    assert "on cooldown" in alerts[0].get_body(preferencelist=("plain",)).get_content()
    # Monitoring of the concept-drift day itself saw nothing yet: its inputs look normal.
    assert runs(world, "monitor", 13)[0].returns["monitor"]["performance_alert"] is False


def test_worse_challenger_is_refused_and_champion_untouched(world):
    from mlops_provider.io import model_store

    refusal = world["refusal"]
    assert refusal.ok
    train, promote = refusal.returns["train"], refusal.returns["promote"]
    assert promote["promoted"] is False
    assert refusal.tasks["announce_champion"] == "skipped"
    before, after = world["aliases_before_refusal"], world["aliases_after_refusal"]
    assert after["champion"] == before["champion"]
    assert after["challenger"] == train["version"]
    version = model_store.client_for().get_model_version("fraud_classifier", train["version"])
    assert version.tags["promotion_decision"] == "refused"
    assert version.tags["promotion_reason"] == promote["reason"]


def test_rollback_restores_the_previous_champion(world):
    from mlops_provider.io import model_store

    sim = world["sim"]
    client = model_store.client_for()
    current = model_store.aliases(client, "fraud_classifier")
    if current["previous_champion"] is None:
        # The drift retrain was not promoted: pin another version first, as on-call could.
        other = next(v.version for v in client.search_model_versions("name = 'fraud_classifier'")
                     if v.version != current["champion"])
        pinned = sim.run("model_ops", sim.day(20), {"action": "rollback", "version": str(other),
                                                    "reason": "e2e: pin a version"})
        assert pinned.ok
        current = model_store.aliases(client, "fraud_classifier")
    rollback = sim.run("model_ops", sim.day(20), {"action": "rollback", "version": "previous",
                                                    "reason": "e2e: roll back"})
    assert rollback.ok and rollback.tasks["promote"] == "skipped"
    after = model_store.aliases(client, "fraud_classifier")
    assert after["champion"] == current["previous_champion"]
    assert after["previous_champion"] == current["champion"]
