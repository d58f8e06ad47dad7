"""Drift: ``core.monitoring.monitor_day`` against plain Evidently ``DataDriftPreset`` on the full data.

Synthetic data: a 1M-row reference and 1M / 10M-row current days with 20 feature columns (14 numeric,
6 categorical) plus a score column, written to parquet in 1M-row chunks by numpy (bounded memory).
Four columns drift in the current data, one moves by less than the threshold. Both sides run on the
same DataFrames read from parquet; the baseline uses the same per-column methods and thresholds as
``monitor_day`` (normed Wasserstein / Jensen-Shannon, which are also Evidently's automatic choice
above 1,000 rows), so the drifted-column verdicts can be compared one to one. The verdicts are also
compared on the bundled scenarios (devkit/datagen: clean and covariate drift, fraud and churn).
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, bench_env, run_step

N_NUM, N_CAT, N_LEVELS = 14, 6, 8
CHUNK = 1_000_000
COLUMN_THRESHOLD, SHARE_THRESHOLD, PREDICTION_THRESHOLD = 0.1, 0.3, 0.1
# What changes in the current data: column -> (kind of change, size).
DRIFTS = {"f00": ("shift", 0.5), "f01": ("scale", 1.6), "f02": ("shift", 0.03), "c00": ("reweight", 3.0),
          "c01": ("reweight", 4.0)}
EXPECTED_DRIFTED = {"f00", "f01", "c00", "c01"}


def feature_columns() -> list[str]:
    return [f"f{i:02d}" for i in range(N_NUM)] + [f"c{i:02d}" for i in range(N_CAT)]


def synthetic_project() -> Any:
    """A ProjectConfig with the synthetic columns declared (no YAML file needed)."""
    from mlops_provider.config.project import ProjectConfig

    columns = {f"f{i:02d}": {"type": "float"} for i in range(N_NUM)}
    columns |= {f"c{i:02d}": {"type": "category", "allowed": [f"l{j}" for j in range(N_LEVELS)]} for i in range(N_CAT)}
    raw = {"name": "synthetic", "label": {"column": "label", "delay_days": 1}, "columns": columns,
           "model": {"name": "synthetic_model", "alert_threshold": 0.5},
           "promotion": {"guardrails": {}},
           "monitoring": {"column_drift_threshold": COLUMN_THRESHOLD, "drift_share_threshold": SHARE_THRESHOLD,
                          "prediction_drift_threshold": PREDICTION_THRESHOLD, "sample_rows": 50000}}
    return ProjectConfig(path=Path("synthetic.yaml"), raw=raw)


# -- steps (each runs in its own interpreter through bench.child) ---------------------------------
def generate(path: str, rows: int, seed: int, drifted: bool) -> dict[str, Any]:
    """Write ``rows`` synthetic rows to one parquet file, a million at a time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    levels = np.array([f"l{j}" for j in range(N_LEVELS)])
    base_p = np.linspace(1.0, 2.0, N_LEVELS)
    writer = None
    done = 0
    chunk_index = 0
    while done < rows:
        n = min(CHUNK, rows - done)
        rng = np.random.default_rng([seed, chunk_index])
        cols: dict[str, Any] = {}
        for i in range(N_NUM):
            name = f"f{i:02d}"
            values = rng.standard_normal(n, dtype=np.float64) * (1 + i % 3) + i
            change = DRIFTS.get(name) if drifted else None
            if change and change[0] == "shift":
                values += change[1] * (1 + i % 3)
            elif change and change[0] == "scale":
                values = (values - i) * change[1] + i
            cols[name] = values
        for i in range(N_CAT):
            name = f"c{i:02d}"
            p = base_p.copy()
            change = DRIFTS.get(name) if drifted else None
            if change:
                p[0] *= change[1]
            codes = rng.choice(N_LEVELS, size=n, p=p / p.sum()).astype(np.int8)
            cols[name] = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(levels)).cast(pa.string())
        score = 1 / (1 + np.exp(-(cols["f00"] - 0.5 * cols["f03"] + 1.0)))
        cols["champion_score"] = score
        table = pa.table(cols)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table)
        done += n
        chunk_index += 1
    writer.close()
    return {"rows": rows, "bytes": Path(path).stat().st_size}


