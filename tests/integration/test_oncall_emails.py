"""On-call email under persistent drift, end to end through a real SMTP server on loopback (tests/smtp.py).

A week in which every day drifts and every night trains a challenger a little better than the champion,
with the stages the monitor and promote tasks run (alerting, retrain requests, the promotion gate) on a
real report store and real sent markers:

- one alert per (day, kind): the day a promotion re-scores with the new champion mails nothing new;
- the outcome of each drift-triggered retrain (promoted or refused) follows on the alert's thread
  (``In-Reply-To`` / ``References`` = the alert's Message-ID, subject ``Re: <alert subject>``);
- under ``promotion.min_hours_between_promotions: 72`` the champion changes every third night, not nightly,
  and each refusal says when the next promotion can happen.
"""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from tests.smtp import Collector, start_smtp_server

FIRST = dt.date(2024, 3, 11)
NIGHTS = 6


def drift_verdict() -> dict:
    return {"kind": "drift", "drift_detected": True, "share_drifted": 0.5, "drift_share_threshold": 0.3,
            "n_features": 6, "n_drifted": 3, "performance": None, "performance_alert": False,
            "prediction_drift": {}, "data_quality": {},
            "drifted_columns": [{"column": c, "stattest_name": "PSI", "score": 0.4, "threshold": 0.1,
                                 "summary": {"kind": "numerical", "reference": {"mean": 1.0}, "current": {"mean": 2.0}}}
                                for c in ("amount", "hour", "<b>channel</b>")]}


@pytest.fixture
def world(tmp_path, monkeypatch, mlops_home):
    from mlops_provider.config import paths
    from mlops_provider.config.project import load_project
    from mlops_provider.io.email import SmtpSettings, SmtpTransport
    from mlops_provider.io.lake import Lake

    raw = yaml.safe_load((paths.repo_root() / "include" / "projects" / "fraud.yaml").read_text())
    raw["promotion"]["min_hours_between_promotions"] = 72
    raw["model"]["retrain_cooldown_hours"] = 48
    projects = tmp_path / "projects"
    projects.mkdir()
    (projects / "fraud.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("MLOPS_PROJECTS_DIR", str(projects))
    collector = Collector()
    controller, port = start_smtp_server(collector)
    transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=port, use_ssl=False, starttls=False, timeout=10,
                                           retry_limit=0, name="test"))
    yield {"project": load_project("fraud"), "reports": Lake(paths.reports_uri()), "smtp": collector,
           "transport": transport}
    controller.stop()


