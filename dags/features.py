"""
### Features: compute, `feast apply`, materialize, freshness check

One DAG per ML project (`<project>__features`), scheduled on the `<project>.validated` asset. It
computes the day's per-entity aggregates and per-record features into the lake (the Feast offline
source), applies the Feast definitions (idempotent), materializes
[day - overlap, day] into the online store in chunks, and reads a sample back to prove the online
store equals the offline values. Emits `<project>.features`.

A day larger than the project's `runs.shard_rows` is computed in shards: `plan_shards` splits it
(entity keys by a stable hash, records by whole row groups), `compute_shard` (dynamic task mapping, one
task per shard) runs on whichever workers are free, and `compute_features` writes the day's partitions
from every shard. A smaller day is computed by `compute_features` alone (`compute_shard` then has no
instance and shows as skipped).
"""

from airflow.sdk import DAG
from mlops_provider.config.project import load_projects
from mlops_provider.dag_factory import DAYS_TEMPLATE, assets, dag_kwargs, day_param
from mlops_provider.operators.features import (
    ComputeFeatureShardOperator,
    ComputeFeaturesOperator,
    MaterializeFeaturesOperator,
    PlanFeatureShardsOperator,
)
from mlops_provider.operators.shards import PLANS_KEY

for project in load_projects():
    project_assets = assets(project)
    with DAG(
        schedule=[project_assets.validated],
        params={"day": day_param()},
        **dag_kwargs(project, "features", __doc__),
    ) as dag:
        plan = PlanFeatureShardsOperator(task_id="plan_shards", project_name=project.name, day=DAYS_TEMPLATE)
        shards = ComputeFeatureShardOperator.partial(task_id="compute_shard", project_name=project.name).expand(
            shard=plan.output)
        # none_failed_min_one_success: runs when no day needed shards (the mapped task expanded to nothing and
        # was skipped, plan_shards succeeded); skipped with plan_shards (no champion yet: nothing to do).
        compute = ComputeFeaturesOperator(task_id="compute_features", project_name=project.name, day=DAYS_TEMPLATE,
                                          plans=plan.output[PLANS_KEY], trigger_rule="none_failed_min_one_success")
        materialize = MaterializeFeaturesOperator(
            task_id="materialize", project_name=project.name, start=DAYS_TEMPLATE, end=DAYS_TEMPLATE,
            outlets=[project_assets.features],
        )
        shards >> compute >> materialize
    globals()[dag.dag_id] = dag
