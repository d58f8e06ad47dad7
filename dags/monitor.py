"""
### Drift and performance monitoring, on-call alerts, drift-triggered retraining

One DAG per ML project (`<project>__monitor`), scheduled on the `<project>.predictions` asset.

1. **monitor**: Evidently data drift per feature against the champion's training reference,
   prediction drift, data quality, and, for the labels that arrived that day, target drift and
   classification performance. The HTML / JSON report goes to the report store and to the champion's
   MLflow run (extra links on the task). A non-ok verdict emails on-call once per model version, day and
   verdict kind, saying what drifted, how bad, what the system did and what to do.
2. **retrain_requested** / **request_retrain**: when the verdict requested retraining (one request per
   day, `model.retrain_cooldown_hours` between requests), emits `<project>.drift`, which triggers
   `<project>__train`; the retrained challenger still goes through the promotion gate.
"""

from airflow.sdk import DAG, Asset, task
from mlops_provider.core.config import load_projects
from mlops_provider.operators.monitoring import MonitorDriftOperator
from mlops_provider.pipeline import DAYS_TEMPLATE, assets, dag_kwargs, day_param


@task.short_circuit(task_id="retrain_requested")
def retrain_requested(ti=None) -> bool:
    return bool((ti.xcom_pull(task_ids="monitor") or {}).get("retrain_requested"))


def request_retrain_task(drift: Asset):
    """The task that announces a retrain request as a ``drift`` asset event carrying the verdict summary."""

    @task(task_id="request_retrain", outlets=[drift])
    def request_retrain(ti=None, outlet_events=None) -> dict:
        result = ti.xcom_pull(task_ids="monitor")
        extra = {"day": result["day"], "kind": result["kind"], "model_version": result["model_version"],
                 "drifted_columns": result["drifted_columns"][:20], "roc_auc": result["roc_auc"],
                 "report": result["report"]["html"]}
        outlet_events[drift].extra = extra
        return extra

    return request_retrain()


for project in load_projects():
    project_assets = assets(project)
    with DAG(
        schedule=[project_assets.predictions],
        params={"day": day_param()},
        **dag_kwargs(project, "monitor", __doc__),
    ) as dag:
        monitor = MonitorDriftOperator(task_id="monitor", project_name=project.name, day=DAYS_TEMPLATE)

        monitor >> retrain_requested() >> request_retrain_task(project_assets.drift)
    globals()[dag.dag_id] = dag
