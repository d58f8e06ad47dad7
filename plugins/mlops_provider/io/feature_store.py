"""A project's features in Feast: definitions, chunked materialization, freshness, point-in-time retrieval.

The store is built in code (no ``feature_store.yaml``): a SQL registry, the lake as the file offline
store, an online store (SQLite embedded, Redis in production). ``settings`` override any of the three,
as an Airflow ``feast`` connection's extra does (:class:`mlops_provider.hooks.feast.FeastHook`).
The point-in-time join strategy that makes retrieval scale lives here too (:meth:`get_historical_features`).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import time
from typing import TYPE_CHECKING, Any

from mlops_provider.config import paths
from mlops_provider.config.failpoints import hit
from mlops_provider.domain.layout import entity_table, record_table

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore, RepoConfig

    from mlops_provider.config.features import Entity
    from mlops_provider.config.project import ProjectConfig
    from mlops_provider.io.lake import Lake

log = logging.getLogger(__name__)

# Rows converted to protobuf and written per online-store call: bounds memory on wide chunks.
WRITE_BATCH_ROWS = 20_000
# Entity rows per point-in-time join (``MLOPS_RETRIEVAL_CHUNK_ROWS`` overrides).
RETRIEVAL_CHUNK_ROWS = 250_000


EVENT = "event_timestamp"


def _whole_days(ttl: dt.timedelta | None) -> bool:
    return bool(ttl) and ttl % dt.timedelta(days=1) == dt.timedelta(0)


def _utc(value: dt.datetime | dt.date | str) -> dt.datetime:
    """A tz-aware UTC datetime; a date means its midnight UTC, a naive datetime is taken as UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def store_dir(project_name: str) -> str:
    """Where the embedded registry and SQLite online store of a project live."""
    return str(paths.feast_dir() / project_name)


def default_store_settings(project_name: str) -> dict[str, Any]:
    """Registry, offline and online store settings used when no Airflow connection overrides them."""
    base = store_dir(project_name)
    return {
        # A SQL registry on SQLite: concurrent tasks of one project serialise on the database lock instead
        # of racing on the read-modify-write of a protobuf registry file.
        "registry": {"registry_type": "sql", "path": f"sqlite:///{base}/registry.db", "cache_ttl_seconds": 60},
        "offline_store": {"type": "file"},
        "online_store": {"type": "sqlite", "path": f"{base}/online.db"},
    }


def repo_config(project_name: str, settings: dict[str, Any] | None = None) -> RepoConfig:
    """Feast ``RepoConfig`` of a project: the embedded defaults, with ``settings``' registry / stores instead."""
    from feast import RepoConfig

    chosen = default_store_settings(project_name)
    for key in ("registry", "offline_store", "online_store"):
        if isinstance((settings or {}).get(key), dict):
            chosen[key] = dict(settings[key])
    online = chosen["online_store"]
    if online.get("type") == "sqlite" and not online.get("path"):
        online["path"] = default_store_settings(project_name)["online_store"]["path"]
    os.makedirs(store_dir(project_name), exist_ok=True)
    return RepoConfig(project=project_name, provider="local", registry=chosen["registry"],
                      offline_store=chosen["offline_store"], online_store=online,
                      repo_path=store_dir(project_name), entity_key_serialization_version=3)


