"""The monitoring history page of the report view: ``GET /mlops/monitoring/<project>?days=60``.

Reads, from the report store, what the stages left per day (listed with ``Lake.list_files``, read with
``read_bytes``, a few objects at a time):

- ``<project>/monitoring/dt=<day>/report.verdict.json``: the monitor stage's verdict (``domain/drift.py``);
- ``<project>/alerts/dt=<day>/<kind>.json``: an alert that was sent (its thread record, ``stages/alerting.py``);
- ``<project>/retrain_requests/<day>.json``: a retrain requested (``stages/retrain.py``);
- ``<project>/shadow/dt=<day>.json``: the day's scoring summary, whose ``champion_version`` scored it
  (``stages/score.py``);

and renders them with :func:`mlops_provider.domain.history.render_history` for the ``days`` days up to
the newest day on record (or ``until``), not before the first day on record. The drift-share threshold and the charted metric come from the
project config (``include/projects/<project>.yaml``) when the api-server has it, else from the verdicts.
Same auth as the reports: read access to the project's DAGs.

``GET /mlops/monitoring/dag/<dag_id>`` redirects to the page of the DAG's project (``<project>__<stage>``):
the "Monitoring history" tab every DAG gets in the Airflow UI (``web/plugin.py``, an external view with
destination ``dag``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Annotated, Any

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, HTTPException, Query, status
from fastapi.responses import HTMLResponse, RedirectResponse

from mlops_provider.web.app import _HEADERS, URL_PREFIX, can_read_project, object_path

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI

    from mlops_provider.config.project import ProjectConfig
    from mlops_provider.io.lake import Lake

log = logging.getLogger(__name__)

DEFAULT_DAYS = 60
MAX_DAYS = 366
#: Objects read at once (S3 GETs in flight per request).
READERS = 8
_DAY = r"(?P<day>\d{4}-\d{2}-\d{2})"
_VERDICT = re.compile(rf"monitoring/dt={_DAY}/report\.verdict\.json")
_ALERT = re.compile(rf"alerts/dt={_DAY}/(?P<kind>[^/]+)\.json")
_RETRAIN = re.compile(rf"retrain_requests/{_DAY}\.json")
_SHADOW = re.compile(rf"shadow/dt={_DAY}\.json")


def page_url(project: str) -> str:
    """Where the monitoring history of ``project`` is served (relative to the api-server)."""
    return f"{URL_PREFIX}/monitoring/{project}"


def _listed(store: Lake, project: str, folder: str, pattern: re.Pattern[str]) -> dict[str, re.Match[str]]:
    """Path -> match of the files under ``<project>/<folder>`` whose path below the project fits ``pattern``."""
    out = {}
    for path in store.list_files(f"{project}/{folder}"):
        match = pattern.fullmatch(path[len(project) + 1:])
        if match:
            out[path] = match
    return out


def _day(match: re.Match[str]) -> dt.date | None:
    try:
        return dt.date.fromisoformat(match["day"])
    except ValueError:
        return None


def _project_config(project: str) -> ProjectConfig | None:
    """The project's config if the api-server has its YAML (the thresholds and metric to chart)."""
    from mlops_provider.config.project import load_project
    from mlops_provider.exceptions import ProjectConfigError

    try:
        return load_project(project)
    except ProjectConfigError as exc:
        log.info("monitoring history of %s: no project config (%s); using the verdicts' thresholds", project, exc)
        return None


