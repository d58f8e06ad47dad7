"""A headless Chromium for the tests that drive Airflow's web UI (Debian's chromium + chromium-driver)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000")


def chromium(profile_dir: Path) -> Any:
    """A Selenium Chrome driver on Debian's chromium, profile under ``profile_dir``; pytest skips without it."""
    import pytest

    webdriver = pytest.importorskip("selenium.webdriver")
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        pytest.skip("Debian's chromium and chromium-driver are not installed (run scripts/test-deps.sh; make test does)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*FLAGS, f"--user-data-dir={profile_dir}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    browser.set_page_load_timeout(90)
    return browser


def log_in(browser: Any, base_url: str, path: str, username: str, password: str, timeout: float = 90) -> None:
    """Open ``path`` on the Airflow UI and log in through the simple auth manager's form."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{base_url}{path}")
    WebDriverWait(browser, timeout).until(EC.presence_of_element_located((By.NAME, "username"))).send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
