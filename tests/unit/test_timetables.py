"""Scheduled ingest runs are named by the day they process (issue 15), through a timetable every Airflow
process can deserialize (registered by the provider's plugin)."""

from __future__ import annotations

import pendulum


def _interval(day: int):
    from airflow.timetables.base import DataInterval

    start = pendulum.datetime(2024, 1, day, tz="UTC")
    return DataInterval(start, start.add(days=1))


def test_a_scheduled_run_is_named_by_the_start_of_its_data_interval_others_as_airflow_names_them():
    from airflow.utils.types import DagRunType
    from mlops_provider.timetables import DataIntervalTimetable

    timetable = DataIntervalTimetable("@daily", "UTC")
    interval = _interval(5)
    assert timetable.generate_run_id(run_type=DagRunType.SCHEDULED, run_after=interval.end,
                                     data_interval=interval) == "scheduled__2024-01-05T00:00:00+00:00"
    # Manual runs keep Airflow's unique ids (two triggers for one day must not collide).
    assert timetable.generate_run_id(run_type=DagRunType.MANUAL, run_after=interval.end,
                                     data_interval=interval) == "manual__2024-01-06T00:00:00+00:00"


def test_the_ingest_dags_timetable_survives_serialization_and_is_registered_by_the_plugin():
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.types import DagRunType
    from mlops_provider.config.paths import repo_root
    from mlops_provider.timetables import DataIntervalTimetable
    from mlops_provider.web.plugin import MlopsWebPlugin

    assert DataIntervalTimetable in MlopsWebPlugin.timetables
    bag = DagBag(dag_folder=str(repo_root() / "dags" / "ingest.py"))
    assert not bag.import_errors
    data = DagSerialization.to_dict(bag.dags["fraud__ingest"])
    assert data["dag"]["timetable"]["__type"] == "mlops_provider.timetables.DataIntervalTimetable"
    back = DagSerialization.from_dict(data)  # what the scheduler does; raises if the class is not registered
    interval = _interval(9)
    assert back.timetable.generate_run_id(run_type=DagRunType.SCHEDULED, run_after=interval.end,
                                          data_interval=interval) == "scheduled__2024-01-09T00:00:00+00:00"
    assert back.timetable.summary == bag.dags["fraud__ingest"].timetable.summary
