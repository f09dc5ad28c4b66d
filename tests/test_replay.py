"""End to end: replay a December 2024-like spring tide with a rain burst through the CLI."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from floodwatch.cli import main
from floodwatch.cli.base import EXIT_REJECTED
from tests.conftest import DATA, on_test_roads

REPLAY = DATA / "replay" / "spring_tide_dec2024.csv"
ICT = timezone(timedelta(hours=7))
PEAK = datetime(2024, 12, 16, 18, tzinfo=ICT)  # TP Cà Mau at 1.07 m
RAIN_HIGH = PEAK - timedelta(hours=12)  # the 90 mm burst on the high tide before


@pytest.fixture
def replay_config(project):
    """The shipped config, with the designed test segments instead of the sample roads."""
    on_test_roads(project)
    return project


def run(config, *args):
    """Invoke the CLI and return the result."""
    return CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)


def observed_events(config) -> dict[str, list[dict]]:
    """Observed events per segment, oldest first, from `events --format json`."""
    result = run(config, "events", "--kind", "observed", "--format", "json")
    assert result.exit_code == 0, result.output
    by_segment: dict[str, list[dict]] = {}
    for ev in sorted(json.loads(result.output), key=lambda e: e["opened_at"]):
        by_segment.setdefault(ev["segment_id"], []).append(ev)
    return by_segment


def at(ev: dict, key: str) -> datetime:
    """An event time as an aware datetime."""
    return datetime.fromisoformat(ev[key])


def event_around(events: list[dict], when: datetime) -> dict | None:
    """The event whose peak lies within three hours of `when`."""
    hits = [e for e in events if abs(at(e, "peak_at") - when) <= timedelta(hours=3)]
    assert len(hits) <= 1, hits
    return hits[0] if hits else None


def test_spring_tide_replay_opens_peaks_and_closes_each_segment(replay_config):
    result = run(replay_config, "replay", str(REPLAY))
    assert result.exit_code == 0, result.output
    assert "0 rejected" in result.output
    assert "BẮT ĐẦU NGẬP" in result.output and "HẾT NGẬP" in result.output

    events = observed_events(replay_config)
    assert set(events) == {"tide-low", "tide-mid", "tide-edge", "rain-only"}

    # Pure tide at the 1.07 m peak: depth is level minus crest, within 1 cm.
    for segment, crest in (("tide-low", 0.82), ("tide-mid", 0.95)):
        peak = event_around(events[segment], PEAK)
        assert peak is not None, segment
        assert peak["cause"] == "tide"
        assert peak["peak_depth_m"] == pytest.approx(1.07 - crest, abs=0.01)
        assert at(peak, "peak_at") == PEAK
        assert peak["max_level"] == (1 if 1.07 - crest < 0.30 else 2)
    # 0.98 m crest: 9 cm at the peak stays below the first threshold (0.10 m).
    assert event_around(events["tide-edge"], PEAK) is None

    # Rain on a high tide over a low road is compound; on a high road it is rain.
    burst = event_around(events["tide-low"], RAIN_HIGH)
    assert burst is not None and burst["cause"] == "compound"
    rain = events["rain-only"]
    assert len(rain) == 1 and rain[0]["cause"] == "rain"
    assert RAIN_HIGH - timedelta(hours=2) <= at(rain[0], "opened_at") <= RAIN_HIGH
    assert rain[0]["peak_depth_m"] >= 0.30  # 90 mm on a 15 mm/h drain: half a wheel

    # Every event closed once the water fell, after its peak.
    for segment_events in events.values():
        for ev in segment_events:
            assert ev["status"] == "closed", ev
            assert at(ev, "closed_at") > at(ev, "peak_at")
            assert ev["kind"] == "observed"


def test_replaying_the_same_file_twice_adds_nothing(replay_config):
    assert run(replay_config, "replay", "--quiet", str(REPLAY)).exit_code == 0
    first = observed_events(replay_config)
    again = run(replay_config, "replay", "--quiet", str(REPLAY))
    assert again.exit_code == 0
    assert "0 cycles run" in again.output
    assert observed_events(replay_config) == first


def test_bad_rows_are_reported_by_line_and_good_rows_still_count(replay_config, tmp_path):
    bad = tmp_path / "bad.csv"
    good_lines = REPLAY.read_text(encoding="utf-8").splitlines()
    bad.write_text(
        "\n".join(
            good_lines
            + [
                "2024-12-18T01:00:00+07:00,nowhere,water_level,0.5,observed",
                "2024-12-18T01:00:00,tp_ca_mau,water_level,0.5,observed",
                "2024-12-18T01:00:00+07:00,tp_ca_mau,water_level,high,observed",
                "2024-12-18T01:00:00+07:00,tp_ca_mau,water_level,,observed",
                good_lines[1],
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["--config", str(replay_config), "replay", "-q", str(bad)])
    assert result.exit_code == EXIT_REJECTED
    n = len(good_lines)
    lines = result.output.splitlines()
    for line, reason in (
        (n + 1, "unknown station 'nowhere'"),
        (n + 2, "has no UTC offset"),
        (n + 3, "is not a number"),
        (n + 4, "missing `value`"),
        (n + 5, "duplicate of line 2"),
    ):
        [reported] = [out for out in lines if f"bad.csv: line {line}: " in out]
        assert reason in reported
    assert "5 rejected" in result.output
    assert "Traceback" not in result.output
    assert set(observed_events(replay_config)) == {"tide-low", "tide-mid", "tide-edge", "rain-only"}


def test_a_doubtful_spike_is_kept_but_opens_no_event(replay_config, tmp_path):
    spike_at = datetime(2024, 12, 15, 0, tzinfo=ICT)  # low water, about 0.3 m
    lines = REPLAY.read_text(encoding="utf-8").splitlines()
    stamp = spike_at.isoformat()
    spiked = [
        f"{stamp},tp_ca_mau,water_level,2.500,observed"
        if line.startswith(f"{stamp},tp_ca_mau,water_level,")
        else line
        for line in lines
    ]
    assert spiked != lines
    path = tmp_path / "spike.csv"
    path.write_text("\n".join(spiked) + "\n", encoding="utf-8")
    result = run(replay_config, "replay", "--quiet", str(path))
    assert result.exit_code == 0, result.output
    assert "(1 flagged as doubtful)" in result.output
    for segment_events in observed_events(replay_config).values():
        for ev in segment_events:
            assert abs(at(ev, "opened_at") - spike_at) > timedelta(hours=2), ev


def test_a_doubtful_reading_during_a_flood_is_noted_on_the_event(replay_config, tmp_path):
    from sqlalchemy import select

    from floodwatch.config import load_settings
    from floodwatch.db.models import EventChangeRow
    from floodwatch.db.store import Store

    spike_at = PEAK + timedelta(hours=1)  # tide-low is flooded then
    stamp = spike_at.isoformat()
    lines = [
        f"{stamp},tp_ca_mau,water_level,2.900,observed"
        if line.startswith(f"{stamp},tp_ca_mau,water_level,")
        else line
        for line in REPLAY.read_text(encoding="utf-8").splitlines()
    ]
    path = tmp_path / "spike_in_flood.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert run(replay_config, "replay", "--quiet", str(path)).exit_code == 0
    store = Store(load_settings(replay_config).storage.database_url)
    with store.engine.connect() as conn:
        notes = [
            r.note for r in conn.execute(select(EventChangeRow)) if r.change == "doubtful_reading"
        ]
    store.close()
    assert notes and all("tp_ca_mau 2.9 m" in n and "(spike)" in n for n in notes)
    peak = event_around(observed_events(replay_config)["tide-low"], PEAK)
    assert peak["peak_depth_m"] == pytest.approx(0.25, abs=0.01)  # the spike did not count
