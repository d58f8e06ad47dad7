"""
### Model operations for on-call: promote or roll back from the Airflow UI

One manual DAG per ML project (`<project>__model_ops`). Trigger it with typed params:

* `action=rollback`, `version=previous` - `champion` goes back to `previous_champion` in one step;
* `action=rollback`, `version=<n>` - `champion` moves to version n;
* `action=promote`, `version=<n>` (or empty for the current `challenger`) - runs the promotion gate
  (same holdout, primary metric, guardrails) and promotes only if it passes.

Runs in the `mlops_promotion` pool (size 1) so that two alias moves never interleave.
"""

from airflow.sdk import DAG, Param, task
from mlops_provider.core.config import load_projects
from mlops_provider.operators.registry import PromoteModelOperator, RollbackModelOperator
from mlops_provider.pipeline import PROMOTION_POOL, assets, dag_kwargs

for project in load_projects():
    with DAG(
        schedule=None,
        params={
            "action": Param("rollback", enum=["rollback", "promote"], description="What to do"),
            "version": Param("previous", type="string", pattern=r"^(previous|challenger|[0-9]+)$",
                             description="'previous', 'challenger' or a version number"),
            "reason": Param("on-call decision", type="string", minLength=3, description="Recorded on the version"),
        },
        **dag_kwargs(project, "model_ops", __doc__),
    ) as dag:

        @task.branch(task_id="choose_action")
        def choose_action(params=None) -> str:
            return "rollback" if params["action"] == "rollback" else "promote"

        rollback = RollbackModelOperator(
            task_id="rollback", project_name=project.name, to="{{ params.version }}", pool=PROMOTION_POOL,
            outlets=[assets(project).model],
        )
        promote = PromoteModelOperator(
            task_id="promote", project_name=project.name,
            version="{{ None if params.version in ('previous', 'challenger') else params.version }}",
            pool=PROMOTION_POOL, outlets=[assets(project).model],
        )
        choose_action() >> [rollback, promote]
    globals()[dag.dag_id] = dag
