"""Headless Chromium for the end-to-end tests (Debian's `chromium` and `chromium-driver`;
`.ci/run` installs them). Without them a test fails when CI is set and is skipped otherwise,
saying how to install them."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL_HINT = (
    "install them with `apt-get install chromium chromium-driver` "
    "(Debian's packages; `bash .ci/run` installs them when missing)"
)

MIN_WINDOW_WIDTH_PX = 500

type Browser = webdriver.Chrome


def require_chromium() -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        message = f"headless Chromium is needed, but {' and '.join(missing)} {verb} missing: "
        message += INSTALL_HINT
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@contextmanager
def headless_chromium(width: int = 1280, height: int = 2000) -> Iterator[Browser]:
    """A fresh browser, its console and network events logged (get_log("browser"),
    get_log("performance")). Below Chrome's smallest window (500 px), a phone is emulated at
    that width."""
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    if width < MIN_WINDOW_WIDTH_PX:
        metrics = {"width": width, "height": height, "pixelRatio": 1}
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": metrics})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
