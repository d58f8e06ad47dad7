"""OpenLineage events of a real DAG run: the ingest DAG under ``dag.test()`` with the file transport.

The OpenLineage provider reads its configuration once per process (and registers its listener when its
plugin loads), so the run happens in a fresh interpreter with ``[openlineage] transport`` set to a
file; the test reads the events it wrote, one JSON document per line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAY = "2024-01-05"
ROWS = 150

RUN = textwrap.dedent(f"""
    import datetime as dt
    from airflow.utils import db
    db.initdb()
    from airflow.dag_processing.dagbag import DagBag
    from mlops_provider.config import paths
    from mlops_provider.config.project import load_project
    from devkit.datagen.landing import write_landing_day

    day = dt.date.fromisoformat("{DAY}")
    write_landing_day(load_project("fraud"), paths.landing_dir() / "fraud", day, rows={ROWS})
    dag = DagBag(dag_folder="{REPO / 'dags' / 'ingest.py'}").dags["fraud__ingest"]
    run = dag.test(logical_date=dt.datetime(2024, 1, 5, tzinfo=dt.UTC), run_conf={{"day": "{DAY}"}})
    print("RUN STATE", run.state)
""")


def test_ingest_reports_source_staging_and_lake_partition_as_openlineage_datasets(tmp_path):
    events_file = tmp_path / "events.jsonl"
    home = tmp_path / "mlops"
    env = {**os.environ, "MLOPS_HOME": str(home), "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
           "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events_file),
                                                         "append": True}),
           "AIRFLOW__OPENLINEAGE__NAMESPACE": "mlops-test", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", RUN], env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert "RUN STATE success" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]

    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    complete = {e["job"]["name"]: e for e in events if e["eventType"] == "COMPLETE"}
    assert {"fraud__ingest.extract", "fraud__ingest.validate"} <= set(complete)
    assert {e["job"]["namespace"] for e in events} == {"mlops-test"}

    lake = home / "lake"
    extract = complete["fraud__ingest.extract"]
    [source] = extract["inputs"]
    assert (source["namespace"], source["name"]) == ("file", str(home / "landing" / "fraud"))
    facet = source["facets"]["mlops_source"]
    assert facet["kind"] == "landing" and facet["read"] == [(home / "landing" / "fraud" / "records" / f"{DAY}.csv").as_uri()]
    [staged] = extract["outputs"]
    assert (staged["namespace"], staged["name"]) == ("file", str(lake / "_staging" / "fraud" / "records"))
    assert staged["outputFacets"]["outputStatistics"]["rowCount"] == ROWS
    assert staged["facets"]["mlops_partition"]["day"] == DAY

    validate = complete["fraud__ingest.validate"]
    assert [(d["namespace"], d["name"]) for d in validate["inputs"]] == [("file", str(lake / "_staging" / "fraud" / "records"))]
    published = {d["name"]: d for d in validate["outputs"]}[str(lake / "fraud" / "records")]
    assert published["outputFacets"]["outputStatistics"]["rowCount"] == ROWS
    assert published["facets"]["mlops_partition"]["uri"] == f"file://{lake}/fraud/records/dt={DAY}/data.parquet"
