"""Ingestion and the validation gate: source -> staging -> (GX) -> lake partition, or -> quarantine.

A batch is staged first and published to ``<project>/records`` only after it passes its suite, so a
bad batch never reaches features or training. Publishing replaces the day's partition atomically,
which makes reruns idempotent.

Labels pass the same gate. A label feed's file of arrival day D is staged with D's records, checked
(columns, type, allowed values, arrival time) and published to ``<project>/labels/dt=D`` only when the
whole day passes; a quarantined day publishes no labels. Labels that come inside their records
(``label.from: record``) are taken out of the published records, held back by event day and published
into the labels partition of their arrival day (event day + ``label.delay_days``) by that day's gate --
never earlier -- so a training set as of D never holds a label of an event after D - delay.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import TYPE_CHECKING, Any

from mlops_provider.config.project import ProjectConfig
from mlops_provider.domain.layout import (  # noqa: F401 (re-exported)
    LABEL_TIMESTAMP,
    as_date,
    held_labels_table,
    labels_table,
    quarantine_dir,
    records_table,
    safe_run_id,
    staging_labels_table,
    staging_table,
)
from mlops_provider.domain.shards import row_group_rows
from mlops_provider.exceptions import DataValidationError, SourceError
from mlops_provider.io.lake import Lake
from mlops_provider.io.sources import OversizedFileError, ReadSpec, SourceMismatchError, UnreadableBatchError

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)


def _quarantine_unreadable(project: ProjectConfig, lake: Lake, day: dt.date, run_id: str,
                           exc: UnreadableBatchError) -> DataValidationError:
    target = quarantine_dir(project, day, run_id)
    lake.delete_dir(target)  # a retry of the same run replaces its previous try's quarantine
    report: dict[str, Any] = {"success": False, "failed": [str(exc)], "source": exc.name, "size": exc.size}
    if isinstance(exc, OversizedFileError):
        # Refused unread: the quarantine records where the file is and how big, not a copy of it.
        report.update(limit=exc.limit, raw_kept="none; the source keeps the whole file")
        where = lake.write_bytes(f"{target}/validation.json", json.dumps(report, indent=2).encode())
        kept = f"Its path and size are recorded at {where}"
    else:
        where = lake.write_bytes(f"{target}/raw-{exc.name.rsplit('/', 1)[-1]}", exc.raw)
        if exc.size is not None and exc.size > len(exc.raw):
            report["raw_kept"] = f"first {len(exc.raw)} of {exc.size} bytes; the source keeps the whole file"
        lake.write_bytes(f"{target}/validation.json", json.dumps(report, indent=2).encode())
        kept = f"Raw file kept at {where}"
    lake.delete(staging_table(project), day)
    lake.delete(staging_labels_table(project), day)
    return DataValidationError(
        f"{project.name} {day}: batch quarantined: {exc}. {kept}",
        failed=[str(exc)], result_path=where, quarantine_path=where,
    )


def stage_day(project: ProjectConfig, lake: Lake, source: Any, day: dt.date | str, *, run_id: str) -> dict[str, Any]:
    """Extract the day's records (and the label feed's file of that arrival day) into staging; return a summary."""
    day = as_date(day)
    spec = ReadSpec.from_project(project)
    lake.delete(staging_labels_table(project), day)  # never publish a previous run's labels with this run's records
    try:
        records, names = source.read_records(day, day, spec)
        if records is None:
            detail, retryable = source.explain_missing(day, spec)
            if not retryable:
                raise SourceMismatchError(f"{project.name} {day}: no {source.kind} file fits source.pattern: {detail}")
            raise SourceError(f"{project.name} {day}: nothing has landed for this interval in the {source.kind} "
                              f"source: {detail}; retries will look again")
        labels, label_names = source.read_labels(day, day, spec)
    except UnreadableBatchError as exc:
        raise _quarantine_unreadable(project, lake, day, run_id, exc) from exc
    staged = lake.write(staging_table(project), day, records)
    summary: dict[str, Any] = {"day": day.isoformat(), "rows": records.num_rows, "staged": staged, "sources": names}
    if labels is not None:
        summary["labels"] = {"rows": labels.num_rows, "staged": lake.write(staging_labels_table(project), day, labels),
                             "sources": label_names}
    log.info("%s %s: staged %d records from %s%s", project.name, day, records.num_rows, ", ".join(names),
             f" and {labels.num_rows} labels from {', '.join(label_names)}" if labels is not None else "")
    return summary


def _held_labels(project: ProjectConfig, records: pa.Table) -> pa.Table:
    """The labels inside a day's validated records, stamped with when they become known (event + delay)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rid, label, ts = project.record_id, project.label_column, project.event_timestamp
    known = records.column(ts).cast(pa.timestamp("us"))
    known = pc.add(known, pa.scalar(dt.timedelta(days=project.label_delay_days), pa.duration("us")))
    held = pa.table({rid: records.column(rid), label: records.column(label), LABEL_TIMESTAMP: known})
    return held.filter(pc.is_valid(held.column(label)))  # a record without its label (nullable) teaches nothing


