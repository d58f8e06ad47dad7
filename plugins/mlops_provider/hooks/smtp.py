"""Alert email in the Airflow layer: an Airflow SMTP connection becomes plain delivery settings.

:mod:`mlops_provider.io.email` delivers with the standard library from :class:`~mlops_provider.io.email.SmtpSettings`;
this module reads those settings from an Airflow connection (the fields ``SmtpHook`` of the SMTP
provider reads: host, port, login, password, extra ``disable_ssl`` / ``disable_tls`` / ``timeout`` /
``from_email`` / ``retry_limit`` / ``ssl_context``), falls back to the outbox when the connection does
not exist, reads the sender address from Airflow's config and plugs Airflow's secrets masker into
the alert composition (:func:`mlops_provider.domain.alerts.set_masker`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_provider.domain import alerts
from mlops_provider.exceptions import MlopsError
from mlops_provider.io.email import OutboxTransport, SmtpSettings, SmtpTransport, deliver

if TYPE_CHECKING:
    from email.message import EmailMessage

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "smtp_default"


def smtp_settings(conn_id: str) -> SmtpSettings | None:
    """The delivery settings of Airflow connection ``conn_id``; None when the connection does not exist."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    extra = conn.extra_dejson
    from mlops_provider.hooks.masking import mask_connection_secrets

    mask_connection_secrets(extra, conn.host)  # Airflow masks the password field; not one inside a URI
    auth_type = extra.get("auth_type", "basic")
    if auth_type != "basic":
        raise MlopsError(f"SMTP connection '{conn_id}' asks for auth_type {auth_type!r}: alert email "
                         "supports login/password (basic) authentication only")
    return SmtpSettings(
        host=conn.host or "",
        port=conn.port or None,
        login=conn.login or None,
        password=conn.password or None,
        use_ssl=not bool(extra.get("disable_ssl", False)),
        starttls=not bool(extra.get("disable_tls", False)),
        timeout=int(extra.get("timeout", 30)),
        from_email=extra.get("from_email") or None,
        retry_limit=int(extra.get("retry_limit", 5)),
        verify_certificate=extra.get("ssl_context") != "none",
        name=conn_id,
    )


@dataclass(frozen=True)
class ConnectionTransport:
    """SMTP through Airflow connection ``conn_id`` when it exists, else the outbox (embedded default).

    The connection is looked up when a message is actually sent, after the dedup check.
    """

    conn_id: str = DEFAULT_CONN_ID
    outbox: OutboxTransport = OutboxTransport()

    def send(self, message: EmailMessage, *, key_digest: str) -> dict[str, Any]:
        settings = smtp_settings(self.conn_id)
        if settings is not None:
            return SmtpTransport(settings).send(message, key_digest=key_digest)
        result = self.outbox.send(message, key_digest=key_digest)
        log.warning("no Airflow connection %r: alert %r written to %s", self.conn_id, str(message["Subject"]),
                    result["path"])
        return result


def default_sender() -> str:
    """The From address of alert email: Airflow's ``[email] from_email``, else the platform default."""
    from airflow.configuration import conf

    return conf.get("email", "from_email", fallback=None) or alerts.DEFAULT_FROM


def use_airflow_secrets_masker() -> None:
    """Make alert composition mask every secret Airflow knows about (connections, variables)."""
    from airflow.sdk.log import redact

    alerts.set_masker(redact)


def send_alert(message: EmailMessage, *, smtp_conn_id: str, dedup_key: str,
               state_conn_id: str = "mlops_state_default") -> dict[str, Any]:
    """Deliver ``message`` once per ``dedup_key`` through connection ``smtp_conn_id`` (or the outbox).

    The sent markers live in the coordination state of ``state_conn_id`` (:mod:`mlops_provider.hooks.coordination`):
    a failure callback runs outside the task's own scope, and must dedup where every worker does.
    """
    from mlops_provider.hooks.coordination import CoordinationHook

    markers = CoordinationHook(state_conn_id).get_conn().sent_markers()
    return deliver(message, transport=ConnectionTransport(smtp_conn_id), dedup_key=dedup_key, markers=markers)
