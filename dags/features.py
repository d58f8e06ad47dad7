"""
### Features: compute, `feast apply`, materialize, freshness check

One DAG per ML project (`<project>__features`), scheduled on the `<project>.validated` asset. It
computes the day's per-entity aggregates and per-record features into the lake (the Feast offline
source), applies the Feast definitions (idempotent), materializes
[day - overlap, day] into the online store in chunks, and reads a sample back to prove the online
store equals the offline values. Emits `<project>.features`.
"""

from airflow.sdk import DAG
from mlops_provider.config.project import load_projects
from mlops_provider.dag_factory import DAYS_TEMPLATE, assets, dag_kwargs, day_param
from mlops_provider.operators.features import ComputeFeaturesOperator, MaterializeFeaturesOperator

for project in load_projects():
    project_assets = assets(project)
    with DAG(
        schedule=[project_assets.validated],
        params={"day": day_param()},
        **dag_kwargs(project, "features", __doc__),
    ) as dag:
        compute = ComputeFeaturesOperator(task_id="compute_features", project_name=project.name, day=DAYS_TEMPLATE)
        materialize = MaterializeFeaturesOperator(
            task_id="materialize", project_name=project.name, start=DAYS_TEMPLATE, end=DAYS_TEMPLATE,
            outlets=[project_assets.features],
        )
        compute >> materialize
    globals()[dag.dag_id] = dag
