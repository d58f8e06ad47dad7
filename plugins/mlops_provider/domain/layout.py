"""Where each table and file of a project lives in the lake and the report store: one place for every path.

Tables are relative to the lake root and hold daily partitions ``<table>/dt=YYYY-MM-DD/``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops_provider.config.project import ProjectConfig


def as_date(value: str | dt.date | dt.datetime) -> dt.date:
    """The calendar day of a date, a datetime or an ISO string (``2024-01-05`` or ``2024-01-05T...``)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def days(start: str | dt.date, end: str | dt.date) -> list[dt.date]:
    """Every date from ``start`` to ``end``, both included."""
    start, end = as_date(start), as_date(end)
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def staging_table(project: ProjectConfig) -> str:
    """Extracted, not yet validated batches (never read downstream)."""
    return f"_staging/{project.name}/records"


def records_table(project: ProjectConfig) -> str:
    """Validated records, one partition per event day."""
    return f"{project.name}/records"


#: The labels table's columns: the record id and the label (under the project's names) and this one.
LABEL_TIMESTAMP = "label_timestamp"


def labels_table(project: ProjectConfig) -> str:
    """Labels, one partition per arrival day (published only when that day's ingest passed its gate)."""
    return f"{project.name}/labels"


def staging_labels_table(project: ProjectConfig) -> str:
    """The label feed's file of an arrival day, extracted and waiting for the day's gate (never read downstream)."""
    return f"_staging/{project.name}/labels"


def held_labels_table(project: ProjectConfig) -> str:
    """Labels that came inside their records (``label.from: record``), by event day, validated and held back
    until the ingest of their arrival day (event day + ``label.delay_days``) publishes them (never read downstream)."""
    return f"_held/{project.name}/labels"


def entity_table(project: ProjectConfig, entity: str | None = None) -> str:
    """Window aggregates of one entity (default: the project's main entity), a Feast offline source."""
    return f"{project.name}/features/entity/{entity or project.entity_name}"


def record_table(project: ProjectConfig) -> str:
    """Per-record model inputs (a Feast offline source)."""
    return f"{project.name}/features/record"


def predictions_table(project: ProjectConfig) -> str:
    """Champion scores (and shadow scores) with the model inputs, one partition per event day."""
    return f"{project.name}/predictions"


def safe_run_id(run_id: str) -> str:
    """An Airflow run id usable as one path segment: never empty, ``.``, ``..`` or hidden (a leading dot)."""
    segment = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)
    return "_" + segment[1:] if segment.startswith(".") else segment or "_"


def quarantine_dir(project: ProjectConfig, day: dt.date, run_id: str) -> str:
    """Where a batch that failed validation is kept, per day and run."""
    return f"_quarantine/{project.name}/dt={day.isoformat()}/{safe_run_id(run_id)}"
