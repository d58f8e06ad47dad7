"""The file sources and the one normalisation every source goes through: CSV and Parquet, file-name patterns,
what a missing or misnamed day says, time zones, null tokens, the label feed's names (issue 13)."""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlops_provider.exceptions import SourceError
from mlops_provider.io import sources as S
from mlops_provider.io.sources import (
    LabelFeed,
    LandingSource,
    ReadSpec,
    SourceMismatchError,
    UnreadableBatchError,
)

DAY = dt.date(2013, 1, 1)
TYPES = {"flight_id": "string", "tail": "string", "dep_time": "timestamp", "delay": "float", "carrier": "category"}


def _frame(day: dt.date = DAY, rows: int = 4) -> pd.DataFrame:
    return pd.DataFrame({
        "flight_id": [f"F{day:%m%d}-{i}" for i in range(rows)],
        "tail": [f"N{100 + i}" for i in range(rows)],
        "dep_time": pd.Timestamp(day) + pd.to_timedelta([3600 * (i + 1) for i in range(rows)], unit="s"),
        "delay": [1.5 * i for i in range(rows)],
        "carrier": ["AA", "UA", "DL", "AA"][:rows],
    })


def _spec(**kw) -> ReadSpec:
    return ReadSpec(types=TYPES, **kw)


# -- formats and patterns --------------------------------------------------------------------------------
def test_default_layout_is_todays_records_day_csv(tmp_path):
    (tmp_path / "records").mkdir()
    _frame().to_csv(tmp_path / "records" / f"{DAY}.csv", index=False)
    spec = ReadSpec()
    assert (spec.format, spec.pattern, spec.labels_pattern) == ("csv", "records/{date}.{format}", "labels/{date}.{format}")
    table, names = LandingSource(tmp_path).read_records(DAY, DAY, spec)
    assert table.num_rows == 4 and names == [(tmp_path / "records" / f"{DAY}.csv").as_uri()]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_pattern_and_format(tmp_path, fmt):
    frame = _frame()
    path = tmp_path / f"flights_{DAY}.{fmt}"
    frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path, index=False)
    frame.iloc[:1].to_csv(tmp_path / f"flights_{DAY + dt.timedelta(days=1)}.csv", index=False)  # another day
    table, names = LandingSource(tmp_path).read_records(DAY, DAY, _spec(format=fmt, pattern="flights_{date}.{format}"))
    assert names == [path.as_uri()]
    out = table.to_pandas()
    assert out["flight_id"].tolist() == frame["flight_id"].tolist()
    assert str(out["dep_time"].dtype).startswith("datetime64") and out["dep_time"].dt.tz is None
    assert out["dep_time"].tolist() == frame["dep_time"].tolist()


def test_strftime_placeholder_subdirectories_and_globs(tmp_path):
    folder = tmp_path / "2013" / "01"
    folder.mkdir(parents=True)
    _frame().iloc[:2].to_csv(folder / "flights_20130101_part-0.csv", index=False)
    _frame().iloc[2:].to_csv(folder / "flights_20130101_part-1.csv", index=False)
    (folder / "flights_20130101_part-2.json").write_text("{}")  # not the pattern's extension
    spec = _spec(pattern="{date:%Y}/{date:%m}/flights_{date:%Y%m%d}_*.{format}")
    table, names = LandingSource(tmp_path).read_records(DAY, DAY, spec)
    assert table.num_rows == 4
    assert [n.rsplit("/", 1)[1] for n in names] == ["flights_20130101_part-0.csv", "flights_20130101_part-1.csv"]


def test_a_misnamed_file_is_named_with_the_expected_pattern_and_is_not_retried(tmp_path):
    _frame().to_csv(tmp_path / f"flights_{DAY}.csv", index=False)
    source = LandingSource(tmp_path)
    assert source.read_records(DAY, DAY, _spec()) == (None, [])
    message, retryable = source.explain_missing(DAY, _spec())
    assert not retryable
    assert f"found flights_2013-01-01.csv in {tmp_path}, expected pattern 'records/{{date}}.{{format}}' " \
           f"(records/2013-01-01.csv for 2013-01-01)" in message
    assert "Set source.pattern: 'flights_{date}.csv'" in message
    assert issubclass(SourceMismatchError, SourceError) and SourceMismatchError.retryable is False


def test_a_file_of_another_format_gets_the_format_in_the_suggestion(tmp_path):
    _frame().to_parquet(tmp_path / "flights_20130101.parquet", index=False)
    message, retryable = LandingSource(tmp_path).explain_missing(DAY, _spec())
    assert not retryable and "Set source.pattern: 'flights_{date:%Y%m%d}.parquet' and source.format: parquet" in message


