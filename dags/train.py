"""
### Training and promotion: nightly, on drift, or on demand

One DAG per ML project (`<project>__train`). It runs on the project's `model.retrain_schedule`
(nightly) **or** when monitoring emits the `<project>.drift` asset (drift or performance alert that
was not on cooldown), and can be triggered from the UI with typed params.

1. **train**: point-in-time training set from Feast (labelled events of the training window, each
   with the features known at its own timestamp), a logistic-regression baseline and a gradient-boosting
   model with bounded HPO, one MLflow run (params, metrics, plots, datasets, lineage tags), registered
   as a new version with alias `challenger`. A retry reuses the version an earlier try registered.
2. **promote**: challenger vs champion on the challenger's holdout; primary metric, minimum
   improvement and guardrails from the project YAML. A refusal is recorded on the version and in the log.
   With `promotion.require_approval` a human approves in the Airflow UI (Required actions) first.
3. **announce_champion**: when the champion changed, emits `<project>.model` (scoring reruns);
   otherwise (a refusal, or the challenger already was champion) it is skipped and emits nothing.

Params: `day` (last day whose labels may be used; empty = the day before the run date, or the drift
event's day), `training_window_days`, `hpo_trials`.
"""

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param
from mlops_provider.config.project import bounds, load_projects
from mlops_provider.dag_factory import (
    PREVIOUS_DAY_TEMPLATE,
    PROMOTION_POOL,
    assets,
    dag_kwargs,
    day_param,
)
from mlops_provider.operators.announce import AnnounceChampionOperator, ApprovalNeededOperator
from mlops_provider.operators.registry import PromoteModelOperator
from mlops_provider.operators.training import TrainModelOperator

TRIGGER = ("{{ params.trigger or ('drift' if triggering_asset_events else "
           "('nightly' if dag_run.run_type == 'scheduled' else 'manual')) }}")

for project in load_projects():
    project_assets = assets(project)
    with DAG(
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(project.model["retrain_schedule"], timezone="UTC"),
            assets=project_assets.drift,
        ),
        params={
            "day": day_param("Last day whose labels training may use (YYYY-MM-DD); empty = the day before the "
                             "run date, or the day of the drift event"),
            # Defaults and bounds come from the project config and its schema (one source of truth).
            "training_window_days": Param(project.model["training_window_days"], type="integer",
                                          **bounds("model.training_window_days"),
                                          description="Days of events to train on"),
            "hpo_trials": Param(project.model["hpo_trials"], type="integer", **bounds("model.hpo_trials"),
                                description="Hyperparameter candidates tried (bounded search)"),
            "trigger": Param(None, type=["null", "string"], enum=[None, "nightly", "drift", "manual"],
                             values_display={None: "Detect (drift event, schedule or manual)", "nightly": "Nightly",
                                             "drift": "Drift", "manual": "Manual"},
                             description="Why this run trains (recorded on the MLflow run); empty = detect"),
        },
        **dag_kwargs(project, "train", __doc__),
    ) as dag:
        train = TrainModelOperator(
            task_id="train", project_name=project.name, as_of=PREVIOUS_DAY_TEMPLATE,
            window_days="{{ params.training_window_days }}", hpo_trials="{{ params.hpo_trials }}", trigger=TRIGGER,
        )
        promote = PromoteModelOperator(
            task_id="promote", project_name=project.name, pool=PROMOTION_POOL,
            version="{{ ti.xcom_pull(task_ids='train')['version'] }}",
        )
        train >> promote
        decision = promote
        if project.promotion.get("require_approval"):
            # Imported only when a project asks for approval: the HITL module costs ~50 ms per parse.
            from airflow.providers.standard.operators.hitl import ApprovalOperator

            approve = ApprovalOperator(
                task_id="approve",
                subject=f"Promote {project.model_name} v{{{{ ti.xcom_pull(task_ids='train')['version'] }}}} to champion?",
                body="{{ ti.xcom_pull(task_ids='promote')['reason'] }}",
            )
            promote_approved = PromoteModelOperator(
                task_id="promote_approved", project_name=project.name, pool=PROMOTION_POOL, approved=True,
                version="{{ ti.xcom_pull(task_ids='train')['version'] }}",
            )
            needs_approval = ApprovalNeededOperator(task_id="needs_approval", decision_task_id="promote")
            promote >> needs_approval >> approve >> promote_approved
            decision = promote_approved

        decision >> AnnounceChampionOperator(task_id="announce_champion", decision_task_id=decision.task_id,
                                             as_of=PREVIOUS_DAY_TEMPLATE, outlets=[project_assets.model])
    globals()[dag.dag_id] = dag
