"""The locked doors in a real browser (Debian's Chromium through Playwright): /docs renders
the API from local assets with no request beyond 127.0.0.1, and no page breaks the
Content-Security-Policy the app sends.

Uses the fixtures of tests/test_browser.py (the real app served by uvicorn on a loopback
port, a fresh Chromium page that fails the test on any failed request or script error).
"""

from __future__ import annotations

from pathlib import Path

from tests import test_browser
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, PASSWORD, USERNAME, sync_api

fw_app = test_browser.fw_app
base_url = test_browser.base_url
page = test_browser.page
ARTEFACTS = Path(__file__).resolve().parent.parent / "test-artefacts"


def watch(page) -> tuple[list[str], list[str]]:
    """(URLs requested, CSP violations reported) of a page from now on."""
    requested: list[str] = []
    violations: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return requested, violations


def test_docs_render_the_api_offline_under_the_csp(page, base_url):
    requested, violations = watch(page)
    page.goto("/docs")
    page.locator(".opblock").first.wait_for()
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert {"/api/v1/events", "/api/v1/status", "/healthz"} <= {p.strip() for p in paths}
    page.locator(".opblock-summary-path", has_text="/api/v1/status").first.click()
    page.get_by_role("button", name="Try it out").first.wait_for()
    ARTEFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / "docs-1366.png"), full_page=False)
    assert requested and all(u.startswith(base_url) or u.startswith("data:")
                             for u in requested), requested  # fmt: skip
    assert violations == []


def test_pages_keep_to_the_csp(page, base_url):
    requested, violations = watch(page)
    page.goto("/login?next=/log")
    page.get_by_label("Tên đăng nhập").fill(USERNAME)
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    page.wait_for_url("**/log")
    target = page.locator("tr.event").first.get_attribute("data-event")
    for url in ("/", "/log", f"/events/{target}", "/roads/tide-low", "/maintenance"):
        response = page.goto(url)
        page.wait_for_load_state("networkidle")  # the lazy hydrograph too
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], url
        ARTEFACTS.mkdir(exist_ok=True)
        name = url.strip("/").replace("/", "-") or "now"
        page.screenshot(path=str(ARTEFACTS / f"csp-{name}-1366.png"))
    assert violations == []
    assert all(u.startswith(base_url) or u.startswith("data:") for u in requested)


def test_a_page_cannot_be_framed(base_url):
    """Clickjacking: a page of another site framing the login (or acknowledge) form gets
    nothing: the browser blocks the response (CSP frame-ancestors, X-Frame-Options)."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            failures: list[str] = []
            page.on("requestfailed", lambda r: failures.append(f"{r.url} {r.failure}"))
            page.set_content(f'<iframe id="f" src="{base_url}/login"></iframe>')
            page.wait_for_timeout(1000)
            assert page.frame_locator("#f").locator("input[name=password]").count() == 0
            assert failures == [f"{base_url}/login net::ERR_BLOCKED_BY_RESPONSE"]
        finally:
            browser.close()
