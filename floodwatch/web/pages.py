"""The read pages: now (map), log (+ CSV), event, road, hydrograph."""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response, StreamingResponse

from floodwatch.core.events import OBSERVED
from floodwatch.core.health import HealthView
from floodwatch.core.text import CAUSE_VI, KIND_VI, STATUS_VI
from floodwatch.db.events import EventFilter, EventRecord
from floodwatch.exports.tables import EVENT_HEADERS, csv_cell, event_values
from floodwatch.service import charts
from floodwatch.service.cycle import Situation, utcnow
from floodwatch.service.polling import health_view
from floodwatch.web.context import (
    MAX_PAGE_SIZE,
    PAGE_SIZE,
    BadFilter,
    Checks,
    WebContext,
    filter_params,
    log_filter,
    now_param,
    problem_lines,
    query_string,
    reader,
    render,
    sort_params,
    whole,
)
from floodwatch.web.maps import (
    legend_levels,
    road_states,
    script_json,
    station_features,
    tile_layer,
)

router = APIRouter(include_in_schema=False)

_URL_QUERY = re.compile(r"\?\S*")


def source_rows(ctx: WebContext, health: HealthView) -> list[dict]:
    """Source health for the table (errors without URL query strings: they may hold keys)."""
    states = ctx.app.store.health.source_states()
    rows = []
    for source in ctx.app.sources:
        state = states.get(source.name)
        rows.append(
            {
                "name": source.name,
                "status": health.statuses.get(source.name, "never"),
                "last_success_at": state.last_success_at if state else None,
                "newest_at": state.newest_at if state else None,
                "failures": state.consecutive_failures if state else 0,
                "error": _URL_QUERY.sub("?…", state.last_error or "") if state else "",
            }
        )
    return rows


def stale_rows(ctx: WebContext, health: HealthView) -> list[dict]:
    """The inputs that have gone quiet ("mất tín hiệu"): station, since when, its roads."""
    stations = ctx.app.geodata.stations
    rows = []
    for item in health.stale_inputs():
        station, variable = item.pair
        key = "tide_station" if variable == "water_level" else "rain_station"
        roads = [s for s in ctx.app.geodata.segments if getattr(s, key) == station]
        rows.append(
            {
                "source": item.health.source,
                "station": stations[station].name if station in stations else station,
                "variable": variable,
                "newest_at": item.health.newest_at,
                "roads": roads,
                "blind": item.pair in health.blind,
            }
        )
    return rows


def station_rows(ctx: WebContext, situation: Situation) -> list[dict]:
    """Each station's level at the situation's time against BĐ I/II/III, and its latest
    observation known by then."""
    latest = ctx.app.store.readings.latest_levels(situation.at)
    rows = []
    for st in situation.stations:
        station = ctx.app.geodata.stations[st.station]
        rows.append(
            {
                "id": station.id,
                "name": station.name,
                "river": station.river,
                "alarm_m": station.alarm_m,
                "measures_level": st.measures_level,
                "measures_rain": st.measures_rain,
                "level_m": st.level_m,
                "observed": st.level_observed,
                "alarm": st.alarm,
                "blind": st.level_blind,
                "rain_blind": st.rain_blind,
                "latest": latest.get(st.station),
                "rain_24h_mm": st.rain_24h_mm,
                "rain_hours": st.rain_hours,
                "rain_complete": st.rain_complete,
                "lon": station.lon,
                "lat": station.lat,
            }
        )
    return rows


# `?at=` older than this looks back; source health is then not shown (it is kept for now only).
LOOK_BACK = timedelta(minutes=5)


def health_at(ctx: WebContext, now: datetime) -> tuple[HealthView, bool]:
    """(health, looking back): the live health now; none looking back, where what is
    unknown comes from the data alone."""
    looking_back = now < utcnow() - LOOK_BACK
    return (HealthView(now) if looking_back else health_view(ctx.app, now)), looking_back


def map_data(ctx: WebContext, situation: Situation, open_events: list, blind: list,
             stations: list[dict]) -> dict:  # fmt: skip
    """What static/map.js draws: basemap tiles, outline, the roads' states (their lines
    come from /map/roads.geojson), stations."""
    states = road_states(
        open_events, {u.segment.id for u in situation.unknown}, {s.id for s in blind},
        ctx.level_name, len(ctx.app.settings.levels.thresholds_m),
    )  # fmt: skip
    return {
        "tiles": tile_layer(ctx.app.settings.web),
        "outline": ctx.outline,
        "roads": {"url": ctx.road_layer.url, **states},
        "stations": {"type": "FeatureCollection", "features": station_features(stations)},
    }


@router.get("/map/roads.geojson")
def map_roads(request: Request, ctx: WebContext = Depends(reader)):
    """Every road's line (id, name): the same for every page until the geodata changes, so
    the browser keeps it (the page asks for it with the current version)."""
    layer = ctx.road_layer
    current = request.query_params.get("v") == layer.version
    cache = "private, max-age=31536000, immutable" if current else "no-cache"
    return Response(layer.body, media_type="application/geo+json",
                    headers={"Cache-Control": cache})  # fmt: skip


