"""On-call alert emails: compose a readable drift/performance alert (pure: no Airflow, no I/O).

Messages are plain :class:`email.message.EmailMessage` objects (HTML body, plain-text alternative, a
small self-contained summary attached) so the same message can go through an SMTP server or into the
outbox directory of the embedded default; delivery (and the "send once" markers) lives in
:mod:`mlops_provider.io.email`. Links are meant for a phone: http(s) addresses (the report view of the
Airflow UI, the Airflow run and task, MLflow) are clickable; anything else (``s3://``, ``file://``) is
shown as text, never as a link a mail client cannot open. An alert is one event per (project, day,
kind) whatever model version scored the day (:func:`dedup_key`); the outcome of the retrain it requested
follows on the same thread (:func:`compose_retrain_outcome`, ``In-Reply-To`` / ``References``).
Everything that comes from data or from exceptions is HTML-escaped and URLs lose their
``user:password@`` part. Secrets an orchestrator knows about are masked too once it plugs its masker in
with :func:`set_masker` (the Airflow layer registers Airflow's secrets masker,
``mlops_provider.hooks.smtp.use_airflow_secrets_masker``). Values from the environment (the sender
address, where the runbook lives) are passed in by the caller.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Callable, Iterable, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mlops_provider.domain.metrics import label as metric_label

if TYPE_CHECKING:
    from mlops_provider.config.project import ProjectConfig

DEFAULT_FROM = "MLOps alerts <mlops-alerts@localhost>"
#: Runbook location used when the caller passes none (the Airflow layer passes the report view's runbook page).
DEFAULT_RUNBOOK = "docs/runbook.md"
#: The summary attached to an alert stays below this size whatever the data (its tables are cut, never dropped).
SUMMARY_MAX_BYTES = 100_000
#: Values listed per column (new categories) before "and N more".
MAX_LISTED_VALUES = 20
# Query parameters that carry credentials (presigned S3 URLs, tokens in links).
_SECRET_PARAMS = re.compile(r"(pass|pwd|secret|token|signature|credential|sig$|^key$|apikey|api_key)", re.I)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s@]+)@")
_CLICKABLE = ("http", "https")  # what a mail client on a phone opens; s3:// and file:// are shown as text

COLORS = {"ok": "#1a7f37", "drift": "#b35900", "performance": "#b42318", "drift+performance": "#b42318",
          "failure": "#b42318"}

_masker: Callable[[str], Any] | None = None


# -- sanitising ------------------------------------------------------------------------------------
def set_masker(masker: Callable[[str], Any] | None) -> None:
    """Plug in a secrets masker that :func:`redact` applies after stripping URL credentials.

    The Airflow layer registers Airflow's secrets masker before it composes or delivers an alert;
    ``None`` unplugs it. Without one, only the pure URL-credential stripping applies.
    """
    global _masker
    _masker = masker


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
    """Free text with URL credentials removed and, with a masker plugged in, known secrets masked."""
    text = _URL_USERINFO.sub(lambda m: m.group("scheme") + "***@", str(text))
    return text if _masker is None else str(_masker(text))


def esc(value: Any) -> str:
    return html.escape(redact("" if value is None else value), quote=True)


def clean_header(value: Any) -> str:
    """A redacted, single-line header value (a newline in a header value would let data inject headers)."""
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


def _day(day: str | dt.date) -> str:
    return day.isoformat() if isinstance(day, dt.date) else str(day)[:10]


def link(url: str | None, label: str | None = None) -> str:
    """An escaped anchor for clickable schemes, escaped text otherwise (never a ``javascript:`` href)."""
    clean = strip_userinfo(url)
    if not clean:
        return "<span style='color:#667085'>not available</span>"
    if urlsplit(clean).scheme in _CLICKABLE:
        return f"<a href='{esc(clean)}' style='color:#0b5cad'>{esc(label or clean)}</a>"
    return f"<code>{esc(clean)}</code>"


# -- message building blocks (shared with the task-failure notifier) --------------------------------
def runbook_url(base: str, anchor: str = "") -> str:
    """``anchor`` of the runbook at ``base`` (the caller decides where the runbook lives)."""
    return f"{base}#{anchor}" if anchor else base


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
                  headers: dict[str, str] | None = None, sender: str = DEFAULT_FROM) -> EmailMessage:
    """An EmailMessage from ``sender`` with a plain-text part and an HTML alternative."""
    message = EmailMessage()
    message["Subject"] = clean_header(subject)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="mlops.local")
    for name, value in (headers or {}).items():
        message[name] = clean_header(value)
    message.set_content(text_body, subtype="plain", charset="utf-8")
    message.add_alternative(html_body, subtype="html", charset="utf-8")
    return message


# -- drift / performance alert ----------------------------------------------------------------------
class Block(NamedTuple):
    """One part of an alert: its HTML blocks and its plain-text lines."""

    html: list[str]
    text: list[str]


_EMPTY = Block([], [])


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
        crossed = _crossed(perf)
        parts.append("PERFORMANCE (" + (", ".join(
            f"{metric_label(name)} {_fmt(limit.get('value'), 3)} {'<' if limit.get('kind') == 'floor' else '>'} "
            f"{_fmt(limit.get('bound'), 3)}" for name, limit in crossed)
            or f"ROC AUC {_fmt(perf.get('roc_auc'), 3)} < {_fmt(perf.get('min_roc_auc'), 3)}") + ")")
    return " + ".join(parts) or "OK"


def _crossed(perf: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The performance limits the day crossed, by monitoring name (a verdict without limits: none)."""
    return [(name, limit) for name, limit in sorted((perf.get("limits") or {}).items()) if limit.get("breached")]


