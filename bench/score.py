"""The score stage at scale: the lockstep feature read vs the read by record id, and a day scored in shards.

Setup (not timed): ``bench.chain``'s prepared state (``history_days`` clean days through the DAGs with
``devkit/simulation.py`` and a nightly training that makes the first champion), then the measured day
``history_days + 1`` with ``rows`` rows landed (``bench.chain:land``) and run through the ingest and
features DAGs (``dag.test()``), so the records and record-feature partitions are the ones the DAGs write.
Every measured step then runs in a fresh interpreter on that one ``MLOPS_HOME``, same day, same models:

* **read**: ``stages.score.run_score`` as shipped (the record-feature partition read in lockstep with the
  records, one streaming read) vs the same call with a ``_LockstepRows`` whose ``take`` returns None
  (substituted in the child only), i.e. the read by record id of the whole feature partition per scoring
  batch that ran before; for each ``MLOPS_SCORE_BATCH_ROWS`` given. Seconds, CPU seconds, peak RSS, and a
  hash of the predictions partition's record ids and outputs: both must have written the same predictions.
  The changed part is also timed alone (:func:`read_features`), without the models and the other views.
* **shards**: ``plan_score_shards`` into ``shards`` shards of whole row groups, then every ``score_shard``
  in its own process, one at a time (one worker) and two at a time (two workers on this 2-core machine:
  what two Celery workers do with the mapped shard tasks), each followed by ``commit_score_shards``. The
  committed partition must hash as the unsharded one.
* **extrapolation** (on paper, from the measured figures): a ``paper_rows`` day on ``paper_workers``
  workers, see :func:`extrapolate`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import resource
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.chain import PROJECT, _day, _home_from, _prepare_template
from bench.common import run_step


# -- steps in child interpreters ------------------------------------------------------------------
def _context() -> dict[str, Any]:
    from mlops_provider.config import paths
    from mlops_provider.config.project import load_project
    from mlops_provider.hooks.feast import FeastHook
    from mlops_provider.io.lake import Lake

    project = load_project(PROJECT)
    lake = Lake(paths.lake_uri())
    return {"project": project, "lake": lake, "reports": Lake(paths.reports_uri()),
            "feature_store": FeastHook(project, lake=lake).feature_store(),
            "tracking_uri": paths.mlflow_tracking_uri()}


def _cpu() -> float:
    """CPU seconds of this process so far, every thread (the model's and Arrow's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _predictions_hash(ctx: dict[str, Any], day: dt.date) -> dict[str, Any]:
    """SHA-256 of the predictions partition's record ids and every champion/challenger output, in row order."""
    import pandas as pd
    import pyarrow.parquet as pq
    from mlops_provider.domain.layout import predictions_table

    project, lake = ctx["project"], ctx["lake"]
    source = pq.ParquetFile(lake.partition_path(predictions_table(project), day), filesystem=lake.fs)
    columns = [project.record_id] + [c for c in source.schema_arrow.names
                                     if c.startswith(("champion_", "challenger_"))]
    digest = hashlib.sha256()
    for batch in source.iter_batches(columns=columns, batch_size=500_000):
        digest.update(pd.util.hash_pandas_object(batch.to_pandas(), index=False).to_numpy().tobytes())
    return {"predictions_sha256": digest.hexdigest()[:16], "hashed_columns": columns,
            "predictions_rows": source.metadata.num_rows}


def prepare_day(day: str, row_group_rows: int | None = None) -> dict[str, Any]:
    """Run the landed day through the ingest and features DAGs (``dag.test()``); describe its partitions.

    ``row_group_rows``: rewrite the records partition (same rows, same order, same schema) in row groups of
    that many rows. Shards are whole row groups, and the lake writes a table in Parquet's default row groups
    of 1,048,576 rows, so a day below that size is one shard; a smaller size lets a 1M-row day be planned
    into the shards a 10M-row day gets. The record-feature partition is left as the features DAG wrote it.
    """
    import pyarrow.parquet as pq
    from mlops_provider.domain.layout import record_table, records_table

    from devkit.simulation import Simulation

    d = dt.date.fromisoformat(day)
    sim = Simulation(PROJECT, start=d)
    seconds = {}
    for stage in ("ingest", "features"):
        result = sim.run(stage, d)
        if not result.ok:
            raise RuntimeError(f"dag.test of {result.dag_id} for {day} ended {result.state}: {result.tasks}")
        seconds[stage] = round(result.seconds, 2)
    ctx = _context()
    out: dict[str, Any] = {"stage_seconds": seconds, "records_rewritten_in_row_groups_of": row_group_rows}
    if row_group_rows:
        lake, path = ctx["lake"], ctx["lake"].partition_path(records_table(ctx["project"]), d)
        table = pq.read_table(path, filesystem=lake.fs)
        tmp = path + ".bench-rewrite"
        pq.write_table(table, tmp, filesystem=lake.fs, compression="zstd", row_group_size=row_group_rows)
        lake.fs.move(tmp, path)
    for name, table in (("records", records_table(ctx["project"])), ("record_features", record_table(ctx["project"]))):
        meta = pq.ParquetFile(ctx["lake"].partition_path(table, d), filesystem=ctx["lake"].fs).metadata
        out[name] = {"rows": meta.num_rows, "row_groups": meta.num_row_groups}
    return out


def score_day(day: str, read: str = "lockstep") -> dict[str, Any]:
    """``run_score`` for ``day``; ``read="by_id"`` substitutes a ``_LockstepRows`` that never takes (the before)."""
    from mlops_provider.stages import score

    if read == "by_id":
        class _ByIdRows(score._LockstepRows):
            def take(self, ids: Any) -> None:  # every batch falls back to the read by record id
                return None

        score._LockstepRows = _ByIdRows  # this child process only
    elif read != "lockstep":
        raise ValueError(f"read must be 'lockstep' or 'by_id', not {read!r}")
    ctx = _context()
    d = dt.date.fromisoformat(day)
    cpu0, t0 = _cpu(), time.perf_counter()
    summary = score.run_score(ctx["project"], lake=ctx["lake"], reports=ctx["reports"],
                              feature_store=ctx["feature_store"], day=d, tracking_uri=ctx["tracking_uri"])
    seconds, cpu = time.perf_counter() - t0, _cpu() - cpu0
    return {"read": read, "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3), "rows": summary["rows"],
            "versions": [summary.get("champion_version"), summary.get("challenger_version")],
            **_predictions_hash(ctx, d)}


def read_features(day: str, read: str = "lockstep") -> dict[str, Any]:
    """The changed part alone: the record-feature rows of every scoring batch, in lockstep or by record id.

    Batches of ``MLOPS_SCORE_BATCH_ROWS`` records as ``run_score`` makes them; ``by_id`` is the read the
    record view made per batch before (the day's partition filtered to the batch's ids), ``lockstep`` is
    ``_LockstepRows.take``. Both read every column of the record-feature partition into pandas."""
    import os

    import pyarrow as pa
    import pyarrow.compute as pc
    from mlops_provider.domain.layout import record_table
    from mlops_provider.stages.score import SCORE_BATCH_ROWS, _LockstepRows, _records_file

    ctx = _context()
    project, lake, d = ctx["project"], ctx["lake"], dt.date.fromisoformat(day)
    batch_rows = max(1, int(os.environ.get("MLOPS_SCORE_BATCH_ROWS", SCORE_BATCH_ROWS)))
    source = _records_file(project, lake, d)
    cpu0, t0 = _cpu(), time.perf_counter()
    lockstep = _LockstepRows(project, lake, d, batch_rows) if read == "lockstep" else None
    rows = batches = 0
    for batch in source.iter_batches(batch_size=batch_rows, columns=[project.record_id]):
        ids = batch.column(project.record_id)
        if lockstep is not None:
            frame = lockstep.take(ids)
            if frame is None:
                raise RuntimeError(f"record features of {day} are not in the records' order")
        else:
            frame = lake.read(record_table(project), d,
                              filters=[(project.record_id, "in", pc.cast(ids, pa.string()).to_pylist())])
        rows, batches = rows + len(frame), batches + 1
    return {"read": read, "seconds": round(time.perf_counter() - t0, 3), "cpu_seconds": round(_cpu() - cpu0, 3),
            "rows": rows, "batches": batches}


def plan_shards(day: str, shard_rows: int) -> dict[str, Any]:
    from mlops_provider.stages.score import plan_score_shards

    ctx = _context()
    t0 = time.perf_counter()
    plan = plan_score_shards(ctx["project"], lake=ctx["lake"], day=day, shard_rows=shard_rows,
                             tracking_uri=ctx["tracking_uri"])
    return {"plan": plan, "seconds": round(time.perf_counter() - t0, 3)}


def score_one_shard(plan: dict[str, Any], index: int) -> dict[str, Any]:
    from mlops_provider.stages.score import score_shard

    ctx = _context()
    cpu0, t0 = _cpu(), time.perf_counter()
    out = score_shard(ctx["project"], lake=ctx["lake"], feature_store=ctx["feature_store"], plan=plan, index=index,
                      tracking_uri=ctx["tracking_uri"])
    return {"index": index, "rows": out["rows"], "seconds": round(time.perf_counter() - t0, 3),
            "cpu_seconds": round(_cpu() - cpu0, 3)}


def commit_shards(plan: dict[str, Any]) -> dict[str, Any]:
    from mlops_provider.stages.score import commit_score_shards

    ctx = _context()
    cpu0, t0 = _cpu(), time.perf_counter()
    summary = commit_score_shards(ctx["project"], lake=ctx["lake"], reports=ctx["reports"], plan=plan,
                                  tracking_uri=ctx["tracking_uri"])
    seconds, cpu = time.perf_counter() - t0, _cpu() - cpu0
    return {"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3), "rows": summary["rows"],
            "shards": summary["shards"], **_predictions_hash(ctx, dt.date.fromisoformat(plan["day"]))}


# -- orchestration --------------------------------------------------------------------------------
def _measure(target: str, kwargs: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """One step in a fresh interpreter: the step's own seconds/CPU, the whole process's, peak RSS."""
    t0 = time.perf_counter()
    res = run_step(target, kwargs, env, timeout=7200)
    res["process_seconds"] = round(time.perf_counter() - t0, 3)
    res.pop("rss_before_step_mib", None)
    return res


def _shard_phase(plan: dict[str, Any], parallel: int, env: dict[str, str]) -> dict[str, Any]:
    """Every shard of ``plan`` in its own process, ``parallel`` at a time; then the commit."""
    indices = [s["index"] for s in plan["shards"]]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        shards = list(pool.map(lambda i: _measure("bench.score:score_one_shard", {"plan": plan, "index": i}, env),
                               indices))
    wall = time.perf_counter() - t0
    for s in shards:
        s.pop("process_cpu_seconds", None)  # reaped concurrently: the parent's per-child CPU split is not reliable
    commit = _measure("bench.score:commit_shards", {"plan": plan}, env)
    return {"processes": parallel, "shards": shards, "shards_wall_seconds": round(wall, 2), "commit": commit,
            "wall_seconds": round(wall + commit["process_seconds"], 2),
            "shard_seconds_sum": round(sum(s["seconds"] for s in shards), 2),
            "shard_cpu_seconds_sum": round(sum(s["cpu_seconds"] for s in shards), 2),
            "max_shard_peak_rss_mib": max(s["peak_rss_mib"] for s in shards)}


def extrapolate(rows: int, full: dict[str, Any], serial: dict[str, Any], plan_seconds: float, *, paper_rows: int,
                paper_workers: int, paper_shard_rows: int, batch_rows: int, measure: str = "seconds") -> dict[str, Any]:
    """A ``paper_rows`` day on ``paper_workers`` workers from the measured run (on paper, not measured).

    Scoring time is linear in rows plus a fixed cost per task: ``t(n) = a + n / r``, fitted through the
    unsharded run (``rows``, lockstep) and the mean shard of the serial phase (both in-step seconds, i.e.
    without the interpreter start; a warm Celery worker has its libraries imported). A day of ``R`` rows
    in shards of ``S`` rows needs ``n = ceil(R / S)`` shards and ``w = ceil(n / W)`` waves on ``W`` workers:
    ``T = plan + w * t(S) + commit(R)``, where the commit re-reads and rewrites every row once, so its
    measured cost is scaled linearly, ``commit(R) = commit(rows) * R / rows``. Memory per shard is bounded
    by the scoring batch (``MLOPS_SCORE_BATCH_ROWS``), not by the shard: a shard of ``S >= batch`` rows
    peaks like the unsharded run measured here (batches of the same size). The commit holds every row's
    champion and challenger output for the day's summary (two float64 columns, plus their concatenation):
    >= 32 bytes per row on top of its measured peak.

    ``measure="cpu_seconds"`` fits the CPU seconds instead of the wall seconds: what a worker with a core
    of its own would take (the stage is one thread most of the time), where a busy shared machine
    inflates the wall figures.
    """
    shard_rows = [s["rows"] for s in serial["shards"]]
    mean_rows = sum(shard_rows) / len(shard_rows)
    mean_seconds = sum(s[measure] for s in serial["shards"]) / len(shard_rows)
    fixed, per_row = 0.0, mean_seconds / mean_rows
    if rows > mean_rows:
        per_row = (full[measure] - mean_seconds) / (rows - mean_rows)
        fixed = full[measure] - per_row * rows
        if fixed < 0 or per_row <= 0:  # noise on a busy machine: no fixed cost, the shards' own rate
            fixed, per_row = 0.0, mean_seconds / mean_rows
    shards = math.ceil(paper_rows / paper_shard_rows)
    waves = math.ceil(shards / paper_workers)
    shard_seconds = fixed + paper_shard_rows * per_row
    commit_seconds = serial["commit"][measure] * paper_rows / rows
    total = plan_seconds + waves * shard_seconds + commit_seconds
    one_worker = fixed + paper_rows * per_row  # run_score on one worker: no shards, no commit
    shard_rss = max(full["peak_rss_mib"], serial["max_shard_peak_rss_mib"]) if paper_shard_rows >= batch_rows \
        else serial["max_shard_peak_rss_mib"]
    commit_rss = serial["commit"]["peak_rss_mib"] + 32 * (paper_rows - rows) / 2**20
    return {"measure": measure, "rows": paper_rows, "workers": paper_workers, "shard_rows": paper_shard_rows, "shards": shards,
            "waves": waves, "fixed_seconds_per_task": round(fixed, 2),
            "rows_per_second_per_shard": round(1 / per_row), "seconds_per_shard": round(shard_seconds, 1),
            "plan_seconds": round(plan_seconds, 2), "commit_seconds": round(commit_seconds, 1),
            "total_seconds": round(total, 1), "one_worker_seconds": round(one_worker, 1),
            "speedup_vs_one_worker": round(one_worker / total, 2),
            "shard_peak_rss_mib": round(shard_rss), "commit_peak_rss_mib": round(commit_rss)}


def run(quick: bool = False, rows: int | None = None, shards: int = 4, batch_rows: list[int] | None = None,
        row_group_rows: int | None = None, history_days: int = 10, history_rows: int | None = None, template: str | None = None,
        paper_rows: int = 100_000_000, paper_workers: int = 16, paper_shard_rows: int = 2_000_000) -> dict[str, Any]:
    """``template``: a state prepared by ``bench.chain`` (``--chain-template``; copied, setup skipped);
    ``batch_rows``: the ``MLOPS_SCORE_BATCH_ROWS`` values of the read comparison (first: the shards' too);
    ``row_group_rows``: records partition re-laid in row groups of that size (:func:`prepare_day`)."""
    from mlops_provider.stages.score import SCORE_BATCH_ROWS

    if shards < 2:
        raise SystemExit("score: --score-shards must be at least 2 (a day within shard_rows is scored unsharded)")
    rows = rows or (100_000 if quick else 10_000_000)
    history_rows = history_rows or (2_000 if quick else 5_000)
    batch_rows = batch_rows or [SCORE_BATCH_ROWS]
    tmp = Path(tempfile.mkdtemp(prefix="mlops-bench-score-"))
    try:
        t0 = time.perf_counter()
        prepared = Path(template) if template else _prepare_template(tmp, history_days, history_rows)
        env = _home_from(prepared, tmp / "home") | {"AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}
        day = _day(history_days + 1).isoformat()
        run_step("bench.chain:land", {"day": day, "rows": rows}, env)
        prepared_day = run_step("bench.score:prepare_day", {"day": day, "row_group_rows": row_group_rows}, env,
                                timeout=7200)
        setup_seconds = time.perf_counter() - t0
        print(f"[bench] score: setup {setup_seconds:.0f}s, day {day}: {prepared_day['records']}", flush=True)

        reads = []
        for size in batch_rows:
            benv = env | {"MLOPS_SCORE_BATCH_ROWS": str(size)}
            pair = {"batch_rows": size, "batches": math.ceil(rows / size)}
            for read in ("by_id", "lockstep"):
                pair[read] = _measure("bench.score:score_day", {"day": day, "read": read}, benv)
                print(f"[bench] score: batch {size:,} {read}: {pair[read]['seconds']:.1f}s", flush=True)
            for read in ("by_id", "lockstep"):
                pair[f"read_only_{read}"] = _measure("bench.score:read_features", {"day": day, "read": read}, benv)
            pair["read_only_speedup"] = round(pair["read_only_by_id"]["seconds"] / pair["read_only_lockstep"]["seconds"], 2)
            by_id, lock = pair["by_id"], pair["lockstep"]
            pair["same_predictions"] = (by_id["predictions_sha256"] == lock["predictions_sha256"]
                                        and by_id["versions"] == lock["versions"])
            pair["speedup"] = round(by_id["seconds"] / lock["seconds"], 2)
            pair["speedup_cpu"] = round(by_id["cpu_seconds"] / lock["cpu_seconds"], 2)
            reads.append(pair)
        reference = reads[0]["lockstep"]

        senv = env | {"MLOPS_SCORE_BATCH_ROWS": str(batch_rows[0])}
        shard_rows = math.ceil(rows / shards)
        phases, plan_seconds = [], []
        for parallel in (1, 2):
            planned = _measure("bench.score:plan_shards", {"day": day, "shard_rows": shard_rows}, senv)
            plan_seconds.append(planned["seconds"])
            phase = _shard_phase(planned["plan"], parallel, senv)
            phase["plan_seconds"] = planned["seconds"]
            phase["same_predictions"] = phase["commit"]["predictions_sha256"] == reference["predictions_sha256"]
            print(f"[bench] score: {len(planned['plan']['shards'])} shards, {parallel} at a time: "
                  f"{phase['wall_seconds']:.1f}s", flush=True)
            phases.append(phase)
        serial, two = phases
        result: dict[str, Any] = {
            "project": PROJECT, "rows": rows, "day": day, "history_days": history_days,
            "history_rows": history_rows, "setup_seconds": round(setup_seconds, 1), "prepared_day": prepared_day,
            "reads": reads, "shards_requested": shards, "shard_rows": shard_rows,
            "shards": len(serial["shards"]), "phases": phases,
        }
        if len(serial["shards"]) > 1:  # one shard: the two phases run the same single process, nothing to compare
            result["speedup_two_processes"] = round(serial["wall_seconds"] / two["wall_seconds"], 2)
            result["speedup_two_processes_shards_only"] = round(
                serial["shards_wall_seconds"] / two["shards_wall_seconds"], 2)
        for key, measure in (("paper", "seconds"), ("paper_cpu", "cpu_seconds")):
            result[key] = extrapolate(rows, reference, serial, sum(plan_seconds) / len(plan_seconds),
                                      paper_rows=paper_rows, paper_workers=paper_workers,
                                      paper_shard_rows=paper_shard_rows, batch_rows=batch_rows[0], measure=measure)
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
