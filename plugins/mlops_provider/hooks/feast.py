"""Hook that turns an Airflow ``feast`` connection into a project's feature store (registry, lake, online store)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from feast import FeatureStore

    from mlops_provider.config.project import ProjectConfig
    from mlops_provider.io.feature_store import ProjectFeatureStore
    from mlops_provider.io.lake import Lake

log = logging.getLogger(__name__)


class FeastHook(BaseHook):
    """Feast feature store of one project, configured by an Airflow connection.

    Connection extra (all optional; a missing connection means the embedded defaults under
    ``MLOPS_HOME/feast/<project>/``): ``{"online_store": {"type": "redis", "connection_string":
    "127.0.0.1:6379,db=0"}}``; ``registry`` and ``offline_store`` objects may be given the same way.
    :meth:`get_conn` returns Feast's ``FeatureStore``; :meth:`feature_store` the project's
    :class:`~mlops_provider.io.feature_store.ProjectFeatureStore` (apply, materialize, freshness, retrieval).
    """

    conn_name_attr = "feast_conn_id"
    default_conn_name = "feast_default"
    conn_type = "feast"
    hook_name = "Feast"

    def __init__(self, project: ProjectConfig | str, feast_conn_id: str = default_conn_name,
                 lake: Lake | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(project, str):
            from mlops_provider.config.project import load_project

            project = load_project(project)
        self.project = project
        self.feast_conn_id = feast_conn_id
        self._lake = lake
        self._feature_store: ProjectFeatureStore | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["host", "schema", "login", "password", "port"],
            "relabeling": {},
            "placeholders": {"extra": '{"online_store": {"type": "redis", '
                                      '"connection_string": "127.0.0.1:6379,db=0"}}'},
        }

    def settings(self) -> dict[str, Any]:
        """The connection's extra (registry / offline / online store overrides); ``{}`` without a connection."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        from mlops_provider.hooks.masking import mask_connection_secrets, safe_uri
        from mlops_provider.io.feature_store import store_dir

        try:
            extra = self.get_connection(self.feast_conn_id).extra_dejson
        except AirflowNotFoundException:
            log.info("no Airflow connection '%s': embedded Feast stores under %s", self.feast_conn_id,
                     store_dir(self.project.name))
            return {}
        # A SQL registry's path or a Redis connection string may carry a password: masked in every log.
        mask_connection_secrets(extra)
        registry = extra.get("registry")
        path = registry.get("path") if isinstance(registry, dict) else registry
        log.info("connection '%s': Feast registry %s", self.feast_conn_id, safe_uri(path) if path else "embedded")
        return extra

    def feature_store(self) -> ProjectFeatureStore:
        """The project's feature store as this connection configures it (built once per hook)."""
        if self._feature_store is None:
            from mlops_provider.io.feature_store import ProjectFeatureStore

            self._feature_store = ProjectFeatureStore(self.project, lake=self._lake, settings=self.settings())
        return self._feature_store

    def get_conn(self) -> FeatureStore:
        """Feast's ``FeatureStore`` of the project."""
        return self.feature_store().store

    def test_connection(self) -> tuple[bool, str]:
        try:
            features = self.feature_store()
            views = [fv.name for fv in features.store.list_feature_views()]
            if views:
                # One read proves the online store answers (an unknown key just comes back empty).
                features.get_online_features([{e.key: "__connection_test__" for e in self.project.feature_spec.entities}])
            return True, f"Feast project '{self.project.name}': {len(views)} feature views, online store " \
                         f"{features.online_store_type}"
        except Exception as exc:
            from mlops_provider.domain.alerts import redact

            return False, f"{type(exc).__name__}: {redact(exc)}"
