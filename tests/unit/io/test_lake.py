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


def _age(path, hours: float) -> None:
    import os
    import time

    stamp = time.time() - hours * 3600
    os.utime(path, (stamp, stamp))


def test_stale_temp_files_of_a_killed_writer_are_swept_by_the_next_write(tmp_path, caplog):
    """Was: a kill -9 mid-write left ``.tmp-*`` files that nothing ever removed."""
    lake = Lake((tmp_path / "lake").as_uri())
    day = dt.date(2024, 1, 2)
    lake.write("p/t", day, pd.DataFrame({"a": [1]}))
    partition = tmp_path / "lake/p/t/dt=2024-01-02"
    stale = partition / ".tmp-0123abcd.parquet"      # a writer killed two hours ago
    running = partition / ".tmp-4567ef01.parquet"    # a writer that may still be running
    stale.write_bytes(b"PAR1 half a file")
    running.write_bytes(b"PAR1 half a file")
    _age(stale, 2)
    with caplog.at_level("WARNING", logger="mlops_provider.io.lake"):
        lake.write("p/t", day, pd.DataFrame({"a": [2]}))
    assert sorted(p.name for p in partition.iterdir()) == [running.name, "data.parquet"]
    assert "swept 1 stale temporary file" in caplog.text and stale.name in caplog.text
    assert lake.read("p/t", day)["a"].tolist() == [2]

    # Auxiliary files: the same, in the file's directory.
    reports = tmp_path / "lake/p/validation"
    lake.write_bytes("p/validation/a.json", b"{}")
    old = reports / "b.json.tmp-89ab"  # the naming of earlier versions
    old.write_bytes(b"{")
    _age(old, 2)
    lake.write_bytes("p/validation/c.json", b"[]")
    assert sorted(p.name for p in reports.iterdir()) == ["a.json", "c.json"]


def test_write_bytes_is_whole_or_absent(tmp_path, monkeypatch):
    lake = Lake((tmp_path / "lake").as_uri())
    lake.write_bytes("r/x.json", b'{"v": 1}')

    class _Broken:
        """An output stream whose connection drops after half the payload."""

        def __init__(self, real):
            self.real = real

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.real.close()  # as pyarrow's streams do: closing completes what was written

        def write(self, data):
            self.real.write(data[: len(data) // 2])
            raise OSError("connection reset by peer")

    real_open = lake.fs.open_output_stream
    monkeypatch.setattr(lake, "fs", _Proxy(lake.fs, open_output_stream=lambda p: _Broken(real_open(p))))
    with pytest.raises(OSError, match="connection reset"):
        lake.write_bytes("r/x.json", b'{"v": 2, "padding": "' + b"x" * 1000 + b'"}')
    assert lake.read_bytes("r/x.json") == b'{"v": 1}'
    assert [p.name for p in (tmp_path / "lake/r").iterdir()] == ["x.json"]


class _Proxy:
    """A filesystem with some methods replaced."""

    def __init__(self, real, **overrides):
        self._real, self._overrides = real, overrides

    def __getattr__(self, name):
        return self._overrides.get(name) or getattr(self._real, name)


def test_copy_replaces_a_partition_with_another_tables_whole(tmp_path, monkeypatch):
    """``Lake.copy`` publishes an unchanged partition without re-encoding it, atomically like ``write``."""
    import pyarrow.parquet as pq

    lake = Lake((tmp_path / "lake").as_uri())
    day = dt.date(2024, 1, 2)
    lake.write("p/staged", day, pa.table({"a": list(range(10))}), row_group_rows=4)
    lake.write("p/final", day, pd.DataFrame({"a": [99]}))
    uri = lake.copy("p/staged", "p/final", day)
    assert uri == lake.uri(lake.partition_path("p/final", day))
    assert lake.read("p/final", day)["a"].tolist() == list(range(10))
    assert pq.ParquetFile(tmp_path / "lake/p/final/dt=2024-01-02/data.parquet").num_row_groups == 3
    assert lake.exists("p/staged", day)  # the caller drops the source when it is done with it
    assert [p.name for p in (tmp_path / "lake/p/final/dt=2024-01-02").iterdir()] == ["data.parquet"]

    # A copy that fails before it is in place leaves the previous partition and no temporary file.
    lake.write("p/final", day, pd.DataFrame({"a": [7]}))
    from mlops_provider.config import failpoints

    monkeypatch.setattr(failpoints, "_hits", {})  # counted per process: earlier tests' hits do not count
    monkeypatch.setenv("MLOPS_FAILPOINTS", "lake.write.publish=raise")
    with pytest.raises(Exception, match="lake.write.publish"):
        lake.copy("p/staged", "p/final", day)
    assert lake.read("p/final", day)["a"].tolist() == [7]
    assert [p.name for p in (tmp_path / "lake/p/final/dt=2024-01-02").iterdir()] == ["data.parquet"]


def test_a_stream_of_tables_keeps_one_row_group_per_table(tmp_path):
    """A partition assembled from other files' row groups keeps them (not one row group per 64K-row batch)."""
    import pyarrow.parquet as pq

    lake = Lake((tmp_path / "lake").as_uri())
    parts = [pa.concat_tables([pa.table({"a": [i, i + 1]}), pa.table({"a": [i + 2]})]) for i in (0, 3)]
    assert parts[0].column("a").num_chunks == 2
    lake.write("p/t", "2024-02-01", iter(parts), schema=parts[0].schema)
    meta = pq.ParquetFile(tmp_path / "lake/p/t/dt=2024-02-01/data.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [3, 3]
    assert lake.read("p/t", "2024-02-01")["a"].tolist() == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("streamed", [False, True])
def test_distinct_columns_are_written_without_a_dictionary(tmp_path, streamed):
    """Record ids (all distinct) are written plain; repeated values keep Parquet's dictionary; the values round-trip."""
    import pyarrow.parquet as pq

    lake, day, n = Lake(f"file://{tmp_path}"), dt.date(2030, 1, 1), 5_000
    table = pa.table({"record_id": [f"r-{i:06d}" for i in range(n)], "entity": [f"e{i % 7}" for i in range(n)],
                      "amount": [float(i % 50) for i in range(n)], "score": [i / n for i in range(n)]})
    lake.write("t", day, table.to_batches(max_chunksize=1_000) if streamed else table)
    meta = pq.ParquetFile(lake.partition_path("t", day)).metadata
    dictionary = {meta.schema.column(i).name: meta.row_group(0).column(i).has_dictionary_page
                  for i in range(meta.num_columns)}
    assert dictionary == {"record_id": False, "entity": True, "amount": True, "score": False}
    assert lake.read_arrow("t", day).equals(table)


def test_an_empty_small_or_nested_sample_keeps_every_dictionary():
    from mlops_provider.io.lake import dictionary_columns

    assert dictionary_columns(pa.table({"a": pa.array([], pa.string())})) is True
    # A stream's first batch of one row is "all distinct" but says nothing about the rows after it.
    assert dictionary_columns(pa.table({"id": ["r-1"], "entity": ["e1"]})) is True
    assert dictionary_columns(pa.table({"a": [[1], [2]] * 1_000, "b": ["x", "y"] * 1_000})) is True
