"""Smoke test of the benchmark runner: a quick DAG-parse run writes well-formed JSON and markdown.

Nothing here looks at timings: performance is read from docs/performance.md, never asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_parse_run_writes_json_and_markdown(tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n\nHand-written notes stay.\n")
    out = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--only", "parse", "--repeats", "1",
         "--out", str(tmp_path / "results"), "--doc", str(doc)],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    record = json.loads((tmp_path / "results" / "parse.json").read_text())
    assert {"benchmark", "machine", "results", "started_at", "finished_at"} <= set(record)
    assert record["machine"]["python"] and record["machine"]["packages"]
    files = [row["file"] for row in record["results"]["rows"]]
    assert any(f.startswith("(reference") for f in files)
    assert {f"dags/{p.name}" for p in (REPO / "dags").glob("*.py")} <= set(files)
    for row in record["results"]["rows"]:
        assert isinstance(row["parse_beyond_bare_cpu_ms"], float) and isinstance(row["heavy_modules"], list)
    text = doc.read_text()
    assert "Hand-written notes stay." in text
    assert "<!-- bench:begin" in text and "<!-- bench:end -->" in text
    assert "### DAG parse" in text and "| file |" in text


def test_report_renders_every_section_from_minimal_results():
    from bench import report

    machine = {"cpu_model": "cpu", "usable_cores": 2, "logical_cores": 2, "ram_gib": 1.0, "os": "Linux",
               "python": "3.11", "packages": {"pandas": "2"}, "git_commit": "abc", "load_average_at_start": [0, 0, 0]}
    row = {"file": "dags/x.py", "dags": 1, "parse_beyond_bare_cpu_ms": 1.0, "parse_beyond_bare_wall_ms": 2.0,
           "parse_warm_cpu_ms": 0.5, "ratio_vs_reference": 1.0, "heavy_modules": [], "peak_rss_mib": 100.0,
           "target_met": True}
    results = {"parse": {"quick": True, "finished_at": "now", "machine": machine,
                         "results": {"projects": 10, "repeats": 1, "ref": "HEAD", "target_ms": 50.0, "rows": [row]}},
               "chain": {"quick": True, "finished_at": "now", "machine": machine, "error": "RuntimeError: boom"}}
    block = report.render(results)
    assert block.startswith(report.BEGIN) and block.endswith(report.END)
    assert "| dags/x.py | 1 |" in block and "**Failed:** `RuntimeError: boom`" in block
    doc = report.update_doc("# P\n\nnotes\n", block)
    assert report.update_doc(doc, block) == doc


def test_chain_and_alert_tables_show_the_floor_one_process_run_and_stage_spans():
    from bench import report

    size = {"rows": 1000, "airflow_ok": True, "airflow_seconds": 40.0, "plain_seconds": 10.0,
            "ratio_airflow_vs_plain": 4.0, "ratio_cpu": 3.9, "ratio_excluding_cli_floor": 1.2,
            "airflow": [{"dag_id": "fraud__ingest", "seconds": 40.0, "ok": True, "peak_rss_mib": 500.0}],
            "plain_stage_seconds": {"ingest": 10.0}, "plain_peak_rss_mib": 400.0,
            "dagtest_seconds": 12.0, "ratio_dagtest_vs_plain": 1.2, "dagtest_stage_seconds": {"parse": 1.0, "ingest": 11.0},
            "dagtest_peak_rss_mib": 450.0}
    chain = report.chain_md({"project": "fraud", "history_days": 2, "history_rows": 100, "sizes": [size],
                             "cli_floor": {"seconds": 5.6, "cpu_seconds": 5.4, "samples": [5.5, 5.6, 5.7]}})
    assert "| 1,000 | 40.0 s | 10.0 s | 4.00x | 3.90x | 1.20x |" in chain
    assert "two empty tasks: 5.6 s per process" in chain and "| 1,000 | 12.0 s | 10.0 s | 1.20x |" in chain
    alert = report.alert_md({"workers": 2, "history_days": 9, "history_rows": 1500, "setup_seconds": 300.0,
                             "median_seconds_to_alert": 95.0, "measurements": [
                                 {"day": "2026-11-30", "rows": 20000, "seconds_to_alert": 95.0,
                                  "outside_runs_seconds": 45.0, "stages": [
                                      {"dag_id": "fraud__ingest", "run_seconds": 30.0},
                                      {"dag_id": "fraud__features", "run_seconds": 20.0}]}]})
    assert "| 2026-11-30 | 20,000 | **95.0 s** | ingest 30.0 s, features 20.0 s | 45.0 s |" in alert
    assert "Median: 95.0 s." in alert


def test_a_subset_run_keeps_the_other_sections_of_the_page_verbatim():
    """The result files are git-ignored: rebuilding the block from one benchmark's JSON keeps the others' text."""
    from bench import report

    machine = {"cpu_model": "cpu", "usable_cores": 2, "logical_cores": 2, "ram_gib": 1.0, "os": "Linux",
               "python": "3.11", "packages": {}, "git_commit": "abc", "load_average_at_start": [0, 0, 0]}
    page = ("# P\n\nnotes\n\n" + report.BEGIN + "\n### DAG parse\n\nkept parse table | 19 ms |\n\n"
            "### Time to alert (production stack)\n\nkept alert figures\n\n" + report.END + "\n\nafter\n")
    assert report.update_doc(page, report.render({}, previous=page)) == page
    chain = {"quick": True, "finished_at": "now", "machine": machine, "error": "RuntimeError: boom"}
    doc = report.update_doc(page, report.render({"chain": chain}, previous=page))
    assert "kept parse table | 19 ms |" in doc and "kept alert figures" in doc and doc.endswith("after\n")
    # In the sections' order: parse, the new chain section, alert.
    assert doc.index("### DAG parse") < doc.index("**Failed:** `RuntimeError: boom`") < doc.index("### Time to alert")


def _score_results() -> dict:
    shard = {"index": 0, "rows": 250_000, "seconds": 10.0, "cpu_seconds": 9.0, "peak_rss_mib": 900.0}
    phase = {"processes": 1, "plan_seconds": 0.5, "shards_wall_seconds": 80.0, "wall_seconds": 95.0,
             "shards": [shard, {**shard, "index": 1, "rows": 250_000, "seconds": 12.0}],
             "commit": {"seconds": 10.0, "cpu_seconds": 2.0, "peak_rss_mib": 700.0}, "max_shard_peak_rss_mib": 900.0,
             "same_predictions": True}
    read = {"seconds": 30.0, "cpu_seconds": 28.0, "peak_rss_mib": 1500.0, "predictions_sha256": "ab"}
    return {"project": "fraud", "rows": 1_000_000, "day": "2024-01-11", "history_days": 10, "history_rows": 5000,
            "setup_seconds": 300.0, "prepared_day": {"records": {"rows": 1_000_000, "row_groups": 16}},
            "reads": [{"batch_rows": 500_000, "batches": 2, "by_id": {**read, "seconds": 60.0},
                       "lockstep": read, "speedup": 2.0, "speedup_cpu": 1.9, "same_predictions": True,
                       "read_only_by_id": {"seconds": 8.0}, "read_only_lockstep": {"seconds": 2.0},
                       "read_only_speedup": 4.0}],
            "shards_requested": 4, "shard_rows": 250_000, "shards": 4,
            "phases": [phase, {**phase, "processes": 2, "wall_seconds": 50.0, "same_predictions": False}],
            "speedup_two_processes": 1.9, "speedup_two_processes_shards_only": 1.95}


def test_score_table_shows_before_after_shards_and_the_paper_extrapolation():
    from bench import report, score

    r = _score_results()
    serial = r["phases"][0]
    # t(n) = a + n/r through (1M rows, 30 s) and the mean shard (250k rows, 11 s): a = 4.67 s, r = 39,474 rows/s.
    paper = score.extrapolate(1_000_000, r["reads"][0]["lockstep"], serial, 0.5, paper_rows=100_000_000,
                              paper_workers=16, paper_shard_rows=2_000_000, batch_rows=500_000)
    assert (paper["shards"], paper["waves"]) == (50, 4)
    assert paper["rows_per_second_per_shard"] == 39_474 and paper["fixed_seconds_per_task"] == 4.67
    assert paper["commit_seconds"] == 1000.0  # 10 s at 1M rows, linear
    assert paper["total_seconds"] == round(0.5 + 4 * (4.6667 + 2_000_000 / 39_473.68) + 1000.0, 1)
    assert paper["shard_peak_rss_mib"] == 1500  # a shard of >= one batch peaks like the unsharded run
    cpu = score.extrapolate(1_000_000, r["reads"][0]["lockstep"], serial, 0.5, paper_rows=100_000_000,
                            paper_workers=16, paper_shard_rows=2_000_000, batch_rows=500_000, measure="cpu_seconds")
    # CPU: (1M, 28 s) and (250k, 9 s): a = 2.67 s, r = 39,474 rows/s; the commit's 2 CPU seconds x 100.
    assert cpu["measure"] == "cpu_seconds" and cpu["fixed_seconds_per_task"] == 2.67
    assert cpu["commit_seconds"] == 200.0
    r["paper"], r["paper_cpu"] = paper, cpu
    md = report.score_md(r)
    assert ("| 1,000,000 | 500,000 (2) | 60.0 s / 28.0 s | 30.0 s / 28.0 s | 2.00x | 1.90x | 1,500 / 1,500 MiB "
            "| identical | 8.0 s / 2.0 s (4.00x) |") in md
    assert "| 1 | 500 ms | 80.0 s | 10.0 s (700 MiB) | **95.0 s** | #0 250,000 rows 10.0 s 900 MiB, #1" in md
    assert "| 2 | 500 ms | 80.0 s | 10.0 s (700 MiB) | **50.0 s** |" in md
    assert "**differ**" in md and "Speed-up with 2 processes: **1.90x**" in md
    assert "50 shards of 2,000,000 rows = 4 waves" in md and "from the CPU seconds: a worker" in md


def test_stack_scale_table_shows_walls_speedup_and_peak_memory_per_task():
    from bench import report, stack_scale

    assert stack_scale.default_shard_rows(10_000_000) == 2_500_000  # four shards: two waves on two workers
    assert stack_scale.default_shard_rows(200_000) == 50_000 and stack_scale.default_shard_rows(2_000) == 1_000

    def task(task_id, seconds, peak, map_index=-1, state="success"):
        return {"task_id": task_id, "map_index": map_index, "state": state, "try_number": 1, "worker": "worker1",
                "start_offset_seconds": 1.0, "seconds": seconds, "queued_seconds": 0.5, "peak_rss_mib": peak,
                "cpu_seconds": None if peak is None else seconds * 1.5}

    runs = [{"dag_id": "fraud__ingest", "run_id": "m", "run_type": "manual", "start_offset_seconds": 0.5,
             "seconds": 20.0, "tasks": [task("wait_for_data", 1.0, None), task("extract", 10.0, 900.0)]},
            {"dag_id": "fraud__score", "run_id": "a", "run_type": "asset_triggered", "start_offset_seconds": 30.0,
             "seconds": 40.0, "tasks": [task("plan_shards", 2.0, 500.0),
                                        *[task("score_shard", 10.0 + i, 1000.0 + i, i) for i in range(3)],
                                        task("score", 3.0, None, state="failed")]}]
    per_task = stack_scale.by_task(runs)
    assert per_task["score.score_shard"] == {"instances": 3, "seconds": 33.0, "max_seconds": 12.0, "peak_rss_mib": 1002.0,
                                             "cpu_seconds": 49.5}
    assert "score.score" not in per_task and per_task["ingest.wait_for_data"]["peak_rss_mib"] is None
    phase = {"workers": 1, "worker_concurrency": 1, "setup_seconds": 300.0, "load_seconds": 12.0, "wall_seconds": 100.0,
             "runs": runs, "by_task": per_task, "score_shards": 3, "max_task_peak_rss_mib": 1002.0,
             "max_task": "score.score_shard[2]", "worker_peak_tree_rss_mib": {"worker1": 2500.0},
             "machine_busy_cores": 1.9, "logical_cores": 2, "task_cpu_seconds": 150.0}
    md = report.stack_scale_md({"rows": 200_000, "shard_rows": 50_000, "worker_concurrency": 1, "history_days": 9,
                                "history_rows": 1500, "phases": [phase, {**phase, "workers": 2, "wall_seconds": 60.0}],
                                "speedup": 1.67, "target_speedup": 1.6, "max_task_peak_rss_mib": 1002.0,
                                "limit_mib": 6144, "target_met": True} | {"phases": [
                                    {**phase, "component_cores": {"worker1": 0.9, "scheduler": 0.12, "smtp": 0.001}},
                                    {**phase, "workers": 2, "wall_seconds": 60.0}]})
    assert "| 1 x 1 slot(s) | **100.0 s** | ingest 20.0 s, score 40.0 s | 3 | 1,002 MiB (score.score_shard[2]) |" in md
    assert "| 2 x 1 slot(s) | **60.0 s** |" in md
    assert ("| score.score_shard | 3 x, 33.0 s (longest 12.0 s), 1,002 MiB, 1.50 cores | "
            "3 x, 33.0 s (longest 12.0 s), 1,002 MiB, 1.50 cores |") in md
    assert "| worker1 2,500 MiB | 1.90 / 1.50 of 2 |" in md  # busy cores: the machine's / the tasks' own
    assert "**1.67x**, target >= 1.6x: met; highest task peak RSS 1,002 MiB, limit 6,144 MiB: met." in md
    assert "- 1 worker(s): worker1 0.90, scheduler 0.12\n" in md  # busiest first; idle components left out


def test_stack_scale_counts_worker_handovers_only_when_the_next_task_waited():
    from bench import report, stack_scale

    def task(worker, start, seconds, queued):
        return {"task_id": "t", "map_index": -1, "state": "success", "try_number": 1, "worker": worker,
                "start_offset_seconds": start, "seconds": seconds, "queued_seconds": queued}

    runs = [{"tasks": [task("w1", 0.0, 10.0, 0.1), task("w2", 0.0, 10.0, 0.1),
                       task("w1", 15.1, 5.0, 15.0),  # queued at 0.1, before w1's first task ended: 5.1 s
                       task("w2", 10.3, 4.0, 10.2),  # queued at 0.1: 0.3 s
                       task("w2", 16.0, 1.0, 1.5),  # queued at 14.5, after w2's task ended at 14.3: not counted
                       task(None, None, None, None)]}]
    assert stack_scale.worker_handovers(runs) == {"count": 2, "seconds": 5.4, "max_seconds": 5.1}
    assert stack_scale.worker_handovers([{"tasks": [task("w1", 0.0, 1.0, 0.0)]}]) == {
        "count": 0, "seconds": 0.0, "max_seconds": None}
    phase = {"workers": 2, "worker_concurrency": 1, "setup_seconds": 1.0, "load_seconds": 1.0, "wall_seconds": 20.0,
             "runs": [], "by_task": {}, "score_shards": 0, "max_task_peak_rss_mib": None, "max_task": None,
             "handovers": stack_scale.worker_handovers(runs)}
    md = report.stack_scale_md({"rows": 1, "shard_rows": 1, "worker_concurrency": 1, "history_days": 9,
                                "history_rows": 1, "phases": [phase], "speedup": None, "target_speedup": 1.6,
                                "max_task_peak_rss_mib": None, "limit_mib": 6144})
    assert "- 2 worker(s): 2, 5.4 s in all (longest 5.1 s)" in md


def test_stack_scale_repeats_pair_neighbouring_phases_and_report_the_median():
    from bench import report, stack_scale

    assert stack_scale.default_workers(quick=False) == [1, 2, 1, 2] and stack_scale.default_workers(quick=True) == [1, 2]
    # 1, 2, 1, 2: three neighbouring pairs (the middle one is the second one-worker phase over the first
    # two-worker phase); a phase of another count, or a missing wall, pairs with nothing.
    assert stack_scale.paired_speedups([(1, 160.0), (2, 100.0), (1, 150.0), (2, 96.0)]) == [1.6, 1.5, 1.56]
    assert stack_scale.paired_speedups([(2, 100.0), (1, 170.0)]) == [1.7]
    assert stack_scale.paired_speedups([(1, 100.0), (1, 90.0), (3, 40.0), (2, 0.0)]) == []
    phase = {"workers": 1, "worker_concurrency": 1, "setup_seconds": 300.0, "load_seconds": 12.0, "wall_seconds": 160.0,
             "runs": [], "by_task": {"ingest.extract": {"instances": 1, "seconds": 10.0, "max_seconds": 10.0,
                                                          "peak_rss_mib": 900.0}},
             "score_shards": 4, "max_task_peak_rss_mib": 900.0, "max_task": "ingest.extract"}
    phases = [phase, {**phase, "workers": 2, "wall_seconds": 100.0}, {**phase, "wall_seconds": 150.0},
              {**phase, "workers": 2, "wall_seconds": 96.0}]
    md = report.stack_scale_md({"rows": 200_000, "shard_rows": 50_000, "worker_concurrency": 1, "history_days": 9,
                                "history_rows": 1500, "phases": phases, "speedups": [1.6, 1.5, 1.56], "speedup": 1.56,
                                "target_speedup": 1.6, "max_task_peak_rss_mib": 900.0, "limit_mib": 6144})
    assert "| 1 x 1 slot(s) #1 | **160.0 s** |" in md and "| 2 x 1 slot(s) #2 | **96.0 s** |" in md
    assert "| task | 1 worker(s) #1 | 2 worker(s) #1 | 1 worker(s) #2 | 2 worker(s) #2 |" in md
    assert ("(median of the 3 neighbouring pairs' ratios 1.60x, 1.50x, 1.56x: spread 1.50x .. 1.60x): **1.56x**, "
            "target >= 1.6x: **missed**") in md
    assert "task CPU second" not in md  # no CPU figures: no diagnostic
    md = report.stack_scale_md({"rows": 200_000, "shard_rows": 50_000, "worker_concurrency": 1, "history_days": 9,
                                "history_rows": 1500, "phases": phases, "speedups": [1.6, 1.5, 1.56], "speedup": 1.56,
                                "cpu_normalised_speedups": [1.55, 1.55, 1.54], "cpu_normalised_speedup": 1.55,
                                "target_speedup": 1.6, "max_task_peak_rss_mib": 900.0, "limit_mib": 6144})
    assert "per task CPU second (the VM's core speed drifts between phases; a diagnostic, not the verdict): " \
           "1.55x, 1.55x, 1.54x, median 1.55x." in md


def test_stack_scale_samples_cpu_per_process_tree_including_reaped_children():
    import subprocess
    import sys

    from bench import stack_scale

    before = stack_scale.tree_cpu_seconds(os.getpid())
    # A child that burns ~0.3 s of CPU and is reaped: its time counts in this process's tree.
    subprocess.run([sys.executable, "-c", "import time\nt=time.process_time()\nwhile time.process_time()-t<0.3: pass"],
                   check=True)
    after = stack_scale.tree_cpu_seconds(os.getpid())
    assert after - before >= 0.25
    assert stack_scale.tree_cpu_seconds(None) is None
    # b is gone (unknown), c was idle (0 cores, listed), d was never found
    assert stack_scale.component_cores({"a": 1.0, "b": 2.0, "c": 0.0, "d": None}, {"a": 3.0, "b": None, "c": 0.0},
                                       4.0) == {"a": 0.5, "c": 0.0}


def test_stack_scale_timeline_names_the_component_a_busy_child_belongs_to():
    import subprocess
    import sys

    from bench import stack_scale

    # A grandchild busy for ~1.5 s under a parent registered as "svc": its CPU shows under "svc".
    parent = subprocess.Popen([sys.executable, "-c", "import subprocess,sys\nsubprocess.run([sys.executable,'-c',"
                               "'import time\\nt=time.time()\\nwhile time.time()-t<1.5: pass'])"])
    timeline = stack_scale.MachineTimeline({"svc": parent.pid}, interval=0.4)
    timeline.start()
    try:
        parent.wait(timeout=30)
    finally:
        timeline.stop()
    assert timeline.rows, "no sample taken"
    row = timeline.rows[0]
    assert {"t", "busy", "iowait", "top"} <= row.keys()
    assert max(dict(r["top"]).get("svc", 0.0) for r in timeline.rows) >= 0.5


def test_stack_scale_saturation_line_splits_the_busy_machine_between_workers_and_the_rest():
    from bench import report

    phase = {"workers": 2, "timeline": [
        {"t": 5.0, "busy": 2.0, "top": [["worker1", 0.8], ["worker2", 0.8], ["scheduler", 0.1]]},
        {"t": 10.0, "busy": 1.2, "top": [["worker1", 0.9], ["s3", 0.1]]},  # worker2 idle: not counted
    ]}
    line = report._saturation(phase)
    assert line == ("2 worker(s), 1 samples (5 s) with every worker busy: machine 2.00 cores busy, the workers' "
                    "trees 1.60 (0.80 each), the rest 0.40")
    assert report._saturation({"workers": 1, "timeline": []}) is None


def test_kept_stack_logs_are_the_logs_only(tmp_path):
    """``MLOPS_BENCH_KEEP_LOGS`` copies the component and task logs, never the stack's data or secrets."""
    from bench.common import keep_stack_logs

    stack = tmp_path / "stack"
    for rel, text in {"logs/scheduler.log": "scheduling", "airflow/logs/dag_id=d/run_id=r/task_id=t/attempt=1.log": "ran",
                      "secrets.json": "{}", "stack.env": "PASSWORD=x", "airflow/airflow.cfg": "[core]",
                      "airflow/passwords.json": "{}", "pids/worker1.pid": "1", "s3/mlops/lake/x.parquet": "data",
                      "workers/worker1/gx/result.json": "{}"}.items():
        (stack / rel).parent.mkdir(parents=True, exist_ok=True)
        (stack / rel).write_text(text)
    kept = keep_stack_logs(stack, tmp_path / "kept")
    assert kept == ["logs", "airflow/logs"]
    copied = sorted(p.relative_to(tmp_path / "kept").as_posix() for p in (tmp_path / "kept").rglob("*") if p.is_file())
    assert copied == ["airflow/logs/dag_id=d/run_id=r/task_id=t/attempt=1.log", "logs/scheduler.log"]
    assert keep_stack_logs(tmp_path / "no-stack", tmp_path / "kept2") == []


