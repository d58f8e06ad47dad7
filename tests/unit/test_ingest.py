"""Ingestion + the Great Expectations gate on every kind of bad batch: clear failure, quarantine, no partition."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from mlops_provider.config import paths
from mlops_provider.exceptions import DataValidationError, SourceError
from mlops_provider.io.lake import Lake
from mlops_provider.io.sources import LandingSource
from mlops_provider.io.validation import build_suite_dict, suite_path
from mlops_provider.stages.ingest import gate_day, records_table, stage_day, staging_table

from devkit.datagen.landing import write_landing_day

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
    # labels of the day arrive label.delay_days later, in their own table
    write_landing_day(project, landing, DAY - dt.timedelta(days=project.label_delay_days), rows=800)
    labelled = stage_day(project, lake, source, DAY, run_id="manual__labels")
    assert labelled["labels"]["rows"] == 800


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
