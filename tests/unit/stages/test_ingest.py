"""Ingestion + the Great Expectations gate on every kind of bad batch: clear failure, quarantine, no partition."""

from __future__ import annotations

import datetime as dt
import json
import re

import pandas as pd
import pytest
import yaml
from mlops_provider.config import paths
from mlops_provider.exceptions import DataValidationError, SourceError
from mlops_provider.io.lake import Lake
from mlops_provider.io.sources import LandingSource, SourceMismatchError
from mlops_provider.io.validation import build_suite_dict, suite_path
from mlops_provider.stages.ingest import (
    gate_day,
    held_labels_table,
    labels_table,
    records_table,
    stage_day,
    staging_labels_table,
    staging_table,
)

from devkit.datagen.landing import generate_day, landing_paths, write_landing_day

DAY = dt.date(2024, 1, 10)


@pytest.fixture
def env(mlops_home, fraud_project):
    landing = paths.landing_dir() / "fraud"
    return fraud_project, Lake(), Lake(paths.reports_uri()), LandingSource(landing), landing


def run(project, lake, reports, source, run_id="scheduled__2024-01-10"):
    stage_day(project, lake, source, DAY, run_id=run_id)
    return gate_day(project, lake, reports, DAY, run_id=run_id)


def test_clean_batch_is_published_and_rerun_replaces_it(env):
    project, lake, reports, source, landing = env
    write_landing_day(project, landing, DAY, rows=800)
    first = run(project, lake, reports, source)
    assert first["success"] and first["rows"] == 800 and first["evaluated"] >= 30
    assert json.loads(reports.read_bytes(first["result"].split(reports.root + "/", 1)[1]))["success"] is True
    second = run(project, lake, reports, source, run_id="manual__rerun")
    assert second["partition"] == first["partition"]
    assert len(lake.read(records_table(project), DAY)) == 800  # replaced, not duplicated
    assert not lake.exists(staging_table(project), DAY)
    # labels of the day arrive label.delay_days later, in their own table, published by that day's gate
    write_landing_day(project, landing, DAY - dt.timedelta(days=project.label_delay_days), rows=800)
    labelled = stage_day(project, lake, source, DAY, run_id="manual__labels")
    assert labelled["labels"]["rows"] == 800
    assert not lake.exists(labels_table(project), DAY), "staged, not published before the gate"
    gated = gate_day(project, lake, reports, DAY, run_id="manual__labels")
    assert gated["labels"][DAY.isoformat()]["rows"] == 800
    labels = lake.read(labels_table(project), DAY)
    assert list(labels.columns) == ["transaction_id", "is_fraud", "label_timestamp"] and len(labels) == 800
    assert not lake.exists(staging_labels_table(project), DAY)


@pytest.mark.parametrize(
    ("scenario", "names"),
    [
        ("schema_break", ["expect_table_columns_to_match_set", "expect_column_to_exist[merchant_category]"]),
        ("wrong_type", ["expect_column_values_to_be_in_type_list[amount]"]),
        ("nulls", ["expect_column_values_to_not_be_null[amount]"]),
        ("out_of_range", ["expect_column_values_to_be_between[amount]"]),
        ("unknown_category", ["expect_column_values_to_be_in_set[merchant_category]", "carrier_pigeon"]),
        ("duplicates", ["expect_column_values_to_be_unique[transaction_id]"]),
        ("empty", ["expect_table_row_count_to_be_between"]),
        ("outside_interval", ["expect_column_values_to_be_between[event_timestamp]"]),
        ("unreadable", ["not a readable CSV file"]),
    ],
)
def test_bad_batch_fails_clearly_and_is_quarantined(env, scenario, names):
    project, lake, reports, source, landing = env
    write_landing_day(project, landing, DAY, rows=400, scenario=scenario)
    with pytest.raises(DataValidationError) as err:
        run(project, lake, reports, source)
    message = str(err.value)
    for name in names:
        assert name in message
    assert "quarantined" in message
    assert not lake.exists(records_table(project), DAY), "a bad batch must never reach the lake"
    assert not lake.exists(staging_table(project), DAY)
    quarantined = paths.mlops_home() / "lake" / "_quarantine" / "fraud" / "dt=2024-01-10" / "scheduled__2024-01-10"
    assert (quarantined / "validation.json").exists()
    assert any(p.name != "validation.json" for p in quarantined.iterdir()), "the batch itself is kept"


