"""
### Model operations for on-call: promote or roll back from the Airflow UI

One manual DAG per ML project (`<project>__model_ops`). Trigger it with typed params:

* `action=rollback`, `version=previous` - `champion` goes back to `previous_champion` in one step;
* `action=rollback`, `version=<n>` - `champion` moves to version n;
* `action=promote`, `version=<n>` or `challenger` - runs the promotion gate (same holdout, primary
  metric, guardrails) and promotes only if it passes; a refusal skips the task (its log and the
  version's tags say why) and announces nothing.

Contradictory params (`rollback` + `challenger`, `promote` + `previous`) fail the run at
`choose_action`, before anything moves. `reason` is recorded as a tag on the version. A change of
champion emits `<project>.model`, so scoring redoes the newest scored day with the new champion.

Runs in the `mlops_promotion` pool (size 1) so that two alias moves never interleave.
"""

from airflow.sdk import DAG, Param
from mlops_provider.config.project import load_projects
from mlops_provider.dag_factory import PROMOTION_POOL, assets, dag_kwargs
from mlops_provider.operators.registry import (
    ModelOpsActionOperator,
    PromoteModelOperator,
    RollbackModelOperator,
)

for project in load_projects():
    model = assets(project).model
    with DAG(
        schedule=None,
        params={
            # No default action and no prefilled reason: the form cannot roll production back in one click.
            "action": Param(type="string", enum=["rollback", "promote"], title="Action",
                            values_display={"rollback": "Roll back the champion",
                                            "promote": "Promote through the gate (same holdout, guardrails)"},
                            description="Required: what to do with the registered model"),
            "version": Param("previous", type="string", pattern=r"^(previous|challenger|[0-9]+)$",
                             description="'previous', 'challenger' or a version number"),
            "reason": Param(type="string", minLength=3, title="Reason",
                            description="Required: why (an incident id, what you saw); recorded on the version"),
        },
        **dag_kwargs(project, "model_ops", __doc__),
    ) as dag:
        choose_action = ModelOpsActionOperator(task_id="choose_action", action="{{ params.action }}",
                                               version="{{ params.version }}")
        rollback = RollbackModelOperator(
            task_id="rollback", project_name=project.name, to="{{ params.version }}", reason="{{ params.reason }}",
            pool=PROMOTION_POOL, outlets=[model],
        )
        promote = PromoteModelOperator(
            task_id="promote", project_name=project.name, version="{{ params.version }}",
            request_reason="{{ params.reason }}", skip_if_refused=True, pool=PROMOTION_POOL,
            outlets=[model],
        )
        choose_action >> [rollback, promote]
    globals()[dag.dag_id] = dag
