"""A project's monitoring history over days, and the one static page that shows it (pure: no Airflow, no I/O).

:func:`build_history` turns what the monitor, alerting, retrain and score stages left in the report store
(per day: the verdict of ``domain/drift.py``, the kinds of the alerts sent, the retrain request, the
champion version that scored the day) into a :class:`History` with one :class:`DayEntry` per calendar
day, a day without a verdict included (a gap on the charts, "no report" in the table).
:func:`render_history` renders it as ONE self-contained HTML page: inline SVG charts (drift share per
day against the project's ``monitoring.drift_share_threshold``; the performance metric per labelled day
against its limit; alert and retrain markers), then a row per day with its verdict, the champion version
and a link to that day's Evidently report. No script, no external resource; every data value is escaped
(Jinja2 autoescape); the layout fits a phone.

Which performance metric is charted (:func:`chart_metric`): the one with a monitoring limit (the limit
that pages on-call: ``monitoring.performance_limits``, a binary model's ``min_roc_auc``), the project's
``promotion.primary_metric`` first when it has one; without any limit the primary metric (if monitoring
measures it), else the task's first monitored metric.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlops_provider.config.tasks import MONITORED_METRICS
from mlops_provider.domain.layout import as_date, days
from mlops_provider.domain.metrics import label as metric_label
from mlops_provider.domain.metrics import monitored_name

log = logging.getLogger(__name__)

#: Verdict kinds and their colours (the alert email's palette).
COLORS = {"ok": "#1a7f37", "drift": "#b35900", "performance": "#b42318", "drift+performance": "#b42318"}
MISSING_COLOR = "#98a2b3"
ALERT_COLOR = "#b42318"
RETRAIN_COLOR = "#6941c6"
#: Drifted columns named per day in the table before "+N".
MAX_COLUMNS_LISTED = 3


@dataclass(frozen=True)
class DayEntry:
    """One calendar day: its verdict's numbers (``kind`` None: no verdict that day) and what followed it."""

    day: dt.date
    kind: str | None = None
    share_drifted: float | None = None
    n_drifted: int | None = None
    n_features: int | None = None
    drifted_columns: tuple[str, ...] = ()
    prediction_drift: bool = False
    metric_value: float | None = None
    labelled_rows: int | None = None
    performance_alert: bool = False
    champion_version: str | None = None
    alerts: tuple[str, ...] = ()
    retrain: str | None = None

    @property
    def monitored(self) -> bool:
        return self.kind is not None


@dataclass(frozen=True)
class History:
    """Every day of ``[first, last]`` (oldest first) with the lines the charts draw."""

    project: str
    days: tuple[DayEntry, ...]
    drift_share_threshold: float | None
    metric: str | None
    limit: float | None = None
    limit_kind: str | None = None  # "floor" (higher is better) or "ceiling"
    problems: tuple[str, ...] = field(default=())

    @property
    def first(self) -> dt.date:
        return self.days[0].day

    @property
    def last(self) -> dt.date:
        return self.days[-1].day

    @property
    def metric_label(self) -> str:
        return metric_label(self.metric) if self.metric else "performance"

    @property
    def monitored(self) -> list[DayEntry]:
        return [d for d in self.days if d.monitored]

    def summary(self) -> dict[str, Any]:
        """Counts over the window and the newest verdict: the page's headline."""
        monitored = self.monitored
        latest = monitored[-1] if monitored else None
        return {
            "days": len(self.days),
            "monitored": len(monitored),
            "not_ok": sum(1 for d in monitored if d.kind != "ok"),
            "alerts": sum(len(d.alerts) for d in self.days),
            "retrains": sum(1 for d in self.days if d.retrain),
            "latest_day": latest.day if latest else None,
            "latest_kind": latest.kind if latest else None,
        }


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) or math.isinf(number) else number


def _limits(verdict: Mapping[str, Any]) -> dict[str, Any]:
    return ((verdict.get("performance") or {}).get("limits")) or {}


