"""The agent desktop and the wallboard in headless Chromium (Debian's /usr/bin/chromium
driven by playwright; no browser download), against a real server and SIPp.

Screenshots go to test-artifacts/web/ (gitignored) at the top of the repository.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sipp import SCENARIOS, sipp_path, sipp_uas

from .server import REPO, RunningServer, start_server
from .test_sipp_acd import caller, login

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("SWITCHBOARD_ARTIFACTS", REPO / "test-artifacts")) / "web"
SUP = ("sue", "supervisor-pw-1")
RING_MS = 3000  # the SIPp agent rings this long before answering

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium (apt) is not installed"),
    pytest.mark.skipif(shutil.which("sipp") is None and sipp_path() is None,
                       reason="sipp (apt sip-tester) is not installed"),
]

try:
    from playwright.sync_api import Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the test extras install it
    pytestmark.append(pytest.mark.skip(reason="playwright is not installed"))


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A fresh Chromium profile per test."""
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
            viewport={"width": 1280, "height": 900},
            bypass_csp=True)  # lets the test evaluate JavaScript in the page; the page keeps to its CSP
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[RunningServer]:
    srv = start_server(tmp_path, users={SUP[0]: ("supervisor", SUP[1])})
    try:
        yield srv
    finally:
        srv.stop()
        assert "Traceback" not in srv.log(), srv.log()[-4000:]


def slow_agent(tmp_path: Path) -> Path:
    """agent_answer.xml ringing RING_MS before it answers, so the pop can be seen first."""
    text = (SCENARIOS / "agent_answer.xml").read_text()
    assert '<pause milliseconds="500"/>' in text
    path = tmp_path / "agent_answer_slow.xml"
    path.write_text(text.replace('<pause milliseconds="500"/>',
                                 f'<pause milliseconds="{RING_MS}"/>', 1))
    return path


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def desk_log(page: Page) -> list[dict[str, Any]]:
    return list(page.evaluate("window.sbDesk.log"))


def log_in(page: Page, base: str, user: str, password: str) -> None:
    page.goto(base + "/")
    page.fill("#login-user", user)
    page.fill("#login-password", password)
    page.click("#login-button")


def test_desktop_pop_before_answer_wrapup_note_and_next_pop(web_server: RunningServer,
                                                            browser: Any, tmp_path: Path) -> None:
    srv = web_server
    base = f"http://127.0.0.1:{srv.http_port}"
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    with sipp_uas(str(slow_agent(tmp_path)), extra=["-key", "agent_hangs_up_ms", "0"]) as phone, \
            concurrent.futures.ThreadPoolExecutor(1) as pool:
        login(srv, phone, 1)  # 1001 registers its phone (Contact: the SIPp above), *50
        log_in(page, base, "1001", "demo-1001")
        expect(page.locator("#conn")).to_have_text("online", timeout=10_000)
        page.select_option("#reason", "lunch")
        page.click("#go-not-ready")
        expect(page.locator("#status-pill")).to_have_text("not ready (lunch)")
        page.click("#go-ready")
        expect(page.locator("#status-pill")).to_have_text("ready")

        first = pool.submit(caller, srv, tmp_path, "4711", "2", 6000)
        # the pop shows the account while the phone still rings (it answers RING_MS later)
        page.wait_for_function(
            "document.querySelector('#pop-account').textContent === '4711' && "
            "document.querySelector('#call-state').textContent === 'Ringing'", timeout=40_000)
        shot(page, "desktop-pop-ringing.png")
        expect(page.locator("#call-state")).to_have_text("Talking", timeout=15_000)
        events = [e["type"] for e in desk_log(page)]
        assert events.index("pop") < events.index("answered"), events
        (pop,) = [e for e in desk_log(page) if e["type"] == "pop"]
        assert pop["account"] == "4711"
        assert "account" in page.inner_text("#pop-vars") and "choice" in page.inner_text("#pop-vars")
        assert "First call" in page.inner_text("#pop-history")
        shot(page, "desktop-talking.png")
        record = first.result(timeout=60)
        expect(page.locator("#wrapup")).to_be_visible(timeout=10_000)
        page.select_option("#disposition", "follow_up")
        page.fill("#note", "Router replaced; call back Friday")
        page.click("#save-note")
        expect(page.locator("#call-message")).to_contain_text("Note saved")
        assert record["agent"] == "1001" and record["vars"]["account"] == "4711"

        second = pool.submit(caller, srv, tmp_path, "4711", "2", 0)  # 0: waits for our BYE
        expect(page.locator("#pop")).to_be_visible(timeout=60_000)
        history = page.locator("#pop-history")
        expect(history).to_contain_text("Router replaced; call back Friday", timeout=5_000)
        expect(history).to_contain_text("[follow_up]")
        shot(page, "desktop-pop-with-history.png")
        expect(page.locator("#hangup")).to_be_visible(timeout=15_000)
        page.click("#hangup")  # the agent ends the call from the desktop
        ended = second.result(timeout=60)
        expect(page.locator("#wrapup")).to_be_visible(timeout=10_000)
    assert ended["end_reason"] == "api" and ended["agent"] == "1001"
    assert errors == [], errors
    check_wallboard(browser, base)


