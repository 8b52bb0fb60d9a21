"""End to end: the report pages in headless Chromium, as a reader opens them. The CLI's file
(offline, from disk) and the service's page (through a share link, logged out) each render at a
desktop's and a phone's width, the browser logs no error and fetches nothing but the page."""

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx2
import pytest
from PIL import Image, ImageStat

from tests.utils.browser import Browser, headless_chromium, require_chromium
from tests.utils.live_server import LiveServer
from tests.utils.measure_cli import TINY, measure

WIDTHS = {"desktop": 1280, "phone": 390}
FIB = ("fib", "--param", "n=15", "--param", "tasks=4", "--runners", "threads")
BODY = {
    "workload": {"name": "fib", "params": {"n": 15, "tasks": 4}},
    "runners": ["threads"],
    "workers": [2],
    "gil": [0],
    "repeats": 4,
    "max_repeats": 4,
    "block_rounds": 2,
    "warmups": 0,
}
BATCH = {
    "source": {"count": 4, "width": 32, "height": 32},
    "pipeline": [{"op": "invert"}],
    "runner": "threads",
    "workers": 2,
}
WAIT_S = 180.0


@pytest.fixture(scope="module", autouse=True)
def chromium_installed() -> None:
    require_chromium()


@pytest.fixture(scope="module")
def cli_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    page = tmp_path_factory.mktemp("cli") / "report.html"
    completed = measure(*FIB, *TINY, "--html", page)
    assert completed.returncode == 0, completed.stderr
    return page


@dataclass(frozen=True)
class Service:
    """A real `nogil-bench serve` with one user's measured benchmark, shared, and a batch."""

    token: str
    report: str  # the owner's report page of the benchmark
    shared: str  # its share link
    batch_report: str


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    server = LiveServer(tmp_path_factory.mktemp("e2e-report"))
    server.start()
    try:
        yield measured_and_shared(server.url)
    finally:
        server.stop()


def measured_and_shared(base_url: str) -> Service:
    with httpx2.Client(base_url=base_url, timeout=30) as client:
        credentials = {"email": "grace@example.com", "password": "correct horse battery"}
        assert client.post("/api/v1/auth/register", json=credentials).status_code == 201
        token = client.post(
            "/api/v1/auth/token",
            data={"username": credentials["email"], "password": credentials["password"]},
        ).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        location = client.post("/api/v1/benchmarks", json=BODY).headers["Location"]
        batch = client.post("/api/v1/batches", json=BATCH).headers["Location"]
        for each in (location, batch):
            done = wait_for(client, each)
            assert done["status"] == "succeeded", done
        shared = client.post(f"{location}/share")
        assert shared.status_code == 201, shared.text
        return Service(
            token=token,
            report=f"{base_url}{location}/report",
            shared=shared.json()["url"],
            batch_report=f"{base_url}{batch}/report",
        )


def wait_for(client: httpx2.Client, location: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        benchmark: dict[str, Any] = client.get(location).json()
        if benchmark["status"] in {"succeeded", "failed", "cancelled"}:
            return benchmark
        time.sleep(0.5)
    raise AssertionError(f"{location} not finished after {WAIT_S} s")


def requests_made(browser: Browser) -> list[str]:
    """Every URL the browser asked for since the last call (Chrome's network log)."""
    urls = []
    for entry in browser.get_log("performance"):  # type: ignore[no-untyped-call]
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def look_at(
    url: str, width: int, token: str | None = None
) -> tuple[bytes, list[str], list[dict[str, Any]]]:
    """The page at `width` (with `token` as its bearer): a screenshot of it, the URLs fetched,
    the console's messages."""
    with headless_chromium(width=width, height=1600) as browser:
        if token is not None:
            browser.execute_cdp_cmd("Network.enable", {})
            headers = {"Authorization": f"Bearer {token}"}
            browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers})
        browser.get(url)
        assert browser.find_element("css selector", "h1").text
        # Wide content scrolls inside its box; the page itself fits the screen.
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width
        console = browser.get_log("browser")  # type: ignore[no-untyped-call]
        return browser.get_screenshot_as_png(), requests_made(browser), console


def assert_readable(screenshot: bytes, width: int) -> None:
    image = Image.open(BytesIO(screenshot)).convert("L")
    assert image.width == width
    # Not blank: text and chart make the page far from one flat colour.
    assert ImageStat.Stat(image).stddev[0] > 20


@pytest.mark.parametrize("device", WIDTHS)
def test_the_clis_page_renders_offline_with_no_request_and_no_error(
    cli_page: Path, device: str, tmp_path: Path
) -> None:
    url = cli_page.as_uri()

    screenshot, fetched, console = look_at(url, WIDTHS[device])

    assert_readable(screenshot, WIDTHS[device])
    assert [each for each in fetched if not each.startswith("data:")] == [url]
    assert [entry for entry in console if entry["level"] == "SEVERE"] == []
    (tmp_path / f"cli-{device}.png").write_bytes(screenshot)


@pytest.mark.parametrize("device", WIDTHS)
@pytest.mark.parametrize("page", ["shared", "report", "batch_report"])
def test_the_services_pages_render_with_no_request_and_no_error(
    service: Service, page: str, device: str
) -> None:
    url = getattr(service, page)
    # The shared page logged out; the owner's pages with the owner's token.
    token = None if page == "shared" else service.token

    screenshot, fetched, console = look_at(url, WIDTHS[device], token)

    assert_readable(screenshot, WIDTHS[device])
    assert [each for each in fetched if not each.startswith("data:")] == [url]
    assert [entry for entry in console if entry["level"] == "SEVERE"] == []
