"""Load, validate and index the segment and station GeoJSON files.

Problems are reported as `file: feature #i (id=…): problem`, all at once.
Geometry is WGS84 in the files and projected to UTM 48N (EPSG:32648) here, so
lengths are metres and nearest-station lookups are true distances.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import shape

from floodwatch.errors import GeodataError
from floodwatch.readings import Variable

UTM_48N = "EPSG:32648"
_TO_UTM = None


def _to_utm() -> Transformer:
    """The WGS84 → UTM 48N transformer, built once on first use."""
    global _TO_UTM
    if _TO_UTM is None:
        _TO_UTM = Transformer.from_crs("EPSG:4326", UTM_48N, always_xy=True)
    return _TO_UTM


@dataclass(frozen=True, slots=True)
class Station:
    """A gauge (or prediction point) with what it measures and its alarm levels."""

    id: str
    name: str
    measures: frozenset[str]
    lon: float
    lat: float
    river: str | None = None
    alarm_m: tuple[float | None, float | None, float | None] = (None, None, None)


@dataclass(frozen=True, slots=True)
class Segment:
    """A flood-prone road segment and the parameters of its depth model."""

    id: str
    name: str
    ward: str
    unit: str
    crest_m: float
    tide_station: str
    rain_station: str
    drain_mm_h: float | None = None
    outfall_m: float | None = None
    priority: int = 2
    length_m: float = 0.0
    geometry: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Geodata:
    """All segments and stations, validated and linked."""

    segments: list[Segment]
    stations: dict[str, Station]

    def segment(self, segment_id: str) -> Segment | None:
        """The segment with this id, if any."""
        return self._by_id.get(segment_id)

    @property
    def _by_id(self) -> dict[str, Segment]:
        cached = self.__dict__.get("_by_id_cache")
        if cached is None:
            cached = {s.id: s for s in self.segments}
            object.__setattr__(self, "_by_id_cache", cached)
        return cached


def _read_features(path: Path, problems: list[str]) -> list[dict]:
    """The features of a FeatureCollection file, or [] after recording why not."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(f"{path}: file not found")
        return []
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read ({exc})")
        return []
    except json.JSONDecodeError as exc:
        problems.append(f"{path}: not valid JSON: line {exc.lineno}: {exc.msg}")
        return []
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        problems.append(f"{path}: not a GeoJSON FeatureCollection")
        return []
    features = doc.get("features")
    if not isinstance(features, list):
        problems.append(f"{path}: FeatureCollection has no `features` list")
        return []
    return features


def _number(value: object) -> float | None:
    """A finite float, or None when the value is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _check_wgs84(coords: Iterable) -> bool:
    """Whether every coordinate pair lies in the WGS84 range."""
    return all(-180 <= x <= 180 and -90 <= y <= 90 for x, y, *_ in coords)


def _geometry(feature: dict, allowed: tuple[str, ...]) -> tuple[object | None, str | None]:
    """Parse and check a feature's geometry; return (shapely geometry, problem)."""
    raw = feature.get("geometry")
    if not isinstance(raw, dict):
        return None, "has no geometry"
    if raw.get("type") not in allowed:
        return None, f"geometry is {raw.get('type')!r}, expected {' or '.join(allowed)}"
    try:
        geom = shape(raw)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        return None, f"malformed coordinates ({exc})"
    if geom.is_empty:
        return None, "geometry is empty"
    if not _check_wgs84(shapely.get_coordinates(geom).tolist()):
        return None, "coordinates outside the WGS84 range (expected lon, lat in degrees)"
    return geom, None


def _load_stations(path: Path, problems: list[str]) -> dict[str, Station]:
    """Parse and validate the station file."""
    stations: dict[str, Station] = {}
    known = {v.value for v in Variable}
    for i, feature in enumerate(_read_features(path, problems)):
        props = feature.get("properties") if isinstance(feature, dict) else None
        props = props if isinstance(props, dict) else {}
        sid = props.get("id")
        where = f"{path}: feature #{i} (id={sid})"

        def bad(problem: str, where: str = where) -> None:
            problems.append(f"{where}: {problem}")

        if not isinstance(sid, str) or not sid:
            bad("missing `id`")
            continue
        if sid in stations:
            bad("duplicate id")
            continue
        geom, problem = _geometry(feature, ("Point",))
        if problem:
            bad(problem)
            continue
        measures = props.get("measures")
        if not isinstance(measures, list) or not measures:
            bad("`measures` must be a non-empty list of water_level and/or rainfall")
            continue
        unknown = [m for m in measures if m not in known]
        if unknown:
            bad(f"unknown measure(s) {unknown}; known: water_level, rainfall")
            continue
        alarm = props.get("alarm_m", [None, None, None])
        if (
            not isinstance(alarm, list)
            or len(alarm) != 3
            or any(a is not None and _number(a) is None for a in alarm)
        ):
            bad("`alarm_m` must be a list of 3 numbers or nulls (BĐ I, BĐ II, BĐ III, metres)")
            continue
        stations[sid] = Station(
            id=sid,
            name=str(props.get("name") or sid),
            measures=frozenset(measures),
            lon=geom.x,
            lat=geom.y,
            river=props.get("river"),
            alarm_m=tuple(None if a is None else float(a) for a in alarm),
        )
    return stations


_SEGMENT_KEYS = {
    "id",
    "name",
    "ward",
    "unit",
    "crest_m",
    "tide_station",
    "rain_station",
    "drain_mm_h",
    "outfall_m",
    "priority",
}


