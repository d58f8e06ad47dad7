"""The monitoring history (domain/history.py): per-day entries from verdicts, alerts, retrains and champions,
the metric and lines charted, and the static page (inline SVG, every value escaped, gaps for missing days)."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

import pytest
from mlops_provider.domain.history import (
    build_history,
    chart_metric,
    drift_chart,
    metric_chart,
    render_history,
)

D1 = dt.date(2024, 3, 1)


def day(n: int) -> dt.date:
    return D1 + dt.timedelta(days=n)


def verdict(kind: str, share: float, *, drifted=(), task="binary", metric=None, limits=None, labelled=None,
            threshold=0.3) -> dict:
    """A verdict with the keys domain/drift.py's _verdict writes (values as the monitor stage saves them)."""
    performance = None
    if metric is not None:
        performance = {**metric, "task": task, "rows": labelled, "reference": None, "target_drift": None,
                       "limits": limits or {}}
    return {
        "kind": kind, "drift_detected": share >= threshold, "share_drifted": share,
        "drift_share_threshold": threshold, "column_drift_threshold": 0.1, "n_features": 10,
        "n_drifted": len(drifted),
        "drifted_columns": [{"column": c, "type": "numerical", "stattest": "wasserstein", "score": 0.4,
                             "threshold": 0.1} for c in drifted],
        "column_scores": {}, "prediction_drift": {"column": "champion_score", "drift_detected": kind != "ok"},
        "data_quality": {}, "performance": performance, "performance_alert": kind in ("performance", "drift+performance"),
        "rows": {"reference": 5000, "current": 2000, "labelled": labelled, "sampled_to": None, "seed": 1},
    }


ROC_LIMIT = {"roc_auc": {"metric": "roc_auc", "bound": 0.75, "kind": "floor", "value": 0.8, "breached": False}}


@pytest.fixture
def week():
    """Seven days: two without a report (days 1 and 4), labels on days 0, 2, 3 and 6, an alert and a retrain on day 3."""
    return {
        day(0): verdict("ok", 0.1, metric={"roc_auc": 0.81, "pr_auc": 0.4}, limits=ROC_LIMIT, labelled=300),
        day(2): verdict("ok", 0.2, metric={"roc_auc": 0.79, "pr_auc": 0.35}, limits=ROC_LIMIT, labelled=280),
        day(3): verdict("drift+performance", 0.6, drifted=("amount", "<script>alert(1)</script>", "c3", "c4"),
                        metric={"roc_auc": 0.7, "pr_auc": 0.2},
                        limits={"roc_auc": {**ROC_LIMIT["roc_auc"], "value": 0.7, "breached": True}}, labelled=310),
        day(5): verdict("drift", 0.4, drifted=("amount",)),
        day(6): verdict("ok", 0.0, metric={"roc_auc": 0.8, "pr_auc": 0.41}, limits=ROC_LIMIT, labelled=305),
    }


def history_of(week, **kwargs):
    return build_history("proj", day(0), day(6), verdicts=week, alerts={day(3): ["drift+performance"]},
                         retrains={day(3): "drift+performance"}, champions={d: "4" for d in week} | {day(6): "5"},
                         **kwargs)


def test_every_day_of_the_window_with_what_happened(week):
    history = history_of(week, drift_share_threshold=0.25, task="binary", primary_metric="pr_auc")

    assert [d.day for d in history.days] == [day(i) for i in range(7)]
    assert [d.kind for d in history.days] == ["ok", None, "ok", "drift+performance", None, "drift", "ok"]
    # The binary model's limit is on ROC AUC (min_roc_auc): that is what pages on-call, so that is charted.
    assert (history.metric, history.limit, history.limit_kind, history.drift_share_threshold) == \
        ("roc_auc", 0.75, "floor", 0.25)
    bad = history.days[3]
    assert (bad.share_drifted, bad.n_drifted, bad.metric_value, bad.labelled_rows, bad.performance_alert) == \
        (0.6, 4, 0.7, 310, True)
    assert bad.drifted_columns[1] == "<script>alert(1)</script>" and bad.prediction_drift
    assert (bad.alerts, bad.retrain, bad.champion_version) == (("drift+performance",), "drift+performance", "4")
    assert history.days[5].metric_value is None and history.days[5].labelled_rows is None
    assert history.days[6].champion_version == "5" and history.days[1].champion_version is None
    assert history.summary() == {"days": 7, "monitored": 5, "not_ok": 2, "alerts": 1, "retrains": 1,
                                 "latest_day": day(6), "latest_kind": "ok"}


def test_thresholds_fall_back_to_the_newest_verdict_without_a_config(week):
    week[day(6)] = {**week[day(6)], "drift_share_threshold": 0.35}
    history = history_of(week)
    assert history.drift_share_threshold == 0.35 and history.metric == "roc_auc" and history.limit == 0.75


def test_which_metric_is_charted():
    rmse = {"performance": {"limits": {"rmse": {"metric": "rmse", "bound": 12.0, "kind": "ceiling"},
                                       "r2": {"metric": "r2", "bound": 0.3, "kind": "floor"}}}}
    assert chart_metric("regression", [rmse], "rmse") == "rmse"  # the primary metric has a limit
    assert chart_metric("regression", [rmse], "mae") == "r2"  # else a limited one (sorted, stable)
    assert chart_metric("binary", [{"performance": None}], "pr_auc") == "pr_auc"  # no limit: the primary
    assert chart_metric("binary", [], "log_loss") == "roc_auc"  # not monitored: the task's first monitored metric
    assert chart_metric("multiclass", [], None) == "macro_f1"
    # precision_at_threshold is reported by monitoring as "precision"
    limit = {"performance": {"limits": {"precision": {"bound": 0.5, "kind": "floor"}}}}
    assert chart_metric("binary", [limit], "precision_at_threshold") == "precision"


