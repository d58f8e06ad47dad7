"""Where workers coordinate (per-model locks, alert sent markers): an Airflow ``postgres`` connection.

:class:`CoordinationHook` maps the connection ``mlops_state_default`` (host, port, schema = database,
login, password; extra: libpq parameters such as ``sslmode``) to
:class:`~mlops_provider.io.coordination.PostgresCoordination`. Without the connection it falls back to
``MLOPS_STATE_URL`` and then to the local directory ``MLOPS_HOME`` (the embedded default, one host only),
like the lake and MLflow hooks. :func:`task_scope` makes the result the default of the io layer for a
task, so every lock and marker the task takes, however deep, lives there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

if TYPE_CHECKING:
    from mlops_provider.io.coordination import Coordination

log = logging.getLogger(__name__)

_INSTANCES: dict[tuple, Any] = {}
_INSTANCES_LOCK = threading.Lock()

# Connection extras passed to libpq (anything else in the extra, e.g. the postgres provider's "cursor", is not).
LIBPQ_EXTRAS = frozenset({
    "sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl", "sslpassword", "sslcompression", "gssencmode",
    "connect_timeout", "options", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
    "tcp_user_timeout", "target_session_attrs", "channel_binding", "requirepeer", "krbsrvname", "service",
    "passfile",
})


class CoordinationHook(BaseHook):
    """The coordination state of connection ``state_conn_id`` (a ``postgres`` connection), or the fallback."""

    conn_name_attr = "state_conn_id"
    default_conn_name = "mlops_state_default"
    conn_type = "postgres"
    hook_name = "MLOps coordination state (PostgreSQL)"

    def __init__(self, state_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state_conn_id = state_conn_id
        self._coordination: Coordination | None = None

    def get_conn(self) -> Coordination:
        """PostgreSQL of the connection; without it ``MLOPS_STATE_URL``, else the local ``MLOPS_HOME``."""
        if self._coordination is not None:
            return self._coordination
        from mlops_provider.io import coordination

        try:
            conn = self.get_connection(self.state_conn_id)
        except AirflowNotFoundException:
            self._coordination = coordination.from_env()
            log.info("no connection '%s': coordination state in %s", self.state_conn_id,
                     self._coordination.description)
            return self._coordination
        if not conn.host:
            raise ValueError(f"connection '{self.state_conn_id}' has no host: set the PostgreSQL host (and the "
                             "database in 'schema') of the coordination database")
        extra = conn.extra_dejson or {}
        params = {"host": conn.host, "port": conn.port or 5432, "dbname": conn.schema or None, "user": conn.login or None,
                  "password": conn.password or None, **{k: v for k, v in extra.items() if k in LIBPQ_EXTRAS}}
        params = {k: v for k, v in params.items() if v is not None}
        label = f"connection '{self.state_conn_id}' ({conn.login or ''}@{conn.host}:{params['port']}/{conn.schema or ''})"
        key = (label, tuple(sorted((k, str(v)) for k, v in params.items())))
        with _INSTANCES_LOCK:  # one instance per connection settings: its tables are checked once per process
            if key not in _INSTANCES:
                _INSTANCES[key] = coordination.PostgresCoordination(label=label, **params)
            self._coordination = _INSTANCES[key]
        return self._coordination

    def test_connection(self) -> tuple[bool, str]:
        coordination = self.get_conn()
        try:
            with coordination.lock("connection test", timeout=10):
                pass
        except Exception as exc:  # the UI shows the message; any failure means "not usable"
            from mlops_provider.domain.alerts import redact

            return False, f"{coordination.description}: {redact(exc)}"
        return True, f"Locks and alert markers in {coordination.description}"


@contextmanager
def task_scope(state_conn_id: str = CoordinationHook.default_conn_name) -> Iterator[None]:
    """The connection's coordination as the io layer's default for the block (resolved on first use)."""
    from mlops_provider.io import coordination

    with coordination.configured(CoordinationHook(state_conn_id).get_conn):
        yield
