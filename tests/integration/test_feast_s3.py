"""Feast offline retrieval from a lake on S3 (``moto_server``), as on the production stack.

Feast's file offline store reads ``s3://`` FileSources with Dask through s3fs. The endpoint must travel
with the FileSource and the credentials come from the lake's own S3 filesystem (the ``aws`` connection),
not from the worker's environment, which has none: this test clears every ``AWS_*`` variable and expects
the same point-in-time rows as from an identical local lake.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid

import pandas as pd
import pytest

from devkit.datagen import fraud

pytestmark = pytest.mark.integration

DAYS = [dt.date(2024, 5, 1) + dt.timedelta(days=i) for i in range(4)]
ROWS = 300
AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
            "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE")


def _fill(project, lake) -> pd.DataFrame:
    """Write the days' records, compute their features; return the records (the entity rows to retrieve)."""
    from mlops_provider.stages import features as SF

    raw = []
    for day in DAYS:
        records = fraud.generate(day, ROWS).drop(columns=["is_fraud"])
        raw.append(records)
        lake.write("fraud/records", day, records)
        SF.compute_entity_features(project, lake, day)
        SF.compute_record_features(project, lake, day)
    return pd.concat(raw, ignore_index=True)


def _retrieve(project, lake, home, monkeypatch, entity_df: pd.DataFrame) -> pd.DataFrame:
    from mlops_provider.hooks.feast import FeastHook

    monkeypatch.setenv("MLOPS_HOME", str(home))  # its own embedded registry
    hook = FeastHook(project, lake=lake).feature_store()
    hook.apply()
    return hook.get_historical_features(entity_df)


def test_historical_features_from_an_s3_lake_match_a_local_lake(s3_endpoint, tmp_path, monkeypatch):  # noqa: F811
    import boto3
    import pyarrow.fs as pafs
    from mlops_provider.config.project import load_project
    from mlops_provider.io import feast_repo as R
    from mlops_provider.io.lake import Lake

    for var in AWS_VARS:
        monkeypatch.delenv(var, raising=False)
    key, secret = "feast-test", uuid.uuid4().hex
    bucket = f"feast-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id=key,
                 aws_secret_access_key=secret).create_bucket(Bucket=bucket)
    fs = pafs.S3FileSystem(access_key=key, secret_key=secret, endpoint_override=s3_endpoint, scheme="http",
                           region="us-east-1")
    s3_lake = Lake(f"s3://{bucket}/lake", filesystem=fs)
    local_lake = Lake(f"file://{tmp_path / 'lake'}")
    project = load_project("fraud")

    records = _fill(project, s3_lake)
    _fill(project, local_lake)
    # Two customers' whole history plus a sample: new customers, repeat customers, every day.
    entity_df = pd.concat([records[records["customer_id"].isin(records["customer_id"].iloc[:2])],
                           records.sample(200, random_state=7)]).drop_duplicates("transaction_id")
    entity_df = entity_df[["customer_id", "transaction_id", "event_timestamp"]].reset_index(drop=True)
    entity_df["event_timestamp"] = pd.to_datetime(entity_df["event_timestamp"], utc=True)

    definitions = R.feature_definitions(project, s3_lake)
    sources = [d for d in definitions if type(d).__name__ == "FileSource"]
    assert {s.path.split("://")[0] for s in sources} == {"s3"}
    assert {s.s3_endpoint_override for s in sources} == {s3_endpoint}
    assert {s.s3_endpoint_override for s in R.feature_definitions(project, local_lake)
            if type(s).__name__ == "FileSource"} == {""}

    from_s3 = _retrieve(project, s3_lake, tmp_path / "home-s3", monkeypatch, entity_df)
    assert not [v for v in AWS_VARS if v in os.environ], "the lake's credentials leaked into the environment"
    from_local = _retrieve(project, local_lake, tmp_path / "home-local", monkeypatch, entity_df)

    names = R.feature_names(project)
    assert len(from_s3) == len(entity_df)
    assert list(from_s3["transaction_id"]) == list(entity_df["transaction_id"])
    assert from_s3[names].notna().any().all(), from_s3[names].isna().sum()
    pd.testing.assert_frame_equal(from_s3[["transaction_id", *names]], from_local[["transaction_id", *names]],
                                  check_dtype=False)
