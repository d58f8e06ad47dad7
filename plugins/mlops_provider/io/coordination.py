"""Coordination state every worker shares: per-name locks, and "sent once" markers with in-flight claims.

One interface (:class:`Coordination`: ``lock(name)`` and ``sent_markers()``), two implementations:

* :class:`PostgresCoordination`, for workers on several hosts (no shared disk). A lock is a PostgreSQL
  session-level advisory lock (``pg_try_advisory_lock`` on a key that is a stable 64-bit hash of the
  name) held by a database session for the block: PostgreSQL releases it when the session ends, so a
  worker killed with SIGKILL leaves no lock behind. Sent markers and in-flight claims are rows of
  ``mlops_sent_markers`` / ``mlops_send_claims`` (unique on the key's digest, ``INSERT ... ON CONFLICT
  DO NOTHING``). A claim's owner holds an advisory lock on its own token while it sends, so a claim
  whose session ended (a killed worker) is stale at once; a claim older than ``claim_stale_seconds``
  is stale too (a hung sender). Claim decisions for one key run under a transaction-scoped advisory
  lock, so a stale claim is taken over by exactly one of several racers. The tables are created on
  first use (idempotent; the role needs ``CREATE`` on its schema, or an admin creates them once).
* :class:`LocalCoordination` (the embedded default): ``fcntl`` locks under ``MLOPS_HOME/locks`` and
  marker files under ``MLOPS_HOME/alerts/sent`` (:class:`~mlops_provider.io.email.FileSentMarkers`).
  Correct for the processes of one host, and only for them.

:func:`default` is what every lock and marker uses unless given one: inside an Airflow task, the
coordination of the ``mlops_state_default`` connection (:mod:`mlops_provider.hooks.coordination`
resolves it and the operators' base makes it the default for the task, :func:`configured`); elsewhere
(scripts, benchmarks, the embedded runner without that connection) ``MLOPS_STATE_URL``
(``postgresql://user:password@host:5432/db``) selects PostgreSQL, and without it the local directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from mlops_provider.config import paths
from mlops_provider.exceptions import MlopsError

if TYPE_CHECKING:
    from mlops_provider.io.email import SentMarkers

log = logging.getLogger(__name__)

STATE_URL_ENV = "MLOPS_STATE_URL"
DEFAULT_LOCK_TIMEOUT = 300.0
# A claim older than this belongs to a sender that hung or died; a new attempt may take over.
CLAIM_STALE_SECONDS = 600

MARKERS_TABLE = "mlops_sent_markers"
CLAIMS_TABLE = "mlops_send_claims"


def lock_key(name: str) -> int:
    """The advisory-lock key of ``name``: a stable signed 64-bit integer (first 8 bytes of its SHA-256)."""
    return int.from_bytes(hashlib.sha256(f"mlops:{name}".encode()).digest()[:8], "big", signed=True)


def owner_token() -> str:
    """Who takes a claim: host, process id and a random part (unique per claim)."""
    return f"{socket.gethostname()} {os.getpid()} {uuid.uuid4().hex[:12]}"


class Coordination(Protocol):
    """Where locks and sent markers live; every worker of a deployment must use the same one."""

    @property
    def description(self) -> str:
        """Where the state lives, for logs and errors (no secrets)."""

    def lock(self, name: str, *, timeout: float = DEFAULT_LOCK_TIMEOUT) -> contextlib.AbstractContextManager[None]:
        """Exclusive lock on ``name`` for the block; :class:`MlopsError` (retryable) after ``timeout`` seconds."""

    def sent_markers(self) -> SentMarkers:
        """The "sent once" markers and in-flight claims (:class:`~mlops_provider.io.email.SentMarkers`)."""


# -- one host: a directory ----------------------------------------------------------------------
def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


class LocalCoordination:
    """Locks and markers in a local directory (default ``MLOPS_HOME``, resolved on each use).

    ``lock`` is an ``flock`` on ``<directory>/locks/<name>.lock`` (held per open file, so threads of one
    process exclude each other too). Processes on other hosts do not see it: use
    :class:`PostgresCoordination` when workers run on several hosts.
    """

    def __init__(self, directory: Path | None = None):
        self.directory = directory

    @property
    def root(self) -> Path:
        return self.directory or paths.mlops_home()

    @property
    def description(self) -> str:
        return f"local directory {self.root} (one host only)"

    def lock_path(self, name: str) -> Path:
        return self.root / "locks" / f"{_safe(name)}.lock"

    @contextmanager
    def lock(self, name: str, *, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[None]:
        path = self.lock_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise MlopsError(
                            f"could not take the lock {name!r} ({path}) within {timeout:.0f}s: another process of "
                            "this host holds it (a promotion or rollback still running?); retry the task once it "
                            "finished") from None
                    time.sleep(0.05)
            yield
        finally:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def sent_markers(self) -> SentMarkers:
        from mlops_provider.io.email import FileSentMarkers

        return FileSentMarkers(self.root / "alerts" / "sent")


# -- several hosts: PostgreSQL ------------------------------------------------------------------
def _driverless(url: str) -> str:
    """``postgresql+psycopg2://...`` (SQLAlchemy style) -> ``postgresql://...`` (libpq)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}" if sep else url