#: Per task, the performance rows of an alert: (label, key in the verdict's performance section).
_PERFORMANCE_ROWS = {
    "multiclass": [("Macro F1", "macro_f1"), ("Log loss", "log_loss"), ("Accuracy", "accuracy")],
    "regression": [("RMSE", "rmse"), ("MAE", "mae"), ("R2", "r2"), ("Label mean", "label_mean"),
                   ("Prediction mean", "prediction_mean")],
}


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
    if pred.get("drift_detected") and "alert_rate_reference" in pred:
        lines.append(
            f"The score distribution moved (alert rate {_pct(pred.get('alert_rate_reference'))} in training "
            f"vs {_pct(pred.get('alert_rate_current'))} today): downstream teams see a different volume of alerts."
        )
    elif pred.get("drift_detected"):
        lines.append("The distribution of the model's predictions moved away from training: downstream consumers "
                     "receive different outputs than the model was validated on.")
    if verdict.get("performance_alert"):
        perf = verdict.get("performance") or {}
        crossed = _crossed(perf)
        if not crossed or [name for name, _ in crossed] == ["roc_auc"]:
            floor = crossed[0][1].get("bound") if crossed else perf.get("min_roc_auc")
            lines.append(
                f"On labelled records ROC AUC is {_fmt(perf.get('roc_auc'), 3)}, below the floor of "
                f"{_fmt(floor, 3)}: the model ranks positive records worse than accepted. This is the most "
                "serious alert: act today."
            )
        else:
            worse = "; ".join(f"{metric_label(name)} is {_fmt(limit.get('value'), 3)}, "
                              f"{'below the floor' if limit.get('kind') == 'floor' else 'above the ceiling'} of "
                              f"{_fmt(limit.get('bound'), 3)}" for name, limit in crossed)
            lines.append(f"On labelled records {worse}: the model performs worse than accepted. This is the most "
                         "serious alert: act today.")
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
        steps.append(("Decide whether the drift is real (a new population of entities, a business change, "
                      "seasonality) or a pipeline bug (unit change, broken join). A bug: fix the source and rerun "
                      "the ingest DAG for the day.", "data-drift"))
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


