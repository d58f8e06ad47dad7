"""The lake: atomic, idempotent partition writes and range reads."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest
from mlops_provider.domain.layout import days
from mlops_provider.io.lake import Lake


def test_write_replaces_partition_and_reads_range(tmp_path):
    lake = Lake((tmp_path / "lake").as_uri())
    day = dt.date(2024, 1, 2)
    lake.write("p/t", day, pd.DataFrame({"a": [1, 2, 3]}))
    lake.write("p/t", day, pd.DataFrame({"a": [4, 5]}))  # a rerun replaces, never appends
    lake.write("p/t", dt.date(2024, 1, 3), pd.DataFrame({"a": [6]}))
    assert lake.read("p/t", day)["a"].tolist() == [4, 5]
    assert lake.read_range("p/t", "2024-01-01", "2024-01-03")["a"].tolist() == [4, 5, 6]
    assert lake.partitions("p/t") == [day, dt.date(2024, 1, 3)]
    assert list((tmp_path / "lake/p/t/dt=2024-01-02").iterdir())[0].name == "data.parquet"


def test_failed_write_leaves_previous_partition_and_no_temp_files(tmp_path):
    lake = Lake((tmp_path / "lake").as_uri())
    day = dt.date(2024, 1, 2)
    lake.write("p/t", day, pd.DataFrame({"a": [1]}))

    def exploding_batches():
        yield pa.record_batch({"a": [7, 8]})
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        lake.write("p/t", day, exploding_batches())
    assert lake.read("p/t", day)["a"].tolist() == [1]
    assert [p.name for p in (tmp_path / "lake/p/t/dt=2024-01-02").iterdir()] == ["data.parquet"]


def test_streamed_batches_and_empty_range(tmp_path):
    lake = Lake((tmp_path / "lake").as_uri())
    batches = (pa.record_batch({"a": list(range(i, i + 3))}) for i in (0, 3))
    lake.write("p/t", "2024-02-01", batches)
    assert lake.read("p/t", "2024-02-01")["a"].tolist() == [0, 1, 2, 3, 4, 5]
    assert lake.read_range("p/t", "2023-01-01", "2023-01-02").empty
    assert days("2024-02-27", "2024-03-01")[-1] == dt.date(2024, 3, 1)
