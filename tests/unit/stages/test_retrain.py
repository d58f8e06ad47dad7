"""The retrain decision of monitoring: once per day, not within the cooldown, nothing for an ok verdict."""

from __future__ import annotations

import datetime as dt

import pytest


@pytest.fixture
def reports(mlops_home):
    from mlops_provider.io.lake import Lake

    return Lake((mlops_home / "reports").as_uri())


@pytest.fixture
def project(fraud_project):
    from mlops_provider.config.project import ProjectConfig

    raw = {**fraud_project.raw, "model": {**fraud_project.model, "retrain_cooldown_hours": 72}}
    return ProjectConfig(path=fraud_project.path, raw=raw)


def test_ok_verdict_requests_nothing(project, reports):
    from mlops_provider.stages.retrain import request_retrain

    assert request_retrain(project, reports, "2024-02-01", "ok")["requested"] is False
    assert reports.list_files("fraud/retrain_requests") == []


def test_a_drifting_stretch_requests_once_per_cooldown(project, reports):
    from mlops_provider.stages.retrain import request_retrain

    start = dt.date(2024, 2, 1)
    decisions = [request_retrain(project, reports, start + dt.timedelta(days=i), "drift") for i in range(7)]
    requested = [i for i, d in enumerate(decisions) if d["requested"]]
    assert requested == [0, 3, 6]  # 72 h cooldown: days 1-2 and 4-5 are within it
    assert decisions[1]["cooldown"] is True and "2024-02-01" in decisions[1]["reason"]
    assert "retrain" in decisions[0]["reason"] and "fraud__train" in decisions[0]["reason"]


def test_rerun_of_a_requested_day_requests_nothing_new(project, reports):
    from mlops_provider.stages.retrain import request_retrain

    assert request_retrain(project, reports, "2024-02-01", "drift")["requested"] is True
    again = request_retrain(project, reports, "2024-02-01", "performance")
    assert again["requested"] is False and again["duplicate"] is True
    assert len(reports.list_files("fraud/retrain_requests")) == 1


def test_an_unrecorded_decision_is_made_again_on_retry(project, reports):
    """The monitor task records a request only after the alert email went out: a failed email retries."""
    from mlops_provider.stages.retrain import record_retrain_request, request_retrain

    first = request_retrain(project, reports, "2024-02-01", "drift", record=False)
    assert first["requested"] is True and reports.list_files("fraud/retrain_requests") == []
    retry = request_retrain(project, reports, "2024-02-01", "drift", record=False)
    assert retry["requested"] is True
    record_retrain_request(project, reports, retry)
    assert request_retrain(project, reports, "2024-02-01", "drift")["duplicate"] is True
    assert request_retrain(project, reports, "2024-02-02", "drift")["cooldown"] is True


def test_a_recorded_request_nobody_announced_is_requested_again_by_its_own_task(project, reports):
    """The monitor died after recording the request, before returning: its retry (same task) requests it again,
    once; another task, or a rerun after the announcement, requests nothing new."""
    import json

    from mlops_provider.stages.retrain import mark_retrain_announced, record_retrain_request, request_retrain

    task = "fraud__monitor/scheduled__2024-02-02/monitor"
    first = request_retrain(project, reports, "2024-02-01", "drift", record=False, requested_by=task)
    record_retrain_request(project, reports, first, requested_by=task)  # ...and the worker died
    retry = request_retrain(project, reports, "2024-02-01", "drift", record=False, requested_by=task)
    assert retry["requested"] is True and retry["recorded"] is True and retry["kind"] == "drift"
    assert "not announced yet" in retry["reason"] and retry["marker"].endswith("retrain_requests/2024-02-01.json")
    other = request_retrain(project, reports, "2024-02-01", "drift", requested_by="fraud__monitor/manual__x/monitor")
    assert other["requested"] is False and other["duplicate"] is True
    assert request_retrain(project, reports, "2024-02-01", "drift")["duplicate"] is True  # no task named
    mark_retrain_announced(project, reports, "2024-02-01", "fraud__monitor/scheduled__2024-02-02/request_retrain")
    rerun = request_retrain(project, reports, "2024-02-01", "drift", requested_by=task)
    assert rerun["requested"] is False and rerun["duplicate"] is True
    marker = json.loads(reports.read_bytes("fraud/retrain_requests/2024-02-01.json"))
    assert marker["requested_by"] == task and marker["announced_by"].endswith("/request_retrain")
    assert mark_retrain_announced(project, reports, "2024-02-05", "x") is None  # nothing on record: nothing written
    assert len(reports.list_files("fraud/retrain_requests")) == 1
