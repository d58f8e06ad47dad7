"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-provider-mlops",
        "name": "MLOps",
        "description": "Production ML on Airflow: validated ingestion (Great Expectations), features (Feast), "
        "training and registry promotion (MLflow), drift monitoring and on-call alerts (Evidently).",
        "versions": ["0.1.0"],
        "connection-types": [
            {"hook-class-name": "mlops_provider.hooks.mlflow.MlflowHook", "connection-type": "mlflow"},
            {"hook-class-name": "mlops_provider.hooks.feast.FeastHook", "connection-type": "feast"},
            {"hook-class-name": "mlops_provider.hooks.lake.LakeHook", "connection-type": "mlops_lake"},
        ],
        "extra-links": [
            "mlops_provider.links.artifacts.ValidationReportLink",
            "mlops_provider.links.artifacts.MlflowRunLink",
            "mlops_provider.links.artifacts.ModelVersionLink",
            "mlops_provider.links.artifacts.DriftReportLink",
        ],
        "notifications": ["mlops_provider.notifiers.oncall.OnCallEmailNotifier"],
    }