def safe_url(url: str) -> str:
    """``url`` without its password (for logs, errors and marker locations)."""
    parts = urlsplit(_driverless(url))
    if parts.password is None:
        return urlunsplit(parts._replace(query=""))
    netloc = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{netloc[1]}", query=""))


def _text(exc: BaseException) -> str:
    """A driver error on one line."""
    return " ".join(str(exc).split())


def _sqlstate(exc: BaseException) -> str | None:
    return getattr(exc, "pgcode", None) or getattr(exc, "sqlstate", None)


class PostgresCoordination:
    """Locks as PostgreSQL advisory locks and markers as rows, in the database of ``dsn``.

    ``dsn`` is a libpq URI or key/value string (``postgresql+psycopg2://`` is accepted too); ``params``
    are further libpq parameters (``sslmode``, ...) that win over the DSN's. ``label`` names the
    database in logs and errors (an Airflow connection id, say); by default the URL without password.
    Every lock and every in-flight claim holds its own database session for its duration (TCP keepalives
    on, so PostgreSQL notices a vanished host within about a minute and releases what it held). Session
    advisory locks need a real session: behind PgBouncer, connect in *session* pooling mode.
    """

    def __init__(self, dsn: str = "", *, label: str = "", claim_stale_seconds: float = CLAIM_STALE_SECONDS,
                 **params: Any):
        self.dsn = _driverless(dsn)
        self.params = params
        self.label = label or (safe_url(self.dsn) if "://" in self.dsn else "PostgreSQL")
        self.claim_stale_seconds = claim_stale_seconds
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    @property
    def description(self) -> str:
        return f"PostgreSQL {self.label}"

    def __repr__(self) -> str:
        return f"PostgresCoordination({self.label!r})"

    # -- sessions ---------------------------------------------------------------------------------
    def connect(self, purpose: str):
        """A new session (autocommit) named after ``purpose`` in ``pg_stat_activity.application_name``."""
        import psycopg2
        from psycopg2.extensions import parse_dsn

        params: dict[str, Any] = {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30,
                                  "keepalives_interval": 10, "keepalives_count": 3}
        params.update(parse_dsn(self.dsn) if self.dsn else {})
        params.update(self.params)
        params["application_name"] = f"mlops {purpose} @{socket.gethostname()}:{os.getpid()}"[:63]
        try:
            conn = psycopg2.connect(**params)
        except psycopg2.Error as exc:
            raise MlopsError(
                f"coordination database {self.label} is not reachable ({_text(exc)}); locks and alert "
                "markers live there: check that PostgreSQL is up and the connection's host, port, database "
                "and credentials") from exc
        conn.autocommit = True
        return conn

    def ensure_schema(self) -> None:
        """Create the marker and claim tables if missing (idempotent, safe when several workers race)."""
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            conn = self.connect("schema")
            try:
                with conn, conn.cursor() as cur:  # one transaction, serialised: CREATE IF NOT EXISTS can race
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("coordination schema"),))
                    cur.execute(f"""
                        CREATE TABLE IF NOT EXISTS {MARKERS_TABLE} (
                            key_digest text PRIMARY KEY,
                            dedup_key  text NOT NULL,
                            sent_at    timestamptz NOT NULL DEFAULT now(),
                            record     jsonb NOT NULL)""")
                    cur.execute(f"""
                        CREATE TABLE IF NOT EXISTS {CLAIMS_TABLE} (
                            key_digest text PRIMARY KEY,
                            dedup_key  text NOT NULL,
                            owner      text NOT NULL,
                            claimed_at timestamptz NOT NULL DEFAULT now())""")
            except Exception as exc:
                if _sqlstate(exc) == "42501":  # insufficient_privilege
                    raise MlopsError(
                        f"coordination database {self.label}: the role may not create the tables {MARKERS_TABLE} "
                        f"and {CLAIMS_TABLE} ({_text(exc)}); grant it CREATE on its schema, or have an "
                        "admin create them once (docs/production.md)") from exc
                raise
            finally:
                conn.close()
            self._schema_ready = True

    # -- locks ------------------------------------------------------------------------------------
    def holder(self, cur, key: int) -> str | None:
        """Who holds advisory lock ``key`` (application name, client address, since when), if anyone."""
        cur.execute(
            "SELECT a.application_name, a.client_addr, a.backend_start FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.objsubid = 1",
            ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF))
        row = cur.fetchone()
        if row is None:
            return None
        name, addr, since = row
        return f"session {name or '?'!r} from {addr or 'local socket'} (connected {since:%Y-%m-%d %H:%M:%S %Z})"

    @contextmanager
    def lock(self, name: str, *, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[None]:
        key = lock_key(name)
        conn = self.connect(f"lock {name}")
        try:
            with conn.cursor() as cur:
                self._acquire(cur, name, key, timeout)
            try:
                yield
            finally:
                self._release(conn, name, key)
        finally:
            conn.close()

    def _acquire(self, cur, name: str, key: int, timeout: float) -> None:
        began = time.monotonic()
        pause, announced = 0.05, False
        while True:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (key,))
            if cur.fetchone()[0]:
                waited = time.monotonic() - began
                log.info("lock %r taken: PostgreSQL advisory lock %d on %s%s", name, key, self.label,
                         f" (after waiting {waited:.1f}s)" if announced else "")
                return
            holder = None
            if not announced:
                holder = self.holder(cur, key)
                log.info("lock %r is held by %s; waiting up to %.0fs", name, holder or "another session", timeout)
                announced = True
            if time.monotonic() - began > timeout:
                holder = holder or self.holder(cur, key)
                raise MlopsError(
                    f"could not take the lock {name!r} within {timeout:.0f}s: PostgreSQL advisory lock {key} on "
                    f"{self.label} is held by {holder or 'another session'} (a promotion or rollback still "
                    "running?). Retry the task once it finished; a worker that died releases its locks when its "
                    f"database session ends (pg_locks / pg_stat_activity show the holder)")
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    def _release(self, conn, name: str, key: int) -> None:
        import psycopg2

        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (key,))
                released = cur.fetchone()[0]
        except psycopg2.Error as exc:
            released = False
            log.error("lock %r: the database session ended while it was held (%s); PostgreSQL released the lock "
                      "then, so the block may not have run alone", name, _text(exc))
        if released:
            log.info("lock %r released", name)
        else:
            log.error("lock %r was no longer held at the end of the block (session lost)", name)

    # -- markers ----------------------------------------------------------------------------------
    def sent_markers(self) -> PostgresSentMarkers:
        return PostgresSentMarkers(self)


