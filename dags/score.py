"""
### Batch scoring with a shadow challenger

One DAG per ML project (`<project>__score`), scheduled on the `<project>.features` asset (a new day
is ready) or the `<project>.model` asset (a new champion). The `champion` alias scores the day's
validated records with point-in-time features from Feast; the `challenger`, when one exists,
shadow-scores the same rows. Predictions land in the lake under `<project>/predictions/dt=...` with
the model name and versions; shadow scores are never used as decisions. Emits `<project>.predictions`.
"""

from airflow.sdk import DAG
from mlops_provider.config.project import load_projects
from mlops_provider.dag_factory import DAYS_TEMPLATE, assets, dag_kwargs, day_param
from mlops_provider.operators.scoring import ScoreBatchOperator

for project in load_projects():
    project_assets = assets(project)
    with DAG(
        schedule=(project_assets.features | project_assets.model),
        params={"day": day_param()},
        **dag_kwargs(project, "score", __doc__),
    ) as dag:
        ScoreBatchOperator(task_id="score", project_name=project.name, day=DAYS_TEMPLATE,
                           outlets=[project_assets.predictions])
    globals()[dag.dag_id] = dag
