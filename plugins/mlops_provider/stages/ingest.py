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
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

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
from mlops_provider.domain.shards import row_group_rows, shard_count, staging_dir
from mlops_provider.exceptions import DataValidationError, MlopsError, SourceError
from mlops_provider.io.lake import Lake
from mlops_provider.io.sources import OversizedFileError, ReadSpec, SourceMismatchError, UnreadableBatchError
from mlops_provider.stages import beside

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

#: Schema metadata of a staged batch: the id its extract gave it (a rerun stages a new batch, a new id).
BATCH_ID_KEY = "mlops.batch_id"


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


def stage_day(project: ProjectConfig, lake: Lake, source: Any, day: dt.date | str, *, run_id: str,
              reports: Lake | None = None) -> dict[str, Any]:
    """Extract the day's records (and the label feed's file of that arrival day) into staging; return a summary.

    A batch of more than ``runs.shard_rows`` rows (validated in shards) with ``reports`` given also gets
    its whole-batch expectations checked here, :func:`beside` the staging write, on the table already in
    memory (:func:`_check_whole_batch`): the gate then only merges that result with the shards'.
    """
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
    batch_id = uuid.uuid4().hex
    records = records.replace_schema_metadata({**(records.schema.metadata or {}), BATCH_ID_KEY: batch_id})
    shard_rows = int(project.runs["shard_rows"])

    def stage() -> str:
        # Row groups of an eighth of a shard: a large batch is validated in shards of whole row groups.
        return lake.write(staging_table(project), day, records, row_group_rows=row_group_rows(shard_rows))

    whole = None
    if reports is not None and shard_count(records.num_rows, shard_rows) > 1:
        staged, whole = beside(lambda: _check_whole_batch(project, lake, reports, day, records, batch_id, run_id=run_id),
                               stage, name="whole-batch-checks")
    else:
        staged = stage()
    summary: dict[str, Any] = {"day": day.isoformat(), "rows": records.num_rows, "staged": staged, "sources": names,
                               "batch_id": batch_id}
    if whole is not None:
        summary["whole_batch"] = whole
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


def _publish_labels(project: ProjectConfig, lake: Lake, day: dt.date, label_columns: pa.Table,
                    staged_labels: pa.Table | None) -> dict[str, Any]:
    """Publish the labels the day's gate releases (``label_columns``: the records' id, label and event time)."""
    published: dict[str, Any] = {}
    if not project.labels_in_record:
        if staged_labels is not None:
            labels = _feed_labels(project, staged_labels)
            published[day.isoformat()] = {"rows": labels.num_rows, "partition": lake.write(labels_table(project), day, labels)}
        return published
    delay = dt.timedelta(days=project.label_delay_days)
    held = _held_labels(project, label_columns)
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
    return published


def _published_columns(project: ProjectConfig, columns: list[str]) -> list[str]:
    """The staged columns the records partition keeps (an in-record label is published as labels instead)."""
    return [c for c in columns if not (project.labels_in_record and c == project.label_column)]


def _publish_records(project: ProjectConfig, lake: Lake, day: dt.date, staged: Any, table: pa.Table | None) -> str:
    """Publish the validated staged batch as the day's records partition; return its URI."""
    columns = staged.schema_arrow.names
    kept = _published_columns(project, columns)
    if kept == columns:
        # The staged file is the partition already (stage_day wrote it with these row groups): copied, not
        # re-encoded, in the one task of the gate no shard shares.
        return lake.copy(staging_table(project), records_table(project), day)
    group_rows = row_group_rows(int(project.runs["shard_rows"]))
    # Streamed row group by row group (the gate never holds the whole batch) unless it is loaded already;
    # row groups of an eighth of a shard: a large day splits into shards of about runs.shard_rows.
    records: Any = (table.select(kept) if table is not None
                    else (batch for batch in staged.iter_batches(batch_size=group_rows, columns=kept)))
    return lake.write(records_table(project), day, records, row_group_rows=group_rows,
                      schema=staged.schema_arrow.empty_table().select(kept).schema)


