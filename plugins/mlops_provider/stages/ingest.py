"""Ingestion and the validation gate: source -> staging -> (GX) -> lake partition, or -> quarantine.

A batch is staged first and published to ``<project>/records`` only after it passes its suite, so a
bad batch never reaches features or training. Publishing replaces the day's partition atomically,
which makes reruns idempotent.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from mlops_provider.config.project import ProjectConfig
from mlops_provider.domain.layout import (  # noqa: F401 (re-exported)
    as_date,
    labels_table,
    quarantine_dir,
    records_table,
    safe_run_id,
    staging_table,
)
from mlops_provider.exceptions import DataValidationError, SourceError
from mlops_provider.io.lake import Lake
from mlops_provider.io.sources import UnreadableBatchError

log = logging.getLogger(__name__)


def stage_day(project: ProjectConfig, lake: Lake, source: Any, day: dt.date | str, *, run_id: str) -> dict[str, Any]:
    """Extract the day's records (and the labels that arrived that day) into staging; return a summary."""
    day = as_date(day)
    try:
        records, names = source.read_records(day, day)
    except UnreadableBatchError as exc:
        where = lake.write_bytes(f"{quarantine_dir(project, day, run_id)}/raw-{exc.name.rsplit('/', 1)[-1]}", exc.raw)
        report = {"success": False, "failed": [str(exc)], "source": exc.name}
        lake.write_bytes(f"{quarantine_dir(project, day, run_id)}/validation.json", json.dumps(report, indent=2).encode())
        lake.delete(staging_table(project), day)
        raise DataValidationError(
            f"{project.name} {day}: batch quarantined: {exc}. Raw file kept at {where}",
            failed=[str(exc)], result_path=where, quarantine_path=where,
        ) from exc
    if records is None:
        raise SourceError(
            f"{project.name} {day}: nothing has landed for this interval in the {source.kind} source "
            f"({getattr(source, 'location', source.kind)}); retries will look again"
        )
    staged = lake.write(staging_table(project), day, records)
    summary: dict[str, Any] = {"day": day.isoformat(), "rows": records.num_rows, "staged": staged, "sources": names}

    labels, label_names = source.read_labels(day, day)
    if labels is not None:
        missing = {project.record_id, project.label_column, "label_timestamp"} - set(labels.column_names)
        if missing:
            raise DataValidationError(
                f"{project.name} {day}: labels file lacks columns {sorted(missing)} ({', '.join(label_names)})",
                failed=[f"missing label columns {sorted(missing)}"], result_path=label_names[0], quarantine_path="",
            )
        summary["labels"] = {"rows": labels.num_rows, "uri": lake.write(labels_table(project), day, labels)}
    log.info("%s %s: staged %d records from %s", project.name, day, records.num_rows, ", ".join(names))
    return summary


def gate_day(project: ProjectConfig, lake: Lake, reports: Lake, day: dt.date | str, *, run_id: str) -> dict[str, Any]:
    """Validate the staged batch; publish it to the lake, or quarantine it and raise DataValidationError."""
    from mlops_provider.io.validation import validate_frame

    day = as_date(day)
    if not lake.exists(staging_table(project), day):
        raise SourceError(f"{project.name} {day}: no staged batch at {lake.partition_path(staging_table(project), day)};"
                          " run the ingest task first")
    table = lake.read_arrow(staging_table(project), day)
    start = dt.datetime.combine(day, dt.time())
    end = start + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
    outcome = validate_frame(project, table.to_pandas(), interval_start=start, interval_end=end, run_name=run_id)
    result_uri = reports.write_bytes(
        f"{project.name}/validation/dt={day.isoformat()}/{safe_run_id(run_id)}.json",
        json.dumps(outcome.result, indent=2, default=str).encode(),
    )
    summary: dict[str, Any] = {
        "day": day.isoformat(), "success": outcome.success, "rows": table.num_rows,
        "evaluated": outcome.statistics.get("evaluated_expectations"),
        "failed": outcome.failed, "result": result_uri, "data_docs": outcome.data_docs_url,
    }
    if outcome.success:
        summary["partition"] = lake.write(records_table(project), day, table)
        lake.delete(staging_table(project), day)
        log.info("%s %s: %d rows passed %s expectations -> %s", project.name, day, table.num_rows,
                 summary["evaluated"], summary["partition"])
        return summary

    target = quarantine_dir(project, day, run_id)
    where = lake.move_dir(lake.partition_dir(staging_table(project), day)[len(lake.root) + 1:], target)
    lake.write_bytes(f"{target}/validation.json", json.dumps(outcome.result, indent=2, default=str).encode())
    listing = "\n".join(f"  - {f}" for f in outcome.failed)
    raise DataValidationError(
        f"{project.name} {day}: {len(outcome.failed)} of {summary['evaluated']} expectations failed; batch "
        f"quarantined at {where} and NOT published.\n{listing}\nFull result: {result_uri}"
        + (f"\nData Docs: {outcome.data_docs_url}" if outcome.data_docs_url else ""),
        failed=outcome.failed, result_path=result_uri, quarantine_path=where, data_docs_url=outcome.data_docs_url,
    )
