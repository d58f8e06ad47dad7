"""The score stage: the champion scores a day of validated records, the challenger shadow-scores it.

Features come from the same point-in-time retrieval as training, so a record is scored with exactly
the values it would have had in a training set. The predictions partition keeps the model inputs next
to the scores: monitoring compares them with the champion's training reference.

The day is streamed in batches of ``SCORE_BATCH_ROWS`` records (features, scores, Parquet row group), so
memory stays bounded by one batch whatever the day's size; the champion and challenger versions are
resolved once, so a promotion during the run never mixes versions within a partition. The record-feature
partition is written in the records' row order, so it is read in lockstep with them
(:class:`_LockstepRows`): each partition is read once, instead of a filtered scan of the whole feature
partition per batch (20 scans of 10M rows at 10M records).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mlops_provider.domain import features as F
from mlops_provider.domain import scoring
from mlops_provider.domain.layout import as_date, predictions_table, record_table, records_table
from mlops_provider.domain.shards import new_plan_id, row_group_shards, shard_table, staging_dir
from mlops_provider.exceptions import MlopsError
from mlops_provider.io import model_store
from mlops_provider.stages import beside, shard_row_groups
from mlops_provider.stages.training_set import model_feature_columns, utc_timestamps

if TYPE_CHECKING:
    import pyarrow as pa

    from mlops_provider.config.project import ProjectConfig
    from mlops_provider.io.lake import Lake

log = logging.getLogger(__name__)

SCORE_BATCH_ROWS = 500_000  # ``MLOPS_SCORE_BATCH_ROWS`` overrides
SHADOW_FIELDS = ("agreement_rate", "mean_abs_score_diff", "ks_statistic", "rows")


class _LockstepRows:
    """The record-feature rows of each records batch, read in step with the records.

    The features stage writes the record-feature partition row for row in the records' order. Each
    :meth:`take` returns the next ``len(ids)`` rows after checking that their record ids are ``ids``;
    after the first mismatch (features computed before a re-ingest, a missing partition) it returns
    ``None`` for good and the caller falls back to a read by record id.
    """

    def __init__(self, project: ProjectConfig, lake: Lake, day: dt.date, batch_rows: int, start_row: int = 0):

        self.record_id, self.where = project.record_id, lake.uri(lake.partition_path(record_table(project), day))
        self.aligned = lake.exists(record_table(project), day)
        self._batches: Iterator[pa.RecordBatch] = iter(())
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0
        if self.aligned:
            source = lake.open_partition(record_table(project), day)
            # A shard starts at ``start_row``: read from the row group holding it, drop the rows before it.
            first, offset = 0, 0
            meta = source.metadata
            while first < meta.num_row_groups and offset + meta.row_group(first).num_rows <= start_row:
                offset += meta.row_group(first).num_rows
                first += 1
            self._batches = source.iter_batches(batch_size=batch_rows, row_groups=range(first, meta.num_row_groups))
            skip = start_row - offset
            while skip > 0 and self.aligned:
                batch = next(self._batches, None)
                if batch is None:
                    self._misaligned("it has fewer rows than the records partition")
                    break
                if batch.num_rows > skip:
                    self._buffer, self._buffered = [batch.slice(skip)], batch.num_rows - skip
                skip -= batch.num_rows

    def take(self, ids: pa.Array) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        if not self.aligned:
            return None
        while self._buffered < len(ids):
            batch = next(self._batches, None)
            if batch is None:
                break
            self._buffer.append(batch)
            self._buffered += batch.num_rows
        table = pa.Table.from_batches(self._buffer) if self._buffer else None
        if table is None or table.num_rows < len(ids):
            return self._misaligned("it has fewer rows than the records partition")
        head, rest = table.slice(0, len(ids)), table.slice(len(ids))
        self._buffer, self._buffered = rest.to_batches(), rest.num_rows
        if not head.column(self.record_id).combine_chunks().equals(pc.cast(ids, pa.string())):
            return self._misaligned("its record ids are not in the records' order")
        return head.to_pandas()

    def _misaligned(self, why: str) -> None:
        log.warning("record features %s: %s (computed before the records were re-ingested?); "
                    "reading them by record id instead", self.where, why)
        self.aligned, self._buffer, self._batches = False, [], iter(())
        return None


class _DayScorer:
    """Scores one day's record batches with pinned models and collects the scores for the summary."""

    def __init__(self, project: ProjectConfig, feature_store: Any, versions: tuple[str, str | None],
                 models: tuple[Any, Any | None]):
        self.project, self.feature_store, self.versions, self.models = project, feature_store, versions, models
        self.features, _ = model_feature_columns(project)
        # A binary model's alert threshold; other tasks decide nothing.
        self.threshold = float(project.model["alert_threshold"]) if project.task == "binary" else None
        self.champion_scores: list[Any] = []
        self.challenger_scores: list[Any | None] = []
        self.schema: pa.Schema | None = None

    def score(self, batch: pa.RecordBatch, record_rows: Any = None) -> pa.Table:
        import pyarrow as pa

        project = self.project
        rid, key, ts = project.record_id, project.entity_key, project.event_timestamp
        records = batch.to_pandas()
        entity_df = records.rename(columns={ts: F.EVENT_TIMESTAMP}) if ts != F.EVENT_TIMESTAMP else records
        entity_df[F.EVENT_TIMESTAMP] = utc_timestamps(entity_df[F.EVENT_TIMESTAMP])
        for entity_key in project.entity_keys:
            entity_df[entity_key] = entity_df[entity_key].astype(str)
        frame = (self.feature_store.get_historical_features(entity_df, record_rows=record_rows)
                 if record_rows is not None else self.feature_store.get_historical_features(entity_df))
        task = project.task
        with model_store.thread_limit():
            predictions = scoring.score_batch(
                frame, models=self.models, versions=self.versions, model_name=project.model_name, record_id=rid,
                entity_key=key, threshold=self.threshold, event_timestamp=F.EVENT_TIMESTAMP, task=task)
        self.champion_scores.append(predictions[scoring.output_column(task)].to_numpy())
        self.challenger_scores.append(_shadow_scores(task, predictions[scoring.output_column(task, "challenger")]))
        out = predictions.merge(frame[[rid, *self.features]], on=rid, how="left", validate="one_to_one")
        out.insert(3, "model_name", project.model_name)
        # Every batch is written with the first batch's schema (one Parquet file, one schema).
        table = pa.Table.from_pandas(out, schema=self.schema, preserve_index=False)
        self.schema = self.schema or table.schema
        return table

    def summary(self) -> dict[str, Any]:
        return _summarize(self.project, self.versions, self.champion_scores, self.challenger_scores)