def load_history(store: Lake, project: str, *, days: int = DEFAULT_DAYS, until: dt.date | None = None,
                 config: ProjectConfig | None = None) -> Any:
    """The :class:`~mlops_provider.domain.history.History` of ``project`` over ``days`` days up to ``until``
    (default: the newest day with a verdict, alert, retrain request or scoring summary; today if none), from
    the first day on record at the earliest."""
    from mlops_provider.domain.history import build_history

    found = {
        "verdict": _listed(store, project, "monitoring", _VERDICT),
        "alert": _listed(store, project, "alerts", _ALERT),
        "retrain": _listed(store, project, "retrain_requests", _RETRAIN),
        "shadow": _listed(store, project, "shadow", _SHADOW),
    }
    dated = {kind: {path: (d, m) for path, m in paths.items() if (d := _day(m))} for kind, paths in found.items()}
    on_record = [d for paths in dated.values() for d, _ in paths.values()]
    last = until or (max(on_record) if on_record else dt.datetime.now(dt.UTC).date())
    # Not before the first day on record: a young project's page is its days, not weeks of "no report".
    first = max(last - dt.timedelta(days=days - 1), min([d for d in on_record if d <= last], default=last))
    wanted = {kind: {p: dm for p, dm in paths.items() if first <= dm[0] <= last} for kind, paths in dated.items()}
    to_read = [p for kind in ("verdict", "retrain", "shadow") for p in wanted[kind]]
    problems: list[str] = []

    def read(path: str) -> Any:
        try:
            return json.loads(store.read_bytes(path))
        except (OSError, ValueError) as exc:
            log.warning("monitoring history of %s: cannot read %s: %s", project, store.uri(f"{store.root}/{path}"), exc)
            problems.append(f"{path} could not be read ({type(exc).__name__}); that day is shown without it")
            return None

    with ThreadPoolExecutor(max_workers=READERS) as pool:
        content = dict(zip(to_read, pool.map(read, to_read), strict=True))
    verdicts = {d: content[p] for p, (d, _) in wanted["verdict"].items() if isinstance(content[p], dict)}
    retrains = {d: str(content[p].get("kind") or "requested") if isinstance(content[p], dict) else "requested"
                for p, (d, _) in wanted["retrain"].items()}
    champions = {d: str(content[p]["champion_version"]) for p, (d, _) in wanted["shadow"].items()
                 if isinstance(content[p], dict) and content[p].get("champion_version") is not None}
    alerts: dict[dt.date, list[str]] = {}
    for d, match in wanted["alert"].values():
        alerts.setdefault(d, []).append(match["kind"])
    log.info("monitoring history of %s, %s to %s: %d verdicts, %d alert days, %d retrain requests read from %s",
             project, first, last, len(verdicts), len(alerts), len(retrains), store.uri(store.root))
    settings: dict[str, Any] = {}
    if config is not None:
        settings = {"drift_share_threshold": float(config.monitoring["drift_share_threshold"]),
                    "task": config.task, "primary_metric": config.promotion.get("primary_metric")}
    return build_history(project, first, last, verdicts=verdicts, alerts=alerts, retrains=retrains,
                         champions=champions, problems=problems, **settings)


def register(app: FastAPI, reports: Callable[[], Lake],
             config: Callable[[str], ProjectConfig | None] = _project_config) -> None:
    """Add the monitoring history routes to the report view ``app`` (``reports`` opens the report store)."""
    from mlops_provider.domain.history import render_history, report_path

    def reader(project: str, user: GetUserDep) -> None:
        can_read_project(project, user)

    @app.get("/monitoring/dag/{dag_id}")
    def by_dag(dag_id: str, user: GetUserDep) -> RedirectResponse:
        project, sep, _stage = dag_id.rpartition("__")
        if not sep or not project:
            raise HTTPException(status.HTTP_404_NOT_FOUND,
                                f"DAG {dag_id!r} is not a project DAG (<project>__<stage>): "
                                "its monitoring history is at /mlops/monitoring/<project>")
        object_path(project, "monitoring")  # 404 for a name that is no project name
        return RedirectResponse(page_url(project))

    @app.get("/monitoring/{project}", response_class=HTMLResponse, dependencies=[Depends(reader)])
    def monitoring(project: str,
                   days: Annotated[int, Query(ge=1, le=MAX_DAYS, description="days shown")] = DEFAULT_DAYS,
                   until: Annotated[dt.date | None, Query(description="the last day shown, YYYY-MM-DD")] = None,
                   ) -> HTMLResponse:
        object_path(project, "monitoring")
        project_config = config(project)
        history = load_history(reports(), project, days=days, until=until, config=project_config)
        if project_config is None and not any(d.monitored or d.alerts or d.retrain or d.champion_version
                                              for d in history.days):
            raise HTTPException(status.HTTP_404_NOT_FOUND,
                                f"no monitoring history of {project!r}: no project config and nothing in the report "
                                f"store under {project}/ (the monitor DAG {project}__monitor writes it)")
        nav = [{"href": f"{page_url(project)}?days={n}", "text": f"{n} days"} for n in (14, 60, 180) if n != days]
        page = render_history(history, nav=nav,
                              report_href=lambda day: f"{URL_PREFIX}/reports/{report_path(project, day)}")
        return HTMLResponse(page, headers=_HEADERS)
