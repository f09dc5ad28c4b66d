"""The "now" map (Leaflet, vendored): its data, legend, basemap settings and outline."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re

import pytest
import shapely.geometry
from fastapi.testclient import TestClient

from floodwatch.config import OSM_TILES, parse_settings
from floodwatch.errors import ConfigError
from floodwatch.service.app import App
from floodwatch.web.app import create_app
from tests.conftest import ROOT, WEB_TILES_OFF, edit_config
from tests.test_web import CUT, SEGMENTS, event_id, fw_app  # noqa: F401 (fixture)

AT = {"at": CUT.isoformat()}


def map_data(html: str) -> dict:
    """The JSON the page hands to static/map.js."""
    found = re.search(r'<script type="application/json" id="map-data">(.*?)</script>', html, re.S)
    assert found is not None, "no #map-data block"
    return json.loads(found.group(1))


@pytest.fixture
def client(fw_app):  # noqa: F811
    with TestClient(create_app(fw_app, secret_key="test-secret")) as test_client:
        yield test_client


def test_roads_carry_their_state_level_forecast_flag_and_events(client):
    roads = map_data(client.get("/", params=AT).text)["roads"]
    observed = event_id(client, "tide-low", status="flooded")
    forecast = event_id(client, "tide-edge", kind="forecast")
    low, mid, edge = (roads["events"][s] for s in ("tide-low", "tide-mid", "tide-edge"))
    assert low == {"css": "seg lvl-1 tone-yellow", "level": 1, "forecast": False,
                   "event": observed,
                   "label": "Đang ngập: Mức 1: Ngập nhẹ: xe máy đi chậm được"}  # fmt: skip
    assert mid["css"] == "seg lvl-1 tone-yellow" and not mid["forecast"]
    assert edge == {"css": "seg fc lvl-1 tone-yellow", "level": 1, "forecast": True,
                    "event": forecast,
                    "label": "Dự báo sẽ ngập: Mức 1: Ngập nhẹ: xe máy đi chậm được"}  # fmt: skip
    # high-dry and rain-only are dry: neither an event nor without data.
    assert set(roads["events"]) == {"tide-low", "tide-mid", "tide-edge"}
    assert roads["nodata"] == roads["blind"] == []
    assert client.get(f"/events/{observed}").status_code == 200


def test_road_lines_are_served_once_for_the_browser_to_keep(client):
    roads = map_data(client.get("/", params=AT).text)["roads"]
    assert roads["url"].startswith("/map/roads.geojson?v=")
    response = client.get(roads["url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    assert response.headers["cache-control"] == "private, max-age=31536000, immutable"
    lines = {f["properties"]["id"]: f for f in response.json()["features"]}
    assert set(lines) == SEGMENTS
    assert lines["tide-low"]["properties"] == {"id": "tide-low", "name": "Đường thử triều thấp"}
    # WGS84 lon/lat, rounded to 5 decimals.
    coords = lines["tide-low"]["geometry"]["coordinates"]
    assert all(104 < lon < 106 and 8 < lat < 10 for lon, lat in coords)
    assert all(round(v, 5) == v for point in coords for v in point)
    # Without the current version (an old page), it is not kept.
    assert client.get("/map/roads.geojson?v=old").headers["cache-control"] == "no-cache"


def test_stations_are_labelled_with_their_alarm_level(client):
    data = map_data(client.get("/", params=AT).text)
    stations = {f["properties"]["id"]: f["properties"] for f in data["stations"]["features"]}
    assert stations["tp_ca_mau"]["label"] == "BĐ III"  # 1.07 m is over BĐ III (85 cm)
    assert stations["tp_ca_mau"]["css"] == "st bd-3"
    assert len(stations) == len(client.get("/api/v1/stations").json())


def test_roads_and_a_station_without_data_say_so(client):
    # A day before anything was replayed nobody knew any level: no data, never dry.
    html = client.get("/", params={"at": "2024-12-10T12:00+07:00"}).text
    data = map_data(html)
    assert data["roads"]["events"] == {} and data["roads"]["blind"] == []
    assert data["roads"]["nodata"] == sorted(SEGMENTS)  # none of them drawn as dry
    tp = next(f for f in data["stations"]["features"] if f["properties"]["id"] == "tp_ca_mau")
    assert tp["properties"] == {**tp["properties"], "css": "st nodata", "label": "không có dữ liệu"}


def test_the_legend_shows_the_configured_levels_only(client):
    html = client.get("/").text
    legend = html[html.index('id="chu-giai"') : html.index("</ul>", html.index('id="chu-giai"'))]
    assert re.findall(r"Mức (\d+)", legend) == ["1", "2", "3"]
    assert 'class="swatch nodata"' in legend and 'class="swatch dry"' in legend


def test_the_page_loads_leaflet_from_the_package_and_has_no_inline_code(client):
    html = client.get("/", params=AT).text
    assert '<script src="/static/vendor/leaflet/leaflet.js" defer></script>' in html
    assert '<script src="/static/map.js" defer></script>' in html
    vendor = ("leaflet.js", "leaflet.css", "LICENSE", "images/layers.png")
    for path in [f"vendor/leaflet/{name}" for name in vendor] + ["map.js"]:
        assert client.get(f"/static/{path}").status_code == 200, path
    assert "Leaflet 1.9.4" in client.get("/static/vendor/leaflet/leaflet.js").text
    # Strict CSP: scripts are files or JSON data, no handlers or style attributes.
    for attrs in re.findall(r"<script([^>]*)>", html):
        assert "src=" in attrs or 'type="application/json"' in attrs, attrs
    assert not re.search(r"\son\w+=|\sstyle=|<style", html)
    assert "<noscript>" in html and "Bản đồ cần JavaScript" in html


def test_default_tiles_are_openstreetmap_with_its_attribution(project):
    app = _app_with(project, "")  # the shipped config, whose [web] is commented out
    try:
        with TestClient(create_app(app, secret_key="s")) as client:
            tiles = map_data(client.get("/").text)["tiles"]
            assert client.app.state.web.tile_origin == "https://tile.openstreetmap.org"
    finally:
        app.close()
    assert tiles == {"url": OSM_TILES, "attribution": "© OpenStreetMap contributors",
                     "link": "https://www.openstreetmap.org/copyright", "max_zoom": 19}  # fmt: skip


def _app_with(project, web: str) -> App:
    edit_config(project, {WEB_TILES_OFF: web})
    return App.open(project, with_sources=False)


def test_tiles_none_and_custom_reach_the_page(project):
    app = _app_with(project, '[web]\ntiles = "none"\n')
    try:
        with TestClient(create_app(app, secret_key="s")) as client:
            data = map_data(client.get("/").text)
            assert data["tiles"] is None and client.app.state.web.tile_origin is None
            kinds = [f["properties"]["kind"] for f in data["outline"]["features"]]
            assert kinds == ["land", "coast"]  # the shipped outline, drawn without tiles
    finally:
        app.close()


def test_custom_tiles_need_and_carry_their_attribution(project):
    attribution = "© OpenStreetMap contributors, <b>tiles</b> by Sở TN&MT"
    app = _app_with(
        project,
        '[web]\ntiles = "http://127.0.0.1:8081/t/{z}/{x}/{y}.png"\n'
        f'tiles_attribution = "{attribution}"\n',
    )
    try:
        with TestClient(create_app(app, secret_key="s")) as client:
            html = client.get("/").text
            tiles = map_data(html)["tiles"]
            assert tiles["url"] == "http://127.0.0.1:8081/t/{z}/{x}/{y}.png"
            assert tiles["attribution"] == attribution and tiles["link"] is None
            assert "<b>" not in html and "\\u003cb\\u003e" in html  # map.js escapes it again
            assert client.app.state.web.tile_origin == "http://127.0.0.1:8081"
    finally:
        app.close()


@pytest.mark.parametrize(
    ("web", "problem"),
    [
        ({"tiles": "ftp://tiles.example/{z}/{x}/{y}.png"}, "web.tiles: 'ftp://"),
        ({"tiles": "tiles.example/{z}/{x}/{y}.png"}, "is not an http(s) tile URL"),
        ({"tiles": "https://tiles.example/{z}/{x}.png"}, "must hold {z}, {x} and {y}"),
        ({"tiles": "https://tiles.example/{z}/{x}/{y}.png"}, "web.tiles_attribution: required"),
        ({"tiles": ""}, "web.tiles: '' is not"),
        ({"tiles": 19}, "web.tiles: Input should be a valid string"),
        ({"tiles": "none", "tiles_attribution": " "}, "web.tiles_attribution: must be"),
        ({"tile": "none"}, "web.tile: unknown key"),
    ],
)
def test_bad_tiles_settings_are_one_line_naming_the_key(web, problem):
    with pytest.raises(ConfigError) as info:
        parse_settings({"web": web})
    [line] = info.value.problems
    assert problem in line, line


def test_a_missing_outline_file_is_a_config_problem(project):
    edit_config(project, {'outline = "../geodata/outline.geojson"': 'outline = "nowhere.geojson"'})
    with pytest.raises(ConfigError) as info:
        App.open(project, with_sources=False)
    assert any("geodata.outline: file not found" in p for p in info.value.problems)


def test_the_shipped_outline_is_the_coast_of_ca_mau_from_natural_earth():
    outline = json.loads((ROOT / "geodata" / "outline.geojson").read_text(encoding="utf-8"))
    kinds = {f["properties"]["kind"]: f for f in outline["features"]}
    assert set(kinds) == {"land", "coast"}
    assert all("Natural Earth" in f["properties"]["source"] for f in outline["features"])
    coast = kinds["coast"]["geometry"]["coordinates"]
    points = coast if isinstance(coast[0][0], float) else [p for line in coast for p in line]
    assert len(points) > 50
    assert all(104.3 <= lon <= 105.7 and 8.3 <= lat <= 9.7 for lon, lat in points)
    readme = (ROOT / "geodata" / "README.md").read_text(encoding="utf-8")
    assert "public domain" in readme and "world-atlas" in readme


def test_every_configured_level_has_its_legend_entry_and_colours(project):
    names = [f"Mức thử {n}" for n in range(1, 7)]
    edit_config(
        project,
        {
            "thresholds_m = [0.10, 0.30, 0.50]": "thresholds_m = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]",
            '  "Ngập sâu: không nên đi qua",\n]': '  "Ngập sâu: không nên đi qua",\n'
            + "".join(f'  "{n}",\n' for n in names[3:])
            + "]",
        },
    )
    app = App.open(project, with_sources=False)
    try:
        with TestClient(create_app(app, secret_key="s")) as client:
            html = client.get("/").text
    finally:
        app.close()
    legend = html[html.index('id="chu-giai"') : html.index("</ul>", html.index('id="chu-giai"'))]
    assert re.findall(r"Mức (\d+)", legend) == ["1", "2", "3", "4", "5", "6"]
    # The messages' rule (core.text.level_tone): yellow to red, two levels a colour.
    tones = re.findall(r'class="swatch lvl-\d+ tone-(\w+)"', legend)
    assert tones == ["yellow", "yellow", "orange", "orange", "red", "red"]
    css = (ROOT / "floodwatch" / "web" / "static" / "style.css").read_text(encoding="utf-8")
    for tone in set(tones):  # a swatch and a road colour, never the dry grey
        assert re.search(rf"\.swatch\.tone-{tone} \{{ background: [^;]+; \}}", css), tone
        assert re.search(rf"svg \.seg\.tone-{tone} \{{ stroke: [^;]+; \}}", css), tone


def test_the_outline_tool_decodes_topojson_and_keeps_only_the_shore():
    spec = importlib.util.spec_from_file_location(
        "make_outline", ROOT / "geodata" / "tools" / "make_outline.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    # One square of land, lon 104–105, lat 8–9, as quantized, delta-encoded TopoJSON arcs
    # (a grid of 0.5°): it sticks out of the province's box to the west and south.
    topology = {
        "type": "Topology",
        "transform": {"scale": [0.5, 0.5], "translate": [100, 0]},
        "arcs": [[[8, 16], [2, 0], [0, 2], [-2, 0], [0, -2]]],
        "objects": {"land": {"type": "GeometryCollection",
                             "geometries": [{"type": "Polygon", "arcs": [[0]]}]}},
    }  # fmt: skip
    land, coast = tool.outline(topology)["features"]
    assert land["properties"]["kind"] == "land" and coast["properties"]["kind"] == "coast"
    lons = [p[0] for ring in land["geometry"]["coordinates"][0] for p in ring]
    lats = [p[1] for ring in land["geometry"]["coordinates"][0] for p in ring]
    assert (min(lons), max(lons), min(lats), max(lats)) == (104.3, 105.0, 8.3, 9.0)
    # The shore is the square's east and north sides inside the box, not the box's cut.
    shore = shapely.geometry.shape(coast["geometry"])
    assert shore.length == pytest.approx(0.7 + 0.7)
    assert shore.bounds == (104.3, 8.3, 105.0, 9.0)


def test_vendored_leaflet_is_the_npm_release_unmodified():
    folder = ROOT / "floodwatch" / "web" / "static" / "vendor" / "leaflet"
    table = (folder / "VENDOR.md").read_text(encoding="utf-8")
    listed = dict(re.findall(r"^\| `([^`]+)` \| `([0-9a-f]{64})` \|$", table, re.M))
    shipped = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert set(listed) == shipped - {"VENDOR.md"}
    for name, digest in listed.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    assert (folder / "LICENSE").read_text().startswith("BSD 2-Clause License")