def chart_metric(task: str, verdicts: Iterable[Mapping[str, Any]], primary_metric: str | None = None) -> str:
    """The monitoring name of the metric to chart (see the module doc), from the newest verdict's limits."""
    names = {monitored_name(task, m) for m in MONITORED_METRICS[task]}
    primary = monitored_name(task, primary_metric) if primary_metric else None
    primary = primary if primary in names else None
    limits: dict[str, Any] = {}
    for verdict in verdicts:  # newest last
        limits = _limits(verdict) or limits
    if primary and primary in limits:
        return primary
    if limits:
        return sorted(limits)[0]
    return primary or monitored_name(task, MONITORED_METRICS[task][0])


def _entry(day: dt.date, verdict: Mapping[str, Any] | None, metric: str | None, *, alerts: Iterable[str],
           retrain: str | None, champion: str | None) -> DayEntry:
    extras = {"alerts": tuple(sorted(set(alerts))), "retrain": retrain,
              "champion_version": None if champion is None else str(champion)}
    if verdict is None:
        return DayEntry(day, **extras)
    performance = verdict.get("performance") or {}
    drifted = verdict.get("drifted_columns") or []
    rows = verdict.get("rows") or {}
    return DayEntry(
        day,
        kind=str(verdict.get("kind") or "unknown"),
        share_drifted=_number(verdict.get("share_drifted")),
        n_drifted=verdict.get("n_drifted"),
        n_features=verdict.get("n_features"),
        drifted_columns=tuple(str(c.get("column") if isinstance(c, Mapping) else c) for c in drifted),
        prediction_drift=bool((verdict.get("prediction_drift") or {}).get("drift_detected")),
        metric_value=_number(performance.get(metric)) if metric else None,
        labelled_rows=rows.get("labelled"),
        performance_alert=bool(verdict.get("performance_alert")),
        **extras,
    )


def build_history(project: str, first: str | dt.date, last: str | dt.date, *,
                  verdicts: Mapping[dt.date, Mapping[str, Any]],
                  alerts: Mapping[dt.date, Iterable[str]] | None = None,
                  retrains: Mapping[dt.date, str] | None = None,
                  champions: Mapping[dt.date, str] | None = None,
                  drift_share_threshold: float | None = None, task: str | None = None,
                  primary_metric: str | None = None, problems: Iterable[str] = ()) -> History:
    """The history of ``project`` over ``[first, last]``.

    ``verdicts``: day -> the monitor stage's verdict; ``alerts``: day -> kinds of the alerts sent;
    ``retrains``: day -> kind of the retrain requested; ``champions``: day -> the champion version that
    scored it. ``drift_share_threshold``, ``task`` and ``primary_metric`` come from the project config;
    without them the newest verdict's threshold and task are used. Days outside the window are ignored.
    """
    first, last = as_date(first), as_date(last)
    if first > last:
        raise ValueError(f"history of {project!r}: first day {first} is after last day {last}")
    window = days(first, last)
    problems = list(problems)
    verdicts = {d: v for d, v in sorted(verdicts.items()) if first <= d <= last and _well_formed(project, d, v, problems)}
    in_window = [verdicts[d] for d in window if d in verdicts]
    if task is None:
        task = next((str((v.get("performance") or {}).get("task")) for v in reversed(in_window)
                     if (v.get("performance") or {}).get("task") in MONITORED_METRICS), "binary")
    if drift_share_threshold is None:
        drift_share_threshold = next((_number(v.get("drift_share_threshold")) for v in reversed(in_window)
                                      if _number(v.get("drift_share_threshold")) is not None), None)
    metric = chart_metric(task, in_window, primary_metric)
    limit = next((_limits(v)[metric] for v in reversed(in_window) if metric in _limits(v)), None)
    alerts, retrains, champions = alerts or {}, retrains or {}, champions or {}
    entries = tuple(_entry(d, verdicts.get(d), metric, alerts=alerts.get(d, ()), retrain=retrains.get(d),
                           champion=champions.get(d)) for d in window)
    return History(
        project=project, days=entries, drift_share_threshold=drift_share_threshold, metric=metric,
        limit=_number(limit.get("bound")) if limit else None, limit_kind=limit.get("kind") if limit else None,
        problems=tuple(problems),
    )