def _intro_block(title: str, verdict: dict[str, Any]) -> Block:
    meaning = _meaning(verdict)
    return Block([f"<p style='font-size:15px;margin:12px 0 4px 0'><b>{esc(title)}</b></p>",
                  "".join(f"<p style='margin:6px 0'>{esc(line)}</p>" for line in meaning)], meaning)


def _drift_block(verdict: dict[str, Any], max_rows: int | None = None) -> Block:
    every = verdict.get("drifted_columns") or []
    if not every:
        return _EMPTY
    drifted = every if max_rows is None else every[:max_rows]
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
    count = f"{len(every)}/{verdict.get('n_features', len(every))}"
    header = ["Feature", "Statistic", "Score", "Threshold", "Reference (training)", "Current (today)"]
    more = (f"... and {len(every) - len(drifted)} more drifted features: see the full report."
            if len(drifted) < len(every) else "")
    return Block([section(f"Drifted features ({count})", table(header, rows))
                  + (f"<p style='margin:6px 0;color:#475467'>{esc(more)}</p>" if more else "")],
                 ["", f"DRIFTED FEATURES ({count})", *text_rows, *([f"  {more}"] if more else [])])


def _prediction_block(verdict: dict[str, Any]) -> Block:
    pred = verdict.get("prediction_drift") or {}
    if not pred:
        return _EMPTY
    if pred.get("skipped"):
        line = f"Prediction drift not checked: {pred['skipped']}."
    else:
        line = (f"{pred.get('column')}: {pred.get('stattest_name') or pred.get('stattest')} "
                f"{_fmt(pred.get('score'), 3)} (threshold {_fmt(pred.get('threshold'), 3)}) — "
                f"{'DRIFT' if pred.get('drift_detected') else 'no drift'}; ")
        if "categories" in pred:  # a multiclass model's predicted classes
            line += "predicted classes " + ", ".join(
                f"{c['value']} {_pct(c.get('reference'))} -> {_pct(c.get('current'))}" for c in pred["categories"])
        else:
            line += (f"mean score {_fmt((pred.get('reference') or {}).get('mean'))} -> "
                     f"{_fmt((pred.get('current') or {}).get('mean'))}")
        if "alert_rate_reference" in pred:
            line += f"; alert rate {_pct(pred.get('alert_rate_reference'))} -> {_pct(pred.get('alert_rate_current'))}"
    return Block([section("Prediction drift", f"<p style='margin:4px 0'>{esc(line)}</p>")],
                 ["", "PREDICTION DRIFT", "  " + line])


def _quality_block(verdict: dict[str, Any]) -> Block:
    quality = verdict.get("data_quality") or {}
    lines = []
    for col, share in sorted((quality.get("missing_share") or {}).items()):
        ref_share = (quality.get("missing_share_reference") or {}).get(col)
        if share or ref_share:
            lines.append(f"{col}: {_pct(share)} missing (training {_pct(ref_share)})")
    for col, values in sorted((quality.get("new_categories") or {}).items()):
        count = (quality.get("new_category_rows") or {}).get(col)
        listed = ", ".join(map(str, values[:MAX_LISTED_VALUES]))
        if len(values) > MAX_LISTED_VALUES:
            listed += f" and {len(values) - MAX_LISTED_VALUES} more"
        lines.append(f"{col}: {count} rows with categories never seen in training: {listed}")
    if not lines:
        return _EMPTY
    return Block([section("Data quality (all rows)", bullet_list(esc(x) for x in lines))],
                 ["", "DATA QUALITY (all rows)", *[f"  - {x}" for x in lines]])


