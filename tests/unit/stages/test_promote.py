"""Promotion gate, alias moves under the lock, refusals, rollbacks and racing promotions on a real MLflow store."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time

import pytest
from mlops_provider.stages.promote import gate_and_promote

from tests.mlflow_fixtures import MODEL, fraud_frame, mlflow_home, train_and_register, without_aliases


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A store with v1 (good model), v2 (trained on noise labels, same clean holdout days) and v3 (v1's files)."""
    from mlops_provider.io import model_store

    with mlflow_home(tmp_path_factory, "registry") as (home, project, uri):
        good = train_and_register(project, fraud_frame(), "run-1", tracking_uri=uri, hpo_trials=2)
        bad = train_and_register(project, fraud_frame(shuffle_train_days=4), "run-2", tracking_uri=uri, hpo_trials=1)
        client = model_store.client_for(uri)
        v1 = client.get_model_version(MODEL, "1")
        with model_store.tracking(uri):  # MLflow resolves a models:/m-... source through the fluent URI
            v3 = client.create_model_version(MODEL, v1.source, run_id=v1.run_id, tags={"copy_of": "1", "project": "fraud"})
        assert (good["version"], bad["version"], str(v3.version)) == ("1", "2", "3")
        yield {"db": home / "mlflow" / "mlflow.db", "project": project, "good": good, "bad": bad}


@pytest.fixture
def client(template, mlops_home):
    """A private copy of the template registry in this test's MLOPS_HOME (artifacts are shared, read-only)."""
    from mlops_provider.config import paths
    from mlops_provider.io import model_store

    target = mlops_home / "mlflow" / "mlflow.db"
    target.parent.mkdir(parents=True)
    with sqlite3.connect(template["db"]) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return without_aliases(model_store.client_for(paths.mlflow_tracking_uri()), "champion", "challenger",
                           "previous_champion")


def aliases(client):
    from mlops_provider.io import model_store

    return {k: v for k, v in model_store.aliases(client, MODEL).items() if v is not None}


def check_consistent(current: dict) -> None:
    assert current.get("champion"), f"champion missing: {current}"
    assert current.get("champion") != current.get("previous_champion"), f"two aliases on one version: {current}"


# -- decide -------------------------------------------------------------------------------------------
def test_decide_rules(fraud_project):
    from mlops_provider.domain.promotion import decide

    base = {"pr_auc": 0.20, "roc_auc": 0.80}
    first = decide(fraud_project, {"pr_auc": 0.30, "roc_auc": 0.85}, None, base)
    assert first.promote and "baseline" in first.reason and first.details["improvement"] == pytest.approx(0.10)
    assert not decide(fraud_project, {"pr_auc": 0.19, "roc_auc": 0.85}, None, base).promote

    guard = decide(fraud_project, {"pr_auc": 0.50, "roc_auc": 0.65}, None, base)
    assert not guard.promote and "roc_auc=0.6500 < floor 0.7000" in guard.reason

    champ = {"pr_auc": 0.30, "roc_auc": 0.85}
    assert decide(fraud_project, {"pr_auc": 0.31, "roc_auc": 0.85}, champ, base).promote
    tie = decide(fraud_project, {"pr_auc": 0.30, "roc_auc": 0.85}, champ, base)
    assert not tie.promote and "improvement +0.0000" in tie.reason
    assert not decide(fraud_project, {"pr_auc": float("nan"), "roc_auc": 0.9}, champ, base).promote

    strict = type(fraud_project)(fraud_project.path, {**fraud_project.raw, "promotion": {
        "primary_metric": "roc_auc", "min_improvement": 0.05, "guardrails": {}}})
    assert not decide(strict, {"roc_auc": 0.88}, {"roc_auc": 0.85}, base).promote
    assert decide(strict, {"roc_auc": 0.91}, {"roc_auc": 0.85}, base).promote


# -- the gate on real models --------------------------------------------------------------------------
def test_first_model_becomes_champion_when_it_beats_baseline(client, template):

    client.set_registered_model_alias(MODEL, "challenger", "1")
    result = gate_and_promote(template["project"], client)
    assert result["promoted"] and result["version"] == "1" and result["compared_with"] is None
    assert result["challenger_value"] > result["baseline_value"]
    assert aliases(client) == {"champion": "1"}  # the challenger alias went with the promotion
    tags = client.get_model_version(MODEL, "1").tags
    assert tags["promotion_decision"] == "promoted" and "baseline" in tags["promotion_reason"]
    assert tags["promoted_at"].startswith(str(dt.date.today().year))