def test_a_day_not_yet_landed_is_retried_and_says_what_does_fit(tmp_path):
    (tmp_path / "records").mkdir()
    _frame(DAY - dt.timedelta(days=1)).to_csv(tmp_path / "records" / "2012-12-31.csv", index=False)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / f"{DAY}.csv").write_text("record_id,label,label_timestamp\n")  # the feed is not a record
    message, retryable = LandingSource(tmp_path).explain_missing(DAY, _spec())
    assert retryable and "records/2013-01-01.csv is not in" in message and "e.g. records/2012-12-31.csv" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    message, retryable = LandingSource(empty).explain_missing(DAY, _spec())
    assert retryable and "no files under" in message


def test_a_parquet_file_read_as_csv_says_so(tmp_path):
    (tmp_path / "records").mkdir()
    _frame().to_parquet(tmp_path / "records" / f"{DAY}.csv", index=False)
    with pytest.raises(UnreadableBatchError, match=r"not a readable CSV file \(it is a Parquet file: set source.format: parquet\)"):
        LandingSource(tmp_path).read_records(DAY, DAY, _spec())
    (tmp_path / "records" / f"{DAY}.parquet").write_text("a,b\n1,2\n")
    with pytest.raises(UnreadableBatchError, match=r"not a readable Parquet file \(it is not Parquet"):
        LandingSource(tmp_path).read_records(DAY, DAY, _spec(format="parquet"))


def test_an_unreadable_file_is_kept_for_quarantine_only_up_to_a_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "QUARANTINE_MAX_BYTES", 1000)
    (tmp_path / "records").mkdir()
    garbage = b"\x00\x01PK\x03\x04 not a csv \xff\xfe" * 500
    (tmp_path / "records" / f"{DAY}.csv").write_bytes(garbage)
    with pytest.raises(UnreadableBatchError) as err:
        LandingSource(tmp_path).read_records(DAY, DAY, _spec())
    assert err.value.raw == garbage[:1000] and err.value.size == len(garbage)


# -- time zones: the one normalisation ------------------------------------------------------------------
def test_offsets_become_naive_utc_and_naive_timestamps_stay_utc(tmp_path):
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / f"{DAY}.csv").write_text(
        "flight_id,tail,dep_time,delay,carrier\n"
        "F1,N1,2013-01-01 10:00:00+00:00,1,AA\n"
        "F2,N2,2013-01-01 12:30:00+02:00,1,AA\n"   # 10:30 UTC
        "F3,N3,2012-12-31 23:00:00-05:00,1,AA\n"   # 04:00 UTC on the 1st
    )
    out = LandingSource(tmp_path).read_records(DAY, DAY, _spec())[0].to_pandas()
    assert out["dep_time"].dt.tz is None
    assert out["dep_time"].tolist() == [pd.Timestamp("2013-01-01 10:00"), pd.Timestamp("2013-01-01 10:30"),
                                        pd.Timestamp("2013-01-01 04:00")]
    # Mixed naive and offset values in one column (pyarrow leaves them as text): naive = UTC.
    (tmp_path / "records" / f"{DAY}.csv").write_text(
        "flight_id,tail,dep_time,delay,carrier\nF1,N1,2013-01-01 10:00:00,1,AA\nF2,N2,2013-01-01T12:30:00+02:00,1,AA\n")
    out = LandingSource(tmp_path).read_records(DAY, DAY, _spec())[0].to_pandas()
    assert out["dep_time"].tolist() == [pd.Timestamp("2013-01-01 10:00"), pd.Timestamp("2013-01-01 10:30")]


def test_zoned_parquet_timestamps_become_naive_utc(tmp_path):
    frame = _frame()
    frame["dep_time"] = frame["dep_time"].dt.tz_localize("UTC").dt.tz_convert("Asia/Tokyo")
    (tmp_path / "records").mkdir()
    frame.to_parquet(tmp_path / "records" / f"{DAY}.parquet", index=False)
    out = LandingSource(tmp_path).read_records(DAY, DAY, _spec(format="parquet"))[0].to_pandas()
    assert out["dep_time"].dt.tz is None
    assert out["dep_time"].tolist() == _frame()["dep_time"].tolist()


