"""Email the project's on-call recipients when a pipeline task (or a whole DAG run) fails."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from email.message import EmailMessage

    from airflow.sdk import Context

log = logging.getLogger(__name__)


class OnCallEmailNotifier(BaseNotifier):
    """Failure callback that emails dag/task/run ids, the error, the try number and the log link, once per try.

    Use it as ``on_failure_callback`` of every task (``default_args``) and of the DAG::

        OnCallEmailNotifier(project="my_project")

    Recipients and the SMTP connection come from the project's ``alerts`` section unless given; the
    project defaults to the part of the dag id before ``__`` (``my_project__ingest`` -> ``my_project``).
    Delivery goes through :func:`mlops_provider.hooks.smtp.send_alert` (SMTP connection, or the
    outbox without one), deduplicated per task instance and try, so a callback that runs twice for
    the same failure sends one email. Airflow's secrets masker is plugged into the composition, and
    the sender is Airflow's ``[email] from_email``.

    One failed run, one final email: a task's email that says no retries follow marks its DAG run
    (dedup key :func:`run_key`), and the DAG-level email of that run uses the same key, so it goes out
    only when no task sent a final one (a run failed past ``dagrun_timeout``, reason ``timed_out``).
    A "retrying" email does not mark the run: if the run fails later anyway, its DAG-level email says so.

    :param project: name of the project in ``include/projects`` (templated).
    :param recipients: override of ``alerts.recipients`` (templated).
    :param smtp_conn_id: override of ``alerts.smtp_conn_id`` (templated).
    :param max_error_chars: the error text is cut to this many characters.
    """

    template_fields: Sequence[str] = ("project", "recipients", "smtp_conn_id")

    def __init__(
        self,
        *,
        project: str | None = None,
        recipients: list[str] | str | None = None,
        smtp_conn_id: str | None = None,
        max_error_chars: int = 4000,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.project = project
        self.recipients = recipients
        self.smtp_conn_id = smtp_conn_id
        self.max_error_chars = max_error_chars

    # -- context -------------------------------------------------------------------------------
    def _facts(self, context: Context) -> dict[str, Any]:
        # domain.alerts is imported when a failure is reported, not at module level: every DAG file
        # builds this notifier (default_args) at parse time.
        from mlops_provider.domain import alerts
        from mlops_provider.domain.text import printable
        from mlops_provider.links.artifacts import dag_run_url, task_instance_url

        ti = context.get("ti")
        dag = context.get("dag")
        dag_id = getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None) or "unknown_dag"
        run_id = getattr(ti, "run_id", None) or context.get("run_id") or "unknown_run"
        task_id = getattr(ti, "task_id", None)
        try_number = getattr(ti, "try_number", None)
        map_index = getattr(ti, "map_index", -1)
        map_index = -1 if map_index is None else map_index
        max_tries = getattr(ti, "max_tries", None)
        # DAG-level callbacks carry a "reason" and no "exception", even with the last failed ti attached.
        dag_level = "reason" in context and "exception" not in context
        run_url = dag_run_url(dag_id, run_id)
        log_url = (task_instance_url(dag_id, run_id, task_id, map_index=map_index, try_number=try_number)
                   if task_id and not dag_level else run_url)
        raised = context.get("exception")
        error = raised or context.get("reason") or "no error text in the callback context"
        if isinstance(error, BaseException):
            error = f"{type(error).__name__}: {error}"
        # Raw bytes of a broken file can be in the error: control characters escaped, never sent as they are.
        error = alerts.redact(printable(error, None, newlines=True))
        if len(error) > self.max_error_chars:
            error = error[: self.max_error_chars] + f"\n... [truncated, {len(error)} characters in total]"
        return {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "try_number": try_number,
                "max_tries": max_tries, "map_index": map_index, "dag_level": dag_level, "error": error,
                "run_url": run_url, "log_url": log_url, "fail_fast": _fails_without_retry(raised)}

    def _routing(self, dag_id: str) -> tuple[str, list[str], str]:
        from mlops_provider.config.project import load_project

        project = self.project or dag_id.split("__", 1)[0]
        recipients = self.recipients
        conn_id = self.smtp_conn_id
        if not recipients or not conn_id:
            cfg = load_project(project)
            recipients = recipients or cfg.alerts["recipients"]
            conn_id = conn_id or cfg.alerts["smtp_conn_id"]
        if isinstance(recipients, str):
            recipients = [r.strip() for r in recipients.split(",") if r.strip()]
        return project, list(recipients), conn_id

    # -- message -------------------------------------------------------------------------------
    def compose(self, context: Context) -> tuple[EmailMessage, str, str]:
        """The failure email for ``context``, its dedup key and the SMTP connection id to send it with."""
        from mlops_provider.domain import alerts
        from mlops_provider.hooks.smtp import default_sender, use_airflow_secrets_masker
        from mlops_provider.links.artifacts import runbook_view_url

        use_airflow_secrets_masker()
        runbook = runbook_view_url()
        f = self._facts(context)
        project, recipients, conn_id = self._routing(f["dag_id"])
        what, key = _headline_and_key(f)
        final = not f["dag_level"] and _final(f)
        subject = f"[MLOps] {project} / {what}"
        body = _Body(facts=_fact_rows(project, f), error=f["error"], did=_what_was_done(f),
                     steps=_runbook_steps(project), log_url=f["log_url"], run_url=f["run_url"], runbook=runbook)
        message = alerts.build_message(
            subject=subject,
            recipients=recipients,
            html_body=alerts.html_page(title=subject, color=alerts.COLORS["failure"], headline=alerts.esc(what),
                                       blocks=_html_blocks(body)),
            text_body=_text_body(subject, body),
            headers={"X-MLOps-Project": project, "X-MLOps-Kind": "failure", "X-MLOps-Final": "yes" if final else "no"},
            sender=default_sender(),
        )
        return message, key, conn_id

    def notify(self, context: Context) -> None:
        from mlops_provider.hooks.smtp import send_alert

        message, key, conn_id = self.compose(context)
        result = send_alert(message, smtp_conn_id=conn_id, dedup_key=key)
        if result.get("duplicate") and key.startswith("run-failure|"):
            log.info("DAG run failure: a task of this run already sent its final failure email; not sending "
                     "another (%s)", result)
            return
        log.info("on-call failure email: %s", result)
        if not key.startswith("run-failure|") and str(message["X-MLOps-Final"]) == "yes":
            _mark_run_emailed(run_key(self._facts(context)))


def run_key(facts: dict[str, Any]) -> str:
    """The dedup key of a DAG run's final failure email: the DAG-level email's, and marked by a final task email."""
    return f"run-failure|{facts['dag_id']}|{facts['run_id']}"


class _RecordOnly:
    """A transport that delivers nothing: :func:`~mlops_provider.io.email.deliver` records the key as sent."""

    def send(self, message: EmailMessage, *, key_digest: str) -> dict[str, Any]:
        return {"sent": True, "via": "record-only"}


def _sent_markers() -> Any:
    """The sent markers :func:`mlops_provider.hooks.smtp.send_alert` dedups with (the DAG-level email checks there)."""
    try:
        from mlops_provider.hooks.coordination import CoordinationHook
    except ImportError:  # no coordination state: deliver's default markers, as send_alert uses then
        return None
    return CoordinationHook().get_conn().sent_markers()


def _mark_run_emailed(key: str) -> None:
    """Record that the run's final failure email went out, in the sent markers the DAG-level email checks."""
    from email.message import EmailMessage

    from mlops_provider.io.email import deliver

    deliver(EmailMessage(), transport=_RecordOnly(), dedup_key=key, markers=_sent_markers())


