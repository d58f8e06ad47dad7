"""The pipeline on the production stack: REST-triggered runs on Celery workers, asserted on the services' data.

Order matters (one stack per session): health and settings, ingestion + features, training through
monitoring and the alert email, the web UI, then the failure test that kills a worker (last, since the stack runs on one worker afterwards).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import signal
import tempfile
import time
import uuid

import psutil
import pytest
import requests

from devkit.stack import project, wait_for
from tests.integration.stack.support import (
    CHURN_ROWS,
    DAYS,
    DRIFT_DAY,
    FRAUD_ROWS,
    HISTORY_DAYS,
    SPARE_DAY,
    YESTERDAY,
    seed_history,
)

pytestmark = [pytest.mark.integration, pytest.mark.stack]

CONNECTIONS = {"mlflow_default", "feast_default", "mlops_lake_default", "aws_default", "smtp_default",
               "mlops_source_postgres", "mlops_state_default"}
RUN_TIMEOUT = 420


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _objects(stack, prefix: str) -> list[str]:
    pages = stack.s3().get_paginator("list_objects_v2").paginate(Bucket=stack.bucket, Prefix=prefix)
    # Directory markers ("dt=.../") that pyarrow's S3 filesystem creates are not data.
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []) if not o["Key"].endswith("/"))


def _read_parquet(stack, key: str):
    import pyarrow.parquet as pq

    body = stack.s3().get_object(Bucket=stack.bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body)).to_pandas()


def _partition(stack, table: str, day) -> str:
    return f"lake/{table}/dt={day.isoformat()}/data.parquet"


# -- the stack itself -------------------------------------------------------------------------------
def test_stack_is_healthy_authenticated_and_on_loopback_only(stack, api):
    health = requests.get(f"{stack.api_url}/api/v2/monitor/health", timeout=10).json()
    assert {k: v["status"] for k, v in health.items()} == {
        "metadatabase": "healthy", "scheduler": "healthy", "triggerer": "healthy", "dag_processor": "healthy"}
    assert requests.get(f"{stack.api_url}/api/v2/dags", timeout=10).status_code == 401
    bad = requests.post(f"{stack.api_url}/auth/token", json={"username": "admin", "password": "wrong"}, timeout=10)
    assert bad.status_code in (401, 403)

    listening = []
    for pid_file in (stack.dir / "pids").glob("*.pid"):
        for proc in _tree(int(pid_file.read_text())):
            try:
                conns = proc.net_connections(kind="inet")
            except psutil.Error:
                continue
            listening += [(pid_file.stem, c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
    assert listening, "no listening socket found for the stack's processes"
    assert {ip for _, ip, _ in listening} == {"127.0.0.1"}, f"something listens beyond loopback: {listening}"
    workers = [c for c, _, _ in listening if c.startswith("worker")]
    assert sorted(set(workers)) == ["worker1-logs", "worker2-logs"]

    # airflow_settings.yaml was loaded: connections (secrets not echoed), pool, variable.
    conns = {c["connection_id"]: c for c in api.get("/connections", limit=100)["connections"]}
    assert CONNECTIONS <= set(conns)
    assert json.loads(conns["feast_default"]["extra"])["online_store"]["type"] == "redis"
    assert json.loads(conns["mlops_lake_default"]["extra"])["lake_uri"] == f"s3://{stack.bucket}/lake"
    assert api.get("/pools/mlops_promotion")["slots"] == 1
    assert api.get("/variables/mlops_environment")["value"] == "stack"


# -- the pipeline ---------------------------------------------------------------------------------
def test_ingest_from_postgres_and_s3_then_features_into_redis(stack, api):
    """Scheduled + REST-triggered ingest runs, asset-triggered features runs, checked in S3 and Redis."""
    day = DAYS[1]
    for dag_id in ("fraud__features", "churn__features", "fraud__ingest", "churn__ingest"):
        api.unpause(dag_id)  # unpausing ingest also makes the scheduler run the latest interval
    fraud_run = api.trigger("fraud__ingest", {"day": day.isoformat()})
    churn_run = api.trigger("churn__ingest", {"day": day.isoformat()})
    api.wait_run("fraud__ingest", fraud_run, RUN_TIMEOUT, describe=stack.logs)
    api.wait_run("churn__ingest", churn_run, RUN_TIMEOUT, describe=stack.logs)
    scheduled_days = set()
    for name in ("fraud", "churn"):
        ingest = api.wait_runs_settled(f"{name}__ingest", at_least=2, timeout=RUN_TIMEOUT)
        assert {r["state"] for r in ingest} == {"success"}, ingest
        assert {r["run_type"] for r in ingest} >= {"manual", "scheduled"}
        # The scheduler names a scheduled run by the day it ingests (mlops_provider.timetables), not the next:
        # yesterday, or SPARE_DAY when midnight UTC passed between collecting this module and unpausing.
        scheduled = [r["dag_run_id"] for r in ingest if r["run_type"] == "scheduled"]
        assert len(scheduled) == 1 and scheduled[0] in {
            f"scheduled__{d.isoformat()}T00:00:00+00:00" for d in (YESTERDAY, SPARE_DAY)}, ingest
        scheduled_days.add(dt.date.fromisoformat(scheduled[0].removeprefix("scheduled__")[:10]))
        features = api.wait_runs_settled(f"{name}__features", at_least=2, timeout=RUN_TIMEOUT)
        assert {r["state"] for r in features} == {"success"}, features
        assert all(r["run_type"] == "asset_triggered" for r in features)

    # Exactly the day's rows, once, in one object per partition (written to a temporary name, then renamed).
    for name, rows, key, entity in (("fraud", FRAUD_ROWS, "transaction_id", "customer"),
                                    ("churn", CHURN_ROWS, "usage_id", "subscriber")):
        for d in (day, *scheduled_days):
            assert _objects(stack, f"lake/{name}/records/dt={d.isoformat()}/") == [_partition(stack, f"{name}/records", d)]
            frame = _read_parquet(stack, _partition(stack, f"{name}/records", d))
            assert len(frame) == rows and frame[key].is_unique
        for d in scheduled_days:
            assert _objects(stack, f"lake/{name}/features/entity/{entity}/dt={d.isoformat()}/")

    # Each Celery worker runs with a private MLOPS_HOME, as a worker on its own host does: the Feast repository
    # config a materialize task writes is in the home of the worker that ran it, in no shared place.
    hosts = {t["hostname"] for name in ("fraud", "churn") for r in api.runs(f"{name}__features")
             for t in api.task_instances(f"{name}__features", r["dag_run_id"]) if t["task_id"] == "materialize"}
    assert hosts and hosts <= {"worker1", "worker2"}, hosts
    for host in hosts:
        assert (stack.worker_home(host) / "feast" / "fraud").is_dir() or (stack.worker_home(host) / "feast" / "churn").is_dir()
    assert not (stack.home / "feast").exists()

    # The Feast online store in Redis serves what the offline partition holds.
    redis = stack.redis()
    keys = redis.keys("*")
    assert any(k.endswith(b"fraud") for k in keys) and any(k.endswith(b"churn") for k in keys), keys[:5]
    offline = _read_parquet(stack, _partition(stack, "fraud/features/entity/customer", max(scheduled_days)))
    offline = offline.set_index("customer_id")
    online = _online_features(stack, list(offline.index[:25]))
    for i, customer in enumerate(online["customer_id"]):
        assert online["customer__count_30d"][i] == offline.loc[customer, "customer__count_30d"], customer


def _online_features(stack, customers: list[str]) -> dict:
    """Read the stack's Redis online store through Feast with the stack's own connection settings."""
    import pyarrow.fs as pafs
    from mlops_provider.hooks.feast import FeastHook
    from mlops_provider.io.lake import Lake

    e = stack.env
    extra = {"online_store": {"type": "redis", "connection_string":
                              f"{e['MLOPS_REDIS_HOST']}:{e['MLOPS_REDIS_PORT']},db={e['MLOPS_FEAST_REDIS_DB']}"},
             "registry": {"registry_type": "sql", "path": e["MLOPS_FEAST_REGISTRY_URI"], "cache_ttl_seconds": 60}}
    fs = pafs.S3FileSystem(access_key=e["MLOPS_S3_ACCESS_KEY_ID"], secret_key=e["MLOPS_S3_SECRET_ACCESS_KEY"],
                           endpoint_override=e["MLOPS_S3_ENDPOINT_URL"], scheme="http", region="us-east-1")
    os.environ["AIRFLOW_CONN_FEAST_STACK_TEST"] = json.dumps({"conn_type": "feast", "extra": extra})
    try:
        hook = FeastHook(project(stack, "fraud"), feast_conn_id="feast_stack_test",
                         lake=Lake(f"s3://{stack.bucket}/lake", filesystem=fs))
        return hook.feature_store().get_online_features([{"customer_id": c} for c in customers])
    finally:
        os.environ.pop("AIRFLOW_CONN_FEAST_STACK_TEST", None)


# -- the model half: train -> promote -> score -> monitor -> alert email -----------------------------
MODEL_DAGS = ("fraud__train", "fraud__score", "fraud__monitor")


def _features_of(stack, api, days, timeout: float = RUN_TIMEOUT) -> None:
    """Wait until the scheduler computed every day's feature partitions. Ingest runs finish faster than
    features runs, so Airflow merges several ``fraud.validated`` events into one features run: that run
    must compute every day its events name (nothing here triggers features by hand)."""
    def missing():
        return [d for d in days if not (_objects(stack, f"lake/fraud/features/entity/customer/dt={d.isoformat()}/")
                                        and _objects(stack, f"lake/fraud/features/record/dt={d.isoformat()}/"))]

    wait_for(f"feature partitions of {len(days)} days", lambda: not missing(), timeout,
              lambda: f"missing {missing()}\n{stack.logs()}")


def test_train_promote_score_monitor_and_alert_email(stack, api):
    """History ingested through the API; a triggered training makes a champion; the assets run scoring and
    monitoring of a covariate-drift day, whose alert email reaches the SMTP server and report lands in S3."""
    try:
        _train_to_alert(stack, api)
    finally:
        # Later tests ingest more days; scoring them with the UI test's placeholder champion would only fail.
        for dag_id in MODEL_DAGS:
            api.pause(dag_id)


def _train_to_alert(stack, api) -> None:
    began = time.monotonic()
    # Unpausing a nightly DAG makes the scheduler run its latest cron time: before any labelled history is
    # in the lake, that scheduled training finds too little data and skips (no champion yet to defend).
    api.unpause("fraud__train")
    seed_history(stack)
    nightly = api.wait_runs_settled("fraud__train", at_least=1, timeout=RUN_TIMEOUT)
    assert [r["run_type"] for r in nightly] == ["scheduled"], nightly
    assert {t["task_id"]: t["state"] for t in api.task_instances("fraud__train", nightly[0]["dag_run_id"])}[
        "train"] == "skipped", nightly
    runs = [api.trigger("fraud__ingest", {"day": d.isoformat()}) for d in HISTORY_DAYS]
    for run_id in runs:
        api.wait_run("fraud__ingest", run_id, RUN_TIMEOUT, describe=stack.logs)
    _features_of(stack, api, HISTORY_DAYS)
    features = api.wait_runs_settled("fraud__features", at_least=1, timeout=RUN_TIMEOUT)
    assert {r["state"] for r in features} == {"success"}, features
    print(f"\nhistory of {len(HISTORY_DAYS)} days ingested with features in {time.monotonic() - began:.0f}s")

    model_name = project(stack, "fraud").model_name
    client = stack.mlflow()
    for dag_id in ("fraud__score", "fraud__monitor"):
        api.unpause(dag_id)
    train_run = api.trigger("fraud__train", {"day": DRIFT_DAY.isoformat(), "hpo_trials": 1})
    api.wait_run("fraud__train", train_run, RUN_TIMEOUT, describe=stack.logs)
    tis = {t["task_id"]: t["state"] for t in api.task_instances("fraud__train", train_run)}
    assert tis["announce_champion"] == "success", (tis, _promote_reason(api, train_run))
    print(f"trained and promoted after {time.monotonic() - began:.0f}s")

    # The registry on the MLflow server: a champion trained by this run, its model files in S3.
    aliases = client.get_registered_model(model_name).aliases
    assert "champion" in aliases, aliases
    champion = client.get_model_version(model_name, aliases["champion"])
    run = client.get_run(champion.run_id)
    assert run.data.tags["airflow_run_id"] == train_run, run.data.tags
    keys = _objects(stack, "mlflow/")
    model_id = champion.source.rstrip("/").rsplit("/", 1)[-1]  # models:/m-<id> (MLflow 3 logged model)
    model_files = {k.rsplit("/", 1)[-1] for k in keys if f"/models/{model_id}/artifacts/" in k}
    assert {"MLmodel", "model.skops"} <= model_files, (champion.source, model_files)
    assert any(champion.run_id in k and k.endswith("reference/reference.parquet") for k in keys)

    # announce_champion -> fraud.model -> score the day -> fraud.predictions -> monitor the day.
    def settled(dag_id):
        return lambda: [r for r in api.runs(dag_id) if (r.get("conf") or {}).get("day") is None
                        and r["run_type"] == "asset_triggered" and r["state"] in ("success", "failed")]

    for dag_id in ("fraud__score", "fraud__monitor"):
        done = wait_for(f"an asset-triggered {dag_id} run", settled(dag_id), RUN_TIMEOUT, stack.logs)
        api.wait_run(dag_id, done[-1]["dag_run_id"], 10, describe=stack.logs)
    predictions = _read_parquet(stack, _partition(stack, "fraud/predictions", DRIFT_DAY))
    assert len(predictions) == FRAUD_ROWS
    assert set(predictions["champion_version"].astype(int)) == {int(champion.version)}

    report = f"reports/fraud/monitoring/dt={DRIFT_DAY.isoformat()}/"
    assert f"{report}report.html" in _objects(stack, report), _objects(stack, report)
    verdict = json.loads(stack.s3().get_object(Bucket=stack.bucket, Key=f"{report}report.verdict.json")["Body"].read())
    assert verdict["kind"] != "ok" and verdict.get("drift_detected"), verdict

    subject = f"[MLOps] fraud / {model_name} v{champion.version} / {DRIFT_DAY.isoformat()}: DATA DRIFT"
    mails = wait_for("the drift alert in the SMTP sink",
                      lambda: [m for m in stack.mails() if str(m["Subject"]).startswith(subject)], 60, stack.logs)
    assert len(mails) == 1, [str(m["Subject"]) for m in mails]
    assert "oncall-fraud@example.com" in str(mails[0]["To"])
    print(f"alert received after {time.monotonic() - began:.0f}s: {mails[0]['Subject']}")

    # The drift asset event (monitor -> request_retrain) makes the scheduler start a retraining run.
    drift_event = wait_for("the fraud.drift asset event", lambda: [
        ev for ev in api.get("/assets/events", limit=100)["asset_events"]
        if (ev.get("extra") or {}).get("day") == DRIFT_DAY.isoformat() and ev.get("uri", "").endswith("/drift")],
        60, stack.logs)
    assert drift_event[0]["extra"]["kind"] != "ok" and drift_event[0]["extra"]["drifted_columns"], drift_event
    retrain = wait_for("an asset-triggered fraud__train run", lambda: [
        r for r in api.runs("fraud__train") if r["run_type"] == "asset_triggered"], 60, stack.logs)
    # (Pausing it now would stop the scheduler from scheduling the rest of this very run; the cooldown keeps
    # later days from requesting another retrain, and the test pauses the model DAGs when it ends.)
    done = api.wait_run("fraud__train", retrain[0]["dag_run_id"], RUN_TIMEOUT, describe=stack.logs)
    states = {t["task_id"]: t["state"] for t in api.task_instances("fraud__train", done["dag_run_id"])}
    assert states["train"] == "success" and states["promote"] == "success", states
    retrained = client.search_model_versions(f"name = '{model_name}' and tag.trigger = 'drift'")
    assert len(retrained) == 1 and int(retrained[0].version) > int(champion.version), retrained
    # The retrain request is an object of the report store (S3), like every marker: none on any disk.
    assert f"reports/fraud/retrain_requests/{DRIFT_DAY.isoformat()}.json" in _objects(stack, "reports/fraud/retrain_requests/")
    _coordination_in_postgresql(stack, api, model_name, train_run, subject)
    print(f"drift-triggered retrain finished after {time.monotonic() - began:.0f}s: v{retrained[0].version}")


def _promote_reason(api, run_id: str) -> str:
    """Why the promote task of a fraud__train run decided as it did (its XCom), for a failure message."""
    try:
        return api.get(f"/dags/fraud__train/dagRuns/{run_id}/taskInstances/promote/xcomEntries/return_value")[
            "value"].get("reason")
    except Exception as exc:  # noqa: BLE001 - a failed promote has no XCom: say so instead of hiding the assertion
        return f"no decision recorded ({exc})"


def _task_log(api, dag_id: str, run_id: str, task_id: str) -> str:
    """The last try's log of a task, through the REST API (served by the log server of the worker that ran it)."""
    try_number = api.tries(dag_id, run_id, task_id)[-1]["try_number"]
    body = api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}", full_content="true")
    content = body.get("content") or []
    return "\n".join(str(line.get("event", line)) if isinstance(line, dict) else str(line) for line in content)


