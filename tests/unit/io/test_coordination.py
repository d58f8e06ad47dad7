"""Coordination state of the embedded default (io/coordination.py ``LocalCoordination`` and io/email.py
``FileSentMarkers``) with real processes, and how the io layer chooses its coordination.

The PostgreSQL implementation is proven against a real server in tests/integration/test_coordination.py.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from mlops_provider.exceptions import MlopsError
from mlops_provider.io import coordination, email, model_store
from mlops_provider.io.coordination import LocalCoordination, PostgresCoordination
from mlops_provider.io.email import FileSentMarkers, OutboxTransport, deliver, key_digest

from tests.locking import hold_lock, intervals

FORK = multiprocessing.get_context("fork")


# -- locks ----------------------------------------------------------------------------------------
def _hold(directory, name, log_path, hold, ready=None):
    hold_lock(LocalCoordination(directory), name, log_path, hold, timeout=30, ready=ready)


def test_two_processes_racing_for_a_lock_run_one_after_the_other(tmp_path):
    log_path = tmp_path / "log"
    procs = [FORK.Process(target=_hold, args=(tmp_path / "state", "model m", log_path, 0.4)) for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    (s1, e1), (s2, e2) = intervals(log_path)
    assert e1 <= s2, f"the two blocks overlapped: {(s1, e1)} and {(s2, e2)}"
    assert (tmp_path / "state" / "locks" / "model_m.lock").exists()


def test_different_names_do_not_exclude_each_other(tmp_path):
    local = LocalCoordination(tmp_path)
    with local.lock("model a", timeout=1), local.lock("model b", timeout=1):
        pass


def test_a_held_lock_times_out_with_an_error_that_says_what_to_do(tmp_path):
    ready = FORK.Event()
    holder = FORK.Process(target=_hold, args=(tmp_path, "model m", tmp_path / "log", 5, ready))
    holder.start()
    try:
        assert ready.wait(10)
        began = time.monotonic()
        with pytest.raises(MlopsError, match=r"could not take the lock 'model m'.*within 0s.*retry the task"):
            with LocalCoordination(tmp_path).lock("model m", timeout=0.3):
                pass
        assert time.monotonic() - began < 3
    finally:
        holder.kill()
        holder.join(10)


def test_a_lock_held_by_a_killed_process_is_free_at_once(tmp_path):
    ready = FORK.Event()
    holder = FORK.Process(target=_hold, args=(tmp_path, "model m", tmp_path / "log", 60, ready))
    holder.start()
    assert ready.wait(10)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    with LocalCoordination(tmp_path).lock("model m", timeout=2):
        pass


def test_model_lock_takes_the_lock_of_the_coordination_it_is_given(tmp_path):
    local = LocalCoordination(tmp_path / "given")
    with model_store.model_lock("model_a", coordination=local):
        with pytest.raises(MlopsError, match="could not take the lock 'model model_a'"):
            with local.lock("model model_a", timeout=0.1):
                pass
    assert (tmp_path / "given" / "locks" / "model_model_a.lock").exists()


# -- sent markers and claims -----------------------------------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _race_claim(directory, key, start, results, done, slow_liveness):
    if slow_liveness:  # widen the window between "the owner is dead" and taking the claim over
        checked = email._owner_died

        def slow(owner):
            time.sleep(0.5)
            return checked(owner)

        email._owner_died = slow
    start.wait(10)
    results.put((os.getpid(), FileSentMarkers(directory).claim(key)))
    done.wait(20)  # stay alive: a live owner's claim is not stale


def _race(directory, key, slow_liveness=False) -> list[bool]:
    start, done, results = FORK.Event(), FORK.Event(), FORK.Queue()
    procs = [FORK.Process(target=_race_claim, args=(directory, key, start, results, done, slow_liveness))
             for _ in range(2)]
    for proc in procs:
        proc.start()
    start.set()
    try:
        return [results.get(timeout=20)[1] for _ in procs]
    finally:
        done.set()
        for proc in procs:
            proc.join(20)


def test_a_claim_of_a_dead_process_is_taken_over_by_exactly_one_of_two_racers(tmp_path):
    claim = tmp_path / f"{key_digest('k')}.sending"
    claim.write_text(f"{socket.gethostname()} {_dead_pid()} abc")
    # Both racers find the owner dead; before the fix the second one removed the first one's fresh claim.
    assert sorted(_race(tmp_path, "k", slow_liveness=True)) == [False, True]


def test_an_expired_claim_is_taken_over_by_exactly_one_of_two_racers(tmp_path):
    claim = tmp_path / f"{key_digest('k')}.sending"
    claim.write_text("another-host 1234 abc")  # a live process elsewhere, as far as this host can tell
    old = time.time() - email._CLAIM_STALE_SECONDS - 60
    os.utime(claim, (old, old))
    assert sorted(_race(tmp_path, "k")) == [False, True]


def test_a_fresh_claim_of_another_host_is_respected(tmp_path):
    (tmp_path / f"{key_digest('k')}.sending").write_text("another-host 1234 abc")
    assert FileSentMarkers(tmp_path).claim("k") is False


def test_a_sender_whose_claim_was_taken_over_does_not_release_the_new_owners_claim(tmp_path):
    hung, taker = FileSentMarkers(tmp_path), FileSentMarkers(tmp_path)
    assert hung.claim("k")
    claim = tmp_path / f"{key_digest('k')}.sending"
    old = time.time() - email._CLAIM_STALE_SECONDS - 60
    os.utime(claim, (old, old))  # the first sender hung
    assert taker.claim("k")
    owner = claim.read_text()
    hung.release("k")  # it wakes up and finishes
    assert claim.read_text() == owner, "the hung sender removed the claim it no longer owned"
    taker.release("k")
    assert not claim.exists()


# -- which coordination ---------------------------------------------------------------------------
def test_without_configuration_the_embedded_default_is_mlops_home(mlops_home, monkeypatch):
    monkeypatch.delenv(coordination.STATE_URL_ENV, raising=False)
    chosen = coordination.default()
    assert isinstance(chosen, LocalCoordination) and chosen.root == mlops_home.resolve()
    result = deliver(_message(), transport=OutboxTransport(mlops_home / "outbox"), dedup_key="d")
    assert result["marker"] == str(mlops_home.resolve() / "alerts" / "sent" / f"{key_digest('d')}.json")


def test_mlops_state_url_selects_postgresql_without_a_password_in_its_label(monkeypatch):
    monkeypatch.setenv(coordination.STATE_URL_ENV, "postgresql+psycopg2://mlops:pa55word@db.internal:6432/mlops_state")
    chosen = coordination.default()
    assert isinstance(chosen, PostgresCoordination)
    assert chosen.dsn == "postgresql://mlops:pa55word@db.internal:6432/mlops_state"
    assert "pa55word" not in chosen.description and "db.internal:6432/mlops_state" in chosen.description
    assert coordination.default() is chosen  # one instance per URL: the tables are checked once


def test_a_configured_block_wins_is_resolved_once_and_ends_with_the_block(tmp_path, mlops_home, monkeypatch):
    monkeypatch.delenv(coordination.STATE_URL_ENV, raising=False)
    calls = []

    def resolve():
        calls.append(1)
        return LocalCoordination(tmp_path / "configured")

    with coordination.configured(resolve):
        assert calls == []  # resolved on first use only (a task that takes no lock looks nothing up)
        first, second = coordination.default(), coordination.default()
        assert first is second and first.root == tmp_path / "configured" and calls == [1]
        result = deliver(_message(), transport=OutboxTransport(tmp_path / "outbox"), dedup_key="c")
        assert result["marker"].startswith(str(tmp_path / "configured" / "alerts" / "sent"))
        with model_store.model_lock("m", timeout=1):
            assert (tmp_path / "configured" / "locks" / "model_m.lock").exists()
    assert coordination.default().root == mlops_home.resolve()


def test_lock_keys_are_stable_signed_64_bit_integers():
    key = coordination.lock_key("model model_a")
    assert key == coordination.lock_key("model model_a") and -(2**63) <= key < 2**63
    assert key != coordination.lock_key("model model_b")
    # Stable across processes, hosts and releases (not Python's salted hash()): every worker must agree. Pinned.
    assert coordination.lock_key("model m") == 7728983597192922032


def _message():
    from mlops_provider.domain import alerts

    return alerts.build_message(subject="[MLOps] test", recipients=["oncall@example.com"], html_body="<p>x</p>",
                                text_body="x\n", headers={})