def test_worse_challenger_is_refused_and_champion_unchanged(client, template):
    from mlops_provider.io import model_store

    model_store.promote(client, MODEL, "1", reason="setup")
    client.set_registered_model_alias(MODEL, "challenger", "2")
    result = gate_and_promote(template["project"], client)
    assert result["promoted"] is False and result["version"] == "2" and result["compared_with"] == "1"
    assert result["challenger_value"] < result["champion_value"]
    assert aliases(client) == {"champion": "1", "challenger": "2"}
    tags = client.get_model_version(MODEL, "2").tags
    assert tags["promotion_decision"] == "refused" and tags["promotion_reason"] == result["reason"]
    assert "roc_auc" in result["reason"] or "improvement" in result["reason"]


def test_better_challenger_replaces_champion_on_the_same_holdout(client, template):
    from mlops_provider.io import model_store

    model_store.promote(client, MODEL, "2", reason="setup: a weak champion")
    result = gate_and_promote(template["project"], client, version=1)
    assert result["promoted"] and result["compared_with"] == "2"
    # Both were scored on v1's holdout: the champion's number differs from what its own run logged.
    own = client.get_run(template["bad"]["run_id"]).data.metrics["pr_auc"]
    assert result["champion_value"] != pytest.approx(own, abs=1e-12) or own == result["champion_value"]
    assert aliases(client) == {"champion": "1", "previous_champion": "2"}
    assert client.get_model_version(MODEL, "1").tags["replaced_champion"] == "2"


def test_gate_without_challenger_raises(client, template):
    from mlops_provider.exceptions import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="no 'challenger' alias"):
        gate_and_promote(template["project"], client)


# -- rollback -----------------------------------------------------------------------------------------
def test_rollback_restores_previous_champion_and_swaps(client):
    from mlops_provider.io import model_store

    model_store.promote(client, MODEL, "1", reason="first")
    model_store.promote(client, MODEL, "3", reason="second")
    assert aliases(client) == {"champion": "3", "previous_champion": "1"}
    result = model_store.rollback(client, MODEL)
    assert result["version"] == "1" and result["rolled_back_from"] == "3"
    assert aliases(client) == {"champion": "1", "previous_champion": "3"}
    assert client.get_model_version(MODEL, "1").tags["rollback_from"] == "3"
    model_store.rollback(client, MODEL)  # rolling back a rollback swaps again
    assert aliases(client) == {"champion": "3", "previous_champion": "1"}
    model_store.rollback(client, MODEL, to=2)
    assert aliases(client) == {"champion": "2", "previous_champion": "3"}


def test_rollback_with_nothing_to_roll_back_to_is_a_clear_error(client):
    from mlops_provider.exceptions import ModelNotFoundError
    from mlops_provider.io import model_store

    with pytest.raises(ModelNotFoundError, match="nothing to roll back to"):
        model_store.rollback(client, MODEL)
    model_store.promote(client, MODEL, "1", reason="only one")
    with pytest.raises(ModelNotFoundError, match=r"no 'previous_champion' alias \(champion is v1\)"):
        model_store.rollback(client, MODEL)
    with pytest.raises(ModelNotFoundError, match="already the champion"):
        model_store.rollback(client, MODEL, to="1")
    with pytest.raises(ModelNotFoundError, match="v99 does not exist"):
        model_store.rollback(client, MODEL, to=99)
    assert aliases(client) == {"champion": "1"}


# -- concurrency and crash consistency ---------------------------------------------------------------
def _race(targets, **kwargs):
    from mlops_provider.config import paths
    from mlops_provider.io import model_store

    barrier = threading.Barrier(len(targets))
    results, errors = {}, []

    def worker(version):
        try:
            own = model_store.client_for(paths.mlflow_tracking_uri())  # separate client, like separate tasks
            barrier.wait()
            results[version] = model_store.promote(own, MODEL, version, reason=f"race {version}", **kwargs)
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(v,)) for v in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