def test_failed_rerun_keeps_previous_good_partition(env):
    project, lake, reports, source, landing = env
    write_landing_day(project, landing, DAY, rows=500)
    run(project, lake, reports, source)
    write_landing_day(project, landing, DAY, rows=500, scenario="duplicates")
    with pytest.raises(DataValidationError):
        run(project, lake, reports, source, run_id="manual__bad_rerun")
    assert len(lake.read(records_table(project), DAY)) == 500


def test_nothing_landed_is_a_retryable_source_error(env):
    project, lake, reports, source, _ = env
    with pytest.raises(SourceError, match="nothing has landed") as err:
        stage_day(project, lake, source, DAY, run_id="r")
    assert not isinstance(err.value, DataValidationError)


@pytest.mark.parametrize("name", ["fraud", "churn"])
def test_committed_suite_matches_project_yaml(name):
    from mlops_provider.config.project import load_project

    project = load_project(name)
    committed = json.loads(suite_path(project).read_text())
    assert committed == json.loads(json.dumps(build_suite_dict(project))), (
        f"{suite_path(project)} is stale: run `python -m mlops_provider.io.validation`"
    )


# -- sources (issue 13): time zones, null tokens, patterns, labels through the gate -----------------------
def variant(tmp_path, monkeypatch, mutate, name="flights"):
    """The fraud project under another name (so its suite is derived from the YAML), changed by ``mutate``."""
    from mlops_provider.config.project import load_project

    raw = yaml.safe_load((paths.repo_root() / "include" / "projects" / "fraud.yaml").read_text())
    raw["name"] = name
    raw["source"]["path"] = f"landing/{name}"
    raw["validation"].pop("extras")  # its regexes are for the fraud generator's ids
    mutate(raw)
    projects = tmp_path / "projects"
    projects.mkdir(exist_ok=True)
    (projects / f"{name}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv("MLOPS_PROJECTS_DIR", str(projects))
    project = load_project(name)
    landing = paths.landing_dir() / name
    return project, Lake(), Lake(paths.reports_uri()), LandingSource(landing), landing


def ingest(project, lake, reports, source, day, run_id=None):
    run_id = run_id or f"scheduled__{day}"
    stage_day(project, lake, source, day, run_id=run_id)
    return gate_day(project, lake, reports, day, run_id=run_id)


def test_timestamps_with_offsets_pass_the_gate_as_utc(env):
    """Was: every day quarantined with "Invalid comparison between dtype=datetime64[ms, UTC] and datetime"."""
    project, lake, reports, source, landing = env
    write_landing_day(project, landing, DAY, rows=300, timestamps="offset")
    assert "+02:00" in landing_paths(landing, DAY)[0].read_text()
    summary = run(project, lake, reports, source)
    assert summary["success"], summary["failed"]
    published = lake.read(records_table(project), DAY)
    assert published["event_timestamp"].dt.tz is None
    assert published["event_timestamp"].tolist() == generate_day(project, DAY, 300)["event_timestamp"].tolist()


def test_parquet_files_with_a_pattern_and_zoned_timestamps(tmp_path, monkeypatch, mlops_home):
    project, lake, reports, source, landing = variant(tmp_path, monkeypatch, lambda d: d["source"].update(
        format="parquet", pattern="flights_{date:%Y%m%d}.parquet", labels_pattern="late/{date}.parquet"))
    write_landing_day(project, landing, DAY, rows=300, timestamps="offset")
    assert (landing / "flights_20240110.parquet").exists()
    summary = ingest(project, lake, reports, source, DAY)
    assert summary["success"], summary["failed"]
    assert lake.read(records_table(project), DAY)["event_timestamp"].tolist() == \
        generate_day(project, DAY, 300)["event_timestamp"].tolist()


def test_a_misnamed_landing_file_fails_at_once_naming_it(env):
    project, lake, reports, source, landing = env
    write_landing_day(project, landing, DAY, rows=200)
    landing_paths(landing, DAY)[0].rename(landing / f"fraud_{DAY}.csv")
    with pytest.raises(SourceMismatchError) as err:
        stage_day(project, lake, source, DAY, run_id="r")
    assert err.value.retryable is False
    assert (f"found fraud_2024-01-10.csv in {landing}, expected pattern 'records/{{date}}.{{format}}' "
            "(records/2024-01-10.csv for 2024-01-10)") in str(err.value)
    assert "Set source.pattern: 'fraud_{date}.csv'" in str(err.value)


def test_an_empty_entity_key_is_a_null_and_fails_the_gate(env):
    """Was: every row with an empty key formed one entity ``""``."""
    project, lake, reports, source, landing = env
    path = write_landing_day(project, landing, DAY, rows=300)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[frame.index[:5], "customer_id"] = ""
    frame.loc[frame.index[5:7], "customer_id"] = "NULL"
    frame.to_csv(path, index=False)
    stage_day(project, lake, source, DAY, run_id="r")
    assert lake.read(staging_table(project), DAY)["customer_id"].isna().sum() == 7
    with pytest.raises(DataValidationError) as err:
        gate_day(project, lake, reports, DAY, run_id="r")
    assert "expect_column_values_to_not_be_null[customer_id]: 7 unexpected" in str(err.value)
    assert not lake.exists(records_table(project), DAY)


def test_null_tokens_fire_max_null_fraction_on_text_columns(tmp_path, monkeypatch, mlops_home):
    def mutate(d):
        d["columns"]["channel"].update(nullable=True, max_null_fraction=0.05)
        d["source"]["null_values"] = ["", "?"]

    project, lake, reports, source, landing = variant(tmp_path, monkeypatch, mutate)
    path = write_landing_day(project, landing, DAY, rows=400)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[frame.index[:10], "channel"] = ""   # 2.5 %: fine
    frame.to_csv(path, index=False)
    assert ingest(project, lake, reports, source, DAY)["success"]
    assert lake.read(records_table(project), DAY)["channel"].isna().sum() == 10
    frame.loc[frame.index[:60], "channel"] = "?"  # 15 %: over the bound
    frame.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=r"expect_column_values_to_not_be_null\[channel\]: 60 unexpected"):
        ingest(project, lake, reports, source, DAY, run_id="manual__nulls")


