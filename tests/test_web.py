"""The operators' web and JSON API, on a real app and database after a replayed spring tide."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from datetime import UTC, datetime, timedelta, timezone
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from floodwatch.cli.base import Context
from floodwatch.cli.web import read_secret, user, web
from floodwatch.core.readings import Kind, Reading, Variable
from floodwatch.db.store import Store
from floodwatch.service.app import App
from floodwatch.service.replay import replay
from floodwatch.sources.csvfile import read_csv
from floodwatch.web.app import create_app
from floodwatch.web.auth import add_user, hash_password, verify_password
from tests.conftest import DATA, edit_config, on_test_roads

REPLAY = DATA / "replay" / "spring_tide_dec2024.csv"
ICT = timezone(timedelta(hours=7))
# Cut the replay on the evening high tide: two roads flooded now, four events closed.
CUT = datetime(2024, 12, 16, 18, tzinfo=ICT)
CHAT = -1001234567
PASSWORD = "triều-cường-2024"
SEGMENTS = {"tide-low", "tide-mid", "tide-edge", "rain-only", "high-dry"}


@pytest.fixture
def fw_app(project):
    """The shipped config on the replay's test roads, replayed up to CUT, with a forecast."""
    on_test_roads(project)
    edit_config(project, units={"ubnd_an_xuyen": f"telegram_chats = [{CHAT}]"})
    app = App.open(project, with_sources=False)
    parsed = read_csv(REPLAY, app.geodata.stations)
    # The day before the first flood is history enough (and keeps the replay short).
    readings = [r for r in parsed.readings if CUT - timedelta(hours=30) <= r.time <= CUT]
    # A predicted 1.25 m high water six hours ahead: tide-edge (crest 0.98 m) is expected to flood.
    readings += [
        Reading("tp_ca_mau", Variable.WATER_LEVEL, CUT + timedelta(hours=h),
                1.25 if 6 <= h <= 9 else 0.5, Kind.FORECAST, CUT)
        for h in range(1, 24)
    ]  # fmt: skip
    replay(app, readings)
    add_user(app.store, "lan", PASSWORD, "Nguyễn Thị Lan")
    yield app
    app.close()


@pytest.fixture
def client(fw_app):
    """A browser on the web with open reads."""
    with TestClient(create_app(fw_app, secret_key="test-secret")) as test_client:
        yield test_client


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def log_in(client: TestClient, password: str = PASSWORD):
    """Log in as `lan` through the form; returns the response (not followed)."""
    token = csrf_of(client.get("/login").text)
    return client.post(
        "/login",
        data={"username": "lan", "password": password, "csrf": token, "next": "/log"},
        follow_redirects=False,
    )


