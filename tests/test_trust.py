"""Never silently wrong: what the service does when its data dies, lies or comes from the future.

Each test here failed on the main of 2026-12-02 (issue 9): a reading from 2099
stopped every later cycle, a dead gauge of a multi-station source went
unnoticed, missing rain read as 0 mm, "24 h" rain counted 12 h, a peak between
two grid steps was lost, and looking back showed today's state.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from floodwatch.cli import main
from floodwatch.core.readings import Reading, Variable
from floodwatch.db.models import CycleRow
from floodwatch.service.app import App, ConsoleNotifier
from floodwatch.service.cycle import utcnow
from floodwatch.service.polling import health_view, poll_once
from floodwatch.service.replay import replay
from floodwatch.service.scheduler import Heartbeat
from floodwatch.web.app import create_app
from tests.conftest import ROOT
from tests.fakeserver import Reply

ICT = timezone(timedelta(hours=7))
T0 = datetime(2025, 12, 3, 12, 0, tzinfo=UTC)  # 19:00 in Cà Mau
STATIONS = ROOT / "geodata" / "stations.geojson"


def segment(sid: str, crest: float, station: str, unit: str = "ubnd_thu") -> dict:
    """A short segment near Cà Mau city using one station for tide and rain."""
    lon = 105.15 + 0.001 * len(sid)
    return {
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": [[lon, 9.17], [lon + 0.002, 9.171]]},
        "properties": {
            "id": sid, "name": f"Đường {sid}", "ward": "Phường An Xuyên", "unit": unit,
            "crest_m": crest, "tide_station": station, "rain_station": station,
            "drain_mm_h": 30,
        },
    }  # fmt: skip


def write_project(tmp_path, database_url: str, extra: str = "", segments=None) -> str:
    """A config on the shipped stations and a few test roads; returns its path."""
    segments = segments or [segment("cm-thap", 0.95, "tp_ca_mau"), segment("sd", 0.80, "song_doc")]
    seg_path = tmp_path / "segments.geojson"
    seg_path.write_text(
        json.dumps({"type": "FeatureCollection", "features": segments}, ensure_ascii=False),
        encoding="utf-8",
    )
    config = tmp_path / "floodwatch.toml"
    config.write_text(
        f"""
[storage]
database_url = "{database_url}"

[geodata]
segments = "{seg_path}"
stations = "{STATIONS}"

