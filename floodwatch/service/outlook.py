"""What is coming and what is wet: helpers shared by the CLI and the Telegram bot commands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from floodwatch.config import Settings
from floodwatch.core.events import CLOSED, FORECAST, OBSERVED
from floodwatch.core.geo import Geodata, Segment, Station
from floodwatch.core.text import fold
from floodwatch.core.tides import Extreme, high_low_waters

if TYPE_CHECKING:
    from floodwatch.service.app import App


def next_high_waters(
    app: App, now: datetime, hours: int = 48, limit: int = 4
) -> list[tuple[Station, list[Extreme]]]:
    """The next predicted high waters of each station with a tide table, by station id."""
    from floodwatch.sources.harmonic import HarmonicTideSource

    found: dict[str, tuple[Station, list[Extreme]]] = {}
    for source in app.sources:
        if not isinstance(source, HarmonicTideSource):
            continue
        for station_id, table in sorted(source.tables.items()):
            station = app.geodata.stations.get(station_id)
            if station is None or station_id in found:
                continue
            extremes = high_low_waters(table, now, now + timedelta(hours=hours))
            found[station_id] = (station, [e for e in extremes if e.kind == "high"][:limit])
    return [found[sid] for sid in sorted(found)]


def alarm_reached(station: Station, level_m: float) -> int:
    """The highest alarm level (BĐ 1..3) a water level reaches at a station, 0 if none."""
    reached = [i + 1 for i, a in enumerate(station.alarm_m) if a is not None and level_m >= a]
    return reached[-1] if reached else 0


def unit_roads(app: App, unit_id: str | None) -> tuple[list[dict], list[dict]]:
    """Roads of a unit (all units for None) flooded now and expected to flood, from open events.

    Flooded: most severe first, with depth, level and since when. Expected: soonest first,
    with expected onset and peak.
    """
    flooded, expected = [], []
    for ev in app.store.events.open():
        if ev.status == CLOSED or (unit_id is not None and ev.unit != unit_id):
            continue
        segment = app.geodata.segment(ev.segment_id)
        road = {
            "segment_id": ev.segment_id,
            "name": segment.name if segment else ev.segment_id,
            "ward": segment.ward if segment else "",
            "unit": ev.unit,
            "status": ev.status,
            "level": ev.level,
            "cause": ev.cause,
        }
        if ev.kind == OBSERVED:
            road.update(depth_m=ev.depth_m, since=ev.opened_at, peak_depth_m=ev.peak_depth_m)
            flooded.append(road)
        elif ev.kind == FORECAST:
            road.update(
                onset_at=ev.expected_onset_at,
                end_at=ev.expected_end_at,
                peak_at=ev.peak_at,
                peak_depth_m=ev.peak_depth_m,
            )
            expected.append(road)
    flooded.sort(key=lambda r: (-r["level"], -r["depth_m"], r["name"]))
    expected.sort(key=lambda r: (r["onset_at"] or r["peak_at"], r["name"]))
    return flooded, expected


@dataclass(frozen=True)
class Match:
    """Segments a free-text road name matched (one when unambiguous)."""

    query: str
    segments: list[Segment]

    @property
    def unique(self) -> Segment | None:
        """The one segment meant, if exactly one matched."""
        return self.segments[0] if len(self.segments) == 1 else None


def match_segments(geodata: Geodata, query: str) -> Match:
    """Segments whose id equals, or whose name or id contains, the query.

    Case- and diacritics-insensitive ("Phan Ngoc Hien" finds "Đường Phan Ngọc Hiển"). Among
    several, one whose whole name (with or without "Đường") is the query wins.
    """
    wanted = fold(query)
    exact = geodata.segment(query.strip())
    if exact is not None or not wanted:
        return Match(query, [exact] if exact else [])
    hits = [s for s in geodata.segments if wanted in fold(s.name) or wanted in fold(s.id)]
    whole = [s for s in hits if fold(s.name) in (wanted, f"duong {wanted}")]
    return Match(query, whole if len(whole) == 1 else hits)


def mute_target(
    settings: Settings, geodata: Geodata, query: str
) -> tuple[tuple[str, str, str] | None, list[Segment]]:
    """What a mute names: ((kind, id, name), []) for a unit or one road, else (None, roads).

    Diacritics and case are optional (core.text.fold): a unit by its id or whole name
    ("ubnd xa nam can"), a road as match_segments finds it ("DE THAM"), and failing a road,
    the one unit whose name contains the text ("so xay dung").
    """
    wanted = fold(query)
    unit = next((u for u in settings.units if wanted in whole_names(u)), None)
    if unit is not None:
        return ("unit", unit.id, unit.name), []
    match = match_segments(geodata, query)
    if match.unique is not None:
        return ("segment", match.unique.id, match.unique.name), []
    units = [u for u in settings.units if wanted and wanted in fold(u.name)]
    if not match.segments and len(units) == 1:
        return ("unit", units[0].id, units[0].name), []
    return None, match.segments


def whole_names(unit) -> set[str]:
    """The folded ways to name a unit whole: its id (with or without "_") and its name."""
    return {fold(unit.id), fold(unit.id.replace("_", " ")), fold(unit.name)}
