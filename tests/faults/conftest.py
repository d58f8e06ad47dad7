"""Fault injection: kill a task or cut a service at a stage's critical point, rerun, check the invariants.

Each case runs one task of a stage in a child process (``tests/faults/driver.py``) under a private copy
of one small pipeline (``world``: three ingested days of the fraud project, their features in Feast on
SQLite, a champion v1 and a challenger v2 in MLflow on SQLite, a drift verdict of the last day). The
fault is a failpoint (``mlops_provider.config.failpoints``: SIGKILL, an injected error, or a pause while
the test cuts a real service); then the same task runs again without it -- Airflow's retry or an
on-call's rerun -- and the invariants are checked against the real stores.

Every checked invariant is a row of the table printed at the end of the session (fault, stage,
invariant, held) with the count held / tried; each case also asserts its invariants.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.faults import support

REPO = Path(__file__).resolve().parents[2]
MODEL = "fraud_classifier"
START = dt.date(2024, 2, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(3)]
NEW_DAY = DAYS[-1] + dt.timedelta(days=1)  # landed in the world, not ingested: the ingest cases' day
ROWS = 600
TASK_TIMEOUT = 120

RESULTS = support.RESULTS
Case = support.Case


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not RESULTS:
        return
    tr = terminalreporter
    widths = [max(len(r[i]) for r in [("fault", "stage", "invariant"), *[r[:3] for r in RESULTS]]) for i in range(3)]
    tr.section("fault injection: invariants after a fault and a rerun")
    tr.write_line(f"{'fault':<{widths[0]}}  {'stage':<{widths[1]}}  {'invariant':<{widths[2]}}  held")
    for fault, stage, invariant, held in RESULTS:
        tr.write_line(f"{fault:<{widths[0]}}  {stage:<{widths[1]}}  {invariant:<{widths[2]}}  {'yes' if held else 'NO'}")
    tr.write_line(f"held {sum(r[3] for r in RESULTS)} / tried {len(RESULTS)}")


@dataclass
class Try:
    returncode: int
    result: dict[str, Any] | None
    output: str

    @property
    def killed(self) -> bool:
        return self.returncode == -9


@dataclass
class Home:
    """A private copy of the world: ``run`` starts a task try in a child process under it."""

    path: Path
    env: dict[str, str]

    def child_env(self, failpoints: str | None, extra: dict[str, str] | None) -> dict[str, str]:
        env = {**os.environ, **self.env, "MLOPS_HOME": str(self.path), "MLOPS_FAILPOINTS_DIR": str(self.path / "fp")}
        env.pop("MLOPS_FAILPOINTS", None)
        if failpoints:
            env["MLOPS_FAILPOINTS"] = failpoints
        return {**env, **(extra or {})}

    def start(self, op: str, args: dict[str, Any], *, failpoints: str | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        (self.path / "fp").mkdir(exist_ok=True)
        return subprocess.Popen([sys.executable, "-m", "tests.faults.driver", op, json.dumps(args, default=str)],
                                cwd=REPO, env=self.child_env(failpoints, env), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    @staticmethod
    def finish(proc: subprocess.Popen) -> Try:
        output, _ = proc.communicate(timeout=TASK_TIMEOUT)
        last = output.strip().rsplit("\n", 1)[-1] if output.strip() else ""
        result = None
        if proc.returncode == 0:
            result = json.loads(last)
        return Try(proc.returncode, result, output[-3000:])

    def run(self, op: str, args: dict[str, Any], **kwargs: Any) -> Try:
        return self.finish(self.start(op, args, **kwargs))

    def wait_reached(self, name: str, proc: subprocess.Popen, timeout: float = 60) -> None:
        marker = self.path / "fp" / f"{name}.reached"
        deadline = time.monotonic() + timeout
        while not marker.exists():
            if proc.poll() is not None:
                raise AssertionError(f"the task ended before failpoint {name}: {self.finish(proc).output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"failpoint {name} not reached within {timeout}s")
            time.sleep(0.05)

    def resume(self, name: str) -> None:
        (self.path / "fp" / f"{name}.resume").touch()


@dataclass(frozen=True)
class World:
    home: Path
    champion: str
    challenger: str
    summary: Path  # a drift verdict of the last day, as monitoring hands it on (JSON)


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    from mlops_provider.config import paths
    from mlops_provider.config.project import load_project
    from mlops_provider.domain.features import feature_timestamp
    from mlops_provider.io import model_store
    from mlops_provider.io.feature_store import ProjectFeatureStore
    from mlops_provider.io.lake import Lake
    from mlops_provider.io.sources import LandingSource
    from mlops_provider.stages.features import compute_entity_features, compute_record_features
    from mlops_provider.stages.ingest import gate_day, stage_day

    from devkit.datagen.landing import write_landing_day

    home = tmp_path_factory.mktemp("faults") / "world"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        project = load_project("fraud")
        lake, reports = Lake(), Lake(paths.reports_uri())
        landing = paths.landing_dir() / "fraud"
        for day in [*DAYS, NEW_DAY]:
            write_landing_day(project, landing, day, rows=ROWS, scenario="clean")
        for day in DAYS:
            stage_day(project, lake, LandingSource(landing), day, run_id=f"world__{day}")
            gate_day(project, lake, reports, day, run_id=f"world__{day}")
            compute_entity_features(project, lake, day)
            compute_record_features(project, lake, day)
        store = ProjectFeatureStore(project, lake=lake)
        store.apply()
        store.materialize(feature_timestamp(DAYS[0]), feature_timestamp(DAYS[-1]), chunk_days=1)
        # The registry: alias moves never look inside a model, so two versions with a placeholder artifact do.
        client = model_store.client_for(paths.mlflow_tracking_uri())
        client.create_registered_model(MODEL)
        first, second = (client.create_model_version(MODEL, (home / "model").as_uri()) for _ in range(2))
        model_store.promote(client, MODEL, first.version, reason="fault tests")
        client.set_registered_model_alias(MODEL, "challenger", second.version)
        # A drift verdict on the last day, as monitoring hands it to alerting and the retrain decision.
        summary = {"day": DAYS[-1].isoformat(), "kind": "data_drift", "model_version": str(first.version),
                   "report": {"html": reports.uri(f"{reports.root}/fraud/monitoring/dt={DAYS[-1]}/report.html")},
                   "verdict": {"kind": "data_drift", "drift_detected": True, "n_drifted": 3, "n_features": 10,
                               "share_drifted": 0.3, "drift_share_threshold": 0.25,
                               "drifted_columns": [{"column": "amount", "score": 0.01}]}}
        path = home.parent / "summary.json"
        path.write_text(json.dumps(summary))
    return World(home=home, champion=str(first.version), challenger=str(second.version), summary=path)


@pytest.fixture
def home(world: World, tmp_path, monkeypatch) -> Home:
    """A private copy of the world; this process (the checks) points at it too."""
    path = tmp_path / "home"
    shutil.copytree(world.home, path, symlinks=True)
    monkeypatch.setenv("MLOPS_HOME", str(path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return Home(path=path, env={})


# -- services -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TcpProxy:
    """A TCP forwarder on loopback to ``target``; ``cut()`` drops every connection and stops listening."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = free_port()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._cut = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._cut:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self._cut:
                client.close()
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self._cut = True
        try:
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
        except OSError:
            pass
        self._server.close()
        with self._lock:
            for s in self._conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
