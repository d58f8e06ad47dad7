"""Run a project's DAGs over a range of days on the embedded default, chained as the scheduler would.

For each day, oldest first: ``<project>__ingest`` -> (validated) ``__features`` -> (features, once a
champion exists) ``__score`` -> (predictions) ``__monitor`` -> (drift, unless on cooldown) ``__train``;
and, with ``--train nightly`` (the default), the nightly ``__train`` after each day, whose new champion
rescores the day. Every run is ``dag.test()`` in this one process: the same code path as
``airflow dags test``, with libraries imported once, so a day costs seconds, not a process start each.

Usage (after landing your files where the project's ``source`` says)::

    . scripts/env.sh && python -m mlops_provider.runner --project flights --start 2013-01-01 --end 2013-01-31

On the production stack the same range is ``airflow backfill create --dag-id <project>__ingest
--from-date ... --to-date ...``: downstream DAGs follow through their asset events.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class DagResult:
    """One DAG run: its final state, each task's state and return value."""

    dag_id: str
    day: dt.date
    state: str
    seconds: float
    run_id: str
    tasks: dict[str, str] = field(default_factory=dict)
    returns: dict[str, Any] = field(default_factory=dict)
    conf: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.state == "success"


class PipelineRunner:
    """Runs a project's DAGs for given days against the configured MLOPS_HOME; records every run."""

    def __init__(self, project_name: str, *, dags_folder: str | Path | None = None,
                 echo: Callable[[str], None] | None = None):
        from airflow.dag_processing.dagbag import DagBag

        from mlops_provider.config import paths
        from mlops_provider.config.project import load_project

        self.project = load_project(project_name)
        self.echo = echo or (lambda line: None)
        self.bag = DagBag(dag_folder=str(dags_folder or paths.repo_root() / "dags"))
        if self.bag.import_errors:
            raise RuntimeError(f"DAG import errors: {self.bag.import_errors}")
        self.results: list[DagResult] = []
        self._run_counter: dict[tuple[str, dt.date], int] = {}
        # dag.test() writes a run's conf into the in-memory DAG's params, so a later run of the same DAG
        # object would inherit it; every run therefore passes all params, from these pristine defaults.
        self._defaults = {dag_id: dag.params.dump() for dag_id, dag in self.bag.dags.items()}

    # -- runs --------------------------------------------------------------------------------------
    def run(self, stage: str, day: dt.date, conf: dict[str, Any] | None = None) -> DagResult:
        """One ``dag.test()`` run of ``<project>__<stage>`` for ``day`` (``conf`` adds params)."""
        dag_id = self.project.dag_id(stage)
        dag = self.bag.get_dag(dag_id)
        # A distinct logical date per run of the same DAG and day, so reruns are separate DAG runs
        # unless the caller asks for a rerun of the very same run (``rerun``).
        count = self._run_counter.get((dag_id, day), 0)
        self._run_counter[(dag_id, day)] = count + 1
        logical = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) + dt.timedelta(minutes=count)
        return self._test(dag, day, logical, {**self._defaults[dag_id], "day": day.isoformat(), **(conf or {})})

    def rerun(self, result: DagResult) -> DagResult:
        """Run the same DAG run again (same run id): what "Clear" does in the Airflow UI."""
        dag = self.bag.get_dag(result.dag_id)
        logical = dt.datetime.fromisoformat(result.run_id.split("__", 1)[1])
        return self._test(dag, result.day, logical, result.conf)

    def _test(self, dag: Any, day: dt.date, logical: dt.datetime, conf: dict[str, Any]) -> DagResult:
        began = time.monotonic()
        dag_run = dag.test(logical_date=logical, run_conf=conf)
        state = str(getattr(dag_run.state, "value", dag_run.state))
        tasks, returns = _task_outcomes(dag.dag_id, dag_run.run_id)
        result = DagResult(dag.dag_id, day, state, time.monotonic() - began, dag_run.run_id, tasks, returns, conf)
        self.results.append(result)
        self.echo(f"  {dag.dag_id:<26} {state:<8} {result.seconds:6.1f}s  {describe(result)}")
        return result

    # -- a day as the scheduler chains it ----------------------------------------------------------
    def run_day(self, day: dt.date, *, nightly_train: bool = False) -> list[DagResult]:
        """Every DAG the data of ``day`` (and the night after it) triggers, in the scheduler's order."""
        ran = [self.run("ingest", day)]
        if not ran[-1].ok:
            return ran
        ran.append(self.run("features", day))
        if ran[-1].ok and self.has_champion():
            ran += self.score_and_monitor(day)
        if nightly_train:
            ran += self.train(day, trigger="nightly")
        return ran

    def score_and_monitor(self, day: dt.date) -> list[DagResult]:
        ran = [self.run("score", day)]
        if not ran[-1].ok:
            return ran
        ran.append(self.run("monitor", day))
        if ran[-1].tasks.get("request_retrain") == "success":
            ran += self.train(day, trigger="drift")
        return ran

    def train(self, day: dt.date, **params: Any) -> list[DagResult]:
        """A training run for ``day``; a new champion is announced, so scoring of the day reruns."""
        ran = [self.run("train", day, params)]
        if ran[-1].tasks.get("announce_champion") == "success":
            ran += self.score_and_monitor(day)
        return ran

    def has_champion(self) -> bool:
        from mlops_provider.exceptions import ModelNotFoundError
        from mlops_provider.io import model_store

        try:
            return model_store.aliases(model_store.client_for(), self.project.model_name)[model_store.CHAMPION] is not None
        except ModelNotFoundError:
            return False