def test_a_ceiling_limit_marks_values_above_it(week):
    verdicts = {day(0): verdict("ok", 0.1, task="regression", metric={"rmse": 10.0}, labelled=50,
                                limits={"rmse": {"metric": "rmse", "bound": 12.0, "kind": "ceiling"}}),
                day(1): verdict("performance", 0.1, task="regression", metric={"rmse": 14.0}, labelled=50,
                                limits={"rmse": {"metric": "rmse", "bound": 12.0, "kind": "ceiling"}})}
    history = build_history("reg", day(0), day(1), verdicts=verdicts)
    chart = metric_chart(history)
    assert history.metric == "rmse" and chart["limit"]["text"] == "maximum 12"
    assert [d["color"] for d in chart["dots"]] == ["#175cd3", "#b42318"]


def test_charts_draw_bars_gaps_lines_and_markers(week):
    history = history_of(week, drift_share_threshold=0.3)
    drift = drift_chart(history)
    assert len(drift["bars"]) == 5 and len(drift["gaps"]) == 2
    heights = [b["h"] for b in drift["bars"]]
    assert heights[2] > heights[3] > heights[1] > heights[0] > heights[4]  # days 3, 5, 2, 0, 6: 0.6 > 0.4 > 0.2 > 0.1 > 0
    assert [b["color"] for b in drift["bars"]] == ["#2e90fa", "#2e90fa", "#b35900", "#b35900", "#2e90fa"]
    assert drift["threshold"]["text"] == "threshold 30%"
    assert [m["shape"] for m in drift["markers"]] == ["alert", "retrain"]
    metric = metric_chart(history)
    # Labelled days 0, 2, 3, 6: the line breaks at the days without labels (1, 4, 5): one segment (2-3).
    assert len(metric["dots"]) == 4 and len(metric["lines"]) == 1 and metric["lines"][0].count(",") == 2
    assert [d["color"] for d in metric["dots"]] == ["#175cd3", "#175cd3", "#b42318", "#175cd3"]
    assert metric["limit"]["text"] == "minimum 0.75"
    # Higher values are drawn higher (smaller y).
    ys = {d["title"][:10]: d["y"] for d in metric["dots"]}
    assert ys[str(day(0))] < ys[str(day(3))]


def test_the_page_is_self_contained_escaped_and_has_both_charts(week):
    history = build_history("p<b>roj", day(0), day(6), verdicts=week, alerts={day(3): ["<img src=x onerror=1>"]},
                            champions={day(0): '4"><script>x</script>'}, drift_share_threshold=0.3,
                            problems=["p<b>roj/monitoring/dt=2024-03-08/report.verdict.json could not be read"])
    page = render_history(history, report_href=lambda d: f"/mlops/reports/p/monitoring/dt={d}/report.html",
                          nav=[{"href": "/mlops/monitoring/p?days=14", "text": "14 days"}])

    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=1&gt;" in page
    assert "p&lt;b&gt;roj: monitoring history" in page and "4&#34;&gt;&lt;script&gt;" in page
    # Nothing loaded from elsewhere: no src attribute, no absolute URL, no stylesheet link.
    assert not re.search(r"<[a-z][^<>]*\ssrc=|https?://|<link", page)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(svgs) == 2
    for svg in svgs:  # each chart is well-formed SVG with a title per data point
        root = ET.fromstring(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))
        assert root.findall(".//{http://www.w3.org/2000/svg}title")
    assert "threshold 30%" in svgs[0] and "minimum 0.75" in svgs[1]
    links = re.findall(r'href="(/mlops/reports/[^"]+)"', page)
    assert links == [f"/mlops/reports/p/monitoring/dt={day(i)}/report.html" for i in (6, 5, 3, 2, 0)]  # newest first
    assert page.count("no monitoring report</td>") == 2 and page.count(">no labels<") == 1
    assert "amount, &lt;script&gt;alert(1)&lt;/script&gt;, c3 +1" in page
    assert "Latest verdict: <b>ok</b> on 2024-03-07" in page and "could not be read" in page


def test_a_window_without_labels_or_reports_says_so():
    history = build_history("proj", day(0), day(2), verdicts={day(1): verdict("drift", 0.5, drifted=("a",))})
    page = render_history(history)
    assert metric_chart(history) is None and "No day in this window had labels to measure ROC AUC on" in page
    assert ">report</a>" not in page and "<a " not in page  # no link without a report_href
    empty = render_history(build_history("proj", day(0), day(0), verdicts={}))
    assert "No monitoring report in this window." in empty and empty.count("<svg") == 1


def test_first_after_last_is_refused():
    with pytest.raises(ValueError, match="first day 2024-03-03 is after last day 2024-03-01"):
        build_history("proj", day(2), day(0), verdicts={})


def test_a_verdict_of_another_shape_is_named_and_the_day_shown_without_it(week):
    week[day(4)] = {"kind": "drift", "performance": ["not", "a", "dict"], "share_drifted": 0.9}
    week[day(5)] = {**week[day(5)], "performance": {"limits": "none"}}
    history = history_of(week, drift_share_threshold=0.3)
    assert history.days[4].kind is None and history.days[5].kind is None and history.days[6].kind == "ok"
    assert [p[:31] for p in history.problems] == ["the verdict of 2024-03-05 is no", "the verdict of 2024-03-06 is no"]
    assert "that day is shown without it" in render_history(history)
