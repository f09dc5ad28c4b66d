"""The "now" map in a real browser (Debian's Chromium, Playwright): Leaflet from the package,
basemap tiles from a tile server this test starts on 127.0.0.1, and the offline map.

Screenshots of the map at 1366×768 and 390×844 are kept in test-artefacts/ (ignored by git).
"""

from __future__ import annotations

import io
import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from tests import test_browser, test_web
from tests.conftest import ROOT, WEB_TILES_OFF, edit_config

sync_api = test_browser.sync_api
fw_app = test_browser.fw_app
base_url = test_browser.base_url
page = test_browser.page

ARTEFACTS = ROOT / "test-artefacts"
AT = test_web.CUT.isoformat().replace("+", "%2B")
TILE_RGB = (0xE8, 0xD8, 0xF0)  # a pale lilac no part of the page uses
LAND_RGB = (0xF4, 0xF1, 0xE8)  # the outline's land (style.css)
LVL1_RGB = (0xFD, 0xD8, 0x35)  # --tone-yellow: a road at level 1 of 3
BD3_RGB = (0xFF, 0x98, 0x00)  # --bd3: a station over BĐ III
ATTRIBUTION = "Bản đồ nền thử nghiệm © Floodwatch"
SIZES = {"desktop": (1366, 768), "phone": (390, 844)}


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain one-colour RGB PNG, written by hand (zlib and struct only)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width  # filter type 0, then the pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))  # fmt: skip


class TileServer:
    """A tile server on 127.0.0.1: the same 256×256 PNG for any /{z}/{x}/{y}.png, counted;
    `broken`: a truncated PNG, which no browser can draw (the tile layer's error)."""

    def __init__(self, broken: bool = False):
        tile = png(256, 256, TILE_RGB)
        tile = tile[:40] if broken else tile
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                server.requests.append(self.path)
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) == 3 and parts[2].endswith(".png"):
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Content-Length", str(len(tile)))
                    self.end_headers()
                    self.wfile.write(tile)
                else:
                    self.send_error(404)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> TileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def tiles_on():
    """The map's tiles: "local" (the test's server), "broken" (it sends no pictures) or
    "none" (`[web] tiles = "none"`); a test parametrizes this."""
    return "local"


@pytest.fixture
def tiles(tiles_on):
    with TileServer(broken=tiles_on == "broken") as server:
        yield server


HOSTILE_STATION = "Gành <b>Hào</b> <img src=x>"


@pytest.fixture
def project(project, tiles, tiles_on):
    """The browser tests' project, with `[web] tiles` on the local tile server, or "none";
    a station's name holds HTML (the map shows it as text)."""
    stations = project.parent.parent / "geodata" / "stations.geojson"
    text = stations.read_text(encoding="utf-8")
    name = '"name": "Gành Hào"'
    assert text.count(name) == 1
    stations.write_text(text.replace(name, f'"name": "{HOSTILE_STATION}"'), encoding="utf-8")
    if tiles_on != "none":
        web = (f'[web]\ntiles = "{tiles.url}/{{z}}/{{x}}/{{y}}.png"\n'
               f'tiles_attribution = "{ATTRIBUTION}"\n')  # fmt: skip
        edit_config(project, {WEB_TILES_OFF: web})
    return project


def open_map(page, query: str = f"?at={AT}") -> None:
    """Load the now page and wait until map.js has drawn the map and its tiles came.

    (Leaving a page, or zooming, while tiles load cancels them: ERR_ABORTED, which the
    `page` fixture counts as a failed request.)
    """
    page.goto("/" + query)
    page.wait_for_selector("#ban-do-khung.ready")
    settle(page)


def settle(page) -> None:
    """Wait until the map stands still and every tile it asked for has come."""
    page.wait_for_function(
        """() => !document.querySelector('.leaflet-zoom-anim, .leaflet-pan-anim')
                 && [...document.querySelectorAll('img.leaflet-tile')].every(i => i.complete)"""
    )
    page.wait_for_timeout(100)


def road_classes(page) -> dict[str, str]:
    """Each road's SVG path classes, by segment id (through the map's layers)."""
    return page.evaluate(
        """() => {
          const found = {};
          floodwatchMap.eachLayer(l => {
            if (l.state && l._path) {
              found[l.feature.properties.id] = l._path.getAttribute("class");
            }
          });
          return found;
        }"""
    )


def stroke(page, selector: str) -> dict:
    """The computed stroke of the first element matching `selector`."""
    return page.locator(selector).first.evaluate(
        """e => { const s = getComputedStyle(e);
                  return {colour: s.stroke, dash: s.strokeDasharray, width: s.strokeWidth}; }"""
    )