def describe(result: DagResult) -> str:
    """One line about what a run did, for progress output (generic: records, entities, models)."""
    r = result.returns
    if "validate" in r and isinstance(r["validate"], dict):
        return f"{r['validate'].get('rows')} records validated"
    if result.dag_id.endswith("__ingest") and result.state != "success":
        if result.tasks.get("wait_for_data") == "failed":
            return "nothing landed in the source by the day's deadline (runs.source_wait_hours)"
        return "batch QUARANTINED (validation failed)"
    if "materialize" in r:
        return f"{r['materialize'].get('rows_written')} entity rows online, freshness ok"
    if "train" in r and isinstance(r["train"], dict):
        t, p = r["train"], r.get("promote") or {}
        verdict = "PROMOTED to champion" if p.get("promoted") else "refused"
        primary = p.get("primary_metric") or next(iter(t.get("metrics") or {}), "")
        return (f"v{t.get('version')} ({t.get('trigger')}): {primary} {_num((t.get('metrics') or {}).get(primary))} "
                f"-> {verdict}: {p.get('reason', '')[:90]}")
    if result.dag_id.endswith("__train"):
        return "skipped: not enough labelled data yet" if result.tasks.get("train") == "skipped" else ""
    if "score" in r and isinstance(r["score"], dict):
        s = r["score"]
        shadow = ""
        if s.get("challenger_version") and s.get("agreement_rate") is not None:
            shadow = f", shadow v{s['challenger_version']} agrees {s['agreement_rate']:.1%}"
        elif s.get("challenger_version"):  # a regression: values differ, they do not agree
            shadow = f", shadow v{s['challenger_version']} differs by {_num(s.get('mean_abs_score_diff'))} on average"
        outcome = (f", {s['alerts']} positive" if "alerts" in s else
                   f", {len(s['class_counts'])} classes predicted" if "class_counts" in s else
                   f", mean prediction {_num(s.get('mean_champion_score'))}")
        return f"{s['rows']} records scored by champion v{s['champion_version']}{outcome}{shadow}"
    if "monitor" in r and isinstance(r["monitor"], dict):
        m = r["monitor"]
        alert = (m.get("alert") or {})
        sent = "email sent" if alert.get("sent") else ("email already sent" if alert.get("duplicate") else "")
        extra = f" [{sent}]" if sent else ""
        auc = f", labelled roc_auc {_num(m.get('roc_auc'))}" if m.get("roc_auc") is not None else ""
        return f"verdict {m['kind']} ({m['n_drifted']} features drifted{auc}){extra}; {m['retrain']['reason'][:70]}"
    return ""


def summary_table(results: list[DagResult]) -> str:
    """Per day: the state of each stage that ran (``ok`` / ``FAILED`` / ``-``) and its seconds."""
    stages = ["ingest", "features", "score", "monitor", "train"]
    by_day: dict[dt.date, dict[str, str]] = {}
    for r in results:
        stage = r.dag_id.rsplit("__", 1)[-1]
        cell = "ok" if r.ok else "FAILED"
        by_day.setdefault(r.day, {})[stage] = cell if stage not in by_day.get(r.day, {}) else \
            f"{by_day[r.day][stage]},{cell}"
    lines = [f"{'day':<12}" + "".join(f"{s:<10}" for s in stages)]
    for day in sorted(by_day):
        lines.append(f"{day.isoformat():<12}" + "".join(f"{by_day[day].get(s, '-'):<10}" for s in stages))
    return "\n".join(lines)


def progress_bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _task_outcomes(dag_id: str, run_id: str) -> tuple[dict[str, str], dict[str, Any]]:
    """Each task's final state and return value (XCom) of one DAG run, from the metadata database."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id,
                                                         TaskInstance.run_id == run_id)).all()
        states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in tis}
        rows = session.scalars(XComModel.get_many(run_id=run_id, dag_ids=dag_id, key="return_value")).all()
        returns = {row.task_id: XComModel.deserialize_value(row) for row in rows}
    return states, returns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_provider.runner", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", required=True, help="project name (include/projects/<name>.yaml)")
    parser.add_argument("--start", required=True, type=dt.date.fromisoformat, help="first day, YYYY-MM-DD")
    parser.add_argument("--end", required=True, type=dt.date.fromisoformat, help="last day, YYYY-MM-DD (included)")
    parser.add_argument("--train", choices=["nightly", "end", "never"], default="nightly",
                        help="nightly: train after every day (as the schedule does); end: once after the last "
                             "day; never: only drift-triggered training")
    parser.add_argument("--verbose", action="store_true", help="show every task's log (INFO)")
    args = parser.parse_args(argv)
    if args.end < args.start:
        parser.error(f"--end {args.end} is before --start {args.start}")
    if not args.verbose:
        # Read when Airflow is first imported: task logs below WARNING stay out of the progress output.
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
        logging.getLogger().setLevel(logging.WARNING)
    os.environ.setdefault("FEAST_USAGE", "False")

    began = time.monotonic()
    runner = PipelineRunner(args.project, echo=lambda line: print(line, flush=True))
    days = [args.start + dt.timedelta(days=i) for i in range((args.end - args.start).days + 1)]
    for index, day in enumerate(days, start=1):
        print(f"{progress_bar(index - 1, len(days))}  {day}", flush=True)
        last = index == len(days)
        runner.run_day(day, nightly_train=args.train == "nightly" or (args.train == "end" and last))
    failed = [r for r in runner.results if not r.ok]
    print(f"{progress_bar(len(days), len(days))}  done in {time.monotonic() - began:.0f}s: "
          f"{len(runner.results)} DAG runs, {len(failed)} failed\n")
    print(summary_table(runner.results))
    for r in failed:
        print(f"\nFAILED {r.dag_id} {r.day}: tasks {r.tasks}; see the task logs under "
              f"$AIRFLOW_HOME/logs/dag_id={r.dag_id}/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
