"""End to end: headless Chromium drives Swagger UI at /docs on a live `nogil-bench serve`.

Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them). Without them the test
fails when CI is set and is skipped otherwise, saying how to install them.
"""

from collections.abc import Callable, Iterator
from typing import Literal

import httpx2
import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.utils.browser import Browser, headless_chromium, require_chromium
from tests.utils.live_server import LiveServer

UI_TIMEOUT_S = 15.0
EMAIL = "ada@example.com"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module", autouse=True)
def chromium_installed() -> None:
    """Checked first, so a machine without Chromium starts no server for nothing."""
    require_chromium()


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `nogil-bench serve` process with an empty data directory; yields its base URL."""
    server = LiveServer(tmp_path_factory.mktemp("e2e-server"))
    server.start()
    try:
        yield server.url
    finally:
        returncode = server.stop()
    assert returncode == 0, f"exit {returncode} after SIGTERM:\n{server.output()}"


@pytest.fixture(scope="module")
def registered_user(base_url: str) -> str:
    response = httpx2.post(
        f"{base_url}/api/v1/auth/register",
        json={"email": EMAIL, "password": PASSWORD},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    email: str = response.json()["email"]
    return email


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A fresh headless Chromium per test: no authorization persisted from another test."""
    with headless_chromium() as driver:
        yield driver


def open_docs(browser: Browser, base_url: str) -> WebDriverWait[Browser]:
    browser.get(f"{base_url}/docs")
    # Swagger UI is React: a node found a moment ago may have been re-rendered since.
    wait = WebDriverWait(
        browser,
        UI_TIMEOUT_S,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    )
    wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, ".opblock")),
        "Swagger UI rendered no operation: the bundle or /openapi.json did not load",
    )
    return wait


def operation(browser: Browser, method: str, path: str) -> WebElement:
    """The operation block of METHOD PATH (by the path Swagger UI shows, not the operationId)."""
    return browser.find_element(
        By.XPATH,
        f"//div[contains(@class, 'opblock-{method.lower()}')]"
        f"[.//*[contains(@class, 'opblock-summary-path') and @data-path='{path}']]",
    )


def ready_in_operation(
    method: str, path: str, css: str
) -> Callable[[Browser], WebElement | Literal[False]]:
    """A wait condition: the element CSS inside METHOD PATH's block, shown and enabled."""

    def find(browser: Browser) -> WebElement | Literal[False]:
        element = operation(browser, method, path).find_element(By.CSS_SELECTOR, css)
        return element if element.is_displayed() and element.is_enabled() else False

    return find


def test_docs_list_the_routes_from_assets_the_app_serves_itself(
    browser: Browser, base_url: str
) -> None:
    wait = open_docs(browser, base_url)

    expected = {"/api/v1/users/me", "/api/v1/jobs", "/api/v1/auth/token"}

    def shown_paths(driver: Browser) -> set[str]:
        elements = driver.find_elements(By.CSS_SELECTOR, ".opblock .opblock-summary-path")
        return {element.get_attribute("data-path") or "" for element in elements}

    wait.until(
        lambda driver: expected <= shown_paths(driver),
        f"Swagger UI did not list all of {sorted(expected)}",
    )
    assert operation(browser, "GET", "/api/v1/users/me").is_displayed()
    assert operation(browser, "POST", "/api/v1/jobs").is_displayed()
    assert operation(browser, "POST", "/api/v1/auth/token").is_displayed()

    # What the page fetched (Resource Timing) and what it asked for (tags, including any whose
    # load failed): all from the app itself, none from a CDN.
    fetched: list[str] = browser.execute_script(
        "return performance.getEntriesByType('resource').map(entry => entry.name)"
    )
    referenced: list[str] = browser.execute_script(
        "return [...document.querySelectorAll('script[src], link[href], img[src]')]"
        ".map(element => element.src || element.href)"
    )
    assert f"{base_url}/static/swagger-ui/swagger-ui-bundle.js" in fetched
    assert f"{base_url}/static/swagger-ui/swagger-ui.css" in fetched
    foreign = sorted({url for url in fetched + referenced if not url.startswith(f"{base_url}/")})
    assert not foreign, f"/docs loaded resources from another origin: {foreign}"


def test_authorize_with_the_password_flow_then_try_users_me(
    browser: Browser, base_url: str, registered_user: str
) -> None:
    wait = open_docs(browser, base_url)

    browser.find_element(By.CSS_SELECTOR, ".auth-wrapper button.authorize").click()
    modal = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".modal-ux")))
    wait.until(ec.visibility_of_element_located((By.ID, "oauth_username"))).send_keys(
        registered_user
    )
    modal.find_element(By.ID, "oauth_password").send_keys(PASSWORD)
    # The modal lists every scheme (the metrics token too): the password flow's own button.
    oauth = modal.find_element(
        By.XPATH, "//input[@id='oauth_password']/ancestor::div[contains(@class,'auth-container')]"
    )
    oauth.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper button.authorize").click()
    # Once the token endpoint accepted the form, the modal says so and offers Logout.
    logout = wait.until(
        ec.visibility_of_element_located(
            (By.XPATH, "//div[@class='modal-ux']//button[normalize-space()='Logout']")
        ),
        "Swagger UI did not report the user authorized (no Logout button)",
    )
    assert logout.is_displayed()
    assert "Authorized" in modal.text
    assert registered_user in modal.text
    oauth.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper button.btn-done").click()
    wait.until(ec.invisibility_of_element_located((By.CSS_SELECTOR, ".modal-ux")))

    me = ("GET", "/api/v1/users/me")
    wait.until(ready_in_operation(*me, ".opblock-summary-control")).click()
    wait.until(ready_in_operation(*me, "button.try-out__btn")).click()
    wait.until(ready_in_operation(*me, "button.execute")).click()
    status = wait.until(
        ready_in_operation(*me, ".live-responses-table .response .response-col_status"),
        "no live response was shown after Execute",
    ).text.strip()
    response = operation(browser, *me).find_element(By.CSS_SELECTOR, ".live-responses-table")

    assert status == "200", response.text
    assert f'"email": "{registered_user}"' in response.text