def _shadow_scores(task: str, shadow: Any) -> Any:
    """A batch's challenger outputs as an array, or None when the challenger did not score every row."""
    import numpy as np

    if not shadow.notna().all():
        return None
    return shadow.to_numpy(dtype="float64", na_value=np.nan) if task != "multiclass" else shadow.to_numpy(dtype=object)


def _summarize(project: ProjectConfig, versions: tuple[str, str | None], champion_scores: list[Any],
               challenger_scores: list[Any | None]) -> dict[str, Any]:
    """The day's scoring summary from its batches' champion and challenger outputs."""
    import numpy as np

    shadowed = bool(challenger_scores) and all(c is not None for c in challenger_scores)
    threshold = float(project.model["alert_threshold"]) if project.task == "binary" else None
    return scoring.summarize(
        _joined(champion_scores) if champion_scores else np.array([]),
        _joined(challenger_scores) if shadowed else None,
        threshold=threshold, champion=versions[0], challenger=versions[1], model_name=project.model_name,
        task=project.task)


def _joined(arrays: list[Any]) -> Any:
    """One array of the batches' outputs (the one array itself when there is one: no copy)."""
    import numpy as np

    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _records_file(project: ProjectConfig, lake: Lake, day: dt.date) -> Any:
    """The day's validated records partition as a ``ParquetFile``; a clear error when missing or empty."""

    table = records_table(project)
    where = lake.uri(lake.partition_path(table, day))
    if not lake.exists(table, day):
        raise MlopsError(f"{project.name} {day}: no validated records partition {where} to score")
    source = lake.open_partition(table, day)
    if not source.metadata.num_rows:
        raise MlopsError(f"{project.name} {day}: records partition {where} is empty: nothing to score")
    return source


