"""``make ui``: Airflow's own web UI on the embedded default (no Docker, no PostgreSQL), driven in a browser.

A new user's first look: start scripts/ui.py, land a day of files, log in, trigger ``fraud__ingest`` from
its form, watch the run succeed in the UI; the partition is in the local lake; stopping the script leaves
no process and no port behind, and nothing listened beyond 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 420


def test_ui_on_the_embedded_default_triggers_a_run_from_the_browser(tmp_path):
    from mlops_provider.config.project import load_project
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from devkit.browser import chromium, log_in
    from devkit.datagen.landing import write_landing_day
    from devkit.embedded_ui import embedded_ui

    home = tmp_path / "home"
    # The form's run has a logical date of now (ingests today); unpausing also runs yesterday's interval.
    today = dt.datetime.now(dt.UTC).date()
    project = load_project("fraud")
    for day in (today - dt.timedelta(days=1), today):
        write_landing_day(project, home / "landing" / "fraud", day, rows=300)

    with embedded_ui(home, tmp_path) as ui:
        api = ui.api()
        api.wait_dag("fraud__ingest", timeout=300)
        api.unpause("fraud__ingest")
        browser = chromium(tmp_path / "chromium")
        try:
            wait = WebDriverWait(browser, 90)
            log_in(browser, ui.base_url, "/dags/fraud__ingest", "admin", ui.password)
            wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "button[aria-label='Trigger Dag']"))).click()
            submit = wait.until(lambda b: [x for x in b.find_elements(By.CSS_SELECTOR, "[role=dialog] button")
                                           if x.text.strip() == "Trigger"
                                           and x.get_attribute("aria-label") != "Trigger Dag"])
            browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", submit[-1])
            wait.until(EC.element_to_be_clickable(submit[-1])).click()

            def manual():
                return [r for r in api.runs("fraud__ingest") if r["run_type"] == "manual"]

            deadline = time.monotonic() + 60
            while not manual():
                assert time.monotonic() < deadline, "the form did not create a run"
                time.sleep(1)
            run = manual()[0]
            api.wait_run("fraud__ingest", run["dag_run_id"], RUN_TIMEOUT, describe=ui.scheduler_log)
            browser.get(f"{ui.base_url}/dags/fraud__ingest/runs/{run['dag_run_id']}")
            WebDriverWait(browser, 60).until(lambda b: "success" in b.find_element(By.TAG_NAME, "body").text.lower())
            assert (home / "lake" / "fraud" / "records" / f"dt={today.isoformat()}" / "data.parquet").is_file()
        except Exception:
            browser.save_screenshot(str(tmp_path / "ui-failure.png"))
            raise
        finally:
            browser.quit()
