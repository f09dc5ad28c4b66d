"""Load, validate and index the segment and station GeoJSON files.

Problems are reported as `file: feature #i (id=…): problem`, all at once.
Every property is checked for its JSON type and a physical range (levels
within DATUM_MIN_M..DATUM_MAX_M metres on the national datum); NaN/Infinity
literals, 4300+ digit numbers, deep nesting and non-UTF-8 files are one line
each, and an empty segment or station file is an error.
Geometry is WGS84 in the files and projected to UTM 48N (EPSG:32648) here, so
lengths are metres and nearest-station lookups are true distances.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import shape

from floodwatch.core.readings import Variable
from floodwatch.core.settings import DATUM_MAX_M, DATUM_MIN_M
from floodwatch.errors import GeodataError, not_utf8

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


class _JsonConstant(ValueError):
    """NaN, Infinity or -Infinity: Python reads them, JSON (RFC 8259) does not allow them."""


def _refuse_constant(name: str) -> float:
    """`json.loads` hook: refuse the non-standard constants instead of making NaN or inf."""
    raise _JsonConstant(f"{name} is not a JSON number")


def _read_features(path: Path, problems: list[str]) -> list | None:
    """The features of a FeatureCollection file, or None after recording why not."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        problems.append(f"{path}: file not found")
        return None
    except OSError as exc:
        problems.append(f"{path}: cannot read ({exc.strerror or exc})")
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.append(not_utf8(path, exc, "GeoJSON file"))
        return None
    try:
        doc = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        problems.append(f"{path}: not valid JSON: line {exc.lineno}: {exc.msg}")
        return None
    except _JsonConstant as exc:
        problems.append(f"{path}: not valid JSON: {exc}")
        return None
    except RecursionError:
        problems.append(f"{path}: not valid JSON: nested too deeply")
        return None
    except ValueError:  # Python refuses to read an integer of more than 4300 digits
        problems.append(f"{path}: not valid JSON: a number has more than 4300 digits")
        return None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        problems.append(f"{path}: not a GeoJSON FeatureCollection")
        return None
    features = doc.get("features")
    if not isinstance(features, list):
        problems.append(f"{path}: FeatureCollection has no `features` list")
        return None
    return features


def _number(value: object) -> float | None:
    """A finite float, or None when the value is not a number (or too big for a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        return None
    return number if math.isfinite(number) else None


def _cut(text: str, limit: int) -> str:
    """Text cut to `limit` characters, so a hostile value stays one short line."""
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _short(value: object, limit: int = 60) -> str:
    """`repr` of an id, name or key list, cut short."""
    return _cut(repr(value), limit)


def _json(value: object, limit: int = 60) -> str:
    """A property value as the JSON the user wrote (`true`, `null`, `{}`), cut short."""
    return _cut(json.dumps(value, ensure_ascii=False, default=str), limit)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_TEXT = 200


def _text_problem(key: str, value: object) -> str | None:
    """Why a name, ward, unit or id is not a usable string, or None."""
    if not isinstance(value, str):
        return f"`{key}` must be a string, got {_json(value)}"
    if not value.strip():
        return f"missing `{key}`"
    if _CONTROL.search(value):
        return f"`{key}` must not contain control characters, got {_json(value)}"
    if len(value) > MAX_TEXT:
        return f"`{key}` is longer than {MAX_TEXT} characters"
    return None


def _level_problem(key: str, value: object) -> str | None:
    """Why an elevation or level (m, national datum) is unusable, or None."""
    number = _number(value)
    if number is None and isinstance(value, int) and not isinstance(value, bool):
        return f"`{key}` {_json(value)} is outside {DATUM_MIN_M:g}..{DATUM_MAX_M:g} m"
    if number is None:
        return f"`{key}` must be a number (metres, national datum), got {_json(value)}"
    if not DATUM_MIN_M <= number <= DATUM_MAX_M:
        return (
            f"`{key}` {number:g} is outside {DATUM_MIN_M:g}..{DATUM_MAX_M:g} m "
            "(metres on the national datum; centimetres by mistake?)"
        )
    return None


def _where(path: Path, i: int, sid: object) -> str:
    """`file: feature #i (id=…)` for a problem line."""
    shown = sid if isinstance(sid, str) and len(sid) <= MAX_TEXT else _short(sid)
    return f"{path}: feature #{i} (id={shown})"


def _check_wgs84(coords: Iterable) -> bool:
    """Whether every coordinate pair lies in the WGS84 range."""
    return all(-180 <= x <= 180 and -90 <= y <= 90 for x, y, *_ in coords)


def _geometry(feature: dict, allowed: tuple[str, ...]) -> tuple[object | None, str | None]:
    """Parse and check a feature's geometry; return (shapely geometry, problem)."""
    raw = feature.get("geometry")
    if not isinstance(raw, dict):
        return None, "has no geometry"
    if raw.get("type") not in allowed:
        return None, f"geometry is {_short(raw.get('type'))}, expected {' or '.join(allowed)}"
    try:
        geom = shape(raw)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        return None, f"malformed coordinates ({_short(str(exc), 120)})"
    if geom.is_empty:
        return None, "geometry is empty"
    if not _check_wgs84(shapely.get_coordinates(geom).tolist()):
        return None, "coordinates outside the WGS84 range (expected lon, lat in degrees)"
    return geom, None