def _labels_file(project, landing, arrival: dt.date, rows: dict[str, object]) -> None:
    path = landing_paths(landing, arrival)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"transaction_id": list(rows), "is_fraud": list(rows.values()),
                  "label_timestamp": pd.Timestamp(arrival) + pd.Timedelta(hours=6)}).to_csv(path, index=False)


def test_a_quarantined_day_publishes_no_labels(env):
    """Was: labels were published at extract time and stayed when the day was quarantined (issue 14)."""
    project, lake, reports, source, landing = env
    write_landing_day(project, landing, DAY, rows=300, scenario="duplicates")
    _labels_file(project, landing, DAY, {"T20240107-0000001": 0, "T20240107-0000002": 1})
    with pytest.raises(DataValidationError):
        run(project, lake, reports, source)
    assert not lake.exists(labels_table(project), DAY), "bad records: the day's labels wait for a good rerun"
    quarantined = paths.mlops_home() / "lake" / "_quarantine" / "fraud" / "dt=2024-01-10" / "scheduled__2024-01-10"
    assert (quarantined / "labels" / "data.parquet").exists()

    # Good records, a bad label: the whole day is quarantined, the message names the label.
    write_landing_day(project, landing, DAY, rows=300)
    _labels_file(project, landing, DAY, {"T20240107-0000001": 0, "T20240107-0000002": "banana"})
    with pytest.raises(DataValidationError) as err:
        run(project, lake, reports, source, run_id="manual__banana")
    message = str(err.value)
    assert "1 label checks failed" in message and "labels[is_fraud]: type object, expected integer" in message
    assert "['banana']" in message
    assert not lake.exists(labels_table(project), DAY) and not lake.exists(records_table(project), DAY)
    assert not lake.exists(staging_labels_table(project), DAY)

    # Fixed feed: records and labels are published together.
    _labels_file(project, landing, DAY, {"T20240107-0000001": 0, "T20240107-0000002": 1})
    summary = run(project, lake, reports, source, run_id="manual__fixed")
    assert summary["success"] and lake.read(labels_table(project), DAY)["is_fraud"].tolist() == [0, 1]


@pytest.mark.parametrize(
    ("rows", "stamp", "expected"),
    [
        ({"T1": 2}, None, "labels[is_fraud]: 1 values not in [0, 1], e.g. [2]"),
        ({"T1": None}, None, "labels[is_fraud]: 1 null labels"),
        ({None: 1}, None, "labels[transaction_id]: 1 labels without a record id"),
        ({"T1": 1}, pd.Timestamp(DAY + dt.timedelta(days=1), tz="UTC"), "stamped after the end of their arrival day"),
    ],
)
def test_label_checks(env, rows, stamp, expected):
    project, lake, reports, source, landing = env
    write_landing_day(project, landing, DAY, rows=200)
    path = landing_paths(landing, DAY)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"transaction_id": list(rows), "is_fraud": list(rows.values()),
                  "label_timestamp": stamp if stamp is not None else pd.Timestamp(DAY)}).to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=re.escape(expected)):
        run(project, lake, reports, source)
    assert not lake.exists(labels_table(project), DAY)