def gate_day(project: ProjectConfig, lake: Lake, reports: Lake, day: dt.date | str, *, run_id: str,
             plan: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate the staged batch (and staged labels); publish them, or quarantine them and raise DataValidationError.

    With ``plan`` (:func:`plan_validation_shards`) the per-value expectations were checked by the shards
    (:func:`validate_shard`): the gate merges their results with those of the expectations that need the
    whole batch (checked by the extract, else here on the columns they name), and publishes the records by
    row groups (never the whole batch at once).
    """

    from mlops_provider.io.validation import check_labels

    day = as_date(day)
    if not lake.exists(staging_table(project), day):
        raise SourceError(f"{project.name} {day}: no staged batch at {lake.partition_path(staging_table(project), day)};"
                          " run the ingest task first")
    staged = lake.open_partition(staging_table(project), day)
    columns, rows = staged.schema_arrow.names, staged.metadata.num_rows
    staged_labels = (lake.read_arrow(staging_labels_table(project), day)
                     if lake.exists(staging_labels_table(project), day) else None)
    start, end = _interval(day)
    table = None
    if plan is None:
        from mlops_provider.io.validation import validate_frame

        table = lake.read_arrow(staging_table(project), day)
        outcome = validate_frame(project, table.to_pandas(), interval_start=start, interval_end=end, run_name=run_id,
                                 reports=reports)
    else:
        outcome = _merged_outcome(project, lake, reports, plan, staged=staged, run_id=run_id)
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
        "day": day.isoformat(), "success": success, "rows": rows,
        "evaluated": outcome.statistics.get("evaluated_expectations"),
        "failed": failed, "result": result_uri, "data_docs": outcome.data_docs_url,
    }
    if plan is not None:
        summary["shards"] = len(plan["shards"])
    if outcome.errors:
        summary["check_errors"] = outcome.errors
    if not success:
        lake.delete_dir(staging_dir(project, VALIDATION_STAGE, day))
        _quarantine(project, lake, day, run_id, columns=columns, staged_labels=staged_labels, outcome=outcome,
                    label_failures=label_failures, summary=summary, result=result)
    label_columns = (table if table is not None else
                     lake.read_arrow(staging_table(project), day,
                                     columns=[project.record_id, project.label_column, project.event_timestamp])
                     if project.labels_in_record else None)
    published = _publish_labels(project, lake, day, label_columns, staged_labels)
    summary["partition"] = _publish_records(project, lake, day, staged, table)
    if published:
        summary["labels"] = published
    lake.delete(staging_table(project), day)
    lake.delete(staging_labels_table(project), day)
    lake.delete_dir(staging_dir(project, VALIDATION_STAGE, day))
    log.info("%s %s: %d rows passed %s expectations -> %s%s", project.name, day, rows, summary["evaluated"],
             summary["partition"], "".join(f"; {p['rows']} labels -> {p['partition']}" for p in published.values()))
    return summary


def _interval(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The day's data interval as the suite's ``interval_start`` / ``interval_end`` parameters (both included)."""
    start = dt.datetime.combine(day, dt.time())
    return start, start + dt.timedelta(days=1) - dt.timedelta(microseconds=1)


# -- a large batch validated in shards --------------------------------------------------------------
VALIDATION_STAGE = "validation"


def plan_validation_shards(project: ProjectConfig, lake: Lake, day: str | dt.date,
                           shard_rows: int) -> dict[str, Any] | None:
    """Split the staged batch into shards of whole row groups of about ``shard_rows`` rows (``None``: one task)."""

    from mlops_provider.domain.shards import new_plan_id, row_group_shards

    day = as_date(day)
    if not lake.exists(staging_table(project), day):
        raise SourceError(f"{project.name} {day}: no staged batch at {lake.partition_path(staging_table(project), day)};"
                          " run the ingest task first")
    meta = lake.open_partition(staging_table(project), day).metadata
    if shard_count(meta.num_rows, shard_rows) == 1:
        log.info("%s %s: %d staged rows <= runs.shard_rows %d: validated in one task", project.name, day,
                 meta.num_rows, shard_rows)
        return None
    shards = row_group_shards([meta.row_group(i).num_rows for i in range(meta.num_row_groups)], shard_rows)
    log.info("%s %s: %d staged rows -> %d validation shard(s) of whole row groups", project.name, day,
             meta.num_rows, len(shards))
    return {"day": day.isoformat(), "plan_id": new_plan_id(), "rows": meta.num_rows, "shards": shards}


def _whole_batch_result_path(project: ProjectConfig, day: dt.date, batch_id: str) -> str:
    return f"{staging_dir(project, VALIDATION_STAGE, day)}/whole-{batch_id}.json"


def _check_whole_batch(project: ProjectConfig, lake: Lake, reports: Lake, day: dt.date, records: pa.Table,
                       batch_id: str, *, run_id: str) -> dict[str, Any] | None:
    """Check the expectations that need the whole batch on ``records`` (in memory) and stage the result.

    Run by the extract beside its staging write: the check's Arrow work (the uniqueness hash) overlaps the
    Parquet encoding, and the gate of a 10M-row batch no longer reads the columns back and checks them
    alone. The result is bound to the batch by ``batch_id`` (the staged file's :data:`BATCH_ID_KEY`), so
    a gate never takes a result of another staging of the day. On any error the gate checks them itself.
    """
    from mlops_provider.io.validation import split_suite

    try:
        _, whole = split_suite(project)
        if not whole:
            return None
        outcome, named = _run_whole_batch(project, reports, day, whole, records.column_names, records.select,
                                          rows=records.num_rows, run_id=run_id)
        lake.write_bytes(_whole_batch_result_path(project, day, batch_id), json.dumps(
            {"batch_id": batch_id, "rows": records.num_rows, "result": outcome.result,
             "data_docs": outcome.data_docs_url}, default=str).encode())
    except Exception:  # noqa: BLE001 (an optimisation only: the gate runs the same checks)
        log.warning("%s %s: the whole-batch expectations could not be checked beside the staging write; the "
                    "gate will check them", project.name, day, exc_info=True)
        return None
    log.info("%s %s: %d whole-batch expectations checked on %s beside the staging write: %s", project.name, day,
             len(whole), ", ".join(named) or "the row count", "passed" if outcome.success else "; ".join(
                 outcome.failed + outcome.errors))
    return {"expectations": len(whole), "success": outcome.success}


def _run_whole_batch(project: ProjectConfig, reports: Lake, day: dt.date, whole: list[dict[str, Any]],
                     columns: list[str], load: Callable[[list[str]], pa.Table], *, rows: int,
                     run_id: str) -> tuple[Any, list[str]]:
    """Run the expectations that need the whole batch on the batch's ``columns`` they name (``load`` reads
    those columns; none is read when they name none, e.g. a row count), publish their Data Docs page;
    return the outcome and the columns read."""
    import pandas as pd
    import pyarrow as pa

    from mlops_provider.io.validation import columns_named, validate_frame

    named = [c for c in columns_named(whole) if c in columns]
    # Text stays in Arrow (string[pyarrow]) instead of one Python object per value: on 2M ids the
    # uniqueness check 4.1 s -> 0.85 s (conversion and duplicated() together), the same verdict.
    frame = (load(named).to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get) if named
             else pd.DataFrame(index=pd.RangeIndex(rows)))
    start, end = _interval(day)
    return validate_frame(project, frame, interval_start=start, interval_end=end, run_name=run_id, reports=reports,
                          expectations=whole), named


