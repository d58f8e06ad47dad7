"""Objects written to an S3 lake carry their Content-Type: a report opens in the browser instead of downloading."""

from __future__ import annotations

import uuid

import pytest
from mlops_provider.io.lake import Lake, content_type

KEY = SECRET = "testing"


@pytest.mark.parametrize(("name", "expected"), [
    ("fraud/monitoring/dt=2024-01-12/report.html", "text/html; charset=utf-8"),
    ("fraud/monitoring/dt=2024-01-12/report.verdict.json", "application/json"),
    ("records/dt=2024-01-12/data.parquet", "application/octet-stream"),
    ("fraud/data_docs/static/styles/data_docs_default_styles.css", "text/css; charset=utf-8"),
    ("fraud/data_docs/static/images/favicon.ico", "image/vnd.microsoft.icon"),
    ("fraud/data_docs/static/images/short-logo.png", "image/png"),
    ("fraud/notes", "application/octet-stream"),
])
def test_content_type_by_name(name, expected):
    assert content_type(name) == expected


@pytest.fixture
def s3_lake(s3_endpoint):
    import boto3
    import pyarrow.fs as pafs

    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id=KEY,
                          aws_secret_access_key=SECRET)
    client.create_bucket(Bucket=bucket)
    fs = pafs.S3FileSystem(access_key=KEY, secret_key=SECRET, endpoint_override=s3_endpoint, scheme="http",
                           region="us-east-1")
    return Lake(f"s3://{bucket}/reports", filesystem=fs), client, bucket


def test_s3_objects_are_stored_with_their_content_type(s3_lake):
    import pandas as pd
    import pyarrow as pa

    lake, client, bucket = s3_lake
    lake.write_bytes("fraud/monitoring/dt=2024-01-12/report.html", b"<html><body>report</body></html>")
    lake.write_bytes("fraud/monitoring/dt=2024-01-12/report.verdict.json", b"{}")
    lake.write("fraud/records", "2024-01-12", pd.DataFrame({"x": [1, 2]}))
    batches = pa.table({"x": [1, 2]}).to_batches()
    lake.write("fraud/streamed", "2024-01-12", iter(batches), schema=batches[0].schema)
    types = {key: client.head_object(Bucket=bucket, Key=f"reports/{key}")["ContentType"] for key in (
        "fraud/monitoring/dt=2024-01-12/report.html", "fraud/monitoring/dt=2024-01-12/report.verdict.json",
        "fraud/records/dt=2024-01-12/data.parquet", "fraud/streamed/dt=2024-01-12/data.parquet")}
    assert types == {
        "fraud/monitoring/dt=2024-01-12/report.html": "text/html; charset=utf-8",
        "fraud/monitoring/dt=2024-01-12/report.verdict.json": "application/json",
        "fraud/records/dt=2024-01-12/data.parquet": "application/octet-stream",
        "fraud/streamed/dt=2024-01-12/data.parquet": "application/octet-stream",
    }
    # The partitions read back whole; no temporary object is left.
    assert lake.read("fraud/records", "2024-01-12")["x"].tolist() == [1, 2]
    assert lake.read("fraud/streamed", "2024-01-12")["x"].tolist() == [1, 2]
    assert not [k["Key"] for k in client.list_objects_v2(Bucket=bucket).get("Contents", []) if ".tmp-" in k["Key"]]


def test_s3_copy_publishes_the_partition_whole(s3_lake):
    """``Lake.copy`` on S3: one server-side CopyObject into place, the Content-Type kept, no temporary object."""
    import pyarrow as pa

    lake, client, bucket = s3_lake
    lake.write("fraud/_staging/records", "2024-01-12", pa.table({"x": list(range(5))}), row_group_rows=2)
    lake.write("fraud/records", "2024-01-12", pa.table({"x": [9]}))
    lake.copy("fraud/_staging/records", "fraud/records", "2024-01-12")
    assert lake.read("fraud/records", "2024-01-12")["x"].tolist() == [0, 1, 2, 3, 4]
    head = client.head_object(Bucket=bucket, Key="reports/fraud/records/dt=2024-01-12/data.parquet")
    assert head["ContentType"] == "application/octet-stream"
    assert not [k["Key"] for k in client.list_objects_v2(Bucket=bucket).get("Contents", []) if ".tmp-" in k["Key"]]
