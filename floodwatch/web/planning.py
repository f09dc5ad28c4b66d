"""The planners' page: which roads flooded most over a period, and the exports behind it."""

from __future__ import annotations

import io
from datetime import datetime, time, timedelta

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from floodwatch.exports import tables as exports
from floodwatch.service.cycle import utcnow
from floodwatch.web.context import WebContext, parse_day, reader, render

router = APIRouter()

FORMATS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    "geojson": ("application/geo+json", "geojson"),
}


def period(request: Request, ctx: WebContext) -> tuple[datetime, datetime]:
    """The period from the query string: `from`/`to` local days, default this year so far."""
    now = utcnow().astimezone(ctx.zone)
    params = request.query_params
    start = parse_day(params.get("from"), ctx.zone, field="from") or datetime.combine(
        now.date().replace(month=1, day=1), time(), ctx.zone
    )
    end = parse_day(params.get("to"), ctx.zone, end_of_day=True, field="to") or now
    if end <= start:
        raise HTTPException(status_code=400, detail="Ngày kết thúc phải sau ngày bắt đầu.")
    return start, end


@router.get("/maintenance")
def maintenance_page(request: Request, ctx: WebContext = Depends(reader)):
    """The roads ranked by flooding over the period, with downloads for planners."""
    start, end = period(request, ctx)
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
    start, end = period(request, ctx)
    app = ctx.app
    rows = exports.maintenance_rows(app.store, start, end, app.geodata, zone=ctx.zone)
    out = io.BytesIO()
    if fmt == "csv":
        exports.write_maintenance_csv(rows, out, bom=True)
    elif fmt == "geojson":
        exports.write_maintenance_geojson(rows, app.geodata, out)
    else:
        events = app.store.events.stream(exports.maintenance_events_filter(start, end))
        notes = exports.maintenance_notes(start, end, ctx.zone, "floodwatch web", utcnow())
        exports.write_maintenance_xlsx(rows, events, out, notes, zone=ctx.zone)
    media_type, suffix = FORMATS[fmt]
    name = f"thong-ke-ngap-{start:%Y%m%d}-{end:%Y%m%d}.{suffix}"
    return Response(
        out.getvalue(),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
