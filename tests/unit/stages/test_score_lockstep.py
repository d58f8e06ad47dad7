"""Scoring reads the record-feature partition in lockstep with the records (issue 16): the same features as
a read by record id, without a scan of the feature partition per batch; a partition out of the records'
order is detected and read by record id instead."""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd
import pytest

from devkit.datagen import fraud

DAYS = [dt.date(2024, 5, 1), dt.date(2024, 5, 2)]
ROWS = 900


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    home = tmp_path_factory.mktemp("lockstep-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLOPS_HOME", str(home))
    from mlops_provider.config.project import load_project
    from mlops_provider.hooks.feast import FeastHook
    from mlops_provider.io.lake import Lake
    from mlops_provider.stages import features as SF

    project = load_project("fraud")
    lake = Lake()
    for day in DAYS:
        lake.write("fraud/records", day, fraud.generate(day, ROWS).drop(columns=["is_fraud"]))
        SF.compute_entity_features(project, lake, day)
        SF.compute_record_features(project, lake, day)
    store = FeastHook(project, lake=lake).feature_store()
    store.apply()
    yield {"project": project, "lake": lake, "store": store}
    mp.undo()


def _entity_df(project, batch) -> pd.DataFrame:
    """The entity rows the scorer builds from a records batch."""
    from mlops_provider.domain import features as F
    from mlops_provider.stages.training_set import utc_timestamps

    records = batch.to_pandas().rename(columns={project.event_timestamp: F.EVENT_TIMESTAMP})
    records[F.EVENT_TIMESTAMP] = utc_timestamps(records[F.EVENT_TIMESTAMP])
    for key in project.entity_keys:
        records[key] = records[key].astype(str)
    return records


def _record_batches(project, lake, day, size):
    import pyarrow.parquet as pq
    from mlops_provider.domain.layout import records_table

    source = pq.ParquetFile(lake.partition_path(records_table(project), day), filesystem=lake.fs)
    columns = list(dict.fromkeys([project.record_id, *project.entity_keys, project.event_timestamp]))
    return source.iter_batches(batch_size=size, columns=columns)


def test_lockstep_rows_give_the_same_features_as_a_read_by_record_id_without_reading_by_id(world, monkeypatch):
    from mlops_provider.domain.layout import record_table
    from mlops_provider.stages.score import _LockstepRows

    project, lake, store, day = world["project"], world["lake"], world["store"], DAYS[1]
    # Feature batches of another size than the record batches: the reader re-slices across them.
    rows = _LockstepRows(project, lake, day, batch_rows=173)
    expected = []
    for batch in _record_batches(project, lake, day, 250):
        entity_df = _entity_df(project, batch)
        expected.append((entity_df, store.get_historical_features(entity_df), rows.take(batch.column(project.record_id))))

    reads = []
    original = type(lake).read

    def counting_read(self, table, *args, **kwargs):
        reads.append(table)
        return original(self, table, *args, **kwargs)

    monkeypatch.setattr(type(lake), "read", counting_read)
    for entity_df, by_id, aligned in expected:
        assert aligned is not None and len(aligned) == len(entity_df)
        lockstep = store.get_historical_features(entity_df, record_rows=aligned)
        pd.testing.assert_frame_equal(lockstep, by_id)
    assert record_table(project) not in reads, reads
    assert rows.aligned and sum(len(e) for e, _, _ in expected) == ROWS


def test_a_feature_partition_out_of_the_records_order_is_read_by_record_id(world, caplog):
    from mlops_provider.domain.layout import record_table
    from mlops_provider.stages.score import _LockstepRows

    project, lake, day = world["project"], world["lake"], DAYS[0]
    table = record_table(project)
    original = lake.read(table, day)
    lake.write(table, day, original.sample(frac=1.0, random_state=3).reset_index(drop=True))
    try:
        rows = _LockstepRows(project, lake, day, batch_rows=300)
        with caplog.at_level(logging.WARNING, logger="mlops_provider.stages.score"):
            taken = [rows.take(b.column(project.record_id)) for b in _record_batches(project, lake, day, 300)]
        assert taken == [None] * len(taken) and not rows.aligned
        assert "not in the records' order" in caplog.text and "reading them by record id" in caplog.text
    finally:
        lake.write(table, day, original)


def test_a_missing_feature_partition_falls_back(world):
    from mlops_provider.stages.score import _LockstepRows

    project, lake = world["project"], world["lake"]
    rows = _LockstepRows(project, lake, dt.date(2030, 1, 1), batch_rows=100)
    assert not rows.aligned
    assert rows.take(next(_record_batches(project, lake, DAYS[0], 10)).column(project.record_id)) is None