def _write_scored(project: ProjectConfig, *, lake: Lake, feature_store: Any, day: dt.date, table: str,
                  versions: tuple[str, str | None], models: tuple[Any, Any | None], row_groups: list[int] | None = None,
                  start_row: int = 0) -> tuple[str, _DayScorer]:
    """Score the day's records (all, or the row groups of one shard) into partition ``day`` of ``table``."""
    source = _records_file(project, lake, day)
    meta = source.metadata
    groups = list(range(meta.num_row_groups)) if row_groups is None else list(row_groups)
    total = sum(meta.row_group(i).num_rows for i in groups)
    batch_rows = max(1, int(os.environ.get("MLOPS_SCORE_BATCH_ROWS", SCORE_BATCH_ROWS)))
    scorer = _DayScorer(project, feature_store, versions, models)
    record_rows = _LockstepRows(project, lake, day, batch_rows, start_row=start_row)
    what = "records" if row_groups is None else f"records of rows {start_row}-{start_row + total - 1}"

    def batches() -> Iterator[pa.RecordBatch]:
        done = 0
        columns = list(dict.fromkeys([project.record_id, *project.entity_keys, project.event_timestamp]))
        for batch in source.iter_batches(batch_size=batch_rows, columns=columns, row_groups=groups):
            scored = scorer.score(batch, record_rows.take(batch.column(project.record_id)))
            done += scored.num_rows
            if total > batch_rows:
                log.info("%s %s: scored %d of %d %s", project.name, day, done, total, what)
            yield from scored.to_batches()

    return lake.write(table, day, batches()), scorer


def _finish(project: ProjectConfig, *, reports: Lake, day: dt.date, uri: str, summary: dict[str, Any],
            tracking_uri: str, registry_uri: str | None) -> dict[str, Any]:
    """Write the shadow report and tag the challenger with it; return the day's summary."""
    summary = {"day": day.isoformat(), "model_name": project.model_name, "predictions": uri, **summary}
    summary["shadow_report"] = reports.write_bytes(f"{project.name}/shadow/dt={day.isoformat()}.json",
                                                   json.dumps(summary, indent=2, default=str).encode())
    if summary.get("challenger_version"):
        # The challenger's version carries its shadow record, so a promotion decision can cite it.
        client = model_store.client_for(tracking_uri, registry_uri)
        client.set_model_version_tag(project.model_name, str(summary["challenger_version"]),
                                     f"shadow.{day.isoformat()}", json.dumps({k: summary[k] for k in SHADOW_FIELDS}))
    return summary


def run_score(project: ProjectConfig, *, lake: Lake, reports: Lake, feature_store: Any, day: str | dt.date,
              tracking_uri: str, registry_uri: str | None = None) -> dict[str, Any]:
    """Score partition ``day`` with the champion (shadow: the challenger); write predictions to the lake."""
    day = as_date(day)
    _records_file(project, lake, day)
    versions = model_store.resolve_versions(project.model_name, tracking_uri=tracking_uri, registry_uri=registry_uri)
    models = model_store.load_pinned(project.model_name, versions, tracking_uri=tracking_uri,
                                     registry_uri=registry_uri)
    uri, scorer = _write_scored(project, lake=lake, feature_store=feature_store, day=day,
                                table=predictions_table(project), versions=versions, models=models)
    return _finish(project, reports=reports, day=day, uri=uri, summary=scorer.summary(), tracking_uri=tracking_uri,
                   registry_uri=registry_uri)


# -- a day in shards: plan, score each shard (in parallel on the executor's workers), commit -------------
STAGE = "predictions"


def plan_score_shards(project: ProjectConfig, *, lake: Lake, day: str | dt.date, shard_rows: int, tracking_uri: str,
                      registry_uri: str | None = None) -> dict[str, Any] | None:
    """Split the day's records into shards of whole row groups of about ``shard_rows`` rows; pin the versions.

    ``None``: the day is scored in one task (:func:`run_score`), because it has at most ``shard_rows``
    records or no records partition at all (:func:`run_score` then names the missing partition).
    Every shard scores with the versions pinned here, so a promotion while the shards run never mixes
    versions within the day's partition. The plan is JSON (an XCom): each shard is ``{"index", "row_groups",
    "start_row", "rows"}``.
    """

    day = as_date(day)
    table = records_table(project)
    if not lake.exists(table, day):
        log.info("%s %s: no validated records partition %s: left to the one-task scoring, which names it",
                 project.name, day, lake.uri(lake.partition_path(table, day)))
        return None
    meta = lake.open_partition(table, day).metadata
    if meta.num_rows <= shard_rows:
        log.info("%s %s: %d records <= runs.shard_rows %d: scored in one task", project.name, day, meta.num_rows,
                 shard_rows)
        return None
    versions = model_store.resolve_versions(project.model_name, tracking_uri=tracking_uri, registry_uri=registry_uri)
    shards = row_group_shards([meta.row_group(i).num_rows for i in range(meta.num_row_groups)], shard_rows)
    log.info("%s %s: %d records in %d row groups -> %d shard(s) of about %d rows", project.name, day,
             meta.num_rows, meta.num_row_groups, len(shards), shard_rows)
    return {"day": day.isoformat(), "plan_id": new_plan_id(), "versions": list(versions), "shards": shards}


