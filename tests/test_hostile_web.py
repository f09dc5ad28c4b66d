"""Hostile web and API parameters: a 4xx (400/404/422) with a clear message, never a 500.

Oversized integers, negative offsets, dates that are no dates, NUL bytes, path
traversal and very long query strings, on the JSON API and on the pages.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from floodwatch.service.app import App
from floodwatch.web.app import create_app
from tests.conftest import DATA
from tests.hostile_helpers import cli, recent_hours, write_config

HUGE = "9" * 30  # beyond any 64-bit integer
LONG = "a" * 20_000  # httpx refuses URLs over 64 KiB before they leave the client

# (id, URL, "4xx" when a refusal is due, "ok" when a clamped/empty 200 is fine too)
CASES = [
    ("api-limit-huge", f"/api/v1/events?limit={HUGE}", "4xx"),
    ("api-limit-negative", "/api/v1/events?limit=-1", "4xx"),
    ("api-offset-negative", "/api/v1/events?offset=-1", "4xx"),
    ("api-offset-huge", f"/api/v1/events?offset={HUGE}", "4xx"),
    ("api-level-text", "/api/v1/events?level=abc", "4xx"),
    ("api-level-huge", f"/api/v1/events?level={HUGE}", "4xx"),
    ("api-desc-text", "/api/v1/events?desc=maybe", "4xx"),
    ("api-from-not-a-date", "/api/v1/events?from=notadate", "4xx"),
    ("api-to-impossible-date", "/api/v1/events?to=9999-99-99", "4xx"),
    ("api-from-year-0001", "/api/v1/events?from=0001-01-01", "ok"),
    ("api-to-year-9999", "/api/v1/events?to=9999-12-31", "ok"),
    ("api-kind-nul", "/api/v1/events?kind=observed%00", "4xx"),
    ("api-road-nul", "/api/v1/events?road=%00", "4xx"),
    ("api-road-20k", f"/api/v1/events?road={LONG}", "ok"),
    ("api-event-huge-id", f"/api/v1/events/{HUGE}", "4xx"),
    ("api-event-negative-id", "/api/v1/events/-1", "4xx"),
    ("api-event-text-id", "/api/v1/events/abc", "4xx"),
    ("api-segment-traversal", "/api/v1/segments/..%2f..%2fetc%2fpasswd", "4xx"),
    ("api-segment-nul", "/api/v1/segments/%00", "4xx"),
    ("api-readings-limit-huge", f"/api/v1/readings?limit={HUGE}", "4xx"),
    ("api-readings-from-not-a-date", "/api/v1/readings?from=notadate", "4xx"),
    ("api-readings-station-nul", "/api/v1/readings?station=tp_ca_mau%00", "4xx"),
    ("api-stations-at-impossible", "/api/v1/stations?at=9999-99-99", "4xx"),
    ("api-stations-at-year-0001", "/api/v1/stations?at=0001-01-01", "4xx"),
    ("api-cap-since-not-a-date", "/api/v1/cap.atom?since=notadate", "4xx"),
    ("api-cap-since-year-0001", "/api/v1/cap.atom?since=0001-01-01", "ok"),
    ("page-now-at-impossible", "/?at=9999-99-99", "4xx"),
    ("page-now-at-year-0001", "/?at=0001-01-01", "4xx"),
    ("page-log-per-huge", f"/log?per={HUGE}", "ok"),
    ("page-log-page-negative", "/log?page=-5", "ok"),
    ("page-log-page-huge", f"/log?page={HUGE}", "ok"),
    ("page-log-level-huge", f"/log?level={HUGE}", "4xx"),
    ("page-log-from-not-a-date", "/log?from=notadate", "4xx"),
    ("page-log-long-query", f"/log?road={LONG}&ward={LONG}", "ok"),
    ("page-log-csv-to-impossible", "/log.csv?to=9999-99-99", "4xx"),
    ("page-event-huge-id", f"/events/{HUGE}", "4xx"),
    ("page-hydrograph-huge-id", f"/events/{HUGE}/hydrograph.png", "4xx"),
    ("page-road-traversal", "/roads/..%2f..%2fetc%2fpasswd", "4xx"),
    ("page-road-nul", "/roads/%00", "4xx"),
    ("page-maintenance-from-not-a-date", "/maintenance?from=notadate", "4xx"),
    ("page-maintenance-year-0001", "/maintenance?from=0001-01-01&to=0001-01-02", "ok"),
    ("page-maintenance-xlsx-to-impossible", "/maintenance.xlsx?to=9999-99-99", "4xx"),
    ("page-maintenance-unknown-format", "/maintenance.exe", "4xx"),
    ("static-traversal", "/static/..%2f..%2fapp.py", "4xx"),
]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """The web on the replay's test roads, after a small tide flood (events exist)."""
    root = tmp_path_factory.mktemp("web")
    config = write_config(root, segments=DATA / "replay" / "segments.geojson")
    csv = root / "flood.csv"
    rows = [f"{t.isoformat()},tp_ca_mau,water_level,{v}" for t, v in
            zip(recent_hours(4), (0.5, 1.3, 1.3, 0.5), strict=True)]  # fmt: skip
    csv.write_text("time,station,variable,value\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert cli(config, "replay", "--quiet", str(csv)).exit_code == 0
    app = App.open(config, with_sources=False)
    with TestClient(create_app(app, secret_key="test"), raise_server_exceptions=False) as test:
        yield test
    app.close()


def test_the_web_has_events_to_look_at(client):
    response = client.get("/api/v1/events")
    assert response.status_code == 200
    assert response.json()["total"] >= 1


@pytest.mark.parametrize(("url", "expect"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_parameter_is_a_4xx_never_a_500(client, url, expect):
    response = client.get(url, follow_redirects=False)
    code = response.status_code
    assert code < 500, f"{code}: {response.text[:300]}"
    if expect == "4xx":
        assert code in (400, 404, 422), f"{code}: {response.text[:300]}"
    assert "Traceback" not in response.text
    if url.startswith("/api/") and code >= 400:
        assert "detail" in json.loads(response.text)


# One rule for every filter: a page shows its own form again with a Vietnamese message by
# the field (400); the API answers 422 naming the parameter. (url, the parameter named)
PAGE_FILTERS = [
    ("/log?from=notadate", "from"),
    ("/log?to=2024-13-45", "to"),
    ("/log?from=2024-12-17&to=2024-12-16", "to"),
    ("/log?level=abc", "level"),
    ("/log?level=11", "level"),
    ("/log?cause=flood", "cause"),
    ("/log?status=open", "status"),
    ("/log?kind=guess", "kind"),
    ("/log?ack=maybe", "ack"),
    ("/log?false_alarm=2", "false_alarm"),
    (f"/log?road={'x' * 201}", "road"),
    ("/log?ward=" + "p" * 201, "ward"),
    ("/log?unit=" + "u" * 201, "unit"),
    ("/log?sort=depth", "sort"),
    ("/log?desc=maybe", "desc"),
    ("/log?page=abc", "page"),
    ("/log?page=0", "page"),
    ("/log?per=0", "per"),
    ("/log?per=501", "per"),
    ("/log.csv?level=abc", "level"),
    ("/log.csv?from=notadate", "from"),
    ("/maintenance?from=abc", "from"),
    ("/maintenance?to=abc", "to"),
    ("/maintenance?from=2024-12-31&to=2024-12-01", "to"),
    ("/maintenance.xlsx?from=abc", "from"),
    ("/maintenance.csv?to=abc", "to"),
    ("/maintenance.geojson?from=abc", "from"),
    ("/?at=notadate", "at"),
    ("/?at=2199-01-01", "at"),  # ahead of the clock: never quietly "now"
]
API_FILTERS = [
    ("/api/v1/events?from=notadate", "from"),
    ("/api/v1/events?to=2024-13-45", "to"),
    ("/api/v1/events?from=2024-12-17&to=2024-12-16", "to"),
    ("/api/v1/events?level=abc", "level"),
    ("/api/v1/events?level=11", "level"),
    ("/api/v1/events?cause=flood", "cause"),
    ("/api/v1/events?status=open", "status"),
    ("/api/v1/events?kind=guess", "kind"),
    ("/api/v1/events?ack=maybe", "ack"),
    ("/api/v1/events?false_alarm=2", "false_alarm"),
    ("/api/v1/events?sort=depth", "sort"),
    ("/api/v1/events?desc=2", "desc"),
    ("/api/v1/events?desc=maybe", "desc"),
    ("/api/v1/events?limit=0", "limit"),
    ("/api/v1/events?offset=-1", "offset"),
    ("/api/v1/readings?from=notadate", "from"),
    ("/api/v1/readings?to=notadate", "to"),
    ("/api/v1/readings?from=2024-12-17&to=2024-12-16", "to"),
    ("/api/v1/readings?station=no_such_station", "station"),
    ("/api/v1/readings?variable=salinity", "variable"),
    ("/api/v1/stations?at=notadate", "at"),
    ("/api/v1/stations?at=2199-01-01", "at"),
    ("/api/v1/cap.atom?since=notadate", "since"),
]


@pytest.mark.parametrize(("url", "field"), PAGE_FILTERS, ids=[u for u, _ in PAGE_FILTERS])
def test_a_bad_filter_is_the_form_again_with_a_message_by_the_field(client, url, field):
    response = client.get(url)
    assert response.status_code == 400, response.text[:300]
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert '<form method="get"' in html  # the page's own form, to correct the value
    assert f'id="loi-{field}"' in html, html[:2000]  # the message sits by the field
    assert f"({field}):" in html[html.index('id="loi-bo-loc"') :]  # and names it on top
    assert "Traceback" not in html and 'class="event"' not in html  # nothing filtered wrongly


@pytest.mark.parametrize(("url", "field"), API_FILTERS, ids=[u for u, _ in API_FILTERS])
def test_a_bad_api_filter_is_a_422_naming_the_parameter(client, url, field):
    response = client.get(url)
    assert response.status_code == 422, response.text[:300]
    assert ["query", field] in [d["loc"] for d in response.json()["detail"]]


def test_every_bad_filter_is_named_at_once(client):
    html = client.get("/log?level=abc&from=notadate&sort=depth").text
    assert all(f'id="loi-{f}"' in html for f in ("level", "from", "sort"))
    detail = client.get("/api/v1/events?cause=flood&from=notadate&sort=depth").json()["detail"]
    assert {d["loc"][1] for d in detail} == {"cause", "from", "sort"}


def test_good_filters_still_filter(client):
    assert client.get("/log?sort=peak&desc=0&page=1&per=500&level=0").status_code == 200
    assert client.get("/api/v1/readings?station=tp_ca_mau&variable=water_level").status_code == 200
    assert client.get("/?at=2024-12-16T18:00").status_code == 200
