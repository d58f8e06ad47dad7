"""Operator of the monitoring stage: Evidently report, verdict, on-call email and the retrain decision."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlops_provider.links.artifacts import (
    DriftReportLink,
    MlflowRunLink,
    dag_run_url,
    report_link,
    runbook_view_url,
    task_instance_url,
)
from mlops_provider.operators.base import MlflowBaseOperator
from mlops_provider.operators.common import json_safe

if TYPE_CHECKING:
    from airflow.sdk import Context


class MonitorDriftOperator(MlflowBaseOperator):
    """Monitor day ``day``: drift, data quality and delayed-label performance against the champion's reference.

    Saves the report (HTML, Evidently JSON, verdict JSON) to the report store and the champion's MLflow
    run, decides whether the verdict requests retraining (one request per day, a cooldown per model),
    and emails on-call once per (day, verdict kind), whatever model version scored the day. Returns ``retrain_requested``
    for the downstream task that announces the drift asset event. ``day`` may name several days,
    comma-separated (asset events merged into one run): each is monitored and alerted on.

    :param plans: ``{day: plan}`` of :class:`~mlops_provider.operators.monitor_shards.PlanMonitorShardsOperator`
        (its XCom ``plans``): a planned day's statistics are merged from what its shard tasks staged (dropped
        once every day succeeded); the other days are read here.
    """

    template_fields: Sequence[str] = ("project_name", "day", "plans")
    operator_extra_links = (DriftReportLink(), MlflowRunLink())
    ui_color = "#fdebe8"

    def __init__(self, *, day: str, plans: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.day = day
        self.plans = plans

    def _plan(self, day: str) -> dict[str, Any] | None:
        """The shard plan of ``day`` (``None``: the day was not split)."""
        from mlops_provider.domain.layout import as_date
        from mlops_provider.operators.shards import plan_of

        return plan_of(self.plans, as_date(day).isoformat())

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.stages.monitor import drop_monitor_shards

        results = self.each_day(self.day, lambda day: self._monitor(context, day))
        # Only now: a retry (an SMTP outage on a later day) reads every planned day's shards again.
        for day in self.split_days(self.day):
            if self._plan(day):
                drop_monitor_shards(self.project, self.lake, day)
        # The day that requested a retrain (if any) is the one the drift asset event announces.
        chosen = next((r for r in results if r["retrain_requested"]), results[-1])
        return {**chosen, "days": [r["day"] for r in results],
                "per_day": [{k: r[k] for k in ("day", "kind", "retrain_requested", "alert")} for r in results]}

    def _monitor(self, context: Context, day: str) -> dict[str, Any]:
        from mlops_provider.stages.monitor import run_monitor
        from mlops_provider.stages.retrain import record_retrain_request, request_retrain

        project, reports, mlflow_hook = self.project, self.reports, self.mlflow_hook
        with mlflow_hook.environment():
            summary = run_monitor(project, lake=self.lake, reports=reports, day=day,
                                  tracking_uri=mlflow_hook.tracking_uri, registry_uri=mlflow_hook.registry_uri,
                                  plan=self._plan(day))
        self._lineage(summary)
        mlflow_run_url = mlflow_hook.run_url(summary["run_id"])
        DriftReportLink.persist(context, url=report_link(reports, summary["report"]["html"]))  # the report view (http)
        MlflowRunLink.persist(context, url=mlflow_run_url)
        verdict = summary["verdict"]
        self.log.info("%s %s: verdict %s (%s/%s features drifted, prediction drift %s, performance alert %s)",
                      project.name, summary["day"], summary["kind"], verdict["n_drifted"], verdict["n_features"],
                      verdict["prediction_drift"].get("drift_detected"), verdict["performance_alert"])
        # Recorded before the email: an SMTP outage longer than the retries cannot lose the retraining (the
        # announcing task runs whatever this task's outcome). The request names this task (every try of it):
        # a retry finds it unannounced and decides "requested" again, so it is announced once.
        ti = context["ti"]
        requested_by = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}"
        retrain = request_retrain(project, reports, summary["day"], summary["kind"], record=False,
                                  requested_by=requested_by)
        self.log.info("retraining: %s", retrain["reason"])
        if retrain["requested"] and not retrain.get("recorded"):
            retrain["marker"] = record_retrain_request(project, reports, retrain, requested_by=requested_by)
        alert = None if summary["kind"] == "ok" else self._alert(context, summary, retrain, mlflow_run_url)
        return json_safe({
            "project": project.name, "lake_conn_id": self.lake_conn_id, "day": summary["day"], "kind": summary["kind"],
            "model_version": summary["model_version"],
            "run_id": summary["run_id"], "report": summary["report"], "retrain_requested": retrain["requested"],
            "retrain": retrain, "alert": alert, "n_drifted": verdict["n_drifted"],
            "drifted_columns": [d["column"] for d in verdict["drifted_columns"]],
            "prediction_drift": verdict["prediction_drift"].get("drift_detected"),
            "performance_alert": verdict["performance_alert"],
            "roc_auc": (verdict.get("performance") or {}).get("roc_auc"),
        })

    def _lineage(self, summary: dict[str, Any]) -> None:
        """The day's predictions, the labels that arrived that day and the champion in; the report out."""
        from mlops_provider.domain.layout import labels_table, predictions_table
        from mlops_provider.operators.lineage import from_uri, lake_table, model_version

        project, day = self.project, summary["day"]
        self.lineage_input(lake_table(self.lake, predictions_table(project), day=day))
        if self.lake.exists(labels_table(project), day):
            self.lineage_input(lake_table(self.lake, labels_table(project), day=day))
        self.lineage_input(model_version(self.mlflow_hook.tracking_uri, project.model_name, summary["model_version"],
                                         role="champion", run_id=summary["run_id"]))
        self.lineage_output(*(from_uri(summary["report"][kind]) for kind in ("html", "verdict")))

    def _alert(self, context: Context, summary: dict[str, Any], retrain: dict[str, Any],
               mlflow_run_url: str) -> dict[str, Any]:
        """Email on-call about a non-ok verdict (once per day and kind) through the SMTP connection."""
        from mlops_provider.hooks.smtp import ConnectionTransport, default_sender, use_airflow_secrets_masker
        from mlops_provider.stages.alerting import send_monitoring_alert

        project, reports, ti = self.project, self.reports, context["ti"]
        use_airflow_secrets_masker()
        alert = send_monitoring_alert(
            project, summary,
            transport=ConnectionTransport(project.alerts.get("smtp_conn_id", "smtp_default")),
            sender=default_sender(),
            actions=[retrain["reason"], f"saved the full report to {summary['report']['html']} and logged it "
                     f"to the MLflow run of {project.model_name} v{summary['model_version']}"],
            # Links into the Airflow UI (its login guards them), never a presigned URL: emails carry no credential.
            run_url=dag_run_url(ti.dag_id, ti.run_id), report_url=report_link(reports, summary["report"]["html"]),
            task_url=task_instance_url(ti.dag_id, ti.run_id, ti.task_id, map_index=getattr(ti, "map_index", -1)),
            mlflow_run_url=mlflow_run_url, reports=reports, runbook=runbook_view_url(),
        )
        self.log.warning("on-call alert for %s %s (%s): %s", project.name, summary["day"], summary["kind"], alert)
        return alert