def test_two_promotions_racing_end_consistent(client):
    from mlops_provider.io import model_store

    for round_ in range(4):
        model_store.promote(client, MODEL, "1", reason="reset")
        racers = ["2", "3"] if round_ % 2 == 0 else ["3", "2"]
        _race(racers)
        final = aliases(client)
        check_consistent(final)
        assert final["champion"] in {"2", "3"}
        # Serialised by the lock: the loser was champion when the winner replaced it.
        assert final["previous_champion"] == ({"2", "3"} - {final["champion"]}).pop()
        winner = client.get_model_version(MODEL, final["champion"]).tags
        assert winner["replaced_champion"] == final["previous_champion"]


def test_racing_promotions_with_stale_decisions_let_only_one_through(client):
    from mlops_provider.io import model_store

    model_store.promote(client, MODEL, "1", reason="reset")
    results = _race(["2", "3"], expected_champion="1")
    promoted = [v for v, r in results.items() if r["promoted"]]
    stale = [v for v, r in results.items() if r.get("stale")]
    assert len(promoted) == 1 and len(stale) == 1
    assert "re-evaluate" in results[stale[0]]["reason"]
    assert aliases(client) == {"champion": promoted[0], "previous_champion": "1"}


def test_promotion_waits_for_the_lock(client):
    from mlops_provider.io import model_store

    model_store.promote(client, MODEL, "1", reason="reset")
    with model_store.model_lock(MODEL):
        t = threading.Thread(target=model_store.promote, args=(client, MODEL, "2"), kwargs={"reason": "waits"})
        t.start()
        time.sleep(0.7)
        assert t.is_alive() and aliases(client)["champion"] == "1"
    t.join(30)
    assert aliases(client) == {"champion": "2", "previous_champion": "1"}


def test_retry_after_crash_between_alias_writes_finishes_bookkeeping(client):
    from mlops_provider.io import model_store

    model_store.promote(client, MODEL, "1", reason="reset")
    client.set_registered_model_alias(MODEL, "challenger", "2")
    # What a promotion of v2 leaves behind when the worker dies right after moving `champion`:
    client.set_model_version_tag(MODEL, "2", "pending_previous_champion", "1")
    client.set_registered_model_alias(MODEL, "champion", "2")
    check_consistent(aliases(client))
    result = model_store.promote(client, MODEL, "2", reason="retry")
    assert result["already_champion"]
    assert aliases(client) == {"champion": "2", "previous_champion": "1"}
    assert "pending_previous_champion" not in client.get_model_version(MODEL, "2").tags


def test_rollback_after_a_half_finished_promotion_restores_the_replaced_champion(client):
    """Was: a promotion of v3 that died after moving `champion` left `previous_champion` at v1, and a rollback
    to "previous" put v1 back instead of v2, the champion v3 had replaced."""
    from mlops_provider.io import model_store

    model_store.promote(client, MODEL, "1", reason="first")
    model_store.promote(client, MODEL, "2", reason="second")
    client.set_model_version_tag(MODEL, "3", "pending_previous_champion", "2")
    client.set_registered_model_alias(MODEL, "champion", "3")
    assert aliases(client) == {"champion": "3", "previous_champion": "1"}
    model_store.rollback(client, MODEL, "previous", decision_key="test|rollback-after-half-promotion")
    assert aliases(client) == {"champion": "2", "previous_champion": "3"}
    assert "pending_previous_champion" not in client.get_model_version(MODEL, "3").tags


def test_promoting_the_champion_again_does_not_undo_a_rollback(client):
    from mlops_provider.io import model_store

    model_store.promote(client, MODEL, "1", reason="first")
    model_store.promote(client, MODEL, "2", reason="second")
    model_store.promote(client, MODEL, "3", reason="third")
    model_store.rollback(client, MODEL)  # champion 2, previous 3
    model_store.promote(client, MODEL, "2", reason="again")
    assert aliases(client) == {"champion": "2", "previous_champion": "3"}


