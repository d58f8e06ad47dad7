"""Time to alert: on the production stack, from a drifted batch landing to the alert email being received.

Setup (not timed; ``bench.common.bench_stack`` and ``prepare_chain``, shared with bench/stack_scale.py):
``scripts/stack.py up --fresh`` with its own databases (prefix ``mlopsbench``), Redis db indexes 13/14
(assigned in devkit/services.py) and free loopback ports, the ``fraud`` project reading a PostgreSQL table
(the stack tests' projects). Clean history days are written to the source and ingested through the REST
API; the scheduler computes their features; a triggered training makes the first champion, whose
announcement scores and monitors the newest day. Everything is left to settle.

Measured, ``repeats`` times (each on a new day, after the previous one settled): the day's rows, with
covariate drift, are appended to the source table and ``fraud__ingest`` is triggered for it, as the nightly
schedule would at midnight (t = 0). From then on nothing is driven by hand: the scheduler chains
validation -> ``fraud.validated`` -> features -> ``fraud.features`` -> score -> ``fraud.predictions`` ->
monitor, the monitor task sends the alert through the SMTP server, and the sink stores it. The figure is the
sink's file time of the message minus t = 0. Each DAG run's start and end (from the REST API) says where the
time goes; what no run covers is the trigger's own latency and the delivery of the email.
(The scheduler starts the next DAG run in the same loop that ends the previous one, so the asset hand-offs
are inside the runs' spans: a run's span includes queueing its tasks to the Celery workers.)
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from bench.common import median

CHAIN = ("fraud__ingest", "fraud__features", "fraud__score", "fraud__monitor")
RUN_TIMEOUT = 900


def _iso(value: str | None) -> float | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def settle(api: Any, timeout: float = RUN_TIMEOUT) -> None:
    """Until no run of any chain DAG (or training) is queued or running for 10 s."""
    dags = (*CHAIN, "fraud__train")
    quiet_since = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [r for d in dags for r in api.runs(d) if r["state"] not in ("success", "failed")]
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 10:
            return
        time.sleep(2)
    raise RuntimeError("the stack did not settle")


def _run_for(api: Any, dag_id: str, day: str, after: float) -> dict[str, Any] | None:
    """The run of ``dag_id`` that handled ``day`` (conf ``day`` or its triggering events), created after t0."""
    for run in api.runs(dag_id):
        if (_iso(run.get("queued_at") or run.get("start_date")) or 0) < after - 1:
            continue
        conf_day = (run.get("conf") or {}).get("day")
        if conf_day == day or conf_day in (None, ""):
            return run
    return None


def measure_day(stack: Any, api: Any, day: dt.date, rows: int) -> dict[str, Any]:
    from devkit.stack import append_fraud_days, wait_for

    subject_day = day.isoformat()
    append_fraud_days(stack, {day: "covariate_drift"}, rows)
    t0 = time.time()
    api.trigger("fraud__ingest", {"day": subject_day})
    mails = wait_for("the alert email", lambda: [
        p for p in Path(stack.env["MLOPS_STACK_MAILDIR"]).glob("*.eml")
        if subject_day in p.read_text(errors="replace").split("\n\n", 1)[0] and p.stat().st_mtime >= t0],
        RUN_TIMEOUT, stack.logs, interval=1)
    received = min(p.stat().st_mtime for p in mails)
    stages = []
    for dag_id in CHAIN:
        run = _run_for(api, dag_id, subject_day, t0)
        if run:
            span = (_iso(run.get("end_date")) or received) - (_iso(run.get("start_date")) or t0)
            stages.append({"dag_id": dag_id, "run_type": run["run_type"], "run_seconds": round(span, 1)})
    total = received - t0
    # The rest: trigger -> first task, and what no run's start..end covers (SMTP delivery, gaps between runs).
    rest = max(0.0, round(total - sum(s["run_seconds"] for s in stages), 1))
    return {"day": subject_day, "rows": rows, "seconds_to_alert": round(total, 1), "stages": stages,
            "outside_runs_seconds": rest}


def prepare_chain(stack: Any, api: Any, history: list[dt.date], clean_days: list[dt.date], history_rows: int,
                  timeout: float = RUN_TIMEOUT, hpo_trials: int = 1) -> None:
    """History and a first champion (not timed): ``history`` and ``clean_days`` written to the source with
    ``history_rows`` rows each, the history ingested (queued runs) and featurized by the scheduler, a
    triggered training that makes the first champion, whose announcement scores and monitors the newest
    day; score and monitor unpaused; everything settled. ``clean_days`` are written only: unpausing ingest
    makes the scheduler run the last complete interval (yesterday), so that day must hold data. Each wait
    (the history settling, the training, the champion's runs settling) gets ``timeout`` seconds. A first
    model that is not promoted (the promotion policy compares it with a linear baseline) raises: nothing
    downstream would score or monitor."""
    from devkit.stack import append_fraud_days

    append_fraud_days(stack, dict.fromkeys([*history, *clean_days], "clean"), history_rows)
    for dag_id in ("fraud__train", "fraud__features"):
        api.unpause(dag_id)
    for day in history:  # queued until ingest is unpaused
        api.trigger("fraud__ingest", {"day": day.isoformat()})
    api.unpause("fraud__ingest")
    settle(api, timeout)
    for dag_id in ("fraud__score", "fraud__monitor"):
        api.unpause(dag_id)
    train = api.trigger("fraud__train", {"day": history[-1].isoformat(), "hpo_trials": hpo_trials})
    api.wait_run("fraud__train", train, timeout, describe=stack.logs)
    from mlops_provider.io import model_store

    if model_store.aliases(stack.mlflow(), "fraud_classifier").get(model_store.CHAMPION) is None:
        raise RuntimeError(f"setup: the first training (run {train}) promoted no champion: see its promote task's "
                           f"log (the baseline beat it?); more history rows ({history_rows:,} per day now) help")
    settle(api, timeout)


def run(quick: bool = False, rows: int | None = None, repeats: int | None = None) -> dict[str, Any]:
    from bench.common import bench_stack

    rows = rows or (1_500 if quick else 100_000)
    repeats = repeats or (1 if quick else 2)
    history_rows = 1_500
    began = time.monotonic()
    with bench_stack("alert", db_prefix="mlopsbench", redis_users=("bench stack broker", "bench stack feast")) as (stack, api):
        # Days: 9 clean history days, then the measured days, then yesterday (clean, see prepare_chain).
        yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
        measured = [yesterday - dt.timedelta(days=repeats - n) for n in range(repeats)]
        history = [measured[0] - dt.timedelta(days=n) for n in range(9, 0, -1)]
        prepare_chain(stack, api, history, [yesterday], history_rows)
        setup_seconds = round(time.monotonic() - began, 1)
        results = []
        for day in measured:
            results.append(measure_day(stack, api, day, rows))
            settle(api)
        return {"rows": rows, "history_rows": history_rows, "history_days": len(history), "workers": 2,
                "setup_seconds": setup_seconds, "measurements": results,
                "median_seconds_to_alert": round(median([r["seconds_to_alert"] for r in results]), 1)}
