"""The daily bulletin, shaped like the province's "Tin cảnh báo ngập lụt do triều cường"."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from floodwatch.bulletin import RoadLine, StationLine, compose_bulletin
from floodwatch.events import CLOSED
from floodwatch.outbox import NewAlert
from floodwatch.readings import Variable
from floodwatch.routing import operator_targets, targets
from floodwatch.series import level_series, make_grid
from floodwatch.tides import find_extremes

if TYPE_CHECKING:
    from floodwatch.service import App

PEAK_HOURS = 48


def station_lines(app: App, now: datetime) -> list[StationLine]:
    """Each tide station's level now and its forecast high waters for the next two days."""
    pipeline = app.pipeline
    grid = make_grid(now, 15, lookback_hours=1, horizon_hours=PEAK_HOURS)
    rows = app.store.reading_arrays(
        Variable.WATER_LEVEL, pipeline.tide_index, grid.at(0) - timedelta(hours=3),
        grid.at(len(grid.times_s) - 1), now,
    )  # fmt: skip
    max_age_s = app.settings.assessment.observed_max_age_minutes * 60
    series = level_series(grid, len(pipeline.tide_stations), rows, max_age_s)
    times = [grid.at(k) for k in range(len(grid.times_s))]
    future = slice(grid.now_idx, None)
    lines = []
    for index, station_id in enumerate(pipeline.tide_stations):
        station = app.geodata.stations[station_id]
        level_now = series.values[index, grid.now_idx]
        highs = [
            (e.time, e.level_m)
            for e in find_extremes(times[future], series.values[index, future])
            if e.kind == "high"
        ]
        lines.append(
            StationLine(
                name=station.name,
                river=station.river,
                alarm_m=station.alarm_m,
                observed_at=None if np.isnan(level_now) else grid.at(grid.now_idx),
                observed_m=None if np.isnan(level_now) else float(level_now),
                observed_is_prediction=not bool(series.observed[index, grid.now_idx]),
                peaks=highs,
            )
        )
    return lines


def road_lines(app: App, now: datetime) -> list[RoadLine]:
    """Roads flooded now or expected to flood within two days."""
    horizon = now + timedelta(hours=PEAK_HOURS)
    roads = []
    for ev in app.store.list_events():
        if ev["status"] == CLOSED:
            continue
        onset = datetime.fromisoformat(ev["expected_onset_at"] or ev["opened_at"])
        if onset > horizon:
            continue
        segment = app.geodata.segment(ev["segment_id"])
        roads.append(
            RoadLine(
                name=ev["segment_name"] or ev["segment_id"],
                ward=segment.ward if segment else "",
                onset_at=onset,
                peak_at=datetime.fromisoformat(ev["peak_at"]),
                peak_m=ev["peak_depth_m"],
                level=ev["max_level"],
                cause=ev["cause"] or "",
            )
        )
    return sorted(roads, key=lambda r: r.onset_at)


def situation(app: App, now: datetime) -> str:
    """One paragraph on the water and rain now."""
    states = app.pipeline.station_states(now)
    names = {sid: s.name for sid, s in app.geodata.stations.items()}
    high = [s for s in states if s.alarm > 0 and s.level_m is not None]
    parts = []
    if high:
        worst = max(high, key=lambda s: s.alarm)
        parts.append(
            f"Mực nước tại {len(high)} trạm đang ở mức báo động; cao nhất "
            f"{names[worst.station]} {worst.level_m * 100:.0f} cm (BĐ {'I' * worst.alarm})."
        )
    else:
        parts.append("Mực nước tại các trạm đang dưới mức báo động I.")
    rainy = [s for s in states if s.rain_24h_mm]
    if rainy:
        wettest = max(rainy, key=lambda s: s.rain_24h_mm)
        parts.append(
            f"Lượng mưa 24 giờ qua lớn nhất {wettest.rain_24h_mm:.0f} mm tại "
            f"{names[wettest.station]}."
        )
    else:
        parts.append("Không có mưa đáng kể trong 24 giờ qua.")
    return " ".join(parts)


def bulletin_text(app: App, now: datetime) -> str:
    """The whole bulletin as Telegram HTML."""
    return compose_bulletin(
        now,
        app.settings.zone,
        situation(app, now),
        station_lines(app, now),
        road_lines(app, now),
        app.settings.levels.names,
    )


def bulletin_alert(app: App, now: datetime) -> NewAlert:
    """The bulletin as an alert for every configured chat (in its unit's forum topic)."""
    chats: dict[int, int | None] = {}
    for unit in app.settings.units:
        for target in targets(app.settings, unit.id):
            chats.setdefault(target.chat_id, target.thread_id)
    for target in operator_targets(app.settings):
        chats.setdefault(target.chat_id, target.thread_id)
    return NewAlert(now, "all", ["daily_bulletin"], bulletin_text(app, now), sorted(chats.items()))
