"""Days larger than ``runs.shard_rows`` through the real DAGs with ``dag.test()`` (issue 16): the ingest DAG
validates through ``validate_shard``, the features DAG
expands one ``compute_shard`` task per shard and commits the day's partitions, which equal the unsharded
stage's; the score DAG scores through ``score_shard`` and the monitor DAG through ``monitor_shard``; the chain (training, promotion, monitoring) runs on
top, as the scheduler chains it."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
import yaml

pytestmark = pytest.mark.slow

PROJECT, ROWS, SHARD_ROWS, DAYS, FIRST_TRAIN = "deliveries", 2500, 1000, 9, 8


@pytest.fixture(scope="module")
def run(airflow_db, tmp_path_factory):
    from mlops_provider.config import paths
    from mlops_provider.io import model_store

    from devkit.simulation import Simulation

    root = tmp_path_factory.mktemp("sharded-days")
    raw = yaml.safe_load((paths.projects_dir() / f"{PROJECT}.yaml").read_text())
    raw.setdefault("runs", {})["shard_rows"] = SHARD_ROWS
    (root / "projects").mkdir()
    (root / "projects" / f"{PROJECT}.yaml").write_text(yaml.safe_dump(raw))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(root / "mlops"))
        mp.setenv("MLOPS_PROJECTS_DIR", str(root / "projects"))
        model_store.clear_cache()
        sim = Simulation(PROJECT, start=dt.date(2024, 2, 1), rows=ROWS, echo=print)
        for number in range(1, DAYS + 1):
            sim.simulate_day(number, nightly_train=number >= FIRST_TRAIN)
        yield {"sim": sim, "root": root}
        model_store.clear_cache()


def test_every_run_succeeds_with_its_shards(run):
    sim = run["sim"]
    failed = [(r.dag_id, r.day, r.tasks) for r in sim.results if not r.ok]
    assert not failed, failed
    ingested = [r for r in sim.results if r.dag_id.endswith("__ingest")]
    assert len(ingested) == DAYS
    for result in ingested:  # one row group (row groups are >= 10,000 rows): one validation shard
        assert result.tasks["validate_shard"] == "success", result.tasks
        assert result.returns["validate"]["shards"] == 1 and result.returns["validate"]["rows"] == ROWS
        # More rows than shard_rows: the extract checked the whole-batch expectations beside its staging write.
        assert result.returns["extract"]["whole_batch"]["success"], result.returns["extract"]
    features = [r for r in sim.results if r.dag_id.endswith("__features")]
    assert len(features) == DAYS
    for result in features:
        assert result.tasks["compute_shard"] == "success", result.tasks
        assert result.returns["compute_features"]["shards"] == 3  # ceil(2500 / 1000)
        assert result.returns["compute_features"]["records"] == ROWS
    scored = [r for r in sim.results if r.dag_id.endswith("__score") and r.ok]
    assert scored and all(r.tasks["score_shard"] == "success" for r in scored)
    assert all(r.returns["score"]["shards"] >= 1 and r.returns["score"]["rows"] == ROWS for r in scored)
    monitored = [r for r in sim.results if r.dag_id.endswith("__monitor")]
    assert monitored and all(r.ok and r.tasks["monitor_shard"] == "success" for r in monitored)
    assert all(r.returns["monitor"]["kind"] for r in monitored)


def test_sharded_partitions_equal_the_unsharded_stage(run):
    import pandas as pd
    from mlops_provider.domain.features import CREATED_TIMESTAMP
    from mlops_provider.domain.layout import entity_table, record_table
    from mlops_provider.io.lake import Lake
    from mlops_provider.stages.features import compute_entity_features, compute_record_features

    sim, root = run["sim"], run["root"]
    project, day = sim.project, sim.day(DAYS)
    shutil.copytree(root / "mlops" / "lake" / PROJECT / "records", root / "plain" / PROJECT / "records")
    plain, lake = Lake((root / "plain").as_uri()), Lake((root / "mlops" / "lake").as_uri())
    compute_entity_features(project, plain, day)
    compute_record_features(project, plain, day)
    tables = [entity_table(project, e.name) for e in project.feature_spec.entities] + [record_table(project)]
    assert len(tables) == 3
    for table in tables:
        expected = plain.read(table, day).drop(columns=[CREATED_TIMESTAMP])
        assert len(expected) > 1, table
        pd.testing.assert_frame_equal(lake.read(table, day).drop(columns=[CREATED_TIMESTAMP]), expected, obj=table)
    # Nothing staged is left behind once every day is committed.
    assert not lake.list_files(f"_shards/{PROJECT}")