def _feed_labels(project: ProjectConfig, staged: pa.Table) -> pa.Table:
    import pyarrow.compute as pc

    labels = staged.select([project.record_id, project.label_column, LABEL_TIMESTAMP])
    return labels.filter(pc.is_valid(labels.column(project.label_column)))


def _publish(project: ProjectConfig, lake: Lake, day: dt.date, records: pa.Table,
             staged_labels: pa.Table | None) -> tuple[pa.Table, dict[str, Any]]:
    """Publish the labels the day's gate releases; return the records to publish (without an in-record label)."""
    published: dict[str, Any] = {}
    if not project.labels_in_record:
        if staged_labels is not None:
            labels = _feed_labels(project, staged_labels)
            published[day.isoformat()] = {"rows": labels.num_rows, "partition": lake.write(labels_table(project), day, labels)}
        return records, published
    delay = dt.timedelta(days=project.label_delay_days)
    held = _held_labels(project, records)
    lake.write(held_labels_table(project), day, held)
    # The labels that become known today: those of the records of day - delay (held when that day passed).
    if lake.exists(held_labels_table(project), day - delay):
        arrived = held if not delay else lake.read_arrow(held_labels_table(project), day - delay)
        published[day.isoformat()] = {"rows": arrived.num_rows, "partition": lake.write(labels_table(project), day, arrived)}
    # A day ingested after its arrival day (a backfill out of order, a late rerun): its arrival day's gate
    # found nothing to release, so its labels go to the arrival day's partition now.
    if delay and lake.exists(records_table(project), day + delay):
        arrival = day + delay
        published[arrival.isoformat()] = {"rows": held.num_rows, "partition": lake.write(labels_table(project), arrival, held)}
    return records.drop_columns([project.label_column]), published


