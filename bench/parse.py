"""DAG parse: per file in dags/, the time to run it beyond a bare ``import airflow.sdk`` in a fresh interpreter.

Ten ML projects are configured (the bundled ones plus copies of churn.yaml). Baseline: a reference file
that builds as many trivial DAGs (two EmptyOperators each) with the same Airflow imports, parsed the same
way, so the ratio shows what the platform's own code adds. ``warm`` is a second execution of the file in
the same interpreter (modules already imported): what a DAG processor that pre-imports modules pays.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.common import PYTHON, REPO, bench_env, median, run_cmd

HEAVY = ("great_expectations", "mlflow", "feast", "evidently", "sklearn", "pandas", "pyarrow")
TARGET_MS = 50.0
N_PROJECTS = 10

SNIPPET = r"""
import json, runpy, sys, time
t0, c0 = time.perf_counter(), time.process_time()
import airflow.sdk
t1, c1 = time.perf_counter(), time.process_time()
before = set(sys.modules)
ns = runpy.run_path(sys.argv[1])
t2, c2 = time.perf_counter(), time.process_time()
heavy = [m for m in {heavy!r} if m in sys.modules]
notable = [m for m in ("boto3", "numpy", "jsonschema", "yaml") if m in sys.modules and m not in before]
new = sorted({{m.split('.')[0] for m in set(sys.modules) - before}})
runpy.run_path(sys.argv[1])
t3, c3 = time.perf_counter(), time.process_time()
from airflow.sdk import DAG
dags = sorted(v.dag_id for v in ns.values() if isinstance(v, DAG))
print("PARSE=" + json.dumps({{"bare": t1 - t0, "cold": t2 - t1, "warm": t3 - t2, "bare_cpu": c1 - c0,
                              "cold_cpu": c2 - c1, "warm_cpu": c3 - c2, "heavy": heavy, "notable": notable,
                              "new_top_level_modules": new, "dags": dags}}))
"""

REFERENCE_DAG = '''"""Reference: {n} trivial DAGs with the Airflow imports a generated DAG file needs."""
import datetime as dt

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

for i in range({n}):
    with DAG(dag_id=f"reference_{{i}}", schedule=None, start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
             tags=["reference"], default_args={{"owner": "bench", "retries": 2}}) as dag:
        EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
    globals()[dag.dag_id] = dag
'''


def make_projects(target: Path, source: Path, n: int = N_PROJECTS) -> list[str]:
    """The bundled project YAMLs plus copies of churn.yaml under new names, up to ``n`` projects."""
    target.mkdir(parents=True, exist_ok=True)
    names = []
    for path in sorted(source.glob("*.yaml")):
        shutil.copy(path, target / path.name)
        names.append(path.stem)
    churn = (source / "churn.yaml").read_text()
    i = 0
    while len(names) < n:
        i += 1
        name = f"churn{i}"
        text = re.sub(r"(?m)^name: churn$", f"name: {name}", churn)
        text = text.replace("churn_classifier", f"{name}_classifier")
        (target / f"{name}.yaml").write_text(text)
        names.append(name)
    return names


def _parse_once(path: Path, env: dict[str, str]) -> dict[str, Any]:
    res = run_cmd([PYTHON, "-c", SNIPPET.format(heavy=HEAVY), str(path)], env, timeout=300)
    line = next((ln for ln in res["stdout"].splitlines() if ln.startswith("PARSE=")), None)
    if res["returncode"] != 0 or line is None:
        raise RuntimeError(f"parsing {path} failed:\n{res['stdout'][-3000:]}")
    out = json.loads(line[len("PARSE="):])
    out["peak_rss_mib"] = res["peak_rss_mib"]
    return out


def run(quick: bool = False, repeats: int | None = None, ref: str | None = None) -> dict[str, Any]:
    """Parse every DAG file ``repeats`` times (median CPU time reported); ``ref`` parses a git revision's dags/ instead."""
    repeats = repeats or (2 if quick else 5)
    tmp = Path(tempfile.mkdtemp(prefix="mlops-bench-parse-"))
    worktree = None
    try:
        root = REPO
        if ref:
            worktree = tmp / "worktree"
            subprocess.run(["git", "worktree", "add", "-q", "--detach", str(worktree), ref], cwd=REPO, check=True)
            root = worktree
        projects = make_projects(tmp / "projects", root / "include" / "projects")
        env = bench_env(tmp / "home", MLOPS_PROJECTS_DIR=str(tmp / "projects"))
        if worktree:
            env["PYTHONPATH"] = f"{worktree / 'plugins'}:{worktree}"
            env["MLOPS_REPO_ROOT"] = str(worktree)
        reference = tmp / "reference_dag.py"
        reference.write_text(REFERENCE_DAG.format(n=len(projects)))
        files = sorted((root / "dags").glob("*.py"))
        _parse_once(reference, env)  # warm the bytecode cache (PYTHONPYCACHEPREFIX) once
        for f in files:
            _parse_once(f, env)
        samples: dict[str, list[dict[str, Any]]] = {p.name: [] for p in [reference, *files]}
        for _ in range(repeats):  # interleaved, so load changes hit every file alike
            for f in [reference, *files]:
                samples[f.name].append(_parse_once(f, env))
        # CPU time is the primary figure: on a shared 2-core machine wall time mostly measures the neighbours.
        ref_cold = median([s["cold_cpu"] for s in samples[reference.name]])
        rows = []
        for f in [reference, *files]:
            s = samples[f.name]
            cold = median([x["cold_cpu"] for x in s])
            rows.append({
                "file": "(reference: trivial DAGs)" if f == reference else f"dags/{f.name}",
                "dags": len(s[0]["dags"]),
                "bare_import_cpu_ms": round(median([x["bare_cpu"] for x in s]) * 1000, 1),
                "parse_beyond_bare_cpu_ms": round(cold * 1000, 1),
                "parse_beyond_bare_wall_ms": round(median([x["cold"] for x in s]) * 1000, 1),
                "parse_warm_cpu_ms": round(median([x["warm_cpu"] for x in s]) * 1000, 1),
                "ratio_vs_reference": round(cold / ref_cold, 2) if ref_cold else None,
                "heavy_modules": s[0]["heavy"],
                "other_modules_imported": s[0]["notable"],
                "new_top_level_modules": s[0]["new_top_level_modules"],
                "peak_rss_mib": max(x["peak_rss_mib"] for x in s),
                "target_met": None if f == reference else (not s[0]["heavy"] and cold * 1000 < TARGET_MS),
                "samples_cpu_ms": [round(x["cold_cpu"] * 1000, 1) for x in s],
            })
        return {"projects": len(projects), "repeats": repeats, "target_ms": TARGET_MS, "ref": ref or "HEAD",
                "rows": rows}
    finally:
        if worktree:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=REPO, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
