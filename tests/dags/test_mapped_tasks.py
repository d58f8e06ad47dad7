"""Every mapped task of the DAG folder (the shard tasks) builds its task context: inlets and outlets are
lists, as Airflow's own operators have them.

The provider's base operator puts mixins ahead of ``BaseOperator``; Airflow's metaclass then copied
``BaseOperator.__init__`` (``inlets=None``) into it, ``.partial()`` took ``None`` as the default, and
every mapped task failed before executing (``'NoneType' object is not iterable``)."""

from __future__ import annotations

from pathlib import Path

DAGS = Path(__file__).resolve().parents[2] / "dags"


def test_mapped_tasks_have_list_inlets_and_outlets():
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    mapped = [t for dag in bag.dags.values() for t in dag.tasks if isinstance(t, MappedOperator)]
    assert {t.task_id for t in mapped} >= {"compute_shard", "score_shard"}
    for task in mapped:
        assert isinstance(task.inlets, list) and isinstance(task.outlets, list), (task.dag_id, task.task_id)