def gate_day(project: ProjectConfig, lake: Lake, reports: Lake, day: dt.date | str, *, run_id: str) -> dict[str, Any]:
    """Validate the staged batch (and staged labels); publish them, or quarantine them and raise DataValidationError."""
    from mlops_provider.io.validation import check_labels, validate_frame

    day = as_date(day)
    if not lake.exists(staging_table(project), day):
        raise SourceError(f"{project.name} {day}: no staged batch at {lake.partition_path(staging_table(project), day)};"
                          " run the ingest task first")
    table = lake.read_arrow(staging_table(project), day)
    staged_labels = (lake.read_arrow(staging_labels_table(project), day)
                     if lake.exists(staging_labels_table(project), day) else None)
    start = dt.datetime.combine(day, dt.time())
    end = start + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
    outcome = validate_frame(project, table.to_pandas(), interval_start=start, interval_end=end, run_name=run_id,
                             reports=reports)
    label_failures = check_labels(project, staged_labels.to_pandas(), interval_end=end) if staged_labels is not None else []
    success = outcome.success and not label_failures
    failed = outcome.failed + label_failures
    result = outcome.result
    if staged_labels is not None:
        result = {**result, "success": success,
                  "labels": {"rows": staged_labels.num_rows, "success": not label_failures, "failed": label_failures}}
    result_uri = reports.write_bytes(
        f"{project.name}/validation/dt={day.isoformat()}/{safe_run_id(run_id)}.json",
        json.dumps(result, indent=2, default=str).encode(),
    )
    summary: dict[str, Any] = {
        "day": day.isoformat(), "success": success, "rows": table.num_rows,
        "evaluated": outcome.statistics.get("evaluated_expectations"),
        "failed": failed, "result": result_uri, "data_docs": outcome.data_docs_url,
    }
    if outcome.errors:
        summary["check_errors"] = outcome.errors
    if success:
        records, published = _publish(project, lake, day, table, staged_labels)
        # Row groups of an eighth of a shard: a large day splits into shards of about runs.shard_rows.
        summary["partition"] = lake.write(records_table(project), day, records,
                                          row_group_rows=row_group_rows(int(project.runs["shard_rows"])))
        if published:
            summary["labels"] = published
        lake.delete(staging_table(project), day)
        lake.delete(staging_labels_table(project), day)
        log.info("%s %s: %d rows passed %s expectations -> %s%s", project.name, day, table.num_rows,
                 summary["evaluated"], summary["partition"],
                 "".join(f"; {p['rows']} labels -> {p['partition']}" for p in published.values()))
        return summary

    _quarantine(project, lake, day, run_id, table=table, staged_labels=staged_labels, outcome=outcome,
                label_failures=label_failures, summary=summary, result=result)


def _quarantine(project: ProjectConfig, lake: Lake, day: dt.date, run_id: str, *, table: Any, staged_labels: Any,
                outcome: Any, label_failures: list[str], summary: dict[str, Any], result: dict[str, Any]) -> None:
    """Move the staged batch (and labels) to the run's quarantine and raise the error that names the likely cause."""
    from mlops_provider.io.validation import likely_cause

    failed, result_uri = summary["failed"], summary["result"]
    target = quarantine_dir(project, day, run_id)
    lake.delete_dir(target)  # a retry of the same run replaces its previous try's quarantine
    where = lake.move_dir(lake.partition_dir(staging_table(project), day)[len(lake.root) + 1:], target)
    if staged_labels is not None:
        lake.move_dir(lake.partition_dir(staging_labels_table(project), day)[len(lake.root) + 1:], f"{target}/labels")
    lake.write_bytes(f"{target}/validation.json", json.dumps(result, indent=2, default=str).encode())
    # The first line names the most likely cause (a wrong delimiter, a BOM, missing columns), then the list.
    cause = likely_cause(project, table.column_names, outcome.failed + label_failures, outcome.errors)
    listing = "\n".join(f"  - {f}" for f in failed)
    if outcome.errors:
        listing += ("\nChecks that could not run (errors of the check, not findings in the data):\n"
                    + "\n".join(f"  - {e}" for e in outcome.errors))
    what = []
    if outcome.failed or (not outcome.success and not outcome.errors):
        what.append(f"{len(outcome.failed)} of {summary['evaluated']} expectations failed")
    what += [f"{len(outcome.errors)} checks could not run"] if outcome.errors else []
    what += [f"{len(label_failures)} label checks failed"] if label_failures else []
    raise DataValidationError(
        f"{project.name} {day}: most likely cause: {cause}. {' and '.join(what)}; "
        f"batch{' and labels' if staged_labels is not None else ''} "
        f"quarantined at {where} and NOT published.\n{listing}\nFull result: {result_uri}"
        + (f"\nData Docs: {outcome.data_docs_url}" if outcome.data_docs_url else ""),
        failed=failed, result_path=result_uri, quarantine_path=where, data_docs_url=outcome.data_docs_url,
    )
