"""The provider's base operators: connection ids and their defaults, nothing built before execute, one way
to emit asset events and to loop over days, and non-retryable domain errors failing the task at once."""

from __future__ import annotations

import copy
import json

import pytest

from tests.unit.operators.support import asset, task_context

# Every project operator, the arguments it needs besides project_name, and the connections it uses.
OPERATORS = [
    ("ingest.IngestOperator", {"day": "2024-01-01"}, {"lake"}),
    ("ingest.ValidateBatchOperator", {"day": "2024-01-01"}, {"lake"}),
    ("features.ComputeFeaturesOperator", {"day": "2024-01-01"}, {"lake"}),
    ("features.MaterializeFeaturesOperator", {"start": "2024-01-01", "end": "2024-01-01"}, {"lake", "feast"}),
    ("scoring.ScoreBatchOperator", {"day": "2024-01-01"}, {"lake", "mlflow", "feast"}),
    ("training.TrainModelOperator", {"as_of": "2024-01-01"}, {"lake", "mlflow", "feast"}),
    ("monitoring.MonitorDriftOperator", {"day": "2024-01-01"}, {"lake", "mlflow"}),
    ("registry.PromoteModelOperator", {}, {"lake", "mlflow"}),
    ("registry.RollbackModelOperator", {}, {"lake", "mlflow"}),
]
IDS = [name.split(".")[1] for name, _, _ in OPERATORS]


def operator_class(name: str):
    import importlib

    module, cls = name.split(".")
    return getattr(importlib.import_module(f"mlops_provider.operators.{module}"), cls)


def hooks():
    from mlops_provider.hooks.feast import FeastHook
    from mlops_provider.hooks.lake import LakeHook
    from mlops_provider.hooks.mlflow import MlflowHook

    return {"lake": LakeHook, "mlflow": MlflowHook, "feast": FeastHook}


@pytest.mark.parametrize(("name", "kwargs", "uses"), OPERATORS, ids=IDS)
def test_connection_ids_default_to_each_hooks_default_conn_name(name, kwargs, uses):
    cls = operator_class(name)
    op = cls(task_id="t", project_name="fraud", **kwargs)
    for kind, hook in hooks().items():
        if kind in uses:
            assert getattr(op, f"{kind}_conn_id") == hook.default_conn_name == hook.default_conn_name
        else:  # an operator takes only the connection ids it uses
            assert not hasattr(op, f"{kind}_conn_id")
            with pytest.raises(TypeError, match=f"{kind}_conn_id"):
                cls(task_id="t2", project_name="fraud", **kwargs, **{f"{kind}_conn_id": "other"})
    chosen = {f"{kind}_conn_id": f"my_{kind}" for kind in uses}
    op = cls(task_id="t3", project_name="fraud", **kwargs, **chosen)
    assert {key: getattr(op, key) for key in chosen} == chosen
    assert "project_name" in cls.template_fields


@pytest.mark.parametrize(("name", "kwargs", "uses"), OPERATORS, ids=IDS)
def test_project_name_is_a_required_keyword(name, kwargs, uses):
    cls = operator_class(name)
    with pytest.raises(TypeError, match="project_name"):
        cls(task_id="t", **kwargs)
    with pytest.raises(TypeError, match="keyword arguments"):
        cls("t", "fraud")


@pytest.mark.parametrize(("name", "kwargs", "uses"), OPERATORS, ids=IDS)
def test_nothing_is_built_before_execute_and_a_bad_project_fails_without_retries(mlops_home, name, kwargs, uses):
    from airflow.sdk.exceptions import AirflowFailException
    from mlops_provider.exceptions import ProjectConfigError

    op = operator_class(name)(task_id="t", project_name="no_such_project", **kwargs)  # parses: nothing read yet
    clone = copy.deepcopy(op)  # Airflow deep-copies operators (DAG copies, task runs)
    cached = {"project", "lake_hook", "lake", "reports", "mlflow_hook", "feature_store"}
    assert not cached & set(op.__dict__) and not cached & set(clone.__dict__)
    with pytest.raises(AirflowFailException, match="no such project 'no_such_project'") as err:
        clone.execute(task_context())
    assert isinstance(err.value.__cause__, ProjectConfigError)