def api_events(client: TestClient, **params) -> list[dict]:
    """Events from the JSON API."""
    response = client.get("/api/v1/events", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    return response.json()["events"]


def log_ids(client: TestClient, query: str = "") -> list[int]:
    """Event ids in the log table, in page order."""
    response = client.get("/log" + query)
    assert response.status_code == 200
    return [int(i) for i in re.findall(r'data-event="(\d+)"', response.text)]


def event_id(client: TestClient, segment: str, kind: str = "observed", status=None) -> int:
    """The newest event of a segment."""
    params = {"kind": kind, **({"status": status} if status else {})}
    return next(e["id"] for e in api_events(client, **params) if e["segment_id"] == segment)


def test_every_page_renders_in_vietnamese_without_the_internet(client):
    closed = event_id(client, "tide-low", status="closed")
    pages = {
        "/": "Hiện trạng ngập",
        "/log": "Nhật ký ngập",
        f"/events/{closed}": "Diễn biến",
        "/roads/tide-low": "Thống kê ngập",
        "/login": "Mật khẩu",
    }
    for url, words in pages.items():
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"].startswith("text/html")
        assert words in response.text and 'lang="vi"' in response.text
        # Nothing loaded from elsewhere: no CDN scripts, styles, fonts or tiles (a link a
        # person may follow, such as the data credit's, loads nothing).
        loaded = re.sub(r"<a\s[^>]*>", "", response.text)
        assert not re.search(r'(src|href)="(https?:)?//', loaded), url
    assert "Phường An Xuyên" in client.get("/log").text
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/events/999999").status_code == 404
    assert "Không có đoạn đường" in client.get("/roads/no-such-road").text


def test_station_table_compares_the_level_with_the_alarms(client):
    # The map's data is tested in tests/test_map.py.
    html = client.get("/", params={"at": CUT.isoformat()}).text
    # The station table compares the level at CUT with BĐ I/II/III (TP Cà Mau 65/75/85 cm).
    table = html[html.index('id="tram"') :]
    row = re.search(r"<tr class=\"bd-(\d)\"><td>TP Cà Mau</td>.*?</tr>", table, re.S)
    assert row is not None and row.group(1) == "3"  # 1.07 m is over BĐ III
    assert "BĐ III" in row.group(0) and "quan trắc" in row.group(0)
    assert "Dự báo (nét đứt)" in html


def test_log_filters_change_the_rows(client):
    everything = log_ids(client)
    assert len(everything) == 7
    assert log_ids(client, "?ward=Phường An Xuyên") == everything
    assert log_ids(client, "?ward=Phường Tân Thành") == []
    deep = log_ids(client, "?level=2")
    assert deep and set(deep) == {e["id"] for e in api_events(client) if e["max_level"] >= 2}
    tide = log_ids(client, "?cause=tide")
    assert set(tide) == {e["id"] for e in api_events(client) if e["cause"] == "tide"}
    assert 0 < len(tide) < len(everything)
    assert log_ids(client, "?kind=forecast") == [event_id(client, "tide-edge", "forecast")]
    assert log_ids(client, "?ack=yes") == [] and log_ids(client, "?ack=no") == everything
    assert set(log_ids(client, "?road=triều thấp")) == {
        e["id"] for e in api_events(client) if e["segment_id"] == "tide-low"
    }
    html = client.get("/log?cause=tide&level=1").text
    assert 'value="tide" selected' in html and 'value="1" selected' in html


def test_log_sorts_by_column_links_and_paginates(client):
    html = client.get("/log").text
    links = {unescape(h) for h in re.findall(r'class="sort[^"]*" href="([^"]+)"', html)}
    assert "/log?sort=peak&desc=1" in links and "/log?sort=road&desc=1" in links
    peaks = {e["id"]: e["peak_depth_m"] for e in api_events(client)}
    ascending = log_ids(client, "?sort=peak&desc=0")
    assert [peaks[i] for i in ascending] == sorted(peaks.values())
    assert log_ids(client, "?sort=peak&desc=1") != ascending

    first = client.get("/log?per=3&sort=opened").text
    assert "Trang 1/3" in first
    next_link = unescape(re.search(r'rel="next" href="([^"]+)"', first).group(1))
    assert parse_qs(urlsplit(next_link).query)["page"] == ["2"]
    pages = [log_ids(client, f"?per=3&sort=opened&page={n}") for n in (1, 2, 3)]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sum(pages, []) == log_ids(client, "?sort=opened")
    assert 'rel="prev"' in client.get(next_link).text


def test_permalink_round_trip(client):
    query = "?cause=tide&ack=no&sort=peak&desc=0&from=2024-12-16&to=2024-12-17"
    html = client.get("/log" + query).text
    permalink = unescape(re.search(r'id="permalink" href="([^"]+)"', html).group(1))
    params = parse_qs(urlsplit(permalink).query)
    assert params["cause"] == ["tide"] and params["sort"] == ["peak"] and params["desc"] == ["0"]
    assert params["from"] == ["2024-12-16"] and params["to"] == ["2024-12-17"]
    assert log_ids(client, "?" + urlsplit(permalink).query) == log_ids(client, query)
    csv_link = unescape(re.search(r'id="csv" href="([^"]+)"', html).group(1))
    assert csv_link.startswith("/log.csv?") and "cause=tide" in csv_link


def test_csv_download_has_the_filtered_events(client):
    response = client.get("/log.csv", params={"cause": "tide"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    expected = {e["id"]: e for e in api_events(client, cause="tide")}
    assert {int(r["Mã đợt"]) for r in rows} == set(expected)
    for row in rows:
        ev = expected[int(row["Mã đợt"])]
        assert row["Tên đường"] == ev["segment_name"]
        assert row["Nguyên nhân"] == "triều cường"
        assert float(row["Độ sâu lớn nhất (m)"]) == pytest.approx(ev["peak_depth_m"], abs=0.005)
        assert re.fullmatch(r"\d\d/\d\d/2024 \d\d:\d\d", row["Bắt đầu"])
    assert len(list(csv.reader(io.StringIO(client.get("/log.csv").text)))) == 1 + 7


def test_event_page_shows_timeline_alerts_and_hydrograph(client):
    first = min(e["id"] for e in api_events(client) if e["segment_id"] == "tide-low")
    html = client.get(f"/events/{first}").text
    timeline = html[html.index('id="dien-bien"') :]
    assert "Bắt đầu ngập" in timeline and "Tăng mức" in timeline and "Kết thúc" in timeline
    assert "16/12/2024 05:00" in html  # opened 05:00 local time (22:00 UTC the day before)
    alerts = html[html.index('id="canh-bao"') :]
    assert f"nhóm {CHAT}: chờ gửi" in alerts and "UBND phường An Xuyên" in alerts
    assert f'src="/events/{first}/hydrograph.png"' in html
    png = client.get(f"/events/{first}/hydrograph.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_road_page_statistics_match_its_events(client):
    events = [e for e in api_events(client) if e["segment_id"] == "tide-low"]
    closed = [e for e in events if e["closed_at"]]
    assert len(events) == 2 and len(closed) == 1
    html = client.get("/roads/tide-low").text
    stats = dict(re.findall(r'data-stat="(\w+)">([^<]+)<', html))
    assert stats["events"] == "2"
    peaks = [e["peak_depth_m"] for e in events]
    assert stats["max"] == f"{round(max(peaks) * 100)} cm"
    assert stats["mean"] == f"{round(sum(peaks) / len(peaks) * 100)} cm"
    hours = (
        datetime.fromisoformat(closed[0]["closed_at"])
        - datetime.fromisoformat(closed[0]["opened_at"])
    ).total_seconds() / 3600
    # The open event counts until now: at least the closed one's hours, plus years since 2024.
    assert float(stats["hours"].split()[0].replace(",", ".")) > hours + 24 * 300
    assert "0,82 m" in html and "TP Cà Mau" in html and "UBND phường An Xuyên" in html
    for ev in events:
        assert f'href="/events/{ev["id"]}"' in html


def test_writes_need_a_login(client):
    target = event_id(client, "tide-low")
    for url in (f"/events/{target}/note", f"/events/{target}/ack", "/silences"):
        response = client.post(url, data={"text": "x", "csrf": "x"}, follow_redirects=False)
        assert response.status_code == 303, url
        assert response.headers["location"].startswith("/login")
    assert "chưa có ai xác nhận" in client.get(f"/events/{target}").text


def test_login_with_a_wrong_password_fails(client, caplog):
    response = log_in(client, password="sai-mật-khẩu")
    assert response.status_code == 401
    assert "Sai tên đăng nhập hoặc mật khẩu" in response.text
    assert "Đăng xuất" not in response.text
    assert "sai-mật-khẩu" not in caplog.text  # never log passwords
    assert log_in(client).status_code == 303
    assert "Nguyễn Thị Lan" in client.get("/").text


def test_operator_notes_acknowledges_marks_false_alarm_and_silences(client, fw_app):
    target = event_id(client, "tide-low", status="flooded")
    assert log_in(client).headers["location"] == "/log"
    page = client.get(f"/events/{target}").text
    token = csrf_of(page)
    assert PASSWORD not in page and "test-secret" not in page

    def post(url, **data):
        response = client.post(url, data={"csrf": token, **data}, follow_redirects=False)
        assert response.status_code == 303, response.text
        return response

    post(f"/events/{target}/note", text="Nước ngập qua nửa bánh xe, đã cử người trực.")
    post(f"/events/{target}/ack")
    # The web acknowledgement also stops the escalation of the Telegram alerts naming it.
    from sqlalchemy import select

    from floodwatch.db.models import AlertRow

    with fw_app.store.engine.connect() as conn:
        naming = [
            a for a in conn.execute(select(AlertRow))
            if target in a.event_ids
        ]  # fmt: skip
    assert naming and all(a.ack_by == "Nguyễn Thị Lan" for a in naming)
    post(f"/events/{target}/false-alarm", value="on", text="Cảm biến hỏng")
    html = client.get(f"/events/{target}").text
    assert "Nước ngập qua nửa bánh xe, đã cử người trực." in html
    assert "Nguyễn Thị Lan lúc" in html[html.index('id="xac-nhan"') :]
    assert "Đã đánh dấu báo nhầm" in html and "Bỏ đánh dấu báo nhầm" in html
    assert log_ids(client, "?ack=yes") == [target]
    assert log_ids(client, "?false_alarm=yes") == [target]
    detail = client.get(f"/api/v1/events/{target}").json()
    assert detail["ack_by"] == "Nguyễn Thị Lan" and detail["false_alarm"] is True
    assert [n["kind"] for n in detail["notes"]] == ["note", "ack", "false_alarm"]

    post(f"/events/{target}/false-alarm", value="off")
    assert client.get(f"/api/v1/events/{target}").json()["false_alarm"] is False
    assert "Bỏ đánh dấu báo nhầm</strong>" in client.get(f"/events/{target}").text

    response = post("/silences", target_kind="segment", target_id="tide-low", hours="6",
                    reason="Đang thi công cống", next="/roads/tide-low")  # fmt: skip
    assert response.headers["location"] == "/roads/tide-low"
    road = client.get("/roads/tide-low").text
    assert "Đang thi công cống" in road[road.index('id="tam-tat"') :]
    post("/silences", target_kind="unit", target_id="tide-low", hours="2", next="/")
    now = datetime.now(UTC)
    assert {("segment", "tide-low"), ("unit", "ubnd_an_xuyen")} <= fw_app.store.silences.active(now)
    bad = client.post("/silences", data={"csrf": token, "target_kind": "unit",
                                         "target_id": "nobody", "hours": "2"})  # fmt: skip
    assert bad.status_code == 400

    logout = client.post("/logout", data={"csrf": token}, follow_redirects=False)
    assert logout.status_code == 303
    assert "Đăng nhập" in client.get("/").text


def test_a_bad_csrf_token_is_refused(client):
    target = event_id(client, "tide-low")
    log_in(client)
    for token in ("wrong", ""):
        response = client.post(f"/events/{target}/note", data={"text": "x", "csrf": token})
        assert response.status_code == 403
        assert "CSRF" in response.text and "Hãy tải lại trang" in response.text
    assert client.get(f"/api/v1/events/{target}").json()["notes"] == []
    fresh = TestClient(client.app)
    response = fresh.post("/login", data={"username": "lan", "password": PASSWORD, "csrf": "x"})
    assert response.status_code == 403


def test_api_shapes_and_openapi(client):
    page = client.get("/api/v1/events", params={"cause": "tide", "limit": 2}).json()
    assert page["total"] == 3 and page["limit"] == 2 and len(page["events"]) == 2
    ev = page["events"][0]
    contract = {"id", "segment_id", "segment_name", "unit", "kind", "status", "opened_at",
                "closed_at", "peak_depth_m", "peak_at", "max_level", "cause", "ack_by"}  # fmt: skip
    assert contract <= set(ev)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", ev["opened_at"])

    first = min(e["id"] for e in api_events(client))
    detail = client.get(f"/api/v1/events/{first}").json()
    assert detail["changes"][0]["change"] == "opened"
    assert detail["alerts"][0]["deliveries"][0] == {
        "chat_id": CHAT, "status": "pending", "sent_at": None
    }  # fmt: skip
    assert client.get("/api/v1/events/999999").status_code == 404

    segments = client.get("/api/v1/segments").json()
    assert {s["id"] for s in segments} == SEGMENTS
    one = client.get("/api/v1/segments/tide-low").json()
    assert one["crest_m"] == 0.82 and one["geometry"]["type"] == "LineString"
    assert [e["status"] for e in one["open_events"]] == ["flooded"]

    stations = {
        s["id"]: s for s in client.get("/api/v1/stations", params={"at": CUT.isoformat()}).json()
    }
    assert stations["tp_ca_mau"]["alarm"] == 3
    assert stations["tp_ca_mau"]["level_m"] == pytest.approx(1.07, abs=0.01)

    readings = client.get("/api/v1/readings", params={
        "station": "tp_ca_mau", "variable": "water_level", "from": "2024-12-16",
        "to": "2024-12-16", "limit": 500,
    }).json()  # fmt: skip
    observed = [r for r in readings if r["kind"] == "observed"]
    assert len(observed) == 19  # 00:00 to 18:00 local time, hourly
    assert observed[0]["time"] == "2024-12-15T17:00:00+00:00"

    status = client.get("/api/v1/status").json()
    assert status["flooded"] == 2 and status["expected"] == 1
    assert status["last_cycle"]["at"] == "2024-12-16T11:00:00+00:00"
    assert status["counts"]["event"] == 7

    spec = client.get("/openapi.json").json()
    for path in ("/api/v1/events", "/api/v1/events/{event_id}", "/api/v1/segments",
                 "/api/v1/segments/{segment_id}", "/api/v1/stations", "/api/v1/readings",
                 "/api/v1/status", "/healthz"):  # fmt: skip
        assert path in spec["paths"], path
    assert "/log" not in spec["paths"] and "/login" not in spec["paths"]
    assert "EventOut" in spec["components"]["schemas"]


def test_healthz(client, fw_app, tmp_path):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "last_cycle_at": "2024-12-16T11:00:00+00:00"}
    (tmp_path / "not-a-database").mkdir()
    broken = Store(f"sqlite:///{tmp_path / 'not-a-database'}", run_migrations=False)
    down = TestClient(create_app(dataclasses.replace(fw_app, store=broken), secret_key="k"))
    response = down.get("/healthz")
    assert response.status_code == 503 and response.json()["ok"] is False
    broken.close()


def test_login_required_mode_closes_reads(fw_app):
    closed = TestClient(create_app(fw_app, secret_key="k", open_reads=False))
    response = closed.get("/log?cause=tide", follow_redirects=False)
    assert response.status_code == 303
    assert parse_qs(urlsplit(response.headers["location"]).query)["next"] == ["/log?cause=tide"]
    assert closed.get("/api/v1/events").status_code == 401
    assert closed.get("/healthz").status_code == 200
    assert log_in(closed).status_code == 303
    assert closed.get("/log").status_code == 200


def test_user_add_and_web_commands(project, monkeypatch, tmp_path):
    obj = Context(project)
    runner = CliRunner()
    result = runner.invoke(
        user, ["add", "minh", "--password-stdin", "--display-name", "Trần Minh"],
        input="một-mật-khẩu-dài\n", obj=obj,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "một-mật-khẩu-dài" not in result.output
    result = runner.invoke(user, ["add", "minh", "--password-stdin"], input="ngắn\n", obj=obj)
    assert result.exit_code == 1 and "at least 8" in result.output
    app = App.open(project, with_sources=False, writes=False)
    try:
        client = TestClient(create_app(app, secret_key="k"))
        token = csrf_of(client.get("/login").text)
        response = client.post("/login", data={"username": "minh", "csrf": token,
                                                "password": "một-mật-khẩu-dài"})  # fmt: skip
        assert response.status_code == 200 and "Trần Minh" in response.text
    finally:
        app.close()
    assert runner.invoke(web, ["--help"]).exit_code == 0
    assert runner.invoke(user, ["add", "--help"]).exit_code == 0

    monkeypatch.setenv("FLOODWATCH_WEB_SECRET", "from-env")
    assert read_secret() == "from-env"
    (tmp_path / "web-secret").write_text("from-systemd\n", encoding="utf-8")
    assert read_secret({"CREDENTIALS_DIRECTORY": str(tmp_path)}) == "from-systemd"
    assert read_secret({}) is None


def test_password_hashes_are_salted():
    first, second = hash_password("mật khẩu"), hash_password("mật khẩu")
    assert first != second and first.startswith("scrypt$")
    assert verify_password("mật khẩu", first) and not verify_password("mật khau", first)
    assert not verify_password("mật khẩu", "garbage")


def test_cap_atom_feed_holds_schema_valid_alerts(client):
    from lxml import etree

    from floodwatch.exports.cap import SCHEMA_PATH

    response = client.get("/api/v1/cap.atom", params={"since": "2024-12-01"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = etree.fromstring(response.content)
    atom = "{http://www.w3.org/2005/Atom}"
    alerts = feed.findall(
        f"{atom}entry/{atom}content/{{urn:oasis:names:tc:emergency:cap:1.2}}alert"
    )
    assert len(alerts) >= 4
    schema = etree.XMLSchema(etree.parse(str(SCHEMA_PATH)))
    for alert in alerts:
        schema.assertValid(etree.fromstring(etree.tostring(alert)))
    assert client.get("/api/v1/cap.atom").status_code == 200  # the last week: none, still valid
    assert "/api/v1/cap.atom" in client.get("/openapi.json").json()["paths"]


def test_planners_page_ranks_roads_and_downloads_the_statistics(client):
    import io

    import openpyxl

    page = client.get("/maintenance", params={"from": "2024-12-01", "to": "2024-12-31"})
    assert page.status_code == 200 and "Tuyến đường ngập nhiều nhất" in page.text
    ranked = re.findall(r'<tr data-segment="([^"]+)">', page.text)
    assert ranked and ranked[0] == "tide-low" and "high-dry" not in ranked
    query = {"from": "2024-12-01", "to": "2024-12-31"}
    xlsx = client.get("/maintenance.xlsx", params=query)
    assert xlsx.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(xlsx.content), read_only=True)
    assert len(book.sheetnames) == 3
    csv_text = client.get("/maintenance.csv", params=query).content.decode("utf-8-sig")
    assert csv_text.splitlines()[0].startswith("Hạng,")
    geo = client.get("/maintenance.geojson", params=query).json()
    assert {f["geometry"]["type"] for f in geo["features"]} <= {"LineString", "MultiLineString"}
    assert client.get("/maintenance.pdf").status_code == 404
    assert (
        client.get("/maintenance", params={"from": "2024-12-31", "to": "2024-12-01"}).status_code
        == 400
    )


def test_operator_lifts_a_silence_and_muting_again_extends_it(client, fw_app, caplog):
    assert log_in(client).status_code == 303
    token = csrf_of(client.get("/roads/tide-low").text)

    def mute(hours: str, reason: str):
        data = {"csrf": token, "target_kind": "segment", "target_id": "tide-low",
                "hours": hours, "reason": reason, "next": "/roads/tide-low"}  # fmt: skip
        assert client.post("/silences", data=data, follow_redirects=False).status_code == 303

    mute("6", "Đang thi công cống")
    mute("24", "Thi công thêm một ngày")
    rows = fw_app.store.silences.listing(datetime.now(UTC))
    assert len(rows) == 1 and rows[0].reason == "Thi công thêm một ngày"
    assert rows[0].until - datetime.now(UTC) > timedelta(hours=23)
    road = client.get("/roads/tide-low").text
    listed = road[road.index('id="tam-tat"') :]
    assert listed.count("<li") == 1 and "Bỏ tắt" in listed
    now_page = client.get("/").text
    assert f'action="/silences/{rows[0].id}/lift"' in now_page and "Bỏ tắt" in now_page

    lift = f"/silences/{rows[0].id}/lift"
    assert client.post(lift, data={"csrf": "wrong"}).status_code == 403
    assert fw_app.store.silences.listing(datetime.now(UTC)) != []
    with caplog.at_level("INFO"):
        done = client.post(lift, data={"csrf": token, "next": "/#tam-tat"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/#tam-tat"
    assert "lifted by Nguyễn Thị Lan" in caplog.text and "lifted by lan" in caplog.text
    assert fw_app.store.silences.listing(datetime.now(UTC)) == []
    assert ("segment", "tide-low") not in fw_app.store.silences.active(datetime.now(UTC))
    again = client.post(lift, data={"csrf": token})
    assert again.status_code == 404 and "Không có lệnh tạm tắt số" in again.text
    huge = client.post("/silences/99999999999999999999999/lift", data={"csrf": token})
    assert huge.status_code == 400 and "Traceback" not in huge.text
    fresh = TestClient(client.app)  # no login: to the login form, nothing lifted
    assert fresh.post(lift, data={"csrf": token}, follow_redirects=False).status_code == 303


def test_planners_page_keeps_the_local_days_typed(client):
    html = client.get("/maintenance", params={"from": "2024-12-01", "to": "2024-12-31"}).text
    assert 'value="2024-12-01"' in html and 'value="2024-12-31"' in html
    assert "Từ 01/12/2024 đến 31/12/2024" in html
    xlsx = client.get("/maintenance.xlsx", params={"from": "2024-12-01", "to": "2024-12-31"})
    assert "thong-ke-ngap-20241201-20241231.xlsx" in xlsx.headers["content-disposition"]
    # `to` alone: from 1 January of that year (as the CLI), never a period after it.
    html = client.get("/maintenance", params={"to": "2024-12-31"}).text
    assert 'value="2024-01-01"' in html
