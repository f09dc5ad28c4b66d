"""The JSON API under /api/v1 (typed, so the generated OpenAPI document describes it)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import shapely
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema

from floodwatch.core.events import OBSERVED
from floodwatch.db.events import EventFilter
from floodwatch.exports.cap import cap_alerts, cap_atom, cap_status
from floodwatch.service.cycle import utcnow
from floodwatch.service.polling import health_view
from floodwatch.web.context import (
    BadFilter,
    Checks,
    WebContext,
    choice,
    filter_params,
    log_filter,
    now_param,
    parse_day,
    parse_period,
    reader,
    sort_params,
)
from floodwatch.web.pages import health_at, source_rows, station_rows

router = APIRouter(prefix="/api/v1", tags=["api"])
VARIABLES = ("water_level", "rainfall")

# ISO 8601 with an explicit offset (`+00:00`), as `floodwatch events --format json` prints.
Time = Annotated[
    datetime,
    PlainSerializer(lambda d: d.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventOut(_Out):
    """A flood event (the same fields as `floodwatch events --format json`)."""

    id: int
    segment_id: str
    segment_name: str | None
    unit: str
    kind: str
    status: str
    opened_at: Time
    closed_at: Time | None
    peak_depth_m: float
    peak_at: Time | None
    max_level: int
    cause: str | None
    expected_onset_at: Time | None
    expected_end_at: Time | None
    close_reason: str | None
    forecast_event_id: int | None
    ward: str | None
    ack_by: str | None
    ack_at: Time | None
    false_alarm: bool
    level: int  # the current level (0 once the water is below the first threshold)


class EventPage(_Out):
    """A page of events matching the filters."""

    total: int
    limit: int
    offset: int
    events: list[EventOut]


class ChangeOut(_Out):
    """One recorded change of an event."""

    at: Time
    change: str
    status: str
    level: int
    depth_m: float
    note: str


class NoteOut(_Out):
    """An operator's note, acknowledgement or false-alarm mark."""

    at: Time
    author: str
    kind: str
    text: str


class DeliveryOut(_Out):
    """One alert to one chat."""

    chat_id: int
    status: str
    sent_at: Time | None


class AlertOut(_Out):
    """An alert that named the event."""

    id: int
    created_at: Time
    unit: str
    kinds: list[str]
    status: str
    sent_at: Time | None
    ack_by: str | None
    ack_at: Time | None
    deliveries: list[DeliveryOut]


class EventDetail(EventOut):
    """An event with its current level, timeline, alerts and notes."""

    level: int
    changes: list[ChangeOut]
    alerts: list[AlertOut]
    notes: list[NoteOut]


class SegmentOut(_Out):
    """A road segment and its model parameters."""

    id: str
    name: str
    ward: str
    unit: str
    crest_m: float
    tide_station: str
    rain_station: str
    drain_mm_h: float | None
    outfall_m: float | None
    priority: int
    length_m: float


class SegmentDetail(SegmentOut):
    """A segment with its geometry and open events."""

    geometry: dict | None
    open_events: list[EventOut]


class StationOut(_Out):
    """A station with its level now (observed or predicted) against BĐ I/II/III.

    A level or rain total nobody knows is `null`, never 0 (no data).
    """

    id: str
    name: str
    river: str | None
    measures: list[str]
    lon: float
    lat: float
    alarm_m: list[float | None]
    level_m: float | None
    level_observed: bool
    alarm: int
    blind: bool
    rain_24h_mm: float | None
    rain_24h_hours_with_data: float | None
    rain_blind: bool


class ReadingOut(_Out):
    """One stored reading."""

    station: str
    variable: str
    time: Time
    kind: str
    issued: Time
    value: float
    source: str
    flag: str | None


class SourceOut(_Out):
    """The health of one source."""

    name: str
    status: str
    last_success_at: Time | None
    newest_at: Time | None
    failures: int


class CycleOut(_Out):
    """The latest completed cycle."""

    at: Time
    finished_at: Time
    duration_s: float
    segments: int
    flooded: int
    forecast: int
    changes: int
    alerts: int
    unknown: int
    blind: int


class StaleInputOut(_Out):
    """A station's variable a source has stopped delivering (mất tín hiệu)."""

    source: str
    station: str
    variable: str
    newest_at: Time | None
    stale_since: Time | None


