"""model.task and model.estimator: every combination loads, task-dependent defaults, and every key that
does not fit the task is refused naming the key, the problem and the choices."""

from __future__ import annotations

import itertools

import pytest
import yaml
from mlops_provider.config.paths import projects_dir
from mlops_provider.config.project import load_project, load_project_file
from mlops_provider.config.tasks import ESTIMATORS, PRIMARY_METRICS, TASKS, guardrail_metrics
from mlops_provider.exceptions import ProjectConfigError

LABEL_TYPES = {"binary": "integer", "multiclass": "category", "regression": "float"}


def project_data(task: str | None = None, estimator: str | None = None) -> dict:
    """fraud.yaml made into a ``task`` project: only the keys a task decides change."""
    data = yaml.safe_load((projects_dir() / "fraud.yaml").read_text())
    data["name"] = "tasks"
    if task is not None:
        data["model"]["task"] = task
    if estimator is not None:
        data["model"]["estimator"] = estimator
    if task not in (None, "binary"):
        data["model"].pop("alert_threshold")
        data["monitoring"].pop("min_roc_auc")
        data["columns"]["is_fraud"] = {"type": LABEL_TYPES[task]}
        if task == "multiclass":
            data["columns"]["is_fraud"]["allowed"] = ["low", "mid", "high"]
        data["promotion"] = {"guardrails": {}}
    return data


def write(tmp_path, data) -> object:
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize(("task", "estimator"), list(itertools.product(TASKS, ESTIMATORS)))
def test_every_task_and_estimator_loads(tmp_path, mlops_home, task, estimator):
    project = load_project_file(write(tmp_path, project_data(task, estimator)))
    assert project.task == task and project.estimator == estimator
    assert project.promotion["primary_metric"] in PRIMARY_METRICS[task]
    assert ("alert_threshold" in project.model) == (task == "binary")


def test_defaults_are_todays_binary_gradient_boosting(mlops_home):
    for name in ("fraud", "churn"):
        project = load_project(name)
        assert (project.task, project.estimator) == ("binary", "hist_gradient_boosting")
    assert load_project("fraud").promotion["primary_metric"] == "pr_auc"
    assert load_project("churn").promotion["primary_metric"] == "roc_auc"


@pytest.mark.parametrize(("task", "default"), [("binary", "pr_auc"), ("multiclass", "macro_f1"), ("regression", "rmse")])
def test_primary_metric_defaults_per_task(tmp_path, mlops_home, task, default):
    data = project_data(task)
    data["promotion"].pop("primary_metric", None)
    data["promotion"]["guardrails"] = {}
    assert load_project_file(write(tmp_path, data)).promotion["primary_metric"] == default


def refused(tmp_path, data) -> str:
    path = write(tmp_path, data)
    with pytest.raises(ProjectConfigError) as err:
        load_project_file(path)
    assert str(path) in str(err.value)
    return str(err.value)


def test_primary_metric_of_another_task_is_refused_with_the_choices(tmp_path, mlops_home):
    data = project_data()
    data["promotion"]["primary_metric"] = "rmse"
    assert ("key 'promotion.primary_metric': rmse is not a metric of a binary model; choose from pr_auc, roc_auc, "
            "log_loss") in refused(tmp_path, data)
    data = project_data("regression")
    data["promotion"]["primary_metric"] = "roc_auc"
    assert "key 'promotion.primary_metric': roc_auc is not a metric of a regression model; choose from rmse, mae, r2" \
        in refused(tmp_path, data)
    data["promotion"]["primary_metric"] = "precision"  # not a metric of any task: the schema says so
    assert "key 'promotion.primary_metric'" in refused(tmp_path, data)


def test_guardrails_and_limits_must_be_metrics_of_the_task(tmp_path, mlops_home):
    data = project_data("regression")
    data["promotion"]["guardrails"] = {"rmse": 10.0, "roc_auc": 0.7}
    message = refused(tmp_path, data)
    assert "key 'promotion.guardrails.roc_auc': roc_auc is not a metric a regression model can be bounded on" in message
    assert ", ".join(guardrail_metrics("regression")) in message

    data = project_data()
    data["promotion"]["guardrails"] = {"alert_rate": 0.1}  # a volume, neither better nor worse
    assert "key 'promotion.guardrails.alert_rate'" in refused(tmp_path, data)

    data = project_data("multiclass")
    data["monitoring"]["performance_limits"] = {"rmse": 3.0}
    assert ("key 'monitoring.performance_limits.rmse': rmse is not measured when a multiclass model is monitored; "
            "choose from macro_f1, log_loss, accuracy") in refused(tmp_path, data)


def test_binary_only_keys_are_refused_for_other_tasks(tmp_path, mlops_home):
    data = project_data("regression")
    data["model"]["alert_threshold"] = 0.3
    assert "key 'model.alert_threshold': only a binary model has an alert threshold" in refused(tmp_path, data)
    data = project_data("multiclass")
    data["monitoring"]["min_roc_auc"] = 0.7
    assert "key 'monitoring.min_roc_auc': only a binary model has a ROC AUC" in refused(tmp_path, data)


def test_label_type_must_fit_the_task(tmp_path, mlops_home):
    data = project_data("regression")
    data["columns"]["is_fraud"] = {"type": "category", "allowed": ["a", "b"]}
    assert "key 'columns.is_fraud.type': the label of a regression model must be of type integer or float, " \
           "not category" in refused(tmp_path, data)
    data = project_data("binary")
    data["columns"]["is_fraud"] = {"type": "float"}
    assert "key 'columns.is_fraud.type'" in refused(tmp_path, data)


def test_unknown_task_or_estimator_is_refused(tmp_path, mlops_home):
    data = project_data()
    data["model"]["task"] = "ranking"
    assert "key 'model.task'" in refused(tmp_path, data)
    assert "key 'model.estimator'" in refused(tmp_path, project_data(estimator="xgboost"))
