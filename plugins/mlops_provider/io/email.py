"""Alert delivery, once per event: an outbox directory (the embedded default) or an SMTP server.

One entry point, :func:`deliver`, takes a composed :class:`~email.message.EmailMessage`, a
:class:`Transport` and a dedup key. Two transports exist: :class:`OutboxTransport` writes ``.eml`` files,
:class:`SmtpTransport` speaks SMTP with the standard library from plain :class:`SmtpSettings` (the
Airflow layer maps an Airflow connection to them, ``mlops_provider.hooks.smtp``). "Sent once" is kept
by a :class:`SentMarkers` store, which the caller chooses through :mod:`mlops_provider.io.coordination`:
rows in PostgreSQL when workers run on several hosts, :class:`FileSentMarkers` (files under
``MLOPS_HOME/alerts/sent``) for the embedded default.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import smtplib
import socket
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from email.utils import getaddresses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mlops_provider.config import paths
from mlops_provider.config.failpoints import hit
from mlops_provider.domain.alerts import clean_header, redact
from mlops_provider.exceptions import MlopsError

if TYPE_CHECKING:
    from email.message import EmailMessage

log = logging.getLogger(__name__)

# A claim older than this belongs to a sender that died; a new attempt may take over.
_CLAIM_STALE_SECONDS = 600


def _owner() -> str:
    """Who takes a claim: ``host pid token`` (the token tells two claims of one process apart)."""
    from mlops_provider.io.coordination import owner_token

    return owner_token()


def _owner_died(owner: str) -> bool:
    """Whether a claim's owner (``host pid [token]``) was a process of this host that no longer runs (a killed worker).

    Such a claim is stale at once: Airflow retries a killed task a minute later, well within
    ``_CLAIM_STALE_SECONDS``, and the retry must send the alert the dead try never sent.
    """
    host, pid = (owner.split() + ["", ""])[:2]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def key_digest(dedup_key: str) -> str:
    """The file-name-safe identity of a dedup key (sha256 hex)."""
    return hashlib.sha256(dedup_key.encode("utf-8")).hexdigest()


def atomic_write(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)  # rename(2): readers see the old file or the whole new one
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# -- "send once" --------------------------------------------------------------------------------
class SentMarkers(Protocol):
    """Where delivered events are recorded, and the in-flight claim that keeps two senders apart."""

    def location(self, key: str) -> str:
        """Where the sent marker of ``key`` lives (reported to callers)."""

    def is_sent(self, key: str) -> bool: ...

    def claim(self, key: str) -> bool:
        """Take the in-flight claim for ``key``; False when another live sender holds it."""

    def release(self, key: str) -> None: ...

    def record(self, key: str, record: dict[str, Any]) -> None:
        """Mark ``key`` as sent, durably, with ``record`` (JSON-able) as the details."""


class FileSentMarkers:
    """Sent markers ``<sha256 of key>.json`` and claims ``<sha256 of key>.sending`` in one directory.

    The embedded default (``MLOPS_HOME/alerts/sent``, see :class:`~mlops_provider.io.coordination.LocalCoordination`):
    correct for the processes of one host. Every claim decision (take a free claim, take over a stale
    one) runs under an ``flock`` on the directory, so of two processes that find the same
    stale claim exactly one takes it over; a claim is released only by its owner.
    """

    def __init__(self, directory: Path | None = None):
        self.directory = directory or paths.mlops_home() / "alerts" / "sent"
        self._tokens: dict[str, str] = {}

    def _marker(self, key: str) -> Path:
        return self.directory / f"{key_digest(key)}.json"

    def _claim(self, key: str) -> Path:
        return self.directory / f"{key_digest(key)}.sending"

    @contextlib.contextmanager
    def _claims_locked(self):
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory, os.O_RDONLY)  # flock on the directory itself: no lock file among the markers
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor drops the flock

    def location(self, key: str) -> str:
        return str(self._marker(key))

    def is_sent(self, key: str) -> bool:
        return self._marker(key).exists()

    def claim(self, key: str) -> bool:
        path, token = self._claim(key), _owner()
        with self._claims_locked():
            try:
                age = time.time() - path.stat().st_mtime
                owner = path.read_text()
            except FileNotFoundError:
                owner = None
            if owner is not None:
                if age < _CLAIM_STALE_SECONDS and not _owner_died(owner):
                    return False
                log.warning("alert %r: took over the claim of %s (%s)", key, owner.strip() or "?",
                            "its process died" if age < _CLAIM_STALE_SECONDS else f"older than {_CLAIM_STALE_SECONDS}s")
            atomic_write(path, token.encode())  # who holds the claim: a retry on this host can tell that it died
        self._tokens[key] = token
        return True

    def release(self, key: str) -> None:
        token = self._tokens.pop(key, None)
        path = self._claim(key)
        with self._claims_locked():
            try:
                if token is not None and path.read_text() != token:
                    return  # taken over by another sender meanwhile: it is theirs to release
                path.unlink()
            except FileNotFoundError:
                pass

    def record(self, key: str, record: dict[str, Any]) -> None:
        atomic_write(self._marker(key), json.dumps(record, indent=2).encode("utf-8"))


# -- transports ---------------------------------------------------------------------------------
class Transport(Protocol):
    """Delivers one message; returns a JSON-able result with ``sent`` and ``via``; raises when it did not."""

    def send(self, message: EmailMessage, *, key_digest: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class OutboxTransport:
    """Writes each message as ``<UTC timestamp>-<key digest[:12]>.eml`` into ``directory``
    (default ``MLOPS_HOME/outbox``, resolved when sending)."""

    directory: Path | None = None

    def send(self, message: EmailMessage, *, key_digest: str) -> dict[str, Any]:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        path = (self.directory or paths.outbox_dir()) / f"{stamp}-{key_digest[:12]}.eml"
        atomic_write(path, message.as_bytes())
        log.info("alert %r written to %s", str(message["Subject"]), path)
        return {"sent": True, "via": "outbox", "path": str(path)}


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach an SMTP server. ``name`` labels it in results and errors (e.g. a connection id).

    ``use_ssl`` opens an implicit-TLS connection (SMTPS); otherwise ``starttls`` upgrades a plain one.
    ``from_email``, when set, replaces the message's From. A connect that the server drops is retried
    ``retry_limit`` times.
    """

    host: str
    port: int | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    use_ssl: bool = True
    starttls: bool = True
    timeout: float = 30
    from_email: str | None = None
    retry_limit: int = 5
    verify_certificate: bool = True
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or f"{self.host}:{self.port or ''}"


