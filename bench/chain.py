"""Orchestration overhead and scale: one day through the nightly chain, Airflow vs a plain Python script.

Setup (not timed): a fresh MLOPS_HOME and Airflow SQLite DB, ``history_days`` clean days of
``history_rows`` rows run through the DAGs with ``devkit/simulation.py`` (ingest, features, a nightly
training that makes the first champion), then copied so both sides start from the same state.
Measured: day ``history_days + 1`` with ``rows`` rows through ingest (+ validate), features (+ apply,
materialize, freshness), train (+ promote), score and monitor:

* orchestrated: one ``airflow dags test <project>__<stage> <day> -f dags/<stage>.py -c '{"day": ...}'``
  process per DAG, as the embedded default runs them; total = the sum of the process wall times;
* plain: the same core functions, called in that order in one Python process (bench.chain:plain_chain);
* one process: the same five DAGs with ``dag.test()`` in one Python process (bench.chain:dagtest_chain);
* the CLI floor: ``airflow dags test`` of a DAG of two empty tasks (median of 3), Airflow's fixed cost of
  one orchestrated process, so the orchestrated total can also be read net of five of them.

Training reads the labelled history (labels arrive ``label.delay_days`` later), so its cost is set by the
history, not by the measured day; the other stages scale with ``rows``. Peak RSS is per process: per DAG
(every task of it runs inside that process) and for the whole plain script.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import PYTHON, REPO, bench_env, median, run_cmd, run_step

PROJECT = "fraud"
START = dt.date(2024, 1, 1)
STAGES = ("ingest", "features", "train", "score", "monitor")


def _day(number: int) -> dt.date:
    return START + dt.timedelta(days=number - 1)


# -- steps in child interpreters ------------------------------------------------------------------
def setup_history(days: int, rows: int) -> dict[str, Any]:
    """Run ``days`` clean days through the DAGs (dag.test in one process) and train the first champion."""
    from devkit.simulation import Simulation, describe

    sim = Simulation(PROJECT, start=START, rows=rows)
    for n in range(1, days + 1):
        # Nightly training from the last night on, as the demo does (labels arrive late), until a champion.
        sim.simulate_day(n, "clean", nightly_train=n == days)
    failed = [f"{r.dag_id} {r.day} {r.state}" for r in sim.results if not r.ok]
    if failed or not sim.has_champion():
        trains = [f"{r.day}: {describe(r)} {r.tasks}" for r in sim.results if r.dag_id.endswith("__train")]
        raise RuntimeError(f"history setup failed: {failed or 'no champion after the nightly training'}; {trains}")
    return {"runs": len(sim.results)}


def land(day: str, rows: int) -> dict[str, Any]:
    """Write the measured day's landing file (and its labels) with the project's generator."""
    from mlops_provider.config import paths
    from mlops_provider.config.project import load_project

    from devkit.datagen.landing import write_landing_day

    project = load_project(PROJECT)
    path = write_landing_day(project, paths.mlops_home() / project.source["path"], dt.date.fromisoformat(day),
                             rows=rows)
    return {"file": str(path), "bytes": path.stat().st_size}


def plain_chain(day: str) -> dict[str, Any]:
    """The chain's core functions in one process, in DAG order; seconds per stage."""
    import resource

    from mlops_provider.config import paths
    from mlops_provider.config.project import load_project
    from mlops_provider.domain.features import feature_timestamp
    from mlops_provider.hooks.feast import FeastHook
    from mlops_provider.hooks.smtp import ConnectionTransport
    from mlops_provider.io import model_store
    from mlops_provider.io.lake import Lake
    from mlops_provider.io.sources import LandingSource
    from mlops_provider.stages.alerting import send_monitoring_alert
    from mlops_provider.stages.features import compute_entity_features, compute_record_features
    from mlops_provider.stages.ingest import gate_day, stage_day
    from mlops_provider.stages.monitor import run_monitor
    from mlops_provider.stages.promote import gate_and_promote
    from mlops_provider.stages.retrain import request_retrain
    from mlops_provider.stages.score import run_score
    from mlops_provider.stages.train import run_train

    project = load_project(PROJECT)
    d = dt.date.fromisoformat(day)
    lake, reports = Lake(paths.lake_uri()), Lake(paths.reports_uri())
    tracking = paths.mlflow_tracking_uri()
    run_id = f"plain__{day}"
    timings: dict[str, float] = {}
    peaks: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        t0 = time.perf_counter()
        out = fn()
        timings[name] = round(time.perf_counter() - t0, 3)
        peaks[name] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        return out

    source = LandingSource(paths.mlops_home() / project.source["path"])
    timed("ingest", lambda: (stage_day(project, lake, source, d, run_id=run_id),
                             gate_day(project, lake, reports, d, run_id=run_id)))

    def features() -> None:
        compute_entity_features(project, lake, d)
        compute_record_features(project, lake, d)
        hook = FeastHook(project, lake=lake).feature_store()
        hook.apply()
        first = d - dt.timedelta(days=int(project.features.get("materialize_overlap_days", 1)))
        hook.materialize(feature_timestamp(first), feature_timestamp(d),
                         chunk_days=int(project.features.get("materialize_chunk_days", 7)))
        hook.check_freshness(d)

    timed("features", features)

    def train() -> dict[str, Any]:
        run_train(project, lake=lake, reports=reports, feature_store=FeastHook(project, lake=lake).feature_store(),
                           as_of=d, tracking_uri=tracking, run_tags={"trigger": "bench"})
        return gate_and_promote(project, model_store.client_for(tracking), version=None,
                                         tracking_uri=tracking, registry_uri=None, approved=False,
                                         decision_key=f"bench|{run_id}")

    promoted = timed("train", train)
    scored = timed("score", lambda: run_score(project, lake=lake, reports=reports,
                                                      feature_store=FeastHook(project, lake=lake).feature_store(), day=d,
                                                      tracking_uri=tracking))

    def monitor() -> dict[str, Any]:
        summary = run_monitor(project, lake=lake, reports=reports, day=d, tracking_uri=tracking)
        request_retrain(project, reports, summary["day"], summary["kind"])
        if summary["kind"] != "ok":
            send_monitoring_alert(project, summary, transport=ConnectionTransport(project.alerts["smtp_conn_id"]),
                                  actions=[], run_url=None,
                                  report_url=summary["report"]["html"], mlflow_run_url=None, reports=reports)
        return summary

    monitored = timed("monitor", monitor)
    return {"stage_seconds": timings, "peak_rss_after_stage_mib": peaks, "promoted": promoted.get("promoted"),
            "scored_rows": scored.get("rows"), "verdict": monitored["kind"]}


