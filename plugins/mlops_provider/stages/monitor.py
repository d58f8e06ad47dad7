"""The monitor stage: a day's drift, data quality and (labels permitting) performance vs the champion's reference.

The report is saved as HTML, Evidently JSON and a verdict JSON in the report store and logged to the
MLflow run of the model version that scored the day.

The day's predictions are never read whole (a 10M-row day read at once peaked at 5.6 GiB): the
monitored columns are streamed by row groups into mergeable statistics
(:func:`~mlops_provider.domain.drift.current_statistics`: exact counts and sums, a bottom-k sample of
``monitoring.sample_rows`` rows), so memory is bounded by the sample, the category counts and one
batch. A day larger than ``runs.shard_rows`` can be split into shards of whole row groups
(:func:`plan_monitor_shards`): each shard's statistics are computed by a task of their own
(:func:`monitor_shard`, staged as a small Parquet file in the lake, replaced whole on a retry) and
:func:`run_monitor` merges them; the merge is exact, so the verdict and report are the ones of the day
monitored in one task. Performance reads the predictions of the label window the same way: only ids and
prediction columns, by row groups, joined with the day's labels in Arrow (:func:`labelled_predictions`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_provider.domain import drift, scoring
from mlops_provider.domain.layout import as_date, days, labels_table, predictions_table
from mlops_provider.domain.metrics import as_monitoring_reference
from mlops_provider.domain.shards import new_plan_id, row_group_shards, shard_table, staging_dir
from mlops_provider.exceptions import MlopsError, ModelNotFoundError
from mlops_provider.io import model_store
from mlops_provider.stages import beside
from mlops_provider.stages.training_set import monitored_features

if TYPE_CHECKING:
    import pandas as pd

    from mlops_provider.config.project import ProjectConfig
    from mlops_provider.io.lake import Lake

log = logging.getLogger(__name__)

REPORT_FILES = (("html", "report.html"), ("json", "evidently_snapshot.json"), ("verdict", "verdict.json"))


# -- the labels that arrived on the day, joined with the predictions they label ------------------------------
_ROW, _LABEL_ROW = "__mlops_prediction_row", "__mlops_label_row"
LABEL_JOIN_ROWS = 2_000_000  # predictions joined with the labels at a time (at least as many as the labels)


def _label_keys(labels: Any, rid: str, key_type: Any) -> Any:
    """The labels' record ids as the strings they are matched on (the ``str`` of each id), as ``key_type``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    keys = labels.column(rid)
    if pa.types.is_string(keys.type) or pa.types.is_large_string(keys.type):
        keys = pc.fill_null(keys, "None")  # what ``str`` makes of a missing id
    else:
        keys = pa.chunked_array([pa.array(keys.to_pandas().astype(str).to_numpy(dtype=object), type=pa.string())])
    return keys.cast(key_type)


def _window_schema(project: ProjectConfig, lake: Lake, sources: dict[dt.date, Any]) -> Any:
    """What performance reads of the window's predictions: the record id (as stored when it is a string, else
    as its string), the task's prediction columns (a multiclass model's class and every probability column any
    day has, in order of appearance; a day without one reads as missing) and the row's position."""
    import pyarrow as pa

    rid, fields = project.record_id, {}
    for day, source in sources.items():
        schema = source.schema_arrow
        wanted = ([scoring.PREDICTION, *scoring.proba_columns(schema.names)] if project.task == "multiclass"
                  else [scoring.SCORE])
        for name in [rid, *wanted]:
            if name not in schema.names:
                raise MlopsError(f"{project.name} {day}: predictions partition "
                                 f"{lake.uri(lake.partition_path(predictions_table(project), day))} has no "
                                 f"column '{name}' (columns: {', '.join(schema.names)})")
            fields.setdefault(name, schema.field(name).type)
    key = fields[rid] if pa.types.is_string(fields[rid]) or pa.types.is_large_string(fields[rid]) else pa.string()
    return pa.schema([(rid, key), *((n, t) for n, t in fields.items() if n != rid), (_ROW, pa.int64())])


