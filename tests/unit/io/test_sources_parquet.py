"""Parquet landing files are read row group by row group, never whole by surprise (issue 14).

``pq.read_table`` buffers every column chunk of the file before decoding it: about the file's size again
on top of the table. The sources read Parquet with ``ParquetFile.iter_batches`` (no pre-buffering), and an
S3 object by ranged GETs, so only one row group's chunks are held beside the table being built; the
table is the same as before.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlops_provider.io import sources as S
from mlops_provider.io.sources import LandingSource, ReadSpec

DAY = dt.date(2013, 1, 1)
TYPES = {"flight_id": "string", "dep_time": "timestamp", "delay": "float", "carrier": "category", "seats": "int"}


def _write(path, rows: int, row_group: int) -> pd.DataFrame:
    """Flights of ``DAY`` with zoned times, null tokens, a category and integers, ``row_group`` rows per row group."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({
        "flight_id": [f"F-{i}" for i in range(rows)],
        "dep_time": pd.Timestamp("2013-01-01 00:00:00+02:00") + pd.to_timedelta(rng.integers(0, 86_000, rows), unit="s"),
        "delay": rng.normal(10, 5, rows),
        "carrier": pd.Categorical(rng.choice(["AA", "UA", "DL", "N/A"], rows)),
        "seats": rng.integers(50, 300, rows),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=row_group)
    return frame


def test_parquet_is_read_batch_by_batch_with_the_same_result(tmp_path, monkeypatch):
    path = tmp_path / "records" / f"{DAY}.parquet"
    _write(path, rows=10_000, row_group=1_000)
    spec = ReadSpec(types=TYPES, format="parquet", pattern="records/{date}.{format}")
    batches = []
    iter_batches = pq.ParquetFile.iter_batches

    def counted(self, *args, **kwargs):
        for batch in iter_batches(self, *args, **kwargs):
            batches.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counted)
    monkeypatch.setattr(S, "PARQUET_BATCH_ROWS", 500)
    table, names = LandingSource(tmp_path).read_records(DAY, DAY, spec)
    assert names == [path.as_uri()]
    assert batches == [500] * 20  # batch by batch, none spanning a row group
    expected = S.normalize(pq.read_table(path), types=TYPES, null_values=spec.null_values)
    assert table.equals(expected)
    out = table.to_pandas()
    assert out["dep_time"].dt.tz is None and out["dep_time"].min() >= pd.Timestamp("2012-12-31 22:00")  # naive UTC
    assert out["carrier"].isna().any() and set(out["carrier"].dropna()) == {"AA", "UA", "DL"}  # N/A is a null


def test_parquet_peak_memory_is_the_table_and_one_row_group_not_the_whole_file_again(tmp_path):
    """Arrow's own peak allocation (its memory pool), measured in a fresh interpreter."""
    path = tmp_path / "big.parquet"
    rng = np.random.default_rng(0)
    rows = 1_000_000
    table = pa.table({**{f"x{i}": rng.random(rows) for i in range(4)},
                      "id": pa.array([f"record-{i}" for i in range(rows)])})
    pq.write_table(table, path, row_group_size=50_000)
    script = textwrap.dedent(f"""
        import json, sys
        import pyarrow as pa, pyarrow.parquet as pq
        from mlops_provider.io.sources import read_parquet
        read = read_parquet if sys.argv[1] == "sources" else pq.read_table
        table = read({str(path)!r})
        print(json.dumps({{"table": table.nbytes, "peak": pa.default_memory_pool().max_memory()}}))
    """)
    measured = {}
    for how in ("sources", "read_table"):
        run = subprocess.run([sys.executable, "-c", script, how], capture_output=True, text=True, check=True)
        measured[how] = json.loads(run.stdout.strip().splitlines()[-1])
    ours, whole = measured["sources"], measured["read_table"]
    print(f"\nParquet {path.stat().st_size / 1e6:.0f} MB file, {ours['table'] / 1e6:.0f} MB table: peak Arrow memory "
          f"{ours['peak'] / 1e6:.0f} MB by row group, {whole['peak'] / 1e6:.0f} MB with pq.read_table")
    assert abs(ours["table"] - table.nbytes) < 0.02 * table.nbytes  # the same table (chunked: a few more offsets)
    # One row group is 1/20 of the file: the table plus a few row groups' worth, far from twice the table.
    assert ours["peak"] < 1.3 * ours["table"], measured


@pytest.mark.integration
def test_s3_parquet_is_read_by_ranges_never_whole(s3_endpoint, tmp_path):
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    client.create_bucket(Bucket="parquet-ranges")
    local = tmp_path / "landing" / "records" / f"{DAY}.parquet"
    _write(local, rows=40_000, row_group=4_000)
    client.upload_file(str(local), "parquet-ranges", f"flights/records/{DAY}.parquet")
    size = local.stat().st_size

    ranges: list[str | None] = []

    class Recording:
        """The boto3 client, recording the Range of every GET."""

        def __getattr__(self, name):
            return getattr(client, name)

        def get_object(self, **kwargs):
            ranges.append(kwargs.get("Range"))
            return client.get_object(**kwargs)

    spec = ReadSpec(types=TYPES, format="parquet", pattern="records/{date}.{format}")
    table, names = S.S3Source(Recording(), "parquet-ranges", "flights").read_records(DAY, DAY, spec)
    assert names == [f"s3://parquet-ranges/flights/records/{DAY}.parquet"]
    assert table.equals(LandingSource(tmp_path / "landing").read_records(DAY, DAY, spec)[0])
    assert ranges and None not in ranges, ranges  # no GET of the whole object
    spans = [int(b) - int(a) + 1 for a, b in (r.removeprefix("bytes=").split("-") for r in ranges)]
    assert max(spans) < size / 5, (size, spans)  # a column chunk of one row group at a time
