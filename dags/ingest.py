"""
### Daily ingestion behind a Great Expectations gate

One DAG per ML project (`<project>__ingest`). Each run extracts exactly its data interval from the
project's source into staging, then validates it with the project's suite
(`include/expectations/<project>.suite.json`):

A batch larger than the project's `runs.shard_rows` is validated in shards: `plan_shards` splits the
staged file into whole row groups, `validate_shard` (dynamic task mapping, one task per shard, on
whichever workers are free) checks each shard against the expectations decided value by value, and
`validate` merges their results with the expectations that need the whole batch (row count,
uniqueness, means, `mostly` thresholds), run once on the columns they name. A smaller batch is
validated by `validate` alone (`validate_shard` then has no instance and shows as skipped). Either way:

* **pass** - the batch is published atomically to the lake partition `<project>/records/dt=YYYY-MM-DD`
  and the `<project>.validated` asset event triggers the features DAG;
* **fail** - the batch is moved to `_quarantine/<project>/dt=.../<run_id>/` with its validation result,
  the task fails naming the failed expectations, and nothing downstream runs.

Before extracting, **wait_for_data** looks for the day in the source every 5 minutes (reschedule
mode: no worker slot held, no failure, no email while waiting). The day is late `runs.source_wait_hours`
after it ended (UTC): then the task fails once, without retries, naming the source and the file
(pattern) or query it expected. A manual run for a day that is not over yet skips (not fails) when its
own wait runs out before that deadline.

Trigger it by hand with the `day` param to re-ingest one day; reruns replace the partition.

**Which day a run ingests** (UTC days; the first match wins):

1. the `day` param, when given;
2. the day of the run's **logical date**: a scheduled run's logical date is the start of its data
   interval (the run for 2024-01-05 starts after midnight on the 6th and ingests the 5th), and
   `airflow dags test <dag_id> 2024-01-05` or a trigger with logical date 2024-01-05 ingests the 5th too.
   Airflow gives such a manual run the data interval *ending* at the logical date
   ([01-04, 01-05)), so `data_interval_start` would silently ingest the day before: it is not used;
3. a run triggered without a logical date ingests the last complete day before it was triggered.
"""

from airflow.sdk import DAG, Param
from mlops_provider.config.project import load_projects
from mlops_provider.dag_factory import INTERVAL_DAY_TEMPLATE as DAY
from mlops_provider.dag_factory import assets, dag_kwargs
from mlops_provider.operators.ingest import (
    IngestOperator,
    PlanValidationShardsOperator,
    ValidateBatchOperator,
    ValidateShardOperator,
)
from mlops_provider.operators.shards import PLANS_KEY
from mlops_provider.sensors.source import SourceDataSensor
from mlops_provider.timetables import DataIntervalTimetable

for project in load_projects():
    with DAG(
        schedule=DataIntervalTimetable(project.schedule, timezone="UTC"),
        params={"day": Param(None, type=["null", "string"], format="date",
                             description="Day to ingest (YYYY-MM-DD); empty = the day of the run's logical date")},
        **dag_kwargs(project, "ingest", __doc__),
    ) as dag:
        wait_for_data = SourceDataSensor(task_id="wait_for_data", project_name=project.name, day=DAY)
        extract = IngestOperator(task_id="extract", project_name=project.name, day=DAY)
        plan = PlanValidationShardsOperator(task_id="plan_shards", project_name=project.name, day=DAY)
        shards = ValidateShardOperator.partial(task_id="validate_shard", project_name=project.name).expand(
            shard=plan.output)
        # none_failed_min_one_success: runs when the batch fits one task (validate_shard expanded to nothing and
        # was skipped); skipped with the whole run when wait_for_data skipped.
        validate = ValidateBatchOperator(
            task_id="validate", project_name=project.name, day=DAY, plans=plan.output[PLANS_KEY],
            outlets=[assets(project).validated], trigger_rule="none_failed_min_one_success",
        )
        wait_for_data >> extract >> plan
        shards >> validate
    globals()[dag.dag_id] = dag
