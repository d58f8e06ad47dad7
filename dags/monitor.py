"""
### Drift and performance monitoring, on-call alerts, drift-triggered retraining

One DAG per ML project (`<project>__monitor`), scheduled on the `<project>.predictions` asset.

1. **monitor**: Evidently data drift per feature against the champion's training reference,
   prediction drift, data quality, and, for the labels that arrived that day, target drift and
   classification performance. The HTML / JSON report goes to the report store and to the champion's
   MLflow run (extra links on the task). A non-ok verdict emails on-call once per day and verdict kind
   (whatever model version scored the day), saying what drifted, how bad, what the system did and what to do.
2. **request_retrain**: when the verdict requested retraining (one request per day,
   `model.retrain_cooldown_hours` between requests), emits `<project>.drift`, which triggers
   `<project>__train`; the retrained challenger still goes through the promotion gate. Otherwise the
   task is skipped and emits nothing. It runs even when `monitor` failed: a request `monitor` recorded
   before its alert email could not be sent (an SMTP outage longer than its retries) is announced all
   the same.

A day with more predictions than the project's `runs.shard_rows` has its statistics computed in shards:
`plan_shards` splits it into whole row groups, `monitor_shard` (dynamic task mapping, one task per shard)
stages each shard's counts and sample on whichever workers are free, and `monitor` merges them (exactly:
the verdict is the one of the day monitored in one task) and drops them once it succeeded. A smaller day
is read by `monitor` alone (`monitor_shard` then has no instance and shows as skipped).

Every day at a glance (drift share, performance, alerts and retrains as charts, each day's report): the
**Monitoring history** tab of this DAG, `/mlops/monitoring/<project>` of the Airflow UI.
"""

from airflow.sdk import DAG
from mlops_provider.config.project import load_projects
from mlops_provider.dag_factory import DAYS_TEMPLATE, assets, dag_kwargs, day_param
from mlops_provider.operators.announce import RequestRetrainOperator
from mlops_provider.operators.monitor_shards import PLANS_KEY, MonitorShardOperator, PlanMonitorShardsOperator
from mlops_provider.operators.monitoring import MonitorDriftOperator

for project in load_projects():
    project_assets = assets(project)
    with DAG(
        schedule=[project_assets.predictions],
        params={"day": day_param()},
        **dag_kwargs(project, "monitor", __doc__),
    ) as dag:
        plan = PlanMonitorShardsOperator(task_id="plan_shards", project_name=project.name, day=DAYS_TEMPLATE)
        shards = MonitorShardOperator.partial(task_id="monitor_shard", project_name=project.name).expand(
            shard=plan.output)
        # none_failed_min_one_success: runs when no day needed shards (the mapped task expanded to nothing and
        # was skipped, plan_shards succeeded); skipped with plan_shards (no champion yet: nothing to do).
        monitor = MonitorDriftOperator(task_id="monitor", project_name=project.name, day=DAYS_TEMPLATE,
                                       plans=plan.output[PLANS_KEY], trigger_rule="none_failed_min_one_success")
        # all_done: a monitor that failed on every try (an SMTP outage) after recording a retrain request
        # still has it announced; the task skips when nothing was requested.
        request_retrain = RequestRetrainOperator(task_id="request_retrain", monitor_task_id="monitor",
                                                 project_name=project.name, day=DAYS_TEMPLATE,
                                                 trigger_rule="all_done", outlets=[project_assets.drift])
        shards >> monitor >> request_retrain
    globals()[dag.dag_id] = dag