class PostgresSentMarkers:
    """Sent markers and in-flight claims as rows (see :class:`PostgresCoordination`).

    ``claim`` keeps the claimer's session open until ``release``: its advisory lock on the claim's owner
    token tells other senders that it is alive. Use one instance per sending thread.
    """

    def __init__(self, coordination: PostgresCoordination):
        self.coordination = coordination
        self._held: dict[str, tuple[Any, str]] = {}

    def location(self, key: str) -> str:
        from mlops_provider.io.email import key_digest

        return f"{self.coordination.label} table {MARKERS_TABLE} key_digest={key_digest(key)}"

    def _run(self, purpose: str, sql: str, args: tuple) -> Any:
        self.coordination.ensure_schema()
        conn = self.coordination.connect(purpose)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchone() if cur.description else None
        finally:
            conn.close()

    def is_sent(self, key: str) -> bool:
        from mlops_provider.io.email import key_digest

        return self._run("sent check", f"SELECT 1 FROM {MARKERS_TABLE} WHERE key_digest = %s",
                         (key_digest(key),)) is not None

    def record(self, key: str, record: dict[str, Any]) -> None:
        from mlops_provider.io.email import key_digest

        self._run("sent marker", f"INSERT INTO {MARKERS_TABLE} (key_digest, dedup_key, record) "
                  "VALUES (%s, %s, %s::jsonb) ON CONFLICT (key_digest) DO NOTHING",
                  (key_digest(key), key, json.dumps(record, default=str)))

    def claim(self, key: str) -> bool:
        from mlops_provider.io.email import key_digest

        coordination = self.coordination
        coordination.ensure_schema()
        digest, token = key_digest(key), owner_token()
        conn = coordination.connect(f"claim {digest[:12]}")
        claimed = False
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(%s)", (lock_key(f"claim owner {token}"),))  # "I am alive"
                cur.execute("BEGIN")
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(f"claim {digest}"),))
                cur.execute(f"SELECT owner, claimed_at < now() - make_interval(secs => %s) FROM {CLAIMS_TABLE} "
                            "WHERE key_digest = %s", (float(coordination.claim_stale_seconds), digest))
                row = cur.fetchone()
                if row is None:
                    cur.execute(f"INSERT INTO {CLAIMS_TABLE} (key_digest, dedup_key, owner) VALUES (%s, %s, %s)",
                                (digest, key, token))
                    claimed = True
                else:
                    owner, expired = row
                    alive = not self._owner_gone(cur, owner)
                    if expired or not alive:
                        cur.execute(f"UPDATE {CLAIMS_TABLE} SET owner = %s, claimed_at = now() WHERE key_digest = %s",
                                    (token, digest))
                        claimed = True
                        log.warning("alert %r: took over the claim of %s (%s)", key, owner,
                                    "its database session ended" if not alive else
                                    f"older than {coordination.claim_stale_seconds:.0f}s")
                cur.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        if claimed:
            self._held[key] = (conn, token)
        else:
            conn.close()  # ends the session: its owner lock goes with it
        return claimed

    @staticmethod
    def _owner_gone(cur, owner: str) -> bool:
        """Whether the session of claim ``owner`` ended: nobody holds its owner lock any more."""
        key = lock_key(f"claim owner {owner}")
        cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (key,))  # released again at COMMIT
        return bool(cur.fetchone()[0])

    def release(self, key: str) -> None:
        from mlops_provider.io.email import key_digest

        held = self._held.pop(key, None)
        if held is None:
            return
        conn, token = held
        digest = key_digest(key)
        try:
            with conn.cursor() as cur:
                cur.execute("BEGIN")
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(f"claim {digest}"),))
                cur.execute(f"DELETE FROM {CLAIMS_TABLE} WHERE key_digest = %s AND owner = %s", (digest, token))
                cur.execute("COMMIT")
        except Exception as exc:  # the session is gone: its row is stale at once for the next sender
            log.warning("alert %r: could not delete the claim row (%s); the next sender takes it over",
                        key, _text(exc))
        finally:
            conn.close()