def _warm_up() -> None:
    """Import Evidently and run both code paths once on tiny data: first-call costs are not the step's."""
    import numpy as np
    import pandas as pd
    from mlops_provider.domain.drift import monitor_day

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({c: rng.standard_normal(500) if c.startswith("f") else rng.choice(["a", "b"], 500)
                          for c in feature_columns()})
    frame["champion_score"] = rng.random(500)
    monitor_day(synthetic_project(), reference=frame, current=frame, feature_columns=feature_columns())
    _evidently_full(frame, frame, [c for c in feature_columns() if c.startswith("f")],
                    [c for c in feature_columns() if c.startswith("c")], "champion_score")


def _read(path: str) -> Any:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pandas()


def run_monitor(reference: str, current: str) -> dict[str, Any]:
    """monitor_day on the two files; seconds of the call alone, read time reported apart."""
    from mlops_provider.domain.drift import monitor_day

    _warm_up()
    t0 = time.perf_counter()
    ref, cur = _read(reference), _read(current)
    read_s = time.perf_counter() - t0
    project = synthetic_project()
    t0, c0 = time.perf_counter(), time.process_time()
    result = monitor_day(project, reference=ref, current=cur, feature_columns=feature_columns())
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    verdict = result.verdict
    return {"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3), "read_seconds": round(read_s, 3),
            "drifted": sorted(d["column"] for d in verdict["drifted_columns"]),
            "dataset_drift": verdict["drift_detected"],
            "prediction_drift": verdict["prediction_drift"]["drift_detected"],
            "scores": verdict["column_scores"]}


def _evidently_full(ref: Any, cur: Any, numerical: list[str], categorical: list[str],
                    score: str | None) -> tuple[dict[str, dict[str, Any]], float, float]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset
    from mlops_provider.domain.drift import CAT_METHOD, NUM_METHOD, _drift_values

    columns = numerical + categorical
    definition = DataDefinition(numerical_columns=numerical + ([score] if score else []),
                                categorical_columns=categorical)
    metrics: list[Any] = [DataDriftPreset(columns=columns, drift_share=SHARE_THRESHOLD, num_method=NUM_METHOD,
                                          cat_method=CAT_METHOD, threshold=COLUMN_THRESHOLD)]
    if score:
        metrics.append(ValueDrift(column=score, method=NUM_METHOD, threshold=PREDICTION_THRESHOLD))
    keep = columns + ([score] if score else [])
    t0, c0 = time.perf_counter(), time.process_time()
    snapshot = Report(metrics).run(Dataset.from_pandas(cur[keep], data_definition=definition),
                                   Dataset.from_pandas(ref[keep], data_definition=definition))
    return _drift_values(snapshot), time.perf_counter() - t0, time.process_time() - c0


def run_evidently(reference: str, current: str) -> dict[str, Any]:
    """Plain Evidently DataDriftPreset (+ score ValueDrift) on every row of both files."""
    _warm_up()
    ref, cur = _read(reference), _read(current)
    numerical = [c for c in feature_columns() if c.startswith("f")]
    categorical = [c for c in feature_columns() if c.startswith("c")]
    values, seconds, cpu = _evidently_full(ref, cur, numerical, categorical, "champion_score")
    drifted = sorted(c for c in feature_columns() if values[c]["score"] is not None
                     and values[c]["score"] >= COLUMN_THRESHOLD)
    return {"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3), "drifted": drifted,
            "prediction_drift": values["champion_score"]["score"] >= PREDICTION_THRESHOLD,
            "scores": {c: values[c]["score"] for c in feature_columns()}}


