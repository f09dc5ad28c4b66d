"""The "now" map: segments and stations drawn as inline SVG from UTM 48N coordinates.

Drawn on the server so the page needs no tiles, scripts or internet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from floodwatch.core.events import OBSERVED
from floodwatch.core.geo import Geodata, project_utm

WIDTH = 1000.0
MARGIN = 20.0
MAX_HEIGHT = 1200.0


@dataclass(frozen=True)
class MapPath:
    """One segment on the map."""

    segment_id: str
    name: str
    d: str  # SVG path data
    css: str  # seg lvl-2 / seg fc lvl-1 / seg nodata (blind) / seg dry
    title: str


@dataclass(frozen=True)
class MapDot:
    """One station on the map."""

    station_id: str
    name: str
    x: float
    y: float
    css: str  # st bd-0..3 / st nodata


@dataclass(frozen=True)
class Basemap:
    """Segment path data and the projection onto the viewBox, computed once."""

    width: float
    height: float
    paths: dict[str, str]
    scale: float
    origin: tuple[float, float]  # (min x, max y) in UTM metres

    def point(self, lon: float, lat: float) -> tuple[float, float] | None:
        """A WGS84 point in viewBox units, or None when it falls outside the map."""
        (utm,) = project_utm(np.array([shapely.Point(lon, lat)]))
        x = MARGIN + (utm.x - self.origin[0]) * self.scale
        y = MARGIN + (self.origin[1] - utm.y) * self.scale
        if 0 <= x <= self.width and 0 <= y <= self.height:
            return round(x, 1), round(y, 1)
        return None


def _line_d(coords: np.ndarray) -> str:
    return "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in coords)


def basemap(geodata: Geodata) -> Basemap:
    """Project every segment to UTM 48N and fit them into a WIDTH-wide viewBox."""
    segments = [s for s in geodata.segments if s.geometry is not None]
    if not segments:
        return Basemap(WIDTH, WIDTH / 2, {}, 1.0, (0.0, 0.0))
    projected = project_utm(np.array([s.geometry for s in segments], dtype=object))
    min_x, min_y, max_x, max_y = shapely.total_bounds(projected)
    span_x, span_y = max(max_x - min_x, 1.0), max(max_y - min_y, 1.0)
    scale = (WIDTH - 2 * MARGIN) / span_x
    if span_y * scale > MAX_HEIGHT - 2 * MARGIN:  # tall province: fit the height instead
        scale = (MAX_HEIGHT - 2 * MARGIN) / span_y
    height = span_y * scale + 2 * MARGIN
    paths = {}
    for segment, geom in zip(segments, projected, strict=True):
        parts = []
        for line in getattr(geom, "geoms", [geom]):
            xy = shapely.get_coordinates(line)
            xy = np.column_stack(
                [MARGIN + (xy[:, 0] - min_x) * scale, MARGIN + (max_y - xy[:, 1]) * scale]
            )
            parts.append(_line_d(xy))
        paths[segment.id] = " ".join(parts)
    return Basemap(round(WIDTH, 1), round(height, 1), paths, scale, (min_x, max_y))


def segment_class(
    observed_level: int | None, forecast_level: int | None, unknown: bool, blind: bool
) -> str:
    """The CSS classes of a segment: its level, a forecast outline, no data, or dry.

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


def segment_paths(
    base: Basemap,
    geodata: Geodata,
    open_events: list[dict],
    unknown_ids: set[str],
    blind_ids: set[str],
) -> list[MapPath]:
    """One path per segment, coloured by the events open at the map's time (event dicts)."""
    observed = {e.segment_id: e.level for e in open_events if e.kind == OBSERVED}
    forecast = {e.segment_id: e.max_level for e in open_events if e.kind != OBSERVED}
    paths = []
    for segment in geodata.segments:
        d = base.paths.get(segment.id)
        if not d:
            continue
        css = segment_class(
            observed.get(segment.id),
            forecast.get(segment.id),
            segment.id in unknown_ids,
            segment.id in blind_ids,
        )
        title = segment.name + (" — không có dữ liệu" if "nodata" in css else "")
        paths.append(MapPath(segment.id, segment.name, d, css, title))
    return paths
