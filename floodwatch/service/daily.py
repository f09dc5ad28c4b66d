"""The daily bulletin, shaped like the province's "Tin cảnh báo ngập lụt do triều cường"."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from floodwatch.core.events import CLOSED
from floodwatch.core.health import HealthView
from floodwatch.core.readings import Variable
from floodwatch.core.series import level_series, make_grid
from floodwatch.core.text import VARIABLE_VI, local_time
from floodwatch.core.tides import find_extremes
from floodwatch.db.outbox import NewAlert
from floodwatch.messages.bulletin import RoadLine, StationLine, compose_bulletin
from floodwatch.service.cycle import Situation, StationState
from floodwatch.service.polling import health_view
from floodwatch.service.routing import operator_targets, targets
from floodwatch.sources import data_credits

if TYPE_CHECKING:
    from floodwatch.service.app import App

PEAK_HOURS = 48


def station_lines(
    app: App, now: datetime, blind: frozenset[tuple[str, str]] = frozenset()
) -> list[StationLine]:
    """Each tide station's level now and its forecast high waters for the next two days.

    A station whose level input is blind shows no level ("—": no data).
    """
    pipeline = app.pipeline
    grid = make_grid(now, 15, lookback_hours=1, horizon_hours=PEAK_HOURS)
    rows = app.store.readings.arrays(
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
        if (station_id, "water_level") in blind:
            level_now = np.nan
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
    for ev in app.store.events.listing():
        if ev.status == CLOSED:
            continue
        onset = ev.expected_onset_at or ev.opened_at
        if onset > horizon:
            continue
        segment = app.geodata.segment(ev.segment_id)
        roads.append(
            RoadLine(
                name=ev.segment_name or ev.segment_id,
                ward=segment.ward if segment else "",
                onset_at=onset,
                peak_at=ev.peak_at or onset,
                peak_m=ev.peak_depth_m,
                level=ev.max_level,
                cause=ev.cause or "",
            )
        )
    return sorted(roads, key=lambda r: r.onset_at)


def _level_parts(situation: Situation, names: dict[str, str]) -> list[str]:
    """Sentences on the water levels: the worst alarm, or all below alarm I, then the unknown."""
    levels = [s for s in situation.stations if s.measures_level]
    known = [s for s in levels if s.level_m is not None]
    unknown_levels = [names[s.station] for s in levels if s.level_m is None]
    parts = []
    high = [s for s in known if s.alarm > 0]
    if high:
        worst = max(high, key=lambda s: s.alarm)
        parts.append(
            f"Mực nước tại {len(high)} trạm đang ở mức báo động; cao nhất "
            f"{names[worst.station]} {worst.level_m * 100:.0f} cm (BĐ {'I' * worst.alarm})."
        )
    elif known:
        where = " có số liệu" if unknown_levels else ""
        parts.append(f"Mực nước tại các trạm{where} đang dưới mức báo động I.")
    if unknown_levels:
        parts.append(f"Mực nước: không có dữ liệu tại {', '.join(unknown_levels)}.")
    return parts


def _rain_sentence(wettest: StationState, unsure: bool, names: dict[str, str]) -> str:
    """The sentence on the wettest station's rain, or on no rain worth naming.

    `unsure`: some station has no rain total or only part of the 24 hours.
    """
    if wettest.rain_category or (wettest.rain_24h_mm or 0) >= 1:
        window = (
            "24 giờ qua" if wettest.rain_complete
            else f"{wettest.rain_hours:.0f} giờ có số liệu trong 24 giờ qua"
        )  # fmt: skip
        return (
            f"Lượng mưa {window} lớn nhất {wettest.rain_24h_mm:.0f} mm tại "
            f"{names[wettest.station]}."
        )
    if unsure:
        return "Không có mưa đáng kể tại các trạm có số liệu."
    return "Không có mưa đáng kể trong 24 giờ qua."


def _rain_parts(situation: Situation, names: dict[str, str]) -> list[str]:
    """Sentences on the last 24 hours' rain, then the stations without a rain total."""
    rains = [s for s in situation.stations if s.measures_rain]
    rain_known = [s for s in rains if s.rain_24h_mm is not None]
    rain_unknown = [names[s.station] for s in rains if s.rain_24h_mm is None]
    partial = [s for s in rain_known if not s.rain_complete]
    parts = []
    if not rain_known and rains:
        parts.append("Lượng mưa 24 giờ qua: không có dữ liệu.")
    elif rain_known:
        wettest = max(rain_known, key=lambda s: s.rain_24h_mm or 0)
        parts.append(_rain_sentence(wettest, bool(rain_unknown or partial), names))
        if rain_unknown:
            parts.append(f"Mưa: không có dữ liệu tại {', '.join(rain_unknown)}.")
    return parts


def situation_text(app: App, situation: Situation) -> str:
    """One paragraph on the water and rain now; what nobody knows is said, never zeroed."""
    names = {sid: s.name for sid, s in app.geodata.stations.items()}
    return " ".join(_level_parts(situation, names) + _rain_parts(situation, names))


def missing_lines(app: App, health: HealthView, situation: Situation) -> list[str]:
    """What the bulletin cannot know, first: quiet inputs, then stations with no value."""
    zone = app.settings.zone
    names = {sid: s.name for sid, s in app.geodata.stations.items()}
    lines = []
    quiet = set()
    for item in health.stale_inputs():
        station, variable = item.pair
        quiet.add(item.pair)
        since = (
            f"từ {local_time(item.health.newest_at, zone)}"
            if item.health.newest_at
            else "từ khi khởi động"
        )
        lines.append(
            f"{names.get(station, station)}: {VARIABLE_VI.get(variable, variable)} mất tín hiệu "
            f"{since} (nguồn «{item.health.source}»)."
        )
    for st in situation.stations:
        if st.measures_level and st.level_m is None and (st.station, "water_level") not in quiet:
            lines.append(f"{names[st.station]}: không có dữ liệu mực nước.")
        if st.measures_rain and st.rain_24h_mm is None and (st.station, "rainfall") not in quiet:
            lines.append(f"{names[st.station]}: không có dữ liệu mưa.")
    return lines


def bulletin_text(app: App, now: datetime) -> str:
    """The whole bulletin as Telegram HTML."""
    health = health_view(app, now)
    situation = app.pipeline.situation(now, health)
    return compose_bulletin(
        now,
        app.settings.zone,
        situation_text(app, situation),
        station_lines(app, now, health.blind),
        road_lines(app, now),
        app.settings.levels.names,
        missing=missing_lines(app, health, situation),
        roads_without_data=[u.segment.name for u in situation.unknown],
        credits=data_credits(app.settings),
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