def test_a_label_feed_with_its_own_names_and_files(tmp_path, monkeypatch, mlops_home):
    def mutate(d):
        d["source"]["labels_pattern"] = "chargebacks/cb_{date:%Y%m%d}.csv"
        d["label"]["feed"] = {"record_id": "txn", "column": "fraud", "arrived_at": "reported_at"}

    project, lake, reports, source, landing = variant(tmp_path, monkeypatch, mutate)
    event_day = DAY - dt.timedelta(days=3)
    write_landing_day(project, landing, event_day, rows=200)  # its labels land in chargebacks/cb_20240110.csv
    write_landing_day(project, landing, DAY, rows=200)
    assert pd.read_csv(landing / "chargebacks" / "cb_20240110.csv").columns.tolist() == ["txn", "fraud", "reported_at"]
    summary = ingest(project, lake, reports, source, DAY)
    assert summary["labels"][DAY.isoformat()]["rows"] == 200
    labels = lake.read(labels_table(project), DAY)
    assert list(labels.columns) == ["transaction_id", "is_fraud", "label_timestamp"]
    assert set(labels["transaction_id"]) == set(generate_day(project, event_day, 200)["transaction_id"])

    # A feed that lacks a configured column fails the day, naming the key to set.
    (landing / "chargebacks" / "cb_20240110.csv").write_text("txn,fraud\nx,1\n")
    with pytest.raises(DataValidationError, match=r"the feed lacks column\(s\) 'reported_at' \(label.feed.arrived_at\)"):
        ingest(project, lake, reports, source, DAY, run_id="manual__no_stamp")


def test_a_label_feed_without_arrival_column(tmp_path, monkeypatch, mlops_home):
    project, lake, reports, source, landing = variant(
        tmp_path, monkeypatch, lambda d: d["label"].update(feed={"arrived_at": None}))
    write_landing_day(project, landing, DAY - dt.timedelta(days=3), rows=100)
    write_landing_day(project, landing, DAY, rows=100)
    assert ingest(project, lake, reports, source, DAY)["success"]
    stamps = lake.read(labels_table(project), DAY)["label_timestamp"]
    assert (stamps == pd.Timestamp(dt.datetime.combine(DAY, dt.time.max))).all()


def test_labels_in_the_record_are_held_back_until_they_are_known(tmp_path, monkeypatch, mlops_home):
    """label.from: record, delay 3: the label of an event of day D is published on D + 3, never earlier."""
    from mlops_provider.stages.training_set import labelled_events

    project, lake, reports, source, landing = variant(
        tmp_path, monkeypatch, lambda d: d["label"].update({"from": "record"}))
    delay = project.label_delay_days
    assert delay == 3
    days = [DAY + dt.timedelta(days=i) for i in range(6)]
    for day in days:
        write_landing_day(project, landing, day, rows=120)
    assert not (landing / "labels").exists(), "no feed: the label is in the records"
    assert "is_fraud" in pd.read_csv(landing_paths(landing, DAY)[0]).columns
    for i, day in enumerate(days):
        summary = ingest(project, lake, reports, source, day)
        assert summary["success"], summary["failed"]
        assert "is_fraud" not in lake.read(records_table(project), day).columns, "the label never reaches features"
        assert lake.partitions(labels_table(project)) == days[delay:i + 1]
        # Training as of this day sees only events of days up to day - delay.
        events = labelled_events(project, lake, days[0], day)
        assert sorted({t.date() for t in events["event_timestamp"]}) == days[: max(0, i + 1 - delay)]
    published = lake.read(labels_table(project), days[delay])
    truth = generate_day(project, days[0], 120)
    assert published["transaction_id"].tolist() == truth["transaction_id"].tolist()
    assert published["is_fraud"].tolist() == truth["is_fraud"].tolist()
    assert (published["label_timestamp"] == truth["event_timestamp"] + pd.Timedelta(days=delay)).all()


