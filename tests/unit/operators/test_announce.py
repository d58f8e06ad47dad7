"""The small decision operators of the DAGs: announce an asset event, or skip when there is nothing to announce."""

from __future__ import annotations

from typing import Any

import pytest


class _TI:
    def __init__(self, returns: dict[str, Any]) -> None:
        self.returns = returns

    def xcom_pull(self, task_ids: str) -> Any:
        return self.returns.get(task_ids)


class _Event:
    extra: dict[str, Any] | None = None


class _OutletEvents(dict):
    def __missing__(self, key):
        self[key] = _Event()
        return self[key]


def _context(returns: dict[str, Any]) -> dict[str, Any]:
    return {"ti": _TI(returns), "outlet_events": _OutletEvents()}


MONITOR = {"day": "2024-01-12", "kind": "drift", "model_version": "3", "retrain_requested": True,
           "drifted_columns": [f"c{i}" for i in range(25)], "roc_auc": None,
           "report": {"html": "file:///r/report.html", "json": "file:///r/report.json"},
           "retrain": {"requested": True, "reason": "drift"}}


def test_request_retrain_emits_the_verdict_summary_on_the_drift_asset():
    from airflow.sdk import Asset
    from mlops_provider.operators.announce import RequestRetrainOperator

    drift = Asset(name="fraud.drift", uri="x-mlops://fraud/drift")
    context = _context({"monitor": MONITOR})
    extra = RequestRetrainOperator(task_id="request_retrain", outlets=[drift]).execute(context)
    assert extra == {"day": "2024-01-12", "kind": "drift", "model_version": "3",
                     "drifted_columns": [f"c{i}" for i in range(20)], "roc_auc": None,
                     "report": "file:///r/report.html"}
    assert context["outlet_events"][drift].extra == extra


@pytest.mark.parametrize("returned", [None, {**MONITOR, "retrain_requested": False,
                                             "retrain": {"requested": False, "reason": "on cooldown"}}])
def test_no_retrain_request_skips_and_emits_nothing(returned):
    from airflow.sdk import Asset
    from airflow.sdk.exceptions import AirflowSkipException
    from mlops_provider.operators.announce import RequestRetrainOperator

    drift = Asset(name="fraud.drift", uri="x-mlops://fraud/drift")
    context = _context({"monitor": returned})
    with pytest.raises(AirflowSkipException, match="requested no retraining"):
        RequestRetrainOperator(task_id="request_retrain", outlets=[drift]).execute(context)
    assert not context["outlet_events"]


def test_announce_champion_only_when_the_champion_changed():
    from airflow.sdk import Asset
    from airflow.sdk.exceptions import AirflowSkipException
    from mlops_provider.operators.announce import AnnounceChampionOperator

    model = Asset(name="fraud.model", uri="x-mlops://fraud/model")
    op = AnnounceChampionOperator(task_id="announce_champion", decision_task_id="promote", as_of="2024-01-10",
                                  outlets=[model])
    promoted = {"promoted": True, "model_name": "fraud_classifier", "version": "4", "replaced": "3"}
    context = _context({"promote": promoted})
    assert op.execute(context) == {"day": "2024-01-10", "model_name": "fraud_classifier", "version": "4",
                                   "replaced": "3"}
    assert context["outlet_events"][model].extra["version"] == "4"
    assert set(AnnounceChampionOperator.template_fields) >= {"as_of"}

    for result, reason in (({"promoted": False, "reason": "worse"}, "promoted nothing: worse"),
                           ({**promoted, "already_champion": True}, "already was champion"),
                           (None, "promoted nothing")):
        context = _context({"promote": result})
        with pytest.raises(AirflowSkipException, match=reason):
            op.execute(context)
        assert not context["outlet_events"]


def test_approval_gate_skips_unless_the_promotion_awaits_approval():
    from airflow.sdk.exceptions import AirflowSkipException
    from mlops_provider.operators.announce import ApprovalNeededOperator

    op = ApprovalNeededOperator(task_id="needs_approval")
    assert op.execute(_context({"promote": {"promoted": False, "awaiting_approval": True}})) is True
    with pytest.raises(AirflowSkipException, match="awaits no approval"):
        op.execute(_context({"promote": {"promoted": False, "reason": "worse"}}))


def test_model_ops_router_refuses_contradictions_and_names_the_branch():
    from mlops_provider.exceptions import ModelOpsRequestError
    from mlops_provider.operators.registry import ModelOpsActionOperator

    def route(action, version):
        return ModelOpsActionOperator(task_id="choose_action", action=action, version=version).choose_branch({})

    assert route("rollback", "previous") == "rollback"
    assert route("promote", "challenger") == "promote"
    assert route("promote", "7") == "promote"
    # The domain error reaches Airflow as AirflowFailException: the task fails without retries.
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="action=promote") as refused:
        route("rollback", "challenger")
    assert isinstance(refused.value.__cause__, ModelOpsRequestError)
    with pytest.raises(AirflowFailException, match="action=rollback") as refused:
        route("promote", "previous")
    assert isinstance(refused.value.__cause__, ModelOpsRequestError)