def test_refuse_records_tags_and_leaves_aliases(client):
    from mlops_provider.io import model_store

    model_store.promote(client, MODEL, "1", reason="reset")
    client.set_registered_model_alias(MODEL, "challenger", "3")
    out = model_store.refuse(client, MODEL, 3, "not better")
    assert out == {"promoted": False, "model_name": MODEL, "version": "3", "reason": "not better"}
    assert client.get_model_version(MODEL, "3").tags["promotion_decision"] == "refused"
    assert aliases(client) == {"champion": "1", "challenger": "3"}


def test_each_airflow_run_registered_its_own_version(client, template):
    assert template["good"]["run_id"] != template["bad"]["run_id"]
    assert client.get_model_version(MODEL, "2").tags["airflow_run_id"] == "run-2"


# -- operators ----------------------------------------------------------------------------------------
class _TI:
    """What the operators use of a TaskInstance: its identity and ``xcom_push`` (for their links)."""

    def __init__(self):
        import uuid

        self.xcom = {}
        self.dag_id, self.task_id, self.run_id = "fraud__model_ops", "promote", f"manual__{uuid.uuid4().hex}"

    def xcom_push(self, key, value):
        self.xcom[key] = value


def test_rerun_of_a_decided_promotion_returns_the_recorded_decision(client, template, fraud_project):
    """A cleared promote task must not re-decide against a champion that has moved since."""
    from mlops_provider.io import model_store

    first = gate_and_promote(fraud_project, client, version="1", decision_key="fraud__train|run-1|promote")
    assert first["promoted"] is True
    # A new champion arrives by another run; clearing run-1's promote task must not re-decide for v1.
    model_store.promote(client, MODEL, "3", reason="test: another champion")
    again = gate_and_promote(fraud_project, client, version="1", decision_key="fraud__train|run-1|promote")
    assert again["already_decided"] is True and again["promoted"] is True and again["already_champion"] is False
    assert aliases(client)["champion"] == "3"
    assert again["reason"] == client.get_model_version(MODEL, "1").tags["promotion_reason"]


def test_promote_and_rollback_operators(client, template):
    from mlops_provider.operators.registry import PromoteModelOperator, RollbackModelOperator

    client.set_registered_model_alias(MODEL, "challenger", "1")
    ti = _TI()
    out = PromoteModelOperator(task_id="promote", project_name="fraud").execute({"ti": ti})
    assert out["promoted"] and out["version"] == "1"
    assert ti.xcom["mlops_model_version"]["url"] and ti.xcom["mlops_mlflow_run"]["url"].startswith("file://")

    client.set_registered_model_alias(MODEL, "challenger", "2")
    refused = PromoteModelOperator(task_id="promote", project_name="fraud").execute({"ti": _TI()})
    assert refused["promoted"] is False and refused["reason"]  # a refusal is not a task failure
    assert aliases(client)["champion"] == "1"

    PromoteModelOperator(task_id="p3", project_name="fraud", version="3").execute({"ti": _TI()})
    # v3 holds v1's files: identical metrics, so the tie is refused.
    assert aliases(client)["champion"] == "1"
    from mlops_provider.io import model_store

    model_store.promote(client, MODEL, "3", reason="manual")
    rolled = RollbackModelOperator(task_id="rollback", project_name="fraud").execute({"ti": _TI()})
    assert rolled["version"] == "1" and aliases(client)["previous_champion"] == "3"
    assert set(PromoteModelOperator.template_fields) >= {"version"}
    assert set(RollbackModelOperator.template_fields) >= {"to"}


def test_model_ops_requests_that_contradict_themselves_are_refused_before_anything_moves(client, template):
    from mlops_provider.exceptions import ModelOpsRequestError
    from mlops_provider.operators.registry import (
        PromoteModelOperator,
        RollbackModelOperator,
        check_model_ops_request,
    )

    for action, version, hint in (("rollback", "challenger", "action=promote"),
                                  ("promote", "previous", "action=rollback")):
        with pytest.raises(ModelOpsRequestError, match=hint):
            check_model_ops_request(action, version)
    check_model_ops_request("rollback", "previous")
    check_model_ops_request("promote", "challenger")
    check_model_ops_request("promote", "3")

    client.set_registered_model_alias(MODEL, "champion", "1")
    client.set_registered_model_alias(MODEL, "previous_champion", "2")
    before = aliases(client)
    # Operators raise it as AirflowFailException (no retries), the domain error as its cause.
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as refused:
        RollbackModelOperator(task_id="rollback", project_name="fraud", to="challenger").execute({"ti": _TI()})
    assert isinstance(refused.value.__cause__, ModelOpsRequestError)
    with pytest.raises(AirflowFailException) as refused:
        PromoteModelOperator(task_id="promote", project_name="fraud", version="previous").execute({"ti": _TI()})
    assert isinstance(refused.value.__cause__, ModelOpsRequestError)
    assert aliases(client) == before

    rolled = RollbackModelOperator(task_id="rollback", project_name="fraud", to="previous",
                                   reason="INC-42: v1 floods the review queue").execute({"ti": _TI()})
    assert rolled["version"] == "2"
    assert client.get_model_version(MODEL, "2").tags["rollback_reason"] == "INC-42: v1 floods the review queue"


