"""``scripts/ui.py`` (``make ui``) for the browser tests: started on a fresh MLOPS_HOME, stopped, checked.

As a user's shell would run it: without the test session's Airflow settings (the unit-test mode unpauses
every new DAG; the session's AIRFLOW_HOME, metadata DB, lake and report store belong to other tests).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from devkit.stack import REPO, free_port

START_TIMEOUT = 600
READY = b"[ui] Airflow UI:"
SESSION_ONLY = ("AIRFLOW_HOME", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__UNIT_TEST_MODE",
                "MLOPS_REPORTS_URI", "MLOPS_LAKE_URI")


@dataclass
class EmbeddedUi:
    base_url: str
    password: str
    home: Path
    pids: set[int] = field(default_factory=set)

    def api(self):
        from devkit.airflow_api import AirflowApi

        return AirflowApi(self.base_url, "admin", self.password)

    def scheduler_log(self) -> str:
        return (self.home / "airflow" / "ui-logs" / "scheduler.log").read_text(errors="replace")[-3000:]


def _tree(pid: int) -> set[int]:
    import psutil

    try:
        root = psutil.Process(pid)
        return {root.pid, *(c.pid for c in root.children(recursive=True))}
    except psutil.Error:
        return set()


def listening(pids: set[int]) -> list[tuple[str, int]]:
    """(address, port) of every listening socket of ``pids``."""
    import psutil

    return [(c.laddr.ip, c.laddr.port) for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.pid in pids]


@contextmanager
def embedded_ui(home: Path, workdir: Path, timeout: float = START_TIMEOUT) -> Iterator[EmbeddedUi]:
    """Run ``scripts/ui.py`` with ``MLOPS_HOME=home`` until the block ends; its output goes to ``workdir/ui.out``.

    Asserts on the way in that nothing listens beyond loopback, and on the way out that SIGTERM left no
    process and no listening port behind.
    """
    import psutil

    env = {k: v for k, v in os.environ.items() if k not in SESSION_ONLY}
    env["MLOPS_HOME"] = str(home)
    port, out = free_port(), workdir / "ui.out"
    with out.open("wb") as log:
        proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "ui.py"), "--port", str(port)], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        ui = EmbeddedUi(base_url=f"http://127.0.0.1:{port}", password="", home=home)
        try:
            deadline = time.monotonic() + timeout
            while READY not in out.read_bytes():
                assert proc.poll() is None, out.read_text(errors="replace")[-3000:]
                assert time.monotonic() < deadline, f"the UI did not come up within {timeout:.0f}s"
                time.sleep(2)
            ui.pids = _tree(proc.pid)
            exposed = [(ip, p) for ip, p in listening(ui.pids) if ip not in ("127.0.0.1", "::1")]
            assert not exposed, f"listening beyond loopback: {exposed}"
            ui.password = json.loads((home / "airflow" / "ui-passwords.json").read_text())["admin"]
            yield ui
        finally:
            ui.pids |= _tree(proc.pid)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=180)
    time.sleep(1)
    left = [p for p in ui.pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not left, f"left running after stopping the UI: {left}"
    assert not listening(ui.pids)
