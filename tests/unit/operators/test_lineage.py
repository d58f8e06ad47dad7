"""OpenLineage facets of the provider's operators: what each task read and wrote, as the listener emits them.

Each operator runs on the real pipeline (``world``), then its ``get_openlineage_facets_on_complete`` is
called the way the OpenLineage provider's extractor calls it, and the datasets are serialized with the
OpenLineage client's own serde (what a transport writes). The whole path through the listener and the
file transport is tests/dags/test_lineage.py.
"""

from __future__ import annotations

import json

from tests.unit.operators.support import DAYS, MODEL, task_context


def emitted(op) -> tuple[dict[tuple[str, str], dict], dict[tuple[str, str], dict]]:
    """The operator's inputs and outputs as OpenLineage JSON, by (namespace, name)."""
    from openlineage.client.serde import Serde

    lineage = op.get_openlineage_facets_on_complete(None)

    def by_name(datasets):
        return {(d["namespace"], d["name"]): d for d in (json.loads(Serde.to_json(x)) for x in datasets)}

    return by_name(lineage.inputs), by_name(lineage.outputs)


def _lake(table: str) -> tuple[str, str]:
    from mlops_provider.io.lake import Lake

    lake = Lake()
    return "file", f"{lake.root}/{table}"


def test_helpers_name_datasets_as_openlineage_does_and_never_carry_credentials():
    from mlops_provider.operators import lineage

    assert lineage.from_uri("file:///data/lake/x") == lineage.LineageDataset("file", "/data/lake/x")
    assert lineage.from_uri("s3://bucket/exports/records") == lineage.LineageDataset("s3://bucket", "exports/records")
    version = lineage.model_version("https://alice:secret@mlflow.example.com/", "m", 3, run_id="r", metrics={"a": 1})
    assert (version.namespace, version.name) == ("mlflow://mlflow.example.com", "models/m/3")
    assert version.facets[lineage.MODEL_FACET] == {"model_name": "m", "version": "3", "run_id": "r", "metrics": {"a": 1}}
    assert "secret" not in json.dumps([version.namespace, version.name, version.facets])
    table = lineage.postgres_table("db.internal", 5433, "warehouse", "Payments.records")
    assert (table.namespace, table.name) == ("postgres://db.internal:5433", "warehouse.Payments.records")


def test_compute_features_reads_the_records_and_writes_every_feature_table_of_every_day(pipeline):
    from mlops_provider.operators.features import ComputeFeaturesOperator

    days = f"{DAYS[2].isoformat()},{DAYS[3].isoformat()}"
    op = ComputeFeaturesOperator(task_id="compute_features", project_name="fraud", day=days)
    op.execute(task_context(task_id="compute_features"))
    inputs, outputs = emitted(op)
    assert list(inputs) == [_lake("fraud/records")]
    assert inputs[_lake("fraud/records")]["facets"]["mlops_partition"]["days"] == [d.isoformat() for d in DAYS[2:4]]
    assert set(outputs) == {_lake("fraud/features/entity/customer"), _lake("fraud/features/record")}
    record = outputs[_lake("fraud/features/record")]
    assert record["outputFacets"]["outputStatistics"]["rowCount"] > 0
    assert record["facets"]["mlops_partition"]["uri"].endswith(f"fraud/features/record/dt={DAYS[3]}/data.parquet")


def test_materialize_writes_the_feature_views(pipeline):
    from mlops_provider.operators.features import MaterializeFeaturesOperator

    day = DAYS[-1].isoformat()
    op = MaterializeFeaturesOperator(task_id="materialize", project_name="fraud", start=day, end=day)
    op.execute(task_context(task_id="materialize"))
    inputs, outputs = emitted(op)
    assert set(inputs) == {_lake("fraud/features/entity/customer"), _lake("fraud/features/record")}
    assert set(outputs) == {("feast://fraud", "fraud_customer_aggregates"), ("feast://fraud", "fraud_record_features")}
    assert outputs[("feast://fraud", "fraud_record_features")]["facets"]["mlops_materialization"]["last_partition"] == day


def test_score_reads_records_features_and_the_champion_and_writes_predictions(pipeline):
    from mlops_provider.operators.scoring import ScoreBatchOperator

    day = DAYS[-1].isoformat()
    op = ScoreBatchOperator(task_id="score", project_name="fraud", day=day)
    result = op.execute(task_context(task_id="score"))
    inputs, outputs = emitted(op)
    champion = ("mlflow://embedded", f"models/{MODEL}/{pipeline.champion}")
    assert set(inputs) == {_lake("fraud/records"), ("feast://fraud", "fraud_customer_aggregates"),
                           ("feast://fraud", "fraud_record_features"), champion}
    assert inputs[champion]["facets"]["mlops_model_version"]["role"] == "champion"
    predictions = outputs[_lake("fraud/predictions")]
    assert predictions["outputFacets"]["outputStatistics"]["rowCount"] == result["rows"]
    assert predictions["facets"]["mlops_partition"]["day"] == day


