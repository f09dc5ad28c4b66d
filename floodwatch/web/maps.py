"""The "now" map's data: roads, stations, the outline and the basemap for static/map.js.

The page carries it as JSON (`<script type="application/json" id="map-data">`); Leaflet,
vendored in static/vendor/leaflet, draws it. Coordinates are WGS84 rounded to 5 decimals
(about 1 m). Roads keep the CSS classes of their state (`seg lvl-2`, `seg fc lvl-1`,
`seg nodata`, `seg dry`), stations theirs (`st bd-0..3`, `st nodata`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import shapely
from shapely.geometry import mapping

from floodwatch.config import OSM_ATTRIBUTION, OSM_COPYRIGHT, OSM_TILES, WebSettings
from floodwatch.core.events import OBSERVED
from floodwatch.core.geo import Geodata
from floodwatch.core.text import ALARM_VI
from floodwatch.db.events import EventRecord

logger = logging.getLogger(__name__)

DIGITS = 5
# OpenStreetMap's standard tiles go to zoom 19 (tile usage policy); custom servers get the same.
MAX_ZOOM = 19
OUTLINE_KINDS = ("land", "coast", "river")
NODATA_VI = "không có dữ liệu"


def road_shapes(geodata: Geodata) -> dict[str, dict]:
    """Each segment's GeoJSON geometry, rounded to DIGITS decimals (computed once)."""
    shapes = {}
    for segment in geodata.segments:
        if segment.geometry is not None:
            geom = shapely.set_precision(segment.geometry, 10**-DIGITS)
            shapes[segment.id] = mapping(geom)
    return shapes


def read_outline(path: Path | None) -> dict | None:
    """The outline FeatureCollection (land, coast, rivers), or None when unset or unreadable.

    `floodwatch check` refuses a missing file; a file that is not such GeoJSON is logged
    as an error and the map is drawn without it.
    """
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        features = [
            {"type": "Feature", "properties": {"kind": f["properties"]["kind"]},
             "geometry": f["geometry"]}
            for f in data["features"]
            if f["properties"]["kind"] in OUTLINE_KINDS
        ]  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.error("outline %s: not a GeoJSON FeatureCollection of land/coast/river: %s",
                     path, exc)  # fmt: skip
        return None
    return {"type": "FeatureCollection", "features": features}


def tile_layer(web: WebSettings) -> dict | None:
    """The basemap for Leaflet: URL template, attribution (HTML for OSM, else text), max zoom."""
    if web.tiles == "none":
        return None
    if web.tiles == OSM_TILES and web.tiles_attribution is None:
        return {"url": web.tiles, "attribution": OSM_ATTRIBUTION, "link": OSM_COPYRIGHT,
                "max_zoom": MAX_ZOOM}  # fmt: skip
    return {"url": web.tiles, "attribution": web.tiles_attribution, "link": None,
            "max_zoom": MAX_ZOOM}  # fmt: skip


def segment_class(
    observed_level: int | None, forecast_level: int | None, unknown: bool, blind: bool
) -> str:
    """The CSS classes of a segment: its level, a forecast (dashed), no data, or dry.

    Water seen on the road wins; then a forecast; a road without usable data is
    "nodata" (never drawn as dry), "blind" besides when its sources went quiet.
    """
    if observed_level is not None:
        return f"seg lvl-{max(observed_level, 0)}"
    if forecast_level is not None:
        return f"seg fc lvl-{max(forecast_level, 1)}"
    if unknown or blind:
        return "seg nodata blind" if blind else "seg nodata"
    return "seg dry"


def _road_label(event: EventRecord | None, css: str, level_name: Callable[[int], str]) -> str:
    """What the road's popup says of its state, in Vietnamese."""
    if event is None:
        if "nodata" in css:
            return NODATA_VI.capitalize() + (" (mất tín hiệu)" if "blind" in css else "")
        return "Không ngập"
    if event.kind != OBSERVED:
        return f"Dự báo sẽ ngập: {level_name(max(event.max_level, 1))}"
    return "Đang rút" if event.level <= 0 else f"Đang ngập: {level_name(event.level)}"


def road_features(
    geodata: Geodata,
    shapes: dict[str, dict],
    open_events: list[EventRecord],
    unknown_ids: set[str],
    blind_ids: set[str],
    level_name: Callable[[int], str],
) -> list[dict]:
    """One GeoJSON feature per segment, with its state at the map's time and its links."""
    observed = {e.segment_id: e for e in open_events if e.kind == OBSERVED}
    forecast = {e.segment_id: e for e in open_events if e.kind != OBSERVED}
    features = []
    for segment in geodata.segments:
        geometry = shapes.get(segment.id)
        if geometry is None:
            continue
        seen, expected = observed.get(segment.id), forecast.get(segment.id)
        css = segment_class(
            seen.level if seen else None,
            expected.max_level if expected else None,
            segment.id in unknown_ids,
            segment.id in blind_ids,
        )
        event = seen or expected
        properties = {
            "id": segment.id,
            "name": segment.name,
            "css": css,
            "forecast": seen is None and expected is not None,
            "level": seen.level if seen else (expected.max_level if expected else None),
            "label": _road_label(event, css, level_name),
            "road": f"/roads/{segment.id}",
            "event": f"/events/{event.id}" if event else None,
        }
        features.append({"type": "Feature", "properties": properties, "geometry": geometry})
    return features


def _station_label(row: dict) -> tuple[str, str]:
    """(CSS class, label) of a station row of the now page: its BĐ level, or its rain."""
    if row["measures_level"]:
        if row["level_m"] is None:
            return "st nodata", NODATA_VI
        return f"st bd-{row['alarm']}", ALARM_VI.get(row["alarm"], "—")
    if row["rain_24h_mm"] is None:
        return "st rain nodata", NODATA_VI
    return "st rain", f"mưa 24 giờ {row['rain_24h_mm']:.1f} mm".replace(".", ",")


def station_features(rows: list[dict]) -> list[dict]:
    """One GeoJSON point per station, labelled with its alarm level (or rain, or no data)."""
    features = []
    for row in rows:
        css, label = _station_label(row)
        properties = {"id": row["id"], "name": row["name"], "css": css, "label": label}
        point = {"type": "Point", "coordinates": [round(row["lon"], DIGITS),
                                                  round(row["lat"], DIGITS)]}  # fmt: skip
        features.append({"type": "Feature", "properties": properties, "geometry": point})
    return features


def legend_levels(names: list[str]) -> list[tuple[int, str]]:
    """(level, name) of each configured level: the legend shows these and no others."""
    return list(enumerate(names, start=1))
