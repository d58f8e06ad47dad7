"""Airflow hook for an MLflow tracking server and model registry (or the embedded SQLite default)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from mlops_provider.config import paths
from mlops_provider.hooks.masking import mask_connection_secrets, safe_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

_CREDENTIAL_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


class MlflowHook(BaseHook):
    """Resolve an ``mlflow`` connection to tracking/registry URIs, credentials and UI links.

    Connection fields: ``host`` is the tracking server (``http://mlflow:5000`` or a bare host name, then
    ``schema`` is the protocol, default ``http``, and ``port`` is appended); ``login``/``password`` are
    MLflow basic-auth credentials; ``extra`` may hold ``registry_uri``, ``artifact_location`` and
    ``tracking_uri`` (a full URI such as ``postgresql://...`` that wins over host/port). Without the
    connection the embedded default is used: SQLite and artifacts under ``MLOPS_HOME/mlflow``.
    A password inside any of these URIs is registered with Airflow's secrets masker and never logged.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id

    # -- configuration ----------------------------------------------------------------------------
    @cached_property
    def settings(self) -> dict[str, Any]:
        """Tracking/registry URIs, artifact location and credentials of the connection (or the default)."""
        try:
            conn = self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            log.info("no connection '%s': using the embedded MLflow store %s", self.mlflow_conn_id,
                     paths.mlflow_tracking_uri())
            tracking = paths.mlflow_tracking_uri()
            return {
                "tracking_uri": tracking,
                "registry_uri": tracking,
                "artifact_location_root": paths.mlflow_artifact_root(),
                "username": None,
                "password": None,
                "embedded": True,
            }
        extra = conn.extra_dejson or {}
        mask_connection_secrets(extra, conn.host)
        tracking = extra.get("tracking_uri") or self._uri_from_fields(conn.host, conn.port, conn.schema)
        if not tracking:
            raise ValueError(f"connection '{self.mlflow_conn_id}' has neither a host nor extra.tracking_uri")
        log.info("connection '%s': MLflow tracking %s, registry %s", self.mlflow_conn_id, safe_uri(tracking),
                 safe_uri(extra.get("registry_uri") or tracking))
        return {
            "tracking_uri": tracking,
            "registry_uri": extra.get("registry_uri") or tracking,
            "artifact_location_root": extra.get("artifact_location"),
            "username": conn.login or None,
            "password": conn.password or None,
            "embedded": False,
        }

    @staticmethod
    def _uri_from_fields(host: str | None, port: int | None, schema: str | None) -> str | None:
        if not host:
            return None
        host = host.rstrip("/")
        if "://" in host:
            scheme, rest = host.split("://", 1)
            netloc, slash, path = rest.partition("/")
            if port and ":" not in netloc and scheme in {"http", "https"}:
                netloc = f"{netloc}:{port}"
            return f"{scheme}://{netloc}{slash}{path}"
        scheme = schema or "http"
        return f"{scheme}://{host}{f':{port}' if port else ''}"

    @property
    def tracking_uri(self) -> str:
        return self.settings["tracking_uri"]

    @property
    def registry_uri(self) -> str:
        return self.settings["registry_uri"]

    def artifact_location(self, experiment_name: str) -> str | None:
        """Where experiment ``experiment_name`` stores artifacts (``None``: let the server decide)."""
        root = self.settings["artifact_location_root"]
        if root:
            return f"{root.rstrip('/')}/{experiment_name}"
        from mlops_provider.io import model_store  # not at module level: DAG files import this hook to parse

        return model_store.default_artifact_location(self.tracking_uri, experiment_name)

    # -- use --------------------------------------------------------------------------------------
    @contextmanager
    def environment(self) -> Iterator[None]:
        """Credentials (and URIs) in this process's environment for the block only, then restored.

        MLflow reads ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` on every request, so calls made with
        the client must happen inside this block when the connection has a login.
        """
        from mlops_provider.config.environment import patched_environ
        from mlops_provider.io import model_store

        # A variable the connection does not set keeps whatever the worker's environment holds.
        wanted = dict(zip(_CREDENTIAL_ENV, (self.settings["username"], self.settings["password"]), strict=True))
        with patched_environ({k: v for k, v in wanted.items() if v is not None}), \
                model_store.tracking(self.tracking_uri, self.registry_uri):
            yield

    def get_conn(self) -> MlflowClient:
        """An ``MlflowClient`` bound to this connection's tracking and registry URIs."""
        from mlops_provider.io import model_store

        return model_store.client_for(self.tracking_uri, self.registry_uri)

    def ensure_experiment(self, name: str) -> str:
        """The id of experiment ``name``, created with this connection's artifact location if missing."""
        from mlops_provider.io import model_store

        with self.environment():
            return model_store.ensure_experiment(self.get_conn(), name, self.artifact_location(name))

    # -- links ------------------------------------------------------------------------------------
    def _ui_base(self) -> str | None:
        if ui := os.environ.get("MLOPS_MLFLOW_UI_URL"):
            return ui.rstrip("/")
        if self.tracking_uri.startswith(("http://", "https://")):
            return self.tracking_uri.rstrip("/")
        return None

    def run_url(self, run_id: str) -> str:
        """A link to the run: the MLflow UI when there is one, else the run's artifact directory."""
        with self.environment():
            run = self.get_conn().get_run(run_id)
        if base := self._ui_base():
            return f"{base}/#/experiments/{run.info.experiment_id}/runs/{run_id}"
        return run.info.artifact_uri

    def model_version_url(self, name: str, version: str | int) -> str:
        """A link to a model version: the MLflow UI when there is one, else where its files are stored."""
        if base := self._ui_base():
            return f"{base}/#/models/{quote(name)}/versions/{version}"
        with self.environment():
            return self.get_conn().get_model_version_download_uri(name, str(version))

    # -- Airflow UI -------------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        try:
            with self.environment():
                self.get_conn().search_experiments(max_results=1)
        except Exception as exc:  # the UI shows the message; any failure means "not usable"
            from mlops_provider.domain.alerts import redact

            return False, f"MLflow at {safe_uri(self.tracking_uri)} is not reachable: {redact(exc)}"
        return True, f"Connected to MLflow at {safe_uri(self.tracking_uri)}"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": [],
            "relabeling": {
                "host": "Tracking server (URL or host)",
                "schema": "Protocol (http/https, used with a bare host)",
                "login": "Username (MLflow basic auth)",
                "password": "Password (MLflow basic auth)",
            },
            "placeholders": {
                "host": "http://mlflow:5000",
                "schema": "http",
                "port": "5000",
                "extra": '{"registry_uri": "postgresql://...", "artifact_location": "s3://bucket/mlflow"}',
            },
        }