def test_refused_manual_promotion_is_skipped_not_announced(client, template):
    from airflow.sdk.exceptions import AirflowSkipException
    from mlops_provider.operators.registry import PromoteModelOperator

    client.set_registered_model_alias(MODEL, "challenger", "1")
    PromoteModelOperator(task_id="promote", project_name="fraud").execute({"ti": _TI()})
    client.set_registered_model_alias(MODEL, "challenger", "2")
    ti = _TI()
    with pytest.raises(AirflowSkipException, match="not promoted"):
        PromoteModelOperator(task_id="promote", project_name="fraud", version="challenger", skip_if_refused=True,
                             request_reason="on-call: try the retrain").execute({"ti": ti})
    assert ti.xcom["return_value"]["promoted"] is False
    assert aliases(client)["champion"] == "1"
    assert client.get_model_version(MODEL, "2").tags["promotion_request_reason"] == "on-call: try the retrain"


# -- retries of model operations ------------------------------------------------------------------------
def test_retried_rollback_to_previous_never_swaps_the_bad_model_back(client):
    """The rollback task failed after its alias moves (e.g. MLflow refused the reason tag); its retry must
    return the same rollback, not compute a new one from the moved aliases."""
    from mlops_provider.io import model_store

    model_store.promote(client, MODEL, "1", reason="good")
    model_store.promote(client, MODEL, "3", reason="bad")
    key = "fraud__model_ops|manual__1|rollback"
    first = model_store.rollback(client, MODEL, decision_key=key)
    assert aliases(client) == {"champion": "1", "previous_champion": "3"}
    again = model_store.rollback(client, MODEL, decision_key=key)
    assert aliases(client) == {"champion": "1", "previous_champion": "3"}
    assert again["version"] == first["version"] == "1" and again["already_rolled_back"] is True
    # Another run (another key) may still roll back again, deliberately.
    model_store.rollback(client, MODEL, decision_key="fraud__model_ops|manual__2|rollback")
    assert aliases(client) == {"champion": "3", "previous_champion": "1"}


def test_retried_rollback_to_a_version_returns_it_instead_of_failing(client):
    from mlops_provider.io import model_store

    model_store.promote(client, MODEL, "1", reason="first")
    model_store.promote(client, MODEL, "3", reason="second")
    key = "fraud__model_ops|manual__3|rollback"
    model_store.rollback(client, MODEL, to="2", decision_key=key)
    again = model_store.rollback(client, MODEL, to="2", decision_key=key)  # was: "already the champion"
    assert again["version"] == "2" and again["rolled_back_from"] == "3"
    assert aliases(client) == {"champion": "2", "previous_champion": "3"}


def test_rollback_crashed_between_alias_writes_is_finished_by_its_retry(client, monkeypatch):
    from mlops_provider.io import model_store

    model_store.promote(client, MODEL, "1", reason="first")
    model_store.promote(client, MODEL, "3", reason="second")
    key = "fraud__model_ops|manual__4|rollback"
    real = client.set_registered_model_alias

    def crash_on_previous(name, alias, version):
        if alias == "previous_champion":
            raise ConnectionError("MLflow went away")
        return real(name, alias, version)

    monkeypatch.setattr(client, "set_registered_model_alias", crash_on_previous)
    with pytest.raises(ConnectionError):
        model_store.rollback(client, MODEL, decision_key=key)
    monkeypatch.setattr(client, "set_registered_model_alias", real)
    assert aliases(client)["champion"] == "1"  # champion moved, previous_champion not yet
    model_store.rollback(client, MODEL, decision_key=key)
    assert aliases(client) == {"champion": "1", "previous_champion": "3"}