# -- parts of the failure email ----------------------------------------------------------------------
@dataclass(frozen=True)
class _Body:
    """What the HTML and the plain-text parts of a failure email both say."""

    facts: list[tuple[str, Any]]
    error: str
    did: str
    steps: list[str]
    log_url: str
    run_url: str
    runbook: str


def _headline_and_key(f: dict[str, Any]) -> tuple[str, str]:
    """The headline of the failure and its dedup key (one email per DAG run, or per task instance and try)."""
    if f["dag_level"]:
        return f"DAG RUN FAILED: {f['dag_id']}", run_key(f)
    return (f"TASK FAILED: {f['dag_id']}.{f['task_id']} (try {f['try_number']})",
            f"task-failure|{f['dag_id']}|{f['run_id']}|{f['task_id']}|{f['map_index']}|{f['try_number']}")


def _fails_without_retry(error: BaseException | None) -> bool:
    """Whether Airflow fails the task at once, whatever tries are left: ``AirflowFailException`` (what the
    operators raise for an error whose class says ``retryable = False``), or such an error itself."""
    if error is None:
        return False
    try:
        from airflow.sdk.exceptions import AirflowFailException
    except ImportError:  # pragma: no cover (older layouts)
        from airflow.exceptions import AirflowFailException
    return isinstance(error, AirflowFailException) or getattr(error, "retryable", True) is False


