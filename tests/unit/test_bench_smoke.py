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