def test_stack_scale_speedup_factors_multiply_to_each_pairs_ratio():
    from bench import report, stack_scale

    def phase(workers, wall, busy, cpu=None):
        return {"workers": workers, "wall_seconds": wall, "machine_busy_cores": busy, "logical_cores": 2,
                "task_cpu_seconds": cpu}

    phases = [phase(1, 482.3, 1.22, 448.8), phase(2, 293.8, 1.79, 424.1), phase(1, 434.2, 1.22, 403.6),
              phase(2, 314.9, 1.82, 451.4)]
    factors = stack_scale.speedup_factors(phases)
    assert [f["speedup"] for f in factors] == stack_scale.paired_speedups(
        [(p["workers"], p["wall_seconds"]) for p in phases]) == [1.64, 1.48, 1.38]
    for f in factors:
        assert abs(f["core_ceiling"] * f["two_worker_utilisation"] * f["work_ratio"] - f["speedup"]) < 0.01, f
    assert [f["core_ceiling"] for f in factors] == [1.639] * 3  # 2 cores / 1.22 busy with one worker
    assert [f["two_worker_utilisation"] for f in factors] == [0.895, 0.895, 0.91]
    # A phase without machine figures pairs with nothing: its neighbours are not paired across it.
    assert len(stack_scale.speedup_factors([phases[0], {**phases[1], "machine_busy_cores": None}, phases[2]])) == 0
    # The CPU-normalised ratios pair neighbours only: a phase without CPU seconds is skipped, not closed over.
    assert stack_scale.paired_speedups([(1, 1.0), (2, None), (1, 2.0), (2, 1.0)]) == [2.0]

    md = report.stack_scale_md({"rows": 200_000, "shard_rows": 50_000, "worker_concurrency": 1, "history_days": 9,
                                "history_rows": 1500, "phases": [
                                    {**p, "worker_concurrency": 1, "setup_seconds": 1.0, "load_seconds": 1.0, "runs": [],
                                     "by_task": {}, "score_shards": 4, "max_task_peak_rss_mib": 900.0,
                                     "max_task": "ingest.extract"} for p in phases],
                                "speedups": [1.64, 1.48, 1.38], "speedup": 1.48, "speedup_factors": factors,
                                "target_speedup": 1.6, "max_task_peak_rss_mib": 900.0, "limit_mib": 6144})
    assert "1.64 x 0.895 x 1.119 = 1.64x; 1.64 x 0.895 x 1.007 = 1.48x; 1.64 x 0.910 x 0.924 = 1.38x." in md
