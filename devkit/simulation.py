"""Simulate the pipeline day by day on the embedded default, exactly as the scheduler would chain it.

Each simulated day lands a batch (with its scenario), then runs the DAGs the scheduler would run for
it, in order, with ``dag.test()`` in this one process (libraries import once, so a day costs seconds):

    <project>__ingest -> (validated) <project>__features -> (features) <project>__score
    -> (predictions) <project>__monitor -> (drift, unless on cooldown) <project>__train
    nightly (from ``first_train_day`` on): <project>__train -> (model) <project>__score

The demo (``scripts/demo.py``) and the end-to-end tests (``tests/e2e``) share this driver.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# 1-based day -> scenario of the default timeline; every other day is clean.
DEFAULT_SCENARIOS = {4: "nulls", 12: "covariate_drift", 13: "concept_drift"}
DEFAULT_FIRST_TRAIN_DAY = 10


@dataclass
class DagResult:
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


class Simulation:
    """Runs a project's DAGs for simulated days against one MLOPS_HOME; records every run."""

    def __init__(self, project_name: str = "fraud", *, start: dt.date = dt.date(2024, 1, 1), rows: int = 2000,
                 dags_folder: str | Path | None = None, echo: Callable[[str], None] | None = None):
        from airflow.dag_processing.dagbag import DagBag
        from mlops_provider.config import paths
        from mlops_provider.config.project import load_project

        self.project = load_project(project_name)
        self.start = start
        self.rows = rows
        self.echo = echo or (lambda line: None)
        self.landing = paths.mlops_home() / self.project.source["path"]
        self.bag = DagBag(dag_folder=str(dags_folder or paths.repo_root() / "dags"))
        if self.bag.import_errors:
            raise RuntimeError(f"DAG import errors: {self.bag.import_errors}")
        self.results: list[DagResult] = []
        self._run_counter: dict[tuple[str, dt.date], int] = {}
        # dag.test() writes a run's conf into the in-memory DAG's params, so a later run of the same DAG
        # object would inherit it; every run therefore passes all params, from these pristine defaults.
        self._defaults = {dag_id: dag.params.dump() for dag_id, dag in self.bag.dags.items()}

    def day(self, number: int) -> dt.date:
        """The date of 1-based simulated day ``number``."""
        return self.start + dt.timedelta(days=number - 1)

    # -- data --------------------------------------------------------------------------------------
    def land(self, number: int, scenario: str = "clean") -> Path:
        from devkit.datagen.landing import write_landing_day

        return write_landing_day(self.project, self.landing, self.day(number), rows=self.rows, scenario=scenario)

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
        logical = _logical_date_of(result.run_id)
        return self._test(dag, result.day, logical, result.conf)

    def _test(self, dag: Any, day: dt.date, logical: dt.datetime, conf: dict[str, Any]) -> DagResult:
        began = time.monotonic()
        dag_run = dag.test(logical_date=logical, run_conf=conf)
        state = str(getattr(dag_run.state, "value", dag_run.state))
        tasks, returns = _task_outcomes(dag.dag_id, dag_run.run_id)
        result = DagResult(dag.dag_id, day, state, time.monotonic() - began, dag_run.run_id, tasks, returns, conf)
        self.results.append(result)
        self.echo(f"  {dag.dag_id:<22} {state:<8} {result.seconds:6.1f}s  {describe(result)}")
        return result

    # -- a day as the scheduler chains it ----------------------------------------------------------
    def simulate_day(self, number: int, scenario: str = "clean", *, nightly_train: bool = False) -> list[DagResult]:
        """Land day ``number`` and run every DAG its data (and the night after it) triggers."""
        day = self.day(number)
        self.echo(f"day {number:>2} {day} ({scenario})")
        self.land(number, scenario)
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
    """One line about what a run did, for the demo's progress output."""
    r = result.returns
    if "validate" in r and isinstance(r["validate"], dict):
        return f"{r['validate'].get('rows')} rows validated"
    if result.dag_id.endswith("__ingest") and result.state != "success":
        return "batch QUARANTINED (validation failed)"
    if "materialize" in r:
        return f"{r['materialize'].get('rows_written')} entity rows online, freshness ok"
    if "train" in r and isinstance(r["train"], dict):
        t, p = r["train"], r.get("promote") or {}
        verdict = "PROMOTED to champion" if p.get("promoted") else "refused"
        return (f"v{t.get('version')} ({t.get('trigger')}): pr_auc {_num(t['metrics'].get('pr_auc'))} "
                f"-> {verdict}: {p.get('reason', '')[:90]}")
    if result.dag_id.endswith("__train"):
        return "skipped: not enough labelled data yet" if result.tasks.get("train") == "skipped" else ""
    if "score" in r and isinstance(r["score"], dict):
        s = r["score"]
        shadow = f", shadow v{s['challenger_version']} agrees {s['agreement_rate']:.1%}" if s.get(
            "challenger_version") else ""
        return f"{s['rows']} scored by champion v{s['champion_version']}, {s['alerts']} fraud alerts{shadow}"
    if "monitor" in r and isinstance(r["monitor"], dict):
        m = r["monitor"]
        alert = (m.get("alert") or {})
        sent = "email sent" if alert.get("sent") else ("email already sent" if alert.get("duplicate") else "")
        extra = f" [{sent}]" if sent else ""
        auc = f", labelled roc_auc {_num(m.get('roc_auc'))}" if m.get("roc_auc") is not None else ""
        return f"verdict {m['kind']} ({m['n_drifted']} features drifted{auc}){extra}; {m['retrain']['reason'][:70]}"
    return ""


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _logical_date_of(run_id: str) -> dt.datetime:
    return dt.datetime.fromisoformat(run_id.split("__", 1)[1])


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