class ProjectFeatureStore:
    """Feast ``FeatureStore`` of one project plus the lake its offline tables live in.

    :param settings: ``registry`` / ``offline_store`` / ``online_store`` overrides (a connection's extra).
    """

    def __init__(self, project: ProjectConfig, lake: Lake | None = None, settings: dict[str, Any] | None = None):
        self.project = project
        self._lake = lake
        self.settings = dict(settings or {})
        self._store: FeatureStore | None = None

    @property
    def lake(self) -> Lake:
        if self._lake is None:
            from mlops_provider.io.lake import Lake

            self._lake = Lake()
        return self._lake

    @property
    def store(self) -> FeatureStore:
        """The project's Feast ``FeatureStore`` (built once)."""
        if self._store is None:
            os.environ.setdefault("FEAST_USAGE", "False")
            from feast import FeatureStore

            self._store = FeatureStore(config=repo_config(self.project.name, self.settings))
        return self._store

    @property
    def online_store_type(self) -> str:
        return str(self.store.config.online_store.type)

    # -- definitions ---------------------------------------------------------------------------
    def definitions(self) -> list[Any]:
        from mlops_provider.io.feast_repo import feature_definitions

        return feature_definitions(self.project, self.lake)

    def apply(self) -> dict[str, Any]:
        """Register the project's entities, sources, views and service (unchanged objects are no-ops)."""
        objects = self.definitions()
        self.store.apply(objects)
        self._newest_event_wins()
        names = sorted(f"{type(o).__name__}:{o.name}" for o in objects)
        log.info("Feast project '%s': applied %s", self.project.name, ", ".join(names))
        return {"project": self.project.name, "objects": names}

    def _newest_event_wins(self) -> list[str]:
        """Make the SQLite online store keep the newest event time per entity key, as Feast's Redis store does.

        Feast's SQLite store upserts whatever it is given, so re-materializing day D after D + 1 put D's
        older values back online; its Redis store skips a row whose event time is older than the stored
        one. A ``BEFORE UPDATE`` trigger on each online table gives SQLite that rule inside the database
        (every writer: materialization, ``write_to_online_store``, push): an update carrying an older
        ``event_ts`` is dropped (``RAISE(IGNORE)`` skips that row only). A write with the same event time
        still replaces the value (a day recomputed and materialized again). Idempotent; tables Feast
        created anew get their trigger on the next ``apply`` or ``materialize``. Returns the guarded tables.
        """
        import sqlite3
        from contextlib import closing

        from feast.infra.online_stores.helpers import compute_table_id
        from feast.infra.online_stores.sqlite import SqliteOnlineStore

        store = self.store
        if not isinstance(store._get_provider().online_store, SqliteOnlineStore):
            return []
        config = store.config
        versioned = bool(getattr(config.registry, "enable_online_feature_view_versioning", False))
        guarded = []
        with closing(sqlite3.connect(SqliteOnlineStore._get_db_path(config), timeout=60)) as conn, conn:
            existing = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            for view_name in self._online_views():
                table = compute_table_id(config.project, store.get_feature_view(view_name), versioned)
                if table not in existing:
                    continue  # not created yet: Feast's apply creates it, the next call guards it
                conn.execute(f"CREATE TRIGGER IF NOT EXISTS {_sql_name(table + '_newest_event_wins')} "
                             f"BEFORE UPDATE ON {_sql_name(table)} "
                             "WHEN NEW.event_ts < OLD.event_ts BEGIN SELECT RAISE(IGNORE); END")
                guarded.append(table)
        return guarded

    # -- materialization -----------------------------------------------------------------------
    def _online_views(self) -> dict[str, str]:
        """Online feature view name -> lake table it is computed into."""
        from mlops_provider.domain import layout as L
        from mlops_provider.io import feast_repo as R

        spec = self.project.feature_spec
        return {R.entity_view_name(self.project, e): L.entity_table(self.project, e.name)
                for e in spec.entities if spec.of(e)}

    def _read_window(self, table: str, start: dt.datetime, end: dt.datetime, key: str) -> pd.DataFrame:
        """Latest row per key with ``start <= event_timestamp <= end``, read one partition at a time."""
        import pandas as pd

        from mlops_provider.domain import features as F
        from mlops_provider.domain.layout import days

        frames = []
        # A partition holds rows timestamped on its own day or (entity aggregates) at the next midnight.
        for day in days(start.date() - dt.timedelta(days=1), end.date()):
            if not self.lake.exists(table, day):
                continue
            part = self.lake.read(table, day)
            ts = pd.to_datetime(part[F.EVENT_TIMESTAMP], utc=True)
            part = part[(ts >= pd.Timestamp(start)) & (ts <= pd.Timestamp(end))]
            if len(part):
                frames.append(part.drop(columns=["dt"], errors="ignore"))
        if not frames:
            return pd.DataFrame()
        frame = pd.concat(frames, ignore_index=True)
        order = [c for c in (F.EVENT_TIMESTAMP, F.CREATED_TIMESTAMP) if c in frame.columns]
        return frame.sort_values(order, kind="stable").drop_duplicates(key, keep="last").reset_index(drop=True)

    def materialize(self, start: dt.datetime | dt.date | str, end: dt.datetime | dt.date | str,
                    chunk_days: int | None = None) -> dict[str, Any]:
        """Copy the latest offline value per entity with event time in ``[start, end]`` into the online store.

        The online store keeps the newest event time per entity: materializing an older window again
        (a rerun of day D after D + 1) leaves newer values in place, on Redis (Feast's rule) and on SQLite
        (:meth:`_newest_event_wins`).

        Works through the window ``chunk_days`` at a time, oldest first, reading only the lake
        partitions of the chunk: memory is bounded by one chunk, whatever the history length. Feast's
        own ``materialize`` with the file offline store loads the whole source table on every call,
        which does not scale; rows are therefore written through the provider's ``online_write_batch``
        (Feast's own materialization write path, :meth:`_write_online`) and each chunk is recorded in the
        registry as a materialization interval.
        """
        start, end = _utc(start), _utc(end)
        if start > end:
            raise ValueError(f"materialize: start {start} is after end {end}")
        chunk_days = chunk_days or int(self.project.features["materialize_chunk_days"])
        store = self.store
        self._newest_event_wins()  # an older window materialized again never replaces newer online values
        step = dt.timedelta(days=chunk_days)
        n_chunks = (end - start) // step + 1
        rows_written = 0
        began = time.monotonic()
        for view_name, table in self._online_views().items():
            view = store.get_feature_view(view_name)
            key = view.join_keys[0]
            cursor, index = start, 0
            while cursor <= end:
                index += 1
                # Chunks are closed intervals; stop a microsecond short of the next one.
                chunk_end = min(cursor + step - dt.timedelta(microseconds=1), end)
                t0 = time.monotonic()
                frame = self._read_window(table, cursor, chunk_end, key)
                self._write_online(store, view, frame)
                hit("feast.materialize.chunk")  # rows online, interval not recorded
                store.registry.apply_materialization(view, self.project.name, cursor, chunk_end, commit=True)
                seconds = time.monotonic() - t0
                rows_written += len(frame)
                log.info("materialize %s chunk %d/%d [%s, %s]: %d rows -> %s online store in %.1fs (%.0f rows/s)",
                         view_name, index, n_chunks, cursor.isoformat(), chunk_end.isoformat(), len(frame),
                         self.online_store_type, seconds, len(frame) / seconds if seconds else 0.0)
                cursor += step
        seconds = time.monotonic() - began
        return {"project": self.project.name, "start": start.isoformat(), "end": end.isoformat(),
                "chunks": n_chunks, "views": sorted(self._online_views()), "rows_written": rows_written,
                "seconds": round(seconds, 3), "online_store": self.online_store_type}

    def _write_online(self, store: FeatureStore, view: Any, frame: pd.DataFrame) -> None:
        """Write ``frame`` (one row per entity) to the online store the way Feast's own materialization does.

        ``FeatureStore.write_to_online_store`` converts every value through pandas objects (``ingest_df``);
        Feast's materialization engine converts Arrow columns to protobuf in bulk
        (``feast.utils._convert_arrow_to_proto``) and hands them to the provider's ``online_write_batch``:
        about a third less CPU for the same rows. Batches of ``WRITE_BATCH_ROWS`` bound the protobuf objects.

        On Redis, Feast skips a row whose event time is not *newer* than the stored one, so a partition
        recomputed under the same event time (a late or backfilled earlier day changes later windows) was
        never refreshed online and the freshness check failed every try. Here a row replaces the stored one
        unless the stored one is newer (:func:`_not_older_than_online`), the rule of the SQLite trigger
        (:meth:`_newest_event_wins`). Materializations of one project do not overlap (the features DAG runs
        one at a time), so the read-then-write leaves no gap another writer could use.
        """
        if frame.empty:
            return
        import pyarrow as pa
        from feast.utils import _convert_arrow_to_proto

        join_keys = {entity.name: entity.dtype.to_value_type() for entity in view.entity_columns}
        columns = [*join_keys, *(f.name for f in view.features), view.batch_source.timestamp_field]
        if view.batch_source.created_timestamp_column:
            columns.append(view.batch_source.created_timestamp_column)
        arrow = pa.Table.from_pandas(frame[columns], preserve_index=False)
        provider = store._get_provider()
        config, refresh = store.config, _refreshes_same_time(store)
        if refresh:
            config = _ConfigWithOnlineStore(config, config.online_store.model_copy(update={"skip_dedup": True}))
        for batch in arrow.to_batches(max_chunksize=WRITE_BATCH_ROWS):
            rows = _convert_arrow_to_proto(batch, view, join_keys)
            if refresh:
                rows = _not_older_than_online(provider, store.config, view, rows)
            provider.online_write_batch(config, view, rows, progress=None)

    # -- freshness -----------------------------------------------------------------------------
    def check_freshness(self, day: str | dt.date, sample_size: int = 50) -> dict[str, Any]:
        """Compare a seeded sample of each entity's online values with the offline partition of ``day``.

        An online value must carry at least the partition's event time; it is compared with the offline
        row of the same event time (a later partition when a later day was already materialized).
        """
        from mlops_provider.domain.layout import as_date

        day, spec = as_date(day), self.project.feature_spec
        results = [self._check_entity_freshness(day, e, sample_size) for e in spec.entities if spec.of(e)]
        return {"day": day.isoformat(), "checked": sum(r["checked"] for r in results),
                "features": sum(r["features"] for r in results), "mismatches": 0,
                "online_store": self.online_store_type, "per_entity": results}

    def _check_entity_freshness(self, day: dt.date, entity: Entity, sample_size: int) -> dict[str, Any]:
        from mlops_provider.domain import features as F
        from mlops_provider.exceptions import FeatureFreshnessError

        key = entity.key
        table = entity_table(self.project, entity.name)
        names = F.entity_feature_names(self.project, entity)
        if not self.lake.exists(table, day):
            raise FeatureFreshnessError(f"no offline partition to check against: "
                                        f"{self.lake.uri(self.lake.partition_path(table, day))} does not exist")
        offline = self.lake.read(table, day, columns=[key, F.EVENT_TIMESTAMP, *names])
        if offline.empty:
            return {"entity": entity.name, "checked": 0, "features": len(names), "mismatches": 0}
        # Seeded by the day: a retried check looks at the same entities.
        sample = offline.sample(n=min(sample_size, len(offline)), random_state=day.toordinal())
        sample = sample.set_index(key)
        problems = self._freshness_problems(day, entity, table, names, sample)
        result = {"entity": entity.name, "checked": len(sample), "features": len(names),
                  "mismatches": len(problems)}
        if problems:
            shown = "\n  ".join(problems[:10])
            raise FeatureFreshnessError(
                f"Feast online store ({self.online_store_type}) disagrees with offline partition "
                f"{self.lake.uri(self.lake.partition_path(table, day))} for {len(problems)} value(s) "
                f"of {len(sample)} sampled {entity.name} keys:\n  {shown}"
            )
        log.info("freshness %s: %d %s keys x %d features match the offline partition (%s online store)",
                 day, len(sample), entity.name, len(names), self.online_store_type)
        return result

    def _freshness_problems(self, day: dt.date, entity: Entity, table: str, names: list[str],
                            sample: pd.DataFrame) -> list[str]:
        """Every online value of the ``sample`` entities that is missing, stale or differs from the offline one."""
        import pandas as pd

        from mlops_provider.domain import features as F

        key = entity.key
        online = self.get_online_features([{key: k} for k in sample.index], include_event_timestamps=True,
                                          entity=entity)
        expected = F.feature_timestamp(day)
        expected_ts = int(pd.Timestamp(expected).timestamp())
        later: dict[int, pd.DataFrame] = {}
        problems: list[str] = []
        for i, entity_key in enumerate(online[key]):
            for name in names:
                value, ts = online[name][i], online.get(f"{name}__ts", [None] * len(sample))[i]
                ts = int(ts.timestamp()) if isinstance(ts, dt.datetime) else int(ts or 0)
                if value is None and entity_key in sample.index and _same(None, _scalar(sample.at[entity_key, name])):
                    continue  # no value offline either (e.g. the std of one record): nothing to serve
                if not ts or value is None:
                    problems.append(f"{key}={entity_key} {name}: missing online (offline {_scalar(sample.at[entity_key, name])!r})")
                    continue
                if ts < expected_ts:
                    problems.append(f"{key}={entity_key} {name}: online value is stale (event time "
                                    f"{dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()} < "
                                    f"{expected.isoformat()})")
                    continue
                reference = sample if ts == expected_ts else self._later_partition(later, table, key, names, ts)
                offline_value = _scalar(reference.at[entity_key, name]) if entity_key in reference.index else None
                if not _same(value, offline_value):
                    problems.append(f"{key}={entity_key} {name}: online {value!r} != offline {offline_value!r}")
        return problems

    def _later_partition(self, cache: dict[int, pd.DataFrame], table: str, key: str, names: list[str],
                         ts: int) -> pd.DataFrame:
        """The offline rows (by entity key) stamped ``ts``, for online values a later materialization wrote."""
        if ts not in cache:
            # Partition d holds the aggregates stamped at midnight starting d + 1.
            newer_day = dt.datetime.fromtimestamp(ts, dt.UTC).date() - dt.timedelta(days=1)
            cache[ts] = self.lake.read(table, newer_day, columns=[key, *names]).set_index(key)
        return cache[ts]

    # -- retrieval -----------------------------------------------------------------------------
    def get_historical_features(self, entity_df: pd.DataFrame, record_rows: pd.DataFrame | None = None) -> pd.DataFrame:
        """Point-in-time join of the model's feature service onto ``entity_df`` (same rows, same order).

        ``record_rows``, when given, are the record-feature rows of exactly these records (a caller that
        streams a day reads them in lockstep with the records): the record view is joined on them instead
        of a filtered read of the partition per call.

        ``entity_df`` needs the entity key, the record id and an ``event_timestamp`` column; each row gets
        the latest feature values with event time <= its own timestamp (never later), within the view's
        TTL. An entity without any earlier aggregate row (a new entity) gets no history: zero counts and
        amounts, missing shares and recency (:func:`~mlops_provider.domain.features.fill_missing_history`).

        The join is Feast's (``FeatureStore.get_historical_features``), fed the smallest input that gives
        the same answer, because Feast's file (Dask) offline store scans the whole source table and holds
        every entity row with every candidate feature row (a 1M-row day took ~5 min and 6.6 GiB):

        * **entity aggregates** are stamped at midnights only (:func:`~mlops_provider.domain.features.feature_timestamp`)
          and their TTL is whole days, so every event strictly inside one day sees the same rows: Feast
          joins one row per (entity, day) -- a few thousand instead of millions -- and the result is
          spread back onto the events (:meth:`_join_daily_view`);
        * **record features** are the record's own row, keyed by the record id and stamped with the
          record's own time: they are read from the lake partitions of the events' days and matched on
          the record id with the same as-of rule (:meth:`_join_record_view`) instead of a scan of every
          partition of the table.

        Any other view goes through Feast as it is. Views are joined one at a time and merged back on a
        row number: Feast's Dask store drops an entity row altogether when every feature row of its key
        lies after the row's timestamp, which would silently remove each new entity's first records.
        """
        import numpy as np
        import pandas as pd

        from mlops_provider.domain.features import fill_missing_history
        from mlops_provider.io import feast_repo as R

        store = self.store
        service = store.get_feature_service(R.feature_service_name(self.project))
        row = "__mlops_row"
        frame = entity_df.reset_index(drop=True)
        frame = frame.assign(**{row: np.arange(len(frame))})
        frame[EVENT] = pd.to_datetime(frame[EVENT], utc=True)
        out = frame
        entity_views = R.entity_views(self.project)
        with R.s3_environment(self.lake):
            for projection in service.feature_view_projections:
                names = [f.name for f in projection.features]
                view = store.get_feature_view(projection.name)
                if projection.name == R.record_view_name(self.project):
                    part = self._join_record_view(view, frame, names, row, rows=record_rows)
                elif projection.name in entity_views and _whole_days(view.ttl):
                    part = self._join_daily_view(store, projection, frame, names, row,
                                                 key=entity_views[projection.name].key)
                else:
                    part = self._feast_join(store, projection, frame, names, row)
                # A feature that is also a column of the entity rows (an entity key the model reads as a
                # record feature, e.g. a depot) is the record's own value already: keep that one.
                new = [n for n in names if n not in out.columns]
                out = out.merge(part[[row, *new]], on=row, how="left", validate="one_to_one")
        out = out.sort_values(row).drop(columns=[row]).reset_index(drop=True)
        return fill_missing_history(self.project, out)

    def _feast_join(self, store: FeatureStore, projection: Any, frame: pd.DataFrame, names: list[str],
                    row: str) -> pd.DataFrame:
        """Feast's own point-in-time join of one view onto ``frame``, in bounded chunks of entity rows."""
        import numpy as np
        import pandas as pd

        step = max(1, int(os.environ.get("MLOPS_RETRIEVAL_CHUNK_ROWS", RETRIEVAL_CHUNK_ROWS)))
        refs = [f"{projection.name_to_use()}:{n}" for n in names]
        parts = []
        for start in range(0, max(len(frame), 1), step):
            chunk = frame.iloc[start:start + step]
            if len(frame) > step:
                log.info("point-in-time join of %s: entity rows %d-%d of %d", projection.name_to_use(), start + 1,
                         start + len(chunk), len(frame))
            try:
                parts.append(store.get_historical_features(entity_df=chunk, features=refs).to_df()[[row, *names]])
            except NotImplementedError as exc:
                # Feast's Dask store cannot sort a view's rows when no entity row matched the view at all.
                if "Divisions calculation failed" not in str(exc):
                    raise
                log.info("feature view %s: no value for any entity row", projection.name_to_use())
                parts.append(chunk[[row]].assign(**{n: np.nan for n in names}))
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]

    def _join_daily_view(self, store: FeatureStore, projection: Any, frame: pd.DataFrame, names: list[str],
                         row: str, *, key: str) -> pd.DataFrame:
        """Feast's join of a view stamped at midnights, run once per (entity, day) instead of once per event.

        For an event at ``t`` strictly inside day ``d`` the rows Feast may pick (``t - ttl <= ts <= t``,
        ``ts`` a midnight, ``ttl`` whole days) are those of ``[d - ttl + 1 day, d]`` whatever ``t`` is; the
        probe time ``d + 1 µs`` selects exactly those. An event exactly at midnight keeps its own time
        (its window also admits midnight ``d - ttl``).
        """
        import pandas as pd

        ts = frame[EVENT]
        day = ts.dt.floor("D")
        probe = ts.where(ts == day, day + pd.Timedelta(microseconds=1))
        probes = pd.DataFrame({key: frame[key], EVENT: probe})
        unique = probes.drop_duplicates().reset_index(drop=True)
        unique["__probe"] = range(len(unique))
        log.info("point-in-time join of %s: %d events -> %d (entity, day) probes", projection.name_to_use(),
                 len(frame), len(unique))
        joined = self._feast_join(store, projection, unique, names, "__probe")
        values = unique.merge(joined, on="__probe", how="left", validate="one_to_one").drop(columns="__probe")
        spread = probes.assign(**{row: frame[row]}).merge(values, on=[key, EVENT], how="left",
                                                          validate="many_to_one")
        return spread[[row, *names]]

    def _join_record_view(self, view: Any, frame: pd.DataFrame, names: list[str], row: str,
                          rows: pd.DataFrame | None = None) -> pd.DataFrame:
        """A record's own features: its row in the partition of its day (or in ``rows``), with Feast's as-of
        rule and TTL."""
        import pandas as pd

        from mlops_provider.domain import features as F

        rid = self.project.record_id
        table = record_table(self.project)
        ttl = view.ttl or dt.timedelta(0)
        wanted = frame[[row, rid, EVENT]].assign(**{rid: frame[rid].astype(str)})
        columns = [rid, EVENT, F.CREATED_TIMESTAMP, *names]

        def slices():
            if rows is not None:
                yield wanted, rows[columns]
                return
            for day in sorted(set(wanted[EVENT].dt.date)):
                if not self.lake.exists(table, day):
                    continue
                events = wanted[wanted[EVENT].dt.date == day]
                # Only the rows of these records (a batch of a large day reads its own slice of the partition).
                yield events, self.lake.read(table, day, columns=columns,
                                             filters=[(rid, "in", events[rid].unique().tolist())])

        found = []
        for events, part in slices():
            cand = events.merge(part.rename(columns={EVENT: "__feature_ts"}), on=rid, how="inner")
            feature_ts = pd.to_datetime(cand["__feature_ts"], utc=True)
            in_window = (feature_ts <= cand[EVENT]) & (feature_ts >= cand[EVENT] - pd.Timedelta(ttl))
            found.append(cand[in_window].assign(__feature_ts=feature_ts[in_window]))
        if not found:
            return wanted[[row]].assign(**{n: float("nan") for n in names})
        cand = pd.concat(found, ignore_index=True)
        latest = cand.sort_values(["__feature_ts", F.CREATED_TIMESTAMP], kind="stable").drop_duplicates(row, keep="last")
        return wanted[[row]].merge(latest[[row, *names]], on=row, how="left", validate="one_to_one")

    def get_online_features(self, entity_rows: list[dict[str, Any]], include_event_timestamps: bool = False,
                            entity: Entity | None = None) -> dict[str, list[Any]]:
        """Latest online aggregates for ``entity_rows`` (``[{key: value, ...}, ...]``), column-wise.

        With ``entity``, only that entity's aggregates (rows need only its key); else every entity's.
        """
        from mlops_provider.io import feast_repo as R

        refs = R.online_feature_references(self.project)
        if entity is not None:
            view = R.entity_view_name(self.project, entity)
            refs = [r for r in refs if r.split(":", 1)[0] == view]
        response = self.store.get_online_features(features=refs, entity_rows=entity_rows)
        return response.to_dict(include_event_timestamps=include_event_timestamps)


