"""The screen-time chart on the screentime asset page of the Dagster UI, in headless Chromium."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.browser import CHROMEDRIVER, CHROMIUM, MISSING, chromium, stop_group
from tests.browser import wait_for as _wait
from tests.conftest import REPO

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason=MISSING)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def webserver(hamilton_run, tmp_path):
    """dagster-webserver on loopback over the Hamilton run's on-disk instance and data root."""
    home = hamilton_run.root / "dagster_home"
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home),
           "SCREENALYTICS_DATA_ROOT": str(hamilton_run.store.root),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    log = open(tmp_path / "webserver.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port),
         "-m", "screenalytics_assets.definitions"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail("dagster-webserver did not start:\n"
                                + (tmp_path / "webserver.log").read_text()[-3000:])
                time.sleep(0.5)
        yield url
    finally:
        stop_group(proc)
        log.close()


@pytest.fixture
def browser():
    with chromium() as driver:
        yield driver


def test_screentime_page_shows_the_chart(hamilton_run, webserver, browser, artifacts_dir: Path):
    from selenium.webdriver.common.by import By

    ep_id = hamilton_run.ep_id
    browser.get(f"{webserver}/assets/screentime?partition={ep_id}")
    rows = _wait(lambda: browser.find_elements(By.XPATH, "//tr[td[normalize-space()='chart']]"))
    assert rows, "no 'chart' metadata row on the screentime asset page"
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Latest materialization" in body and ep_id in body
    # a fresh browser profile gets Dagster's one-time newsletter prompt: dismiss it
    for skip in _wait(lambda: browser.find_elements(By.XPATH, "//button[normalize-space()='Skip']"),
                      timeout=3):
        skip.click()
    _wait(lambda: not browser.find_elements(By.CSS_SELECTOR, ".bp5-overlay-backdrop"), 10)
    # Markdown metadata opens in a dialog; the image in it is the chart the asset wrote
    rows[0].find_element(By.XPATH, ".//*[contains(text(), 'Show Markdown')]").click()

    def shown_images():  # the dialog fades in: wait until the image is visible and decoded
        return [i for i in browser.find_elements(By.CSS_SELECTOR, "img[src^='data:image/png']")
                if i.is_displayed() and browser.execute_script(
                    "return arguments[0].complete && arguments[0].naturalWidth", i)]

    imgs = _wait(shown_images, 30)
    assert len(imgs) == 1, "the chart image did not show"
    assert browser.execute_script("return arguments[0].naturalWidth", imgs[0]) >= 800
    png = (hamilton_run.store.manifest_dir(ep_id) / "screentime.png").read_bytes()
    assert imgs[0].get_attribute("src") == "data:image/png;base64," + base64.b64encode(
        png).decode()
    shot = artifacts_dir / "screentime_asset_page.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