def _coordination_in_postgresql(stack, api, model_name: str, train_run: str, subject: str) -> None:
    """The workers coordinated through the stack's PostgreSQL (mlops_state_default), not through any disk."""
    markers = stack.state_rows("SELECT dedup_key, record->>'subject', record->>'via' FROM mlops_sent_markers")
    alert = [m for m in markers if (m[1] or "").startswith(subject)]
    assert len(alert) == 1 and alert[0][2] == "smtp", markers
    assert stack.state_rows("SELECT count(*) FROM mlops_send_claims") == [(0,)]  # every claim released
    for task_id in ("train", "promote"):  # registering the challenger and promoting both take the model lock
        log = _task_log(api, "fraud__train", train_run, task_id)
        assert f"lock 'model {model_name}' taken: PostgreSQL advisory lock" in log, f"{task_id}:\n{log[-4000:]}"
        assert "connection 'mlops_state_default'" in log, f"{task_id}:\n{log[-4000:]}"
    _no_coordination_on_disk(stack)


def _no_coordination_on_disk(stack) -> None:
    """No lock file, sent marker, claim or retrain request in the stack's home or a worker's private home.

    The S3 endpoint's own files (``stack/s3``: the bucket, where reports of alerts belong) are the service's."""
    bucket = stack.home / "stack" / "s3"
    for home in (stack.home, stack.worker_home("worker1"), stack.worker_home("worker2")):
        found = [p for name in ("locks", "alerts", "retrain_requests") for p in home.rglob(name)
                 if not p.is_relative_to(bucket)] if home.exists() else []
        assert not found, f"coordination state on disk: {found}"


