"""The "now" map's data for static/map.js (Leaflet, vendored in static/vendor/leaflet).

The roads' lines are one GeoJSON document per geodata (`RoadLayer`, served at
`/map/roads.geojson?v=VERSION` and cached by the browser); the page carries the rest as
JSON (`<script type="application/json" id="map-data">`): basemap tiles, the outline, the
state of every road that is not dry, and the stations. Coordinates are WGS84 rounded to
5 decimals (about 1 m). Roads take the CSS classes of their state (`seg lvl-2 tone-orange`,
`seg fc lvl-1 tone-yellow`, `seg nodata`, `seg dry`), stations theirs (`st bd-0..3`,
`st nodata`). A level's colour (`tone-*`) follows the same rule as the messages' marks
(`core.text.level_tone`): yellow to red, the deepest configured level red.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import shapely
from markupsafe import Markup
from shapely.geometry import mapping

from floodwatch.config import OSM_ATTRIBUTION, OSM_COPYRIGHT, OSM_TILES, WebSettings
from floodwatch.core.events import OBSERVED
from floodwatch.core.geo import Geodata
from floodwatch.core.text import ALARM_VI, level_tone
from floodwatch.db.events import EventRecord

logger = logging.getLogger(__name__)

DIGITS = 5
# OpenStreetMap's standard tiles go to zoom 19 (tile usage policy); custom servers get the same.
MAX_ZOOM = 19
OUTLINE_KINDS = ("land", "coast", "river")
NODATA_VI = "không có dữ liệu"


@dataclass(frozen=True)
class RoadLayer:
    """Every segment's line as GeoJSON (id and name only), served once and cached by the
    browser, so a page carries only the state of the roads that are not dry."""

    body: bytes
    version: str  # changes with the geodata: part of the URL, so caches never go stale

    @property
    def url(self) -> str:
        """Where the page's script fetches it."""
        return f"/map/roads.geojson?v={self.version}"


def road_layer(geodata: Geodata) -> RoadLayer:
    """The segments' lines in WGS84, rounded to DIGITS decimals (computed once)."""
    features = []
    for segment in geodata.segments:
        if segment.geometry is not None:
            geom = shapely.set_precision(segment.geometry, 10**-DIGITS)
            features.append({"type": "Feature", "geometry": mapping(geom),
                             "properties": {"id": segment.id, "name": segment.name}})  # fmt: skip
    body = compact_json({"type": "FeatureCollection", "features": features}).encode()
    return RoadLayer(body, hashlib.sha256(body).hexdigest()[:16])


def compact_json(data: object) -> str:
    """JSON without spaces, Vietnamese kept as UTF-8."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def script_json(data: object) -> Markup:
    """JSON safe inside `<script type="application/json">` (no `</script>`, no `<!--`)."""
    text = compact_json(data)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return Markup(text)  # noqa: S704 (escaped above for a script element)


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


def level_class(level: int, levels: int) -> str:
    """CSS classes of depth `level` of `levels`: `lvl-2 tone-orange` (`lvl-0` alone for 0)."""
    if level <= 0:
        return "lvl-0"
    return f"lvl-{level} tone-{level_tone(level, levels)}"


def _event_label(event: EventRecord, level_name: Callable[[int], str]) -> str:
    """What a road's popup says of its open event, in Vietnamese."""
    if event.kind != OBSERVED:
        return f"Dự báo sẽ ngập: {level_name(max(event.max_level, 1))}"
    return "Đang rút" if event.level <= 0 else f"Đang ngập: {level_name(event.level)}"


def road_states(
    open_events: list[EventRecord],
    unknown_ids: set[str],
    blind_ids: set[str],
    level_name: Callable[[int], str],
    levels: int,
) -> dict:
    """The state of every road that is not dry at the map's time (of `levels` levels).

    `events`: the roads with an open event (water seen wins over a forecast) with their
    CSS classes, label, level, event id and whether it is a forecast. `nodata` and
    `blind`: the ids of the roads without usable data (blind: their source went quiet).
    Every other road is dry.
    """
    observed = {e.segment_id: e for e in open_events if e.kind == OBSERVED}
    forecast = {e.segment_id: e for e in open_events if e.kind != OBSERVED}
    events = {}
    for segment_id, event in {**forecast, **observed}.items():
        seen = segment_id in observed
        level = event.level if seen else event.max_level
        events[segment_id] = {
            "css": f"seg {level_class(level, levels)}"
            if seen
            else f"seg fc {level_class(max(level, 1), levels)}",
            "label": _event_label(event, level_name),
            "level": level,
            "event": event.id,
            "forecast": not seen,
        }
    return {
        "events": events,
        "blind": sorted(blind_ids - set(events)),
        "nodata": sorted(unknown_ids - blind_ids - set(events)),
    }


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