def dagtest_chain(day: str) -> dict[str, Any]:
    """The same five DAGs with ``dag.test()`` in one Python process (``make demo``'s way): seconds per DAG.

    The DAG folder is parsed once (included in the total) and the libraries import once, so the difference
    to the plain script is what Airflow itself adds per run: task runner, in-process execution API,
    metadata DB writes, XComs, rendering, asset events."""
    from devkit.simulation import Simulation

    t0 = time.perf_counter()
    sim = Simulation(PROJECT, start=START)
    seconds: dict[str, float] = {"parse": round(time.perf_counter() - t0, 3)}
    d = dt.date.fromisoformat(day)
    for stage in STAGES:
        result = sim.run(stage, d)
        seconds[stage] = round(result.seconds, 3)
        if not result.ok:
            raise RuntimeError(f"dag.test of {result.dag_id} ended {result.state}: {result.tasks}")
    return {"stage_seconds": seconds}


TRIVIAL_DAG = """from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("bench_trivial", schedule=None):
    EmptyOperator(task_id="first") >> EmptyOperator(task_id="second")
"""


def cli_floor(tmp: Path, template: Path, repeats: int = 3) -> dict[str, Any]:
    """Airflow's fixed cost of one ``airflow dags test`` process: a DAG of two empty tasks, same metadata DB.

    Starting the CLI, filling the DagBag and starting the in-process execution API (~2.8 s before the first
    task runs, whatever the task) is paid by every process of the orchestrated side."""
    folder = tmp / "trivial_dags"
    folder.mkdir(exist_ok=True)
    (folder / "bench_trivial.py").write_text(TRIVIAL_DAG)
    env = _home_from(template, tmp / "floor")
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(folder)
    runs = []
    for _ in range(repeats):
        res = run_cmd([str(REPO / ".venv" / "bin" / "airflow"), "dags", "test", "bench_trivial", "2024-01-01"],
                      env, timeout=600)
        if res["returncode"] != 0:
            raise RuntimeError(f"trivial airflow dags test failed:\n{res['stdout'][-3000:]}")
        runs.append(res)
    shutil.rmtree(tmp / "floor", ignore_errors=True)
    return {"seconds": round(median([r["seconds"] for r in runs]), 2),
            "cpu_seconds": round(median([r["cpu_seconds"] for r in runs]), 2),
            "samples": [round(r["seconds"], 2) for r in runs]}