class StatusOut(_Out):
    """The service now."""

    now: Time
    last_cycle: CycleOut | None
    counts: dict[str, int]
    sources: list[SourceOut]
    flooded: int
    expected: int
    blind_segments: list[str]
    unknown_segments: list[str]
    stale_inputs: list[StaleInputOut]


def _segment(segment) -> dict:
    return {
        name: getattr(segment, name)
        for name in SegmentOut.model_fields
    }  # fmt: skip


@router.get("/events", response_model=EventPage)
def list_events(
    request: Request,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10**9),
    from_: str | None = Query(None, alias="from", description="yyyy-mm-dd or ISO time"),
    to: str | None = Query(None, description="yyyy-mm-dd (inclusive) or ISO time"),
    ward: str | None = None,
    unit: str | None = None,
    road: str | None = Query(None, description="part of the road name"),
    level: int | None = Query(None, ge=0, le=10, description="minimum max level"),
    cause: str | None = Query(None, description="tide, rain or compound"),
    status: str | None = Query(None, description="forecast, flooded, receding, closed"),
    ack: str | None = Query(None, description="yes or no"),
    kind: str | None = Query(None, description="observed or forecast"),
    false_alarm: str | None = Query(None, description="yes or no"),
    sort: str = Query("opened", description="opened, closed, peak, level, road, unit"),
    desc: int = Query(1, ge=0, le=1, description="1 newest/largest first, 0 the reverse"),
    ctx: WebContext = Depends(reader),
):
    """Events with the log's filters, newest first."""
    check = Checks()
    flt = check(log_filter, filter_params(request), ctx.zone)
    order = check(sort_params, request)
    check.done()
    key, descending = order
    rows = ctx.app.store.events.listing(
        flt, sort=key, descending=descending, limit=limit, offset=offset
    )
    return {"total": ctx.app.store.events.count(flt), "limit": limit, "offset": offset,
            "events": [r.as_dict() for r in rows]}  # fmt: skip


@router.get("/events/{event_id}", response_model=EventDetail)
def get_event(event_id: int, ctx: WebContext = Depends(reader)):
    """One event with its timeline, alerts (and deliveries) and notes."""
    ev = ctx.app.store.events.get(event_id)
    if ev is None:
        raise HTTPException(status_code=404, detail=f"no event {event_id}")
    alerts = [
        {
            "id": a.id, "created_at": a.created_at, "unit": a.unit,
            "kinds": list(a.kinds), "status": a.status, "sent_at": a.sent_at,
            "ack_by": a.ack_by, "ack_at": a.ack_at,
            "deliveries": [
                {"chat_id": d.chat_id, "status": d.status, "sent_at": d.sent_at} for d in ds
            ],
        }
        for a, ds in ctx.app.store.events.alerts_naming(event_id)
    ]  # fmt: skip
    return {
        **ev.as_dict(),
        "changes": [
            {"at": c.at, "change": c.change, "status": c.status, "level": c.level,
             "depth_m": round(c.depth_m, 3), "note": c.note}
            for c in ctx.app.store.events.changes(event_id)
        ],
        "alerts": alerts,
        "notes": [
            {"at": n.at, "author": n.author, "kind": n.kind, "text": n.text}
            for n in ctx.app.store.events.notes(event_id)
        ],
    }  # fmt: skip


@router.get("/segments", response_model=list[SegmentOut])
def list_segments(ctx: WebContext = Depends(reader)):
    """Every road segment."""
    return [_segment(s) for s in ctx.app.geodata.segments]


@router.get("/segments/{segment_id}", response_model=SegmentDetail)
def get_segment(segment_id: str, ctx: WebContext = Depends(reader)):
    """One segment, its GeoJSON geometry (WGS84) and open events."""
    segment = ctx.app.geodata.segment(segment_id)
    if segment is None:
        raise HTTPException(status_code=404, detail=f"no segment {segment_id}")
    geometry = shapely.geometry.mapping(segment.geometry) if segment.geometry is not None else None
    open_events = ctx.app.store.events.listing(EventFilter(segment=segment_id, open_only=True))
    open_events = [e.as_dict() for e in open_events]
    return {**_segment(segment), "geometry": geometry, "open_events": open_events}


