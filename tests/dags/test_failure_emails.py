"""Failure emails are wired the way docs/runbook.md#task-failure says: per task, and per DAG run."""

from __future__ import annotations

import pytest
from mlops_provider.config.project import load_project


def test_every_dag_run_failure_sends_the_dag_run_failed_email():
    """Was: the runbook promised a 'DAG RUN FAILED' email, but no DAG had a failure callback."""
    from mlops_provider.dag_factory import dag_kwargs
    from mlops_provider.notifiers.oncall import OnCallEmailNotifier

    project = load_project("fraud")
    kwargs = dag_kwargs(project, "ingest", "doc")
    callbacks = kwargs["on_failure_callback"]
    assert [type(c) for c in callbacks] == [OnCallEmailNotifier] and callbacks[0].project == "fraud"
    assert [type(c) for c in kwargs["default_args"]["on_failure_callback"]] == [OnCallEmailNotifier]


@pytest.mark.parametrize("stem", ["ingest", "train"])
def test_the_dag_files_carry_it(stem):
    from airflow.dag_processing.dagbag import DagBag

    from tests.dags.test_dag_integrity import DAGS

    dag = DagBag(dag_folder=str(DAGS / f"{stem}.py")).dags[f"fraud__{stem}"]
    assert dag.on_failure_callback, dag.dag_id
