"""A day's features computed in shards (entity keys by hash, records by row group; plan, one task per shard,
commit) are the partitions of the unsharded features stage (issue 16), for two entities and every declared
aggregation; the commit names a missing shard and leaves the day's partitions alone; a retried shard
replaces its own output; a day within ``shard_rows`` is not split."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from devkit.datagen import fraud
from tests.unit.domain.test_features import declared_project

DAYS = [dt.date(2024, 5, 1) + dt.timedelta(days=i) for i in range(3)]
ROWS, GROUP_ROWS, SHARD_ROWS = 2600, 400, 1000  # the last day: 7 row groups -> 3 shards


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import pyarrow as pa
    from mlops_provider.domain.layout import records_table
    from mlops_provider.io.lake import Lake
    from mlops_provider.stages import features as SF

    root = tmp_path_factory.mktemp("feature-shards")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(root / "home"))
        project = declared_project(root)
        plain, sharded = Lake((root / "plain").as_uri()), Lake((root / "sharded").as_uri())
        for day in DAYS:
            batch = fraud.generate(day, ROWS if day == DAYS[-1] else 900).drop(columns=["is_fraud"])
            table = pa.Table.from_pandas(batch, preserve_index=False)
            for lake in (plain, sharded):
                lake.write(records_table(project), day, table.to_batches(max_chunksize=GROUP_ROWS))
        SF.compute_entity_features(project, plain, DAYS[-1])
        SF.compute_record_features(project, plain, DAYS[-1])
        yield {"project": project, "plain": plain, "sharded": sharded, "SF": SF}


def _partitions(world, lake):
    from mlops_provider.domain.features import CREATED_TIMESTAMP
    from mlops_provider.domain.layout import entity_table, record_table

    project = world["project"]
    tables = [entity_table(project, e.name) for e in project.feature_spec.entities] + [record_table(project)]
    return {t: lake.read(t, DAYS[-1]).drop(columns=[CREATED_TIMESTAMP]) for t in tables}


def test_sharded_features_equal_unsharded(world):
    SF, project, lake = world["SF"], world["project"], world["sharded"]
    plan = SF.plan_feature_shards(project, lake, DAYS[-1], SHARD_ROWS)
    assert [s["row_groups"] for s in plan["shards"]] == [[0, 1, 2], [3, 4, 5], [6]]
    assert {s["buckets"] for s in plan["shards"]} == {3}
    results = [SF.compute_feature_shard(project, lake, plan, s["index"]) for s in plan["shards"]]
    # Every shard holds some of each entity's keys, none holds them all.
    for entity in project.feature_spec.entities:
        counts = [r["entities"][entity.name] for r in results]
        assert all(0 < c for c in counts) and len(set(counts)) > 1, counts
    summary = SF.commit_feature_shards(project, lake, plan)
    assert summary["shards"] == 3 and summary["records"] == ROWS

    expected, actual = _partitions(world, world["plain"]), _partitions(world, lake)
    for table, frame in expected.items():
        assert len(frame) >= 8, table
        pd.testing.assert_frame_equal(actual[table], frame, check_exact=False, rtol=1e-12, obj=table)
    # The staging tables are gone once the day is committed.
    assert not lake.list_files(f"_shards/{project.name}")


def test_commit_names_a_missing_shard_and_keeps_the_published_day(world, tmp_path):
    from mlops_provider.domain.layout import record_table
    from mlops_provider.exceptions import MlopsError

    SF, project, lake = world["SF"], world["project"], world["plain"]
    before = lake.read(record_table(project), DAYS[-1])
    plan = SF.plan_feature_shards(project, lake, DAYS[-1], SHARD_ROWS)
    SF.compute_feature_shard(project, lake, plan, 0)
    SF.compute_feature_shard(project, lake, plan, 2)
    with pytest.raises(MlopsError, match=r"feature shard table\(s\) not computed .*00001") as err:
        SF.commit_feature_shards(project, lake, plan)
    assert "clear the failed compute_shard tasks" in str(err.value)
    pd.testing.assert_frame_equal(lake.read(record_table(project), DAYS[-1]), before)
    # A retried shard replaces its staging tables; then the commit goes through.
    SF.compute_feature_shard(project, lake, plan, 1)
    SF.compute_feature_shard(project, lake, plan, 1)
    assert SF.commit_feature_shards(project, lake, plan)["records"] == ROWS


def test_a_day_within_shard_rows_is_not_split(world):
    SF = world["SF"]
    assert SF.plan_feature_shards(world["project"], world["plain"], DAYS[-1], ROWS) is None


def test_key_buckets_are_stable_and_cover_every_bucket():
    from mlops_provider.stages.features import key_buckets

    keys = [f"k{i}" for i in range(1000)] + [17, 17.0]
    first, again = key_buckets(keys, 4), key_buckets(list(keys), 4)
    assert (first == again).all() and set(first) == {0, 1, 2, 3}