@router.get("/stations", response_model=list[StationOut])
def list_stations(request: Request, ctx: WebContext = Depends(reader)):
    """Every station with its level now against BĐ I/II/III (`?at=` to look back)."""
    now = now_param(request, ctx)
    situation = ctx.app.pipeline.situation(now, health_at(ctx, now)[0])
    out = []
    for row in station_rows(ctx, situation):
        station = ctx.app.geodata.stations[row["id"]]
        out.append(
            {
                "id": station.id, "name": station.name, "river": station.river,
                "measures": sorted(station.measures), "lon": station.lon, "lat": station.lat,
                "alarm_m": list(station.alarm_m), "level_m": row["level_m"],
                "level_observed": row["observed"], "alarm": row["alarm"],
                "blind": row["blind"], "rain_24h_mm": row["rain_24h_mm"],
                "rain_24h_hours_with_data": row["rain_hours"] if row["measures_rain"] else None,
                "rain_blind": row["rain_blind"],
            }
        )  # fmt: skip
    return out


def known_station(ctx: WebContext, station: str | None) -> None:
    """BadFilter unless `station` is empty or a configured station id."""
    if station and station not in ctx.app.geodata.stations:
        raise BadFilter("station", station, "không có trạm này", "no such station id")


@router.get("/readings", response_model=list[ReadingOut])
def list_readings(
    station: str | None = None,
    variable: str | None = Query(None, description="water_level or rainfall"),
    from_: str | None = Query(None, alias="from", description="yyyy-mm-dd or ISO time"),
    to: str | None = Query(None, description="yyyy-mm-dd (inclusive) or ISO time"),
    limit: int = Query(1000, ge=1, le=10000),
    ctx: WebContext = Depends(reader),
):
    """Stored readings, oldest first."""
    params = {"station": station, "variable": variable, "from": from_, "to": to}
    check = Checks()
    check(known_station, ctx, station)
    check(choice, params, "variable", VARIABLES)
    start, end = check(parse_period, params, ctx.zone) or (None, None)
    check.done()
    rows = ctx.app.store.readings.listing(station, variable, start, end, limit)
    return [
        {"station": r.station, "variable": r.variable, "time": r.time, "kind": r.kind,
         "issued": r.issued, "value": r.value, "source": r.source, "flag": r.flag}
        for r in rows
    ]  # fmt: skip


@router.get("/status", response_model=StatusOut)
def get_status(ctx: WebContext = Depends(reader)):
    """Last cycle, table counts, source health, flooded and expected roads."""
    now = utcnow()
    health = health_view(ctx.app, now)
    sources = source_rows(ctx, health)
    cycle = ctx.app.store.events.last_cycle()
    open_events = ctx.app.store.events.open()
    situation = ctx.app.pipeline.situation(now, health)
    return {
        "now": now,
        "last_cycle": None if cycle is None else {
            name: getattr(cycle, name) for name in CycleOut.model_fields
        },
        "counts": ctx.app.store.stats.counts(),
        "sources": [{k: s[k] for k in SourceOut.model_fields} for s in sources],
        "flooded": sum(1 for e in open_events if e.kind == OBSERVED),
        "expected": sum(1 for e in open_events if e.kind != OBSERVED),
        "blind_segments": [s.id for s in ctx.app.pipeline.blind_segments(health)],
        "unknown_segments": [u.segment.id for u in situation.unknown],
        "stale_inputs": [
            {"source": i.health.source, "station": i.health.station,
             "variable": i.health.variable, "newest_at": i.health.newest_at,
             "stale_since": i.health.stale_since}
            for i in health.stale_inputs()
        ],
    }  # fmt: skip


@router.get(
    "/cap.atom",
    response_class=Response,
    responses={200: {"content": {"application/atom+xml": {}}}},
)
def cap_feed(
    request: Request,
    since: Annotated[
        str | None, Query(description="ISO date or time; default feed_days ago")
    ] = None,
    ctx: WebContext = Depends(reader),
):
    """The CAP 1.2 alerts of the last `[cap] feed_days` (or since `since`) as an Atom feed."""
    settings = ctx.app.settings
    start = parse_day(since, ctx.zone, field="since") or utcnow() - timedelta(
        days=settings.cap.feed_days
    )
    alerts = cap_alerts(
        ctx.app.store,
        ctx.app.geodata,
        since=start,
        status=cap_status(ctx.app.store, settings.cap.status),
        sender=settings.cap.sender,
        zone=settings.zone,
        level_names=settings.levels.names,
        event_url=str(request.base_url) + "events/{event_id}",
        credits=ctx.credits,
    )
    feed = cap_atom(alerts, self_url=str(request.url))
    return Response(feed, media_type="application/atom+xml; charset=utf-8")