def test_normalize_is_the_one_place():
    table = pa.table({
        "ts": pa.array([dt.datetime(2024, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=2)))], pa.timestamp("us", "+02:00")),
        "naive": pa.array([dt.datetime(2024, 1, 1, 1)], pa.timestamp("us")),
        "text_ts": pa.array(["not a time"]),
        "code": pa.array([7]),
        "cat": pa.array(["x"]).dictionary_encode(),
        "note": pa.array(["NULL"]),
    })
    types = {"ts": "timestamp", "naive": "timestamp", "text_ts": "timestamp", "code": "string", "cat": "category"}
    out = S.normalize(table, types=types, null_values=("NULL",))
    assert out.schema.field("ts").type == pa.timestamp("us") and out["ts"][0].as_py() == dt.datetime(2023, 12, 31, 23)
    assert out["naive"][0].as_py() == dt.datetime(2024, 1, 1, 1)
    assert out["text_ts"].to_pylist() == ["not a time"], "left for validation to reject"
    assert out["code"].to_pylist() == ["7"] and out["cat"].to_pylist() == ["x"]
    assert out["note"].to_pylist() == [None]


def test_normalize_leaves_text_without_null_tokens_uncopied():
    """A text column holding no null token is handed on as it is (a 10M-row extract copied every text column)."""
    table = pa.table({"id": pa.array(["a", "b", "c"]), "note": pa.array(["x", "NULL", "y"])})
    out = S.normalize(table, types={}, null_values=("NULL",))
    assert out["note"].to_pylist() == ["x", None, "y"] and out["id"].to_pylist() == ["a", "b", "c"]
    assert out["id"].chunk(0).buffers()[2].address == table["id"].chunk(0).buffers()[2].address


# -- null tokens -----------------------------------------------------------------------------------------
def test_null_tokens_become_nulls_in_text_and_other_columns(tmp_path):
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / f"{DAY}.csv").write_text(
        "flight_id,tail,dep_time,delay,carrier\n"
        "F1,,2013-01-01 10:00:00,,AA\n"
        "F2,NULL,2013-01-01 10:00:00,NA,n/a\n"
        "F3,NA,2013-01-01 10:00:00,2.5,-\n"
    )
    out = LandingSource(tmp_path).read_records(DAY, DAY, _spec())[0].to_pandas()
    assert out["tail"].tolist() == [None, None, "NA"], "NA (Namibia) is not a default token"
    assert out["delay"].isna().tolist() == [True, True, False]
    assert out["carrier"].tolist() == ["AA", None, "-"]
    custom = LandingSource(tmp_path).read_records(DAY, DAY, _spec(null_values=("-", "NA")))[0].to_pandas()
    assert custom["tail"].tolist() == ["", "NULL", None] and custom["carrier"].tolist() == ["AA", "n/a", None]


def test_declared_text_columns_are_read_as_text(tmp_path):
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / f"{DAY}.csv").write_text(
        "flight_id,tail,dep_time,delay,carrier\n007,1,2013-01-01 10:00:00,1,AA\n")
    out = LandingSource(tmp_path).read_records(DAY, DAY, _spec())[0].to_pandas()
    assert out["flight_id"].tolist() == ["007"] and out["tail"].tolist() == ["1"]


# -- the label feed --------------------------------------------------------------------------------------
def test_label_feed_with_its_own_column_names_is_renamed(tmp_path):
    (tmp_path / "arrivals").mkdir()
    (tmp_path / "arrivals" / f"late_{DAY}.csv").write_text(
        "flight,is_late,known_at,extra\nF1,1,2013-01-01 08:00:00+01:00,x\nF2,0,2013-01-01 09:00:00,y\n")
    feed = LabelFeed(record_id="flight", column="is_late", arrived_at="known_at", as_record_id="flight_id",
                     as_column="late", types={"flight": "string", "is_late": "integer", "known_at": "timestamp"})
    spec = _spec(labels_pattern="arrivals/late_{date}.{format}", label_feed=feed)
    table, names = LandingSource(tmp_path).read_labels(DAY, DAY, spec)
    out = table.to_pandas()
    assert list(out.columns) == ["flight_id", "late", "label_timestamp", "extra"]
    assert out["label_timestamp"].tolist() == [pd.Timestamp("2013-01-01 07:00"), pd.Timestamp("2013-01-01 09:00")]
    assert names[0].endswith(f"arrivals/late_{DAY}.csv")


def test_label_feed_without_arrival_column_is_stamped_with_the_end_of_its_day(tmp_path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / f"{DAY}.csv").write_text("flight_id,late\nF1,1\n")
    feed = LabelFeed(record_id="flight_id", column="late", arrived_at=None, as_record_id="flight_id", as_column="late")
    out = LandingSource(tmp_path).read_labels(DAY, DAY, _spec(label_feed=feed))[0].to_pandas()
    assert out["label_timestamp"].tolist() == [pd.Timestamp(dt.datetime.combine(DAY, dt.time.max))]