def test_hooks_and_what_they_build_are_cached_and_follow_the_connection_ids(mlops_home, tmp_path, monkeypatch):
    from mlops_provider.operators.scoring import ScoreBatchOperator

    monkeypatch.setenv("AIRFLOW_CONN_LAKE_ELSEWHERE", json.dumps({"conn_type": "mlops_lake", "extra": {
        "lake_uri": (tmp_path / "lake").as_uri(), "reports_uri": (tmp_path / "reports").as_uri()}}))
    op = ScoreBatchOperator(task_id="score", project_name="fraud", day="2024-01-01", lake_conn_id="lake_elsewhere",
                            mlflow_conn_id="mlflow_elsewhere", feast_conn_id="feast_elsewhere")
    assert op.project.name == "fraud" and op.project is op.project
    assert op.lake is op.lake and op.lake.root_uri == (tmp_path / "lake").as_uri()
    assert op.reports.root_uri == (tmp_path / "reports").as_uri()
    assert op.mlflow_hook is op.mlflow_hook and op.mlflow_hook.mlflow_conn_id == "mlflow_elsewhere"
    # The feature store reads the operator's lake, with the Feast connection's settings (none here).
    assert op.feature_store is op.feature_store and op.feature_store.lake is op.lake
    assert op.feature_store.settings == {}


def test_templated_project_name_is_read_after_rendering(mlops_home):
    from mlops_provider.operators.features import ComputeFeaturesOperator

    op = ComputeFeaturesOperator(task_id="compute", project_name="{{ params.project }}", day="{{ params.day }}")
    op.render_template_fields({"params": {"project": "churn", "day": "2024-01-02"}})
    assert (op.project_name, op.day, op.project.name) == ("churn", "2024-01-02", "churn")


def test_each_day_runs_every_day_once_oldest_first():
    from mlops_provider.operators.features import ComputeFeaturesOperator

    op = ComputeFeaturesOperator(task_id="compute", project_name="fraud", day="")
    seen = []
    assert op.each_day("2024-01-03,2024-01-01, 2024-01-03", lambda d: seen.append(d) or d.upper()) == [
        "2024-01-01", "2024-01-03"]
    assert seen == ["2024-01-01", "2024-01-03"]
    with pytest.raises(ValueError, match="pass the 'day' param"):
        op.each_day(" , ", seen.append)
    assert op.split_days("2024-01-05,2024-01-04") == ["2024-01-04", "2024-01-05"]


def test_asset_events_carry_the_extra_on_every_outlet():
    from mlops_provider.operators.announce import ApprovalNeededOperator

    validated, features = asset("validated"), asset("features")
    context = task_context()
    extra = {"day": "2024-01-02", "days": ["2024-01-01", "2024-01-02"]}
    op = ApprovalNeededOperator(task_id="t", outlets=[validated, features])
    assert op.emit_asset_events(context, extra) is extra
    assert context["outlet_events"][validated].extra == extra and context["outlet_events"][features].extra == extra
    # Without outlets nothing is emitted (and a context without outlet events is fine).
    assert ApprovalNeededOperator(task_id="t2").emit_asset_events({}, extra) is extra


def test_only_non_retryable_errors_fail_fast():
    from airflow.sdk.exceptions import AirflowFailException
    from mlops_provider.exceptions import DataValidationError, SourceError
    from mlops_provider.operators.base import ProjectBaseOperator

    class Raises(ProjectBaseOperator):
        def __init__(self, *, error: Exception, **kwargs):
            super().__init__(**kwargs)
            self.error = error

        def execute(self, context):
            raise self.error

    retryable = SourceError("the source is down")
    with pytest.raises(SourceError) as err:
        Raises(task_id="t", project_name="fraud", error=retryable).execute({})
    assert err.value is retryable
    fatal = DataValidationError("bad batch", failed=["x"], result_path="r", quarantine_path="q")
    with pytest.raises(AirflowFailException, match="bad batch") as err:
        Raises(task_id="t2", project_name="fraud", error=fatal).execute({})
    assert err.value.__cause__ is fatal


@pytest.mark.parametrize("error", [KeyError("customer__count_7d"), ValueError("could not convert string to float"),
                                   TypeError("unsupported operand")])
def test_errors_the_same_input_repeats_fail_fast_and_say_so(error):
    """A crash on the same input was retried twice with back-off (minutes, a second email): now it is not."""
    from airflow.sdk.exceptions import AirflowFailException
    from mlops_provider.operators.base import ProjectBaseOperator

    class Raises(ProjectBaseOperator):
        def execute(self, context):
            raise error

    with pytest.raises(AirflowFailException, match="fails the same way on every try") as err:
        Raises(task_id="t", project_name="fraud").execute({})
    assert err.value.__cause__ is error and type(error).__name__ in str(err.value)


@pytest.mark.parametrize("error", [ConnectionError("refused"), TimeoutError("read timed out"), OSError("EIO")])
def test_outages_are_retried(error):
    from mlops_provider.operators.base import ProjectBaseOperator

    class Raises(ProjectBaseOperator):
        def execute(self, context):
            raise error

    with pytest.raises(type(error)):
        Raises(task_id="t", project_name="fraud").execute({})
