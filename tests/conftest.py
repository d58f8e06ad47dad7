"""Test isolation: every test session gets its own MLOPS_HOME, Airflow home and SQLite metadata DB.

No test skips silently under ``make test`` (and so CI): the Makefile sets ``MLOPS_REQUIRE_ALL_TESTS=1``,
and then a test that would skip because something it needs is missing (chromium, chromedriver,
docker-compose, moto_server, a Python package, the local PostgreSQL or Redis) fails with the skip's
reason instead. ``scripts/test-deps.sh`` installs the system tools; ``.ci/run`` starts PostgreSQL and
Redis. A plain ``pytest`` run (a developer's subset) still skips, and says why in its summary (``-ra``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="mlops-test-"))

# Before anything imports airflow: configuration is read once, at first import.
os.environ["MLOPS_REPO_ROOT"] = str(REPO)
os.environ["MLOPS_HOME"] = str(_SESSION_HOME / "home")
os.environ["AIRFLOW_HOME"] = str(_SESSION_HOME / "home" / "airflow")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_SESSION_HOME / 'airflow.db'}"
os.environ["FEAST_USAGE"] = "False"
os.environ["GX_ANALYTICS_ENABLED"] = "False"
os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
os.environ.pop("MLFLOW_TRACKING_URI", None)
# A developer's own settings must not point the tests at their services (state in PostgreSQL, a wiki runbook).
for var in ("MLOPS_LAKE_URI", "MLOPS_REPORTS_URI", "MLOPS_PROJECTS_DIR", "MLOPS_STATE_URL", "MLOPS_RUNBOOK_URL"):
    os.environ.pop(var, None)
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import pytest  # noqa: E402

REQUIRE_ALL_TESTS = os.environ.get("MLOPS_REQUIRE_ALL_TESTS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under MLOPS_REQUIRE_ALL_TESTS=1 a skipped test is a failed one (xfail stays what it is)."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL_TESTS and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} would skip, but MLOPS_REQUIRE_ALL_TESTS=1 (make test, CI) runs every "
                           f"test: {reason}")


@pytest.fixture(scope="session")
def airflow_db():
    """An initialised Airflow metadata database (SQLite) for tests that run DAGs."""
    from airflow.utils import db

    db.initdb()
    return os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


@pytest.fixture
def mlops_home(tmp_path, monkeypatch):
    """A fresh, empty MLOPS_HOME for one test."""
    home = tmp_path / "mlops"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    return home


@pytest.fixture
def fraud_project():
    from mlops_provider.config.project import load_project

    return load_project("fraud")


# -- a local S3 endpoint (moto_server on loopback), shared by the S3 integration and fault tests --------------
MOTO_STARTUP_SECONDS = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """``http://127.0.0.1:<port>`` of a ``moto_server`` started for the session and killed after it."""
    exe = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    if not Path(exe).exists():
        pytest.skip("moto_server is not installed: no local S3 endpoint (make install: moto[server] is in requirements)")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + MOTO_STARTUP_SECONDS
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.skip(f"moto_server did not come up on {url} within {MOTO_STARTUP_SECONDS}s "
                                f"(exit code {proc.poll()}): {log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
