"""Feature store: materialization rows/s through ``FeastHook.materialize`` vs Feast's ``FeatureStore.materialize``
on the same lake partition, into SQLite and Redis; online read latency through the Feast SDK from Redis.

Each measurement runs in its own interpreter on a fresh MLOPS_HOME (lake partition written and
``feast apply`` done before the clock starts) and an emptied online store (its Redis db, 12 in
devkit/services.py, is flushed).
The published reference for reads is Feast's Python feature server: p99 7.2 ms for one entity and
125 ms for a batch of 100.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import bench_env, percentile, run_step

PROJECT = "fraud"
DAY = dt.date(2024, 1, 10)
PUBLISHED_P99_MS = {"single": 7.2, "batch_100": 125.0}


def _redis_conn_env() -> str:
    import json

    from devkit import services

    address = f"{services.redis_host()}:{services.redis_port()},db={services.redis_db('bench feast')}"
    return json.dumps({"conn_type": "feast", "extra": {"online_store": {"type": "redis", "connection_string": address}}})


def _flush_redis() -> None:
    import redis

    from devkit import services

    redis.Redis(host=services.redis_host(), port=services.redis_port(), db=services.redis_db("bench feast")).flushdb()


def _prepare(rows: int) -> tuple[Any, Any]:
    """Write one entity-aggregate partition of ``rows`` entities and apply the Feast definitions."""
    import numpy as np
    import pandas as pd
    from mlops_provider.config.project import load_project
    from mlops_provider.domain import features as F
    from mlops_provider.domain import layout as L
    from mlops_provider.hooks.feast import FeastHook
    from mlops_provider.io.lake import Lake

    project = load_project(PROJECT)
    lake = Lake()
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({project.entity_key: [f"C{i:08d}" for i in range(rows)]})
    frame[F.EVENT_TIMESTAMP] = pd.Timestamp(F.feature_timestamp(DAY)).floor("us")
    frame[F.CREATED_TIMESTAMP] = pd.Timestamp.now(tz="UTC").floor("us")
    for col in (F.EVENT_TIMESTAMP, F.CREATED_TIMESTAMP):
        frame[col] = frame[col].astype("datetime64[us, UTC]")
    for name in F.entity_feature_names(project):
        if name.startswith(("customer__count_", "customer__merchant_category_distinct_count_")):
            frame[name] = rng.integers(0, 50, rows).astype("int64")
        else:
            frame[name] = rng.random(rows) * 100
    lake.write(L.entity_table(project), DAY, frame)
    hook = FeastHook(project, lake=lake).feature_store()
    hook.apply()
    return project, hook


def _window() -> tuple[dt.datetime, dt.datetime]:
    from mlops_provider.domain import features as F

    ts = F.feature_timestamp(DAY)
    return ts - dt.timedelta(days=1), ts + dt.timedelta(seconds=1)


def materialize(rows: int, store: str, engine: str) -> dict[str, Any]:
    """One materialization of ``rows`` entities into ``store`` (sqlite|redis) by ``engine`` (hook|feast)."""
    from mlops_provider.io import feast_repo as R

    project, hook = _prepare(rows)
    if store == "redis":
        _flush_redis()
    fs = hook.store
    start, end = _window()
    t0, c0 = time.perf_counter(), time.process_time()
    if engine == "hook":
        result = hook.materialize(start, end)
        written = result["rows_written"]
    else:
        fs.materialize(start_date=start, end_date=end, feature_views=[R.entity_view_name(project)])
        written = rows
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    # Proof that the rows arrived: read a few back.
    keys = [f"C{i:08d}" for i in (0, rows // 2, rows - 1)]
    got = hook.get_online_features([{project.entity_key: k} for k in keys])
    first = R.online_feature_references(project)[0].split(":", 1)[1]
    missing = sum(v is None for v in got[first])
    return {"rows": written, "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
            "rows_per_second": round(written / seconds, 1), "online_store": hook.online_store_type,
            "missing_after": missing}


def read_latency(rows: int, iterations: int) -> dict[str, Any]:
    """p50/p99 of Feast SDK ``get_online_features`` from Redis, one entity and batches of 100."""
    import random

    from mlops_provider.io import feast_repo as R

    project, hook = _prepare(rows)
    _flush_redis()
    start, end = _window()
    hook.materialize(start, end)
    fs = hook.store
    refs = R.online_feature_references(project)
    rnd = random.Random(5)
    out: dict[str, Any] = {"iterations": iterations, "features": len(refs), "online_store": hook.online_store_type}
    for label, size in (("single", 1), ("batch_100", 100)):
        timings = []
        for i in range(iterations + 20):
            entity_rows = [{project.entity_key: f"C{rnd.randrange(rows):08d}"} for _ in range(size)]
            t0 = time.perf_counter()
            resp = fs.get_online_features(features=refs, entity_rows=entity_rows).to_dict()
            if i >= 20:  # the first calls warm connections and caches
                timings.append((time.perf_counter() - t0) * 1000)
            assert len(resp[project.entity_key]) == size
            # Every requested entity was materialized: a miss (all values None) would time an empty lookup.
            values = [v for name, col in resp.items() if name != project.entity_key for v in col]
            assert values and all(v is not None for v in values), f"online miss for {entity_rows[:3]}"
        out[label] = {"p50_ms": round(percentile(timings, 50), 2), "p99_ms": round(percentile(timings, 99), 2),
                      "mean_ms": round(sum(timings) / len(timings), 2),
                      "published_p99_ms": PUBLISHED_P99_MS[label],
                      "p99_vs_published": round(percentile(timings, 99) / PUBLISHED_P99_MS[label], 2)}
    return out


def run(quick: bool = False, rows: int | None = None, iterations: int | None = None) -> dict[str, Any]:
    rows = rows or (5_000 if quick else 200_000)
    iterations = iterations or (50 if quick else 500)
    results: dict[str, Any] = {"rows": rows, "materialize": [], "reads": None}
    for store in ("sqlite", "redis"):
        by_engine = {}
        for engine in ("feast", "hook"):
            tmp = Path(tempfile.mkdtemp(prefix="mlops-bench-feast-"))
            try:
                extra = {"AIRFLOW_CONN_FEAST_DEFAULT": _redis_conn_env()} if store == "redis" else {}
                by_engine[engine] = run_step("bench.feature_store:materialize",
                                             {"rows": rows, "store": store, "engine": engine},
                                             bench_env(tmp / "home", **extra), timeout=3600)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        hook, feast = by_engine["hook"], by_engine["feast"]
        results["materialize"].append({
            "store": store, "rows": rows,
            "hook_rows_per_second": hook["rows_per_second"], "feast_rows_per_second": feast["rows_per_second"],
            "hook_seconds": hook["seconds"], "feast_seconds": feast["seconds"],
            "ratio_hook_vs_feast": round(hook["rows_per_second"] / feast["rows_per_second"], 2),
            "hook_peak_rss_mib": hook["peak_rss_mib"], "feast_peak_rss_mib": feast["peak_rss_mib"],
            "missing_after": hook["missing_after"] + feast["missing_after"],
        })
    tmp = Path(tempfile.mkdtemp(prefix="mlops-bench-feast-"))
    try:
        results["reads"] = run_step("bench.feature_store:read_latency", {"rows": rows, "iterations": iterations},
                                    bench_env(tmp / "home", AIRFLOW_CONN_FEAST_DEFAULT=_redis_conn_env()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        _flush_redis()
    return results