def _staged_whole_result(project: ProjectConfig, lake: Lake, day: dt.date, staged: Any) -> dict[str, Any] | None:
    """The whole-batch result the extract staged for this very batch (:func:`_check_whole_batch`), or None."""
    metadata = staged.schema_arrow.metadata or {}
    batch_id = metadata.get(BATCH_ID_KEY.encode(), b"").decode()
    path = _whole_batch_result_path(project, day, batch_id) if batch_id else None
    if path is None or not lake.file_exists(path):
        return None
    stored = json.loads(lake.read_bytes(path))  # named by the batch id: the rows must match too
    return stored if stored.get("rows") == staged.metadata.num_rows else None


def _shard_result_path(project: ProjectConfig, plan: dict[str, Any], index: int) -> str:
    from mlops_provider.domain.shards import staging_dir

    return f"{staging_dir(project, VALIDATION_STAGE, as_date(plan['day']))}/{plan['plan_id']}/{index:05d}.json"


def _shard_run_name(run_id: str, index: int) -> str:
    return f"{run_id}-shard-{index:05d}"


def validate_shard(project: ProjectConfig, lake: Lake, reports: Lake, plan: dict[str, Any], index: int, *,
                   run_id: str) -> dict[str, Any]:
    """Check shard ``index`` of ``plan`` against the expectations a shard checks alone; stage its result.

    Findings do not fail the shard: the gate decides over every shard (and quarantines the whole batch).
    The result (GX's JSON and the shard's Data Docs page) is replaced whole on a retry.
    """

    from mlops_provider.io.validation import split_suite, validate_frame

    day, shard = as_date(plan["day"]), plan["shards"][index]
    source = lake.open_partition(staging_table(project), day)
    frame = source.read_row_groups(shard["row_groups"]).to_pandas()
    per_shard, _ = split_suite(project)
    start, end = _interval(day)
    outcome = validate_frame(project, frame, interval_start=start, interval_end=end,
                             run_name=_shard_run_name(run_id, index), reports=reports, expectations=per_shard)
    lake.write_bytes(_shard_result_path(project, plan, index), json.dumps(
        {"index": index, "rows": len(frame), "result": outcome.result, "data_docs": outcome.data_docs_url},
        default=str).encode())
    level = logging.INFO if outcome.success else logging.WARNING
    log.log(level, "%s %s: validation shard %d of %d (%d rows, %d expectations): %s", project.name, day, index + 1,
            len(plan["shards"]), len(frame), len(per_shard),
            "passed" if outcome.success else "; ".join(outcome.failed + outcome.errors))
    return {"index": index, "rows": len(frame), "success": outcome.success, "failed": outcome.failed,
            "data_docs": outcome.data_docs_url}