def test_persistent_drift_one_email_per_day_threaded_retrain_outcomes_no_nightly_churn(world):
    from mlops_provider.domain.promotion import decide
    from mlops_provider.stages.alerting import send_monitoring_alert, send_retrain_outcome
    from mlops_provider.stages.retrain import request_retrain

    project, reports, transport, smtp = world["project"], world["reports"], world["transport"], world["smtp"]
    champion, champion_as_of, champion_pr_auc = "1", FIRST - dt.timedelta(days=1), 0.60
    champions, requests, refusals = [], [], []

    def monitor(day: dt.date, version: str) -> dict:
        summary = {"day": day.isoformat(), "model_version": version, "verdict": drift_verdict()}
        return send_monitoring_alert(project, summary, transport=transport, actions=["drift"], run_url=None,
                                     report_url=f"http://localhost:8080/mlops/reports/fraud/monitoring/dt={day}/report.html",
                                     mlflow_run_url=None, reports=reports, runbook="http://localhost:8080/mlops/runbook")

    for night in range(NIGHTS):
        day = FIRST + dt.timedelta(days=night)
        monitor(day, champion)  # the day is scored by the champion of the night before
        if request_retrain(project, reports, day, "drift")["requested"]:
            requests.append(day)
        challenger, pr_auc = str(night + 2), champion_pr_auc + 0.01  # each night's challenger is a little better
        decision = decide(project, {"pr_auc": pr_auc, "roc_auc": 0.9}, {"pr_auc": champion_pr_auc}, {"pr_auc": 0.3},
                          challenger_as_of=day, champion_as_of=champion_as_of, champion=champion)
        outcome = {"promoted": decision.promote, "version": challenger, "reason": decision.reason,
                   "model_name": project.model_name, "champion": champion}
        if decision.promote:
            champion, champion_as_of, champion_pr_auc = challenger, day, pr_auc
            assert monitor(day, champion).get("duplicate"), "re-scoring the day with the new champion mails again"
        else:
            refusals.append(decision.reason)
        champions.append(champion)
        send_retrain_outcome(project, reports, outcome, transport=transport,
                             links=[("Model version", f"http://mlflow.example.com/#/models/{challenger}")])

    messages = smtp.messages()
    alerts = [m for m in messages if m["X-MLOps-Kind"] == "drift"]
    follow_ups = [m for m in messages if m["X-MLOps-Kind"] == "retrain-outcome"]
    print(f"\n{len(messages)} emails: {len(alerts)} alerts, {len(follow_ups)} follow-ups; champions by night {champions}")
    for m in messages:
        print(f"  {m['Subject']}  (In-Reply-To {m['In-Reply-To']})")

    # One alert per (day, kind) across model versions, over the whole week.
    days = [str(m["X-MLOps-Day"]) for m in alerts]
    assert days == [(FIRST + dt.timedelta(days=n)).isoformat() for n in range(NIGHTS)]
    # No nightly churn: the champion changed on the nights 72 h of data apart, every refusal says when next.
    assert champions == ["1", "1", "4", "4", "4", "7"]
    assert len(refusals) == 4 and all("the next promotion can happen for a challenger trained as of" in r
                                      for r in refusals)
    # Retrain requests every 48 h; each one's outcome follows once, on its alert's thread.
    assert requests == [FIRST, FIRST + dt.timedelta(days=2), FIRST + dt.timedelta(days=4)]
    by_day = {str(m["X-MLOps-Day"]): m for m in alerts}
    assert [str(m["X-MLOps-Day"]) for m in follow_ups] == [d.isoformat() for d in requests]
    for follow_up in follow_ups:
        alert = by_day[str(follow_up["X-MLOps-Day"])]
        assert follow_up["In-Reply-To"] == alert["Message-ID"] == follow_up["References"]
        assert " ".join(str(follow_up["Subject"]).split()) == "Re: " + " ".join(str(alert["Subject"]).split())
    outcomes = [m.get_body(preferencelist=("plain",)).get_content() for m in follow_ups]
    assert "RETRAIN REFUSED" in outcomes[0] and "min_hours_between_promotions" in outcomes[0]
    assert "RETRAIN PROMOTED: fraud_classifier v4 is champion" in outcomes[1]
    assert "RETRAIN REFUSED" in outcomes[2]
    # Every alert carries the small summary, escaped.
    for alert in alerts:
        (summary,) = alert.iter_attachments()
        page = summary.get_content()
        assert len(page.encode()) < 100_000 and "&lt;b&gt;channel&lt;/b&gt;" in page and "<b>channel</b>" not in page


def test_no_follow_up_without_a_request_or_while_awaiting_approval(world):
    from mlops_provider.stages.alerting import send_retrain_outcome

    project, reports, transport = world["project"], world["reports"], world["transport"]
    promoted = {"promoted": True, "version": "2", "reason": "better", "model_name": project.model_name}
    assert send_retrain_outcome(project, reports, promoted, transport=transport, links=[]) is None
    from mlops_provider.stages.retrain import request_retrain

    assert request_retrain(project, reports, FIRST, "drift")["requested"]
    waiting = {**promoted, "promoted": False, "awaiting_approval": True}
    assert send_retrain_outcome(project, reports, waiting, transport=transport, links=[]) is None
    # The alert was never sent through this store (no thread record): the follow-up starts its own thread.
    result = send_retrain_outcome(project, reports, promoted, transport=transport, links=[])
    assert result["sent"]
    (message,) = world["smtp"].messages()
    assert message["In-Reply-To"] is None and str(message["Subject"]).startswith("[MLOps] fraud / 2024-03-11: retrain")