# -- orchestration --------------------------------------------------------------------------------
def _prepare_template(tmp: Path, history_days: int, history_rows: int) -> Path:
    template = tmp / "template"
    env = bench_env(template)
    (template / "airflow").mkdir(parents=True, exist_ok=True)
    res = run_cmd([str(REPO / ".venv" / "bin" / "airflow"), "db", "migrate"], env, timeout=900)
    if res["returncode"] != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{res['stdout'][-3000:]}")
    run_step("bench.chain:setup_history", {"days": history_days, "rows": history_rows},
             env | {"AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}, timeout=3600)
    return template


def _home_from(template: Path, target: Path) -> dict[str, str]:
    shutil.copytree(template, target, symlinks=True)
    # Absolute paths inside the copied state still name the template: the Feast sources until the features
    # stage re-applies them, and the MLflow experiment's artifact location (new runs of both sides write
    # their artifacts there). Both sides see the same layout.
    return bench_env(target)


def run_size(rows: int, template: Path, tmp: Path, history_days: int, log_dir: Path | None = None) -> dict[str, Any]:
    day = _day(history_days + 1).isoformat()
    out: dict[str, Any] = {"rows": rows, "day": day}
    # Orchestrated.
    env = _home_from(template, tmp / f"airflow_{rows}")
    run_step("bench.chain:land", {"day": day, "rows": rows}, env)
    dags = []
    for stage in STAGES:
        dag_id = f"{PROJECT}__{stage}"
        log = (log_dir or tmp) / f"{dag_id}_{rows}.log"
        # -f parses just the DAG's own file, as a user testing one DAG runs it (not the whole DAG folder).
        res = run_cmd([str(REPO / ".venv" / "bin" / "airflow"), "dags", "test", dag_id, day,
                       "-f", str(REPO / "dags" / f"{stage}.py"), "-c", json.dumps({"day": day})],
                      env, timeout=7200, log_path=log)
        failed = res["returncode"] != 0 or "state=failed" in res["stdout"] or "failed" in _final_state(res["stdout"])
        dags.append({"dag_id": dag_id, "seconds": round(res["seconds"], 2), "cpu_seconds": res["cpu_seconds"],
                     "peak_rss_mib": res["peak_rss_mib"],
                     "returncode": res["returncode"], "ok": not failed})
        if failed:
            out["failure_log_tail"] = res["stdout"][-4000:]
            break
    out["airflow"] = dags
    out["airflow_seconds"] = round(sum(d["seconds"] for d in dags), 2)
    out["airflow_cpu_seconds"] = round(sum(d["cpu_seconds"] for d in dags), 2)
    out["airflow_ok"] = len(dags) == len(STAGES) and all(d["ok"] for d in dags)
    shutil.rmtree(tmp / f"airflow_{rows}", ignore_errors=True)
    # Plain script.
    env = _home_from(template, tmp / f"plain_{rows}")
    run_step("bench.chain:land", {"day": day, "rows": rows}, env)
    t0 = time.perf_counter()
    plain = run_step("bench.chain:plain_chain", {"day": day}, env, timeout=7200)
    out["plain_seconds"] = round(time.perf_counter() - t0, 2)
    out["plain_cpu_seconds"] = plain.get("process_cpu_seconds")
    out["plain_stage_seconds"] = plain["stage_seconds"]
    out["plain_peak_rss_mib"] = plain["peak_rss_mib"]
    out["plain_verdict"] = plain["verdict"]
    out["ratio_airflow_vs_plain"] = round(out["airflow_seconds"] / out["plain_seconds"], 2) if out["airflow_ok"] else None
    if out["airflow_ok"] and out["plain_cpu_seconds"]:
        out["ratio_cpu"] = round(out["airflow_cpu_seconds"] / out["plain_cpu_seconds"], 2)
    out["max_task_peak_rss_mib"] = max([d["peak_rss_mib"] for d in dags] + [plain["peak_rss_mib"]])
    shutil.rmtree(tmp / f"plain_{rows}", ignore_errors=True)
    # The same DAGs with dag.test() in one process.
    env = _home_from(template, tmp / f"dagtest_{rows}")
    run_step("bench.chain:land", {"day": day, "rows": rows}, env)
    t0 = time.perf_counter()
    one = run_step("bench.chain:dagtest_chain", {"day": day},
                   env | {"AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}, timeout=7200)
    out["dagtest_seconds"] = round(time.perf_counter() - t0, 2)
    out["dagtest_cpu_seconds"] = one.get("process_cpu_seconds")
    out["dagtest_stage_seconds"] = one["stage_seconds"]
    out["dagtest_peak_rss_mib"] = one["peak_rss_mib"]
    out["ratio_dagtest_vs_plain"] = round(out["dagtest_seconds"] / out["plain_seconds"], 2)
    shutil.rmtree(tmp / f"dagtest_{rows}", ignore_errors=True)
    return out


def _final_state(stdout: str) -> str:
    lines = [ln for ln in stdout.splitlines() if "DagRun Finished" in ln or "dag_run_state" in ln]
    return lines[-1] if lines else ""


def run(quick: bool = False, sizes: list[int] | None = None, history_days: int = 10,
        history_rows: int | None = None, template: str | None = None,
        partial: str | None = None, log_dir: str | None = None) -> dict[str, Any]:
    """``template``: reuse a prepared state directory (setup skipped); ``partial``: JSON written after each size;
    ``log_dir``: keep each ``airflow dags test`` process's output there (task logs with timestamps)."""
    import math

    sizes = sizes or ([2_000] if quick else [100_000, 1_000_000])
    history_rows = history_rows or (2_000 if quick else 5_000)
    tmp = Path(tempfile.mkdtemp(prefix="mlops-bench-chain-"))
    try:
        t0 = time.perf_counter()
        prepared = Path(template) if template else _prepare_template(tmp, history_days, history_rows)
        setup_s = time.perf_counter() - t0
        floor = cli_floor(tmp, prepared)
        if log_dir:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
        rows = []
        for n in sizes:
            rows.append(run_size(n, prepared, tmp, history_days, Path(log_dir) if log_dir else None))
            if rows[-1]["airflow_ok"]:
                # The orchestrated side minus Airflow's fixed CLI cost of its five processes.
                rest = rows[-1]["airflow_seconds"] - len(STAGES) * floor["seconds"]
                rows[-1]["ratio_excluding_cli_floor"] = round(rest / rows[-1]["plain_seconds"], 2)
            if partial:
                Path(partial).write_text(json.dumps({"sizes": rows}, indent=2, default=str))
        result: dict[str, Any] = {"project": PROJECT, "history_days": history_days, "history_rows": history_rows,
                                  "setup_seconds": round(setup_s, 1), "python": PYTHON, "sizes": rows,
                                  "cli_floor": floor,
                                  "target_ratio": 1.25, "target_peak_rss_gib": 6.0}
        ok = [r for r in rows if r["airflow_ok"]]
        if len(ok) >= 2:
            a, b = ok[-2], ok[-1]
            result["growth_exponent_plain"] = round(
                math.log(b["plain_seconds"] / a["plain_seconds"]) / math.log(b["rows"] / a["rows"]), 2)
            result["growth_exponent_airflow"] = round(
                math.log(b["airflow_seconds"] / a["airflow_seconds"]) / math.log(b["rows"] / a["rows"]), 2)
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