def road_point(page, segment: str) -> tuple[float, float]:
    """The page coordinates of the middle of a road's line."""
    return page.evaluate(
        """id => {
          let target = null;
          floodwatchMap.eachLayer(l => { if (l.feature && l.feature.properties.id === id
                                              && l.getLatLngs) target = l; });
          const line = target.getLatLngs().flat();
          const a = line[0], b = line[line.length - 1];
          const mid = L.latLng((a.lat + b.lat) / 2, (a.lng + b.lng) / 2);
          const p = floodwatchMap.latLngToContainerPoint(mid);
          const box = floodwatchMap.getContainer().getBoundingClientRect();
          return [box.left + p.x, box.top + p.y];
        }""",
        segment,
    )


def station_point(page, station: str) -> tuple[float, float]:
    """The page coordinates of a station's marker."""
    return page.evaluate(
        """id => {
          let p = null;
          floodwatchMap.eachLayer(l => { if (l.feature && l.feature.properties.id === id
                                             && l.getLatLng) p = l.getLatLng(); });
          const xy = floodwatchMap.latLngToContainerPoint(p);
          const box = floodwatchMap.getContainer().getBoundingClientRect();
          return [box.left + xy.x, box.top + xy.y];
        }""",
        station,
    )


def pixels(page, *points: tuple[float, float]) -> list[tuple[int, int, int]]:
    """The colours the browser shows at these page points (from a screenshot)."""
    shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    return [shot.getpixel((round(x), round(y))) for x, y in points]


def click_road(page, segment: str) -> None:
    """A real mouse click on the middle of a road's line."""
    page.mouse.click(*road_point(page, segment))


def resize(page, width: int, height: int) -> None:
    """A new window size, with no page open (a map resized asks for tiles the next page
    would cancel)."""
    page.goto("about:blank")
    page.set_viewport_size({"width": width, "height": height})


def screenshots(page, name: str) -> None:
    """The map at the desktop and phone sizes, kept as artefacts."""
    ARTEFACTS.mkdir(exist_ok=True)
    for size, (width, height) in SIZES.items():
        resize(page, width, height)
        open_map(page)
        page.locator("#ban-do").scroll_into_view_if_needed()
        path = ARTEFACTS / f"map-{name}-{size}-{width}x{height}.png"
        page.locator("#ban-do").screenshot(path=str(path))
        assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 5_000


def check_roads_and_stations(page) -> None:
    """Every road drawn with its state's classes, and TP Cà Mau labelled with its BĐ level."""
    classes = road_classes(page)
    assert set(classes) == test_web.SEGMENTS
    assert "seg lvl-1" in classes["tide-low"] and "seg lvl-1" in classes["tide-mid"]
    assert "seg fc lvl-1" in classes["tide-edge"]  # forecast: dashed
    assert "seg dry" in classes["high-dry"] and "seg dry" in classes["rain-only"]
    assert stroke(page, "path.seg.fc")["dash"] not in ("none", "")
    assert stroke(page, "path.seg.lvl-1:not(.fc)")["dash"] == "none"
    dry = stroke(page, "path.seg.dry")
    assert dry["colour"] == "rgb(46, 125, 50)" and dry["dash"] == "none"  # thin green
    label = page.locator(".leaflet-tooltip.station-label", has_text="TP Cà Mau")
    assert label.inner_text() == "TP Cà Mau: BĐ III" and label.is_visible()
    assert page.locator(".leaflet-tooltip.station-label").count() == 7  # every station
    hostile = page.locator(".leaflet-tooltip.station-label", has_text="Gành")
    assert hostile.inner_text().startswith(HOSTILE_STATION + ": ")  # as text, not HTML
    assert hostile.locator("b, img").count() == 0


def check_drawn_on_top(page, background: tuple[int, int, int]) -> None:
    """What the eye sees: the flooded road's colour on its line, the station's BĐ III fill on
    its marker, and the background (tiles, or the outline's land) a little way off."""
    settle(page)
    road = road_point(page, "tide-low")
    station = station_point(page, "tp_ca_mau")
    away = (road[0], road[1] - 120)
    assert pixels(page, road, station, away) == [LVL1_RGB, BD3_RGB, background]