def _well_formed(project: str, day: dt.date, verdict: Any, problems: list[str]) -> bool:
    """Whether ``verdict`` has the shape of a monitor verdict; else note the problem (the day shows no verdict)."""
    shapes = {"performance": (dict, type(None)), "drifted_columns": (list, type(None)), "rows": (dict, type(None)),
              "prediction_drift": (dict, type(None))}
    ok = isinstance(verdict, Mapping) and all(isinstance(verdict.get(k), t) for k, t in shapes.items()) and \
        isinstance(((verdict.get("performance") or {}).get("limits")) or {}, dict)
    if not ok:
        log.warning("history of %s: the verdict of %s is not a monitoring verdict; shown without it", project, day)
        problems.append(f"the verdict of {day} is not a monitoring verdict (written by another version?); "
                        "that day is shown without it")
    return ok


# -- charts ----------------------------------------------------------------------------------------
WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 62, 12, 26, 28


@dataclass(frozen=True)
class _Axis:
    """Day -> x and value -> y of one chart."""

    n: int
    low: float
    high: float

    @property
    def step(self) -> float:
        return (WIDTH - LEFT - RIGHT) / max(self.n, 1)

    def x(self, index: int) -> float:
        return round(LEFT + self.step * (index + 0.5), 1)

    def y(self, value: float) -> float:
        span = (self.high - self.low) or 1.0
        return round(TOP + (HEIGHT - TOP - BOTTOM) * (1 - (value - self.low) / span), 1)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def _x_labels(history: History, axis: _Axis) -> list[dict[str, Any]]:
    """About six day labels along the x axis, the first and the last included."""
    n = len(history.days)
    every = max(1, math.ceil(n / 6))
    picked = sorted({*range(0, n, every), n - 1})
    if len(picked) > 1 and picked[-1] - picked[-2] < every / 2:
        picked.pop(-2)
    return [{"x": axis.x(i) if i < n - 1 or n == 1 else WIDTH - RIGHT, "anchor": "middle" if i < n - 1 or n == 1 else "end",
             "text": history.days[i].day.strftime("%m-%d")} for i in picked]


def _markers(history: History, axis: _Axis) -> list[dict[str, Any]]:
    """An alert triangle and a retrain diamond above the days that had them."""
    out = []
    for i, d in enumerate(history.days):
        if d.alerts:
            out.append({"shape": "alert", "x": axis.x(i), "y": 12, "color": ALERT_COLOR,
                        "title": f"{d.day}: alert sent ({', '.join(d.alerts)})"})
        if d.retrain:
            out.append({"shape": "retrain", "x": axis.x(i) + (5 if d.alerts else 0), "y": 12, "color": RETRAIN_COLOR,
                        "title": f"{d.day}: retrain requested ({d.retrain})"})
    return out


def drift_chart(history: History) -> dict[str, Any]:
    """The drift-share bar chart: bars, threshold line, y ticks, x labels, markers (coordinates and titles)."""
    axis = _Axis(len(history.days), 0.0, 1.0)
    threshold = history.drift_share_threshold
    bars, gaps = [], []
    width = max(1.0, round(axis.step * 0.7, 1))
    for i, d in enumerate(history.days):
        if not d.monitored:
            gaps.append({"x": axis.x(i), "title": f"{d.day}: no monitoring report"})
            continue
        share = d.share_drifted or 0.0
        over = threshold is not None and share >= threshold
        y = axis.y(share)
        bars.append({
            "x": round(axis.x(i) - width / 2, 1), "y": min(y, axis.y(0) - 1), "w": width,
            "h": max(1.0, round(axis.y(0) - y, 1)),
            "color": COLORS["drift"] if over else "#2e90fa",
            "title": f"{d.day}: {share:.0%} of features drifted ({d.n_drifted}/{d.n_features}), verdict {d.kind}",
        })
    return {
        "bars": bars, "gaps": gaps, "markers": _markers(history, axis), "x_labels": _x_labels(history, axis),
        "y_ticks": [{"y": axis.y(v), "text": f"{v:.0%}"} for v in (0.0, 0.5, 1.0)],
        "threshold": None if threshold is None else {"y": axis.y(threshold), "text": f"threshold {threshold:.0%}"},
        "base_y": axis.y(0),
    }


