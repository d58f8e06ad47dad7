"""``make ui``: Airflow's own web UI on the embedded default (no Docker, no PostgreSQL), driven in a browser.

A new user's first look: start scripts/ui.py, land a day of files, log in, trigger ``fraud__ingest`` from
its form, watch the run succeed in the UI; the partition is in the local lake; stopping the script leaves
no process and no port behind, and nothing listened beyond 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from devkit.stack import REPO, free_port

pytestmark = pytest.mark.slow

START_TIMEOUT = 600
RUN_TIMEOUT = 420


def _listening(pids: set[int]) -> list[tuple[str, int]]:
    found = []
    for conn in psutil.net_connections(kind="inet"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids:
            found.append((conn.laddr.ip, conn.laddr.port))
    return found


def _tree(pid: int) -> set[int]:
    try:
        root = psutil.Process(pid)
        return {root.pid, *(c.pid for c in root.children(recursive=True))}
    except psutil.Error:
        return set()


def test_ui_on_the_embedded_default_triggers_a_run_from_the_browser(tmp_path):
    from mlops_provider.config.project import load_project
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from devkit.airflow_api import AirflowApi
    from devkit.browser import chromium, log_in
    from devkit.datagen.landing import write_landing_day

    home, port = tmp_path / "home", free_port()
    # As a user's shell has it: no test-session settings (Airflow's unit-test mode unpauses every new DAG).
    env = {k: v for k, v in os.environ.items()
           if k not in ("AIRFLOW_HOME", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__UNIT_TEST_MODE")}
    env["MLOPS_HOME"] = str(home)
    # The form's run has a logical date of now (ingests today); unpausing also runs yesterday's interval.
    today = dt.datetime.now(dt.UTC).date()
    project = load_project("fraud")
    for day in (today - dt.timedelta(days=1), today):
        write_landing_day(project, home / "landing" / "fraud", day, rows=300)

    log = (tmp_path / "ui.out").open("wb")
    ui = subprocess.Popen([sys.executable, str(REPO / "scripts" / "ui.py"), "--port", str(port)], env=env,
                          stdout=log, stderr=subprocess.STDOUT)
    pids: set[int] = set()
    browser = None
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while b"[ui] Airflow UI:" not in (tmp_path / "ui.out").read_bytes():
            assert ui.poll() is None, (tmp_path / "ui.out").read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the UI did not come up"
            time.sleep(2)
        pids = _tree(ui.pid)
        exposed = [(ip, p) for ip, p in _listening(pids) if ip not in ("127.0.0.1", "::1")]
        assert not exposed, f"listening beyond loopback: {exposed}"
        base_url = f"http://127.0.0.1:{port}"
        password = json.loads((home / "airflow" / "ui-passwords.json").read_text())["admin"]
        api = AirflowApi(base_url, "admin", password)
        api.wait_dag("fraud__ingest", timeout=300)
        api.unpause("fraud__ingest")

        browser = chromium(tmp_path / "chromium")
        wait = WebDriverWait(browser, 90)
        log_in(browser, base_url, "/dags/fraud__ingest", "admin", password)
        wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "button[aria-label='Trigger Dag']"))).click()
        submit = wait.until(lambda b: [x for x in b.find_elements(By.CSS_SELECTOR, "[role=dialog] button")
                                       if x.text.strip() == "Trigger" and x.get_attribute("aria-label") != "Trigger Dag"])
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", submit[-1])
        wait.until(EC.element_to_be_clickable(submit[-1])).click()

        def manual():
            return [r for r in api.runs("fraud__ingest") if r["run_type"] == "manual"]

        deadline = time.monotonic() + 60
        while not manual():
            assert time.monotonic() < deadline, "the form did not create a run"
            time.sleep(1)
        run = manual()[0]
        api.wait_run("fraud__ingest", run["dag_run_id"], RUN_TIMEOUT,
                     describe=lambda: (home / "airflow" / "ui-logs" / "scheduler.log").read_text(errors="replace")[-3000:])
        browser.get(f"{base_url}/dags/fraud__ingest/runs/{run['dag_run_id']}")
        WebDriverWait(browser, 60).until(lambda b: "success" in b.find_element(By.TAG_NAME, "body").text.lower())
        assert (home / "lake" / "fraud" / "records" / f"dt={today.isoformat()}" / "data.parquet").is_file()
    except Exception:
        if browser is not None:
            browser.save_screenshot(str(tmp_path / "ui-failure.png"))
        raise
    finally:
        if browser is not None:
            browser.quit()
        pids |= _tree(ui.pid)
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=180)
        log.close()
    time.sleep(1)
    left = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not left, f"left running after stopping the UI: {left}"
    assert not _listening(pids)