def _sql_name(name: str) -> str:
    """``name`` as a quoted SQLite identifier."""
    return '"' + name.replace('"', '""') + '"'


class _ConfigWithOnlineStore:
    """A Feast ``RepoConfig`` seen with another online store config (``RepoConfig.online_store`` is a cached
    property that ``model_copy`` does not reset)."""

    def __init__(self, config: Any, online_store: Any):
        self._config, self.online_store = config, online_store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._config, name)


def _refreshes_same_time(store: Any) -> bool:
    """Whether the online store is Redis, whose own rule keeps a stored row of the same event time."""
    from feast.infra.online_stores.redis import RedisOnlineStore

    return isinstance(store._get_provider().online_store, RedisOnlineStore)


def _not_older_than_online(provider: Any, config: Any, view: Any, rows: list[tuple]) -> list[tuple]:
    """The rows of ``rows`` (Feast's ``(entity key, values, event time, created)``) whose event time is at
    least the one stored online for their entity: the newest event time wins, a tie replaces."""
    from feast.utils import make_tzaware

    # One feature is enough: Redis returns the entity's stored event time with it.
    stored = provider.online_read(config, view, [row[0] for row in rows], requested_features=[view.features[0].name])
    return [row for row, (stored_ts, _) in zip(rows, stored, strict=True)
            if stored_ts is None or make_tzaware(stored_ts) <= make_tzaware(row[2])]


def _scalar(value: Any) -> Any:
    """A plain Python value (numpy scalars print as ``np.float64(...)`` in messages)."""
    return value.item() if hasattr(value, "item") else value


def _same(online: Any, offline: Any) -> bool:
    """Equal as stored values: numbers within float round-off, NaN/None both missing."""
    def missing(v: Any) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v))

    if missing(online) or missing(offline):
        return missing(online) and missing(offline)
    if isinstance(online, int | float) and not isinstance(online, bool):
        try:
            return math.isclose(float(online), float(offline), rel_tol=1e-9, abs_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return str(online) == str(offline)
