"""Start Debian's chromium headless under selenium, for the page test and the README screenshot.

Only the system's chromium and chromedriver are used (installed by `make browser`):
selenium is given the driver's path, so it never tries to download a browser or driver.
The flags are those a root container needs (no sandbox, no GPU) plus the ones that keep
chromium from reaching out to the network on its own; each session gets a fresh profile.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator

CHROMIUM_NAMES = ("chromium", "chromium-browser")
DRIVER_NAMES = ("chromedriver",)
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1100,900",
)


def find_browser() -> tuple[str | None, str | None]:
    """Paths of chromium and chromedriver, or None for each that is not installed."""
    browser = next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)
    driver = next((path for name in DRIVER_NAMES if (path := shutil.which(name))), None)
    return browser, driver


@contextlib.contextmanager
def chromium(page_load_timeout_s: float = 30.0) -> Iterator:
    """A selenium WebDriver on headless chromium with a throwaway profile; quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = find_browser()
    if not (browser and driver_path):
        raise RuntimeError("chromium and chromedriver are not installed (run `make browser` as root).")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        try:
            driver.set_page_load_timeout(page_load_timeout_s)
            driver.set_script_timeout(page_load_timeout_s)
            yield driver
        finally:
            driver.quit()