def _key_bounds(keys: Any) -> tuple[str, str] | None:
    """The smallest and largest label id (string keys), to skip row groups whose ids lie outside (``None``: no pruning)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_string(keys.type) or pa.types.is_large_string(keys.type)) or not len(keys):
        return None
    low_high = pc.min_max(keys)
    low, high = low_high["min"].as_py(), low_high["max"].as_py()
    return None if low is None or high is None else (low, high)


def _row_groups_in(source: Any, column: str, bounds: tuple[str, str] | None) -> list[int]:
    """The row groups of ``source`` that may hold a ``column`` value within ``bounds`` (by their Parquet
    min/max statistics; a row group without them is kept). A day's predictions whose ids all sort outside
    the arriving labels' (today's records, when labels come days later) are not read at all."""
    groups = list(range(source.num_row_groups))
    names = source.schema_arrow.names
    if bounds is None or column not in names:
        return groups
    index, (low, high) = names.index(column), bounds
    kept = []
    for i in groups:
        stats = source.metadata.row_group(i).column(index).statistics
        if stats is None or not stats.has_min_max or not isinstance(stats.min, str):
            kept.append(i)
        elif not (stats.max < low or stats.min > high):
            kept.append(i)
    return kept


def _window_batches(sources: dict[dt.date, Any], schema: Any, bounds: tuple[str, str] | None, batch_rows: int,
                    counts: dict[str, int]) -> Any:
    """The label window's predictions as record batches of ``schema`` (a day without a column reads it as
    missing; ``_ROW`` numbers the rows in day and row order), row groups outside ``bounds`` skipped; counts
    the rows read and skipped in ``counts``."""
    import numpy as np
    import pyarrow as pa

    rid, columns = schema.names[0], schema.names[:-1]
    for source in sources.values():
        names = set(source.schema_arrow.names)
        groups = _row_groups_in(source, rid, bounds)
        counts["skipped"] += sum(source.metadata.row_group(i).num_rows for i in range(source.num_row_groups)
                                 if i not in groups)
        for batch in source.iter_batches(batch_size=batch_rows, row_groups=groups,
                                         columns=[c for c in columns if c in names]):
            n, start = batch.num_rows, counts["read"]
            counts["read"] += n
            yield pa.RecordBatch.from_arrays(
                [batch.column(f.name).cast(f.type) if f.name in names else pa.nulls(n, f.type)
                 for f in schema if f.name != _ROW] + [pa.array(np.arange(start, start + n, dtype=np.int64))],
                schema=schema)


def _join_in_chunks(batches: Any, right: Any, schema: Any, rid: str, chunk_rows: int) -> list[Any]:
    """Inner joins of ``chunk_rows`` predictions at a time with the labels (``right``): the labels' hash table is
    built once per chunk (chunks at least as large as the labels keep that below the probing) and memory holds
    one chunk, never the window's predictions."""
    import pyarrow as pa

    chunk, matched = [], []
    for batch in batches:
        chunk.append(batch)
        if sum(b.num_rows for b in chunk) >= chunk_rows:
            matched.append(pa.Table.from_batches(chunk, schema=schema).join(right, rid, join_type="inner",
                                                                             use_threads=False))
            chunk = []
    if chunk:
        matched.append(pa.Table.from_batches(chunk, schema=schema).join(right, rid, join_type="inner",
                                                                         use_threads=False))
    return matched


