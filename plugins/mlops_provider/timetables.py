"""The ingest DAGs' timetable: Airflow's cron data-interval timetable, with scheduled runs named by their data.

Airflow 3 names a scheduled run by when it may run (``scheduled__<run_after>``): the nightly run that
ingests 2024-01-05 is ``scheduled__2024-01-06T00:00:00+00:00``, the next day, while its logical date and
everything it writes say 2024-01-05. :class:`DataIntervalTimetable` names it by the start of its data
interval instead, ``scheduled__2024-01-05T00:00:00+00:00`` (what Airflow 2 did), so the run list, run
URLs, logs and emails name the day a run processes. Schedules and intervals are unchanged.

It is a custom timetable, so every Airflow process that deserializes the DAG must know it: the
provider's plugin (:class:`mlops_provider.web.plugin.MlopsWebPlugin`, loaded through the package's
``airflow.plugins`` entry point in every process where the provider is installed) registers it.
Manual, asset-triggered and backfill runs keep Airflow's ids (backfills do not ask the timetable).
"""

from __future__ import annotations

from typing import Any

from airflow.timetables.interval import CronDataIntervalTimetable


class DataIntervalTimetable(CronDataIntervalTimetable):
    """``CronDataIntervalTimetable`` whose scheduled runs are ``scheduled__<data interval start>``."""

    def generate_run_id(self, *, run_type: Any, run_after: Any, data_interval: Any, **extra: Any) -> str:
        from airflow.utils.types import DagRunType

        if run_type == DagRunType.SCHEDULED and data_interval is not None:
            return run_type.generate_run_id(suffix=data_interval.start.isoformat())
        return super().generate_run_id(run_type=run_type, run_after=run_after, data_interval=data_interval, **extra)
