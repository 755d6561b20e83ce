"""The operator console in a real browser (headless Chromium): every backend with its state,
no token needed to look; a wrong token shows an error and changes nothing; without a token the
actions are disabled (and the API refuses a call without one); with the token, draining a
backend that holds 200 open sessions shows its sessions falling to 0 and its state becoming
"drained", live, without a reload. Screenshots of the main views go to CONSOLE_ARTIFACTS."""

import re
import urllib.error
import urllib.request

from conftest import ARTIFACTS, TOKEN
from playwright.sync_api import expect

import switchyard_client as sy

BACKENDS = ["api-1", "api-2", "ws-1", "ws-2"]


def row(page, backend):
    return page.locator(f'tr[data-backend="{backend}"]')


def test_every_backend_shows_without_a_token_and_actions_are_disabled(router, page):
    page.goto(router.admin + "/console")
    for backend in BACKENDS:
        expect(row(page, backend).locator('[data-field="state"]')).to_have_text("up")
    expect(page.locator("#auth-state")).to_contain_text("read-only")
    buttons = page.locator("button.act")
    assert buttons.count() >= len(BACKENDS) * 2 + 1
    for i in range(buttons.count()):
        expect(buttons.nth(i)).to_be_disabled()
    page.screenshot(path=str(ARTIFACTS / "console-read-only.png"), full_page=True)
    # The API itself refuses an action without a token.
    req = urllib.request.Request(router.admin + "/admin/v1/backends/api-1/drain", data=b"{}", method="POST")
    try:
        urllib.request.urlopen(req, timeout=5)
        raise AssertionError("a drain without a token was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 401


def test_a_wrong_token_shows_an_error_and_changes_nothing(router, page):
    page.goto(router.admin + "/console")
    expect(row(page, "api-1").locator('[data-field="state"]')).to_have_text("up")
    page.fill("#token", "not-the-admin-token-at-all")
    page.click("#use-token")
    expect(page.locator("#message")).to_contain_text("Wrong admin token")
    expect(page.locator("#auth-state")).to_contain_text("read-only")
    assert page.evaluate("sessionStorage.length") == 0
    expect(row(page, "api-1").locator("button.act").first).to_be_disabled()
    for backend in BACKENDS:
        expect(row(page, backend).locator('[data-field="state"]')).to_have_text("up")
    assert "admin token refused" in router.log_text()


def test_a_drain_moves_200_sessions_and_the_page_shows_it_live(router, page):
    client = sy.Client({"regions": [{"name": "local", "endpoints": [router.url]}], "deadline": "20s"})
    sessions = [client.session("/ws/echo") for _ in range(200)]
    try:
        # The token from a link's fragment, as `switchyard demo` prints it.
        page.goto(f"{router.admin}/console#token={TOKEN}")
        expect(page.locator("#auth-state")).to_contain_text("token in use")
        assert "token=" not in page.url, "the token is removed from the address bar"
        ws1 = row(page, "ws-1")
        expect(ws1.locator('[data-field="sessions"]')).to_have_text(re.compile(r"^[1-9]\d*$"))
        before = int(ws1.locator('[data-field="sessions"]').inner_text())
        ws2_before = int(row(page, "ws-2").locator('[data-field="sessions"]').inner_text())
        assert before + ws2_before == 200, (before, ws2_before)
        page.screenshot(path=str(ARTIFACTS / "console-before-drain.png"), full_page=True)

        answers = iter(["5", "3"])  # the drain's deadline and spread (s), then the confirmation
        page.on("dialog", lambda d: d.accept(next(answers, None)) if d.type == "prompt" else d.accept())
        ws1.get_by_role("button", name="Drain").click()
        expect(page.locator("#message")).to_contain_text("202")
        expect(ws1.locator('[data-field="state"]')).to_have_text("draining", timeout=5000)
        expect(page.locator("#progress")).to_contain_text("draining ws-1")
        page.screenshot(path=str(ARTIFACTS / "console-draining.png"), full_page=True)
        expect(ws1.locator('[data-field="sessions"]')).to_have_text("0", timeout=30000)
        expect(ws1.locator('[data-field="state"]')).to_have_text("drained", timeout=30000)
        expect(row(page, "ws-2").locator('[data-field="sessions"]')).to_have_text("200", timeout=30000)
        page.screenshot(path=str(ARTIFACTS / "console-drained.png"), full_page=True)
        log = router.log_text()
        assert re.search(r"admin call.*token=[0-9a-f]{8}.*path=/admin/v1/backends/ws-1/drain", log), log[-2000:]
    finally:
        for s in sessions:
            s.close()