def check_wallboard(browser: Any, base: str) -> None:
    """The supervisor's view after those two calls: figures, agents, chart, flows, recordings."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(base + "/wallboard")
    page.fill("#login-user", "1001")  # an agent is refused here
    page.fill("#login-password", "demo-1001")
    page.click("#login-button")
    expect(page.locator("#login-error")).to_contain_text("supervisors and admins")
    page.fill("#login-user", SUP[0])
    page.fill("#login-password", SUP[1])
    page.click("#login-button")
    expect(page.locator("#conn")).to_have_text("live", timeout=10_000)
    support = page.locator("#queues tbody tr", has_text="support")
    expect(support).to_have_count(1)
    cells = support.locator("td").all_inner_texts()
    assert cells[6] == "2" and cells[7] == "2", cells  # offered, answered
    expect(page.locator("#agents tbody tr")).to_have_count(4)
    expect(page.locator("#agents tbody tr", has_text="1001")).to_contain_text("ready")
    page.wait_for_function("window.sbBoard.log.filter(e => e.type === 'figures').length >= 2",
                           timeout=10_000)  # pushed live, every 2 s
    expect(page.locator("#flows svg")).to_have_count(1)
    expect(page.locator("#flows svg g.node")).to_have_count(8)
    expect(page.locator("#flows svg")).to_contain_text("to_billing")
    assert page.evaluate("window.sbBoard.history.length") >= 1
    rows = page.locator("#recordings tbody tr")
    if rows.count():  # the recordings API is there: play the newest with its timeline
        rows.first.click()
        page.wait_for_function("window.sbBoard.log.some(e => e.type === 'recording' && e.seconds > 0)",
                               timeout=10_000)
    else:
        expect(page.locator("#recordings-empty")).to_be_visible()
    shot(page, "wallboard.png")
    docs = browser.new_page()
    docs.goto(base + "/api/docs")
    expect(docs.locator("details.op")).not_to_have_count(0)
    expect(docs.locator("#who")).to_contain_text("logged in: sue")
    shot(docs, "api-docs.png")
    assert errors == [], errors


def test_desktop_shows_offline_and_reconnects(web_server: RunningServer, browser: Any) -> None:
    """A wrong password is refused in the page; after login the socket reconnects by itself
    when dropped (the page shows offline meanwhile)."""
    base = f"http://127.0.0.1:{web_server.http_port}"
    page = browser.new_page()
    log_in(page, base, "1002", "not-the-password")
    expect(page.locator("#login-error")).to_contain_text("wrong user name or password")
    log_in(page, base, "1002", "demo-1002")
    expect(page.locator("#conn")).to_have_text("online", timeout=10_000)
    page.evaluate("window.sbDesk.socket.drop()")  # as a network drop would
    expect(page.locator("#offline")).to_be_visible(timeout=5_000)
    expect(page.locator("#conn")).to_have_text("online", timeout=15_000)
    expect(page.locator("#offline")).to_be_hidden()
    page.reload()  # the session cookie keeps the agent logged in
    expect(page.locator("#agent-name")).to_have_text("Agent 1002", timeout=10_000)