def _load_segments(
    path: Path, stations: dict[str, Station], unit_ids: set[str] | None, problems: list[str]
) -> tuple[list[dict], list[object]]:
    """Parse and validate segment properties; station links are checked later."""
    rows: list[dict] = []
    geoms: list[object] = []
    seen: set[str] = set()
    for i, feature in enumerate(_read_features(path, problems)):
        props = feature.get("properties") if isinstance(feature, dict) else None
        props = props if isinstance(props, dict) else {}
        sid = props.get("id")
        where = f"{path}: feature #{i} (id={sid})"
        before = len(problems)

        def bad(problem: str, where: str = where) -> None:
            problems.append(f"{where}: {problem}")

        if not isinstance(sid, str) or not sid:
            bad("missing `id`")
            continue
        if sid in seen:
            bad("duplicate id")
            continue
        seen.add(sid)
        geom, problem = _geometry(feature, ("LineString", "MultiLineString"))
        if problem:
            bad(problem)
        for key in ("name", "ward", "unit"):
            if not isinstance(props.get(key), str) or not props[key].strip():
                bad(f"missing `{key}`")
        if "crest_m" not in props:
            bad("missing `crest_m`")
        elif _number(props["crest_m"]) is None:
            bad(f"`crest_m` must be a number (metres, national datum), got {props['crest_m']!r}")
        for key in ("drain_mm_h", "outfall_m"):
            if props.get(key) is not None and _number(props[key]) is None:
                bad(f"`{key}` must be a number, got {props[key]!r}")
        if props.get("drain_mm_h") is not None and (_number(props["drain_mm_h"]) or 0) <= 0:
            bad("`drain_mm_h` must be positive")
        priority = props.get("priority", 2)
        if isinstance(priority, bool) or not isinstance(priority, int):
            bad(f"`priority` must be a whole number, got {priority!r}")
        if (
            unit_ids is not None
            and isinstance(props.get("unit"), str)
            and props["unit"] not in unit_ids
        ):
            bad(f"unknown unit {props['unit']!r} (not in [[units]] of the config)")
        for key, variable in (("tide_station", "water_level"), ("rain_station", "rainfall")):
            ref = props.get(key)
            if ref is None:
                continue
            if ref not in stations:
                bad(f"unknown {key} {ref!r}")
            elif variable not in stations[ref].measures:
                bad(f"{key} {ref!r} does not measure {variable}")
        extra = sorted(set(props) - _SEGMENT_KEYS)
        if extra:
            bad(f"unknown properties {extra}")
        if len(problems) == before:
            rows.append(props)
            geoms.append(geom)
    return rows, geoms


def project_utm(geometries: np.ndarray) -> np.ndarray:
    """Project an array of WGS84 geometries to UTM 48N in one vectorized call."""
    to_utm = _to_utm()

    def forward(xy: np.ndarray) -> np.ndarray:
        x, y = to_utm.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geometries, forward)


def _nearest(
    points_utm: list[object], station_ids: list[str], lines_utm: list[object]
) -> list[str]:
    """For each projected line, the id of the nearest projected station point."""
    tree = shapely.STRtree(points_utm)
    line_idx, point_idx = tree.query_nearest(lines_utm, all_matches=False)
    nearest = [""] * len(lines_utm)
    for li, pi in zip(line_idx.tolist(), point_idx.tolist(), strict=True):
        nearest[li] = station_ids[pi]
    return nearest


def load_geodata(
    segments_path: Path, stations_path: Path, unit_ids: set[str] | None = None
) -> Geodata:
    """Load both files, link segments to stations; raise GeodataError listing every problem."""
    problems: list[str] = []
    stations = _load_stations(stations_path, problems)
    rows, geoms = _load_segments(segments_path, stations, unit_ids, problems)
    if problems:
        raise GeodataError(problems)

    to_utm = _to_utm()
    lines_utm = list(project_utm(np.array(geoms, dtype=object)))
    assigned: dict[str, list[str]] = {}
    for key, variable in (("tide_station", "water_level"), ("rain_station", "rainfall")):
        candidates = [s for s in stations.values() if variable in s.measures]
        needs = [i for i, row in enumerate(rows) if row.get(key) is None]
        if needs and not candidates:
            raise GeodataError(
                [f"{stations_path}: no station measures {variable}; segments need a {key}"]
            )
        ids = [s.id for s in candidates]
        points = [shapely.Point(*to_utm.transform(s.lon, s.lat)) for s in candidates]
        found = _nearest(points, ids, [lines_utm[i] for i in needs]) if needs else []
        assigned[key] = [row.get(key) for row in rows]
        for i, station_id in zip(needs, found, strict=True):
            assigned[key][i] = station_id

    segments = [
        Segment(
            id=row["id"],
            name=row["name"],
            ward=row["ward"],
            unit=row["unit"],
            crest_m=float(row["crest_m"]),
            tide_station=assigned["tide_station"][i],
            rain_station=assigned["rain_station"][i],
            drain_mm_h=_number(row.get("drain_mm_h")),
            outfall_m=_number(row.get("outfall_m")),
            priority=int(row.get("priority", 2)),
            length_m=float(lines_utm[i].length),
            geometry=geoms[i],
        )
        for i, row in enumerate(rows)
    ]
    return Geodata(segments=segments, stations=stations)


def segment_arrays(segments: list[Segment], default_drain_mm_h: float) -> dict[str, np.ndarray]:
    """Per-segment model parameters as arrays, in segment order (NaN = no outfall)."""
    return {
        "crest_m": np.array([s.crest_m for s in segments], dtype=np.float64),
        "drain_mm_h": np.array(
            [s.drain_mm_h if s.drain_mm_h is not None else default_drain_mm_h for s in segments],
            dtype=np.float64,
        ),
        "outfall_m": np.array(
            [np.nan if s.outfall_m is None else s.outfall_m for s in segments], dtype=np.float64
        ),
    }
