"""IngestOperator and ValidateBatchOperator: a day from the landing source into the lake behind the GX gate."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.unit.operators.support import asset, task_context

DAY = dt.date(2024, 1, 10)
RUN_ID = "scheduled__2024-01-10"


@pytest.fixture
def landing(mlops_home, fraud_project):
    from mlops_provider.config import paths

    return paths.landing_dir() / "fraud"


def test_a_clean_day_is_staged_validated_published_and_announced(landing, fraud_project):
    from mlops_provider.config import paths
    from mlops_provider.io.lake import Lake
    from mlops_provider.operators.ingest import IngestOperator, ValidateBatchOperator

    from devkit.datagen.landing import write_landing_day

    write_landing_day(fraud_project, landing, DAY, rows=300)
    staged = IngestOperator(task_id="extract", project_name="fraud", day=DAY.isoformat()).execute(
        task_context(run_id=RUN_ID))
    assert staged["day"] == DAY.isoformat() and staged["rows"] == 300
    assert staged["staged"].endswith(f"_staging/fraud/records/dt={DAY}/data.parquet")

    validated = asset("validated")
    context = task_context(task_id="validate", run_id=RUN_ID)
    summary = ValidateBatchOperator(task_id="validate", project_name="fraud", day=DAY.isoformat(),
                                    outlets=[validated]).execute(context)
    json.dumps(summary)  # small and XCom-able
    assert summary["success"] and summary["rows"] == 300
    assert summary["partition"].endswith(f"/fraud/records/dt={DAY}/data.parquet")
    assert context["outlet_events"][validated].extra == {"day": DAY.isoformat(), "partition": summary["partition"],
                                                         "rows": 300}
    # The link opens the run's Data Docs page, published to the report store, in the report view (http).
    reports = Lake(paths.reports_uri())
    assert summary["data_docs"].startswith(reports.uri(f"{reports.root}/fraud/data_docs/scheduled__2024-01-10/"))
    page = summary["data_docs"][len(reports.uri(reports.root)) + 1:]
    assert page.endswith(".html") and b"transaction_id" in reports.read_bytes(page)  # the column checks
    assert reports.list_files("fraud/data_docs/scheduled__2024-01-10/static/styles")
    assert context["ti"].xcom["mlops_validation_report"]["url"] == (
        f"http://localhost:8080/mlops/reports/{page.replace(':', '%3A')}")
    assert len(Lake().read("fraud/records", DAY)) == 300


def test_a_bad_batch_fails_without_retries_is_quarantined_and_announces_nothing(landing, fraud_project):
    from airflow.sdk.exceptions import AirflowFailException
    from mlops_provider.config import paths
    from mlops_provider.exceptions import DataValidationError
    from mlops_provider.io.lake import Lake
    from mlops_provider.operators.ingest import IngestOperator, ValidateBatchOperator

    from devkit.datagen.landing import write_landing_day

    write_landing_day(fraud_project, landing, DAY, rows=300, scenario="duplicates")
    IngestOperator(task_id="extract", project_name="fraud", day=DAY.isoformat()).execute(task_context(run_id=RUN_ID))
    validated = asset("validated")
    context = task_context(task_id="validate", run_id=RUN_ID)
    op = ValidateBatchOperator(task_id="validate", project_name="fraud", day=DAY.isoformat(), outlets=[validated])
    with pytest.raises(AirflowFailException, match=r"expect_column_values_to_be_unique\[transaction_id\]") as err:
        op.execute(context)
    cause = err.value.__cause__
    assert isinstance(cause, DataValidationError)
    assert not context["outlet_events"], "a failed gate must not trigger the features DAG"
    # The task's link shows the failed validation, and the batch waits in quarantine.
    assert cause.data_docs_url.startswith(Lake(paths.reports_uri()).uri("")) and "/fraud/data_docs/" in cause.data_docs_url
    assert context["ti"].xcom["mlops_validation_report"]["url"].startswith("http://localhost:8080/mlops/reports/fraud/"
                                                                            "data_docs/scheduled__2024-01-10/validations/")
    assert (paths.mlops_home() / "lake" / "_quarantine" / "fraud" / f"dt={DAY}" / RUN_ID / "validation.json").exists()
    assert not Lake().exists("fraud/records", DAY)


def test_nothing_landed_is_retried_not_failed(landing):
    from airflow.sdk.exceptions import AirflowFailException
    from mlops_provider.exceptions import SourceError
    from mlops_provider.operators.ingest import IngestOperator

    with pytest.raises(SourceError, match="nothing has landed") as err:
        IngestOperator(task_id="extract", project_name="fraud", day=DAY.isoformat()).execute(
            task_context(run_id=RUN_ID))
    assert not isinstance(err.value, AirflowFailException) and err.value.retryable


def test_the_lake_connection_decides_where_the_day_goes(landing, fraud_project, tmp_path, monkeypatch):
    from mlops_provider.io.lake import Lake
    from mlops_provider.operators.ingest import IngestOperator, ValidateBatchOperator

    from devkit.datagen.landing import write_landing_day

    lake_uri, reports_uri = (tmp_path / "other-lake").as_uri(), (tmp_path / "other-reports").as_uri()
    monkeypatch.setenv("AIRFLOW_CONN_OTHER_LAKE", json.dumps({"conn_type": "mlops_lake", "extra": {
        "lake_uri": lake_uri, "reports_uri": reports_uri}}))
    write_landing_day(fraud_project, landing, DAY, rows=200)
    kwargs = {"project_name": "fraud", "day": DAY.isoformat(), "lake_conn_id": "other_lake"}
    IngestOperator(task_id="extract", **kwargs).execute(task_context(run_id=RUN_ID))
    summary = ValidateBatchOperator(task_id="validate", **kwargs).execute(task_context(run_id=RUN_ID))
    assert summary["partition"] == f"{lake_uri}/fraud/records/dt={DAY}/data.parquet"
    assert summary["result"].startswith(reports_uri)
    assert len(Lake(lake_uri).read("fraud/records", DAY)) == 200 and not Lake().exists("fraud/records", DAY)


def test_a_batch_above_shard_rows_is_validated_by_mapped_shard_tasks(landing, fraud_project, monkeypatch):
    """plan_shards -> validate_shard (one per shard, any order) -> validate, as the DAG runs them."""
    from mlops_provider.io.lake import Lake
    from mlops_provider.operators.ingest import (
        IngestOperator,
        PlanValidationShardsOperator,
        ValidateBatchOperator,
        ValidateShardOperator,
    )
    from mlops_provider.operators.shards import PLANS_KEY

    from devkit.datagen.landing import write_landing_day

    monkeypatch.setattr("mlops_provider.stages.ingest.row_group_rows", lambda shard_rows: 10_000)  # staged in 3 groups
    write_landing_day(fraud_project, landing, DAY, rows=21_000)
    IngestOperator(task_id="extract", project_name="fraud", day=DAY.isoformat()).execute(task_context(run_id=RUN_ID))
    plan_context = task_context(task_id="plan_shards", run_id=RUN_ID)
    items = PlanValidationShardsOperator(task_id="plan_shards", project_name="fraud", day=DAY.isoformat(),
                                         shard_rows=10_000).execute(plan_context)
    assert [i["index"] for i in items] == [0, 1, 2]
    for item in reversed(items):
        context = task_context(task_id="validate_shard", run_id=RUN_ID)
        shard = ValidateShardOperator(task_id="validate_shard", project_name="fraud", shard=item).execute(context)
        assert shard["success"] and shard["rows"] == (1_000 if item["index"] == 2 else 10_000)
        assert context["ti"].xcom["mlops_validation_report"]["url"].startswith("http://localhost:8080/mlops/reports/")
    summary = ValidateBatchOperator(task_id="validate", project_name="fraud", day=DAY.isoformat(),
                                    plans=plan_context["ti"].xcom[PLANS_KEY]).execute(
        task_context(task_id="validate", run_id=RUN_ID))
    assert summary["success"] and summary["shards"] == 3 and summary["rows"] == 21_000
    assert len(Lake().read("fraud/records", DAY)) == 21_000