# -- the web UI -----------------------------------------------------------------------------------
def _register_versions(stack, model_name: str, n: int) -> list[str]:
    """``n`` versions of ``model_name`` backed by a run whose artifact lands in S3 through the MLflow server."""
    client = stack.mlflow()
    experiment = client.get_experiment_by_name("stack-ui-test")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("stack-ui-test")
    run = client.create_run(experiment_id)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "README.txt")
        with open(path, "w") as handle:
            handle.write("placeholder model for the UI rollback test\n")
        client.log_artifact(run.info.run_id, path, "model")
    client.set_terminated(run.info.run_id)
    if not client.search_registered_models(f"name = '{model_name}'"):
        client.create_registered_model(model_name)
    # Tagged with the project, as the pipeline's own training registers versions (model_ops refuses others).
    versions = [client.create_model_version(model_name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id,
                                            tags={"project": "fraud"}).version
                for _ in range(n)]
    assert _objects(stack, f"mlflow/{experiment_id}/{run.info.run_id}/artifacts/model/README.txt")
    return versions


def test_web_ui_triggers_model_ops_rollback(stack, api, tmp_path):
    """Log in, open the trigger form of fraud__model_ops, fill its params, submit, watch the run succeed."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from devkit.browser import chromium, log_in

    model_name = project(stack, "fraud").model_name
    client = stack.mlflow()
    first, second = _register_versions(stack, model_name, 2)
    client.set_registered_model_alias(model_name, "champion", second)
    client.set_registered_model_alias(model_name, "previous_champion", first)
    reason = f"ui test {uuid.uuid4().hex[:8]}"

    browser = chromium(tmp_path / "chromium")
    wait = WebDriverWait(browser, 90)
    try:
        log_in(browser, stack.api_url, "/dags/fraud__model_ops", stack.env["MLOPS_STACK_ADMIN_USER"],
               stack.env["MLOPS_STACK_ADMIN_PASSWORD"])
        wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "button[aria-label='Trigger Dag']"))).click()
        # The action has no default (one click must not roll production back): pick it in its drop-down.
        action = wait.until(EC.element_to_be_clickable((By.ID, "element_action")))
        action.click()
        ActionChains(browser).send_keys("Roll back").pause(0.5).send_keys(Keys.ENTER).perform()
        version = wait.until(EC.visibility_of_element_located((By.NAME, "element_version")))
        version.send_keys(Keys.CONTROL, "a")
        version.send_keys("previous")
        reason_field = browser.find_element(By.NAME, "element_reason")
        reason_field.send_keys(Keys.CONTROL, "a")
        reason_field.send_keys(reason)
        # The form's own submit button, not the page header's "Trigger Dag" button that opened it.
        submit = [b for b in browser.find_elements(By.CSS_SELECTOR, "[role=dialog] button")
                  if b.text.strip() == "Trigger" and b.get_attribute("aria-label") != "Trigger Dag"]
        assert submit, "no Trigger button in the trigger dialog"
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", submit[-1])
        wait.until(EC.element_to_be_clickable(submit[-1])).click()

        deadline = time.monotonic() + 60
        run = None
        while run is None and time.monotonic() < deadline:
            run = next((r for r in api.runs("fraud__model_ops") if (r.get("conf") or {}).get("reason") == reason), None)
            time.sleep(1)
        assert run, f"the UI did not create a run with reason {reason!r}"
        assert run["run_type"] == "manual" and run["conf"]["action"] == "rollback"
        api.wait_run("fraud__model_ops", run["dag_run_id"], RUN_TIMEOUT, describe=stack.logs)

        # What the on-call engineer sees: the run page shows it succeeded.
        browser.get(f"{stack.api_url}/dags/fraud__model_ops/runs/{run['dag_run_id']}")
        WebDriverWait(browser, 60).until(
            lambda b: "success" in b.find_element(By.TAG_NAME, "body").text.lower())
    except Exception:
        browser.save_screenshot(str(tmp_path / "ui-failure.png"))
        raise
    finally:
        browser.quit()

    aliases = client.get_registered_model(model_name).aliases
    assert aliases["champion"] == first and aliases["previous_champion"] == second
    assert client.get_model_version(model_name, first).tags.get("rollback_from") == second


# -- failure: a worker dies mid-task (keep last: the stack has one worker afterwards) ----------------
def test_worker_killed_mid_task_is_retried_on_the_other_worker(stack, api):
    day = DAYS[0]
    run_id = api.trigger("fraud__ingest", {"day": day.isoformat()})
    deadline = time.monotonic() + RUN_TIMEOUT
    victim = None
    while victim is None:
        tis = {t["task_id"]: t for t in api.task_instances("fraud__ingest", run_id)}
        validate = tis.get("validate") or {}
        if validate.get("state") == "running" and validate.get("hostname"):
            victim = validate["hostname"]
        elif validate.get("state") in ("success", "failed") or time.monotonic() > deadline:
            pytest.fail(f"never saw 'validate' running: {tis}")
        else:
            time.sleep(0.5)
    assert victim in ("worker1", "worker2"), victim
    survivor = "worker2" if victim == "worker1" else "worker1"
    # Lose the whole worker host at once: Celery, its pool and the task process.
    procs = _tree(stack.pid(victim))
    assert procs, f"{victim} is not running"
    for proc in procs:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=30)

    api.wait_run("fraud__ingest", run_id, RUN_TIMEOUT, describe=lambda: stack.logs("scheduler", survivor))
    tries = api.tries("fraud__ingest", run_id, "validate")
    assert len(tries) >= 2, tries
    assert tries[0]["hostname"] == victim and tries[-1]["hostname"] == survivor, tries
    assert tries[-1]["state"] == "success"

    # Nothing duplicated: one partition object with the day's rows once, one asset event for the day.
    assert _objects(stack, f"lake/fraud/records/dt={day.isoformat()}/") == [_partition(stack, "fraud/records", day)]
    frame = _read_parquet(stack, _partition(stack, "fraud/records", day))
    assert len(frame) == FRAUD_ROWS and frame["transaction_id"].is_unique
    asset = next(a for a in api.get("/assets", limit=100)["assets"] if a["name"] == "fraud.validated")
    events = api.get("/assets/events", asset_id=asset["id"], limit=100)["asset_events"]
    assert sum(1 for ev in events if (ev.get("extra") or {}).get("day") == day.isoformat()) == 1, events
