"""Headless Chromium (Debian chromium + chromedriver, driven by Selenium) and servers started
in their own process group, for the browser tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
MISSING = ("chromium and chromedriver are not installed (Debian: apt-get install chromium "
           "chromium-driver; scripts/test.sh does it when run as root)")


@contextmanager
def chromium(window: str = "1600,1300"):
    """A headless Chromium WebDriver with a throw-away profile and no network chatter."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", f"--user-data-dir={profile}", f"--window-size={window}",
                "--autoplay-policy=no-user-gesture-required"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def stop_group(proc: subprocess.Popen, grace_s: float = 20) -> None:
    """SIGTERM a process started with ``start_new_session=True`` and its group; SIGKILL after
    ``grace_s`` seconds."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for(find, timeout: float = 60.0):
    """Poll ``find()`` every 0.5 s until it returns something truthy (or the time is up);
    returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        time.sleep(0.5)
    return find()
