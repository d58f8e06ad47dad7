"""Ingest under faults: a worker killed mid lake write, an S3 endpoint gone, a Postgres read cut mid-way."""

from __future__ import annotations

import pytest

from tests.faults.conftest import NEW_DAY
from tests.faults.support import Case

pytestmark = pytest.mark.faults


def landed_ids(home) -> set[str]:
    from mlops_provider.config import paths
    from mlops_provider.config.project import load_project
    from mlops_provider.io.sources import LandingSource, ReadSpec

    project = load_project("fraud")
    records, _ = LandingSource(paths.landing_dir() / "fraud").read_records(NEW_DAY, NEW_DAY, ReadSpec.from_project(project))
    return set(records.column("transaction_id").to_pylist())


def check_partition(case: Case, lake, table: str, day, expected_ids: set[str], id_column: str = "transaction_id"):
    """The partition is there once, whole, with exactly the expected rows; nothing half-written is visible."""
    present = lake.exists(table, day)
    case.check(f"{table} partition present", present)
    if not present:
        return
    case.check(f"{table} partition listed once", lake.partitions(table).count(day) == 1, lake.partitions(table))
    ids = lake.read_arrow(table, day, columns=[id_column]).column(id_column).to_pylist()
    case.check(f"{table}: no row duplicated", len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} duplicates")
    case.check(f"{table}: no row lost", set(ids) == expected_ids,
               f"{len(expected_ids - set(ids))} missing, {len(set(ids) - expected_ids)} extra")
    visible = [f for f in lake.list_files(f"{table}/dt={day.isoformat()}")]
    case.check(f"{table}: one visible file", visible == [f"{table}/dt={day.isoformat()}/data.parquet"], visible)


def test_kill_mid_gate_between_labels_and_records(home):
    """SIGKILL in validate after the labels partition is written, before the records partition is; the retry publishes both."""
    from mlops_provider.config import paths
    from mlops_provider.config.project import load_project
    from mlops_provider.domain.layout import staging_table
    from mlops_provider.io.lake import Lake

    case = Case("SIGKILL mid lake write", "ingest.validate")
    run = {"day": NEW_DAY.isoformat(), "run_id": "scheduled__faults"}
    assert home.run("stage_day", run).returncode == 0
    killed = home.run("gate_day", run, failpoints="lake.write.publish=kill@2")
    assert killed.killed, killed.output
    lake = Lake()
    case.check("killed try published no records", not lake.exists("fraud/records", NEW_DAY))
    retry = home.run("gate_day", run)
    assert retry.returncode == 0, retry.output
    check_partition(case, lake, "fraud/records", NEW_DAY, landed_ids(home))
    labels = Lake(paths.lake_uri()).read_arrow("fraud/labels", NEW_DAY).column("transaction_id").to_pylist()
    case.check("fraud/labels: published once, no duplicate", len(labels) == len(set(labels)) and labels)
    case.check("staging cleared after the retry", not lake.exists(staging_table(load_project("fraud")), NEW_DAY)
               and not lake.list_files("_staging"), lake.list_files("_staging"))
    case.verify()


def test_kill_mid_extract(home):
    """SIGKILL in extract with the staged file written but not in place; the retry stages the day once."""
    from mlops_provider.config.project import load_project
    from mlops_provider.domain.layout import staging_table
    from mlops_provider.io.lake import Lake

    case = Case("SIGKILL mid lake write", "ingest.extract")
    run = {"day": NEW_DAY.isoformat(), "run_id": "scheduled__faults"}
    killed = home.run("stage_day", run, failpoints="lake.write.publish=kill")
    assert killed.killed, killed.output
    lake, table = Lake(), staging_table(load_project("fraud"))
    case.check("killed try left no partial partition", not lake.exists(table, NEW_DAY))
    retry = home.run("stage_day", run)
    assert retry.returncode == 0, retry.output
    check_partition(case, lake, table, NEW_DAY, landed_ids(home))
    case.verify()
