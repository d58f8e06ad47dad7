"""Smoke test of the benchmark runner: a quick DAG-parse run writes well-formed JSON and markdown.

Nothing here looks at timings: performance is read from docs/performance.md, never asserted.
"""

from __future__ import annotations

import json
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
