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
from pathlib import Path

import pytest
from click.testing import CliRunner

CHROMIUM = Path("/usr/bin/chromium")
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

            def on_response(response):
                if response.status >= 400:
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