def _performance_block(verdict: dict[str, Any]) -> Block:
    perf = verdict.get("performance")
    if not perf:
        return _EMPTY
    ref = perf.get("reference") or {}
    rows, text_rows = [], []
    task = perf.get("task", "binary")
    metrics = _PERFORMANCE_ROWS.get(task) or [
        ("ROC AUC", "roc_auc"), ("PR AUC", "pr_auc"), (f"Precision @ {_fmt(perf.get('alert_threshold'))}", "precision"),
        (f"Recall @ {_fmt(perf.get('alert_threshold'))}", "recall"), ("Positive rate", "positive_rate")]
    for label, key in metrics:
        cur_v, ref_v = perf.get(key), ref.get(key)
        change = (f"{cur_v - ref_v:+.3f}" if isinstance(cur_v, (int, float)) and isinstance(ref_v, (int, float))
                  else "n/a")
        rows.append([esc(label), esc(_fmt(ref_v)), f"<b>{esc(_fmt(cur_v))}</b>", esc(change)])
        text_rows.append(f"  {label}: {_fmt(ref_v)} -> {_fmt(cur_v)} ({change})")
    limits = sorted((perf.get("limits") or {}).items())
    if task == "binary" and [name for name, _ in limits] in ([], ["roc_auc"]):
        floor = (f"Alert when ROC AUC < {_fmt(perf.get('min_roc_auc'))}. {perf.get('rows')} labelled rows, "
                 f"{perf.get('positives')} positives.")
    else:
        when = " or ".join(f"{metric_label(name)} {'<' if limit.get('kind') == 'floor' else '>'} "
                           f"{_fmt(limit.get('bound'))}" for name, limit in limits)
        floor = (f"Alert when {when}." if limits else "No performance limit is set.") + \
            f" {perf.get('rows')} labelled rows" + \
            (f", {perf.get('positives')} positives." if task == "binary" else ".")
    target = perf.get("target_drift")
    if target:
        floor += (f" Label drift ({target.get('column')}): {_fmt(target.get('score'), 3)} "
                  f"{'DRIFT' if target.get('drift_detected') else 'no drift'}.")
    return Block([section("Performance (labelled records vs reference)",
                          table(["Metric", "Reference", "Current", "Change"], rows)
                          + f"<p style='margin:6px 0;color:#475467'>{esc(floor)}</p>")],
                 ["", "PERFORMANCE (reference -> current)", *text_rows, "  " + floor])


def _actions_block(actions: Sequence[str]) -> Block:
    actions = list(actions) or ["nothing: no automatic action is configured for this alert"]
    return Block([section("What the system already did", bullet_list(esc(a) for a in actions))],
                 ["", "WHAT THE SYSTEM ALREADY DID", *[f"  - {redact(a)}" for a in actions]])


def _links_block(links: Sequence[tuple[str, str | None]]) -> Block:
    return Block([section("Links", bullet_list(f"{esc(name)}: {link(url)}" for name, url in links))],
                 ["", "LINKS", *[f"  {name}: {strip_userinfo(url) or 'not available'}" for name, url in links]])


def _runbook_block(steps: Sequence[tuple[str, str | None]], runbook: str) -> Block:
    """The numbered steps, each with a link to its runbook section (http(s): the report view's runbook page)."""
    step_items = [
        esc(step) + (f" <span style='color:#667085'>({link(runbook_url(runbook, anchor), 'runbook section')})</span>"
                     if anchor else "")
        for step, anchor in steps
    ]
    return Block([section("What to do (runbook)",
                          bullet_list(step_items, ordered=True)
                          + f"<p style='margin:6px 0'>Full runbook: {link(runbook, 'on-call runbook')}</p>")],
                 ["", "WHAT TO DO (runbook)", *[f"  {i}. {step}" for i, (step, _) in enumerate(steps, 1)],
                  f"  Full runbook: {runbook}"])


def _attachment_note(attached: bool) -> Block:
    note = ("Attached: a one-page summary of this alert (opens offline). The full interactive report opens "
            "from the Report link (Airflow login)." if attached else
            "The full interactive report opens from the Report link (Airflow login).")
    return Block([f"<p style='margin:10px 0;color:#475467'>{esc(note)}</p>"], ["", note])


