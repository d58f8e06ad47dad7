"""Every provider operator reports its task process's peak memory after a successful execute: a log line
``peak memory: N MiB`` and the XCom ``peak_rss_mib`` (what ``bench/stack_scale.py`` reads per task); and a
mapped provider operator runs (the stack benchmark's shards)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.unit.operators.support import task_context

REPO = Path(__file__).resolve().parents[3]


def _operator(base_name: str = "MlopsBaseOperator"):
    from mlops_provider.operators import base

    class Work(getattr(base, base_name)):
        def execute(self, context):
            return None

        def choose_branch(self, context):
            return []

    return Work(task_id="work")


def test_post_execute_logs_the_peak_rss_and_pushes_it_as_an_xcom(capsys):
    import resource

    from mlops_provider.operators.base import PEAK_RSS_KEY, peak_rss_mib

    op = _operator()
    context = task_context()
    op.post_execute(context, result={"rows": 1})
    pushed = context["ti"].xcom[PEAK_RSS_KEY]
    assert PEAK_RSS_KEY == "peak_rss_mib"
    # ru_maxrss is KiB on Linux; this process holds at least pytest and Airflow: tens of MiB.
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert isinstance(pushed, float) and 10 < pushed <= peak_rss_mib() and abs(pushed - kib / 1024) < 64
    assert f"peak memory: {pushed:.0f} MiB" in capsys.readouterr().out  # the task log (structlog)


def test_post_execute_pushes_the_cpu_time_of_the_task_process():
    """CPU seconds over the task's duration: the cores it kept busy (pyarrow and numpy threads included)."""
    import resource

    from mlops_provider.operators.base import CPU_SECONDS_KEY

    before = resource.getrusage(resource.RUSAGE_SELF)
    sum(i * i for i in range(2_000_000))  # some CPU work
    context = task_context()
    _operator().post_execute(context)
    pushed = context["ti"].xcom[CPU_SECONDS_KEY]
    assert CPU_SECONDS_KEY == "cpu_seconds"
    assert pushed >= round(before.ru_utime + before.ru_stime, 2) + 0.05


def test_branch_operators_report_it_too_and_a_failed_push_does_not_fail_the_task(capsys):
    op = _operator("MlopsBaseBranchOperator")
    context = task_context()
    op.post_execute(context)
    assert context["ti"].xcom["peak_rss_mib"] > 0

    class Unreachable:
        def xcom_push(self, key, value):
            raise ConnectionError("execution API down")

    _operator().post_execute({"ti": Unreachable()})
    assert "peak memory / CPU time not recorded as XComs: execution API down" in capsys.readouterr().out


DAG_FILE = textwrap.dedent("""
    import datetime as dt
    from airflow.sdk import DAG
    from mlops_provider.operators.base import MlopsBaseOperator

    class Allocate(MlopsBaseOperator):
        def __init__(self, *, mib=64, **kwargs):
            super().__init__(**kwargs)
            self.mib = mib

        def execute(self, context):
            block = bytearray(self.mib * 2**20)  # touched: resident at the peak
            return len(block)

    with DAG("peak_memory_probe", schedule=None, start_date=dt.datetime(2024, 1, 1)) as dag:
        Allocate(task_id="allocate")
        Allocate.partial(task_id="mapped").expand(mib=[1, 2])  # one task per shard, as the sharded stages map
""")

RUN = textwrap.dedent("""
    import json, sys
    from airflow.utils import db
    db.initdb()
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag = DagBag(dag_folder=sys.argv[1]).dags["peak_memory_probe"]
    run = dag.test()
    with create_session() as session:
        rows = session.scalars(select(XComModel).where(XComModel.dag_id == "peak_memory_probe",
                                                       XComModel.key == "peak_rss_mib")).all()
        print("RESULT", json.dumps({"state": str(run.state),
                                    "values": {f"{r.task_id}[{r.map_index}]": XComModel.deserialize_value(r)
                                               for r in rows}}))
""")


def test_airflow_calls_it_after_execute_and_the_xcom_is_stored(tmp_path):
    """Airflow 3.3's task runner calls ``post_execute(context)`` when it is overridden: the value lands in the
    DB, for plain and mapped tasks alike."""
    import json

    dag_file = tmp_path / "probe.py"
    dag_file.write_text(DAG_FILE)
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "MLOPS_HOME": str(tmp_path / "mlops"),
           "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path),
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
           "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)])}
    done = subprocess.run([sys.executable, "-c", RUN, str(dag_file)], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["state"].endswith("success"), result
    values = result["values"]
    assert set(values) == {"allocate[-1]", "mapped[0]", "mapped[1]"}, values
    assert values["allocate[-1]"] >= 64  # the 64 MiB block was resident


def test_a_provider_operator_maps_with_the_operator_defaults():
    """``partial()`` of a provider operator fills inlets/outlets with ``[]`` like any operator's: a mapped
    provider task (score and feature shards) builds its task context on a real executor."""
    import datetime as dt

    from airflow.sdk import DAG
    from mlops_provider.operators.score_shards import ScoreShardOperator

    with DAG("mapped_probe", schedule=None, start_date=dt.datetime(2024, 1, 1)):
        mapped = ScoreShardOperator.partial(task_id="score_shard", project_name="fraud").expand(shard=[{}, {}])
    assert (mapped.inlets, mapped.outlets, mapped.partial_kwargs["executor_config"]) == ([], [], {})
    assert ScoreShardOperator(task_id="plain", project_name="fraud", shard={}).inlets == []
