"""What `status` shows (and scripts read as JSON): the state at a moment, unknown as null."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from floodwatch.core.events import FORECAST, OBSERVED
from floodwatch.service.polling import health_view

if TYPE_CHECKING:
    from floodwatch.core.health import HealthView
    from floodwatch.db.events import CycleRow
    from floodwatch.service.app import App
    from floodwatch.service.cycle import Situation

NEVER = "never"  # a configured source not polled yet


def _iso(when: datetime | None) -> str | None:
    """ISO 8601 with offset, or None."""
    return when.isoformat() if when is not None else None


def _keys(values: dict, keys: tuple[str, ...]) -> dict:
    """Only `keys` of `values`, in that order."""
    return {key: values[key] for key in keys}


def _station_rows(situation: Situation, rain_names: list[str], names: dict[str, str]) -> list[dict]:
    """Each station's level and 24-hour rain, null where unknown."""
    stations = []
    for st in situation.stations:
        category = rain_names[st.rain_category - 1] if st.rain_category else None
        stations.append(
            {
                "id": st.station,
                "name": names[st.station],
                "level_m": st.level_m,
                "level_observed": st.level_observed,
                "alarm": st.alarm,
                "level_blind": st.level_blind,
                "rain_24h_mm": st.rain_24h_mm,
                "rain_24h_hours_with_data": st.rain_hours if st.measures_rain else None,
                "rain_category": category if st.rain_24h_mm is not None else None,
                "rain_blind": st.rain_blind,
            }
        )
    return stations


def _cycle_summary(cycle: CycleRow | None) -> dict | None:
    """When the latest cycle ran and how long it took, or None before the first."""
    if cycle is None:
        return None
    return {
        "at": _iso(cycle.at),
        "finished_at": _iso(cycle.finished_at),
        "duration_s": round(cycle.duration_s, 3),
    }


def _stale_input_rows(health: HealthView, names: dict[str, str]) -> list[dict]:
    """The inputs that have delivered nothing new for too long (mất tín hiệu)."""
    return [
        {
            "source": i.health.source,
            "station": i.health.station,
            "station_name": names.get(i.health.station, i.health.station),
            "variable": i.health.variable,
            "newest_at": _iso(i.health.newest_at),
            "stale_since": _iso(i.health.stale_since),
        }
        for i in health.stale_inputs()
    ]


def status_document(app: App, now: datetime) -> dict:
    """What `floodwatch status` shows, as one JSON-ready object for scripts.

    Unknown is its own state (floodwatch.known): a level or rain total nobody
    knows is `null`, never 0, and `unknown_segments` lists the roads without
    usable data with what they miss.
    """
    cycle = app.store.events.last_cycle()
    health = health_view(app, now)
    situation = app.pipeline.situation(now, health)
    names = {sid: st.name for sid, st in app.geodata.stations.items()}
    stations = _station_rows(situation, app.settings.rain.names, names)
    open_events = app.store.events.at(now)
    event_keys = (
        "id", "segment_id", "segment_name", "status", "opened_at", "max_level",
        "peak_depth_m", "peak_at", "expected_onset_at", "expected_end_at", "cause",
    )  # fmt: skip
    deliveries, alerts, oldest = app.store.stats.outbox_figures()
    return {
        "at": _iso(now),
        "last_cycle": _cycle_summary(cycle),
        "stations": stations,
        "flooded": [_keys(e.as_json(), event_keys) for e in open_events if e.kind == OBSERVED],
        "expected": [_keys(e.as_json(), event_keys) for e in open_events if e.kind == FORECAST],
        "sources": {source.name: health.statuses.get(source.name, NEVER) for source in app.sources},
        "stale_inputs": _stale_input_rows(health, names),
        "blind_segments": [
            {"id": segment.id, "name": segment.name}
            for segment in app.pipeline.blind_segments(health)
        ],
        "unknown_segments": [
            {"id": u.segment.id, "name": u.segment.name, "missing": list(u.missing)}
            for u in situation.unknown
        ],
        "outbox_pending": deliveries,
        "outbox_pending_alerts": alerts,
        "outbox_oldest_pending_at": _iso(oldest),
    }
