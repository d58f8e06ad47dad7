"""On-call alert emails: compose a readable drift/performance alert and send it once per event.

Messages are plain :class:`email.message.EmailMessage` objects (HTML body, plain-text alternative,
optional attachment) so the same message can go through an SMTP server or into the outbox directory
of the embedded default. Everything that comes from data or from exceptions is HTML-escaped, URLs lose
their ``user:password@`` part, and secrets Airflow knows about are masked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import html
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mlops_provider.config import paths
from mlops_provider.domain.errors import MlopsError

if TYPE_CHECKING:
    from mlops_provider.config.project import ProjectConfig

log = logging.getLogger(__name__)

DEFAULT_FROM = "MLOps alerts <mlops-alerts@localhost>"
# Query parameters that carry credentials (presigned S3 URLs, tokens in links).
_SECRET_PARAMS = re.compile(r"(pass|pwd|secret|token|signature|credential|sig$|^key$|apikey|api_key)", re.I)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s@]+)@")
_CLICKABLE = ("http", "https", "file")
# A claim older than this belongs to a sender that died; a new attempt may take over.
_CLAIM_STALE_SECONDS = 600

COLORS = {"ok": "#1a7f37", "drift": "#b35900", "performance": "#b42318", "drift+performance": "#b42318",
          "failure": "#b42318"}


# -- sanitising ------------------------------------------------------------------------------------
def strip_userinfo(url: str | None) -> str:
    """``url`` without ``user:password@`` and without credential-bearing query parameters."""
    if not url:
        return ""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return redact(str(url))
    netloc = parts.netloc.rsplit("@", 1)[-1]

    def clean_query(query: str) -> str:
        return urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True)
                          if not _SECRET_PARAMS.search(k)])

    fragment = parts.fragment
    if "?" in fragment:  # single-page apps (the MLflow UI) keep their query inside the fragment
        route, _, query = fragment.partition("?")
        fragment = f"{route}?{clean_query(query)}" if clean_query(query) else route
    return urlunsplit((parts.scheme, netloc, parts.path, clean_query(parts.query), fragment))


def redact(text: Any) -> str:
    """Free text with URL credentials removed and Airflow-registered secrets masked."""
    text = _URL_USERINFO.sub(lambda m: m.group("scheme") + "***@", str(text))
    try:
        from airflow.sdk.log import redact as airflow_redact
    except ImportError:  # Airflow-free use of the core package
        return text
    return str(airflow_redact(text))


def esc(value: Any) -> str:
    return html.escape(redact("" if value is None else value), quote=True)


def _header(value: Any) -> str:
    # A newline in a header value would let data inject headers.
    return re.sub(r"[\r\n]+", " ", redact(value)).strip()


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}g}" if isinstance(value, float) else str(value)
    return str(value)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def link(url: str | None, label: str | None = None) -> str:
    """An escaped anchor for clickable schemes, escaped text otherwise (never a ``javascript:`` href)."""
    clean = strip_userinfo(url)
    if not clean:
        return "<span style='color:#667085'>not available</span>"
    if urlsplit(clean).scheme in _CLICKABLE:
        return f"<a href='{esc(clean)}' style='color:#0b5cad'>{esc(label or clean)}</a>"
    return f"<code>{esc(clean)}</code>"


# -- message building blocks (shared with the task-failure notifier) --------------------------------
def runbook_url(anchor: str = "") -> str:
    """Where on-call finds the runbook: ``MLOPS_RUNBOOK_URL`` or docs/runbook.md in the checkout."""
    base = os.environ.get("MLOPS_RUNBOOK_URL") or (paths.repo_root() / "docs" / "runbook.md").as_uri()
    return f"{base}#{anchor}" if anchor else base


def default_from() -> str:
    try:
        from airflow.configuration import conf

        return conf.get("email", "from_email", fallback=None) or DEFAULT_FROM
    except ImportError:
        return DEFAULT_FROM


def html_page(*, title: str, color: str, headline: str, blocks: Iterable[str]) -> str:
    """A mail-client-safe HTML page: inline CSS, one column, verdict banner first."""
    body = "\n".join(blocks)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{esc(title)}</title></head>
<body style="margin:0;padding:16px;background:#f5f6f8;font-family:Arial,Helvetica,sans-serif;color:#1d2939;font-size:14px;line-height:1.45">
<div style="max-width:780px;margin:0 auto;background:#ffffff;border:1px solid #d0d5dd;border-radius:6px">
<div style="background:{color};color:#ffffff;padding:14px 18px;border-radius:6px 6px 0 0;font-size:18px;font-weight:bold">{headline}</div>
<div style="padding:8px 18px 18px 18px">
{body}
</div></div></body></html>
"""


