"""The embedded-default demo: sample data for several days, each day's DAG runs in order, then where things are.

Runs the same code path as ``airflow dags test`` (``dag.test()``), in one process so that libraries
are imported once. Usage: ``make demo`` (or ``python scripts/demo.py --days 8 --rows 3000``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BAD_DAY_SCENARIO = "nulls"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--project", default="fraud")
    parser.add_argument("--start", default="2024-01-01")
    parser.add_argument("--days", type=int, default=6)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--bad-day", type=int, default=4, help="1-based day whose batch is broken (0 = none)")
    args = parser.parse_args()

    logging.getLogger().setLevel(logging.WARNING)
    from airflow.dag_processing.dagbag import DagBag
    from mlops_provider.core import state
    from mlops_provider.core.config import load_project

    from include.datagen.landing import write_landing_day

    project = load_project(args.project)
    landing = state.mlops_home() / project.source["path"]
    start = dt.date.fromisoformat(args.start)
    days = [start + dt.timedelta(days=i) for i in range(args.days)]
    print(f"MLOPS_HOME={state.mlops_home()}  project={project.name}  days={days[0]}..{days[-1]}", flush=True)
    for i, day in enumerate(days, 1):
        scenario = BAD_DAY_SCENARIO if i == args.bad_day else "clean"
        write_landing_day(project, landing, day, rows=args.rows, scenario=scenario)
    print(f"generated {len(days)} landing files under {landing} (day {args.bad_day} is '{BAD_DAY_SCENARIO}')",
          flush=True)

    bag = DagBag(dag_folder=str(REPO / "dags"))
    if bag.import_errors:
        print(f"DAG import errors: {bag.import_errors}")
        return 1

    def run(dag_id: str, day: dt.date, conf: dict | None = None) -> str:
        began = time.monotonic()
        logical = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        dag_run = bag.get_dag(dag_id).test(logical_date=logical, run_conf=conf)
        state_ = str(getattr(dag_run.state, "value", dag_run.state))
        print(f"  {dag_id:<24} {state_:<8} {time.monotonic() - began:6.1f}s", flush=True)
        return state_

    failures = []
    for day in days:
        print(f"day {day}", flush=True)
        if run(project.dag_id("ingest"), day, {"day": day.isoformat()}) != "success":
            failures.append(day)
            continue
        run(project.dag_id("features"), day, {"day": day.isoformat()})

    lake = state.mlops_home() / "lake"
    print("\nwhere everything is:")
    print(f"  lake partitions     {lake / project.name / 'records'}")
    print(f"  quarantine          {lake / '_quarantine' / project.name}  (days {', '.join(map(str, failures)) or 'none'})")
    print(f"  validation results  {state.mlops_home() / 'reports' / project.name / 'validation'}")
    print(f"  data docs           {state.gx_dir() / 'gx' / 'uncommitted' / 'data_docs' / 'local_site' / 'index.html'}")
    print(f"  feature store       {state.feast_dir() / project.name}")
    print(f"  features            {lake / project.name / 'features'}")
    print(f"  emails (outbox)     {state.outbox_dir()}")
    expected = {days[args.bad_day - 1]} if args.bad_day else set()
    return 0 if set(failures) == expected else 1


if __name__ == "__main__":
    os.environ.setdefault("FEAST_USAGE", "False")
    sys.exit(main())