def test_labels_in_the_record_of_a_late_or_quarantined_day(tmp_path, monkeypatch, mlops_home):
    project, lake, reports, source, landing = variant(
        tmp_path, monkeypatch, lambda d: d["label"].update({"from": "record"}))
    d0, d1, d3, d4 = (DAY + dt.timedelta(days=i) for i in (0, 1, 3, 4))
    for day in (d0, d1, d3, d4):
        write_landing_day(project, landing, day, rows=120)
    # Out of order: the arrival day d3 first (nothing to release yet), then d0, whose labels are due since d3.
    ingest(project, lake, reports, source, d3)
    assert lake.partitions(labels_table(project)) == []
    ingest(project, lake, reports, source, d0)
    assert lake.partitions(labels_table(project)) == [d3]
    assert len(lake.read(labels_table(project), d3)) == 120
    # A bad label in a record quarantines its day; nothing of it is held or published.
    path = landing_paths(landing, d1)[0]
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[frame.index[0], "is_fraud"] = "banana"
    frame.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=r"\[is_fraud\]"):
        ingest(project, lake, reports, source, d1)
    assert not lake.exists(held_labels_table(project), d1)
    ingest(project, lake, reports, source, d4)
    assert lake.partitions(labels_table(project)) == [d3], "d1 was quarantined: d4 releases nothing"


@pytest.mark.parametrize("second", ["duplicates", "unreadable"])
def test_a_rerun_that_fails_again_replaces_its_quarantine(env, second):
    """Was: the retry of a run (same run id) that failed validation again hit ENOTEMPTY and raised OSError."""
    project, lake, reports, source, landing = env
    write_landing_day(project, landing, DAY, rows=300, scenario="nulls")
    with pytest.raises(DataValidationError):
        run(project, lake, reports, source)
    write_landing_day(project, landing, DAY, rows=300, scenario=second)
    with pytest.raises(DataValidationError) as err:
        run(project, lake, reports, source)  # the same run id: a cleared task or an Airflow retry
    quarantined = paths.mlops_home() / "lake" / "_quarantine" / "fraud" / "dt=2024-01-10" / "scheduled__2024-01-10"
    report = json.loads((quarantined / "validation.json").read_text())
    assert not report["success"]
    names = sorted(p.name for p in quarantined.iterdir())
    if second == "duplicates":
        assert "expect_column_values_to_be_unique[transaction_id]" in str(err.value)
        assert len(pd.read_parquet(quarantined / "data.parquet")) == 325, "this try's batch, not the previous one"
    else:
        assert "data.parquet" not in names, "the previous try's batch does not linger beside this try's raw file"
    assert not lake.exists(staging_table(project), DAY) and not lake.exists(records_table(project), DAY)


# -- bad-batch messages (issue 14) ------------------------------------------------------------------------
def _first_line(err) -> str:
    return str(err.value).splitlines()[0]


def test_a_semicolon_file_with_a_bom_names_the_delimiter_first(env):
    """Was: 38 failed expectations, the real cause 20th in the list, GX's 'list index out of range' as findings."""
    project, lake, reports, source, landing = env
    path = write_landing_day(project, landing, DAY, rows=200)
    frame = pd.read_csv(path)
    path.write_bytes(b"\xef\xbb\xbf" + frame.to_csv(index=False, sep=";").encode())
    with pytest.raises(DataValidationError) as err:
        run(project, lake, reports, source)
    first = _first_line(err)
    assert "most likely cause: the file is not comma-separated" in first and "separator ';'" in first, first
    assert "quarantined" in first
    message = str(err.value)
    findings, _, check_errors = message.partition("Checks that could not run (errors of the check, not findings")
    assert "list index out of range" not in findings and "does not exist" not in findings
    assert "list index out of range" in check_errors or "does not exist" in check_errors
    assert all("could not run" not in f for f in err.value.failed), "errors of the check are not data findings"


@pytest.mark.parametrize(
    ("scenario", "cause"),
    [
        ("schema_break", "most likely cause: the batch lacks declared column(s) ['amount', 'merchant_category']; "
                         "it has unexpected column(s) ['amount_usd']"),
        ("nulls", "most likely cause: expect_column_values_to_not_be_null[amount]"),
        ("duplicates", "most likely cause: expect_column_values_to_be_unique[transaction_id]"),
    ],
)
def test_the_first_line_names_the_most_likely_cause(env, scenario, cause):
    project, lake, reports, source, landing = env
    write_landing_day(project, landing, DAY, rows=300, scenario=scenario)
    with pytest.raises(DataValidationError) as err:
        run(project, lake, reports, source)
    assert cause in _first_line(err), _first_line(err)