@pytest.mark.parametrize("tiles_on", ["local"])
def test_map_with_tiles_from_a_local_server(page, tiles, tiles_on):
    page.set_viewport_size({"width": 1366, "height": 768})
    open_map(page)
    # Tiles were asked of the configured server and drawn.
    page.wait_for_function("document.querySelectorAll('img.leaflet-tile-loaded').length > 0")
    assert tiles.requests and all(r.endswith(".png") for r in tiles.requests)
    sizes = page.locator("img.leaflet-tile-loaded").evaluate_all(
        "imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight, i.src])"
    )
    assert all(w == h == 256 and src.startswith(tiles.url) for w, h, src in sizes)
    check_roads_and_stations(page)
    check_drawn_on_top(page, TILE_RGB)
    # Fitted to the flooded roads: zoomed into the city, both flooded roads in view.
    view = page.evaluate(
        """() => { const b = floodwatchMap.getBounds();
                   return [floodwatchMap.getZoom(), b.contains([9.176, 105.145]),
                           b.contains([9.177, 105.1485])]; }"""
    )
    assert view[0] >= 15 and view[1] and view[2], view
    # The attribution is on screen.
    credit = page.locator(".leaflet-control-attribution")
    assert credit.is_visible() and ATTRIBUTION in credit.inner_text()
    # Street zoom names the roads in view.
    assert page.locator(".leaflet-tooltip.road-label.named").count() == 0
    page.evaluate("floodwatchMap.setZoom(17)")
    named = page.locator(".leaflet-tooltip.road-label.named")
    named.first.wait_for()
    assert named.count() >= 2 and "Đường thử triều thấp" in named.all_inner_texts()
    settle(page)
    open_map(page)
    # Click a road: its popup links to its current event, and the link works.
    events = page.request.get("/api/v1/events", params={"status": "flooded"}).json()["events"]
    observed = next(e["id"] for e in events if e["segment_id"] == "tide-low")
    click_road(page, "tide-low")
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    assert "Đường thử triều thấp" in popup.inner_text()
    assert "Đang ngập: Mức 1" in popup.inner_text()
    screenshots(page, "tiles")
    resize(page, 1366, 768)
    open_map(page)
    click_road(page, "tide-low")
    page.locator(".leaflet-popup-content a", has_text="Xem đợt ngập").click()
    page.wait_for_url(f"**/events/{observed}")
    assert page.locator("h1").inner_text().startswith(f"Sự kiện ngập số {observed}")


@pytest.mark.parametrize("tiles_on", ["none"])
def test_map_offline_without_tiles(page, tiles, tiles_on, base_url):
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.set_viewport_size({"width": 1366, "height": 768})
    open_map(page)
    check_roads_and_stations(page)
    check_drawn_on_top(page, LAND_RGB)
    # The coast lies under the roads; no tile anywhere, no request off this app.
    assert page.locator(".leaflet-outline-pane path.outline.coast").count() == 1
    assert page.locator(".leaflet-outline-pane path.outline.land").count() == 1
    assert page.locator("img.leaflet-tile").count() == 0
    page.evaluate("floodwatchMap.setZoom(11)")
    settle(page)
    assert page.locator(".leaflet-outline-pane path.outline.coast").is_visible()
    assert "Natural Earth" in page.locator(".leaflet-control-attribution").inner_text()
    # Without data the roads are dark dots, never the green of a dry road.
    open_map(page, "?at=2024-12-10T12:00%2B07:00")
    assert all("seg nodata" in c for c in road_classes(page).values())
    nodata = stroke(page, "path.seg.nodata")
    assert nodata["colour"] == "rgb(61, 61, 61)" and nodata["dash"] != "none"
    label = page.locator(".leaflet-tooltip.station-label", has_text="TP Cà Mau")
    assert label.inner_text() == "TP Cà Mau: không có dữ liệu"
    screenshots(page, "offline")
    resize(page, 1366, 768)
    open_map(page)
    page.evaluate("floodwatchMap.setView([9.0, 105.1], 9, {animate: false})")
    page.locator("#ban-do").screenshot(path=str(ARTEFACTS / "map-offline-province-1366x768.png"))
    assert tiles.requests == []
    assert asked and all(url.startswith(base_url) for url in asked), asked


@pytest.mark.parametrize("tiles_on", ["broken"])
def test_map_when_tiles_fail(page, tiles, tiles_on):
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"/?at={AT}")
    page.wait_for_selector("#ban-do-khung.ready")
    note = page.locator("#ban-do-nen")
    note.wait_for()  # "Không tải được bản đồ nền…", under the map
    assert note.is_visible() and "Không tải được bản đồ nền" in note.inner_text()
    assert tiles.requests
    check_roads_and_stations(page)
    check_drawn_on_top(page, LAND_RGB)  # the coast's land shows where tiles failed
    assert page.locator(".leaflet-outline-pane path.outline.coast").count() == 1
