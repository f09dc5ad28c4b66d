"""The read pages: now (map), log (+ CSV), event, road, hydrograph."""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator
from datetime import datetime, timedelta

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response, StreamingResponse

from floodwatch.core.events import OBSERVED
from floodwatch.core.health import HealthView
from floodwatch.core.text import CAUSE_VI, KIND_VI, STATUS_VI
from floodwatch.db.events import EventFilter, EventRecord
from floodwatch.exports.tables import EVENT_HEADERS, TIME_FMT, event_values
from floodwatch.service import charts
from floodwatch.service.cycle import Situation, utcnow
from floodwatch.service.polling import health_view
from floodwatch.web.context import (
    MAX_PAGE_SIZE,
    PAGE_SIZE,
    WebContext,
    filter_params,
    log_filter,
    now_param,
    query_string,
    reader,
    render,
    sort_params,
)
from floodwatch.web.maps import MapDot, segment_paths

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


@router.get("/")
def now_page(request: Request, ctx: WebContext = Depends(reader)):
    """The state at a time (now, or `?at=` to look back): map, stations, sources, silences."""
    now = now_param(request, ctx)
    wall = utcnow()
    health, looking_back = health_at(ctx, now)
    situation = ctx.app.pipeline.situation(now, health)
    open_events = ctx.app.store.events.at(now)
    blind = ctx.app.pipeline.blind_segments(health)
    unknown_ids = {u.segment.id for u in situation.unknown}
    base = ctx.basemap
    paths = segment_paths(base, ctx.app.geodata, open_events, unknown_ids, {s.id for s in blind})
    stations = station_rows(ctx, situation)
    dots = []
    for st in stations:
        if not st["measures_level"]:
            continue
        xy = base.point(st["lon"], st["lat"])
        if xy is not None:
            css = "st nodata" if st["level_m"] is None else f"st bd-{st['alarm']}"
            dots.append(MapDot(st["id"], st["name"], xy[0], xy[1], css))
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
        base=base,
        paths=paths,
        dots=dots,
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
        level_names=ctx.app.settings.levels.names,
    )


@router.get("/log")
def log_page(request: Request, ctx: WebContext = Depends(reader)):
    """Every event, filtered, sorted and paginated; the filter lives in the query string."""
    params = filter_params(request)
    flt = log_filter(params, ctx.zone)
    sort, descending = sort_params(request)
    total = ctx.app.store.events.count(flt)
    per_arg = request.query_params.get("per", "")
    per_page = min(int(per_arg), MAX_PAGE_SIZE) if per_arg.isdigit() and int(per_arg) else PAGE_SIZE
    pages = max(1, math.ceil(total / per_page))
    page_arg = request.query_params.get("page", "1")
    page = min(max(int(page_arg) if page_arg.isdigit() else 1, 1), pages)
    rows = ctx.app.store.events.listing(
        flt, sort=sort, descending=descending, limit=per_page, offset=(page - 1) * per_page
    )
    current = {**params, "sort": sort, "desc": "1" if descending else "0"}
    if per_page != PAGE_SIZE:
        current["per"] = per_page

    def sort_link(key: str) -> str:
        flip = "0" if key == sort and descending else "1"
        return "/log?" + query_string(current, sort=key, desc=flip)

    def page_link(number: int) -> str:
        return "/log?" + query_string(current, page=number)

    units = sorted({s.unit for s in ctx.app.geodata.segments})
    return render(
        request,
        "log.html",
        rows=rows,
        total=total,
        per_page=per_page if per_page != PAGE_SIZE else None,
        page=page,
        pages=pages,
        params=params,
        sort=sort,
        descending=descending,
        sort_link=sort_link,
        page_link=page_link,
        csv_link="/log.csv" + ("?" + query_string(params) if params else ""),
        permalink="/log?" + query_string(current, page=page),
        wards=sorted({s.ward for s in ctx.app.geodata.segments}),
        units=units,
        causes=CAUSE_VI,
        statuses=STATUS_VI,
        kinds=KIND_VI,
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
        writer.writerow(
            [
                v.strftime(TIME_FMT) if isinstance(v, datetime) else ("" if v is None else v)
                for v in event_values(ev, ctx.zone)
            ]
        )
        yield buffer.getvalue()


@router.get("/log.csv")
def log_csv(request: Request, ctx: WebContext = Depends(reader)):
    """The log's events under the same filters, streamed as CSV."""
    flt = log_filter(filter_params(request), ctx.zone)
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
