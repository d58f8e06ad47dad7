"""Run the benchmarks: ``python -m bench.run [--quick] [--only parse,drift,feature_store,chain]``.

Each benchmark writes ``bench/results/<name>.json`` (machine, parameters, results); then the generated
block of ``docs/performance.md`` is rebuilt from every result file present, so running a subset keeps
the other sections. Performance is never asserted here or in tests: the figures are for reading.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import report
from bench.common import REPO, machine

BENCHMARKS = ("parse", "drift", "feature_store", "chain", "score", "alert", "stack_scale")
# Run only when named: two production stacks one after the other, about an hour at its 10M rows.
DEFAULT = tuple(b for b in BENCHMARKS if b != "stack_scale")


def _ints(text: str | None) -> list[int] | None:
    return [int(x.replace("_", "")) for x in text.split(",")] if text else None


def _count(text: str) -> int:
    return int(text.replace("_", "").replace(",", ""))


def run_one(name: str, args: argparse.Namespace) -> dict[str, Any]:
    from bench import alert, chain, drift, feature_store, parse, score, stack_scale

    if name == "parse":
        return parse.run(quick=args.quick, repeats=args.repeats, ref=args.parse_ref)
    if name == "drift":
        return drift.run(quick=args.quick, sizes=_ints(args.drift_sizes),
                         baseline_max_rows=args.drift_baseline_max_rows, scenario_rows=args.scenario_rows)
    if name == "feature_store":
        return feature_store.run(quick=args.quick, rows=args.feast_rows, iterations=args.read_iterations)
    if name == "chain":
        return chain.run(quick=args.quick, sizes=_ints(args.chain_sizes), history_rows=args.history_rows,
                         template=args.chain_template, partial=str(args.out / "chain.partial.json"),
                         log_dir=str(args.out / "chain-logs"))
    if name == "score":
        batch = _ints(args.score_batch_rows)
        return score.run(quick=args.quick, rows=args.score_rows, shards=args.score_shards, batch_rows=batch,
                         row_group_rows=args.score_row_group_rows,
                         history_rows=args.history_rows, template=args.chain_template,
                         paper_rows=args.paper_rows, paper_workers=args.paper_workers,
                         paper_shard_rows=args.paper_shard_rows)
    if name == "alert":
        return alert.run(quick=args.quick, rows=args.alert_rows, repeats=args.alert_repeats)
    if name == "stack_scale":
        return stack_scale.run(quick=args.quick, rows=args.stack_scale_rows, shard_rows=args.stack_scale_shard_rows,
                               workers=_ints(args.stack_scale_workers), concurrency=args.stack_scale_concurrency,
                               timeout=args.stack_scale_timeout, chunk_rows=args.stack_scale_chunk_rows)
    raise ValueError(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: the whole set in minutes (smoke test)")
    parser.add_argument("--only", default=",".join(DEFAULT),
                        help=f"comma-separated subset of {BENCHMARKS} (default: all but stack_scale)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="where the JSON goes")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "performance.md", help="markdown to update")
    parser.add_argument("--no-doc", action="store_true", help="write JSON only")
    parser.add_argument("--tag", default="", help="suffix of the JSON file names (e.g. 'before')")
    parser.add_argument("--repeats", type=int, help="parse: fresh interpreters per file")
    parser.add_argument("--parse-ref", help="parse: measure this git revision's dags/ (a temporary worktree)")
    parser.add_argument("--drift-sizes", help="drift: current-day rows, e.g. 1000000,10000000")
    parser.add_argument("--drift-baseline-max-rows", type=int, help="drift: run plain Evidently up to this size")
    parser.add_argument("--scenario-rows", type=int, help="drift: rows per bundled scenario day")
    parser.add_argument("--feast-rows", type=int, help="feature store: entities materialized")
    parser.add_argument("--read-iterations", type=int, help="feature store: online reads per request size")
    parser.add_argument("--chain-sizes", help="chain: rows of the measured day, e.g. 100000,1000000")
    parser.add_argument("--history-rows", type=int, help="chain, score: rows per history day (setup)")
    parser.add_argument("--chain-template", help="chain, score: reuse a prepared MLOPS_HOME (skips the history setup)")
    parser.add_argument("--score-rows", type=lambda x: int(x.replace("_", "")),
                        help="score: rows of the measured day (default 10,000,000; quick 100,000)")
    parser.add_argument("--score-shards", type=int, default=4,
                        help="score: shards of the sharded run (default 4; at least 2: one shard is the unsharded run)")
    parser.add_argument("--score-batch-rows", help="score: MLOPS_SCORE_BATCH_ROWS of the read comparison, e.g. "
                        "500000,100000 (default: the stage's 500000; the first is the shards' too)")
    parser.add_argument("--score-row-group-rows", type=int, help="score: re-lay the day's records in row groups "
                        "of this size (shards are whole row groups; the lake writes 1,048,576-row groups)")
    parser.add_argument("--paper-rows", type=int, default=100_000_000, help="score: rows of the extrapolated day")
    parser.add_argument("--paper-workers", type=int, default=16, help="score: workers of the extrapolation")
    parser.add_argument("--paper-shard-rows", type=int, default=2_000_000, help="score: shard size of the extrapolation")
    parser.add_argument("--alert-rows", type=int, help="alert: rows of each drifted day landed on the stack")
    parser.add_argument("--alert-repeats", type=int, help="alert: drifted days measured one after another")
    parser.add_argument("--stack-scale-rows", type=_count, help="stack_scale: rows of the measured day "
                        "(default 10,000,000; quick 200,000)")
    parser.add_argument("--stack-scale-shard-rows", type=_count, help="stack_scale: the fraud project's "
                        "runs.shard_rows (default a quarter of the day)")
    parser.add_argument("--stack-scale-workers", help="stack_scale: worker counts in the order measured, one fresh "
                        "stack each (default 1,2,1,2: the median of the neighbouring pairs' ratios; quick 1,2)")
    parser.add_argument("--stack-scale-concurrency", type=int, default=1,
                        help="stack_scale: task slots per Celery worker (default 1: a worker runs one task at a time)")
    parser.add_argument("--stack-scale-timeout", type=float, help="stack_scale: seconds the measured chain may take "
                        "(default max(1800, rows / 2000))")
    parser.add_argument("--stack-scale-chunk-rows", type=_count, help="stack_scale: rows generated and copied into "
                        "the source at a time (default 500,000)")
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {BENCHMARKS}")
    os.environ.setdefault("FEAST_USAGE", "False")
    args.out.mkdir(parents=True, exist_ok=True)
    info = machine()
    status = 0
    for name in names:
        print(f"[bench] {name} ({'quick' if args.quick else 'full'}) ...", flush=True)
        t0 = time.perf_counter()
        record: dict[str, Any] = {"benchmark": name, "quick": args.quick, "machine": info,
                                  "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        try:
            record["results"] = run_one(name, args)
        except Exception as exc:  # one failing benchmark must not hide the others' figures
            traceback.print_exc()
            record["error"] = f"{type(exc).__name__}: {exc}"
            status = 1
        record["seconds"] = round(time.perf_counter() - t0, 1)
        record["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        record["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        path = args.out / f"{name}{'-' + args.tag if args.tag else ''}.json"
        path.write_text(json.dumps(record, indent=2, default=str))
        print(f"[bench] {name}: {'FAILED' if 'error' in record else 'done'} in {record['seconds']}s -> {path}",
              flush=True)
        if "results" in record:
            print(getattr(report, f"{name}_md")(record["results"]), flush=True)
    if not args.no_doc:
        results = {}
        for name in BENCHMARKS:
            path = args.out / f"{name}{'-' + args.tag if args.tag else ''}.json"
            if path.exists():
                results[name] = json.loads(path.read_text())
        doc = args.doc.read_text() if args.doc.exists() else "# Performance\n"
        args.doc.write_text(report.update_doc(doc, report.render(results, previous=doc)))
        print(f"[bench] updated {args.doc}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
