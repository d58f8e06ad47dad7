"""What every generated DAG shares: asset names, default args, failure alerts, and which day a run processes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset

if TYPE_CHECKING:

    from mlops_provider.config.project import ProjectConfig

PROMOTION_POOL = "mlops_promotion"


@dataclass(frozen=True)
class ProjectAssets:
    """The Airflow Assets through which one project's stages trigger each other."""

    validated: Asset
    features: Asset
    model: Asset
    predictions: Asset
    drift: Asset


def assets(project: ProjectConfig) -> ProjectAssets:
    def asset(stage: str) -> Asset:
        # An "x-" scheme is not normalised: any other scheme makes Airflow load every provider's asset URI
        # handlers (the amazon provider's imports boto3), which cost each DAG file ~0.4 s to parse.
        return Asset(name=f"{project.name}.{stage}", uri=f"x-mlops://{project.name}/{stage}", group="mlops")

    return ProjectAssets(asset("validated"), asset("features"), asset("model"), asset("predictions"), asset("drift"))


def day_param(description: str = "") -> Any:
    """The optional ``day`` param every stage DAG takes (typed: a date or empty)."""
    from airflow.sdk import Param

    return Param(None, type=["null", "string"], format="date", description=description or DAY_PARAM_DESCRIPTION)


def default_args(project: ProjectConfig) -> dict[str, Any]:
    from mlops_provider.notifiers.oncall import OnCallEmailNotifier

    runs = project.runs
    return {
        "owner": project.owner,
        "retries": int(runs["retries"]),
        "retry_delay": dt.timedelta(minutes=float(runs["retry_delay_minutes"])),
        "retry_exponential_backoff": True,
        "execution_timeout": dt.timedelta(minutes=float(runs["execution_timeout_minutes"])),
        "on_failure_callback": [OnCallEmailNotifier(project=project.name)],
    }


def dag_kwargs(project: ProjectConfig, stage: str, doc: str | None, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments of ``DAG(...)`` for ``stage`` of ``project`` (dag_id ``<project>__<stage>``)."""
    from mlops_provider.notifiers.oncall import OnCallEmailNotifier

    kwargs: dict[str, Any] = {
        "dag_id": project.dag_id(stage),
        "description": f"{project.name}: {stage} ({project.description})",
        "doc_md": (doc or "") + f"\n\n**Project:** `{project.name}`, config `{project.path.name}`.",
        "start_date": dt.datetime.fromisoformat(project.start_date).replace(tzinfo=dt.UTC),
        "catchup": False,
        "tags": ["mlops", project.name, stage, *project.tags],
        "default_args": default_args(project),
        "max_active_runs": 1,
        "dagrun_timeout": dt.timedelta(minutes=float(project.runs["dagrun_timeout_minutes"])),
        # The "DAG RUN FAILED" email (docs/runbook.md#task-failure): sent only when no task of the run sent a
        # final failure email (it shares their run key, notifiers/oncall.run_key): a run past dagrun_timeout.
        "on_failure_callback": [OnCallEmailNotifier(project=project.name)],
        "user_defined_macros": dict(MACROS),
    }
    kwargs.update(overrides)
    return kwargs


def _event_days(triggering_asset_events: Any) -> list[str]:
    """Every day named by the triggering asset events (``extra["days"]`` or ``extra["day"]``), sorted, unique."""
    found: set[str] = set()
    for events in (triggering_asset_events or {}).values():
        for event in events:
            extra = event.extra or {}
            found.update(str(d)[:10] for d in extra.get("days") or [])
            if extra.get("day"):
                found.add(str(extra["day"])[:10])
    return sorted(found)


def day_to_process(params: Any, triggering_asset_events: Any = None, logical_date: Any = None,
                   run_after: Any = None, lag_days: int = 0) -> str:
    """Template macro: the day a run works on (``params.day``, else the latest triggering asset event, else the run date).

    ``lag_days`` moves the run-date fallback back: a nightly run shortly after midnight works on the
    day that just ended (``lag_days=1``).
    """
    if params and params.get("day"):
        return str(params["day"])[:10]
    found = _event_days(triggering_asset_events)
    if found:
        return found[-1]
    when = logical_date or run_after
    if when is None:
        raise ValueError("cannot tell which day to process: pass the 'day' param (YYYY-MM-DD)")
    return (when.date() - dt.timedelta(days=lag_days)).isoformat()


def interval_day(params: Any, logical_date: Any = None, run_after: Any = None) -> str:
    """Template macro: the day an ingest run extracts (``params.day``, else its logical date's day, else the
    last complete day before ``run_after``, for a run triggered without a logical date).

    A scheduled run's logical date is the start of its data interval. A manual run with a logical date
    gets the interval *ending* there, so ``data_interval_start`` would ingest the day before: not used.
    """
    if logical_date is not None:
        return day_to_process(params, None, logical_date)
    return day_to_process(params, None, None, run_after, lag_days=1)


def days_to_process(params: Any, triggering_asset_events: Any = None, logical_date: Any = None,
                    run_after: Any = None) -> str:
    """Template macro: the comma-separated days an asset-triggered run works on, oldest first.

    When upstream runs finish faster than a downstream DAG (a backfill, a paused DAG), Airflow merges
    their queued asset events into one run: that run must process every day they name, not only the
    latest, or the other days would silently never get features, scores or reports.
    """
    if params and params.get("day"):
        return str(params["day"])[:10]
    found = _event_days(triggering_asset_events)
    if found:
        return ",".join(found)
    return day_to_process(params, None, logical_date, run_after)


def split_days(value: str) -> list[str]:
    """The days of a rendered :data:`DAYS_TEMPLATE` (``"2024-01-02,2024-01-03"``), oldest first."""
    days = sorted({d.strip()[:10] for d in str(value).split(",") if d.strip()})
    if not days:
        raise ValueError(f"no day to process in {value!r}: pass the 'day' param (YYYY-MM-DD)")
    return days


MACROS = {"day_to_process": day_to_process, "days_to_process": days_to_process, "interval_day": interval_day}
# A run without a logical date has none in its context: the ``is defined`` test keeps StrictUndefined quiet.
INTERVAL_DAY_TEMPLATE = ("{{ interval_day(params, logical_date if logical_date is defined else None, "
                         "dag_run.run_after) }}")
DAYS_TEMPLATE = "{{ days_to_process(params, triggering_asset_events, logical_date, dag_run.run_after) }}"
PREVIOUS_DAY_TEMPLATE = "{{ day_to_process(params, triggering_asset_events, logical_date, dag_run.run_after, 1) }}"
DAY_PARAM_DESCRIPTION = "Day to process (YYYY-MM-DD); empty = the days of the triggering asset events"