def _properties(feature: object) -> tuple[dict, str | None]:
    """A feature's properties, and why the feature itself is unusable (or None)."""
    if not isinstance(feature, dict):
        return {}, f"not a GeoJSON Feature (a JSON {type(feature).__name__})"
    props = feature.get("properties")
    if not isinstance(props, dict):
        return {}, f"`properties` must be an object, got {_json(props)}"
    return props, None


def _optional_text_problem(key: str, value: object) -> str | None:
    """Why an optional name or river is not a usable string, or None (also when absent)."""
    return None if value is None else _text_problem(key, value)


def _extra_problem(props: dict, keys: set[str]) -> str | None:
    """The properties a feature should not have, as one problem, or None."""
    extra = sorted(str(k) for k in set(props) - keys)
    return f"unknown properties {_short(extra, 120)}" if extra else None


def _identified(
    path: Path, i: int, feature: object, seen: set[str], problems: list[str]
) -> tuple[dict, str | None]:
    """A feature's properties and where it is, if it is an object with a new, usable id.

    Otherwise its problem is appended and `where` is None. The id joins `seen`.
    """
    props, unusable = _properties(feature)
    sid = props.get("id")
    where = _where(path, i, sid)
    problem = unusable or _text_problem("id", sid) or ("duplicate id" if sid in seen else None)
    if problem:
        problems.append(f"{where}: {problem}")
        return props, None
    seen.add(sid)
    return props, where


_STATION_KEYS = {"id", "name", "measures", "river", "alarm_m"}


def _measures_problem(measures: object, known: set[str]) -> str | None:
    """Why a station's `measures` is not a non-empty list of known variables, or None."""
    if not isinstance(measures, list) or not measures:
        return (
            f"`measures` must be a non-empty list of water_level and/or rainfall, "
            f"got {_json(measures)}"
        )
    if unknown := [m for m in measures if not isinstance(m, str) or m not in known]:
        return f"unknown measure(s) {_json(unknown)}; known: water_level, rainfall"
    return None


def _alarm_problem(alarm: object) -> str | None:
    """Why a station's `alarm_m` is not 3 usable, non-decreasing levels or nulls, or None."""
    if alarm is None:
        return None
    if not isinstance(alarm, list) or len(alarm) != 3:
        return (
            "`alarm_m` must be a list of 3 numbers or nulls (BĐ I, BĐ II, BĐ III, metres), "
            f"got {_json(alarm)}"
        )
    levels = [a for a in alarm if a is not None]
    bad = [p for a in levels if (p := _level_problem("alarm_m", a))]
    if bad:
        return bad[0]
    if any(b < a for a, b in zip(levels, levels[1:], strict=False)):
        return f"`alarm_m` {alarm} must not decrease (BĐ I ≤ BĐ II ≤ BĐ III)"
    return None


def _station_problems(props: dict, known: set[str]) -> list[str]:
    """Property problems of one station feature (its id and geometry are checked apart)."""
    found = (
        _optional_text_problem("name", props.get("name")),
        _optional_text_problem("river", props.get("river")),
        _measures_problem(props.get("measures"), known),
        _alarm_problem(props.get("alarm_m")),
        _extra_problem(props, _STATION_KEYS),
    )
    return [p for p in found if p]