# -- selection ----------------------------------------------------------------------------------
_BY_URL: dict[str, PostgresCoordination] = {}
_BY_URL_LOCK = threading.Lock()
_CONFIGURED: list[Callable[[], Coordination]] = []  # innermost last; see configured()
_CONFIGURED_LOCK = threading.Lock()


def from_url(url: str, *, label: str = "") -> PostgresCoordination:
    """The PostgreSQL coordination of ``url`` (one instance per URL and label, so the schema check runs once)."""
    with _BY_URL_LOCK:
        key = f"{label}|{url}"
        if key not in _BY_URL:
            _BY_URL[key] = PostgresCoordination(url, label=label)
        return _BY_URL[key]


def from_env() -> Coordination:
    """``MLOPS_STATE_URL``'s PostgreSQL when set, else the local directory ``MLOPS_HOME`` (embedded default)."""
    if url := os.environ.get(STATE_URL_ENV):
        return from_url(url, label=f"{STATE_URL_ENV} ({safe_url(url)})")
    return LocalCoordination()


@contextmanager
def configured(resolve: Callable[[], Coordination]) -> Iterator[None]:
    """Make ``resolve()`` (called once, on first use) what :func:`default` returns for the block.

    The Airflow layer wraps every task of the provider in it with the coordination of its Airflow
    connection, so every lock and marker a task takes -- however deep in the stages -- lives in the
    same place as every other worker's.
    """
    resolved: list[Coordination] = []
    once = threading.Lock()

    def lazy() -> Coordination:
        with once:
            if not resolved:
                resolved.append(resolve())
                log.info("coordination state (locks, alert markers): %s", resolved[0].description)
            return resolved[0]

    with _CONFIGURED_LOCK:
        _CONFIGURED.append(lazy)
    try:
        yield
    finally:
        with _CONFIGURED_LOCK:
            _CONFIGURED.remove(lazy)


def default() -> Coordination:
    """The coordination of the innermost :func:`configured` block, else :func:`from_env`."""
    with _CONFIGURED_LOCK:
        current = _CONFIGURED[-1] if _CONFIGURED else None
    return current() if current is not None else from_env()
