"""Coordination state in a real PostgreSQL (io/coordination.py ``PostgresCoordination``), with real processes.

What workers on several hosts rely on: two processes racing for a lock run one after the other; a lock
held by a process killed with SIGKILL is released by PostgreSQL; two senders racing for one alert send
it once; a stale claim (its sender killed, or hung past the stale interval) is taken over by exactly one
of two racers. And the Airflow layer: the ``mlops_state_default`` connection selects this database.

A throwaway database (127.0.0.1:5432 unless devkit/services.py's variables say otherwise) is created for
the session and dropped after it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
import uuid

import pytest

from devkit import services
from tests.locking import hold_lock, intervals

pytestmark = pytest.mark.integration

FORK = multiprocessing.get_context("fork")
PG = {"host": services.pg_host(), "port": services.pg_port(), "user": services.pg_admin()}


def _admin(dbname: str = "postgres"):
    import psycopg2

    conn = psycopg2.connect(dbname=dbname, connect_timeout=5, **PG)
    conn.autocommit = True
    return conn


def _create_database() -> str:
    name = f"mlops_state_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = _admin()
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return name


def _drop_database(name: str) -> None:
    admin = _admin()
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def _url(dbname: str) -> str:
    return f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{dbname}"


@pytest.fixture(scope="session")
def state_db():
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        _admin().close()
    except psycopg2.OperationalError as exc:
        pytest.skip(f"no PostgreSQL on {PG['host']}:{PG['port']} (user {PG['user']}; start it, .ci/run does): {exc}")
    name = _create_database()
    try:
        yield name
    finally:
        _drop_database(name)


@pytest.fixture
def state_url(state_db) -> str:
    return _url(state_db)


def _coordination(url: str):
    from mlops_provider.io.coordination import PostgresCoordination

    return PostgresCoordination(url)


def _rows(state_db: str, sql: str, args: tuple = ()) -> list[tuple]:
    return services.pg_rows(sql, args, dbname=state_db, connect_timeout=5, **PG)


# -- locks ----------------------------------------------------------------------------------------
def _hold(url, name, log_path, hold, ready=None):
    hold_lock(_coordination(url), name, log_path, hold, timeout=60, ready=ready)


def test_two_processes_racing_for_a_lock_run_one_after_the_other(state_url, tmp_path):
    log_path = tmp_path / "log"
    procs = [FORK.Process(target=_hold, args=(state_url, "model race", log_path, 0.5)) for _ in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    spans = intervals(log_path)
    assert len(spans) == 3
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end <= start, f"two blocks overlapped: {spans}"


def test_a_lock_of_a_killed_process_is_released_by_postgresql(state_url, state_db, tmp_path):
    from mlops_provider.exceptions import MlopsError
    from mlops_provider.io.coordination import lock_key

    ready = FORK.Event()
    holder = FORK.Process(target=_hold, args=(state_url, "model killed", tmp_path / "log", 600, ready))
    holder.start()
    assert ready.wait(30)
    # Held: a second taker times out and the error names the holder's session and what to do.
    with pytest.raises(MlopsError, match=r"could not take the lock 'model killed' within 0s: PostgreSQL advisory lock "
                                         r".*held by session 'mlops lock model killed @.*Retry the task"):
        with _coordination(state_url).lock("model killed", timeout=0.5):
            pass
    key = lock_key("model killed")
    assert _rows(state_db, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                           "AND classid::bigint = %s AND objid::bigint = %s",
                 ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF)) == [(1,)]

    os.kill(holder.pid, signal.SIGKILL)  # the worker host is gone: no finally, no unlock
    holder.join(10)
    began = time.monotonic()
    with _coordination(state_url).lock("model killed", timeout=30):
        waited = time.monotonic() - began
    assert waited < 10, f"the killed holder's lock was released only after {waited:.1f}s"


def test_locks_of_different_models_do_not_exclude_each_other(state_url):
    coordination = _coordination(state_url)
    with coordination.lock("model a", timeout=1), coordination.lock("model b", timeout=1):
        pass


def test_an_unreachable_database_is_an_error_that_says_where_and_what_to_check():
    from mlops_provider.exceptions import MlopsError
    from mlops_provider.io.coordination import PostgresCoordination

    unreachable = PostgresCoordination("postgresql://mlops:pa55word@127.0.0.1:1/mlops_state")
    with pytest.raises(MlopsError, match=r"coordination database postgresql://mlops:\*\*\*@127.0.0.1:1/mlops_state "
                                         r"is not reachable.*check that PostgreSQL is up") as raised:
        with unreachable.lock("model x", timeout=1):
            pass
    assert "pa55word" not in str(raised.value)


# -- sent markers and claims -----------------------------------------------------------------------
class _SlowOutbox:
    """The outbox transport, slowed down so two concurrent senders overlap."""

    def __init__(self, directory):
        from mlops_provider.io.email import OutboxTransport

        self.outbox = OutboxTransport(directory)

    def send(self, message, *, key_digest):
        time.sleep(1.0)
        return self.outbox.send(message, key_digest=key_digest)


def _message(subject="[MLOps] coordination test"):
    from mlops_provider.domain import alerts

    return alerts.build_message(subject=subject, recipients=["oncall@example.com"], html_body="<p>x</p>",
                                text_body="x\n", headers={})


def _send(url, key, outbox, start, results):
    from mlops_provider.io.email import deliver

    start.wait(30)
    results.put(deliver(_message(), transport=_SlowOutbox(outbox), dedup_key=key,
                        markers=_coordination(url).sent_markers()))


def test_two_senders_racing_for_one_alert_send_it_once(state_url, state_db, tmp_path):
    key = f"race|{uuid.uuid4().hex}"
    start, results = FORK.Event(), FORK.Queue()
    procs = [FORK.Process(target=_send, args=(state_url, key, tmp_path / "outbox", start, results)) for _ in range(2)]
    for proc in procs:
        proc.start()
    start.set()
    outcomes = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(30)
    assert sorted(o["sent"] for o in outcomes) == [False, True], outcomes
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    markers = _rows(state_db, "SELECT dedup_key, record->>'subject' FROM mlops_sent_markers WHERE dedup_key = %s", (key,))
    assert markers == [(key, "[MLOps] coordination test")]
    assert _rows(state_db, "SELECT count(*) FROM mlops_send_claims WHERE dedup_key = %s", (key,)) == [(0,)]
    # A later try (a retried task) finds the marker and sends nothing.
    again = _send_now(state_url, key, tmp_path / "outbox")
    assert again["duplicate"] is True and len(list((tmp_path / "outbox").glob("*.eml"))) == 1


def _send_now(url, key, outbox):
    from mlops_provider.io.email import OutboxTransport, deliver

    return deliver(_message(), transport=OutboxTransport(outbox), dedup_key=key, markers=_coordination(url).sent_markers())


def _claim_and_hold(url, key, ready, hold):
    markers = _coordination(url).sent_markers()
    assert markers.claim(key)
    ready.set()
    time.sleep(hold)


def _race_claim(url, key, start, results, done):
    markers = _coordination(url).sent_markers()
    start.wait(30)
    results.put(markers.claim(key))
    done.wait(60)  # stay alive (and keep the claim) until both answered


def _race(url, key, while_alive=None) -> list[bool]:
    """Two processes claim ``key`` at once; ``while_alive()`` runs while they (and their claims) still live."""
    start, done, results = FORK.Event(), FORK.Event(), FORK.Queue()
    procs = [FORK.Process(target=_race_claim, args=(url, key, start, results, done)) for _ in range(2)]
    for proc in procs:
        proc.start()
    start.set()
    try:
        answers = [results.get(timeout=60) for _ in procs]
        if while_alive is not None:
            while_alive()
        return answers
    finally:
        done.set()
        for proc in procs:
            proc.join(30)


def _wait_sessions_gone(state_db: str, pid: int, timeout: float = 30) -> None:
    """Until PostgreSQL ended every session of process ``pid`` (named ``mlops ... @host:pid``)."""
    deadline = time.monotonic() + timeout
    while _rows(state_db, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s", (f"%:{pid}",)) != [(0,)]:
        assert time.monotonic() < deadline, f"PostgreSQL still has sessions of the killed process {pid}"
        time.sleep(0.1)


def test_a_claim_of_a_killed_sender_is_taken_over_by_exactly_one_of_two_racers(state_url, state_db):
    key = f"killed|{uuid.uuid4().hex}"
    ready = FORK.Event()
    sender = FORK.Process(target=_claim_and_hold, args=(state_url, key, ready, 600))
    sender.start()
    assert ready.wait(30)
    assert _coordination(state_url).sent_markers().claim(key) is False  # alive: its claim holds
    os.kill(sender.pid, signal.SIGKILL)  # killed mid-send: its claim row stays behind
    sender.join(10)
    (owner,), = _rows(state_db, "SELECT owner FROM mlops_send_claims WHERE dedup_key = %s", (key,))
    _wait_sessions_gone(state_db, sender.pid)

    assert sorted(_race(state_url, key)) == [False, True]
    (new_owner,), = _rows(state_db, "SELECT owner FROM mlops_send_claims WHERE dedup_key = %s", (key,))
    assert new_owner != owner


def test_a_claim_older_than_the_stale_interval_is_taken_over_by_exactly_one_of_two_racers(state_url, state_db):
    key = f"hung|{uuid.uuid4().hex}"
    ready = FORK.Event()
    hung = FORK.Process(target=_claim_and_hold, args=(state_url, key, ready, 600))  # alive, never finishes
    hung.start()
    try:
        assert ready.wait(30)
        admin = _admin(state_db)
        with admin.cursor() as cur:
            cur.execute("UPDATE mlops_send_claims SET claimed_at = now() - interval '2 hours' WHERE dedup_key = %s",
                        (key,))
        admin.close()
        third = []  # the new claim is fresh and its owner alive: a third sender stays out
        assert sorted(_race(state_url, key, lambda: third.append(_coordination(state_url).sent_markers().claim(key)))) \
            == [False, True]
        assert third == [False]
    finally:
        hung.kill()
        hung.join(10)


def test_a_released_claim_leaves_no_row_and_the_next_sender_claims_at_once(state_url, state_db):
    key = f"released|{uuid.uuid4().hex}"
    markers = _coordination(state_url).sent_markers()
    assert markers.claim(key)
    assert _rows(state_db, "SELECT count(*) FROM mlops_send_claims WHERE dedup_key = %s", (key,)) == [(1,)]
    markers.release(key)
    assert _rows(state_db, "SELECT count(*) FROM mlops_send_claims WHERE dedup_key = %s", (key,)) == [(0,)]
    other = _coordination(state_url).sent_markers()
    assert other.claim(key)
    other.release(key)


def _ensure(url, start, results):
    from mlops_provider.io.coordination import PostgresCoordination

    start.wait(30)
    try:
        PostgresCoordination(url).ensure_schema()
        results.put("ok")
    except Exception as exc:  # reported to the test
        results.put(repr(exc))


def test_workers_creating_the_tables_at_the_same_time_all_succeed():
    name = _create_database()
    try:
        start, results = FORK.Event(), FORK.Queue()
        procs = [FORK.Process(target=_ensure, args=(_url(name), start, results)) for _ in range(4)]
        for proc in procs:
            proc.start()
        start.set()
        assert [results.get(timeout=60) for _ in procs] == ["ok"] * 4
        for proc in procs:
            proc.join(30)
        tables = _rows(name, "SELECT tablename FROM pg_tables WHERE tablename LIKE 'mlops_%%' ORDER BY 1")
        assert tables == [("mlops_send_claims",), ("mlops_sent_markers",)]
    finally:
        _drop_database(name)


# -- the Airflow layer ----------------------------------------------------------------------------
@pytest.fixture
def state_connection(state_db, monkeypatch):
    """The Airflow connection ``mlops_state_default`` pointing at the session database (env-var JSON)."""
    monkeypatch.delenv("MLOPS_STATE_URL", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_STATE_DEFAULT", json.dumps({
        "conn_type": "postgres", "host": PG["host"], "port": PG["port"], "schema": state_db, "login": PG["user"],
        "extra": {"sslmode": "disable", "cursor": "dictcursor"}}))
    return state_db


def test_the_connection_selects_postgresql_for_everything_a_task_locks_or_marks(state_connection, tmp_path,
                                                                                mlops_home):
    from mlops_provider.hooks.coordination import CoordinationHook, task_scope
    from mlops_provider.hooks.smtp import send_alert
    from mlops_provider.io import coordination, model_store
    from mlops_provider.io.coordination import PostgresCoordination, lock_key

    hook = CoordinationHook()
    assert isinstance(hook.get_conn(), PostgresCoordination)
    assert hook.test_connection() == (True, f"Locks and alert markers in {hook.get_conn().description}")

    key = lock_key("model scoped")
    with task_scope():  # what every provider operator's execute runs in (operators/base.py)
        assert isinstance(coordination.default(), PostgresCoordination)
        with model_store.model_lock("scoped", timeout=5):
            held = _rows(state_connection, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                           "AND classid::bigint = %s AND objid::bigint = %s",
                         ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF))
        assert held == [(1,)]
    assert isinstance(coordination.default(), coordination.LocalCoordination)

    # A failure callback runs outside the task's scope: send_alert dedups in the same database.
    dedup = f"failure|{uuid.uuid4().hex}"
    first = send_alert(_message("[MLOps] failure"), smtp_conn_id="smtp_absent", dedup_key=dedup)
    second = send_alert(_message("[MLOps] failure"), smtp_conn_id="smtp_absent", dedup_key=dedup)
    assert first["sent"] is True and second["duplicate"] is True
    assert _rows(state_connection, "SELECT count(*) FROM mlops_sent_markers WHERE dedup_key = %s", (dedup,)) == [(1,)]
    assert not (mlops_home / "locks").exists() and not (mlops_home / "alerts").exists()


def test_without_the_connection_the_embedded_default_stays_local(monkeypatch, mlops_home):
    from mlops_provider.hooks.coordination import CoordinationHook
    from mlops_provider.io.coordination import LocalCoordination

    monkeypatch.delenv("AIRFLOW_CONN_MLOPS_STATE_DEFAULT", raising=False)
    monkeypatch.delenv("MLOPS_STATE_URL", raising=False)
    chosen = CoordinationHook().get_conn()
    assert isinstance(chosen, LocalCoordination) and chosen.root == mlops_home.resolve()


def test_every_provider_operator_runs_with_the_coordination_of_the_connection(state_connection, mlops_home):
    from mlops_provider.io import coordination
    from mlops_provider.operators.base import MlopsBaseOperator

    class Probe(MlopsBaseOperator):
        def execute(self, context):
            with coordination.default().lock("probe", timeout=5):
                return coordination.default().description

    described = Probe(task_id="probe").execute({})
    assert described.startswith(f"PostgreSQL connection 'mlops_state_default' ({PG['user']}@{PG['host']}:"), described
    assert isinstance(coordination.default(), coordination.LocalCoordination)  # only for the task
    assert not (mlops_home / "locks").exists()


# -- promotions racing from two "workers" -----------------------------------------------------------
MODEL = "race_model"
SPAWN = multiprocessing.get_context("spawn")  # a fresh interpreter each, as a task on another worker


def _registry(tmp_path) -> str:
    """A real MLflow registry (SQLite) with versions 1-3 of MODEL and v1 champion; its tracking URI."""
    from mlops_provider.io import model_store

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = model_store.client_for(uri, uri)
    client.create_registered_model(MODEL)
    for _ in range(3):
        client.create_model_version(MODEL, f"file://{tmp_path}/model", tags={"project": "race"})
    client.set_registered_model_alias(MODEL, "champion", "1")
    return uri


def _promote_racer(uri, state_url, version, start, results, hold_inside_lock):
    from mlops_provider.io import model_store
    from mlops_provider.io.coordination import PostgresCoordination

    read = model_store.model_version

    def slow_read(*args, **kwargs):  # a promotion is slow between reading the aliases and moving them
        time.sleep(hold_inside_lock)
        return read(*args, **kwargs)

    model_store.model_version = slow_read
    client = model_store.client_for(uri, uri)
    start.wait(60)
    try:
        result = model_store.promote(client, MODEL, version, reason=f"race {version}", expected_champion="1",
                                     coordination=PostgresCoordination(state_url))
        results.put((version, {k: result.get(k) for k in ("promoted", "stale")}))
    except Exception as exc:  # reported to the test
        results.put((version, repr(exc)))


def test_two_workers_promoting_at_once_end_with_exactly_one_champion(state_url, tmp_path):
    uri = _registry(tmp_path)
    start, results = SPAWN.Event(), SPAWN.Queue()
    procs = [SPAWN.Process(target=_promote_racer, args=(uri, state_url, v, start, results, 1.0)) for v in ("2", "3")]
    for proc in procs:
        proc.start()
    time.sleep(3)  # both interpreters up (imports) before the start signal
    start.set()
    outcome = dict(results.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(60)
    # Both decided against champion v1; the lock makes the second re-read the aliases and find v1 replaced.
    assert sorted(map(str, outcome.values())) == sorted(map(str, [{"promoted": True, "stale": None},
                                                                {"promoted": False, "stale": True}])), outcome
    winner = next(v for v, r in outcome.items() if r["promoted"])
    from mlops_provider.io import model_store

    final = model_store.aliases(model_store.client_for(uri, uri), MODEL)
    assert (final["champion"], final["previous_champion"]) == (winner, "1"), final