[[units]]
id = "ubnd_thu"
name = "UBND phường thử"
{extra}
""",
        encoding="utf-8",
    )
    return str(config)


def cli(config: str, *args: str):
    """Run the CLI; never a traceback."""
    result = CliRunner().invoke(main, ["--config", config, *args])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def level(station: str, when: datetime, value: float) -> Reading:
    """An observed water level."""
    return Reading(station, Variable.WATER_LEVEL, when, value)


def rain(station: str, when: datetime, mm: float) -> Reading:
    """Observed rain of the hour ending at `when`."""
    return Reading(station, Variable.RAINFALL, when, mm)


# --- 1. time sanity -------------------------------------------------------------------------


def test_a_reading_from_2099_is_rejected_and_later_cycles_still_run(tmp_path, database_url):
    config = write_project(tmp_path, database_url)
    rows = ["time,station,variable,value"]
    for h in range(6):
        when = (T0 + timedelta(hours=h)).astimezone(ICT).isoformat()
        rows.append(f"{when},tp_ca_mau,water_level,{1.0 + 0.02 * h}")
    rows.insert(3, "2099-01-01T00:00:00+07:00,tp_ca_mau,water_level,1.0")
    rows.insert(4, "0001-01-01T00:00:00+07:00,tp_ca_mau,water_level,1.0")
    rows.insert(5, "9999-12-31T23:00:00-07:00,tp_ca_mau,water_level,1.0")
    (tmp_path / "mixed.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")

    result = cli(config, "replay", "-q", str(tmp_path / "mixed.csv"))

    assert result.exit_code == 3
    # 0001 east of UTC and 9999 west of it cannot even be written in UTC; 2099 is ahead.
    assert result.output.count("is out of range") == 2
    assert result.output.count("is in the future") == 1
    assert "6 cycles run" in result.output
    app = App.open(config, with_sources=False)
    try:
        with app.store.engine.connect() as conn:
            latest = conn.execute(select(func.max(CycleRow.at))).scalar()
        assert latest == T0 + timedelta(hours=5)
        # The event the good rows describe was opened: the future row blinded nothing.
        assert any(e.segment_id == "cm-thap" for e in app.store.events.listing())
    finally:
        app.close()


def test_a_future_cycle_in_the_database_is_an_error_with_the_way_out(tmp_path, database_url):
    config = write_project(tmp_path, database_url)
    app = App.open(config, with_sources=False)
    future = datetime(2099, 1, 1, tzinfo=UTC)
    try:
        with app.store.engine.begin() as conn:  # what an older version let in
            conn.execute(
                insert(CycleRow).values(
                    at=future, finished_at=future, duration_s=0.1, segments=2, flooded=0,
                    forecast=0, changes=0, alerts=0,
                )
            )  # fmt: skip
        # The heartbeat says so to the operators: every cycle is being skipped.
        heartbeat = Heartbeat(app, lambda: None)
        heartbeat.beat(None, now=utcnow())
        [alarm] = [a for a in app.store.outbox.pending_alerts() if a.kinds == ["heartbeat"]]
        assert "HỆ THỐNG NGỪNG ĐÁNH GIÁ" in alarm.body and "tương lai" in alarm.body
    finally:
        app.close()

    poll = cli(config, "poll")
    assert poll.exit_code == 1
    assert "ahead of the clock" in poll.output and "floodwatch db future --delete" in poll.output
    assert "found: 1 cycles" in cli(config, "db", "future").output
    assert "deleted: 1 cycles" in cli(config, "db", "future", "--delete").output
    assert cli(config, "poll").exit_code == 0
    ahead = (utcnow() + timedelta(days=2)).isoformat()
    refused = cli(config, "poll", "--at", ahead)
    assert refused.exit_code == 1 and "ahead of the clock" in refused.output


def test_drop_folder_rejects_future_rows_and_quarantines_the_file(tmp_path, database_url):
    drop = tmp_path / "drop"
    drop.mkdir()
    config = write_project(
        tmp_path, database_url, f'[sources.drop]\ntype = "drop_folder"\npath = "{drop}"\n'
    )
    now = utcnow().replace(microsecond=0)
    good_time = (now - timedelta(hours=1)).astimezone(ICT).isoformat()
    (drop / "mixed.csv").write_text(
        f"time,station,variable,value\n{good_time},tp_ca_mau,water_level,0.7\n"
        "2099-01-01T00:00:00+07:00,tp_ca_mau,water_level,0.8\n",
        encoding="utf-8",
    )
    import os

    old = now.timestamp() - 60
    os.utime(drop / "mixed.csv", (old, old))
    assert cli(config, "poll").exit_code == 0
    report = (drop / "quarantine" / "mixed.csv.error.txt").read_text(encoding="utf-8")
    assert "line 3" in report and "future" in report
    assert "1 row(s) were accepted anyway" in report
    app = App.open(config, with_sources=False)
    try:
        with app.store.engine.connect() as conn:
            latest = conn.execute(select(func.max(CycleRow.at))).scalar()
        assert latest <= utcnow()
    finally:
        app.close()


# --- 7. drop folder isolation ---------------------------------------------------------------


def test_one_bad_file_never_blocks_the_drop_folder(tmp_path, database_url):
    import gzip
    import os

    drop = tmp_path / "drop"
    drop.mkdir()
    config = write_project(
        tmp_path, database_url, f'[sources.drop]\ntype = "drop_folder"\npath = "{drop}"\n'
    )
    when = (utcnow() - timedelta(hours=2)).astimezone(ICT).replace(microsecond=0).isoformat()
    good = f"time,station,variable,value\n{when},tp_ca_mau,water_level,0.71\n"
    files = {
        "a-gzip.csv": gzip.compress(good.encode()),
        "b-header.csv": ("x" * 200_000 + "\n").encode(),
        # Excel's "CSV" on Vietnamese Windows: Windows-1258 ("trạm", "mưa").
        "c-cp1258.csv": b"time,station,variable,value\ntra\xf2m,m\xfda,1,2\n",
        "d-utf16.csv": good.encode("utf-16"),
        "e-year.csv": b"time,station,variable,value\n0001-01-01T00:00+07:00,tp_ca_mau,rainfall,1\n",
        "z-good.csv": good.encode(),
    }
    old = utcnow().timestamp() - 60
    for name, data in files.items():
        (drop / name).write_bytes(data)
        os.utime(drop / name, (old, old))

    result = cli(config, "poll")

    assert result.exit_code == 0, result.output
    assert (drop / "archive" / "z-good.csv").exists()
    for name in files:
        if name != "z-good.csv":
            assert (drop / "quarantine" / name).exists(), name
            assert (drop / "quarantine" / f"{name}.error.txt").read_text(encoding="utf-8")
    reason = (drop / "quarantine" / "a-gzip.csv.error.txt").read_text(encoding="utf-8")
    assert "gzip" in reason
    assert "out of range" in (drop / "quarantine" / "e-year.csv.error.txt").read_text("utf-8")
    assert [p.name for p in drop.glob("*.csv")] == []  # nothing left to block the next poll
    assert cli(config, "poll").exit_code == 0


# --- 2. per-station health --------------------------------------------------------------------


def vndms_body(labels_values: list[tuple[datetime, float]]) -> str:
    """A VNDMS reply with these (time, metres) points."""
    labels = ",".join(
        f"{t.astimezone(ICT).hour}h \n{t.astimezone(ICT):%d/%m}" for t, _ in labels_values
    )
    values = ",".join(f"{v:.2f}" for _, v in labels_values)
    return json.dumps(
        {"labels": labels, "value": values, "bao_dong1": "0.65", "bao_dong2": "0.75",
         "bao_dong3": "0.85"}
    )  # fmt: skip


def test_a_dead_gauge_of_a_multi_station_source_goes_stale_on_its_own(
    tmp_path, database_url, fake_server
):
    config = write_project(
        tmp_path,
        database_url,
        f"""