def test_train_outputs_the_model_version_with_its_metrics(pipeline):
    from mlops_provider.operators.training import TrainModelOperator

    op = TrainModelOperator(task_id="train", project_name="fraud", as_of=DAYS[-2].isoformat(), window_days="8",
                            hpo_trials="1")
    result = op.execute(task_context(task_id="train"))
    inputs, outputs = emitted(op)
    assert set(inputs) == {("feast://fraud", MODEL), _lake("fraud/labels")}  # the feature service
    version = outputs[("mlflow://embedded", f"models/{MODEL}/{result['version']}")]
    facet = version["facets"]["mlops_model_version"]
    assert facet["run_id"] == result["run_id"] and facet["alias"] == "challenger"
    assert facet["as_of"] == DAYS[-2].isoformat()
    assert facet["metrics"] == result["metrics"] and "roc_auc" in facet["metrics"]


def test_promotion_reads_the_candidate_and_writes_it_as_champion(pipeline, mlflow_client):
    from mlops_provider.operators.registry import PromoteModelOperator

    # The pipeline's model as a challenger before any champion: the gate compares it with the baseline.
    mlflow_client.delete_registered_model_alias(MODEL, "champion")
    mlflow_client.set_registered_model_alias(MODEL, "challenger", pipeline.champion)
    op = PromoteModelOperator(task_id="promote", project_name="fraud")
    result = op.execute(task_context(task_id="promote"))
    assert result["promoted"]
    inputs, outputs = emitted(op)
    key = ("mlflow://embedded", f"models/{MODEL}/{pipeline.champion}")
    assert list(inputs) == list(outputs) == [key]
    assert inputs[key]["facets"]["mlops_model_version"]["metrics"] == {result["primary_metric"]: result["challenger_value"]}
    assert outputs[key]["facets"]["mlops_model_version"]["alias"] == "champion"


def test_a_rollback_reads_the_version_it_leaves_and_writes_the_one_that_serves_again(pipeline, mlflow_client):
    from mlops_provider.config import paths
    from mlops_provider.io import model_store
    from mlops_provider.operators.registry import RollbackModelOperator

    champion = mlflow_client.get_model_version(MODEL, pipeline.champion)
    with model_store.tracking(paths.mlflow_tracking_uri()):
        copy = str(mlflow_client.create_model_version(MODEL, champion.source, run_id=champion.run_id,
                                                      tags={"project": "fraud"}).version)
    model_store.promote(mlflow_client, MODEL, copy, reason="lineage test")
    op = RollbackModelOperator(task_id="rollback", project_name="fraud", to="previous", reason="INC-7")
    op.execute(task_context(task_id="rollback"))
    inputs, outputs = emitted(op)
    assert list(inputs) == [("mlflow://embedded", f"models/{MODEL}/{copy}")]
    [served] = outputs.values()
    assert served["name"] == f"models/{MODEL}/{pipeline.champion}"
    facet = {k: v for k, v in served["facets"]["mlops_model_version"].items() if not k.startswith("_")}
    assert facet == {"model_name": MODEL, "version": pipeline.champion, "alias": "champion", "reason": "INC-7",
                     "replaced": copy}


def test_monitor_reads_predictions_labels_and_the_champion_and_writes_the_report(pipeline):
    from mlops_provider.config import paths
    from mlops_provider.io.lake import Lake
    from mlops_provider.operators.monitoring import MonitorDriftOperator

    day = pipeline.scored[-1].isoformat()
    op = MonitorDriftOperator(task_id="monitor", project_name="fraud", day=day)
    result = op.execute(task_context(task_id="monitor"))
    inputs, outputs = emitted(op)
    champion = ("mlflow://embedded", f"models/{MODEL}/{result['model_version']}")
    assert set(inputs) >= {_lake("fraud/predictions"), champion}
    assert inputs[_lake("fraud/predictions")]["facets"]["mlops_partition"]["day"] == day
    assert (_lake("fraud/labels") in inputs) == Lake().exists("fraud/labels", day)
    reports = Lake(paths.reports_uri())
    assert set(outputs) == {("file", f"{reports.root}/fraud/monitoring/dt={day}/report.html"),
                            ("file", f"{reports.root}/fraud/monitoring/dt={day}/report.verdict.json")}
