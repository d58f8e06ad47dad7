"""The monitoring history in Airflow's own web UI (``make ui``, the embedded default), in a browser: the
"Monitoring history" tab of a project's DAG shows the project's page (charts, a row per day) and a day's
report link opens that day's Evidently report, all behind the UI's login."""

from __future__ import annotations

import datetime as dt

import pytest

pytestmark = pytest.mark.slow

DAYS = [dt.date(2024, 1, 10), dt.date(2024, 1, 12)]


def write_reports(reports_uri: str) -> None:
    """Two monitored days as the monitor stage saves them (real verdicts and Evidently reports)."""
    import pandas as pd
    from mlops_provider.config.project import load_project
    from mlops_provider.domain.drift import monitor_day
    from mlops_provider.io.lake import Lake
    from mlops_provider.stages.monitor import save_report

    from tests.unit.domain.test_drift import scored

    project = load_project("fraud")
    features = list(project.features["record"]["columns"])
    reports = Lake(reports_uri)
    reference = pd.concat([scored(dt.date(2024, 1, d), 1000) for d in (1, 2)], ignore_index=True)
    for day, drift in zip(DAYS, (False, True), strict=True):
        current = scored(day, 2000, covariate_drift=drift)
        result = monitor_day(project, reference=reference, current=current, feature_columns=features,
                             labelled=current, seed=day.toordinal())
        save_report(result, reports, f"fraud/monitoring/dt={day.isoformat()}/report")


def test_the_dag_tab_shows_the_history_and_opens_a_days_report(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from devkit.browser import chromium, log_in
    from devkit.embedded_ui import embedded_ui

    home = tmp_path / "home"
    write_reports((home / "reports").as_uri())
    with embedded_ui(home, tmp_path) as ui:
        ui.api().wait_dag("fraud__monitor", timeout=300)
        browser = chromium(tmp_path / "chromium")
        try:
            wait = WebDriverWait(browser, 90)
            log_in(browser, ui.base_url, "/dags/fraud__monitor", "admin", ui.password)
            # The tab every DAG page has (external view, destination "dag"): the UI fills in {DAG_ID}.
            wait.until(EC.element_to_be_clickable(
                (By.XPATH, "//*[normalize-space(text())='Monitoring history']"))).click()
            frame = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "iframe[title='Monitoring history']")))
            assert frame.get_attribute("src").endswith("/mlops/monitoring/dag/fraud__monitor")
            browser.switch_to.frame(frame)
            wait.until(EC.presence_of_element_located((By.TAG_NAME, "h1")))
            assert browser.find_element(By.TAG_NAME, "h1").text == "fraud: monitoring history"
            assert browser.execute_script("return location.pathname") == "/mlops/monitoring/fraud"
            assert len(browser.find_elements(By.TAG_NAME, "svg")) == 2
            days = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "table tr td:first-child")]
            assert days[0] == DAYS[-1].isoformat() and DAYS[0].isoformat() in days
            browser.find_elements(By.LINK_TEXT, "report")[0].click()  # the newest day's Evidently report
            wait.until(lambda b: b.execute_script("return location.pathname")
                       == f"/mlops/reports/fraud/monitoring/dt={DAYS[-1].isoformat()}/report.html")
            wait.until(lambda b: "fraud" in b.find_element(By.TAG_NAME, "body").text)  # Evidently's page rendered
        except Exception:
            browser.save_screenshot(str(tmp_path / "ui-failure.png"))
            raise
        finally:
            browser.quit()