def metric_chart(history: History) -> dict[str, Any] | None:
    """The metric line chart (segments break at days without labels), or None when no day had labels."""
    points = [(i, d) for i, d in enumerate(history.days) if d.metric_value is not None]
    if not points:
        return None
    values = [d.metric_value for _, d in points] + ([history.limit] if history.limit is not None else [])
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or max(abs(high) * 0.05, 0.01)
    axis = _Axis(len(history.days), low - pad, high + pad)
    segments: list[list[str]] = []
    previous = None
    for i, d in points:
        if previous is None or i != previous + 1:
            segments.append([])
        segments[-1].append(f"{axis.x(i)},{axis.y(d.metric_value)}")
        previous = i
    limit, kind = history.limit, history.limit_kind

    def breached(value: float) -> bool:
        return limit is not None and (value < limit if kind == "floor" else value > limit)

    dots = [{"x": axis.x(i), "y": axis.y(d.metric_value),
             "color": ALERT_COLOR if breached(d.metric_value) else "#175cd3",
             "title": f"{d.day}: {history.metric_label} {_fmt(d.metric_value, 4)} on {d.labelled_rows} labelled rows"}
            for i, d in points]
    ticks = sorted({round(low, 4), round(high, 4)})
    return {
        "lines": [" ".join(s) for s in segments if len(s) > 1], "dots": dots,
        "markers": _markers(history, axis), "x_labels": _x_labels(history, axis),
        "y_ticks": [{"y": axis.y(v), "text": _fmt(v)} for v in ticks],
        "limit": None if limit is None else {"y": axis.y(limit),
                                             "text": f"{'minimum' if kind == 'floor' else 'maximum'} {_fmt(limit)}"},
        "base_y": HEIGHT - BOTTOM,
    }