def test_retried_promotion_still_announces_the_new_champion(client, template, fraud_project):
    """A promote retry after a successful promotion said "already champion", so announce_champion skipped
    and scoring never re-scored with the new champion."""
    first = gate_and_promote(fraud_project, client, version="1", decision_key="fraud__train|run-9|promote")
    assert first["promoted"] is True and not first.get("already_champion")
    again = gate_and_promote(fraud_project, client, version="1", decision_key="fraud__train|run-9|promote")
    assert again["already_decided"] is True and again["promoted"] is True and again["already_champion"] is False


def test_registration_racing_a_promotion_keeps_its_challenger(client, template):
    """A training run registers v4 while a promotion of v2 holds the lock between its alias writes.

    The promotion read ``challenger = v2`` and drops that alias after moving champion; a registration
    whose ``challenger`` write slipped in between lost its alias to that delete. Under the lock the
    registration waits, then aliases v4: champion v2, previous v1, challenger v4.
    """
    from mlops_provider.config import paths
    from mlops_provider.io import model_store

    model_store.promote(client, MODEL, "1", reason="reset")
    client.set_registered_model_alias(MODEL, "challenger", "2")
    promoting = model_store.client_for(paths.mlflow_tracking_uri())  # the promote task's own client
    moved, resume = threading.Event(), threading.Event()
    set_alias = promoting.set_registered_model_alias

    def set_alias_then_pause(name, alias, version):
        set_alias(name, alias, version)
        if alias == "champion":  # champion moved; previous_champion and challenger not yet
            moved.set()
            resume.wait(120)

    promoting.set_registered_model_alias = set_alias_then_pause
    errors: list[BaseException] = []

    def run(target, *args, **kwargs):
        try:
            target(*args, **kwargs)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    promotion = threading.Thread(target=run, args=(model_store.promote, promoting, MODEL, "2"),
                                 kwargs={"reason": "race"})
    promotion.start()
    assert moved.wait(60), errors
    registration = threading.Thread(target=run, args=(train_and_register, template["project"], fraud_frame(rows=1500),
                                                      "run-race"),
                                    kwargs=dict(tracking_uri=paths.mlflow_tracking_uri(), hpo_trials=1))
    registration.start()
    deadline = time.monotonic() + 180
    while not client.search_model_versions(f"name = '{MODEL}' and version_number = 4"):
        assert registration.is_alive() and time.monotonic() < deadline, errors or "v4 never registered"
        time.sleep(0.2)
    time.sleep(1.5)  # the registration's alias write: done unlocked, or waiting for the promotion's lock
    waited = registration.is_alive()
    resume.set()
    promotion.join(60)
    registration.join(120)
    assert not errors, errors
    assert aliases(client) == {"champion": "2", "previous_champion": "1", "challenger": "4"}
    assert waited, "the registration's challenger write did not wait for the promotion's lock"


def test_challenger_write_waits_for_the_lock_and_keeps_candidates_only(client):
    """``set_challenger`` waits for a held lock; a served or decided version, or an older one, never takes the alias."""
    from mlops_provider.io import model_store

    model_store.promote(client, MODEL, "1", reason="reset")
    with model_store.model_lock(MODEL):
        t = threading.Thread(target=model_store.set_challenger, args=(client, MODEL, "2"))
        t.start()
        time.sleep(0.7)
        assert t.is_alive() and aliases(client) == {"champion": "1"}
    t.join(30)
    assert aliases(client) == {"champion": "1", "challenger": "2"}
    assert model_store.set_challenger(client, MODEL, "3") is True  # a newer registration replaces it
    assert model_store.set_challenger(client, MODEL, "2") is False  # an older one does not (reordered writes)
    assert model_store.set_challenger(client, MODEL, "1") is False  # the champion is no candidate
    model_store.refuse(client, MODEL, "3", "not better")
    client.delete_registered_model_alias(MODEL, "challenger")
    assert model_store.set_challenger(client, MODEL, "3") is False  # decided already
    assert aliases(client) == {"champion": "1"}