def _merged_outcome(project: ProjectConfig, lake: Lake, reports: Lake, plan: dict[str, Any], *, staged: Any,
                    run_id: str) -> Any:
    """The whole batch's verdict: every shard's result merged with the whole-batch expectations' run (the
    extract's, :func:`_check_whole_batch`, when it staged one for this batch; else run here)."""

    from mlops_provider.io.validation import (
        columns_named,
        merge_results,
        outcome_of,
        split_suite,
    )

    day = as_date(plan["day"])
    paths_ = [_shard_result_path(project, plan, s["index"]) for s in plan["shards"]]
    missing = [p for p in paths_ if not lake.file_exists(p)]
    if missing:
        raise MlopsError(f"{project.name} {day}: {len(missing)} validation shard result(s) missing "
                         f"({', '.join(missing[:3])}): clear the failed validate_shard tasks, then this one")
    shards = [json.loads(lake.read_bytes(p)) for p in paths_]
    _, whole = split_suite(project)
    columns, rows = staged.schema_arrow.names, staged.metadata.num_rows
    whole_result, pages = None, [s["data_docs"] for s in shards]
    checked = _staged_whole_result(project, lake, day, staged) if whole else None
    if checked is not None:
        whole_result = checked["result"]
        pages.append(checked["data_docs"])
    elif whole:
        whole_outcome, _ = _run_whole_batch(
            project, reports, day, whole, columns,
            lambda named: lake.read_arrow(staging_table(project), day, columns=named), rows=rows, run_id=run_id)
        whole_result = whole_outcome.result
        pages.append(whole_outcome.data_docs_url)
    merged = merge_results([s["result"] for s in shards], whole_result)
    merged["meta"]["data_docs"] = [p for p in pages if p]
    # The page to open first: the first shard that found something, else the whole-batch run's.
    failing = [s["data_docs"] for s in shards if not s["result"]["success"]]
    page = (failing or ([] if whole_result is None or whole_result["success"] else [pages[-1]]) or pages[::-1])[0]
    log.info("%s %s: %d shard results merged with %d whole-batch expectations on %s (checked %s)", project.name, day,
             len(shards), len(whole), ", ".join(columns_named(whole)) or "the row count",
             "by the extract beside its staging write" if checked is not None else "here")
    return outcome_of(merged, page)


def _quarantine(project: ProjectConfig, lake: Lake, day: dt.date, run_id: str, *, columns: list[str], staged_labels: Any,
                outcome: Any, label_failures: list[str], summary: dict[str, Any], result: dict[str, Any]) -> NoReturn:
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
    cause = likely_cause(project, columns, outcome.failed + label_failures, outcome.errors)
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