def section(title: str, inner: str) -> str:
    return (f"<h3 style='font-size:15px;margin:18px 0 6px 0;border-bottom:1px solid #eaecf0;"
            f"padding-bottom:4px'>{esc(title)}</h3>\n{inner}")


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A table whose cells are already-escaped HTML."""
    th = "".join(f"<th style='text-align:left;padding:4px 8px;background:#f2f4f7;border:1px solid #eaecf0'>"
                 f"{esc(h)}</th>" for h in header)
    trs = "".join("<tr>" + "".join(f"<td style='padding:4px 8px;border:1px solid #eaecf0;vertical-align:top'>"
                                    f"{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table style='border-collapse:collapse;width:100%;font-size:13px'><tr>{th}</tr>{trs}</table>"


def bullet_list(items: Iterable[str], ordered: bool = False) -> str:
    tag = "ol" if ordered else "ul"
    lis = "".join(f"<li style='margin:3px 0'>{item}</li>" for item in items)
    return f"<{tag} style='margin:4px 0;padding-left:22px'>{lis}</{tag}>"


def build_message(*, subject: str, recipients: Sequence[str], html_body: str, text_body: str,
                  headers: dict[str, str] | None = None) -> EmailMessage:
    """An EmailMessage with a plain-text part and an HTML alternative."""
    message = EmailMessage()
    message["Subject"] = _header(subject)
    message["From"] = default_from()
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="mlops.local")
    for name, value in (headers or {}).items():
        message[name] = _header(value)
    message.set_content(text_body, subtype="plain", charset="utf-8")
    message.add_alternative(html_body, subtype="html", charset="utf-8")
    return message


# -- drift / performance alert ----------------------------------------------------------------------
def _headline(verdict: dict[str, Any]) -> str:
    parts = []
    if verdict.get("drift_detected"):
        parts.append(f"DATA DRIFT ({verdict.get('n_drifted', 0)}/{verdict.get('n_features', 0)} features)")
    pred = verdict.get("prediction_drift") or {}
    if pred.get("drift_detected"):
        parts.append(f"PREDICTION DRIFT ({pred.get('column')} {_fmt(pred.get('score'), 3)} >= "
                     f"{_fmt(pred.get('threshold'), 3)})")
    perf = verdict.get("performance") or {}
    if verdict.get("performance_alert"):
        parts.append(f"PERFORMANCE (ROC AUC {_fmt(perf.get('roc_auc'), 3)} < {_fmt(perf.get('min_roc_auc'), 3)})")
    return " + ".join(parts) or "OK"


def _summary_text(summary: dict[str, Any], side: str) -> str:
    if summary.get("kind") == "numerical":
        s = summary.get(side) or {}
        return f"mean {_fmt(s.get('mean'))} · p10 {_fmt(s.get('p10'))} · p50 {_fmt(s.get('p50'))} · p90 {_fmt(s.get('p90'))}"
    return " · ".join(f"{c['value']} {_pct(c.get(side))}" for c in summary.get("categories", []))


def _meaning(verdict: dict[str, Any]) -> list[str]:
    lines = []
    if verdict.get("drift_detected"):
        lines.append(
            f"{verdict['n_drifted']} of {verdict['n_features']} features "
            f"({_pct(verdict.get('share_drifted'))}) moved away from the champion's training data; the alert "
            f"fires at {_pct(verdict.get('drift_share_threshold'))}. The model is scoring a population it "
            "was not trained on: its scores may be miscalibrated even before labels show it."
        )
    elif verdict.get("n_drifted"):
        lines.append(f"{verdict['n_drifted']} of {verdict['n_features']} features drifted, below the "
                     f"{_pct(verdict.get('drift_share_threshold'))} dataset threshold.")
    pred = verdict.get("prediction_drift") or {}
    if pred.get("drift_detected"):
        lines.append(
            f"The score distribution moved (alert rate {_pct(pred.get('alert_rate_reference'))} in training "
            f"vs {_pct(pred.get('alert_rate_current'))} today): downstream teams see a different volume of alerts."
        )
    if verdict.get("performance_alert"):
        perf = verdict.get("performance") or {}
        lines.append(
            f"On labelled records ROC AUC is {_fmt(perf.get('roc_auc'), 3)}, below the floor of "
            f"{_fmt(perf.get('min_roc_auc'), 3)}: the model ranks positive records worse than accepted. This is the most "
            "serious alert: act today."
        )
    return lines or ["No alert condition: drift and performance are within their thresholds."]


def _runbook_steps(project: ProjectConfig, verdict: dict[str, Any]) -> list[tuple[str, str | None]]:
    """Numbered on-call steps as (text, runbook anchor)."""
    kind = verdict.get("kind", "ok")
    model_ops = project.dag_id("model_ops")
    steps: list[tuple[str, str | None]] = [
        ("Open the full report (link above) and read the drifted features and the performance table.", None),
    ]
    quality = verdict.get("data_quality") or {}
    if quality.get("new_categories") or any((v or 0) > 0 for v in (quality.get("missing_share") or {}).values()):
        steps.append(("New categories or missing values point at an upstream change: check the source "
                      "and the quarantine (lake/_quarantine) before blaming the model.", "validation-failure"))
    if "drift" in kind:
        steps.append(("Decide whether the drift is real (a new market, a campaign, seasonality) or a pipeline "
                      "bug (unit change, broken join). A bug: fix the source and rerun the ingest DAG for the day.",
                      "data-drift"))
        steps.append(("Real drift with healthy performance: let the scheduled retraining run (see 'What the "
                      "system already did'); no rollback needed.", "data-drift"))
    if (verdict.get("prediction_drift") or {}).get("drift_detected") and "performance" not in kind:
        steps.append((f"Scores shifted: if this started with a newly promoted model version (see the MLflow "
                      f"link), roll back: trigger DAG '{model_ops}' with params {{\"action\": \"rollback\"}}.",
                      "rollback"))
    if "performance" in kind:
        steps.append(("Check that the labels are complete for the day (label delay "
                      f"{project.label_delay_days} days) before trusting the drop.", "performance"))
        steps.append((f"If the previous model version was better, roll back: trigger DAG '{model_ops}' with "
                      "params {\"action\": \"rollback\"}.", "rollback"))
    steps.append(("Silence repeated alerts only by fixing the cause; the same event is emailed once "
                  "(dedup), and retraining respects its cooldown.", "silence-and-cooldown"))
    return steps


def compose_alert(
    project: ProjectConfig,
    verdict: dict[str, Any],
    *,
    day: str | dt.date,
    model_version: str | int | None,
    run_url: str | None,
    report_url: str | None,
    mlflow_run_url: str | None,
    actions: list[str],
    report_html: bytes | None,
    attach_max_bytes: int,
) -> EmailMessage:
    """The on-call email for one monitoring verdict: verdict first, evidence, actions, links, runbook."""
    day = day.isoformat() if isinstance(day, dt.date) else str(day)[:10]
    kind = verdict.get("kind", "ok")
    headline = _headline(verdict)
    version = f"v{model_version}" if model_version not in (None, "") else "(no version)"
    subject = f"[MLOps] {project.name} / {project.model_name} {version} / {day}: {headline}"
    title = f"{project.name} / {project.model_name} {version} / {day}"
    html_blocks: list[str] = []
    text: list[str] = [subject, "", "VERDICT: " + headline]

    meaning = _meaning(verdict)
    html_blocks.append(f"<p style='font-size:15px;margin:12px 0 4px 0'><b>{esc(title)}</b></p>")
    html_blocks.append("".join(f"<p style='margin:6px 0'>{esc(line)}</p>" for line in meaning))
    text += meaning

    drifted = verdict.get("drifted_columns") or []
    if drifted:
        rows, text_rows = [], []
        for d in drifted:
            summary = d.get("summary") or {}
            ref, cur = _summary_text(summary, "reference"), _summary_text(summary, "current")
            rows.append([f"<b>{esc(d['column'])}</b>", esc(d.get("stattest_name") or d.get("stattest")),
                         f"<b>{esc(_fmt(d.get('score'), 3))}</b>", esc(f">= {_fmt(d.get('threshold'), 3)}"),
                         esc(ref), esc(cur)])
            text_rows.append(f"  - {d['column']}: {d.get('stattest_name') or d.get('stattest')} "
                             f"{_fmt(d.get('score'), 3)} (threshold {_fmt(d.get('threshold'), 3)})\n"
                             f"      reference: {ref}\n      current:   {cur}")
        html_blocks.append(section(
            f"Drifted features ({len(drifted)}/{verdict.get('n_features', len(drifted))})",
            table(["Feature", "Statistic", "Score", "Threshold", "Reference (training)", "Current (today)"], rows)))
        text += ["", f"DRIFTED FEATURES ({len(drifted)}/{verdict.get('n_features', len(drifted))})", *text_rows]

    pred = verdict.get("prediction_drift") or {}
    if pred:
        if pred.get("skipped"):
            line = f"Prediction drift not checked: {pred['skipped']}."
        else:
            line = (f"{pred.get('column')}: {pred.get('stattest_name') or pred.get('stattest')} "
                    f"{_fmt(pred.get('score'), 3)} (threshold {_fmt(pred.get('threshold'), 3)}) — "
                    f"{'DRIFT' if pred.get('drift_detected') else 'no drift'}; mean score "
                    f"{_fmt((pred.get('reference') or {}).get('mean'))} -> {_fmt((pred.get('current') or {}).get('mean'))}; "
                    f"alert rate {_pct(pred.get('alert_rate_reference'))} -> {_pct(pred.get('alert_rate_current'))}")
        html_blocks.append(section("Prediction drift", f"<p style='margin:4px 0'>{esc(line)}</p>"))
        text += ["", "PREDICTION DRIFT", "  " + line]

    quality = verdict.get("data_quality") or {}
    q_lines = []
    for col, share in sorted((quality.get("missing_share") or {}).items()):
        ref_share = (quality.get("missing_share_reference") or {}).get(col)
        if share or ref_share:
            q_lines.append(f"{col}: {_pct(share)} missing (training {_pct(ref_share)})")
    for col, values in sorted((quality.get("new_categories") or {}).items()):
        count = (quality.get("new_category_rows") or {}).get(col)
        q_lines.append(f"{col}: {count} rows with categories never seen in training: {', '.join(map(str, values))}")
    if q_lines:
        html_blocks.append(section("Data quality (all rows)", bullet_list(esc(x) for x in q_lines)))
        text += ["", "DATA QUALITY (all rows)", *[f"  - {x}" for x in q_lines]]

    perf = verdict.get("performance")
    if perf:
        ref = perf.get("reference") or {}
        rows, text_rows = [], []
        metrics = [("ROC AUC", "roc_auc"), ("PR AUC", "pr_auc"),
                   (f"Precision @ {_fmt(perf.get('alert_threshold'))}", "precision"),
                   (f"Recall @ {_fmt(perf.get('alert_threshold'))}", "recall"), ("Positive rate", "positive_rate")]
        for label, key in metrics:
            cur_v, ref_v = perf.get(key), ref.get(key)
            change = (f"{cur_v - ref_v:+.3f}" if isinstance(cur_v, (int, float)) and isinstance(ref_v, (int, float))
                      else "n/a")
            rows.append([esc(label), esc(_fmt(ref_v)), f"<b>{esc(_fmt(cur_v))}</b>", esc(change)])
            text_rows.append(f"  {label}: {_fmt(ref_v)} -> {_fmt(cur_v)} ({change})")
        floor = (f"Alert when ROC AUC < {_fmt(perf.get('min_roc_auc'))}. {perf.get('rows')} labelled rows, "
                 f"{perf.get('positives')} positives.")
        target = perf.get("target_drift")
        if target:
            floor += (f" Label drift ({target.get('column')}): {_fmt(target.get('score'), 3)} "
                      f"{'DRIFT' if target.get('drift_detected') else 'no drift'}.")
        html_blocks.append(section("Performance (labelled records vs reference)",
                                   table(["Metric", "Reference", "Current", "Change"], rows)
                                   + f"<p style='margin:6px 0;color:#475467'>{esc(floor)}</p>"))
        text += ["", "PERFORMANCE (reference -> current)", *text_rows, "  " + floor]

    actions = list(actions) or ["nothing: no automatic action is configured for this alert"]
    html_blocks.append(section("What the system already did", bullet_list(esc(a) for a in actions)))
    text += ["", "WHAT THE SYSTEM ALREADY DID", *[f"  - {redact(a)}" for a in actions]]

    links = [("Airflow run", run_url), ("Full report", report_url), ("MLflow run", mlflow_run_url)]
    html_blocks.append(section("Links", bullet_list(f"{esc(name)}: {link(url)}" for name, url in links)))
    text += ["", "LINKS", *[f"  {name}: {strip_userinfo(url) or 'not available'}" for name, url in links]]

    steps = _runbook_steps(project, verdict)
    step_items = [
        esc(step) + (f" <span style='color:#667085'>({link(runbook_url(anchor), 'runbook section')})</span>"
                     if anchor else "")
        for step, anchor in steps
    ]
    html_blocks.append(section(
        "What to do (runbook)",
        bullet_list(step_items, ordered=True)
        + f"<p style='margin:6px 0'>Full runbook: {link(runbook_url(), 'docs/runbook.md')}</p>"))
    text += ["", "WHAT TO DO (runbook)", *[f"  {i}. {step}" for i, (step, _) in enumerate(steps, 1)],
             f"  Full runbook: {runbook_url()}"]

    attach = report_html is not None and len(report_html) < attach_max_bytes
    if report_html is not None and not attach:
        note = (f"The full report ({len(report_html) / 1e6:.1f} MB) is larger than the attachment limit "
                f"({attach_max_bytes / 1e6:.1f} MB): open it from the link above.")
        html_blocks.append(f"<p style='margin:10px 0;color:#475467'>{esc(note)}</p>")
        text += ["", note]

    message = build_message(
        subject=subject,
        recipients=project.alerts["recipients"],
        html_body=html_page(title=subject, color=COLORS.get(kind, COLORS["drift"]), headline=esc(headline),
                            blocks=html_blocks),
        text_body="\n".join(text) + "\n",
        headers={"X-MLOps-Project": project.name, "X-MLOps-Kind": kind, "X-MLOps-Day": day},
    )
    if attach:
        message.add_attachment(report_html, maintype="text", subtype="html",
                               filename=f"{project.name}-{day}-monitoring-report.html")
    return message


# -- sending ----------------------------------------------------------------------------------------
def dedup_key(project: ProjectConfig | str, model_version: str | int | None, day: str | dt.date, kind: str) -> str:
    """The identity of one alert event: the same project, model version, day and kind alert once."""
    name = project if isinstance(project, str) else project.name
    day = day.isoformat() if isinstance(day, dt.date) else str(day)[:10]
    return f"monitoring|{name}|v{model_version}|{day}|{kind}"


def _sent_dir() -> Path:
    return paths.mlops_home() / "alerts" / "sent"


def _atomic_write(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)  # rename(2): readers see the old file or the whole new one
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _claim(path: Path) -> bool:
    """Take the in-flight claim for one key; False when another live sender holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return True
        except FileExistsError:
            try:
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue
            if age < _CLAIM_STALE_SECONDS:
                return False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    return False


