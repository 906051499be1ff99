"""The web view in a real browser: Debian's chromium, driven through chromedriver by selenium.

Starts `coditect ui`'s state and server in this process, then in the browser: starts the
Fibonacci mission with the scripted model and review on, watches the graph's nodes turn
complete, opens the diff, accepts the review, and checks that the branch exists. Screenshots
of the mission page go to test-artifacts/ui/ (and the test's tmp dir).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from infra.servers import _missing, free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM = os.environ.get("CODITECT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CODITECT_CHROMEDRIVER", "/usr/bin/chromedriver")
REQUEST = "Add a function to calculate the nth Fibonacci number"

pytestmark = pytest.mark.slow


class LiveServer:
    """`coditect ui` on a free loopback port, in a thread with its own event loop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._ready = threading.Event()
        self._server = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        import io

        from rich.console import Console

        from coditect.cli.ui_cmd import serve

        def keep(server) -> None:
            self._server = server

        await serve(
            f"127.0.0.1:{self.port}", "", None, None, Console(file=io.StringIO()), on_server=keep
        )

    def start(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not (self._server is not None and self._server.started):
            if self._ready.is_set() and self._error is not None:
                raise self._error
            assert time.monotonic() < deadline, "the ui server did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(30)


@pytest.fixture
def live_server():
    server = LiveServer().start()
    yield server
    server.stop()


@pytest.fixture
def browser():
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        _missing("chromium/chromedriver", "bash scripts/install-system-deps.sh")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="coditect-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1800",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    # An explicit driver path: selenium-manager never runs (it would try to download one).
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(condition, timeout_s=120.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception:  # the page may be reloading
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def shot(driver, tmp_path, name, *, full=True):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if full:
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1400, max(900, min(int(height) + 40, 4000)))
    else:  # the top of the page at a usual window size (the README's picture)
        driver.set_window_size(1280, 1150)
    for target in (tmp_path / f"{name}.png", ARTIFACTS / f"{name}.png"):
        driver.save_screenshot(str(target))


def node_states(driver):
    return {
        g.get_attribute("data-task"): g.get_attribute("class")
        for g in driver.find_elements("css selector", "#graph g.node")
    }


def test_start_watch_review_accept_in_a_browser(
    live_server, browser, calculator_repo, git, tmp_path
):
    from selenium.webdriver.common.by import By

    browser.get(live_server.url + "/")
    browser.find_element(By.ID, "nav-new").click()
    form = browser.find_element(By.ID, "start-form")
    form.find_element(By.NAME, "request").send_keys(REQUEST)
    form.find_element(By.NAME, "repo").send_keys(str(calculator_repo))
    form.find_element(By.NAME, "llm").send_keys("scripted:fibonacci")
    form.find_element(By.NAME, "sandbox").send_keys("subprocess")
    assert form.find_element(By.ID, "opt-review").is_selected()
    browser.find_element(By.ID, "start-button").click()

    try:
        wait_for(lambda: browser.find_element(By.ID, "mission"), 30, "the mission page")
    except AssertionError:
        raise AssertionError(browser.current_url + browser.page_source[:3000]) from None
    mission_id = browser.find_element(By.ID, "mission").get_attribute("data-mission")
    # Live: the nodes turn complete as the events arrive, and the page asks for review.
    seen_states = set()

    def reviewing():
        seen_states.update(c.split()[1] for c in node_states(browser).values())
        return browser.find_elements(By.ID, "review-accept")

    wait_for(reviewing, 180, "the review buttons")
    # the nodes were seen changing state while the mission ran (not only in their final one)
    assert len(seen_states) >= 2 and "st-complete" in seen_states, seen_states
    states = node_states(browser)
    assert set(states) == {"t1", "t2", "t3", "t4"}
    assert all("st-complete" in c for c in states.values()), states
    assert int(browser.find_element(By.ID, "mission").get_attribute("data-seq")) > 0
    assert "+def fibonacci(n):" in browser.find_element(By.ID, "diff").text
    shot(browser, tmp_path, "mission-review-top", full=False)
    shot(browser, tmp_path, "mission-review")

    browser.find_element(By.ID, "review-accept").click()
    wait_for(lambda: browser.find_elements(By.ID, "branch"), 60, "the landed branch")
    assert browser.find_element(By.ID, "status").text == "SUCCESS"
    branch = browser.find_element(By.ID, "branch").text
    assert branch == f"coditect/{mission_id}"
    assert git(calculator_repo, "branch", "--list", branch).strip()
    assert "def fibonacci" in git(calculator_repo, "show", f"{branch}:calculator/arithmetic.py")

    browser.find_element(By.CSS_SELECTOR, "#diff-panel > summary").click()  # open the diff
    assert browser.find_element(By.ID, "diff").is_displayed()
    assert browser.find_elements(By.CSS_SELECTOR, "#diff .gi")  # highlighted insertions
    shot(browser, tmp_path, "mission")

    browser.find_element(By.ID, "apply").click()
    wait_for(lambda: browser.find_elements(By.ID, "message"), 30, "the apply message")
    assert "merged" in browser.find_element(By.ID, "message").text
    assert "def fibonacci" in (calculator_repo / "calculator" / "arithmetic.py").read_text()

    browser.get(live_server.url + "/")
    assert mission_id in browser.find_element(By.ID, "missions").text
    shot(browser, tmp_path, "missions")
