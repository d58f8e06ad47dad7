"""Wait for a day's data in the project's source, with a deadline, before the ingest DAG extracts it.

Data lands on its own schedule: the nightly run for day D starts as soon as D ends, and an export may
land an hour later. Without a wait the extract fails "nothing has landed", is retried, fails again and
pages on-call for data that is merely not late yet (and a fresh deployment pages for a day nobody fed).

:class:`SourceDataSensor` looks (a listing or a ``LIMIT 1`` query: :meth:`~mlops_provider.io.sources._Source.has_data`)
every ``poke_interval`` in ``reschedule`` mode -- between looks the task frees its worker slot and is
neither failed nor retried, so nobody is emailed -- until:

* the day has landed: the extract runs;
* the **deadline** passed, ``runs.source_wait_hours`` after the end of D (UTC): the task fails at once,
  without retries, naming the source, the expected file (pattern) or query, and what to do. A manual run
  or a backfill of an older day that never landed therefore fails on its first look instead of waiting;
* the run's own wait (``runs.source_wait_hours`` since its first look) ran out while the deadline is
  still ahead (a manual run for a day that is not over): the task is **skipped**, not failed, since the
  data is not late yet; extract and validate are skipped with it and nobody is paged;
* files are there for the day but none fits ``source.pattern`` (a config problem): it fails at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

from mlops_provider.operators.base import ProjectBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Seconds between two looks at the source (reschedule mode: the task leaves its worker slot in between).
POKE_INTERVAL_SECONDS = 300.0


def deadline(day: dt.date, wait_hours: float) -> dt.datetime:
    """When the data of ``day`` is late: ``wait_hours`` after the day ends (UTC)."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC) + dt.timedelta(hours=wait_hours)


class SourceDataSensor(BaseSensorOperator, ProjectBaseOperator):
    """Wait until the project's source has the records of ``day``; fail clearly once they are late.

    :param day: the day (``YYYY-MM-DD``, templated: the ingest DAG passes the day its run extracts).
    :param wait_hours: the deadline, in hours after the end of ``day``; default the project's
        ``runs.source_wait_hours``.
    """

    template_fields: Sequence[str] = ("project_name", "day")
    ui_color = "#eef6e8"

    def __init__(self, *, day: str, wait_hours: float | None = None, poke_interval: float = POKE_INTERVAL_SECONDS,
                 mode: str = "reschedule", **kwargs: Any) -> None:
        # The timeout is only a backstop: poke() decides when to stop, with a message that says why.
        kwargs.setdefault("timeout", dt.timedelta(days=30))
        super().__init__(poke_interval=poke_interval, mode=mode, **kwargs)
        self.day = day
        self.wait_hours = wait_hours

    def poke(self, context: Context) -> bool:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from mlops_provider.domain.layout import as_date
        from mlops_provider.io.sources import ReadSpec, SourceMismatchError
        from mlops_provider.operators.ingest import _source

        day = as_date(self.day)
        project = self.project
        wait = float(project.runs["source_wait_hours"] if self.wait_hours is None else self.wait_hours)
        spec = ReadSpec.from_project(project)
        source = _source(project)
        if source.has_data(day, spec):
            self.log.info("%s %s: the day has landed in the %s source; extracting", project.name, day, source.kind)
            return True
        detail, retryable = source.explain_missing(day, spec)
        if not retryable:
            raise SourceMismatchError(f"{project.name} {day}: no {source.kind} file fits source.pattern: {detail}")
        now = dt.datetime.now(dt.UTC)
        late = deadline(day, wait)
        if now >= late:
            raise AirflowFailException(
                f"{project.name} {day}: nothing has landed in the {source.kind} source by the deadline "
                f"{late:%Y-%m-%d %H:%M} UTC ({wait:g} h after the day ended, runs.source_wait_hours): {detail}. "
                f"Land the day's data there and clear this task (the run goes on from here), or trigger "
                f"{project.dag_id('ingest')} with day={day} once it has landed. Not retried: waiting longer is what "
                "runs.source_wait_hours is for")
        first = context["ti"].get_first_reschedule_date(context) or now
        give_up = min(late, first + dt.timedelta(hours=wait))
        if now >= give_up:
            raise AirflowSkipException(
                f"{project.name} {day}: not in the {source.kind} source after waiting {wait:g} h ({detail}), but the day "
                f"is not late before {late:%Y-%m-%d %H:%M} UTC: skipped, not failed, nobody paged. Trigger "
                f"{project.dag_id('ingest')} with day={day} once it has landed")
        self.log.info("%s %s: not landed yet (%s); looking again in %.0f s, the day is late at %s UTC",
                      project.name, day, detail, self.poke_interval, f"{late:%Y-%m-%d %H:%M}")
        return False