def _load_stations(path: Path, problems: list[str]) -> dict[str, Station] | None:
    """Parse and validate the station file; None when the file itself is unusable."""
    features = _read_features(path, problems)
    if features is None:
        return None
    if not features:
        problems.append(f"{path}: no stations (an empty FeatureCollection)")
        return None
    stations: dict[str, Station] = {}
    seen: set[str] = set()
    known = {v.value for v in Variable}
    for i, feature in enumerate(features):
        props, where = _identified(path, i, feature, seen, problems)
        if where is None:
            continue
        sid = props["id"]
        geom, problem = _geometry(feature, ("Point",))
        found = ([problem] if problem else []) + _station_problems(props, known)
        problems += [f"{where}: {p}" for p in found]
        if found:
            continue
        alarm = props.get("alarm_m") or [None, None, None]
        stations[sid] = Station(
            id=sid,
            name=props.get("name") or sid,
            measures=frozenset(props["measures"]),
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
# Drainage capacity, mm/h: a street drain takes tens; 1,000 is past any storm sewer.
MAX_DRAIN_MM_H = 1000.0
# Priority: 1 (most important road, e.g. QL1) to 5 (least); default 2.
PRIORITIES = range(1, 6)


def _crest_problem(crest: object) -> str | None:
    """Why a segment's required `crest_m` is missing or unusable, or None."""
    if crest is None:
        return "missing `crest_m`"
    return _level_problem("crest_m", crest)


def _drain_problem(drain: object) -> str | None:
    """Why an optional `drain_mm_h` is not a believable drainage capacity, or None."""
    if drain is None:
        return None
    number = _number(drain)
    if number is None:
        return f"`drain_mm_h` must be a number, got {_json(drain)}"
    if not 0 < number <= MAX_DRAIN_MM_H:
        return f"`drain_mm_h` {number:g} must be positive and at most 1000 mm/h"
    return None


def _priority_problem(priority: object) -> str | None:
    """Why an optional `priority` is not a whole number 1 to 5, or None."""
    if priority is not None and (
        isinstance(priority, bool) or not isinstance(priority, int) or priority not in PRIORITIES
    ):
        return f"`priority` must be a whole number 1 to 5, got {_json(priority)}"
    return None


def _unit_problem(unit: object, unit_ids: set[str] | None) -> str | None:
    """Why a segment's unit is not one of the config's [[units]], or None (also when unchecked)."""
    if unit_ids is not None and isinstance(unit, str) and unit.strip() and unit not in unit_ids:
        return f"unknown unit {_short(unit)} (not in [[units]] of the config)"
    return None


def _station_ref_problems(props: dict, stations: dict[str, Station] | None) -> list[str]:
    """Problems of a segment's `tide_station` and `rain_station` links."""
    problems = []
    for key, variable in (("tide_station", "water_level"), ("rain_station", "rainfall")):
        ref = props.get(key)
        if ref is None:
            continue
        if not isinstance(ref, str):
            problems.append(f"`{key}` must be a station id (a string), got {_json(ref)}")
        elif stations is None:
            continue  # the station file is broken: already reported
        elif ref not in stations:
            problems.append(f"unknown {key} {_short(ref)}")
        elif variable not in stations[ref].measures:
            problems.append(f"{key} {ref!r} does not measure {variable}")
    return problems


def _segment_problems(
    props: dict, stations: dict[str, Station] | None, unit_ids: set[str] | None
) -> list[str]:
    """Property problems of one segment feature (its id and geometry are checked apart)."""
    problems = [p for key in ("name", "ward", "unit") if (p := _text_problem(key, props.get(key)))]
    outfall = props.get("outfall_m")
    found = (
        _crest_problem(props.get("crest_m")),
        None if outfall is None else _level_problem("outfall_m", outfall),
        _drain_problem(props.get("drain_mm_h")),
        _priority_problem(props.get("priority")),
        _unit_problem(props.get("unit"), unit_ids),
    )
    problems += [p for p in found if p]
    problems += _station_ref_problems(props, stations)
    extra = _extra_problem(props, _SEGMENT_KEYS)
    return problems + ([extra] if extra else [])


def _load_segments(
    path: Path,
    stations: dict[str, Station] | None,
    unit_ids: set[str] | None,
    problems: list[str],
) -> tuple[list[dict], list[object]]:
    """Parse and validate segment properties; station links are checked later."""
    rows: list[dict] = []
    geoms: list[object] = []
    features = _read_features(path, problems)
    if features is None:
        return rows, geoms
    if not features:
        # Never an empty road network: that would stop every alert without a word.
        problems.append(f"{path}: no segments (an empty FeatureCollection)")
        return rows, geoms
    seen: set[str] = set()
    for i, feature in enumerate(features):
        props, where = _identified(path, i, feature, seen, problems)
        if where is None:
            continue
        geom, problem = _geometry(feature, ("LineString", "MultiLineString"))
        found = ([problem] if problem else []) + _segment_problems(props, stations, unit_ids)
        problems += [f"{where}: {p}" for p in found]
        if not found:
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
    if problems or stations is None:
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
            priority=2 if row.get("priority") is None else int(row["priority"]),
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