def _tries_left(f: dict[str, Any]) -> bool:
    return f["max_tries"] is not None and f["try_number"] is not None and f["try_number"] <= f["max_tries"]


def _final(f: dict[str, Any]) -> bool:
    """Whether this task failure is final (no retry follows): its email is the run's failure email."""
    return bool(f.get("fail_fast")) or not _tries_left(f)


def _what_was_done(f: dict[str, Any]) -> str:
    """What Airflow does next about the failure, so the reader knows whether to act now (and whether to wait)."""
    tries_left = _tries_left(f)
    if f["dag_level"]:
        return ("The DAG run is marked failed and no task of it sent a final failure email (for example past its "
                "dagrun_timeout, or a task that failed without its callback): see the reason above and the run.")
    if f.get("fail_fast"):
        return ("Not retried: a retry cannot fix this error (bad input, a bad config or a deterministic bug), so "
                "the task is failed now and its downstream tasks will not run for this run. Fix the cause named "
                "above, then clear the task.")
    if tries_left:
        return (f"Airflow retries the task automatically (this was try {f['try_number']}; "
                f"{f['max_tries'] + 1} tries in total). Another email arrives if the retry fails too.")
    return "No retries left: the task is failed and its downstream tasks will not run for this run."


def _fact_rows(project: str, f: dict[str, Any]) -> list[tuple[str, Any]]:
    """The "what failed" rows: project, DAG and run, plus task, try and map index for a task failure."""
    facts: list[tuple[str, Any]] = [("Project", project), ("DAG", f["dag_id"]), ("Run", f["run_id"])]
    if not f["dag_level"]:
        facts += [("Task", f["task_id"]), ("Try", f["try_number"])]
        if f["map_index"] >= 0:
            facts.append(("Map index", f["map_index"]))
    return facts


def _runbook_steps(project: str) -> list[str]:
    """The runbook's first steps for a failed task, the rollback DAG named for ``project``."""
    return [
        "Open the task log (link above) and read the error from the bottom up.",
        "Validation failure (DataValidationError): the batch is in lake/_quarantine; read the validation "
        "report, fix the source or the expectations, then clear the task.",
        "Transient error (network, locked database, S3 throttling): clear the task to rerun it; every "
        "task is idempotent and rewrites its own outputs.",
        f"A bad model release: roll back with DAG '{project}__model_ops', params {{\"action\": \"rollback\"}}.",
    ]


def _html_blocks(body: _Body) -> list[str]:
    """The HTML sections of the email, every value escaped."""
    from mlops_provider.domain import alerts

    return [
        alerts.section("What failed", alerts.table(["", ""], [[alerts.esc(k), f"<b>{alerts.esc(v)}</b>"]
                                                              for k, v in body.facts])),
        alerts.section("Error", "<pre style='white-space:pre-wrap;background:#f9fafb;border:1px solid "
                                f"#eaecf0;padding:8px;font-size:12px'>{alerts.esc(body.error)}</pre>"),
        alerts.section("What the system already did", f"<p style='margin:4px 0'>{alerts.esc(body.did)}</p>"),
        alerts.section("Links", alerts.bullet_list([
            f"Task log: {alerts.link(body.log_url)}", f"DAG run: {alerts.link(body.run_url)}"])),
        alerts.section("What to do (runbook)", alerts.bullet_list([alerts.esc(s) for s in body.steps], ordered=True)
                       + f"<p style='margin:6px 0'>Full runbook: "
                       f"{alerts.link(alerts.runbook_url(body.runbook, 'task-failure'), 'runbook: task failure')}</p>"),
    ]


def _text_body(subject: str, body: _Body) -> str:
    """The plain-text part: the same sections, links without credentials."""
    from mlops_provider.domain import alerts

    text = [subject, "", *[f"{k}: {v}" for k, v in body.facts], "", "ERROR", body.error, "",
            "WHAT THE SYSTEM ALREADY DID", "  " + body.did, "", "LINKS",
            f"  Task log: {alerts.strip_userinfo(body.log_url)}", f"  DAG run: {alerts.strip_userinfo(body.run_url)}",
            "", "WHAT TO DO (runbook)", *[f"  {i}. {s}" for i, s in enumerate(body.steps, 1)],
            f"  Full runbook: {alerts.runbook_url(body.runbook, 'task-failure')}"]
    return "\n".join(map(str, text)) + "\n"