def test_labels_in_the_record_read_no_feed(tmp_path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / f"{DAY}.csv").write_text("flight_id,late\nF1,1\n")
    assert LandingSource(tmp_path).read_labels(DAY, DAY, _spec(label_feed=None)) == (None, [])


def test_pattern_regex_tells_misnamed_from_not_yet():
    regex = S.pattern_regex("{date:%Y}/flights_{date:%Y%m%d}_*.{format}", "parquet")
    assert regex.fullmatch("2013/flights_20130101_part-0.parquet")
    assert not regex.fullmatch("2013/flights_2013-01-01_part-0.parquet")
    assert not regex.fullmatch("2013/sub/flights_20130101_x.parquet")
    assert S.pattern_regex("records/{date}.{format}", "csv").fullmatch("records/2024-02-03.csv")


def test_parquet_write_and_read_of_the_generator(tmp_path, fraud_project):
    """devkit's writer puts files where a project's pattern points (the example projects depend on it)."""
    from devkit.datagen.landing import write_frame

    path = write_frame(_frame(), tmp_path / "x" / f"f_{DAY}.parquet", "parquet", timestamps="offset")
    assert pq.read_table(path).schema.field("dep_time").type.tz == "America/New_York"
    out = LandingSource(tmp_path).read_records(DAY, DAY, _spec(format="parquet", pattern="x/f_{date}.parquet"))[0]
    assert out.to_pandas()["dep_time"].tolist() == _frame()["dep_time"].tolist()


def test_compressed_csv_on_landing(tmp_path):
    import gzip

    (tmp_path / f"flights_{DAY}.csv.gz").write_bytes(gzip.compress(_frame().to_csv(index=False).encode()))
    table, _ = LandingSource(tmp_path).read_records(DAY, DAY, _spec(pattern="flights_{date}.csv.gz"))
    assert table.to_pandas()["flight_id"].tolist() == _frame()["flight_id"].tolist()


def test_an_s3_outage_while_reading_is_retried_not_quarantined():
    """A failing connection is not a bad file: it must not end up in quarantine as one."""
    from mlops_provider.io.sources import S3Source

    class Client:
        class exceptions:  # noqa: N801 (boto3's shape)
            ClientError = type("ClientError", (Exception,), {})

        def head_object(self, **_):
            return {}

        def get_object(self, **kwargs):
            if "Range" in kwargs:  # would hand quarantine some bytes if the outage were taken for a bad file
                return {"Body": io.BytesIO(b"x"), "ContentRange": "bytes 0-0/1"}
            raise ConnectionError("Could not connect to the endpoint URL")

    with pytest.raises(ConnectionError):
        S3Source(Client(), "bucket", "prefix").read_records(DAY, DAY, _spec())


def test_uuids_from_the_arrow_extract_become_the_text_the_db_api_driver_gives():
    import uuid

    values = [uuid.uuid4() for _ in range(50)]
    raw = pa.array([v.bytes for v in values] + [None, uuid.UUID(int=0).bytes, b"\xff" * 16], pa.binary(16))
    want = [str(v) for v in values] + [None, "00000000-0000-0000-0000-000000000000",
                                       "ffffffff-ffff-ffff-ffff-ffffffffffff"]
    assert S._uuid_text(raw).to_pylist() == want
    assert S._uuid_text(raw.slice(10, 42)).to_pylist() == want[10:52]  # a chunk that starts mid-buffer
    assert S._uuid_text(raw.slice(0, 0)).type == pa.string()


def test_time_slices_are_adjacent_equal_and_cover_the_interval():
    import datetime as dt

    from mlops_provider.io.sources import time_slices

    low, high = dt.datetime(2024, 3, 2), dt.datetime(2024, 3, 3)
    assert time_slices(low, high, 1) == [(low, high)]
    three = time_slices(low, high, 3)
    assert [b - a for a, b in three] == [dt.timedelta(hours=8)] * 3
    assert three[0][0] == low and three[-1][1] == high
    assert all(a[1] == b[0] for a, b in zip(three, three[1:], strict=False))
    seven = time_slices(low, high, 7)  # not a whole number of microseconds: the last slice ends at high
    assert len(seven) == 7 and seven[-1][1] == high and all(a[1] == b[0] for a, b in zip(seven, seven[1:], strict=False))
