"""A large batch validated in shards: same verdict, same failure counts and same published partition as one task.

The staged batch is split into whole row groups (row groups are at least 10,000 rows, so 25,000 rows make
three shards at ``shard_rows`` 10,000); each shard checks the per-value expectations, the gate merges their
results with the whole-batch ones (row count, uniqueness, mean, ``mostly``) run on the columns they name.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from mlops_provider.config import paths
from mlops_provider.domain.shards import staging_dir
from mlops_provider.exceptions import DataValidationError, MlopsError
from mlops_provider.io.lake import Lake
from mlops_provider.io.sources import LandingSource
from mlops_provider.io.validation import checked_per_shard, split_suite
from mlops_provider.stages.ingest import (
    VALIDATION_STAGE,
    gate_day,
    plan_validation_shards,
    records_table,
    stage_day,
    staging_table,
    validate_shard,
)

from devkit.datagen.landing import write_landing_day

DAY = dt.date(2024, 1, 10)
ROWS, SHARD_ROWS = 25_000, 10_000


@pytest.fixture
def world(mlops_home, fraud_project, monkeypatch):
    # Row groups of shard_rows / 8 = 10,000 rows: the 25,000-row batch is staged as three row groups.
    monkeypatch.setitem(fraud_project.runs, "shard_rows", 8 * SHARD_ROWS)
    project, lake, reports = fraud_project, Lake(), Lake(paths.reports_uri())
    landing = paths.landing_dir() / "fraud"
    write_landing_day(project, landing, DAY, rows=ROWS)
    stage_day(project, lake, LandingSource(landing), DAY, run_id="r")
    return project, lake, reports


def _sharded_gate(project, lake, reports, run_id="sharded", shard_rows=SHARD_ROWS, shards=3):
    plan = plan_validation_shards(project, lake, DAY, shard_rows)
    assert plan is not None and len(plan["shards"]) == shards
    for shard in reversed(plan["shards"]):  # any order, any worker
        validate_shard(project, lake, reports, plan, shard["index"], run_id=run_id)
    return gate_day(project, lake, reports, DAY, run_id=run_id, plan=plan)


def _restage(project, lake, table):
    lake.write(staging_table(project), DAY, table, row_group_rows=SHARD_ROWS)


def _failure_counts(failed):
    """Each failed expectation and its unexpected count (examples may come from other rows)."""
    return sorted(line.split("; e.g.")[0] for line in failed)


def test_a_clean_batch_in_shards_publishes_what_one_task_publishes(world):
    project, lake, reports = world
    staged = lake.read_arrow(staging_table(project), DAY)
    sharded = _sharded_gate(project, lake, reports)
    published = lake.read_arrow(records_table(project), DAY)
    assert sharded["success"] and sharded["shards"] == 3 and sharded["rows"] == ROWS
    assert not lake.list_files(staging_dir(project, VALIDATION_STAGE, DAY)), "shard results dropped"
    assert not lake.exists(staging_table(project), DAY)

    _restage(project, lake, staged)
    whole = gate_day(project, lake, reports, DAY, run_id="one-task")
    assert whole["evaluated"] == sharded["evaluated"], "every expectation evaluated once either way"
    assert lake.read_arrow(records_table(project), DAY).equals(published)


def test_bad_values_in_different_shards_add_up_and_quarantine_the_whole_batch(world):
    project, lake, reports = world
    table = lake.read_arrow(staging_table(project), DAY)
    channel = table.column("channel").to_pylist()
    ids = table.column("transaction_id").to_pylist()
    for row in (5, 12_345, 24_000):  # shards 0, 1 and 2
        channel[row] = "teleport"
    ids[23_000] = ids[7]  # a duplicate across shards: only the whole-batch check can see it
    bad = table.set_column(table.schema.get_field_index("channel"), "channel", pa.array(channel))
    bad = bad.set_column(bad.schema.get_field_index("transaction_id"), "transaction_id", pa.array(ids))

    _restage(project, lake, bad)
    with pytest.raises(DataValidationError) as sharded:
        _sharded_gate(project, lake, reports)
    assert not lake.exists(records_table(project), DAY), "a bad batch never reaches the lake"
    assert not lake.exists(staging_table(project), DAY), "moved to quarantine"
    assert not lake.list_files(staging_dir(project, VALIDATION_STAGE, DAY))
    assert "quarantined" in str(sharded.value) and "teleport" in str(sharded.value)

    _restage(project, lake, bad)
    with pytest.raises(DataValidationError) as whole:
        gate_day(project, lake, reports, DAY, run_id="one-task")
    assert _failure_counts(sharded.value.failed) == _failure_counts(whole.value.failed)
    assert any(line.startswith("expect_column_values_to_be_in_set[channel]: 3 unexpected")
               for line in sharded.value.failed)
    assert any(line.startswith("expect_column_values_to_be_unique[transaction_id]: 2 unexpected")
               for line in sharded.value.failed)


def test_a_missing_shard_result_is_named_and_the_batch_stays_staged(world):
    project, lake, reports = world
    plan = plan_validation_shards(project, lake, DAY, SHARD_ROWS)
    validate_shard(project, lake, reports, plan, 0, run_id="r")
    with pytest.raises(MlopsError, match="2 validation shard result"):
        gate_day(project, lake, reports, DAY, run_id="r", plan=plan)
    assert lake.exists(staging_table(project), DAY) and not lake.exists(records_table(project), DAY)


def test_a_batch_within_shard_rows_is_validated_in_one_task(world):
    project, lake, _ = world
    assert plan_validation_shards(project, lake, DAY, ROWS) is None


def test_staged_row_groups_follow_shard_rows(world):
    project, lake, _ = world
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(lake.partition_path(staging_table(project), DAY), filesystem=lake.fs).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [10_000, 10_000, 5_000]


@pytest.mark.parametrize(("expectation", "per_shard"), [
    ({"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "c", "value_set": [1]}}, True),
    ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "c"}}, True),
    ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "c", "mostly": 0.99}}, False),
    ({"type": "expect_column_values_to_be_unique", "kwargs": {"column": "c"}}, False),
    ({"type": "expect_column_values_to_be_increasing", "kwargs": {"column": "c"}}, False),
    ({"type": "expect_column_mean_to_be_between", "kwargs": {"column": "c", "min_value": 1}}, False),
    ({"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}, False),
    ({"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": ["c"]}}, True),
    ({"type": "expect_column_pair_values_to_be_equal", "kwargs": {"column_A": "a", "column_B": "b"}}, True),
])
def test_which_expectations_a_shard_checks_alone(expectation, per_shard):
    assert checked_per_shard(expectation) is per_shard


# -- the whole-batch expectations checked by the extract, beside its staging write ------------------------
@pytest.fixture
def extracted(mlops_home, fraud_project, monkeypatch):
    """A batch of more than ``runs.shard_rows`` rows, staged by the extract with the reports store."""
    monkeypatch.setitem(fraud_project.runs, "shard_rows", 16_000)  # row groups of 10,000; 2 shards of the day
    project, lake, reports = fraud_project, Lake(), Lake(paths.reports_uri())
    landing = paths.landing_dir() / "fraud"
    write_landing_day(project, landing, DAY, rows=ROWS)
    summary = stage_day(project, lake, LandingSource(landing), DAY, run_id="r", reports=reports)
    return project, lake, reports, summary


def _whole_batch_checks_fail(monkeypatch):
    """From here on, any whole-batch check in this process fails the test (the gate must not run one)."""
    from mlops_provider.stages import ingest

    def refuse(*args, **kwargs):
        raise AssertionError("the gate checked the whole batch again")

    monkeypatch.setattr(ingest, "_run_whole_batch", refuse)


def test_the_extract_checks_the_whole_batch_and_the_gate_takes_its_result(extracted, monkeypatch):
    project, lake, reports, summary = extracted
    _, whole = split_suite(project)
    assert summary["whole_batch"] == {"expectations": len(whole), "success": True}
    staged = lake.read_arrow(staging_table(project), DAY)

    _whole_batch_checks_fail(monkeypatch)
    gated = _sharded_gate(project, lake, reports, shard_rows=16_000, shards=2)
    assert gated["success"] and gated["rows"] == ROWS
    assert not lake.list_files(staging_dir(project, VALIDATION_STAGE, DAY)), "the extract's result dropped too"

    monkeypatch.undo()
    _restage(project, lake, staged.replace_schema_metadata(None))
    one_task = gate_day(project, lake, reports, DAY, run_id="one-task")
    assert one_task["evaluated"] == gated["evaluated"], "every expectation evaluated once either way"


def test_a_result_for_another_staging_of_the_day_is_never_taken(extracted):
    project, lake, reports, summary = extracted
    table = lake.read_arrow(staging_table(project), DAY)
    ids = table.column("transaction_id").to_pylist()
    ids[23_000] = ids[7]  # a duplicate across shards: only the whole-batch check can see it
    bad = table.set_column(table.schema.get_field_index("transaction_id"), "transaction_id", pa.array(ids))
    # Staged again (as a rerun's extract would, without checking it): the clean batch's result stays staged.
    _restage(project, lake, bad.replace_schema_metadata(None))
    assert summary["whole_batch"]["success"] and lake.list_files(staging_dir(project, VALIDATION_STAGE, DAY))
    with pytest.raises(DataValidationError, match=r"expect_column_values_to_be_unique\[transaction_id\]: 2 unexpected"):
        _sharded_gate(project, lake, reports, shard_rows=16_000, shards=2)
    assert not lake.exists(records_table(project), DAY)


def test_the_same_batch_id_with_other_rows_is_not_taken(extracted):
    project, lake, reports, _ = extracted
    table = lake.read_arrow(staging_table(project), DAY).slice(0, ROWS - 1)  # keeps the batch id metadata
    ids = table.column("transaction_id").to_pylist()
    ids[-1] = ids[0]
    _restage(project, lake, table.set_column(table.schema.get_field_index("transaction_id"), "transaction_id",
                                             pa.array(ids)))
    with pytest.raises(DataValidationError, match=r"expect_column_values_to_be_unique\[transaction_id\]"):
        _sharded_gate(project, lake, reports, shard_rows=16_000, shards=2)


def test_a_failed_whole_batch_check_in_the_extract_leaves_it_to_the_gate(mlops_home, fraud_project, monkeypatch,
                                                                         caplog):
    from mlops_provider.stages import ingest

    monkeypatch.setitem(fraud_project.runs, "shard_rows", 16_000)
    project, lake, reports = fraud_project, Lake(), Lake(paths.reports_uri())
    landing = paths.landing_dir() / "fraud"
    write_landing_day(project, landing, DAY, rows=ROWS)
    real = ingest._run_whole_batch
    monkeypatch.setattr(ingest, "_run_whole_batch", lambda *a, **k: (_ for _ in ()).throw(OSError("reports down")))
    summary = stage_day(project, lake, LandingSource(landing), DAY, run_id="r", reports=reports)
    assert "whole_batch" not in summary and "the gate will check them" in caplog.text
    assert not lake.list_files(staging_dir(project, VALIDATION_STAGE, DAY))
    monkeypatch.setattr(ingest, "_run_whole_batch", real)
    assert _sharded_gate(project, lake, reports, shard_rows=16_000, shards=2)["success"]
