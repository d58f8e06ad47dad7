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
from mlops_provider.exceptions import MlopsError
from mlops_provider.io import model_store
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

    def __init__(self, project: ProjectConfig, lake: Lake, day: dt.date, batch_rows: int):
        import pyarrow.parquet as pq

        self.record_id, self.where = project.record_id, lake.uri(lake.partition_path(record_table(project), day))
        self.aligned = lake.exists(record_table(project), day)
        self._batches: Iterator[pa.RecordBatch] = iter(())
        if self.aligned:
            source = pq.ParquetFile(lake.partition_path(record_table(project), day), filesystem=lake.fs)
            self._batches = source.iter_batches(batch_size=batch_rows)
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0

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
        import numpy as np
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
        shadow = predictions[scoring.output_column(task, "challenger")]
        numeric = task != "multiclass"
        self.challenger_scores.append(None if not shadow.notna().all() else
                                      shadow.to_numpy(dtype="float64", na_value=np.nan) if numeric else
                                      shadow.to_numpy(dtype=object))
        out = predictions.merge(frame[[rid, *self.features]], on=rid, how="left", validate="one_to_one")
        out.insert(3, "model_name", project.model_name)
        # Every batch is written with the first batch's schema (one Parquet file, one schema).
        table = pa.Table.from_pandas(out, schema=self.schema, preserve_index=False)
        self.schema = self.schema or table.schema
        return table

    def summary(self) -> dict[str, Any]:
        import numpy as np

        shadowed = bool(self.challenger_scores) and all(c is not None for c in self.challenger_scores)
        return scoring.summarize(
            np.concatenate(self.champion_scores) if self.champion_scores else np.array([]),
            np.concatenate(self.challenger_scores) if shadowed else None,
            threshold=self.threshold, champion=self.versions[0],
            challenger=self.versions[1], model_name=self.project.model_name, task=self.project.task)


def run_score(project: ProjectConfig, *, lake: Lake, reports: Lake, feature_store: Any, day: str | dt.date,
              tracking_uri: str, registry_uri: str | None = None) -> dict[str, Any]:
    """Score partition ``day`` with the champion (shadow: the challenger); write predictions to the lake."""
    import pyarrow.parquet as pq

    day, table = as_date(day), records_table(project)
    where = lake.uri(lake.partition_path(table, day))
    if not lake.exists(table, day):
        raise MlopsError(f"{project.name} {day}: no validated records partition {where} to score")
    versions = model_store.resolve_versions(project.model_name, tracking_uri=tracking_uri, registry_uri=registry_uri)
    source = pq.ParquetFile(lake.partition_path(table, day), filesystem=lake.fs)
    total = source.metadata.num_rows
    if not total:
        raise MlopsError(f"{project.name} {day}: records partition {where} is empty: nothing to score")
    batch_rows = max(1, int(os.environ.get("MLOPS_SCORE_BATCH_ROWS", SCORE_BATCH_ROWS)))
    models = model_store.load_pinned(project.model_name, versions, tracking_uri=tracking_uri,
                                     registry_uri=registry_uri)
    scorer = _DayScorer(project, feature_store, versions, models)
    record_rows = _LockstepRows(project, lake, day, batch_rows)

    def batches() -> Iterator[pa.RecordBatch]:
        done = 0
        columns = list(dict.fromkeys([project.record_id, *project.entity_keys, project.event_timestamp]))
        for batch in source.iter_batches(batch_size=batch_rows, columns=columns):
            scored = scorer.score(batch, record_rows.take(batch.column(project.record_id)))
            done += scored.num_rows
            if total > batch_rows:
                log.info("%s %s: scored %d of %d records", project.name, day, done, total)
            yield from scored.to_batches()

    uri = lake.write(predictions_table(project), day, batches())
    summary = {"day": day.isoformat(), "model_name": project.model_name, "predictions": uri, **scorer.summary()}
    summary["shadow_report"] = reports.write_bytes(f"{project.name}/shadow/dt={day.isoformat()}.json",
                                                   json.dumps(summary, indent=2, default=str).encode())
    if summary.get("challenger_version"):
        # The challenger's version carries its shadow record, so a promotion decision can cite it.
        client = model_store.client_for(tracking_uri, registry_uri)
        client.set_model_version_tag(project.model_name, str(summary["challenger_version"]),
                                     f"shadow.{day.isoformat()}", json.dumps({k: summary[k] for k in SHADOW_FIELDS}))
    return summary
