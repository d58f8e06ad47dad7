"""
### Daily ingestion behind a Great Expectations gate

One DAG per ML project (`<project>__ingest`). Each run extracts exactly its data interval from the
project's source into staging, then validates it with the project's suite
(`include/expectations/<project>.suite.json`):

* **pass** - the batch is published atomically to the lake partition `<project>/records/dt=YYYY-MM-DD`
  and the `<project>.validated` asset event triggers the features DAG;
* **fail** - the batch is moved to `_quarantine/<project>/dt=.../<run_id>/` with its validation result,
  the task fails naming the failed expectations, and nothing downstream runs.

Trigger it by hand with the `day` param to re-ingest one day; reruns replace the partition.
"""

from airflow.sdk import DAG, CronDataIntervalTimetable, Param
from mlops_provider.core.config import load_projects
from mlops_provider.operators.ingest import IngestOperator, ValidateBatchOperator
from mlops_provider.pipeline import assets, dag_kwargs

DAY = "{{ params.day or data_interval_start | ds }}"

for project in load_projects():
    with DAG(
        schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
        params={"day": Param(None, type=["null", "string"], format="date",
                             description="Day to ingest (YYYY-MM-DD); empty = the run's data interval")},
        **dag_kwargs(project, "ingest", __doc__),
    ) as dag:
        extract = IngestOperator(task_id="extract", project_name=project.name, day=DAY)
        validate = ValidateBatchOperator(
            task_id="validate", project_name=project.name, day=DAY, outlets=[assets(project).validated]
        )
        extract >> validate
    globals()[dag.dag_id] = dag