def _smtp_connection_exists(conn_id: str) -> bool:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    return True


def _recipients(message: EmailMessage) -> list[str]:
    fields = [v for h in ("To", "Cc", "Bcc") for v in message.get_all(h, [])]
    return [addr for _, addr in getaddresses(fields) if addr]


def _send_smtp(message: EmailMessage, smtp_conn_id: str) -> list[str]:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    recipients = _recipients(message)
    with SmtpHook(smtp_conn_id=smtp_conn_id) as hook:
        if hook.from_email:
            del message["From"]
            message["From"] = hook.from_email
        # The hook owns connecting, STARTTLS/SSL, login, OAuth2 and connect retries; its
        # send_email_smtp() can only build an HTML-only message from file paths, so the prepared
        # multipart message goes through the hook's authenticated client instead.
        client = hook._smtp_client
        envelope_from = getaddresses([str(message["From"])])[0][1] or None
        del message["Bcc"]
        client.send_message(message, from_addr=envelope_from, to_addrs=recipients)
    return recipients


def send_alert(message: EmailMessage, *, smtp_conn_id: str, dedup_key: str) -> dict[str, Any]:
    """Deliver ``message`` once per ``dedup_key``: through SMTP when the Airflow connection
    ``smtp_conn_id`` exists, else as an ``.eml`` file in the outbox (embedded default).

    Sent markers live in ``MLOPS_HOME/alerts/sent/<sha256 of key>.json``, written atomically after
    delivery; a retried or rerun task finds the marker and sends nothing. Workers on several hosts
    must share ``MLOPS_HOME`` (or point it at shared storage) for the dedup to hold across hosts.
    Delivery is at-least-once: a crash between delivery and marker means one duplicate on retry,
    never a lost alert. A claim file keeps two concurrent senders of one key from both sending.
    """
    digest = hashlib.sha256(dedup_key.encode("utf-8")).hexdigest()
    marker = _sent_dir() / f"{digest}.json"
    claim = _sent_dir() / f"{digest}.sending"
    if marker.exists():
        log.info("alert %r already sent (%s): not sending again", dedup_key, marker)
        return {"sent": False, "duplicate": True, "marker": str(marker)}
    if not _claim(claim):
        log.info("alert %r is being sent by another process: not sending", dedup_key)
        return {"sent": False, "duplicate": True, "in_flight": True, "marker": str(marker)}
    try:
        if marker.exists():  # sent between the first check and the claim
            return {"sent": False, "duplicate": True, "marker": str(marker)}
        del message["X-MLOps-Dedup-Key"]
        message["X-MLOps-Dedup-Key"] = _header(dedup_key)
        if _smtp_connection_exists(smtp_conn_id):
            try:
                to = _send_smtp(message, smtp_conn_id)
            except Exception as exc:
                raise MlopsError(
                    f"alert {str(message['Subject'])!r} was not delivered through SMTP connection "
                    f"'{smtp_conn_id}': {redact(exc)}; no sent marker was written, so a retry sends it"
                ) from exc
            result: dict[str, Any] = {"sent": True, "via": "smtp", "to": to, "conn_id": smtp_conn_id}
            log.info("sent alert %r to %s via connection %s", str(message["Subject"]), ", ".join(to), smtp_conn_id)
        else:
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
            path = paths.outbox_dir() / f"{stamp}-{digest[:12]}.eml"
            _atomic_write(path, message.as_bytes())
            result = {"sent": True, "via": "outbox", "path": str(path)}
            log.warning("no Airflow connection %r: alert %r written to %s", smtp_conn_id,
                        str(message["Subject"]), path)
        record = {"key": dedup_key, "sent_at": dt.datetime.now(dt.UTC).isoformat(),
                  "subject": str(message["Subject"]), "message_id": str(message["Message-ID"]), **result}
        _atomic_write(marker, json.dumps(record, indent=2).encode("utf-8"))
        return {**result, "marker": str(marker)}
    finally:
        with contextlib.suppress(FileNotFoundError):
            claim.unlink()
