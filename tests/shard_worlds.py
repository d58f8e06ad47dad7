"""What the tests of the sharded stages share: a trained champion and a day of records to score in shards, and a
partition rewritten in small row groups (what a big day's writer produces) for the time of a test.

:func:`champion_world` builds the stage tests' world on a synthetic task project (tests/unit/stages/test_tasks.py)
under a private MLOPS_HOME: v1 trained and promoted champion, optionally v2 as challenger, and the records of
``SCORE_DAY`` in the lake. :func:`in_row_groups` is for the operator tests, whose champion and days come from the
operators' session pipeline (tests/unit/operators/conftest.py).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest

from tests.unit.stages.test_tasks import (
    CATEGORICAL,
    FEATURES,
    SCORE_DAY,
    FeatureStore,
    project_for,
    synthetic,
)


@contextlib.contextmanager
def champion_world(tmp_path_factory, task: str, name: str, *, rows: int, group_rows: int | None = None,
                   challenger: bool = False, env: dict[str, str] | None = None,
                   config: dict[str, dict[str, Any]] | None = None,
                   edit_day: Callable[[pd.DataFrame], None] | None = None) -> Iterator[dict[str, Any]]:
    """A ``task`` project with a champion and ``rows`` records of ``SCORE_DAY`` in the lake, for the block.

    ``group_rows``: the records partition's row groups (default one); ``challenger``: a second version
    (other data and seed) as challenger, to shadow-score; ``env``: variables set for the block (batch sizes);
    ``config``: sections merged into the project's configuration (``{"monitoring": {"sample_rows": 1000}}``);
    ``edit_day``: changes the day's frame in place before it is written (missing values).

    Yields ``project``, ``lake``, ``reports``, ``store`` (the day's point-in-time features), ``day`` (the
    frame, labels included), ``uri`` (tracking and registry) and ``client``.
    """
    import pyarrow as pa
    from mlops_provider.config import paths
    from mlops_provider.config.project import ProjectConfig
    from mlops_provider.domain.layout import records_table
    from mlops_provider.io import model_store
    from mlops_provider.io.lake import Lake
    from mlops_provider.stages import train as training
    from mlops_provider.stages.promote import gate_and_promote

    root = tmp_path_factory.mktemp(f"{name}-{task}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(root / "mlops"))
        for key, value in (env or {}).items():
            mp.setenv(key, value)
        project = project_for(task, root)
        if config:
            raw = json.loads(json.dumps(project.raw))
            for section, values in config.items():
                raw[section] = {**raw.get(section, {}), **values}
            project = ProjectConfig(path=project.path, raw=raw)
        uri = paths.mlflow_tracking_uri()
        client = model_store.client_for(uri)
        common = dict(feature_columns=FEATURES, categorical_columns=CATEGORICAL, tracking_uri=uri, dataset_sources=[],
                      hpo_trials=1)
        training.train_and_register(project, synthetic(task, 6, 300), run_tags={"airflow_run_id": "a"}, **common)
        gate_and_promote(project, client)
        if challenger:
            second = training.train_and_register(project, synthetic(task, 6, 300, seed=5),
                                                 run_tags={"airflow_run_id": "b"}, seed=3, **common)
            client.set_registered_model_alias(project.model_name, "challenger", second["version"])
        lake, reports = Lake((root / "lake").as_uri()), Lake((root / "reports").as_uri())
        day = synthetic(task, 1, rows, start=SCORE_DAY, seed=11)
        if edit_day is not None:
            edit_day(day)
        table = pa.Table.from_pandas(day.drop(columns=["target"]), preserve_index=False)
        lake.write(records_table(project), SCORE_DAY, table.to_batches(max_chunksize=group_rows) if group_rows else table)
        yield {"project": project, "lake": lake, "reports": reports, "store": FeatureStore(day), "day": day, "uri": uri,
               "client": client}


@contextlib.contextmanager
def in_row_groups(lake, table: str, day: str, group_rows: int) -> Iterator[Any]:
    """Partition ``day`` of ``table`` rewritten with the same rows in row groups of ``group_rows``, for the
    block; then written back in one row group (as the session's pipeline wrote it). Yields the rows (Arrow)."""
    import pyarrow as pa

    rows = lake.read_arrow(table, day)
    lake.write(table, day, rows.to_batches(max_chunksize=group_rows))
    try:
        yield rows
    finally:
        lake.write(table, day, pa.Table.from_batches(rows.to_batches()))