def _recipients(message: EmailMessage) -> list[str]:
    fields = [v for h in ("To", "Cc", "Bcc") for v in message.get_all(h, [])]
    return [addr for _, addr in getaddresses(fields) if addr]


def _connect(settings: SmtpSettings) -> smtplib.SMTP:
    """A connected, authenticated client (the caller closes it)."""
    context = ssl.create_default_context() if settings.verify_certificate else None
    kwargs: dict[str, Any] = {"timeout": settings.timeout}
    if settings.port:
        kwargs["port"] = settings.port
    for attempt in range(settings.retry_limit + 1):
        try:
            if settings.use_ssl:
                client: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, context=context, **kwargs)
            else:
                client = smtplib.SMTP(settings.host, **kwargs)
            break
        except smtplib.SMTPServerDisconnected:
            if attempt == settings.retry_limit:
                raise
    try:
        if settings.starttls and not settings.use_ssl:
            client.starttls(context=context)
            client.ehlo()
        if settings.login and settings.password:
            client.login(settings.login, settings.password)
    except BaseException:
        client.close()
        raise
    return client


@dataclass(frozen=True)
class SmtpTransport:
    """Sends through the SMTP server of ``settings`` (standard library :mod:`smtplib`)."""

    settings: SmtpSettings

    def send(self, message: EmailMessage, *, key_digest: str) -> dict[str, Any]:
        settings = self.settings
        recipients = _recipients(message)
        if settings.from_email:
            del message["From"]
            message["From"] = settings.from_email
        envelope_from = getaddresses([str(message["From"])])[0][1] or None
        del message["Bcc"]
        try:
            client = _connect(settings)
            try:
                client.send_message(message, from_addr=envelope_from, to_addrs=recipients)
            finally:
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    client.quit()  # a failed goodbye after a delivered message is no delivery failure
                client.close()
        except Exception as exc:
            raise MlopsError(
                f"alert {str(message['Subject'])!r} was not delivered through SMTP connection "
                f"'{settings.label}': {redact(exc)}; no sent marker was written, so a retry sends it"
            ) from exc
        log.info("sent alert %r to %s via connection %s", str(message["Subject"]), ", ".join(recipients),
                 settings.label)
        return {"sent": True, "via": "smtp", "to": recipients, "conn_id": settings.name}


# -- entry point --------------------------------------------------------------------------------
def deliver(message: EmailMessage, *, transport: Transport, dedup_key: str,
            markers: SentMarkers | None = None) -> dict[str, Any]:
    """Deliver ``message`` through ``transport`` once per ``dedup_key``.

    The sent marker (``markers``; default: those of :func:`mlops_provider.io.coordination.default`) is
    written after delivery; a retried or rerun task finds it and sends nothing. Delivery is at-least-once:
    a crash between delivery and marker means one duplicate on retry, never a lost alert. A claim keeps
    two concurrent senders of one key from both sending. A failed delivery raises and writes no marker, so a retry sends.
    """
    if markers is None:
        from mlops_provider.io import coordination

        markers = coordination.default().sent_markers()
    marker = markers.location(dedup_key)
    if markers.is_sent(dedup_key):
        log.info("alert %r already sent (%s): not sending again", dedup_key, marker)
        return {"sent": False, "duplicate": True, "marker": marker}
    if not markers.claim(dedup_key):
        log.info("alert %r is being sent by another process: not sending", dedup_key)
        return {"sent": False, "duplicate": True, "in_flight": True, "marker": marker}
    try:
        if markers.is_sent(dedup_key):  # sent between the first check and the claim
            return {"sent": False, "duplicate": True, "marker": marker}
        del message["X-MLOps-Dedup-Key"]
        message["X-MLOps-Dedup-Key"] = clean_header(dedup_key)
        # SMTP has no idempotency: a try killed after delivery, before its marker, is sent again by the retry
        # (at least once). Its Message-ID comes from the key, so every copy is one message to mail clients.
        from email.utils import parseaddr

        del message["Message-ID"]
        domain = parseaddr(str(message["From"] or ""))[1].rpartition("@")[2] or "mlops.local"
        message["Message-ID"] = f"<{key_digest(dedup_key)[:40]}@{domain}>"
        hit("email.send")  # claimed, not sent
        result = transport.send(message, key_digest=key_digest(dedup_key))
        hit("email.record")  # sent, no marker yet
        markers.record(dedup_key, {"key": dedup_key, "sent_at": dt.datetime.now(dt.UTC).isoformat(),
                                   "subject": str(message["Subject"]), "message_id": str(message["Message-ID"]),
                                   **result})
        return {**result, "marker": marker}
    finally:
        markers.release(dedup_key)
