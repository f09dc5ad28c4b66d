"""Source health end to end: polls against a local server, stale alarms, blind roads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from floodwatch.cli import main
from floodwatch.core.health import DEGRADED, FAILING, OK, STALE, Health, blind_inputs, status
from floodwatch.core.known import blind_segments
from floodwatch.service.app import App, ConsoleNotifier
from floodwatch.service.polling import health_view, poll_once
from tests.fakeserver import Reply

NOW = datetime(2025, 11, 5, 5, 0, tzinfo=UTC)
RAIN_STATIONS = ("tp_ca_mau", "song_doc", "gia_rai")  # file order of the shipped stations


def test_status_rules():
    t0 = NOW - timedelta(hours=1)
    assert status(Health(t0, newest_at=NOW), NOW, 180) == OK
    assert status(Health(t0, 1, newest_at=NOW), NOW, 180) == DEGRADED
    assert status(Health(t0, 3, newest_at=NOW), NOW, 180) == FAILING
    assert status(Health(t0, 0, NOW, last_delivered=80, last_doubted=20), NOW, 180) == DEGRADED
    assert status(Health(t0, 0, NOW - timedelta(hours=4)), NOW, 180) == STALE
    assert status(Health(NOW - timedelta(hours=4)), NOW, 180) == STALE  # never delivered
    assert status(Health(NOW - timedelta(days=9)), NOW, None) == OK  # offline: never stale


def test_an_input_is_blind_only_when_every_source_of_it_is_stale():
    provides = {"tide": {("a", "water_level")}, "sea": {("a", "water_level"), ("b", "water_level")}}
    assert blind_inputs(provides, {"tide": OK, "sea": STALE}) == {("b", "water_level")}
    assert blind_inputs(provides, {"tide": STALE, "sea": STALE}) == {
        ("a", "water_level"),
        ("b", "water_level"),
    }


def rain_payload(now: datetime, hours_back: int = 48, hours_ahead: int = 72) -> str:
    """An Open-Meteo forecast reply (JSON array, GMT) for the three rain stations."""
    start = now.replace(minute=0) - timedelta(hours=hours_back)
    times = [
        (start + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M")
        for h in range(hours_back + hours_ahead)
    ]
    locations = []
    for i, _ in enumerate(RAIN_STATIONS):
        rain = [0.0] * len(times)
        rain[hours_back - 2] = 12.5 + i  # some rain two hours ago
        rain[5] = None  # a gap Open-Meteo sends as null
        locations.append(
            {
                "latitude": 9.0,
                "longitude": 105.0,
                "generationtime_ms": 0.1,
                "utc_offset_seconds": 0,
                "timezone": "GMT",
                "timezone_abbreviation": "GMT",
                "elevation": 1.0,
                "location_id": i,
                "hourly_units": {"time": "iso8601", "precipitation": "mm"},
                "hourly": {"time": times, "precipitation": rain},
            }
        )
    return json.dumps(locations)


@pytest.fixture
def online(project, fake_server, closed_port):
    """The shipped config with its Open-Meteo sources on the local server."""
    text = project.read_text(encoding="utf-8")
    project.write_text(text.replace(f"http://127.0.0.1:{closed_port}", fake_server.url))
    fake_server.routes["/v1/marine"] = [Reply(503, "down for maintenance")]
    return project


def test_polls_store_rain_count_rejections_and_go_stale_then_recover(online, fake_server):
    fake_server.routes["/v1/forecast"] = [Reply.json(rain_payload(NOW))]
    app = App.open(online)
    printed: list[str] = []
    notifier = ConsoleNotifier(app, printed.append)
    try:
        poll_once(app, NOW)
        runs = app.store.health.last_source_runs()
        assert runs["rain"].ok and runs["rain"].accepted == 3 * 119
        assert json.loads(runs["rain"].reasons) == {"missing": 3}
        assert not runs["sea_level"].ok and "HTTP 503" in runs["sea_level"].error
        assert runs["tide"].ok

        at = ["--at", NOW.isoformat()]
        result = CliRunner().invoke(main, ["--config", str(online), "sources", *at])
        assert result.exit_code == 0, result.output
        lines = {
            line.split()[0]: line for line in result.output.splitlines()[1:] if line[:1] != " "
        }
        assert " bình thường " in lines["rain"] and " chập chờn " in lines["sea_level"]
        assert "missing 3" in result.output

        # Four hours of outage: the rain source goes stale, its roads go blind.
        fake_server.routes["/v1/forecast"] = [Reply(500, "boom")]
        later = NOW + timedelta(hours=4)
        poll_once(app, later)
        notifier.drain()
        alarm = "\n".join(printed)
        assert "MẤT TÍN HIỆU — nguồn dữ liệu «rain»" in alarm
        assert "→ operators [no_data]" in alarm
        blind = blind_segments(app.geodata.segments, health_view(app, later).blind)
        assert len(blind) == len(app.geodata.segments)  # every road needs rain
        poll_once(app, later + timedelta(hours=1))  # still down: no second alarm
        notifier.drain()
        assert "\n".join(printed).count("MẤT TÍN HIỆU") == 1
        at = ["--at", (later + timedelta(hours=1)).isoformat()]
        status_out = CliRunner().invoke(main, ["--config", str(online), "status", *at]).output
        assert "Blind (no fresh data, state unknown): 20" in status_out

        # Back online: the alarm is lifted, nothing is blind any more.
        fake_server.routes["/v1/forecast"] = [Reply.json(rain_payload(later + timedelta(hours=2)))]
        poll_once(app, later + timedelta(hours=2))
        notifier.drain()
        assert "CÓ TÍN HIỆU TRỞ LẠI — nguồn dữ liệu «rain»" in "\n".join(printed)
        back = later + timedelta(hours=2)
        assert blind_segments(app.geodata.segments, health_view(app, back).blind) == []
    finally:
        app.close()


def test_no_network_carries_on_with_predicted_tides(project):
    """The shipped config with the network down: tide forecasts still come out."""
    result = CliRunner().invoke(
        main, ["--config", str(project), "poll", "--at", "2025-11-08T12:00+07:00"]
    )
    assert result.exit_code == 0, result.output
    assert "Next high waters" in result.output
    sources = CliRunner().invoke(main, ["--config", str(project), "sources"]).output
    assert "cannot connect" in sources
    lines = sources.splitlines()
    assert any(line.startswith("tide ") and " bình thường " in line for line in lines)
