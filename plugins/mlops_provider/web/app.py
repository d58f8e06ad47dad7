"""A FastAPI app that serves reports and GX Data Docs from the report store, and the runbook, behind Airflow's auth.

Mounted by :class:`mlops_provider.web.plugin.MlopsWebPlugin` at ``/mlops`` of Airflow's api-server
(the web UI's server), so links and emails point at one http(s) address any browser with an Airflow
login can open, whichever worker wrote the object:

``GET /mlops/reports/<project>/<path>``
    streams the object ``<project>/<path>`` of the report store (the ``mlops_lake`` connection's
    ``reports_uri``: local or S3) with its Content-Type (:func:`mlops_provider.io.lake.content_type`).
    Only objects under the project's own prefix: a path with ``..``, ``.`` or empty segments, a
    backslash or a hidden (``.tmp-*``) name is refused. The caller needs read access to the project's
    DAGs (``<project>__monitor``) in Airflow's auth manager.
``GET /mlops/docs/<name>.md`` (``/mlops/runbook``: the on-call runbook)
    renders a page of the checkout's ``docs/`` (headings get GitHub's anchors, raw HTML is escaped);
    any logged-in user.

Requests without a valid Airflow session (the UI's cookie) or bearer token get 401/403: the app uses
Airflow's own ``get_user`` dependency and auth manager.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser

    from mlops_provider.io.lake import Lake

log = logging.getLogger(__name__)

URL_PREFIX = "/mlops"
_PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
_DOC = re.compile(r"[a-z0-9][a-z0-9_-]{0,60}\.md")
_CHUNK = 1 << 20
#: Every response: never sniff a type (a JSON object served as HTML), keep pages out of shared caches.
_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=60"}


def default_reports() -> Lake:
    """The report store of the ``mlops_lake_default`` connection (the embedded default without it)."""
    from mlops_provider.hooks.lake import LakeHook

    return LakeHook().get_reports()


def object_path(project: str, path: str) -> str:
    """``<project>/<path>`` in the report store, or HTTPException 404 for anything outside the project's prefix."""
    if not _PROJECT.fullmatch(project or ""):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no project named {project!r}")
    parts = (path or "").split("/")
    if (not path or "\\" in path or "\x00" in path
            or any(part in ("", ".", "..") or part.startswith(".") for part in parts)):
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"{path!r} is not a report path of project {project!r} "
                            "(paths stay under the project's prefix: no '..', '.', empty or hidden segments)")
    return f"{project}/{path}"


def can_read_project(project: str, user: BaseUser) -> None:
    """403 unless ``user`` may read the DAGs of ``project`` (its reports are theirs)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    dag_id = f"{project}__monitor"
    if not get_auth_manager().is_authorized_dag(method="GET", details=DagDetails(id=dag_id), user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"reading the reports of {project!r} needs read access "
                                                      f"to DAG {dag_id!r}")


def _slug(text: str, seen: dict[str, int]) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens; repeats get -1, -2..."""
    slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
    count = seen.get(slug, 0)
    seen[slug] = count + 1
    return f"{slug}-{count}" if count else slug


def render_markdown(text: str, title: str) -> str:
    """A standalone HTML page of Markdown ``text`` (raw HTML in it escaped, headings with GitHub anchors)."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(text)
    seen: dict[str, int] = {}
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            token.attrSet("id", _slug(tokens[i + 1].content, seen))
    body = md.renderer.render(tokens, md.options, {})
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>body{{max-width:860px;margin:0 auto;padding:16px;font-family:Arial,Helvetica,sans-serif;line-height:1.5;
color:#1d2939}}code,pre{{background:#f2f4f7;border-radius:4px}}pre{{padding:8px;overflow-x:auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #d0d5dd;padding:4px 8px}}</style></head>
<body>{body}</body></html>
"""


def create_app(*, reports: Callable[[], Lake] = default_reports, docs_dir: Path | None = None) -> FastAPI:
    """The app: ``reports`` opens the report store per request, ``docs_dir`` holds the Markdown pages."""
    from mlops_provider.config import paths

    app = FastAPI(title="MLOps reports", description=__doc__, docs_url=None, redoc_url=None, openapi_url=None)

    def reader(project: str, user: GetUserDep) -> None:
        can_read_project(project, user)

    @app.get("/reports/{project}/{path:path}", dependencies=[Depends(reader)])
    def report(project: str, path: str) -> StreamingResponse:
        import pyarrow.fs as pafs

        from mlops_provider.io.lake import content_type

        relative = object_path(project, path)
        store = reports()
        full = f"{store.root}/{relative}"
        info = store.fs.get_file_info(full)
        if info.type != pafs.FileType.File:
            raise HTTPException(status.HTTP_404_NOT_FOUND,
                                f"no report {relative!r} in the report store {store.uri(store.root)}")
        stream = store.fs.open_input_stream(full)

        def chunks() -> Iterator[bytes]:
            with stream:
                while chunk := stream.read(_CHUNK):
                    yield chunk

        log.info("serving %s (%s bytes)", store.uri(full), info.size)
        headers = {**_HEADERS, **({"Content-Length": str(info.size)} if info.size is not None else {})}
        return StreamingResponse(chunks(), media_type=content_type(relative), headers=headers)

    @app.get("/docs/{name}", response_class=HTMLResponse)
    def doc(name: str, user: GetUserDep) -> HTMLResponse:
        if not _DOC.fullmatch(name):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no document {name!r} (names look like runbook.md)")
        page = (docs_dir or paths.repo_root() / "docs") / name
        if not page.is_file():
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no document {name!r} in {page.parent}")
        return HTMLResponse(render_markdown(page.read_text(encoding="utf-8"), name), headers=_HEADERS)

    @app.get("/runbook")
    def runbook(user: GetUserDep) -> RedirectResponse:
        return RedirectResponse(f"{URL_PREFIX}/docs/runbook.md")

    from mlops_provider.web.history import register as register_history  # GET /monitoring/<project>

    register_history(app, reports)
    return app
