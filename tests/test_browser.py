"""The operators' web in a real browser: Debian's headless Chromium driven by Playwright.

The real app is served by uvicorn on a loopback port, on the replayed spring tide of
tests/test_web.py, with an operator made by `floodwatch user add --password-stdin`.
Playwright never downloads a browser here: it drives /usr/bin/chromium (`.ci/run`
installs Debian's `chromium` when it is missing).
"""

from __future__ import annotations

import csv
import io
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

CHROMIUM = Path("/usr/bin/chromium")
# Screenshots of every page at each width, kept after the run (ignored by git).
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artefacts" / "screenshots"
if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} not found: install Debian's chromium package (.ci/run does)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is missing (pip install -e '.[dev]')"
)

import uvicorn  # noqa: E402

from floodwatch.cli import main  # noqa: E402
from floodwatch.web.app import create_app  # noqa: E402
from tests import test_web  # noqa: E402

# The replayed project, its roads and events (a fixture of tests/test_web.py).
fw_app = test_web.fw_app

# As the machine notes say: no sandbox as root, no GPU, and no background connections
# (the closed network refuses them). Playwright itself adds --headless and a fresh,
# temporary --user-data-dir for every launch.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USERNAME = "minh"
PASSWORD = "nước-lên-2024"
DISPLAY_NAME = "Trần Văn Minh"
TIMEOUT_MS = 10_000


@pytest.fixture
def base_url(fw_app, project):
    """The real web app served by uvicorn on 127.0.0.1 (a free port), with an operator."""
    result = CliRunner().invoke(
        main,
        ["--config", str(project), "user", "add", USERNAME, "--password-stdin",
         "--display-name", DISPLAY_NAME],
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = uvicorn.Config(
        create_app(fw_app, secret_key="browser-test-secret"),
        host="127.0.0.1",
        port=0,  # the kernel picks a free port; read back below
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page(base_url):
    """A fresh Chromium page on the app; fails the test on any failed or erroring request."""
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(base_url=base_url, accept_downloads=True, locale="vi-VN")
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))

            def on_failed(request):
                # A link that turns into a download ends its navigation as ERR_ABORTED.
                if not (
                    request.url.split("?")[0].endswith(".csv") and "ABORTED" in request.failure
                ):
                    problems.append(f"failed: {request.url} {request.failure}")

            page.on("requestfailed", on_failed)

            expected = set()  # paths a test expects to be refused (an error page is the point)
            page.expect_refused = expected.add

            def on_response(response):
                if response.status >= 400 and urlsplit(response.url).path not in expected:
                    problems.append(f"HTTP {response.status}: {response.url}")

            page.on("response", on_response)
            yield page
            context.close()
        finally:
            browser.close()
    assert problems == []


def row_ids(page) -> list[int]:
    """Event ids of the log table's rows, in page order."""
    return [int(i) for i in page.locator("tr.event").evaluate_all(
        "rows => rows.map(r => r.dataset.event)"
    )]  # fmt: skip


def api_ids(page, **params) -> set[int]:
    """Event ids from the JSON API, fetched with the browser's own session."""
    response = page.request.get("/api/v1/events", params={"limit": 1000, **params})
    assert response.ok
    return {e["id"] for e in response.json()["events"]}