@router.get("/")
def now_page(request: Request, ctx: WebContext = Depends(reader)):
    """The state at a time (now, or `?at=` to look back): map, stations, sources, silences."""
    try:
        now = now_param(request, ctx)
    except BadFilter as exc:  # never another time than the one asked for: the form again
        return render(request, "look_back.html", status_code=400, at=request.query_params["at"],
                      errors=exc.messages_vi(), problems=problem_lines(exc))  # fmt: skip
    wall = utcnow()
    health, looking_back = health_at(ctx, now)
    situation = ctx.app.pipeline.situation(now, health)
    open_events = ctx.app.store.events.at(now)
    blind = ctx.app.pipeline.blind_segments(health)
    stations = station_rows(ctx, situation)
    flooded = [e for e in open_events if e.kind == OBSERVED]
    expected = [e for e in open_events if e.kind != OBSERVED]
    names = {s.id: s.name for s in ctx.app.geodata.segments}
    last_cycle = ctx.app.store.events.last_cycle_at()
    step = timedelta(minutes=ctx.app.settings.assessment.step_minutes)
    cycle_stale = not looking_back and (last_cycle is None or wall - last_cycle > 2 * step)
    return render(
        request,
        "now.html",
        now=now,
        looking_back=looking_back,
        map_data=script_json(map_data(ctx, situation, open_events, blind, stations)),
        stations=stations,
        sources=source_rows(ctx, health) if not looking_back else [],
        stale=stale_rows(ctx, health) if not looking_back else [],
        flooded=flooded,
        expected=expected,
        blind=blind,
        unknown=situation.unknown,
        names=names,
        silences=ctx.app.store.silences.listing(now, active_only=looking_back),
        last_cycle=last_cycle,
        cycle_stale=cycle_stale,
        legend_levels=legend_levels(ctx.app.settings.levels.names),
    )


@dataclass
class LogQuery:
    """The log's query string, checked: filters, sort, page size and page."""

    params: dict[str, str]
    flt: EventFilter
    sort: str
    descending: bool
    per_page: int
    page: int

    @property
    def current(self) -> dict:
        """The query to keep in links (page apart)."""
        current = {**self.params, "sort": self.sort, "desc": "1" if self.descending else "0"}
        if self.per_page != PAGE_SIZE:
            current["per"] = self.per_page
        return current


def log_query(request: Request, zone) -> LogQuery:
    """The checked query of /log and /log.csv; BadFilter naming every bad parameter."""
    params = filter_params(request)
    check = Checks()
    flt = check(log_filter, params, zone)
    order = check(sort_params, request)
    per_page = check(whole, request.query_params, "per", 1, MAX_PAGE_SIZE)
    page = check(whole, request.query_params, "page", 1, 10**9)
    check.done()
    return LogQuery(params, flt, *order, per_page or PAGE_SIZE, page or 1)


def log_form_context(ctx: WebContext) -> dict:
    """The choices of the log's filter form."""
    segments = ctx.app.geodata.segments
    return {
        "wards": sorted({s.ward for s in segments}),
        "units": sorted({s.unit for s in segments}),
        "causes": CAUSE_VI,
        "statuses": STATUS_VI,
        "kinds": KIND_VI,
    }


def log_refused(request: Request, ctx: WebContext, exc: BadFilter):
    """The log's form again, with what was typed and a message by each bad field (400)."""
    raw = {k: v for k, v in request.query_params.items() if v}
    return render(
        request, "log.html", status_code=400, rows=[], total=0, per_page=None, page=1, pages=1,
        params=raw, sort=raw.get("sort", "opened"), descending=raw.get("desc") != "0",
        sort_link=lambda key: "/log?" + query_string(raw, sort=key, page=None),
        page_link=None, csv_link=None, permalink=None, errors=exc.messages_vi(),
        problems=problem_lines(exc), **log_form_context(ctx),
    )  # fmt: skip


@router.get("/log")
def log_page(request: Request, ctx: WebContext = Depends(reader)):
    """Every event, filtered, sorted and paginated; the filter lives in the query string."""
    try:
        query = log_query(request, ctx.zone)
    except BadFilter as exc:
        return log_refused(request, ctx, exc)
    total = ctx.app.store.events.count(query.flt)
    per_page = query.per_page
    pages = max(1, math.ceil(total / per_page))
    page = min(query.page, pages)  # past the last page (the log got shorter): the last one
    rows = ctx.app.store.events.listing(
        query.flt, sort=query.sort, descending=query.descending, limit=per_page,
        offset=(page - 1) * per_page,
    )  # fmt: skip
    current = query.current

    def sort_link(key: str) -> str:
        flip = "0" if key == query.sort and query.descending else "1"
        return "/log?" + query_string(current, sort=key, desc=flip)

    def page_link(number: int) -> str:
        return "/log?" + query_string(current, page=number)

    params = query.params
    return render(
        request,
        "log.html",
        rows=rows,
        total=total,
        per_page=per_page if per_page != PAGE_SIZE else None,
        page=page,
        pages=pages,
        params=params,
        sort=query.sort,
        descending=query.descending,
        sort_link=sort_link,
        page_link=page_link,
        csv_link="/log.csv" + ("?" + query_string(params) if params else ""),
        permalink="/log?" + query_string(current, page=page),
        errors={},
        problems=[],
        **log_form_context(ctx),
    )


