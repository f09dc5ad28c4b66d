"""The planners' page: which roads flooded most over a period, and the exports behind it."""

from __future__ import annotations

import io
from datetime import datetime, time, timedelta

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from floodwatch.exports import tables as exports
from floodwatch.service.cycle import utcnow
from floodwatch.web.context import (
    BadFilter,
    WebContext,
    parse_period,
    problem_lines,
    reader,
    render,
)

router = APIRouter()

FORMATS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    "geojson": ("application/geo+json", "geojson"),
}


def period(request: Request, ctx: WebContext) -> tuple[datetime, datetime]:
    """The period from the query string: `from`/`to` local days, default this year so far;
    BadFilter naming `from`/`to` when one is no date or they are the wrong way round."""
    now = utcnow().astimezone(ctx.zone)
    start, end = parse_period(request.query_params, ctx.zone)
    first_day = (end.astimezone(ctx.zone) if end else now).date().replace(month=1, day=1)
    # Local times: the form and the file names show the local days typed (not UTC's).
    start = start.astimezone(ctx.zone) if start else datetime.combine(first_day, time(), ctx.zone)
    end = end.astimezone(ctx.zone) if end else now
    if end <= start:
        raise BadFilter(
            "to", request.query_params.get("to") or "", "«Đến ngày» phải sau «Từ ngày»",
            "must come after 'from'",
        )  # fmt: skip
    return start, end


def refused(request: Request, exc: BadFilter):
    """The planners' form again, with what was typed and the message by each bad field."""
    return render(
        request, "maintenance.html", status_code=400, rows=[], total=0, start=None, end=None,
        typed=dict(request.query_params), formula=exports.SCORE_FORMULA, query=None,
        errors=exc.messages_vi(), problems=problem_lines(exc),
    )  # fmt: skip


@router.get("/maintenance")
def maintenance_page(request: Request, ctx: WebContext = Depends(reader)):
    """The roads ranked by flooding over the period, with downloads for planners."""
    try:
        start, end = period(request, ctx)
    except BadFilter as exc:
        return refused(request, exc)
    rows = list(exports.maintenance_rows(ctx.app.store, start, end, ctx.app.geodata, zone=ctx.zone))
    flooded = [r for r in rows if r.events]
    return render(
        request,
        "maintenance.html",
        rows=flooded[:50],
        total=len(flooded),
        start=start,
        end=end - timedelta(microseconds=1) if end.time() == time() else end,
        formula=exports.SCORE_FORMULA,
        query=request.url.query,
    )


@router.get("/maintenance.{fmt}")
def maintenance_download(request: Request, fmt: str, ctx: WebContext = Depends(reader)):
    """The same statistics as CSV, XLSX (with the events and notes) or GeoJSON."""
    if fmt not in FORMATS:
        raise HTTPException(status_code=404, detail="Không có định dạng này.")
    try:
        start, end = period(request, ctx)
    except BadFilter as exc:
        return refused(request, exc)
    app = ctx.app
    rows = exports.maintenance_rows(app.store, start, end, app.geodata, zone=ctx.zone)
    out = io.BytesIO()
    if fmt == "csv":
        exports.write_maintenance_csv(rows, out, bom=True)
    elif fmt == "geojson":
        exports.write_maintenance_geojson(rows, app.geodata, out)
    else:
        events = app.store.events.stream(exports.maintenance_events_filter(start, end))
        notes = exports.maintenance_notes(
            start, end, ctx.zone, "floodwatch web", utcnow(), ctx.credits
        )
        exports.write_maintenance_xlsx(rows, events, out, notes, zone=ctx.zone)
    media_type, suffix = FORMATS[fmt]
    name = f"thong-ke-ngap-{start:%Y%m%d}-{end:%Y%m%d}.{suffix}"
    return Response(
        out.getvalue(),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
