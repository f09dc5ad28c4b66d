"""CAP 1.2 output: the December 2024 spring-tide replay as schema-valid, chained alerts."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import shapely
from click.testing import CliRunner
from lxml import etree

from floodwatch.cli import main
from floodwatch.core.events import Forecast, Rules, SegmentNow, step
from floodwatch.core.geo import load_geodata, project_utm
from floodwatch.db.events import CycleStats
from floodwatch.db.store import Store
from floodwatch.errors import ConfigError
from floodwatch.exports.cap import (
    CAP_NS,
    SCHEMA_PATH,
    cap_alerts,
    cap_atom,
    road_polygons,
    write_cap,
)
from floodwatch.service.app import load_checked
from tests.conftest import DATA, ROOT, on_test_roads

REPLAY = DATA / "replay" / "spring_tide_dec2024.csv"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
SENDER = "floodwatch@camau.example"
SEVERITY = {1: "Moderate", 2: "Severe", 3: "Extreme"}
NS = {"cap": CAP_NS}


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    """Our CAP 1.2 schema, shipped inside the package."""
    return etree.XMLSchema(etree.parse(str(SCHEMA_PATH)))


@pytest.fixture
def replayed(project):
    """Settings, geodata and store after replaying the spring tide on the test segments."""
    on_test_roads(project)
    result = CliRunner().invoke(
        main, ["--config", str(project), "replay", "--quiet", str(REPLAY)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    settings, geodata = load_checked(project)
    store = Store(settings.storage.database_url)
    yield settings, geodata, store
    store.close()


def parse(document: bytes) -> etree._Element:
    """A CAP alert document as an lxml element."""
    return etree.fromstring(document)


def get(alert: etree._Element, path: str) -> str | None:
    """The text of the first CAP element at `path` (cap: prefixed)."""
    found = alert.find(path, NS)
    return None if found is None else found.text


def params(alert: etree._Element) -> dict[str, str]:
    """The info parameters as a dict."""
    return {
        p.findtext("cap:valueName", namespaces=NS): p.findtext("cap:value", namespaces=NS)
        for p in alert.iterfind("cap:info/cap:parameter", NS)
    }


def ring(polygon: str) -> list[tuple[float, float]]:
    """A CAP polygon as (lon, lat) points."""
    pairs = [pair.split(",") for pair in polygon.split()]
    return [(float(lon), float(lat)) for lat, lon in pairs]


def test_replay_alerts_are_valid_cap_chained_per_event(replayed, schema):
    settings, geodata, store = replayed
    alerts = cap_alerts(
        store,
        geodata,
        since=None,
        status="Exercise",
        sender=SENDER,
        zone=ZONE,
        level_names=settings.levels.names,
    )
    assert alerts
    by_event: dict[str, list[etree._Element]] = {}
    for document in alerts:
        alert = parse(document)
        assert schema.validate(alert), schema.error_log
        assert get(alert, "cap:status") == "Exercise"
        assert get(alert, "cap:info/cap:language") == "vi-VN"
        by_event.setdefault(params(alert)["event_id"], []).append(alert)

    identifiers = [get(etree.fromstring(a), "cap:identifier") for a in alerts]
    assert len(set(identifiers)) == len(identifiers)
    events = {str(ev.id): ev for ev in store.events.listing()}
    assert set(by_event) == set(events)  # every replayed event is in the feed

    for event_id, chain in by_event.items():
        types = [get(a, "cap:msgType") for a in chain]
        assert types[0] == "Alert" and set(types[1:]) == {"Update"}, types
        assert get(chain[0], "cap:references") is None
        earlier = []
        for alert in chain:
            if earlier:
                assert get(alert, "cap:references").split() == earlier
            earlier.append(
                ",".join(get(alert, f"cap:{t}") for t in ("sender", "identifier", "sent"))
            )
            info = params(alert)
            assert get(alert, "cap:info/cap:certainty") == "Observed"
            assert info["segment_id"] == events[event_id].segment_id
            if alert is not chain[-1]:
                level = int(info["level"])
                assert get(alert, "cap:info/cap:severity") == SEVERITY[level]
                assert get(alert, "cap:info/cap:urgency") == "Immediate"
                assert get(alert, "cap:info/cap:responseType") != "AllClear"
        last = chain[-1]  # every replayed event closed: the all-clear
        assert get(last, "cap:info/cap:responseType") == "AllClear"
        assert get(last, "cap:info/cap:urgency") == "Past"
        assert int(params(last)["max_level"]) == events[event_id].max_level
        assert get(last, "cap:info/cap:headline").startswith("HẾT NGẬP")

    # The level-2 peak of tide-low on the rain burst went Moderate → Severe → Moderate.
    deepest = next(
        chain
        for chain in by_event.values()
        if "Severe" in [get(a, "cap:info/cap:severity") for a in chain]
    )
    assert [get(a, "cap:info/cap:severity") for a in deepest][:3] == [
        "Moderate",
        "Severe",
        "Moderate",
    ]


def test_road_area_is_a_closed_valid_50_m_buffer_around_the_road(replayed):
    _, geodata, store = replayed
    alerts = cap_alerts(store, geodata, since=None, status="Actual", sender=SENDER, zone=ZONE)
    seen = set()
    for document in alerts:
        alert = parse(document)
        segment = geodata.segment(params(alert)["segment_id"])
        assert get(alert, "cap:info/cap:area/cap:areaDesc") == f"{segment.name}, {segment.ward}"
        [polygon] = [p.text for p in alert.iterfind("cap:info/cap:area/cap:polygon", NS)]
        points = ring(polygon)
        assert points[0] == points[-1] and 4 <= len(points) <= 200
        area = shapely.Polygon(points)
        assert area.is_valid
        assert area.contains(segment.geometry.interpolate(0.5, normalized=True))
        seen.add(segment.id)

        # Width across the road at its midpoint, in metres.
        area_m, road_m = project_utm(np.array([area, segment.geometry], dtype=object))
        mid = road_m.interpolate(0.5, normalized=True)
        ahead = road_m.interpolate(0.5 * road_m.length + 1)
        dx, dy = ahead.x - mid.x, ahead.y - mid.y
        norm = (dx * dx + dy * dy) ** 0.5
        across = shapely.LineString(
            [(mid.x - 200 * dy / norm, mid.y + 200 * dx / norm),
             (mid.x + 200 * dy / norm, mid.y - 200 * dx / norm)]
        )  # fmt: skip
        assert area_m.intersection(across).length == pytest.approx(50, abs=1.5)
    assert seen == {"tide-low", "tide-mid", "tide-edge", "rain-only"}


def test_a_long_winding_road_stays_under_a_few_hundred_points():
    lon = np.linspace(105.10, 105.20, 2000)
    road = shapely.LineString(np.column_stack([lon, 9.17 + 0.002 * np.sin(lon * 3000)]))
    [polygon] = road_polygons(road)
    points = ring(polygon)
    assert len(points) <= 200 and points[0] == points[-1]
    assert shapely.Polygon(points).is_valid


def test_actual_status_and_since_keep_references_to_earlier_alerts(replayed, schema):
    _, geodata, store = replayed
    every = cap_alerts(store, geodata, since=None, status="Actual", sender=SENDER, zone=ZONE)
    since = datetime(2024, 12, 16, 1, tzinfo=UTC)  # during the rain-only event
    recent = cap_alerts(store, geodata, since=since, status="Actual", sender=SENDER, zone=ZONE)
    assert 0 < len(recent) < len(every)
    assert set(recent) <= set(every)  # the same documents, byte for byte
    for document in recent:
        alert = parse(document)
        assert schema.validate(alert), schema.error_log
        assert get(alert, "cap:status") == "Actual" and get(alert, "cap:note") is None
        assert datetime.fromisoformat(get(alert, "cap:sent")) >= since
    rain_closed = [parse(d) for d in recent if params(parse(d))["segment_id"] == "rain-only"]
    assert len(get(rain_closed[-1], "cap:references").split()) == 3  # opened, up, down


def test_atom_feed_has_one_entry_per_alert_and_write_cap_picks_the_format(replayed):
    _, geodata, store = replayed
    alerts = cap_alerts(store, geodata, since=None, status="Exercise", sender=SENDER, zone=ZONE)
    atom = "http://www.w3.org/2005/Atom"
    feed = etree.fromstring(cap_atom(alerts, self_url="http://lan/api/v1/cap.atom").encode())
    assert feed.tag == f"{{{atom}}}feed"
    entries = feed.findall(f"{{{atom}}}entry")
    assert len(entries) == len(alerts)
    embedded = [e.find(f"{{{atom}}}content/{{{CAP_NS}}}alert") for e in entries]
    assert {get(a, "cap:identifier") for a in embedded} == {
        get(parse(d), "cap:identifier") for d in alerts
    }
    newest = max(datetime.fromisoformat(get(a, "cap:sent")) for a in embedded)
    assert datetime.fromisoformat(feed.findtext(f"{{{atom}}}updated")) == newest
    assert len({e.findtext(f"{{{atom}}}id") for e in entries}) == len(entries)

    one = io.BytesIO()
    write_cap(one, alerts[:1])
    assert etree.fromstring(one.getvalue()).tag == f"{{{CAP_NS}}}alert"
    many = io.StringIO()
    write_cap(many, alerts)
    assert etree.fromstring(many.getvalue().encode()).tag == f"{{{atom}}}feed"


@pytest.fixture
def forecast_alerts(database_url) -> list[bytes]:
    """CAP alerts of one forecast event on tide-low: opened, moved later and deeper, withdrawn."""
    geodata = load_geodata(DATA / "replay" / "segments.geojson", ROOT / "geodata/stations.geojson")
    store = Store(database_url)
    store.sync_geodata(geodata)
    segment = geodata.segment("tide-low")
    rules = Rules(thresholds_m=(0.10, 0.30, 0.50), zone=ZONE)  # notes in the display zone
    start = datetime(2024, 12, 16, 3, tzinfo=UTC)
    stats = CycleStats(
        0.0, segments=1, flooded=0, forecast=1, changes=1, alerts=0, unknown=0, blind=0
    )
    for hours, onset_h, peak_m in ((0, 4, 0.20), (1, 9, 0.40), (2, None, 0.0)):
        at = start + timedelta(hours=hours)
        forecast = (
            None
            if onset_h is None
            else Forecast(
                onset_at=start + timedelta(hours=onset_h),
                end_at=start + timedelta(hours=onset_h + 10),
                peak_at=start + timedelta(hours=onset_h + 1),
                peak_m=peak_m,
                cause=1,
            )
        )
        now = SegmentNow(segment.id, segment.unit, at, False, 0.0, 0, forecast)
        open_forecast = next(iter(store.events.open()), None)
        changes = step(now, None, open_forecast, rules)
        store.events.record_cycle(at, changes, [], stats)
    yield cap_alerts(store, geodata, since=None, status="Test", sender=SENDER, zone=ZONE)
    store.close()


def test_a_forecast_is_alerted_updated_then_cancelled(forecast_alerts, schema):
    alerts = [parse(d) for d in forecast_alerts]
    for alert in alerts:
        assert schema.validate(alert), schema.error_log
    info = [
        tuple(get(a, f"cap:{p}") for p in ("msgType", "info/cap:urgency", "info/cap:severity"))
        + (get(a, "cap:info/cap:certainty"), get(a, "cap:info/cap:responseType"))
        for a in alerts
    ]
    assert info == [
        ("Alert", "Expected", "Moderate", "Likely", "Prepare"),  # onset in 4 h, 20 cm
        ("Update", "Future", "Severe", "Likely", "Prepare"),  # onset in 8 h, 40 cm
        ("Cancel", "Past", "Minor", "Unlikely", "None"),  # withdrawn
    ]
    # Each alert keeps the onset forecast at its time, not the event's latest one.
    assert [get(a, "cap:info/cap:onset") for a in alerts[:2]] == [
        "2024-12-16T14:00:00+07:00",
        "2024-12-16T19:00:00+07:00",
    ]
    assert len(get(alerts[-1], "cap:references").split()) == 2
    assert get(alerts[-1], "cap:info/cap:headline").startswith("HUỶ DỰ BÁO NGẬP")
    assert get(alerts[0], "cap:info/cap:expires") is not None


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ("cap:msgType", "Warning"),
        ("cap:sent", "2024-12-16T05:00:00Z"),
        ("cap:identifier", "floodwatch camau 1"),
        ("cap:info/cap:severity", "Catastrophic"),
        ("cap:info/cap:area/cap:polygon", "9.1,105.1 9.2,105.2"),
    ],
)
def test_the_schema_rejects_what_cap_forbids(forecast_alerts, schema, path, bad):
    alert = parse(forecast_alerts[0])
    assert schema.validate(alert)
    alert.find(path, NS).text = bad
    assert not schema.validate(alert)


def test_the_schema_checks_element_order(forecast_alerts, schema):
    alert = parse(forecast_alerts[0])
    info = alert.find("cap:info", NS)
    urgency = info.find("cap:urgency", NS)
    info.remove(urgency)
    info.find("cap:certainty", NS).addnext(urgency)  # urgency must come before severity
    assert not schema.validate(alert)


def test_a_sender_cap_forbids_is_a_config_error(database_url):
    store = Store(database_url)
    with pytest.raises(ConfigError, match="no spaces, commas"):
        cap_alerts(store, None, since=None, status="Actual", sender="UBND Cà Mau", zone=ZONE)
    with pytest.raises(ValueError, match="Actual, Exercise, Test"):
        cap_alerts(store, None, since=None, status="Drill", sender=SENDER, zone=ZONE)
    store.close()


def test_export_cap_command_writes_a_valid_feed(project, tmp_path):
    from click.testing import CliRunner
    from lxml import etree

    from floodwatch.cli import main
    from floodwatch.exports.cap import SCHEMA_PATH
    from tests.test_replay import REPLAY

    replay_config = project
    on_test_roads(project)
    runner = CliRunner()
    assert (
        runner.invoke(main, ["--config", str(replay_config), "replay", "-q", str(REPLAY)]).exit_code
        == 0
    )
    out = tmp_path / "drill.atom"
    result = runner.invoke(
        main,
        ["--config", str(replay_config), "export", "cap", "--since", "2024-12-01",
         "--status", "Exercise", "--output", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    feed = etree.parse(str(out))
    alerts = feed.findall(".//{urn:oasis:names:tc:emergency:cap:1.2}alert")
    assert alerts and f"{len(alerts)} CAP alerts" in result.output
    schema = etree.XMLSchema(etree.parse(str(SCHEMA_PATH)))
    for alert in alerts:
        schema.assertValid(etree.fromstring(etree.tostring(alert)))
        assert alert.findtext("{urn:oasis:names:tc:emergency:cap:1.2}status") == "Exercise"