def test_operator_logs_in_filters_notes_and_exports(page, tmp_path):
    # Log in through the form; it lands on the log, named in the header.
    page.goto("/login?next=/log")
    page.get_by_label("Tên đăng nhập").fill(USERNAME)
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    page.wait_for_url("**/log")
    assert page.locator("header .who").inner_text() == DISPLAY_NAME
    everything = row_ids(page)
    assert len(everything) == 7 and set(everything) == api_ids(page)

    # Filter by cause and minimum level with the form's selects: fewer rows, the right ones.
    page.locator("select[name=cause]").select_option("tide")
    page.get_by_role("button", name="Lọc").click()
    page.wait_for_url("**/log?*cause=tide*")
    tide = row_ids(page)
    assert 0 < len(tide) < len(everything) and set(tide) == api_ids(page, cause="tide")
    assert page.locator("select[name=cause]").input_value() == "tide"  # the filter stays set
    assert page.locator(".toolbar").inner_text().startswith(f"{len(tide)} sự kiện")
    ward = "Phường An Xuyên"  # every replayed road is in it: the same rows
    page.locator("select[name=ward]").select_option(ward)
    page.get_by_label("Tên đường").fill("triều thấp")
    page.get_by_role("button", name="Lọc").click()
    page.wait_for_url("**road=*")
    low = row_ids(page)
    assert 0 < len(low) < len(tide)
    assert set(low) == api_ids(page, cause="tide", ward=ward, road="triều thấp")
    page.get_by_label("Tên đường").fill("không có đường này")
    page.get_by_role("button", name="Lọc").click()
    page.wait_for_function("document.querySelectorAll('tr.event').length === 0")
    assert "Không có sự kiện nào khớp bộ lọc." in page.locator("#nhat-ky").inner_text()
    page.get_by_label("Tên đường").fill("")
    page.get_by_role("button", name="Lọc").click()
    page.wait_for_function("document.querySelectorAll('tr.event').length > 0")
    assert row_ids(page) == tide and page.locator("select[name=ward]").input_value() == ward

    # One click downloads the filtered log as CSV.
    with page.expect_download() as info:
        page.locator("a#csv").click()
    download = info.value
    assert download.suggested_filename == "nhat-ky-ngap.csv"
    raw = Path(download.path()).read_bytes()
    assert raw.startswith("\ufeff".encode())  # BOM, so spreadsheets read it as UTF-8
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert {"Mã đợt", "Tên đường", "Nguyên nhân", "Bắt đầu", "Độ sâu lớn nhất (m)"} <= set(rows[0])
    assert {int(r["Mã đợt"]) for r in rows} == set(tide)
    first = next(r for r in rows if int(r["Mã đợt"]) == tide[0])
    assert first["Nguyên nhân"] == "triều cường" and first["Tên đường"]

    # Open an event from its row; its hydrograph image really decodes in the browser.
    target = tide[0]
    page.locator(f'tr[data-event="{target}"] a[href="/events/{target}"]').click()
    page.wait_for_url(f"**/events/{target}")
    assert page.locator("h1").inner_text().startswith(f"Sự kiện ngập số {target}")
    assert "Bắt đầu" in page.locator("#dien-bien").inner_text()
    chart = page.locator("figure.chart img")
    chart.scroll_into_view_if_needed()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=chart.element_handle()
    )

    # Add a note: the page comes back with it, signed by the operator.
    note = "Nước qua nửa bánh xe máy, đã cử tổ trực (kiểm thử trình duyệt)."
    page.get_by_label("Ghi chú mới").fill(note)
    page.get_by_role("button", name="Thêm ghi chú").click()
    page.wait_for_url(f"**/events/{target}#ghi-chu")
    notes = page.locator("ul.notes li.note-note")
    assert notes.count() == 1
    assert note in notes.inner_text() and DISPLAY_NAME in notes.inner_text()
    detail = page.request.get(f"/api/v1/events/{target}").json()
    assert [(n["author"], n["text"]) for n in detail["notes"]] == [(DISPLAY_NAME, note)]
    # The map is tested in tests/test_map_browser.py.


DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


def log_in(page, next_path: str = "/") -> None:
    """Log in as the test operator through the form."""
    page.goto(f"/login?next={next_path}")
    page.get_by_label("Tên đăng nhập").fill(USERNAME)
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    page.wait_for_url(f"**{next_path}")
    map_settled(page)


def map_settled(page) -> None:
    """On a page with the map, wait until it has its roads: leaving earlier aborts the
    fetch, which the page fixture counts as a failed request."""
    page.wait_for_load_state("load")
    if page.locator("#ban-do-khung").count():
        page.wait_for_selector("#ban-do-khung.ready")


def every_page(page) -> dict[str, str]:
    """{name: path} of every kind of page, errors included."""
    closed = min(api_ids(page, status="closed"))
    return {
        "now": f"/?at={test_web.CUT.isoformat().replace('+', '%2B')}",
        "now-live": "/",
        "log": "/log",
        "log-filter-error": "/log?level=abc&from=notadate",
        "event": f"/events/{closed}",
        "road": "/roads/tide-low",
        "maintenance": "/maintenance?from=2024-12-01&to=2024-12-31",
        "maintenance-error": "/maintenance?from=abc",
        "look-back-error": "/?at=notadate",
        "login": "/login",
        "not-found": "/events/999999",
    }


def no_sideways_scroll(page) -> tuple[int, int]:
    """(scrollWidth, innerWidth) of the page: the first never above the second."""
    return page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["1366", "390"])
