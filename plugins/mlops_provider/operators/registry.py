"""Operators that move the ``champion`` alias: gated promotion of a challenger, rollback, and the on-call router.

Both take the per-model lock of :mod:`mlops_provider.io.model_store`; with several worker hosts, also put
these tasks in an Airflow pool of size 1 (the DAGs use ``dag_factory.PROMOTION_POOL``) so only one alias
writer runs at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlops_provider.links.artifacts import MlflowRunLink, ModelVersionLink
from mlops_provider.operators.base import MlflowBaseOperator, MlopsBaseBranchOperator
from mlops_provider.operators.common import json_safe

if TYPE_CHECKING:
    from airflow.sdk import Context


def check_model_ops_request(action: str, version: str | None) -> None:
    """Refuse on-call requests whose params contradict each other, naming the fix (before anything moves)."""
    from mlops_provider.exceptions import ModelOpsRequestError

    version = (version or "").strip()
    if action == "rollback" and version == "challenger":
        raise ModelOpsRequestError(
            "action=rollback with version=challenger: a rollback goes back to 'previous' or to a version "
            "number that served before; to make the challenger champion use action=promote (it runs the gate)")
    if action == "promote" and version == "previous":
        raise ModelOpsRequestError(
            "action=promote with version=previous: to go back to previous_champion use action=rollback; "
            "promote takes 'challenger' or a version number")
    if action not in ("rollback", "promote"):
        raise ModelOpsRequestError(f"action={action!r}: expected 'rollback' or 'promote'")


class _AliasOperator(MlflowBaseOperator):
    """What promotion and rollback share: announcing a new champion so scoring redoes the newest scored day."""

    def announce_champion(self, context: Context, result: dict[str, Any]) -> None:
        """Emit ``{"day": <newest predictions partition>, "model_name", "version"}`` on ``outlets`` (if any)."""
        if not self.outlets:
            return
        from mlops_provider.domain.layout import predictions_table

        scored = self.lake.partitions(predictions_table(self.project))
        extra = {"day": scored[-1].isoformat() if scored else None, "model_name": result["model_name"],
                 "version": result["version"]}
        self.emit_asset_events(context, {k: v for k, v in extra.items() if v is not None})


class ModelOpsActionOperator(MlopsBaseBranchOperator):
    """Route an on-call request of the model_ops DAG to the task named by ``action`` (``rollback`` or ``promote``).

    Contradictory params (:func:`check_model_ops_request`) fail this task, before anything moves; the
    task of the other action is skipped. ``action`` and ``version`` are templated (the DAG's params).
    """

    template_fields: Sequence[str] = ("action", "version")
    ui_color = "#f3ecd8"

    def __init__(self, *, action: str, version: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.action = action
        self.version = version

    def choose_branch(self, context: Context) -> str:
        check_model_ops_request(self.action, self.version)
        return self.action


class PromoteModelOperator(_AliasOperator):
    """Compare a challenger with the champion on the challenger's holdout; promote it or record why not.

    A refusal is a successful task returning ``{"promoted": False, "reason": ...}``: the pipeline worked,
    the model simply was not better (with ``skip_if_refused`` the task is skipped instead, so its
    ``outlets`` announce nothing). ``version`` defaults to the version aliased ``challenger``
    (``"challenger"`` says so explicitly). ``request_reason`` (an on-call's words) is recorded on the
    version. A promotion announces ``{"day": <newest scored day>, "version": ...}`` on ``outlets``.
    """

    template_fields: Sequence[str] = ("project_name", "version", "mlflow_conn_id", "request_reason")
    operator_extra_links = (ModelVersionLink(), MlflowRunLink())
    ui_color = "#d7f0e3"

    def __init__(self, *, version: str | int | None = None, approved: bool = False, skip_if_refused: bool = False,
                 request_reason: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.version = version
        self.approved = approved
        self.skip_if_refused = skip_if_refused
        self.request_reason = request_reason

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.io import model_store
        from mlops_provider.stages.promote import gate_and_promote

        hook, ti = self.mlflow_hook, context["ti"]
        version = None if self.version in (None, "", "None", "challenger") else str(self.version).strip()
        check_model_ops_request("promote", version)
        with hook.environment():
            result = gate_and_promote(self.project, hook.get_conn(), version=version, tracking_uri=hook.tracking_uri,
                                      registry_uri=hook.registry_uri, approved=self.approved,
                                      decision_key=f"{ti.dag_id}|{ti.run_id}|{ti.task_id}")
            result["shadow"] = model_store.shadow_record(hook.get_conn(), result["model_name"], result["version"])
            if self.request_reason:
                hook.get_conn().set_model_version_tag(result["model_name"], str(result["version"]),
                                                      "promotion_request_reason", str(self.request_reason)[:500])
        ModelVersionLink.persist(context, url=hook.model_version_url(result["model_name"], result["version"]))
        if result.get("run_id"):
            MlflowRunLink.persist(context, url=hook.run_url(result["run_id"]))
        self._log_decision(result)
        self._lineage(result)
        result["follow_up"] = self._follow_up(context, result)
        if not result["promoted"] and self.skip_if_refused:
            from airflow.sdk.exceptions import AirflowSkipException

            ti.xcom_push(key="return_value", value=json_safe(result))
            raise AirflowSkipException(f"{result['model_name']} v{result['version']} not promoted: {result['reason']}")
        if result["promoted"]:
            self.announce_champion(context, result)
        return json_safe(result)

    def _follow_up(self, context: Context, result: dict[str, Any]) -> dict[str, Any] | None:
        """Tell on-call, on the drift alert's thread, how the retrain it requested ended (once per request)."""
        from mlops_provider.hooks.smtp import ConnectionTransport, default_sender, use_airflow_secrets_masker
        from mlops_provider.links.artifacts import dag_run_url, runbook_view_url
        from mlops_provider.stages.alerting import send_retrain_outcome

        use_airflow_secrets_masker()
        ti, hook = context["ti"], self.mlflow_hook
        links = [("Model version (MLflow)", hook.model_version_url(result["model_name"], result["version"])),
                 ("Airflow run", dag_run_url(ti.dag_id, ti.run_id))]
        return send_retrain_outcome(self.project, self.reports, result, links=links, runbook=runbook_view_url(),
                                    transport=ConnectionTransport(self.project.alerts.get("smtp_conn_id", "smtp_default")),
                                    sender=default_sender())

    def _lineage(self, result: dict[str, Any]) -> None:
        """The candidate version in; when promoted, the same version out as ``champion`` (OpenLineage)."""
        from mlops_provider.operators.lineage import model_version

        uri, model, version = self.mlflow_hook.tracking_uri, result["model_name"], result["version"]
        primary = result.get("primary_metric")
        self.lineage_input(model_version(uri, model, version, metrics={primary: result.get("challenger_value")}
                                         if primary else None))
        if result["promoted"]:
            self.lineage_output(model_version(uri, model, version, alias="champion", reason=result.get("reason"),
                                              replaced=result.get("compared_with")))

    def _log_decision(self, result: dict[str, Any]) -> None:
        if result["shadow"]["days"]:
            self.log.info("shadow record of v%s: %s", result["version"], result["shadow"])
        if result["promoted"]:
            self.log.info("%s v%s is champion: %s", result["model_name"], result["version"], result["reason"])
        else:
            self.log.warning("%s v%s NOT promoted: %s", result["model_name"], result["version"], result["reason"])


class RollbackModelOperator(_AliasOperator):
    """Point ``champion`` back at ``previous_champion`` (``to="previous"``) or at an explicit version.

    ``reason`` (an on-call's words) is recorded on the version that becomes champion. The rollback
    announces ``{"day": <newest scored day>, "version": ...}`` on ``outlets`` so scoring redoes that day.
    """

    template_fields: Sequence[str] = ("project_name", "to", "mlflow_conn_id", "reason")
    operator_extra_links = (ModelVersionLink(),)
    ui_color = "#f6d8d8"

    def __init__(self, *, to: str | int = "previous", reason: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.to = to
        self.reason = reason

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.io import model_store

        hook = self.mlflow_hook
        to = str(self.to).strip() or "previous"
        check_model_ops_request("rollback", to)
        with hook.environment():
            ti = context["ti"]
            result = model_store.rollback(hook.get_conn(), self.project.model_name, to=to,
                                          decision_key=f"{ti.dag_id}|{ti.run_id}|{ti.task_id}", project=self.project.name)
            if self.reason:
                hook.get_conn().set_model_version_tag(result["model_name"], str(result["version"]),
                                                      "rollback_reason", str(self.reason)[:500])
        ModelVersionLink.persist(context, url=hook.model_version_url(result["model_name"], result["version"]))
        self.log.warning("%s rolled back: champion v%s -> v%s", result["model_name"], result["rolled_back_from"],
                         result["version"])
        self._lineage(result)
        self.announce_champion(context, result)
        return result

    def _lineage(self, result: dict[str, Any]) -> None:
        """The version rolled back from in, the version that serves again out as ``champion`` (OpenLineage)."""
        from mlops_provider.operators.lineage import model_version

        uri, model = self.mlflow_hook.tracking_uri, result["model_name"]
        if result.get("rolled_back_from"):
            self.lineage_input(model_version(uri, model, result["rolled_back_from"]))
        self.lineage_output(model_version(uri, model, result["version"], alias="champion", reason=self.reason,
                                          replaced=result.get("rolled_back_from")))