# -- the page --------------------------------------------------------------------------------------
_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ h.project }}: monitoring history</title>
<style>
body{margin:0 auto;max-width:900px;padding:12px;font-family:Arial,Helvetica,sans-serif;color:#1d2939;line-height:1.4}
h1{font-size:1.3em;margin:.2em 0}h2{font-size:1.05em;margin:1.2em 0 .3em}
.sub{color:#475467;font-size:.9em}.problems{color:#b42318}
svg{width:100%;height:auto;display:block;background:#fcfcfd;border:1px solid #eaecf0;border-radius:6px}
svg text{font-size:11px;fill:#475467}
@media (max-width:600px){svg text{font-size:20px}}
.legend{font-size:.8em;color:#475467}.legend span{white-space:nowrap;margin-right:1em}
.wrap{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;font-size:.85em;min-width:100%}
th,td{border-bottom:1px solid #eaecf0;padding:5px 6px;text-align:left;white-space:nowrap}
th{background:#f2f4f7;position:sticky;top:0}
.kind{color:#fff;border-radius:4px;padding:1px 6px;font-weight:bold}
.none{color:#98a2b3}.cols{white-space:normal;min-width:8em}
a{color:#175cd3}
</style></head>
<body>
<h1>{{ h.project }}: monitoring history</h1>
<p class="sub">{{ h.first }} to {{ h.last }} ({{ s.days }} days): {{ s.monitored }} monitored,
{{ s.not_ok }} not ok, {{ s.alerts }} alert{{ "s" if s.alerts != 1 }} sent, {{ s.retrains }}
retrain{{ "s" if s.retrains != 1 }} requested.
{% if s.latest_day %}Latest verdict: <b>{{ s.latest_kind }}</b> on {{ s.latest_day }}.
{% else %}No monitoring report in this window.{% endif %}
{% if nav %}{% for link in nav %} <a href="{{ link.href }}">{{ link.text }}</a>{% endfor %}{% endif %}</p>
{% for problem in h.problems %}<p class="problems">{{ problem }}</p>{% endfor %}

<h2>Drift share per day</h2>
<svg viewBox="0 0 {{ W }} {{ H }}" role="img" aria-label="share of drifted features per day">
{% for t in drift.y_ticks %}<line x1="{{ L }}" x2="{{ W - R }}" y1="{{ t.y }}" y2="{{ t.y }}" stroke="#eaecf0"/>
<text x="{{ L - 4 }}" y="{{ t.y + 4 }}" text-anchor="end">{{ t.text }}</text>{% endfor %}
{% for b in drift.bars %}<rect x="{{ b.x }}" y="{{ b.y }}" width="{{ b.w }}" height="{{ b.h }}" fill="{{ b.color }}"><title>{{ b.title }}</title></rect>
{% endfor %}{% for g in drift.gaps %}<circle cx="{{ g.x }}" cy="{{ drift.base_y - 3 }}" r="2" fill="{{ missing }}"><title>{{ g.title }}</title></circle>
{% endfor %}{% if drift.threshold %}<line x1="{{ L }}" x2="{{ W - R }}" y1="{{ drift.threshold.y }}" y2="{{ drift.threshold.y }}" stroke="#b42318" stroke-dasharray="6 4"/>
<text x="{{ W - R }}" y="{{ drift.threshold.y - 4 }}" text-anchor="end" style="fill:#b42318">{{ drift.threshold.text }}</text>{% endif %}
{{ markers(drift) }}{{ xlabels(drift) }}
</svg>
<p class="legend"><span style="color:#2e90fa">&#9632; below threshold</span> <span style="color:{{ colors.drift }}">&#9632; dataset drift</span> <span style="color:{{ missing }}">&#9679; no report</span> <span style="color:{{ alert }}">&#9660; alert sent</span> <span style="color:{{ retrain }}">&#9670; retrain requested</span></p>

<h2>{{ h.metric_label }} per labelled day{% if h.limit is not none %} (limit: {{ metric.limit.text }}){% endif %}</h2>
{% if metric %}<svg viewBox="0 0 {{ W }} {{ H }}" role="img" aria-label="{{ h.metric_label }} per day with labels">
{% for t in metric.y_ticks %}<line x1="{{ L }}" x2="{{ W - R }}" y1="{{ t.y }}" y2="{{ t.y }}" stroke="#eaecf0"/>
<text x="{{ L - 4 }}" y="{{ t.y + 4 }}" text-anchor="end">{{ t.text }}</text>{% endfor %}
{% if metric.limit %}<line x1="{{ L }}" x2="{{ W - R }}" y1="{{ metric.limit.y }}" y2="{{ metric.limit.y }}" stroke="#b42318" stroke-dasharray="6 4"/>
<text x="{{ W - R }}" y="{{ metric.limit.y - 4 }}" text-anchor="end" style="fill:#b42318">{{ metric.limit.text }}</text>{% endif %}
{% for line in metric.lines %}<polyline points="{{ line }}" fill="none" stroke="#175cd3" stroke-width="2"/>
{% endfor %}{% for d in metric.dots %}<circle cx="{{ d.x }}" cy="{{ d.y }}" r="3.5" fill="{{ d.color }}"><title>{{ d.title }}</title></circle>
{% endfor %}{{ markers(metric) }}{{ xlabels(metric) }}
</svg>
{% else %}<p class="sub">No day in this window had labels to measure {{ h.metric_label }} on.</p>{% endif %}

<h2>Days</h2>
<div class="wrap"><table>
<tr><th>Day</th><th>Verdict</th><th>Report</th><th>Alert / retrain</th><th>Drift share</th><th>Drifted</th><th>{{ h.metric_label }}</th><th>Champion</th></tr>
{% for d in rows %}<tr>
<td>{{ d.day }}</td>
{% if d.monitored %}<td><span class="kind" style="background:{{ colors.get(d.kind, missing) }}">{{ d.kind }}</span></td>
<td>{% if report_href %}<a href="{{ report_href(d.day) }}" title="the Evidently report of {{ d.day }}">report</a>{% endif %}</td>
<td>{{ events(d) }}</td>
<td>{{ pct(d.share_drifted) }}{% if d.n_features %} ({{ d.n_drifted }}/{{ d.n_features }}){% endif %}{% if d.prediction_drift %}, prediction{% endif %}</td>
<td class="cols">{{ d.drifted_columns[:max_cols] | join(", ") }}{% if d.drifted_columns | length > max_cols %} +{{ d.drifted_columns | length - max_cols }}{% endif %}</td>
<td>{% if d.metric_value is not none %}{{ fmt(d.metric_value, 4) }}{% if d.performance_alert %} &#9888;{% endif %}{% else %}<span class="none">no labels</span>{% endif %}</td>
{% else %}<td class="none">no monitoring report</td><td></td><td>{{ events(d) }}</td><td colspan="3"></td>{% endif %}
<td>{% if d.champion_version %}v{{ d.champion_version }}{% else %}<span class="none">-</span>{% endif %}</td>
</tr>
{% endfor %}</table></div>
</body></html>
"""

_MACROS = """{% macro markers(chart) %}{% for m in chart.markers %}{% if m.shape == "alert" %}<path d="M{{ m.x - 5 }},{{ m.y - 5 }} L{{ m.x + 5 }},{{ m.y - 5 }} L{{ m.x }},{{ m.y + 4 }} Z" fill="{{ m.color }}"><title>{{ m.title }}</title></path>{% else %}<path d="M{{ m.x }},{{ m.y - 6 }} L{{ m.x + 5 }},{{ m.y }} L{{ m.x }},{{ m.y + 6 }} L{{ m.x - 5 }},{{ m.y }} Z" fill="{{ m.color }}"><title>{{ m.title }}</title></path>{% endif %}
{% endfor %}{% endmacro %}{% macro events(d) %}{% for a in d.alerts %}<span style="color:{{ alert }}">&#9660; {{ a }}</span> {% endfor %}{% if d.retrain %}<span style="color:{{ retrain }}">&#9670; retrain</span>{% endif %}{% endmacro %}{% macro xlabels(chart) %}{% for t in chart.x_labels %}<text x="{{ t.x }}" y="{{ H - 8 }}" text-anchor="{{ t.anchor }}">{{ t.text }}</text>{% endfor %}{% endmacro %}"""


@functools.cache
def _template() -> Any:
    """The page's Jinja2 template (autoescaped: every value is HTML-escaped unless marked safe), compiled once."""
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_MACROS + _TEMPLATE)


def report_path(project: str, day: dt.date) -> str:
    """Where the day's Evidently report lives in the report store, relative to the root."""
    return f"{project}/monitoring/dt={as_date(day).isoformat()}/report.html"


def render_history(history: History, *, report_href: Callable[[dt.date], str] | None = None,
                   nav: Iterable[Mapping[str, str]] = ()) -> str:
    """The page of ``history``: charts, then a row per day, newest first.

    ``report_href`` gives the link of a day's Evidently report (the Airflow layer passes the report view's
    ``/mlops/reports/<project>/monitoring/dt=<day>/report.html``); ``nav``: extra links (``href``, ``text``)
    under the headline.
    """
    return _template().render(
        h=history, s=history.summary(), drift=drift_chart(history), metric=metric_chart(history),
        rows=list(reversed(history.days)), report_href=report_href, nav=list(nav), colors=COLORS,
        missing=MISSING_COLOR, alert=ALERT_COLOR, retrain=RETRAIN_COLOR, max_cols=MAX_COLUMNS_LISTED,
        W=WIDTH, H=HEIGHT, L=LEFT, R=RIGHT, fmt=_fmt, pct=lambda v: "n/a" if v is None else f"{v:.0%}",
    )