def score_shard(project: ProjectConfig, *, lake: Lake, feature_store: Any, plan: dict[str, Any], index: int,
                tracking_uri: str, registry_uri: str | None = None) -> dict[str, Any]:
    """Score shard ``index`` of ``plan`` into its own staging partition (replaced whole on a retry)."""
    day, shard = as_date(plan["day"]), plan["shards"][index]
    versions = (plan["versions"][0], plan["versions"][1])
    models = model_store.load_pinned(project.model_name, versions, tracking_uri=tracking_uri,
                                     registry_uri=registry_uri)
    uri, _ = _write_scored(project, lake=lake, feature_store=feature_store, day=day,
                           table=shard_table(project, STAGE, day, plan["plan_id"], index), versions=versions, models=models,
                           row_groups=shard["row_groups"], start_row=shard["start_row"])
    return {"index": index, "rows": shard["rows"], "uri": uri}


def _day_outputs(task: str, files: list[Any]) -> tuple[list[Any], list[Any | None]]:
    """The day's champion and challenger outputs from its shard files, each filled into one array.

    The summary needs every row's output (the KS statistic compares whole distributions); filling one
    preallocated array per model, shard by shard, holds each output once (a concatenation of per-shard
    arrays would hold it twice at its peak: 3.2 GB instead of 1.6 GB at 100M rows).
    """
    import numpy as np

    rows = sum(f.metadata.num_rows for f in files)
    dtype = object if task == "multiclass" else "float64"
    champion, challenger = np.empty(rows, dtype=dtype), np.empty(rows, dtype=dtype)
    shadowed, at = True, 0
    for source in files:
        for index in range(source.num_row_groups):
            frame = source.read_row_group(index, columns=[scoring.output_column(task),
                                                          scoring.output_column(task, "challenger")]).to_pandas()
            n = len(frame)
            champion[at:at + n] = frame[scoring.output_column(task)].to_numpy(dtype=dtype)
            shadow = _shadow_scores(task, frame[scoring.output_column(task, "challenger")]) if shadowed else None
            shadowed = shadow is not None
            if shadowed:
                challenger[at:at + n] = shadow
            at += n
    return [champion], [challenger if shadowed else None]


def commit_score_shards(project: ProjectConfig, *, lake: Lake, reports: Lake, plan: dict[str, Any], tracking_uri: str,
                        registry_uri: str | None = None) -> dict[str, Any]:
    """Publish the day's predictions partition from every shard at once (atomically), then drop the shards.

    Rows keep the records' order and every shard is cast to the first shard's schema, so the partition
    is the one the unsharded :func:`run_score` writes. The day's summary (its KS statistic sorts both
    models' outputs: 4.6 s at 10M rows) is computed :func:`beside` the partition's rewrite.
    """

    day, task = as_date(plan["day"]), project.task
    tables = [shard_table(project, STAGE, day, plan["plan_id"], s["index"]) for s in plan["shards"]]
    missing = [t for t in tables if not lake.exists(t, day)]
    if missing:
        raise MlopsError(f"{project.name} {day}: {len(missing)} of {len(tables)} shard(s) not scored "
                         f"({', '.join(missing[:3])}): clear the failed score_shard tasks, then this one")

    def shard_files() -> list[Any]:
        return [lake.open_partition(t, day) for t in tables]

    versions = (plan["versions"][0], plan["versions"][1])

    def day_summary() -> dict[str, Any]:
        # Its own file handles: the rewrite reads the same files at the same time.
        champion, challenger = _day_outputs(task, shard_files())
        return _summarize(project, versions, champion, challenger)

    files = shard_files()
    schema = files[0].schema_arrow

    rows = shard_row_groups(files, schema, name="predictions-read")
    uri, outputs = beside(day_summary, lambda: lake.write(predictions_table(project), day, rows, schema=schema),
                          name="score-summary")
    summary = _finish(project, reports=reports, day=day, uri=uri, summary=outputs, tracking_uri=tracking_uri,
                      registry_uri=registry_uri)
    lake.delete_dir(staging_dir(project, STAGE, day))
    return {**summary, "shards": len(tables)}
