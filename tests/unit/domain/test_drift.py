"""Evidently monitoring on generated fraud days: drift verdicts, sampling stability, performance, reports."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlops_provider.config.project import ProjectConfig
from mlops_provider.domain.drift import monitor_day
from mlops_provider.io.lake import Lake
from mlops_provider.stages.monitor import save_report

from devkit.datagen import fraud

ROWS = 5000
DAY = dt.date(2024, 1, 9)
_TYPICAL = fraud._customers().set_index("customer_id")["typical_amount"]


def champion_score(df: pd.DataFrame) -> pd.Series:
    """A stand-in champion: the generator's pre-drift risk factors, without the noise."""
    rel_amount = np.log(df["amount"] / df["customer_id"].map(_TYPICAL))
    logit = (-5.2 + 1.1 * rel_amount + 1.4 * (df["country"] != "US") + 0.9 * (df["channel"] == "online")
             + df["merchant_category"].map(fraud.CATEGORY_RISK).fillna(0.0)
             + 1.0 * (df["event_timestamp"].dt.hour < 5) + 1.1 * (df["device"] == "unknown"))
    return 1 / (1 + np.exp(-logit))


def scored(day: dt.date, rows: int, **drift) -> pd.DataFrame:
    df = fraud.generate(day, rows, **drift)
    df["champion_score"] = champion_score(df)
    return df


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return pd.concat([scored(dt.date(2024, 1, d), ROWS // 2) for d in (1, 2)], ignore_index=True)


@pytest.fixture(scope="module")
def days() -> dict[str, pd.DataFrame]:
    return {
        "clean": scored(DAY, ROWS),
        "covariate": scored(DAY, ROWS, covariate_drift=True),
        "concept": scored(DAY, ROWS, concept_drift=True),
    }


@pytest.fixture(scope="module")
def project() -> ProjectConfig:
    from mlops_provider.config.project import load_project

    return load_project("fraud")


@pytest.fixture(scope="module")
def features(project) -> list[str]:
    return list(project.features["record"]["columns"])


def with_monitoring(project: ProjectConfig, **overrides) -> ProjectConfig:
    raw = copy.deepcopy(project.raw)
    raw["monitoring"].update(overrides)
    return ProjectConfig(path=project.path, raw=raw)


@pytest.fixture(scope="module")
def full_results(project, reference, days, features):
    """Unsampled runs (5,000 rows < sample_rows); the clean day also carries its labels."""
    assert project.monitoring["sample_rows"] > ROWS
    return {
        "clean": monitor_day(project, reference=reference, current=days["clean"], feature_columns=features,
                             labelled=days["clean"]),
        "covariate": monitor_day(project, reference=reference, current=days["covariate"], feature_columns=features),
    }


@pytest.fixture(scope="module")
def covariate_result(full_results):
    return full_results["covariate"]


def test_clean_day_has_no_drift_and_no_performance_alert(project, full_results):
    verdict = full_results["clean"].verdict

    assert verdict["kind"] == "ok"
    assert verdict["drift_detected"] is False
    assert verdict["drifted_columns"] == []
    assert verdict["prediction_drift"]["drift_detected"] is False
    assert max(verdict["column_scores"].values()) < project.monitoring["column_drift_threshold"]
    assert verdict["performance_alert"] is False
    assert verdict["performance"]["roc_auc"] >= project.monitoring["min_roc_auc"]
    json.dumps(verdict)  # the verdict travels through XCom


def test_without_labels_there_is_no_performance_section(covariate_result):
    assert covariate_result.verdict["performance"] is None
    assert covariate_result.verdict["performance_alert"] is False


def test_covariate_drift_names_the_shifted_features(project, covariate_result):
    verdict = covariate_result.verdict
    drifted = {d["column"]: d for d in verdict["drifted_columns"]}

    assert verdict["kind"] == "drift" and verdict["drift_detected"] is True
    assert {"amount", "channel", "country"} <= set(drifted)
    assert "merchant_category" not in drifted  # the generator does not shift it
    assert verdict["n_drifted"] == len(drifted) and verdict["n_features"] == 6
    assert verdict["share_drifted"] == pytest.approx(len(drifted) / 6, abs=1e-4)
    for d in drifted.values():
        assert d["score"] >= d["threshold"] == project.monitoring["column_drift_threshold"]
        assert d["stattest"] in {"wasserstein", "jensenshannon"}
    amount = drifted["amount"]["summary"]
    assert amount["kind"] == "numerical"
    assert amount["current"]["mean"] > 2 * amount["reference"]["mean"]  # amounts were scaled by 2.5
    channel = {c["value"]: c for c in drifted["channel"]["summary"]["categories"]}
    assert channel["online"]["current"] > channel["online"]["reference"] + 0.2
    assert verdict["prediction_drift"]["drift_detected"] is True
    assert verdict["prediction_drift"]["alert_rate_current"] >= verdict["prediction_drift"]["alert_rate_reference"]


@pytest.mark.parametrize("day_kind", ["clean", "covariate"])
def test_sampled_verdict_equals_full_verdict(project, reference, days, features, full_results, day_kind):
    full = full_results[day_kind].verdict
    sampled = monitor_day(with_monitoring(project, sample_rows=1500), reference=reference,
                          current=days[day_kind], feature_columns=features, seed=3).verdict

    assert full["rows"]["sampled_to"] is None and sampled["rows"]["sampled_to"] == 1500
    assert sampled["kind"] == ("drift" if day_kind == "covariate" else "ok")
    assert sampled["drift_detected"] == full["drift_detected"] == (day_kind == "covariate")
    assert {d["column"] for d in sampled["drifted_columns"]} == {d["column"] for d in full["drifted_columns"]}
    assert sampled["prediction_drift"]["drift_detected"] == full["prediction_drift"]["drift_detected"]


def test_concept_drift_with_labels_raises_performance_alert(project, reference, days, features):
    verdict = monitor_day(project, reference=reference, current=days["concept"], feature_columns=features,
                          labelled=days["concept"]).verdict
    perf = verdict["performance"]

    assert verdict["kind"] == "performance" and verdict["performance_alert"] is True
    assert verdict["drift_detected"] is False  # the inputs look the same; only their meaning changed
    assert perf["roc_auc"] < project.monitoring["min_roc_auc"] <= perf["reference"]["roc_auc"]
    assert perf["rows"] == ROWS and perf["positives"] == int(days["concept"]["is_fraud"].sum())
    assert 0 <= perf["pr_auc"] <= 1 and perf["alert_threshold"] == project.model["alert_threshold"]
    assert perf["target_drift"]["positive_rate_current"] > perf["target_drift"]["positive_rate_reference"]


def test_data_quality_counts_every_row_even_when_sampled(project, reference, days, features):
    current = days["clean"].copy()
    current.loc[:99, "amount"] = np.nan
    current.loc[100:136, "merchant_category"] = "<script>alert(1)</script>"

    verdict = monitor_day(with_monitoring(project, sample_rows=1000), reference=reference, current=current,
                          feature_columns=features).verdict
    quality = verdict["data_quality"]

    assert quality["missing_share"]["amount"] == pytest.approx(100 / ROWS)
    assert quality["missing_share_reference"]["amount"] == 0
    assert quality["new_categories"] == {"merchant_category": ["<script>alert(1)</script>"]}
    assert quality["new_category_rows"] == {"merchant_category": 37}


def test_a_feature_missing_entirely_today_counts_as_drifted(project, reference, days, features):
    current = days["clean"].copy()
    current["amount"] = np.nan

    verdict = monitor_day(project, reference=reference, current=current, feature_columns=features).verdict

    assert [d["column"] for d in verdict["drifted_columns"]] == ["amount"]
    assert verdict["drifted_columns"][0]["stattest"] == "all_missing"
    assert verdict["data_quality"]["missing_share"]["amount"] == 1.0
    assert verdict["drift_detected"] is False  # 1 of 6 features is below the 30% dataset threshold


def test_nullable_integer_columns_are_monitored():
    """Parquet gives an integer column back as pandas Int64: Evidently's statistics crashed on it
    (``'float' object has no attribute 'shape'``) and the monitor task retried forever. Compared as floats."""
    from mlops_provider.config.project import load_project

    churn = load_project("churn")  # sessions: an integer column
    rng = np.random.default_rng(0)

    def frame(n, shift=0.0):
        return pd.DataFrame({"minutes": rng.gamma(2, 30, n) + shift,
                             "sessions": pd.array(rng.integers(0, 20, n), dtype="Int64"),
                             "plan": rng.choice(["basic", "standard"], n), "champion_score": rng.random(n)})

    verdict = monitor_day(churn, reference=frame(3000), current=frame(2000, shift=40.0),
                          feature_columns=["minutes", "sessions", "plan"]).verdict
    assert [d["column"] for d in verdict["drifted_columns"]] == ["minutes"]
    assert verdict["column_scores"]["sessions"] < churn.monitoring["column_drift_threshold"]


def test_missing_feature_column_is_named(project, reference, days):
    with pytest.raises(ValueError, match="not_a_column"):
        monitor_day(project, reference=reference, current=days["clean"], feature_columns=["amount", "not_a_column"])


def test_report_saved_as_html_and_evidently_snapshot(covariate_result, tmp_path):
    from evidently.core.report import Snapshot

    lake = Lake(tmp_path.as_uri())
    uris = save_report(covariate_result, lake, "fraud/monitoring/2024-01-09/drift")

    html = Path(uris["html"].removeprefix("file://"))
    assert html.name == "drift.html" and html.read_text().lstrip().lower().startswith("<!doctype html")
    snapshot = Snapshot.loads(lake.read_bytes("fraud/monitoring/2024-01-09/drift.json").decode())
    names = [m["metric_name"] for m in snapshot.dict()["metrics"]]
    assert any(n.startswith("DriftedColumnsCount") for n in names)
    assert any("column=champion_score" in n for n in names)
    verdict = json.loads(lake.read_bytes("fraud/monitoring/2024-01-09/drift.verdict.json"))
    assert verdict == json.loads(json.dumps(covariate_result.verdict))


def test_real_verdict_composes_an_alert(project, covariate_result):
    from mlops_provider.domain.alerts import compose_alert

    message = compose_alert(project, covariate_result.verdict, day=DAY, model_version=3, run_url=None,
                            report_url=None, mlflow_run_url=None, actions=["retraining triggered"],
                            attach_max_bytes=0)
    n = covariate_result.verdict["n_drifted"]
    assert message["Subject"].startswith(f"[MLOps] fraud / fraud_classifier v3 / 2024-01-09: DATA DRIFT ({n}/6 features)")
    assert "amount" in message.get_body(("plain",)).get_content()