def test_a_byte_order_mark_stuck_to_a_column_is_named(env):
    project, lake, reports, source, landing = env
    path = write_landing_day(project, landing, DAY, rows=100)
    text = path.read_text()
    path.write_text("\ufeff" + text, encoding="utf-8-sig")  # a BOM twice: the second one stays in the name
    with pytest.raises(DataValidationError) as err:
        run(project, lake, reports, source)
    assert "most likely cause: a byte-order mark (BOM) is stuck to column '\\ufefftransaction_id'" in _first_line(err)


@pytest.mark.parametrize(
    "payload",
    [
        # a header that is not UTF-8 (was: UnicodeDecodeError outside the gate, nothing quarantined)
        bytes(b for b in range(1, 256) if b not in b"\n\r,\"") * 40 + b"\nabc\n",
        # a row whose raw bytes (terminal escapes, NULs) end up in the parser's error
        b"a\n" + b"\x1b[31mred\x00,\x07bell," + b"z" * 5000 + b"\n",
    ],
)
def test_raw_binary_never_reaches_the_message_unescaped_or_uncut(env, payload):
    project, lake, reports, source, landing = env
    write_landing_day(project, landing, DAY, rows=10)
    (landing / "records" / f"{DAY}.csv").write_bytes(payload)
    with pytest.raises(DataValidationError) as err:
        run(project, lake, reports, source)
    message = str(err.value)
    assert "not a readable CSV file" in message
    assert all(ch.isprintable() or ch == "\n" for ch in message), repr(message[:500])
    assert len(message) < 2000


def test_a_file_over_max_file_bytes_is_refused_unread_and_not_copied(env, tmp_path):
    project, lake, reports, source, landing = env
    path = write_landing_day(project, landing, DAY, rows=10)
    with path.open("r+b") as fh:  # a sparse file over the default limit (1 GiB): costs no disk
        fh.truncate((1 << 30) + 1)
    with pytest.raises(DataValidationError) as err:
        run(project, lake, reports, source)
    first = _first_line(err)
    assert "1,073,741,825 bytes (1.00 GiB) is over source.max_file_bytes (1,073,741,824 bytes" in first, first
    quarantined = paths.mlops_home() / "lake" / "_quarantine" / "fraud" / "dt=2024-01-10" / "scheduled__2024-01-10"
    assert [p.name for p in quarantined.iterdir()] == ["validation.json"], "no copy of the file"
    report = json.loads((quarantined / "validation.json").read_text())
    assert report["source"].endswith("records/2024-01-10.csv") and report["size"] == (1 << 30) + 1
    assert report["limit"] == 1 << 30


def test_max_file_bytes_is_per_project(tmp_path, monkeypatch, mlops_home):
    project, lake, reports, source, landing = variant(
        tmp_path, monkeypatch, lambda d: d["source"].update(max_file_bytes=1000))
    write_landing_day(project, landing, DAY, rows=100)
    with pytest.raises(DataValidationError, match=r"is over source.max_file_bytes \(1,000 bytes"):
        ingest(project, lake, reports, source, DAY)


def test_a_file_of_nul_bytes_says_so(env):
    """Was: 'Empty CSV file or block' for a preallocated file of zeros."""
    project, lake, reports, source, landing = env
    path = write_landing_day(project, landing, DAY, rows=10)
    with path.open("r+b") as fh:
        fh.truncate(0)
        fh.truncate(1 << 20)
    with pytest.raises(DataValidationError, match="it holds only NUL bytes"):
        run(project, lake, reports, source)


def test_published_records_are_laid_out_in_row_groups_of_an_eighth_of_a_shard(tmp_path, monkeypatch, mlops_home):
    """A large day splits into shards of about runs.shard_rows (shards are whole row groups): the records
    partition has row groups of shard_rows / 8 (floor 10,000) instead of pyarrow's ~1M."""
    import pyarrow.parquet as pq

    def small_shards(raw):
        raw["runs"] = {"shard_rows": 80_000}

    project, lake, reports, source, landing = variant(tmp_path, monkeypatch, small_shards)
    write_landing_day(project, landing, DAY, rows=25_000)
    assert ingest(project, lake, reports, source, DAY)["success"]
    meta = pq.ParquetFile(lake.partition_path(records_table(project), DAY), filesystem=lake.fs).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [10_000, 10_000, 5_000]