def summary_html(project: ProjectConfig, verdict: dict[str, Any], *, title: str, headline: str,
                 links: Sequence[tuple[str, str | None]], max_bytes: int = SUMMARY_MAX_BYTES) -> bytes:
    """A small static HTML page of the alert (drifted features, prediction drift, data quality, performance,
    links): no script, no external resource, every data value escaped, below ``max_bytes`` (the drifted
    features table is cut, with a note, until it fits). Attached to the email instead of Evidently's
    multi-megabyte interactive report."""
    kind = verdict.get("kind", "ok")

    def page(max_rows: int | None) -> bytes:
        blocks = [_intro_block(title, verdict), _drift_block(verdict, max_rows), _prediction_block(verdict),
                  _quality_block(verdict), _performance_block(verdict), _links_block(links)]
        return html_page(title=f"{title}: {headline}", color=COLORS.get(kind, COLORS["drift"]),
                         headline=esc(headline), blocks=[h for b in blocks for h in b.html]).encode("utf-8")

    rows = len(verdict.get("drifted_columns") or [])
    body = page(None)
    while len(body) >= max_bytes and rows > 0:
        rows //= 2
        body = page(rows)
    return body


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
    task_url: str | None = None,
    attach_max_bytes: int = SUMMARY_MAX_BYTES,
    sender: str = DEFAULT_FROM,
    runbook: str = DEFAULT_RUNBOOK,
) -> EmailMessage:
    """The on-call email for one monitoring verdict: verdict first, evidence, actions, links, runbook.

    ``report_url`` is the full report's address (the Airflow layer passes the report view's http(s) URL,
    the same as the task's "Drift report" extra link), ``task_url`` the monitor task in the Airflow UI.
    The summary (:func:`summary_html`) is attached when smaller than ``attach_max_bytes``
    (``alerts.attach_max_bytes``; 0: nothing attached). ``sender`` is the From address and ``runbook``
    the URL of the runbook; the Airflow layer passes both.
    """
    day = _day(day)
    kind = verdict.get("kind", "ok")
    headline = _headline(verdict)
    version = f"v{model_version}" if model_version not in (None, "") else "(no version)"
    title = f"{project.name} / {project.model_name} {version} / {day}"
    subject = f"[MLOps] {title}: {headline}"
    links = [("Full report", report_url), ("Airflow task (log, extra links)", task_url), ("Airflow run", run_url),
             ("MLflow run", mlflow_run_url)]
    summary = (summary_html(project, verdict, title=title, headline=headline, links=links,
                            max_bytes=min(SUMMARY_MAX_BYTES, attach_max_bytes)) if attach_max_bytes > 0 else b"")
    attach = bool(summary) and len(summary) < attach_max_bytes
    blocks = [
        _intro_block(title, verdict), _drift_block(verdict), _prediction_block(verdict), _quality_block(verdict),
        _performance_block(verdict), _actions_block(actions), _links_block(links),
        _runbook_block(_runbook_steps(project, verdict), runbook), _attachment_note(attach),
    ]
    text = [subject, "", "VERDICT: " + headline, *(line for b in blocks for line in b.text)]
    message = build_message(
        subject=subject,
        recipients=project.alerts["recipients"],
        html_body=html_page(title=subject, color=COLORS.get(kind, COLORS["drift"]), headline=esc(headline),
                            blocks=[h for b in blocks for h in b.html]),
        text_body="\n".join(text) + "\n",
        headers={"X-MLOps-Project": project.name, "X-MLOps-Kind": kind, "X-MLOps-Day": day},
        sender=sender,
    )
    if attach:
        message.add_attachment(summary, maintype="text", subtype="html",
                               filename=f"{project.name}-{day}-{kind}-summary.html")
    return message


