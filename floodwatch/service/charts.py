"""Hydrographs for alerts: the stations behind an alert's roads, from what is stored."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from floodwatch.core.readings import Variable
from floodwatch.core.series import level_series, make_grid
from floodwatch.messages.hydrograph import HydrographData, render_hydrograph

if TYPE_CHECKING:
    from floodwatch.db.models import AlertRow
    from floodwatch.service.app import App

# Alerts that carry a hydrograph, and the span it shows around "now".
WITH_HYDROGRAPH = frozenset({"onset", "forecast"})
HOURS_BEFORE, HOURS_AFTER = 24, 48


def station_hydrograph(app: App, station_id: str, now: datetime, crest: tuple | None) -> bytes:
    """The PNG of one tide station: observed and predicted level, alarms, a road's crest."""
    grid = make_grid(now, 15, HOURS_BEFORE, HOURS_AFTER)
    start, end = grid.at(0), grid.at(len(grid.times_s) - 1)
    rows = app.store.readings.arrays(
        Variable.WATER_LEVEL, {station_id: 0}, start - timedelta(hours=3), end, now
    )
    max_age_s = app.settings.assessment.observed_max_age_minutes * 60
    series = level_series(grid, 1, rows, max_age_s)
    values, observed = series.values[0], series.observed[0]
    station = app.geodata.stations[station_id]
    data = HydrographData(
        station_name=station.name,
        times=[grid.at(k) for k in range(len(grid.times_s))],
        observed_m=np.where(observed, values, np.nan).tolist(),
        predicted_m=np.where(observed, np.nan, values).tolist(),
        alarm_m=station.alarm_m,
        crest_m=crest[0] if crest else None,
        crest_label=crest[1] if crest else None,
        now=now,
    )
    return render_hydrograph(data, app.settings.zone)


def alert_hydrographs(app: App, alert: AlertRow, now: datetime) -> list[tuple[str, bytes]]:
    """(caption, PNG) per tide station of an onset or forecast alert's roads."""
    if not set(alert.kinds) & WITH_HYDROGRAPH or not alert.event_ids:
        return []
    wanted = set(alert.event_ids)
    worst: dict[str, tuple[float, float, str]] = {}  # station -> (peak, crest, road)
    for ev in app.store.events.listing():
        if ev.id not in wanted:
            continue
        segment = app.geodata.segment(ev.segment_id)
        if segment is None or segment.tide_station not in app.pipeline.tide_index:
            continue
        current = worst.get(segment.tide_station)
        if current is None or ev.peak_depth_m > current[0]:
            worst[segment.tide_station] = (ev.peak_depth_m, segment.crest_m, segment.name)
    pictures = []
    for station_id, (_, crest_m, road) in sorted(worst.items()):
        png = station_hydrograph(app, station_id, now, (crest_m, road))
        name = app.geodata.stations[station_id].name
        pictures.append((f"Mực nước trạm {name} và cao độ {road}", png))
    return pictures
