"""The labels that arrived on a day joined with the predictions of the label window (``labelled_predictions``):
streamed by row groups through an Arrow hash join, a chunk at a time, the rows are those of the pandas inner
merge of the whole window it replaced (same rows, order, columns and values): duplicate labels, labels of
several days, ids stored as another type than the predictions', multiclass days with different classes,
ids that label nothing."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from tests.unit.stages.test_tasks import project_for

DAY = dt.date(2024, 5, 12)
DELAY = 2


def _merged(project, lake, day):
    """The former implementation: every prediction of the window read into pandas, merged on the ids as strings."""
    from mlops_provider.domain import scoring
    from mlops_provider.domain.layout import days, labels_table, predictions_table

    rid, label, table = project.record_id, project.label_column, predictions_table(project)
    labels = lake.read(labels_table(project), day, columns=[rid, label])
    first = day - dt.timedelta(days=project.label_delay_days + 1)
    parts = []
    for d in days(first, day):
        if lake.exists(table, d):
            names = lake.read_arrow(table, d).schema.names
            columns = ([rid, scoring.PREDICTION, *scoring.proba_columns(names)] if project.task == "multiclass"
                       else [rid, scoring.SCORE])
            parts.append(lake.read(table, d, columns=columns))
    scored = pd.concat(parts, ignore_index=True)
    return scored.merge(labels.astype({rid: str}), on=rid, how="inner")


def _world(task, tmp_path, label_ids):
    from mlops_provider.config.project import ProjectConfig
    from mlops_provider.domain import scoring
    from mlops_provider.domain.layout import labels_table, predictions_table
    from mlops_provider.io.lake import Lake

    loaded = project_for(task, tmp_path)
    raw = json.loads(json.dumps(loaded.raw))
    raw["label"]["delay_days"] = DELAY
    project = ProjectConfig(path=loaded.path, raw=raw)
    lake = Lake((tmp_path / "lake").as_uri())
    rng = np.random.default_rng(5)
    classes = {0: ["high", "low"], 1: ["high", "low", "mid"], 2: ["low", "mid"], 3: ["mid", "high"], 4: ["low"]}
    for back in range(DELAY + 3):  # the window's days, and the day before it (never read)
        d = DAY - dt.timedelta(days=back)
        rows = 700 + 50 * back
        frame = pd.DataFrame({"rid": [f"{back}{i}" for i in range(rows)], "other": rng.normal(size=rows)})
        if task == "multiclass":
            names = classes[back]
            probas = rng.dirichlet(np.ones(len(names)), size=rows)
            frame[scoring.PREDICTION] = np.array(names, dtype=object)[probas.argmax(axis=1)]
            for k, name in enumerate(names):
                frame[f"{scoring.PROBA_PREFIX}{name}"] = probas[:, k]
        else:
            frame[scoring.SCORE] = rng.random(rows)
        frame.loc[frame.index % 97 == 5, "rid"] = None  # a missing id labels nothing
        lake.write(predictions_table(project), d, frame, row_group_rows=128)  # many row groups per day
    values = {"binary": [0, 1], "multiclass": ["high", "low", "mid"], "regression": [1.5, 20.0]}[task]
    labels = pd.DataFrame({"rid": label_ids, "target": [values[i % len(values)] for i in range(len(label_ids))]})
    lake.write(labels_table(project), DAY, labels)
    return project, lake


IDS = (
    [f"2{i}" for i in range(0, 740, 3)]  # labels of the day the delay points at
    + [f"3{i}" for i in range(5, 300, 7)]  # of the first day of the window, in another order
    + [f"0{i}" for i in (4, 8)] * 2  # duplicates: two rows per prediction
    + [f"1{i}" for i in range(40, 0, -1)]  # descending
    + ["4000", "4001", "nothing", None]  # the day before the window; ids that label nothing; a missing id
)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize(("batch_rows", "join_rows"), [(100, 1), (100_000, 2_000_000)])
def test_the_labelled_rows_are_the_merge_of_the_window(task, batch_rows, join_rows, tmp_path, monkeypatch):
    from mlops_provider.stages import monitor

    monkeypatch.setenv("MLOPS_MONITOR_BATCH_ROWS", str(batch_rows))
    monkeypatch.setattr(monitor, "LABEL_JOIN_ROWS", join_rows)  # 1: a join per chunk of the labels' size
    project, lake = _world(task, tmp_path, IDS)
    labelled = monitor.labelled_predictions(project, lake, DAY)
    expected = _merged(project, lake, DAY)
    assert len(expected) == len(labelled) > 300
    assert str(labelled["rid"].dtype) in ("string[pyarrow]", "large_string[pyarrow]")  # not Python strings
    pd.testing.assert_frame_equal(labelled.astype({"rid": object}), expected)


def test_ids_stored_as_numbers_are_matched_as_their_strings(tmp_path):
    from mlops_provider.stages.monitor import labelled_predictions

    project, lake = _world("binary", tmp_path, [int(i) for i in IDS[:40]] + [20])  # a duplicate too
    labelled = labelled_predictions(project, lake, DAY)
    pd.testing.assert_frame_equal(labelled.astype({"rid": object}), _merged(project, lake, DAY))
    assert len(labelled) == 40 and list(labelled["rid"][:2]) == ["20", "20"]  # "2102" is a missing id there


def test_no_labels_or_none_that_label_a_prediction_is_none(tmp_path):
    from mlops_provider.domain.layout import labels_table
    from mlops_provider.stages.monitor import labelled_predictions

    project, lake = _world("binary", tmp_path, ["nothing", "4000"])
    assert labelled_predictions(project, lake, DAY) is None
    assert labelled_predictions(project, lake, DAY + dt.timedelta(days=1)) is None  # no labels arrived
    lake.write(labels_table(project), DAY + dt.timedelta(days=9), pd.DataFrame({"rid": ["20"], "target": [1]}))
    assert labelled_predictions(project, lake, DAY + dt.timedelta(days=9)) is None  # no predictions in the window


def test_categorical_labels_stay_categorical(tmp_path):
    from mlops_provider.domain.layout import labels_table
    from mlops_provider.stages.monitor import labelled_predictions

    project, lake = _world("multiclass", tmp_path, IDS)
    labels = lake.read(labels_table(project), DAY)
    lake.write(labels_table(project), DAY, labels.astype({"target": "category"}))  # dictionary-encoded in Parquet
    labelled = labelled_predictions(project, lake, DAY)
    assert isinstance(labelled["target"].dtype, pd.CategoricalDtype)
    pd.testing.assert_frame_equal(labelled.astype({"rid": object}), _merged(project, lake, DAY))


def test_row_groups_whose_ids_lie_outside_the_labels_are_not_read(tmp_path, monkeypatch, caplog):
    """Labels of one day only (ids "2..."): the other days' row groups ("0...", "1...", "3...", "4...") are
    skipped by their id statistics, and the rows are still the merge's."""
    import logging

    import pyarrow.parquet as pq
    from mlops_provider.domain.layout import predictions_table
    from mlops_provider.stages import monitor

    project, lake = _world("binary", tmp_path, [f"2{i}" for i in range(0, 740, 3)])
    read = []
    iter_batches = pq.ParquetFile.iter_batches

    def counting(self, *args, row_groups=None, **kwargs):
        read.append(self.metadata.num_row_groups if row_groups is None else len(row_groups))
        return iter_batches(self, *args, row_groups=row_groups, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counting)
    with caplog.at_level(logging.INFO, logger=monitor.__name__):
        labelled = monitor.labelled_predictions(project, lake, DAY)
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", iter_batches)
    pd.testing.assert_frame_equal(labelled.astype({"rid": object}), _merged(project, lake, DAY))
    day2 = pq.ParquetFile(lake.partition_path(predictions_table(project), DAY - dt.timedelta(days=2)),
                          filesystem=lake.fs).metadata.num_row_groups
    assert sum(read) == day2, "only the row groups of the labelled day are read"
    skipped = [r.getMessage() for r in caplog.records if "skipped unread" in r.getMessage()]
    assert skipped and " 0 more skipped" not in skipped[0]