def run_scenario(project_name: str, scenario: str, rows: int) -> dict[str, Any]:
    """A bundled project's clean reference day vs a ``scenario`` day: monitor_day and full Evidently verdicts."""
    from mlops_provider.config.project import load_project
    from mlops_provider.domain.drift import monitor_day

    from devkit.datagen.landing import generate_day

    _warm_up()
    project = load_project(project_name)
    features = list(project.features["record"]["columns"])
    ref = generate_day(project, dt.date(2024, 1, 8), rows, "clean")
    cur = generate_day(project, dt.date(2024, 1, 9), rows, scenario)
    t0 = time.perf_counter()
    verdict = monitor_day(project, reference=ref, current=cur, feature_columns=features).verdict
    monitor_s = time.perf_counter() - t0
    kinds = {c: "numerical" if project.columns[c]["type"] in ("float", "integer") else "categorical"
             for c in features}
    ref_e, cur_e = ref[features].copy(), cur[features].copy()
    for c, k in kinds.items():  # Evidently wants categorical values as strings, as monitor_day passes them
        if k == "categorical":
            ref_e[c], cur_e[c] = ref_e[c].astype(str), cur_e[c].astype(str)
    threshold = float(project.monitoring.get("column_drift_threshold", COLUMN_THRESHOLD))
    if threshold != COLUMN_THRESHOLD:
        raise ValueError(f"{project_name}: the benchmark assumes column_drift_threshold {COLUMN_THRESHOLD}")
    values, evidently_s, _ = _evidently_full(ref_e, cur_e, [c for c in features if kinds[c] == "numerical"],
                                          [c for c in features if kinds[c] == "categorical"], None)
    full = sorted(c for c in features if values[c]["score"] is not None and values[c]["score"] >= threshold)
    ours = sorted(d["column"] for d in verdict["drifted_columns"])
    return {"project": project_name, "scenario": scenario, "rows": rows, "monitor_seconds": round(monitor_s, 3),
            "evidently_seconds": round(evidently_s, 3), "drifted_monitor": ours, "drifted_evidently": full,
            "same_verdict": ours == full,
            "max_score_difference": max(abs((verdict["column_scores"][c] or 0) - (values[c]["score"] or 0))
                                        for c in features)}


# -- orchestration --------------------------------------------------------------------------------
def run(quick: bool = False, sizes: list[int] | None = None, baseline_max_rows: int | None = None,
        scenario_rows: int | None = None) -> dict[str, Any]:
    reference_rows = 100_000 if quick else 1_000_000
    sizes = sizes or ([100_000, 300_000] if quick else [1_000_000, 10_000_000])
    # Evidently on 10M rows x 20 columns would run for many minutes and need >10 GiB; off unless asked.
    baseline_max_rows = baseline_max_rows or (100_000 if quick else 1_000_000)
    scenario_rows = scenario_rows or (20_000 if quick else 200_000)
    tmp = Path(tempfile.mkdtemp(prefix="mlops-bench-drift-"))
    env = bench_env(tmp / "home")
    try:
        ref_path = str(tmp / "reference.parquet")
        run_step("bench.drift:generate", {"path": ref_path, "rows": reference_rows, "seed": 1, "drifted": False},
                 env)
        rows = []
        for n in sizes:
            cur_path = str(tmp / f"current_{n}.parquet")
            run_step("bench.drift:generate", {"path": cur_path, "rows": n, "seed": 2, "drifted": True}, env)
            ours = run_step("bench.drift:run_monitor", {"reference": ref_path, "current": cur_path}, env)
            base = None
            if n <= baseline_max_rows:
                base = run_step("bench.drift:run_evidently", {"reference": ref_path, "current": cur_path}, env)
            rows.append({
                "current_rows": n, "reference_rows": reference_rows, "features": N_NUM + N_CAT,
                "monitor_seconds": ours["seconds"], "monitor_cpu_seconds": ours["cpu_seconds"],
                "monitor_read_seconds": ours["read_seconds"],
                "monitor_peak_rss_mib": ours["peak_rss_mib"],
                "evidently_seconds": base["seconds"] if base else None,
                "evidently_cpu_seconds": base["cpu_seconds"] if base else None,
                "evidently_peak_rss_mib": base["peak_rss_mib"] if base else None,
                "speedup": round(base["seconds"] / ours["seconds"], 2) if base else None,
                "speedup_cpu": round(base["cpu_seconds"] / ours["cpu_seconds"], 2) if base else None,
                "drifted_monitor": ours["drifted"], "drifted_evidently": base["drifted"] if base else None,
                "drifted_expected": sorted(EXPECTED_DRIFTED),
                "same_verdict": (ours["drifted"] == base["drifted"]) if base else None,
                "baseline_skipped": None if base else f"plain Evidently not run above {baseline_max_rows:,} rows",
            })
            Path(cur_path).unlink()
        scenarios = []
        for project in ("fraud", "churn"):
            for scenario in ("clean", "covariate_drift"):
                scenarios.append(run_step("bench.drift:run_scenario",
                                          {"project_name": project, "scenario": scenario, "rows": scenario_rows},
                                          env))
        return {"rows": rows, "scenarios": scenarios, "target_speedup": 5.0,
                "target_met": all(r["speedup"] and r["speedup"] >= 5 and r["same_verdict"] for r in rows
                                  if r["current_rows"] == reference_rows)
                and all(s["same_verdict"] for s in scenarios)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["run", "REPO"]