def labelled_predictions(project: ProjectConfig, lake: Lake, day: dt.date) -> pd.DataFrame | None:
    """Predictions of ``[day - label.delay_days - 1, day]`` joined with the labels that arrived on ``day``
    (``None``: none arrived, or none labels a prediction of those days).

    The rows of an inner join of the predictions (in day and row order) with the labels on the record id (the
    labels' ids as strings): a prediction with two labels is two rows, in the labels' order. Only the id (as
    stored) and the task's prediction columns are read, by row groups, and joined with the labels in Arrow
    (a hash join on the labels, ``LABEL_JOIN_ROWS`` predictions at a time): memory holds the labels, one
    chunk and the labelled rows, never the window's predictions (read whole into pandas, a large day's ids
    as Python strings took gigabytes and most of the monitor task's time). Row groups whose id statistics lie
    outside the labels' smallest and largest id are skipped unread. The ids stay Arrow strings in the frame
    (performance reads the label and the prediction columns only).
    """
    import time

    import numpy as np
    import pandas as pd
    import pyarrow as pa

    rid, label = project.record_id, project.label_column
    if not lake.exists(labels_table(project), day):
        return None
    began = time.perf_counter()
    table, first = predictions_table(project), day - dt.timedelta(days=project.label_delay_days + 1)
    sources = {d: lake.open_partition(table, d)
               for d in days(first, day) if lake.exists(table, d)}
    if not sources:
        return None
    schema = _window_schema(project, lake, sources)
    columns = schema.names[:-1]
    labels = lake.read_arrow(labels_table(project), day, columns=[rid, label])
    right = pa.table({rid: _label_keys(labels, rid, schema.field(rid).type), label: labels.column(label),
                      _LABEL_ROW: np.arange(labels.num_rows, dtype=np.int64)})
    batch_rows = max(1, int(os.environ.get("MLOPS_MONITOR_BATCH_ROWS", MONITOR_BATCH_ROWS)))
    counts = {"read": 0, "skipped": 0}
    batches = _window_batches(sources, schema, _key_bounds(right.column(rid)), batch_rows, counts)
    matched = _join_in_chunks(batches, right, schema, rid, max(LABEL_JOIN_ROWS, labels.num_rows))
    if not matched:
        return None
    joined = pa.concat_tables(matched)
    joined = joined.sort_by([(_ROW, "ascending"), (_LABEL_ROW, "ascending")]).select([*columns, label])
    log.info("%s %s: %d labels arrived; %d of %d predictions of %s..%s labelled (%d more skipped unread: their row "
             "groups' ids are outside the labels' range) (%.1f s)", project.name, day, labels.num_rows,
             joined.num_rows, counts["read"], first, day, counts["skipped"], time.perf_counter() - began)
    if not joined.num_rows:
        return None
    frame = joined.drop_columns([rid]).to_pandas()
    frame.insert(0, rid, pd.arrays.ArrowExtensionArray(joined.column(rid)))
    return frame


# Evidently's standalone HTML embeds the report data as one JSON literal per line inside a <script>:
# ``    var <dashboard id> = {...};`` and ``    var additional_graphs_<id> = {...};``.
_DATA_LINE = re.compile(r"^(\s*var [A-Za-z_$][\w$]* = )([\[{].*)(;\s*)$", re.M)


def script_safe_html(html: str) -> str:
    """Evidently's report with every ``<`` of its embedded data written ``\\u003c``.

    The data are JSON literals inside a ``<script>``; a category value such as ``</script><img ...>``
    would end the script and inject markup. ``\\u003c`` is the same character to JSON and JavaScript
    (the report reads back identically) but never starts a tag. Only the two data lines, which come
    before the embedded library, are rewritten.
    """
    return _DATA_LINE.sub(lambda m: m[1] + m[2].replace("<", "\\u003c") + m[3], html, count=2)


def save_report(result: drift.MonitoringResult, reports: Lake, path_prefix: str) -> dict[str, str]:
    """Write the report as ``<prefix>.html``, the Evidently snapshot as ``<prefix>.json`` (loadable with
    ``evidently.core.report.Snapshot.load``) and the verdict as ``<prefix>.verdict.json``; return URIs."""
    prefix = path_prefix.strip("/")
    html = script_safe_html(result.snapshot.get_html_str(as_iframe=False)).encode("utf-8")
    uris = {
        "html": reports.write_bytes(f"{prefix}.html", html),
        "json": reports.write_bytes(f"{prefix}.json", result.snapshot.dumps().encode("utf-8")),
        "verdict": reports.write_bytes(
            f"{prefix}.verdict.json", json.dumps(result.verdict, indent=2, sort_keys=True).encode("utf-8")
        ),
    }
    log.info("saved monitoring report %s (%.1f MB)", uris["html"], len(html) / 1e6)
    return uris


def _champion_reference(client: Any, model_name: str, version: str) -> tuple[Any, pd.DataFrame]:
    """The model version that scored the day and its training reference (what monitoring compares with)."""
    import pandas as pd

    mv = client.get_model_version(model_name, version)
    with tempfile.TemporaryDirectory(prefix="mlops-monitor-") as tmp:
        try:
            local = client.download_artifacts(mv.run_id, model_store.REFERENCE_ARTIFACT, tmp)
        except Exception as exc:
            raise ModelNotFoundError(f"{model_name} v{version} (run {mv.run_id}) has no training reference "
                                     f"'{model_store.REFERENCE_ARTIFACT}' to monitor against: {exc}") from exc
        return mv, pd.read_parquet(local)


def _log_to_mlflow(client: Any, run_id: str, reports: Lake, uris: dict[str, str], day: dt.date) -> None:
    with tempfile.TemporaryDirectory(prefix="mlops-report-") as tmp:
        for kind, name in REPORT_FILES:
            path = Path(tmp) / name
            path.write_bytes(reports.read_bytes(uris[kind].split(reports.root, 1)[1].lstrip("/")))
            client.log_artifact(run_id, str(path), f"monitoring/dt={day.isoformat()}")


