"""Simulate the pipeline day by day on the embedded default, exactly as the scheduler would chain it.

Each simulated day lands a batch (with its scenario), then runs the DAGs the scheduler would run for
it, in order, with ``dag.test()`` in this one process (libraries import once, so a day costs seconds):

    <project>__ingest -> (validated) <project>__features -> (features) <project>__score
    -> (predictions) <project>__monitor -> (drift, unless on cooldown) <project>__train
    nightly (from ``first_train_day`` on): <project>__train -> (model) <project>__score

The demo (``scripts/demo.py``), the benchmarks and the end-to-end tests share this driver; the chaining
itself is :class:`mlops_provider.runner.PipelineRunner`, which runs a user's own landed files the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from mlops_provider.runner import DagResult, PipelineRunner, describe

# 1-based day -> scenario of the default timeline; every other day is clean.
DEFAULT_SCENARIOS = {4: "nulls", 12: "covariate_drift", 13: "concept_drift"}
DEFAULT_FIRST_TRAIN_DAY = 10


class Simulation(PipelineRunner):
    """A :class:`~mlops_provider.runner.PipelineRunner` that lands a synthetic batch before each simulated day."""

    def __init__(self, project_name: str = "fraud", *, start: dt.date = dt.date(2024, 1, 1), rows: int = 2000,
                 dags_folder: str | Path | None = None, echo: Callable[[str], None] | None = None):
        from mlops_provider.config import paths

        super().__init__(project_name, dags_folder=dags_folder, echo=echo)
        self.start = start
        self.rows = rows
        self.landing = paths.mlops_home() / self.project.source["path"]

    def day(self, number: int) -> dt.date:
        """The date of 1-based simulated day ``number``."""
        return self.start + dt.timedelta(days=number - 1)

    def land(self, number: int, scenario: str = "clean") -> Path:
        from devkit.datagen.landing import write_landing_day

        return write_landing_day(self.project, self.landing, self.day(number), rows=self.rows, scenario=scenario)

    def simulate_day(self, number: int, scenario: str = "clean", *, nightly_train: bool = False) -> list[DagResult]:
        """Land day ``number`` and run every DAG its data (and the night after it) triggers."""
        day = self.day(number)
        self.echo(f"day {number:>2} {day} ({scenario})")
        self.land(number, scenario)
        return self.run_day(day, nightly_train=nightly_train)


__all__ = ["DEFAULT_FIRST_TRAIN_DAY", "DEFAULT_SCENARIOS", "DagResult", "Simulation", "describe"]
