"""
### Batch scoring with a shadow challenger

One DAG per ML project (`<project>__score`), scheduled on the `<project>.features` asset (a new day
is ready) or the `<project>.model` asset (a new champion). The `champion` alias scores the day's
validated records with point-in-time features from Feast; the `challenger`, when one exists,
shadow-scores the same rows. Predictions land in the lake under `<project>/predictions/dt=...` with
the model name and versions; shadow scores are never used as decisions. Emits `<project>.predictions`.

A day larger than the project's `runs.shard_rows` is scored in shards: `plan_shards` splits it into
whole row groups and pins the model versions, `score_shard` (dynamic task mapping, one task per shard)
runs on whichever workers are free, and `score` publishes the day's partition from every shard at once.
A smaller day is scored by `score` alone (`score_shard` then has no instance and shows as skipped).
"""

from airflow.sdk import DAG
from mlops_provider.config.project import load_projects
from mlops_provider.dag_factory import DAYS_TEMPLATE, assets, dag_kwargs, day_param
from mlops_provider.operators.score_shards import (
    PlanScoreShardsOperator,
    ScoreDayOperator,
    ScoreShardOperator,
)
from mlops_provider.operators.shards import PLANS_KEY

for project in load_projects():
    project_assets = assets(project)
    with DAG(
        schedule=(project_assets.features | project_assets.model),
        params={"day": day_param()},
        **dag_kwargs(project, "score", __doc__),
    ) as dag:
        plan = PlanScoreShardsOperator(task_id="plan_shards", project_name=project.name, day=DAYS_TEMPLATE)
        shards = ScoreShardOperator.partial(task_id="score_shard", project_name=project.name).expand(shard=plan.output)
        # none_failed_min_one_success: runs when no day needed shards (the mapped task expanded to nothing and
        # was skipped, plan_shards succeeded); skipped with plan_shards (no champion yet: nothing to do).
        score = ScoreDayOperator(task_id="score", project_name=project.name, day=DAYS_TEMPLATE,
                                 plans=plan.output[PLANS_KEY], trigger_rule="none_failed_min_one_success",
                                 outlets=[project_assets.predictions])
        shards >> score
    globals()[dag.dag_id] = dag
