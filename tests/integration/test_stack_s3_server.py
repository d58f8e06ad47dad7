"""The production stack's S3 endpoint (s3rver, ``scripts/stack.py``) under the lake's own operations.

Started here the way the stack starts it (same argv, same SDK settings), on a free loopback port: a partition
written through a temporary key and a server-side copy (keys with ``dt=``: what failed before the patch in
``scripts/s3_server/patches``), row groups read by ranged GETs (coalesced: ``Lake.open_partition``), listings in pages, moves and deletes.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import stack as stack_script  # noqa: E402  (scripts/stack.py)


@pytest.fixture(scope="module")
def s3rver(tmp_path_factory, monkeypatch_module):
    if not stack_script.S3_SERVER.exists():
        pytest.skip(f"s3rver is not installed ({stack_script.S3_SERVER}): run scripts/stack-deps.sh")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = stack_script.Config(home=tmp_path_factory.mktemp("s3home"), s3_port=port)
    (cfg.dir / "s3").mkdir(parents=True)
    for key, value in stack_script.S3_COMPAT.items():
        monkeypatch_module.setenv(key, value)
    proc = subprocess.Popen(stack_script.s3_server_argv(cfg), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not stack_script.port_open(port):
            assert proc.poll() is None and time.monotonic() < deadline, "s3rver did not come up"
            time.sleep(0.2)
        yield cfg.s3_url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_the_lake_on_the_stack_s3_endpoint(s3rver):
    import boto3
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq
    from mlops_provider.io.lake import Lake

    key = stack_script.S3_SERVER_KEY
    client = boto3.client("s3", endpoint_url=s3rver, aws_access_key_id=key, aws_secret_access_key=key,
                          region_name="us-east-1")
    client.create_bucket(Bucket="mlops")
    fs = pafs.S3FileSystem(endpoint_override=s3rver, scheme="http", access_key=key, secret_key=key,
                           region="us-east-1")
    lake = Lake("s3://mlops/lake", filesystem=fs)
    day = dt.date(2026, 12, 1)
    rows = 300_000
    table = pa.table({"id": pa.array(range(rows)), "x": pa.array([i / 7 for i in range(rows)])})
    # Written to a temporary key, then copied server-side onto .../dt=2026-12-01/...: the copy source is
    # URL-encoded (%3D), which s3rver 3.7.1 itself did not decode.
    where = lake.write("records", day, table, row_group_rows=50_000)
    assert "dt=2026-12-01" in where
    source = pq.ParquetFile(lake.partition_path("records", day), filesystem=fs)
    assert source.metadata.num_row_groups == 6
    assert source.read_row_group(4).column("id")[0].as_py() == 200_000, "a row group by a ranged GET"
    # What the stages read with: a row group's column chunks in coalesced ranged GETs (pre_buffer on S3).
    coalesced = lake.open_partition("records", day)
    assert coalesced.read_row_group(4).equals(source.read_row_group(4))
    assert pa.Table.from_batches(list(coalesced.iter_batches(batch_size=70_000))).equals(table)
    assert lake.read_arrow("records", day).equals(table)
    # Uploads are stored as sent, not as aws-chunked frames (the SDK settings the stack exports).
    body = client.get_object(Bucket="mlops", Key=where.removeprefix("s3://mlops/"))["Body"].read()
    assert body[:4] == body[-4:] == b"PAR1"

    for i in range(3):
        client.put_object(Bucket="mlops", Key=f"lake/_staging/batch/dt=2026-12-01/{i}.json", Body=b"{}")
    moved = lake.move_dir("_staging/batch", "_quarantine/batch")
    assert len(lake.list_files("_quarantine/batch")) == 3 and not lake.list_files("_staging/batch"), moved
    # A listing in pages: s3rver's continuation token needs Node's legacy OpenSSL provider (stack.py passes it).
    pages = client.get_paginator("list_objects_v2").paginate(Bucket="mlops", Prefix="lake/_quarantine/batch/",
                                                              PaginationConfig={"PageSize": 2})
    assert [len(page["Contents"]) for page in pages] == [2, 1]
    lake.delete_dir("_quarantine/batch")
    assert not lake.list_files("_quarantine/batch")