def test_every_page_fits_the_screen_without_sideways_scroll(page, size):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(size)
    log_in(page)  # the operator's view: logout, silence and note forms are on the pages too
    for name, path in every_page(page).items():
        if name.endswith("error") or name == "not-found":
            page.expect_refused(urlsplit(path).path)
        page.goto(path, wait_until="networkidle")
        map_settled(page)
        scroll, inner = no_sideways_scroll(page)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{size['width']}.png"), full_page=True)
        page.wait_for_load_state("networkidle")  # lazy images the full-page shot asked for
        assert scroll <= inner, f"{name} ({path}) at {size['width']} px: {scroll} > {inner}"
        header = page.locator("header.top").bounding_box()
        assert header["x"] >= 0 and header["x"] + header["width"] <= inner, name


def test_on_a_phone_the_log_filters_fold_away_and_the_first_event_shows(page):
    page.set_viewport_size(PHONE)
    page.goto("/log")
    filters = page.locator("details#bo-loc")
    assert filters.evaluate("d => d.open") is False
    assert not page.locator("select[name=cause]").is_visible()
    first = page.locator("tr.event").first.bounding_box()
    assert first is not None and first["y"] + min(first["height"], 120) <= PHONE["height"]
    # The level and status of each event are on screen (a card), never cut off to the right.
    level = page.locator("tr.event").first.locator("td").nth(1)
    box = level.bounding_box()
    assert box["x"] + box["width"] <= PHONE["width"] and "Mức" in level.evaluate(
        "td => getComputedStyle(td, '::before').content"
    )
    # One tap opens the filters; they work as on a desktop.
    page.get_by_text("Bộ lọc").first.click()
    page.locator("select[name=cause]").select_option("tide")
    page.get_by_role("button", name="Lọc").click()
    page.wait_for_url("**cause=tide*")
    assert set(row_ids(page)) == api_ids(page, cause="tide")
    assert "(1 đang dùng)" in page.locator("details#bo-loc summary").inner_text()
    # On a wide screen the filters are open at once.
    page.set_viewport_size(DESKTOP)
    page.goto("/log")
    assert page.locator("details#bo-loc").evaluate("d => d.open") is True


def test_a_bad_filter_is_shown_on_the_log_in_vietnamese(page):
    page.expect_refused("/log")
    page.goto("/log")
    page.locator("input[name=road]").fill("x" * 201)
    page.locator("select[name=cause]").select_option("tide")
    page.get_by_role("button", name="Lọc").click()
    page.wait_for_url("**road=*")
    alert = page.locator("#loi-bo-loc")
    assert "Bộ lọc không hợp lệ" in alert.inner_text()
    assert "«Tên đường» (road): dài quá 200 ký tự" in alert.inner_text()
    assert page.locator("#loi-road").inner_text() == "dài quá 200 ký tự"  # by the field
    assert page.locator("select[name=cause]").input_value() == "tide"  # what was chosen stays
    assert page.locator("tr.event").count() == 0 and page.locator("#nhat-ky").count() == 0
    page.goto("/log?level=abc")
    assert "phải là số nguyên từ 0 đến 10" in page.locator("#loi-level").inner_text()
    assert page.locator("details#bo-loc").evaluate("d => d.open") is True


def test_operator_mutes_a_road_then_lifts_the_silence(page, fw_app):
    log_in(page, "/roads/tide-low")
    for reason in ("Thi công cống", "Thi công cống, thêm một ngày"):  # the second extends
        page.locator("form[action='/silences'] input[name=reason]").fill(reason)
        page.get_by_role("button", name="Tạm tắt cảnh báo").click()
        page.wait_for_url("**/roads/tide-low")
    items = page.locator("#tam-tat li")
    assert items.count() == 1 and "thêm một ngày" in items.inner_text()
    assert DISPLAY_NAME in items.inner_text()
    page.goto("/")
    listed = page.locator("#danh-sach-tam-tat li")
    assert listed.count() == 1 and "Đường thử triều thấp" in listed.inner_text()
    listed.get_by_role("button", name="Bỏ tắt").click()
    page.wait_for_url("**/#tam-tat")
    assert page.locator("#danh-sach-tam-tat li").count() == 0
    now = datetime.now(UTC)
    assert ("segment", "tide-low") not in fw_app.store.silences.active(now)