def csv_lines(ctx: WebContext, flt: EventFilter) -> Iterator[str]:
    """The CSV of matching events, a line at a time (UTF-8 BOM first, for spreadsheets).

    Same columns as `floodwatch export events` (floodwatch.exports), written row by
    row here so a long log streams instead of being built in memory.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EVENT_HEADERS)
    yield "\ufeff" + buffer.getvalue()
    for ev in ctx.app.store.events.stream(flt):
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([csv_cell(v) for v in event_values(ev, ctx.zone)])  # formula-safe
        yield buffer.getvalue()


@router.get("/log.csv")
def log_csv(request: Request, ctx: WebContext = Depends(reader)):
    """The log's events under the same filters, streamed as CSV."""
    try:
        flt = log_query(request, ctx.zone).flt
    except BadFilter as exc:
        return log_refused(request, ctx, exc)
    return StreamingResponse(
        csv_lines(ctx, flt),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="nhat-ky-ngap.csv"'},
    )


def event_or_404(ctx: WebContext, event_id: int) -> dict:
    """The event, or a Vietnamese 404."""
    ev = ctx.app.store.events.get(event_id)
    if ev is None:
        raise HTTPException(status_code=404, detail=f"Không có sự kiện số {event_id}.")
    return ev


@router.get("/events/{event_id}")
def event_page(request: Request, event_id: int, ctx: WebContext = Depends(reader)):
    """One event: details, timeline, alerts and deliveries, reports, notes, hydrograph."""
    ev = event_or_404(ctx, event_id)
    segment = ctx.app.geodata.segment(ev.segment_id)
    return render(
        request,
        "event.html",
        ev=ev,
        segment=segment,
        changes=ctx.app.store.events.changes(event_id),
        alerts=ctx.app.store.events.alerts_naming(event_id),
        reports=ctx.app.store.reports.listing(event_id),
        notes=ctx.app.store.events.notes(event_id),
        has_hydrograph=segment is not None and segment.tide_station in ctx.app.geodata.stations,
    )


@router.get("/events/{event_id}/hydrograph.png")
def event_hydrograph(event_id: int, ctx: WebContext = Depends(reader)):
    """The whole event on its tide station's hydrograph, with the road's crest (and rain bars
    for rain and compound events); "now" only while the event is open."""
    ev = event_or_404(ctx, event_id)
    segment = ctx.app.geodata.segment(ev.segment_id)
    if segment is None or segment.tide_station not in ctx.app.geodata.stations:
        raise HTTPException(status_code=404, detail="Đoạn đường này không có trạm triều.")
    png = charts.event_hydrograph(ctx.app, ev, segment, utcnow())
    return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=300"})


def road_stats(events: list[EventRecord], now: datetime) -> dict:
    """Flood statistics of one road from its observed events (false alarms left out)."""
    real = [e for e in events if e.kind == OBSERVED and not e.false_alarm]
    hours = 0.0
    for ev in real:
        end = ev.closed_at or now
        hours += (end - ev.opened_at).total_seconds() / 3600
    peaks = [e.peak_depth_m for e in real]
    return {
        "events": len(real),
        "false_alarms": sum(1 for e in events if e.false_alarm),
        "forecasts": sum(1 for e in events if e.kind != OBSERVED),
        "hours": round(hours, 1),
        "max_peak_m": max(peaks) if peaks else None,
        "mean_peak_m": sum(peaks) / len(peaks) if peaks else None,
    }


@router.get("/roads/{segment_id}")
def road_page(request: Request, segment_id: str, ctx: WebContext = Depends(reader)):
    """One road segment: parameters, history, statistics."""
    segment = ctx.app.geodata.segment(segment_id)
    if segment is None:
        raise HTTPException(status_code=404, detail=f"Không có đoạn đường {segment_id}.")
    events = ctx.app.store.events.listing(EventFilter(segment=segment_id))
    stations = ctx.app.geodata.stations
    return render(
        request,
        "road.html",
        segment=segment,
        events=events,
        stats=road_stats(events, utcnow()),
        tide_station=stations.get(segment.tide_station),
        rain_station=stations.get(segment.rain_station),
        silences=[
            s for s in ctx.app.store.silences.listing(utcnow())
            if (s.target_kind, s.target_id) in {("segment", segment.id), ("unit", segment.unit)}
        ],
    )  # fmt: skip