# -- the day's statistics: streamed by row groups, in one task or in shards --------------------------------
STAGE = "monitoring"
MONITOR_BATCH_ROWS = 200_000  # ``MLOPS_MONITOR_BATCH_ROWS`` overrides
STATISTICS_KEY = b"mlops.monitoring.statistics"


def _predictions_file(project: ProjectConfig, lake: Lake, day: dt.date) -> Any:
    """The day's predictions partition as a ``ParquetFile``; a clear error when it is missing."""

    table = predictions_table(project)
    if not lake.exists(table, day):
        raise MlopsError(f"{project.name} {day}: no predictions partition "
                         f"{lake.uri(lake.partition_path(table, day))}; run the score DAG first")
    return lake.open_partition(table, day)


def _statistics(project: ProjectConfig, lake: Lake, day: dt.date, row_groups: list[int] | None = None,
                start_row: int = 0) -> dict[str, Any]:
    """The statistics of the day's monitored columns (of the row groups of one shard), batch by batch."""
    import pyarrow as pa

    source = _predictions_file(project, lake, day)
    names = source.schema_arrow.names
    wanted = [*monitored_features(project), scoring.output_column(project.task)]
    read = [c for c in dict.fromkeys([*wanted, project.record_id]) if c in names]
    groups = list(range(source.metadata.num_row_groups)) if row_groups is None else list(row_groups)
    batch_rows = max(1, int(os.environ.get("MLOPS_MONITOR_BATCH_ROWS", MONITOR_BATCH_ROWS)))
    merged, row = None, start_row
    for batch in source.iter_batches(batch_size=batch_rows, columns=read, row_groups=groups):
        if project.record_id in read and not pa.types.is_string(batch.schema.field(project.record_id).type):
            # Ids as strings whatever their type and a batch's nulls (the sample key hashes them).
            i = batch.schema.get_field_index(project.record_id)
            batch = batch.set_column(i, project.record_id, batch.column(i).cast(pa.string()))
        part = drift.current_statistics(project, batch.to_pandas(), columns=wanted, seed=day.toordinal(),
                                        start_row=row)
        row += batch.num_rows
        merged = part if merged is None else drift.merge_statistics([merged, part])
    if merged is None:  # no rows: the monitoring run names the empty day
        empty = source.schema_arrow.empty_table().select(read).to_pandas()
        merged = drift.current_statistics(project, empty, columns=wanted, seed=day.toordinal(), start_row=row)
    return merged


def plan_monitor_shards(project: ProjectConfig, *, lake: Lake, day: str | dt.date,
                        shard_rows: int) -> dict[str, Any] | None:
    """Split the day's predictions into shards of whole row groups of about ``shard_rows`` rows.

    ``None`` when the day is monitored in one task: it has at most ``shard_rows`` predictions, or no
    predictions partition (the monitor task names it). The plan is JSON (an XCom): ``{"day", "plan_id",
    "shards"}``, each shard ``{"index", "row_groups", "start_row", "rows"}``.
    """
    day = as_date(day)
    if not lake.exists(predictions_table(project), day):
        log.info("%s %s: no predictions partition: left to the monitor task, which names it", project.name, day)
        return None
    meta = _predictions_file(project, lake, day).metadata
    if meta.num_rows <= shard_rows:
        log.info("%s %s: %d predictions <= runs.shard_rows %d: monitored in one task", project.name, day,
                 meta.num_rows, shard_rows)
        return None
    shards = row_group_shards([meta.row_group(i).num_rows for i in range(meta.num_row_groups)], shard_rows)
    log.info("%s %s: %d predictions in %d row groups -> %d monitoring shard(s) of about %d rows", project.name,
             day, meta.num_rows, meta.num_row_groups, len(shards), shard_rows)
    return {"day": day.isoformat(), "plan_id": new_plan_id(), "shards": shards}