def dedup_key(project: ProjectConfig | str, day: str | dt.date, kind: str) -> str:
    """The identity of one alert event: a project's day alerts once per verdict kind.

    Not per model version: a promotion re-scores the newest day with the new champion, and the same
    drift of the same day must not page again.
    """
    name = project if isinstance(project, str) else project.name
    return f"monitoring|{name}|{_day(day)}|{kind}"


def retrain_outcome_key(project: ProjectConfig | str, day: str | dt.date, kind: str) -> str:
    """The identity of the follow-up about the retrain that the (``day``, ``kind``) alert requested."""
    name = project if isinstance(project, str) else project.name
    return f"retrain-outcome|{name}|{_day(day)}|{kind}"


def compose_retrain_outcome(
    project: ProjectConfig,
    outcome: dict[str, Any],
    *,
    alert_day: str | dt.date,
    alert_kind: str,
    thread: dict[str, Any] | None,
    links: Sequence[tuple[str, str | None]],
    sender: str = DEFAULT_FROM,
    runbook: str = DEFAULT_RUNBOOK,
) -> EmailMessage:
    """The follow-up to a drift/performance alert once the retrain it requested was promoted or refused.

    ``outcome`` is the promotion result (``promoted``, ``version``, ``reason``, ``champion``); ``thread``
    the alert's ``message_id`` and ``subject`` as sent: the follow-up replies to it (``In-Reply-To`` and
    ``References``, subject ``Re: <subject>``), so it lands on the alert's thread. Without it (the alert
    went out before threads were recorded) the follow-up starts its own thread.
    """
    day = _day(alert_day)
    version, reason = outcome.get("version"), outcome.get("reason") or ""
    model = f"{project.model_name} v{version}"
    if outcome.get("promoted"):
        color, headline = COLORS["ok"], f"RETRAIN PROMOTED: {model} is champion"
        meaning = (f"The retrain requested by the {alert_kind} alert of {day} produced {model}, which passed the "
                   f"promotion gate and now serves: {reason}. Scoring redoes the newest day with it; watch the next "
                   "monitoring verdict.")
    else:
        champion = outcome.get("champion") or outcome.get("compared_with")
        color, headline = COLORS["drift"], f"RETRAIN REFUSED: {model} not promoted"
        meaning = (f"The retrain requested by the {alert_kind} alert of {day} produced {model}, which was NOT "
                   f"promoted: {reason}. " + (f"Champion v{champion} keeps serving. " if champion else "")
                   + "If the alert's cause persists, decide by hand (runbook: rollback, or retrain/promote by hand).")
    thread = thread or {}
    original = str(thread.get("subject") or "")
    subject = (f"Re: {original}" if original else f"[MLOps] {project.name} / {day}: retrain after the {alert_kind} alert")
    blocks = [Block([f"<p style='margin:12px 0 6px 0'>{esc(meaning)}</p>"], [meaning]), _links_block(links),
              Block([f"<p style='margin:6px 0'>Runbook: {link(runbook_url(runbook, 'retrain-or-promote-by-hand'), 'retrain or promote by hand')}</p>"],
                    ["", f"Runbook: {runbook_url(runbook, 'retrain-or-promote-by-hand')}"])]
    headers = {"X-MLOps-Project": project.name, "X-MLOps-Kind": "retrain-outcome", "X-MLOps-Day": day}
    if thread.get("message_id"):
        headers["In-Reply-To"] = str(thread["message_id"])
        headers["References"] = str(thread["message_id"])
    return build_message(
        subject=subject, recipients=project.alerts["recipients"],
        html_body=html_page(title=subject, color=color, headline=esc(headline), blocks=[h for b in blocks for h in b.html]),
        text_body="\n".join([subject, "", headline, *(line for b in blocks for line in b.text)]) + "\n",
        headers=headers, sender=sender,
    )
