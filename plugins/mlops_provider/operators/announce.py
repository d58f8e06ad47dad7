"""Operators that announce a pipeline decision as an asset event, or skip when there is nothing to announce.

Each reads the XCom of the task that decided (the monitor, the promotion gate) and either emits its
``outlets`` with a small ``extra`` or raises ``AirflowSkipException``: a skipped task emits no asset event,
and the default trigger rule skips what follows it. They replace small TaskFlow tasks (``@task``,
``@task.short_circuit``), whose decorators import ``airflow.providers.standard.operators.python`` and
``packaging.requirements`` on every parse of a DAG file (~100 ms).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlops_provider.operators.base import MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


def _skip(reason: str) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    raise AirflowSkipException(reason)


class RequestRetrainOperator(MlopsBaseOperator):
    """Announce the monitor's retrain request on ``outlets`` (the ``drift`` asset); skipped when none was requested.

    The event's extra is ``{day, kind, model_version, drifted_columns (first 20), roc_auc, report}``, read
    from the return value of ``monitor_task_id`` (a :class:`MonitorDriftOperator`). The request on record
    (the monitor's ``project``, in the report store of ``lake_conn_id``, default the monitor's) is marked
    announced before the event is handed to Airflow: a later rerun of the monitor then requests nothing
    new, while a retry of a monitor try that died before returning (nothing announced) requests it again
    (:func:`mlops_provider.stages.retrain.request_retrain`).
    """

    template_fields: Sequence[str] = ("monitor_task_id", "project_name", "day")
    ui_color = "#fdebe8"

    def __init__(self, *, monitor_task_id: str = "monitor", lake_conn_id: str | None = None,
                 project_name: str | None = None, day: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.monitor_task_id = monitor_task_id
        self.lake_conn_id = lake_conn_id
        self.project_name = project_name
        self.day = day

    def execute(self, context: Context) -> dict[str, Any]:
        result = context["ti"].xcom_pull(task_ids=self.monitor_task_id) or {}
        if not result and self.project_name and self.day:
            return self._announce_recorded(context)
        if not result.get("retrain_requested"):
            _skip(f"{self.monitor_task_id} requested no retraining: {(result.get('retrain') or {}).get('reason')}")
        extra = {"day": result["day"], "kind": result["kind"], "model_version": result["model_version"],
                 "drifted_columns": result["drifted_columns"][:20], "roc_auc": result["roc_auc"],
                 "report": result["report"]["html"]}
        self.log.info("retraining requested: %s", extra)
        if result.get("project"):
            self._mark_announced(context, result["project"], result["day"], result.get("lake_conn_id"))
        return self.emit_asset_events(context, extra)

    def _announce_recorded(self, context: Context) -> dict[str, Any]:
        """The monitoring task failed (every try: e.g. SMTP down longer than its retries) after recording a
        retrain request: announce what it recorded, so the retraining is not lost with the email."""
        from mlops_provider.config.project import load_project
        from mlops_provider.hooks.lake import LakeHook
        from mlops_provider.operators.base import ProjectBaseOperator
        from mlops_provider.stages.retrain import unannounced_requests

        ti = context["ti"]
        project = load_project(self.project_name)
        reports = LakeHook(lake_conn_id=self.lake_conn_id or LakeHook.default_conn_name).get_reports()
        requested_by = f"{ti.dag_id}/{ti.run_id}/{self.monitor_task_id}"
        pending = unannounced_requests(project, reports, ProjectBaseOperator.split_days(self.day), requested_by)
        if not pending:
            _skip(f"{self.monitor_task_id} returned nothing and recorded no retrain request to announce")
        marker = pending[-1]
        self.log.warning("%s did not finish (see its log) but recorded a retrain request for %s (%s): announcing "
                         "it", self.monitor_task_id, marker["day"], marker["kind"])
        for request in pending:
            self._mark_announced(context, project.name, request["day"], None)
        return self.emit_asset_events(context, {"day": marker["day"], "kind": marker["kind"],
                                                "days": [r["day"] for r in pending], "recovered": True})

    def _mark_announced(self, context: Context, project_name: str, day: str, monitor_lake_conn_id: str | None) -> None:
        from mlops_provider.config.project import load_project
        from mlops_provider.hooks.lake import LakeHook
        from mlops_provider.stages.retrain import mark_retrain_announced

        ti = context["ti"]
        hook = LakeHook(lake_conn_id=self.lake_conn_id or monitor_lake_conn_id or LakeHook.default_conn_name)
        marker = mark_retrain_announced(load_project(project_name), hook.get_reports(), day,
                                        f"{ti.dag_id}/{ti.run_id}/{ti.task_id}")
        self.log.info("retrain request of %s marked announced: %s", day, marker)


class AnnounceChampionOperator(MlopsBaseOperator):
    """Announce a new champion on ``outlets`` (the ``model`` asset: scoring reruns); skipped when it did not change.

    Reads the return value of ``decision_task_id`` (a :class:`PromoteModelOperator`): a refused promotion,
    or a challenger that already was champion, announces nothing. The event's extra is
    ``{day: as_of, model_name, version, replaced}``.

    :param as_of: the day the new champion is announced for (templated).
    """

    template_fields: Sequence[str] = ("decision_task_id", "as_of")
    ui_color = "#d7f0e3"

    def __init__(self, *, decision_task_id: str, as_of: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decision_task_id = decision_task_id
        self.as_of = as_of

    def execute(self, context: Context) -> dict[str, Any]:
        result = context["ti"].xcom_pull(task_ids=self.decision_task_id) or {}
        if not result.get("promoted"):
            _skip(f"{self.decision_task_id} promoted nothing: {result.get('reason')}")
        if result.get("already_champion"):
            _skip(f"v{result.get('version')} already was champion: nothing changed")
        extra = {"day": self.as_of, "model_name": result["model_name"], "version": result["version"],
                 "replaced": result.get("replaced")}
        self.log.info("new champion: %s", extra)
        return self.emit_asset_events(context, extra)


class ApprovalNeededOperator(MlopsBaseOperator):
    """Gate before a human approval step: skipped (and with it the approval) unless the promotion awaits one.

    Reads ``awaiting_approval`` from the return value of ``decision_task_id`` (a :class:`PromoteModelOperator`
    of a project with ``promotion.require_approval``): a challenger the gate refused asks nobody.
    """

    template_fields: Sequence[str] = ("decision_task_id",)
    ui_color = "#d7f0e3"

    def __init__(self, *, decision_task_id: str = "promote", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decision_task_id = decision_task_id

    def execute(self, context: Context) -> bool:
        result = context["ti"].xcom_pull(task_ids=self.decision_task_id) or {}
        if not result.get("awaiting_approval"):
            _skip(f"{self.decision_task_id} awaits no approval: {result.get('reason')}")
        return True
