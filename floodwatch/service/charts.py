"""Hydrographs for alerts and event pages: the stations behind the roads, from what is stored."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from floodwatch.core.events import CLOSED
from floodwatch.core.geo import Segment
from floodwatch.core.readings import Variable
from floodwatch.core.series import Grid, level_series, make_grid, rain_series
from floodwatch.messages.hydrograph import HydrographData, render_hydrograph

if TYPE_CHECKING:
    from floodwatch.db.events import EventRecord
    from floodwatch.db.models import AlertRow
    from floodwatch.service.app import App

# Alerts that carry a hydrograph, and the span it shows around "now".
WITH_HYDROGRAPH = frozenset({"onset", "forecast"})
HOURS_BEFORE, HOURS_AFTER = 24, 48
# An event's chart: from this long before it opened to this long after it closed.
EVENT_MARGIN = timedelta(hours=6)
MAX_SPAN = timedelta(days=10)  # the longest chart (an open event from a stopped service)
RAIN_CAUSES = frozenset({"rain", "compound"})
STEP_MINUTES = 15


@dataclass(frozen=True)
class Window:
    """What one chart shows: its time grid, what is known by when, and whether it is live."""

    grid: Grid  # its `now` is the end of "the past" (observed values are used up to it)
    known_by: datetime  # readings issued by then
    live: bool  # mark "now": the event (or station) is still open


def _grid(start: datetime, end: datetime, now: datetime, step_minutes: int) -> Grid:
    """A grid from `start` to `end` whose past ends at `now` (clipped to the grid)."""
    now = min(max(now, start), end)
    before = math.ceil((now - start).total_seconds() / 3600)
    after = math.ceil((end - now).total_seconds() / 3600)
    return make_grid(now, step_minutes, before, after)


def _rain(app: App, station_id: str, window: Window) -> tuple[list[datetime], list[float]]:
    """Hourly rain (mm in the hour ending at each hour) of a station; NaN where not known."""
    grid = window.grid
    first, last = grid.at(0), grid.at(len(grid.times_s) - 1)
    hourly = _grid(first, last, datetime.fromtimestamp(grid.now_s, tz=first.tzinfo), 60)
    start, end = hourly.at(0), hourly.at(len(hourly.times_s) - 1)
    rows = app.store.readings.arrays(
        Variable.RAINFALL, {station_id: 0}, start, end + timedelta(hours=1), window.known_by
    )
    max_age_s = app.settings.assessment.observed_max_age_minutes * 60
    series = rain_series(hourly, 1, rows, max_age_s)
    values = np.where(series.covered[0], series.values[0], np.nan)
    return [hourly.at(k) for k in range(len(hourly.times_s))], values.tolist()


def chart(
    app: App,
    station_id: str,
    window: Window,
    crest: tuple[float, str] | None,
    rain_station: str | None = None,
) -> bytes:
    """The PNG of one tide station over a window: levels, alarms, a road's crest, and the
    hourly rain of `rain_station` as bars when given."""
    grid = window.grid
    start, end = grid.at(0), grid.at(len(grid.times_s) - 1)
    rows = app.store.readings.arrays(
        Variable.WATER_LEVEL, {station_id: 0}, start - timedelta(hours=3), end, window.known_by
    )
    max_age_s = app.settings.assessment.observed_max_age_minutes * 60
    series = level_series(grid, 1, rows, max_age_s)
    values, observed = series.values[0], series.observed[0]
    station = app.geodata.stations[station_id]
    rain_times = rain_mm = rain_name = None
    if rain_station is not None and rain_station in app.geodata.stations:
        rain_times, rain_mm = _rain(app, rain_station, window)
        rain_name = app.geodata.stations[rain_station].name
    data = HydrographData(
        station_name=station.name,
        times=[grid.at(k) for k in range(len(grid.times_s))],
        observed_m=np.where(observed, values, np.nan).tolist(),
        predicted_m=np.where(observed, np.nan, values).tolist(),
        alarm_m=station.alarm_m,
        crest_m=crest[0] if crest else None,
        crest_label=crest[1] if crest else None,
        now=datetime.fromtimestamp(grid.now_s, tz=start.tzinfo) if window.live else end,
        show_now=window.live,
        rain_times=rain_times,
        rain_mm=rain_mm,
        rain_station_name=rain_name,
    )
    return render_hydrograph(data, app.settings.zone)


def station_hydrograph(
    app: App,
    station_id: str,
    now: datetime,
    crest: tuple | None,
    rain_station: str | None = None,
) -> bytes:
    """The PNG of one tide station from a day before `now` to two days after, now marked."""
    grid = make_grid(now, STEP_MINUTES, HOURS_BEFORE, HOURS_AFTER)
    return chart(app, station_id, Window(grid, now, live=True), crest, rain_station)


def event_window(ev: EventRecord, now: datetime) -> Window:
    """The window of an event's chart: the whole event and some hours either side.

    A closed event is history: everything stored by now, observed to its end and after,
    no "now". An open one runs from before it opened to a day past now (or past its
    expected end), with "now" marked where it is.
    """
    start = min(ev.opened_at, ev.expected_onset_at or ev.opened_at) - EVENT_MARGIN
    if ev.status == CLOSED and ev.closed_at is not None:
        end = max(ev.closed_at, ev.expected_end_at or ev.closed_at) + EVENT_MARGIN
        end = min(end, max(now, ev.closed_at))  # nothing observed after the clock
        return Window(_grid(start, end, end, STEP_MINUTES), now, live=False)
    if now - start > MAX_SPAN:
        # Still open long after it began (a stopped service, a replayed past): its own days.
        return Window(_grid(start, start + MAX_SPAN, now, STEP_MINUTES), now, live=False)
    start = min(start, now - timedelta(hours=HOURS_BEFORE))
    end = max(now + timedelta(hours=HOURS_BEFORE), (ev.expected_end_at or now) + EVENT_MARGIN)
    return Window(_grid(start, end, now, STEP_MINUTES), now, live=True)


def event_hydrograph(app: App, ev: EventRecord, segment: Segment, now: datetime) -> bytes:
    """The PNG of an event: its road's tide station over the whole event, with the road's
    crest, and the rain of its rain station for rain and compound events."""
    rain = segment.rain_station if ev.cause in RAIN_CAUSES else None
    window = event_window(ev, now)
    return chart(app, segment.tide_station, window, (segment.crest_m, segment.name), rain)


@dataclass(frozen=True)
class AlertChart:
    """One hydrograph of an alert: a tide station, the road whose crest it shows (the
    deepest of the alert's roads on it), the rain station of a rain or compound event."""

    station: str
    crest_m: float
    road: str
    rain: str | None
    caption: str


def alert_charts(app: App, alert: AlertRow) -> list[AlertChart]:
    """The charts of an onset or forecast alert's roads, one per tide station, by station id."""
    if not set(alert.kinds) & WITH_HYDROGRAPH or not alert.event_ids:
        return []
    wanted = set(alert.event_ids)
    # station -> (peak, crest, road, rain station of a rain or compound event)
    worst: dict[str, tuple[float, float, str, str | None]] = {}
    for ev in app.store.events.listing():
        if ev.id not in wanted:
            continue
        segment = app.geodata.segment(ev.segment_id)
        if segment is None or segment.tide_station not in app.pipeline.tide_index:
            continue
        current = worst.get(segment.tide_station)
        if current is None or ev.peak_depth_m > current[0]:
            rain = segment.rain_station if ev.cause in RAIN_CAUSES else None
            worst[segment.tide_station] = (ev.peak_depth_m, segment.crest_m, segment.name, rain)
    charts = []
    for station_id, (_, crest_m, road, rain) in sorted(worst.items()):
        name = app.geodata.stations[station_id].name
        rained = " và lượng mưa" if rain else ""
        caption = f"Mực nước trạm {name}{rained}, cao độ {road}"
        charts.append(AlertChart(station_id, crest_m, road, rain, caption))
    return charts


def draw_alert_chart(app: App, chart: AlertChart, now: datetime) -> bytes:
    """The PNG of one of an alert's charts, drawn as of `now`."""
    return station_hydrograph(app, chart.station, now, (chart.crest_m, chart.road), chart.rain)


def alert_hydrographs(app: App, alert: AlertRow, now: datetime) -> list[tuple[str, bytes]]:
    """(caption, PNG) per tide station of an onset or forecast alert's roads."""
    return [(c.caption, draw_alert_chart(app, c, now)) for c in alert_charts(app, alert)]