[telegram]
operators_chats = [-100777]

[sources.gauges]
type = "http_json"
preset = "vndms"
url = "{fake_server.url}/home/detailRain"
stale_after_minutes = 60
[sources.gauges.stations]
"1" = "tp_ca_mau"
"2" = "song_doc"
""",
    )
    clock = {"now": utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)}
    first = clock["now"]

    def answer(request):
        station = request.form["id"]
        upto = first if station == "1" else clock["now"]  # station 1 dies after the first poll
        points = [(upto - timedelta(hours=h), 0.6) for h in range(3, -1, -1)]
        return Reply.json(vndms_body(points))

    fake_server.routes["/home/detailRain"] = answer
    app = App.open(config)
    printed: list[str] = []
    try:
        for hours in range(0, 4):
            clock["now"] = first + timedelta(hours=hours)
            poll_once(app, clock["now"])
        ConsoleNotifier(app, printed.append).drain()
        alarms = [text for text in printed if "MẤT TÍN HIỆU" in text]
        assert len(alarms) == 1
        assert "TP Cà Mau (mực nước)" in alarms[0] and "Sông Đốc" not in alarms[0]
        assert "Đường cm-thap" in alarms[0]  # its road is blind: no other source of that level
        view = health_view(app, clock["now"])
        assert view.statuses["gauges"] == "degraded"  # one of two stations quiet
        assert view.blind == {("tp_ca_mau", "water_level")}
    finally:
        app.close()

    at = ["--at", clock["now"].isoformat()]
    sources = json.loads(cli(config, "sources", "--format", "json", *at).output)
    inputs = {i["station"]: i for i in sources[0]["inputs"]}
    assert inputs["tp_ca_mau"]["status"] == "stale" and inputs["song_doc"]["status"] == "ok"
    assert inputs["tp_ca_mau"]["reference"]["alarm_m"] == [0.65, 0.75, 0.85]
    table = cli(config, "sources", *at).output
    assert "mất tín hiệu TP Cà Mau mực nước" in table
    status = json.loads(cli(config, "status", "--json", *at).output)
    assert [(i["station"], i["variable"]) for i in status["stale_inputs"]] == [
        ("tp_ca_mau", "water_level")
    ]
    assert {u["id"] for u in status["unknown_segments"]} >= {"cm-thap"}
    assert "cm-thap" in {s["id"] for s in status["blind_segments"]}


# --- 3 and 4. unknown is its own state; rain windows ------------------------------------------


def test_no_rain_data_is_said_never_read_as_no_rain(tmp_path, database_url):
    config = write_project(tmp_path, database_url)
    app = App.open(config, with_sources=False)
    try:
        replay(app, [level("tp_ca_mau", T0 - timedelta(hours=h), 0.5) for h in range(4)])
        text = cli(config, "bulletin", "--at", T0.isoformat()).output
    finally:
        app.close()
    assert "KHÔNG CÓ DỮ LIỆU" in text.split("1. Tình hình")[0]  # what is missing comes first
    assert "Lượng mưa 24 giờ qua: không có dữ liệu." in text
    assert "Không có mưa đáng kể" not in text
    assert "tuyến không có dữ liệu" in text
    assert "Không có tuyến đường nào dự báo ngập." not in text
    status = json.loads(cli(config, "status", "--json", "--at", T0.isoformat()).output)
    tp = next(s for s in status["stations"] if s["id"] == "tp_ca_mau")
    assert tp["level_m"] == 0.5 and tp["rain_24h_mm"] is None
    assert {u["id"]: u["missing"] for u in status["unknown_segments"]}["cm-thap"] == ["rainfall"]
    human = cli(config, "status", "--at", T0.isoformat()).output
    assert "0.0 mm" not in human and "rain 24 h: không có dữ liệu" in human


def test_rain_24h_counts_24_hours_whatever_the_lookback(tmp_path, database_url):
    config = write_project(tmp_path, database_url)  # lookback_hours stays 12
    app = App.open(config, with_sources=False)
    try:
        readings = [rain("tp_ca_mau", T0 - timedelta(hours=h), 0.0) for h in range(24)]
        readings[20] = rain("tp_ca_mau", T0 - timedelta(hours=20), 30.0)  # 20 h ago
        readings[2] = rain("tp_ca_mau", T0 - timedelta(hours=2), 5.0)
        readings += [level("tp_ca_mau", T0 - timedelta(hours=h), 0.5) for h in range(3)]
        replay(app, readings)
        situation = app.pipeline.situation(T0)
    finally:
        app.close()
    tp = situation.station("tp_ca_mau")
    assert tp.rain_24h_mm == pytest.approx(35.0) and tp.rain_hours == 24
    assert situation.unknown == [] or all(u.segment.id != "cm-thap" for u in situation.unknown)


def test_web_and_api_show_no_data_not_zero_and_not_dry(tmp_path, database_url):
    config = write_project(tmp_path, database_url)
    app = App.open(config, with_sources=False)
    try:
        replay(app, [level("tp_ca_mau", T0 - timedelta(hours=h), 0.5) for h in range(4)])
        with TestClient(create_app(app, secret_key="k")) as client:
            html = client.get("/", params={"at": T0.isoformat()}).text
            stations = client.get("/api/v1/stations", params={"at": T0.isoformat()}).json()
        roads = {s.id for s in app.geodata.segments}
    finally:
        app.close()
    # The map (static/map.js) draws a road dry only when it is in none of these lists.
    found = re.search(r'<script type="application/json" id="map-data">(.*?)</script>', html)
    states = json.loads(found.group(1))["roads"]
    assert states["nodata"] and set(states["nodata"]) | set(states["blind"]) == roads
    assert "Không có dữ liệu" in html and "0,0 mm" not in html
    tp = next(s for s in stations if s["id"] == "tp_ca_mau")
    assert tp["level_m"] == 0.5 and tp["rain_24h_mm"] is None


# --- 5. observed peaks at their own time ------------------------------------------------------


def quarter_hours(peak_at: datetime) -> list[Reading]:
    """A gauge every 15 minutes for 3 hours; the level tops the road only at `peak_at`."""
    start = peak_at - timedelta(minutes=90)
    out = []
    for k in range(13):
        when = start + timedelta(minutes=15 * k)
        out.append(level("tp_ca_mau", when, 1.06 if when == peak_at else 0.99))
        if when.minute == 0:
            out.append(rain("tp_ca_mau", when, 0.0))
    return out


def live_cycles(app: App, readings: list[Reading], every_minutes: int) -> None:
    """Ingest readings as a poller would, cycling every `every_minutes`."""
    readings = sorted(readings, key=lambda r: r.time)
    at = readings[0].time
    end = readings[-1].time
    while at <= end:
        due = [r for r in readings if at - timedelta(minutes=every_minutes) < r.time <= at]
        app.pipeline.ingest_checked(due, at, "gauge")
        app.pipeline.cycle(at)
        at += timedelta(minutes=every_minutes)


@pytest.mark.parametrize("step", [60, 15])
def test_a_peak_between_grid_steps_opens_and_peaks_the_event_at_its_time(
    tmp_path, database_url, step
):
    extra = f"[assessment]\nstep_minutes = {step}\n"
    config = write_project(tmp_path, database_url, extra)
    peak_at = T0 + timedelta(minutes=30)
    app = App.open(config, with_sources=False)
    try:
        live_cycles(app, quarter_hours(peak_at), every_minutes=60)
        [event] = [e for e in app.store.events.listing() if e.segment_id == "cm-thap"]
        bodies = [a.body for a in app.store.outbox.pending_alerts()]
    finally:
        app.close()
    # The 20:00 cycle's onset alert says when the water was seen (19:30 in Cà Mau).
    assert any("BẮT ĐẦU NGẬP" in b and "11 cm lúc 19:30" in b for b in bodies), bodies
    # 1.06 m over a 0.95 m crest for one reading only: 11 cm, level 1, at 12:30 UTC.
    assert event.kind == "observed"
    assert event.opened_at == peak_at
    assert event.peak_at == peak_at
    assert event.peak_depth_m == pytest.approx(0.11, abs=1e-3)
    assert event.max_level == 1


def test_the_same_peak_read_every_15_minutes_gives_the_same_event(tmp_path, database_url):
    """Hourly cycles over 15-minute observations end like 15-minute cycles (the grid's way)."""
    results = []
    for every in (60, 15):
        folder = tmp_path / str(every)
        folder.mkdir()
        url = database_url if every == 60 else f"sqlite:///{folder / 'db.sqlite'}"
        extra = f"[assessment]\nstep_minutes = {min(every, 60)}\n"
        app = App.open(write_project(folder, url, extra), with_sources=False)
        try:
            live_cycles(app, quarter_hours(T0 + timedelta(minutes=30)), every_minutes=every)
            results.append(
                [(e.opened_at, e.peak_at, e.peak_depth_m, e.max_level)
                 for e in app.store.events.listing() if e.kind == "observed"]
            )  # fmt: skip
        finally:
            app.close()
    assert results[0] == results[1] and len(results[0]) == 1


def test_a_gauge_going_quiet_mid_event_never_sends_an_all_clear(tmp_path, database_url):
    config = write_project(tmp_path, database_url)
    app = App.open(config, with_sources=False)
    try:
        flood = [level("tp_ca_mau", T0 + timedelta(hours=h), 1.20) for h in range(3)]
        flood += [rain("tp_ca_mau", T0 + timedelta(hours=h), 0.0) for h in range(3)]
        live_cycles(app, flood, every_minutes=60)
        # The gauge stops; rain keeps arriving for six hours (its depth part: 0).
        later = [rain("tp_ca_mau", T0 + timedelta(hours=h), 0.0) for h in range(3, 9)]
        live_cycles(app, later, every_minutes=60)
        changes = [c.change for e in app.store.events.listing() for c in _changes(app, e.id)]
    finally:
        app.close()
    assert "opened" in changes
    assert not {"receding", "closed", "level_down"} & set(changes), changes


def _changes(app: App, event_id: int):
    return app.store.events.changes(event_id)


# --- 6. looking back ------------------------------------------------------------------------


def test_looking_back_shows_the_events_levels_and_silences_of_then(tmp_path, database_url):
    config = write_project(tmp_path, database_url)
    app = App.open(config, with_sources=False)
    flood = T0
    try:
        readings = []
        for h in range(-3, 9):
            when = T0 + timedelta(hours=h)
            readings.append(level("tp_ca_mau", when, 1.20 if 0 <= h <= 2 else 0.5))
            readings.append(rain("tp_ca_mau", when, 0.0))
        replay(app, readings)
        app.store.silences.add("segment", "cm-thap", T0, T0 + timedelta(hours=2), "thi công", "cli")
        with TestClient(create_app(app, secret_key="k")) as client:
            then = client.get("/", params={"at": (flood + timedelta(hours=1)).isoformat()}).text
            later = client.get("/", params={"at": (T0 + timedelta(hours=8)).isoformat()}).text
    finally:
        app.close()
    assert "Đang xem lại thời điểm" in then
    flooded_then = then[then.index("<h2>Đang ngập</h2>") : then.index("<h2>Dự báo sẽ ngập</h2>")]
    assert "Đường cm-thap" in flooded_then
    assert "120 cm lúc" in then  # the latest level known by then, not a later one
    assert "thi công" in then
    flooded_later = later[later.index("<h2>Đang ngập</h2>") : later.index("<h2>Dự báo")]
    assert "Đường cm-thap" not in flooded_later and "thi công" not in later
    status_then = json.loads(
        cli(config, "status", "--json", "--at", (flood + timedelta(hours=1)).isoformat()).output
    )
    assert [e["segment_id"] for e in status_then["flooded"]] == ["cm-thap"]


# --- 9. a shrunken segment file -------------------------------------------------------------


def test_a_shrunken_segment_file_keeps_the_log_of_removed_roads(tmp_path, database_url):
    config = write_project(tmp_path, database_url)
    app = App.open(config, with_sources=False)
    try:
        flood = [level("tp_ca_mau", T0 + timedelta(hours=h), 1.20) for h in range(2)]
        replay(app, flood + [rain("tp_ca_mau", T0 + timedelta(hours=h), 0.0) for h in range(2)])
    finally:
        app.close()
    # The road with an open event disappears from the file (a half-finished edit).
    write_project(tmp_path, database_url, segments=[segment("sd", 0.80, "song_doc")])
    app = App.open(config, with_sources=False)
    try:
        replay(app, [level("song_doc", T0 + timedelta(hours=3), 0.5)])
        [event] = [e for e in app.store.events.listing() if e.segment_id == "cm-thap"]
    finally:
        app.close()
    assert event.segment_name == "Đường cm-thap"  # its row was kept: the log names it
    assert event.status == "closed" and event.close_reason == "removed"
    pruned = cli(config, "db", "prune-segments")
    assert pruned.exit_code == 0 and "removed 1 segments: cm-thap" in pruned.output
    events = json.loads(cli(config, "events", "--format", "json").output)
    assert [e["segment_name"] for e in events if e["segment_id"] == "cm-thap"] == [None]
