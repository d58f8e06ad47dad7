"""The embedded-default demo: simulated days through every DAG, then where everything is.

Runs the same code path as ``airflow dags test`` (``dag.test()``), in one process so that libraries
are imported once. Usage: ``make demo`` (or ``python scripts/demo.py --days 16 --rows 2000``).
The default timeline has a bad batch (day 4, quarantined), a covariate-drift day (12: alert email and
a drift-triggered retrain) and a concept-drift day (13: performance alert when its labels arrive, day 16).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import time
import warnings
from email import policy
from email.parser import BytesParser
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    from devkit.simulation import DEFAULT_FIRST_TRAIN_DAY, DEFAULT_SCENARIOS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", default="fraud")
    parser.add_argument("--start", default="2024-01-01")
    parser.add_argument("--days", type=int, default=16)
    parser.add_argument("--rows", type=int, default=2000, help="transactions per day")
    parser.add_argument("--first-train-day", type=int, default=DEFAULT_FIRST_TRAIN_DAY,
                        help="nightly training runs from the night of this day on")
    parser.add_argument("--scenario", action="append", default=[], metavar="DAY=NAME",
                        help="override the default timeline, e.g. --scenario 5=covariate_drift (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="show every task's log (INFO)")
    args = parser.parse_args()

    if not args.verbose:
        # Read when Airflow is first imported: task logs below WARNING stay out of the progress output.
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
        logging.getLogger().setLevel(logging.WARNING)
        # Libraries' deprecation notices and MLflow's download bars are not the pipeline's progress.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
    from mlops_provider.config import paths

    from devkit.simulation import Simulation

    scenarios = dict(DEFAULT_SCENARIOS)
    for item in args.scenario:
        number, _, name = item.partition("=")
        scenarios[int(number)] = name
    began = time.monotonic()
    print(f"MLOPS_HOME={paths.mlops_home()}  project={args.project}  {args.days} days from {args.start}, "
          f"{args.rows} rows/day; scenarios {scenarios}; nightly training from day {args.first_train_day}",
          flush=True)
    sim = Simulation(args.project, start=dt.date.fromisoformat(args.start), rows=args.rows,
                     echo=lambda line: print(line, flush=True))
    for number in range(1, args.days + 1):
        sim.simulate_day(number, scenarios.get(number, "clean"), nightly_train=number >= args.first_train_day)

    home = paths.mlops_home()
    project = sim.project
    failed = [r for r in sim.results if r.state != "success"]
    alerts = sorted(paths.outbox_dir().glob("*.eml"))
    print(f"\ndone in {time.monotonic() - began:.0f}s: {len(sim.results)} DAG runs, "
          f"{len(failed)} failed ({', '.join(f'{r.dag_id} {r.day}' for r in failed) or 'none'})")
    print("\nwhere everything is:")
    for label, path in [
        ("lake partitions", home / "lake" / project.name / "records"),
        ("quarantine", home / "lake" / "_quarantine" / project.name),
        ("features (Feast offline)", home / "lake" / project.name / "features"),
        ("feature store (registry, online)", paths.feast_dir() / project.name),
        ("predictions", home / "lake" / project.name / "predictions"),
        ("validation results", home / "reports" / project.name / "validation"),
        ("data docs (one site per run)", paths.gx_dir() / "data_docs" / project.name),
        ("drift reports (HTML)", home / "reports" / project.name / "monitoring"),
        ("MLflow store", home / "mlflow"),
        ("emails (outbox)", paths.outbox_dir()),
    ]:
        print(f"  {label:<34} {path}")
    print(f"\n{len(alerts)} emails in the outbox:")
    for path in alerts:
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        print(f"  {path.name}  {message['Subject']}")
    print(f"\nMLflow UI: mlflow ui --backend-store-uri {paths.mlflow_tracking_uri()}")
    print("Airflow UI: make ui   (the runs above are in its metadata DB; it prints the URL and the admin password)")
    expected_failures = {sim.day(n) for n, name in scenarios.items() if name not in (
        "clean", "covariate_drift", "concept_drift", "label_noise") and n <= args.days}
    unexpected = [r for r in failed if r.day not in expected_failures]
    return 1 if unexpected else 0


if __name__ == "__main__":
    os.environ.setdefault("FEAST_USAGE", "False")
    sys.exit(main())
