"""The Airflow plugin of the provider: mounts the report view (:mod:`mlops_provider.web.app`) at ``/mlops``.

Registered through the ``airflow.plugins`` entry point of the package (``pyproject.toml``), so every
Airflow process that has the provider installed loads it; only the api-server serves it. Importing
this module is cheap (no FastAPI, no Airflow API modules): the app is built on its first request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from mlops_provider.timetables import DataIntervalTimetable

URL_PREFIX = "/mlops"


def _create_app() -> Any:
    from mlops_provider.web.app import create_app

    return create_app()


class LazyApp:
    """An ASGI app that builds the real app with ``factory`` on its first request."""

    def __init__(self, factory: Callable[[], Any] = _create_app):
        self.factory = factory
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = self.factory()
        await self._app(scope, receive, send)


class MlopsWebPlugin(AirflowPlugin):
    """Reports, GX Data Docs and the runbook over http(s), behind the Airflow UI's login; and the provider's
    timetable (:mod:`mlops_provider.timetables`), which every process that deserializes a DAG must know."""

    name = "mlops"
    timetables = [DataIntervalTimetable]
    fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "MLOps reports and runbook"}]
    external_views = [{"name": "On-call runbook", "href": f"{URL_PREFIX}/runbook", "destination": "nav",
                       "category": "docs"},
                      # A tab on every DAG's page: the monitoring history of its project (web/history.py).
                      {"name": "Monitoring history", "href": f"{URL_PREFIX}/monitoring/dag/{{DAG_ID}}",
                       "destination": "dag", "url_route": "mlops-monitoring-history"}]