def monitor_shard(project: ProjectConfig, *, lake: Lake, plan: dict[str, Any], index: int) -> dict[str, Any]:
    """Stage the statistics of shard ``index`` of ``plan`` in the lake (replaced whole on a retry).

    One Parquet file: the shard's sample, with the JSON statistics in its schema metadata.
    """
    import pyarrow as pa

    day, shard = as_date(plan["day"]), plan["shards"][index]
    stats = _statistics(project, lake, day, row_groups=shard["row_groups"], start_row=shard["start_row"])
    counts = {k: v for k, v in stats.items() if k != "sample"}
    table = pa.Table.from_pandas(stats["sample"], preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), STATISTICS_KEY: json.dumps(counts)})
    uri = lake.write(shard_table(project, STAGE, day, plan["plan_id"], index), day, table)
    return {"index": index, "rows": stats["rows"], "uri": uri}


def _staged_statistics(project: ProjectConfig, lake: Lake, plan: dict[str, Any]) -> dict[str, Any]:
    """The merged statistics of every shard of ``plan``; an error naming the shards not staged."""
    day = as_date(plan["day"])
    tables = [shard_table(project, STAGE, day, plan["plan_id"], s["index"]) for s in plan["shards"]]
    missing = [t for t in tables if not lake.exists(t, day)]
    if missing:
        raise MlopsError(f"{project.name} {day}: {len(missing)} of {len(tables)} monitoring shard(s) not computed "
                         f"({', '.join(missing[:3])}): clear the failed monitor_shard tasks, then this one")
    parts = []
    for t in tables:
        staged = lake.read_arrow(t, day)
        parts.append({**json.loads(staged.schema.metadata[STATISTICS_KEY]), "sample": staged.to_pandas()})
    return drift.merge_statistics(parts)


def drop_monitor_shards(project: ProjectConfig, lake: Lake, day: str | dt.date) -> None:
    """Remove the day's staged shard statistics (once its monitoring succeeded)."""
    lake.delete_dir(staging_dir(project, STAGE, as_date(day)))


def _scored_by(project: ProjectConfig, lake: Lake, day: dt.date) -> str:
    """The champion version that scored the day (its first row's)."""
    source = _predictions_file(project, lake, day)
    if not source.metadata.num_rows:
        raise MlopsError(f"{project.name} {day}: predictions partition "
                         f"{lake.uri(lake.partition_path(predictions_table(project), day))} is empty: nothing to monitor")
    first = next(source.iter_batches(batch_size=1, columns=["champion_version"]))
    return str(int(first.column("champion_version")[0].as_py()))


def run_monitor(project: ProjectConfig, *, lake: Lake, reports: Lake, day: str | dt.date, tracking_uri: str,
                registry_uri: str | None = None, plan: dict[str, Any] | None = None) -> dict[str, Any]:
    """Monitor day ``day`` against the reference of the champion version that scored it.

    ``plan`` (of :func:`plan_monitor_shards`): merge the statistics its shards staged instead of streaming
    the day here; the staged files stay until :func:`drop_monitor_shards` (a retry reads them again). The
    labelled predictions (an Arrow hash join) are joined :func:`beside` the statistics' merge and the
    champion reference's fetch from MLflow.
    """
    day = as_date(day)
    features = monitored_features(project)
    version = _scored_by(project, lake, day)

    def statistics_and_reference() -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        statistics = _staged_statistics(project, lake, plan) if plan else _statistics(project, lake, day)
        client = model_store.client_for(tracking_uri, registry_uri)
        mv, reference = _champion_reference(client, project.model_name, version)
        run = client.get_run(mv.run_id)
        holdout_metrics = as_monitoring_reference(run.data.metrics, holdout_rows=run.data.params.get("holdout_rows"),
                                                  holdout_positives=run.data.params.get("holdout_positives"),
                                                  task=project.task)
        return statistics, client, mv, reference, holdout_metrics

    (statistics, client, mv, reference, holdout_metrics), labelled_rows = beside(
        lambda: labelled_predictions(project, lake, day), statistics_and_reference, name="labelled-predictions")
    result = drift.monitor_day(project, reference=reference, statistics=statistics, feature_columns=features,
                               labelled=labelled_rows, seed=day.toordinal(), reference_metrics=holdout_metrics)
    uris = save_report(result, reports, f"{project.name}/monitoring/dt={day.isoformat()}/report")
    _log_to_mlflow(client, mv.run_id, reports, uris, day)
    log.info("%s %s: monitoring verdict %s; report %s (logged to MLflow run %s)", project.name, day,
             result.kind, uris["html"], mv.run_id)
    return {"day": day.isoformat(), "kind": result.kind, "model_name": project.model_name,
            "model_version": version, "run_id": mv.run_id, "report": uris, "verdict": result.verdict,
            **({"shards": len(plan["shards"])} if plan else {})}
