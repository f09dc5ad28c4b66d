"""Hostile segment and station GeoJSON: one line naming the file, feature and property.

Whole files that are no JSON text, JSON that Python reads but JSON forbids
(NaN, 5000-digit numbers, 100,000-deep nesting), every property of the wrong
JSON type or beyond its physical range, empty collections and duplicate ids.
A shrunken segment file must never delete roads that have events.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from floodwatch.core.geo import load_geodata
from floodwatch.errors import GeodataError
from tests.conftest import DATA
from tests.hostile_helpers import (
    BIG_DIGITS,
    HUGE_DIGITS,
    NOT_TEXT,
    SEGMENTS,
    STATIONS,
    cli,
    count_rows,
    db_path,
    deep_json,
    error_lines,
    recent_hours,
    write_config,
)
from tests.test_geo import collection, segment

TIDE = {
    "type": "Feature",
    "geometry": {"type": "Point", "coordinates": [105.15, 9.18]},
    "properties": {"id": "tide", "name": "Trạm triều", "measures": ["water_level"]},
}
RAIN = {
    "type": "Feature",
    "geometry": {"type": "Point", "coordinates": [105.10, 9.18]},
    "properties": {"id": "rain", "name": "Trạm mưa", "measures": ["rainfall"]},
}


def with_props(feature: dict, **props) -> dict:
    """A copy of a feature with properties set (a value of ... removes the property)."""
    merged = {**feature["properties"], **props}
    return {**feature, "properties": {k: v for k, v in merged.items() if v is not ...}}


def write_text(path: Path, text: str) -> Path:
    """Write a file and return its path."""
    path.write_text(text, encoding="utf-8")
    return path


def problems(segments: Path, stations: Path, unit_ids=None) -> list[str]:
    """The problem lines of loading this geodata."""
    with pytest.raises(GeodataError) as info:
        load_geodata(segments, stations, unit_ids)
    return info.value.problems


# --- whole files -----------------------------------------------------------------

FEATURE_TEXT = json.dumps(segment())
WHOLE = {
    **{f"not-text-{name}": data for name, data in NOT_TEXT.items()},
    "nested-100000-deep": deep_json().encode(),
    "number-5000-digits": (
        '{"type": "FeatureCollection", "features": [' + FEATURE_TEXT.replace("0.9", HUGE_DIGITS)
        + "]}"
    ).encode(),
    "nan-literal": FEATURE_TEXT.replace("0.9", "NaN").join(
        ['{"type": "FeatureCollection", "features": [', "]}"]).encode(),
    "infinity-literal": FEATURE_TEXT.replace("0.9", "Infinity").join(
        ['{"type": "FeatureCollection", "features": [', "]}"]).encode(),
    "minus-infinity-literal": FEATURE_TEXT.replace("0.9", "-Infinity").join(
        ['{"type": "FeatureCollection", "features": [', "]}"]).encode(),
    "empty-file": b"",
    "nul-bytes": b'{"type": "FeatureCollection",\x00 "features": []}',
    "a-json-list": b"[]",
    "features-not-a-list": b'{"type": "FeatureCollection", "features": {"0": {}}}',
    "empty-collection": b'{"type": "FeatureCollection", "features": []}',
}  # fmt: skip


@pytest.mark.parametrize("which", ["segments", "stations"])
@pytest.mark.parametrize("content", list(WHOLE.values()), ids=list(WHOLE))
def test_unusable_geodata_file_is_one_line_in_check(tmp_path, which, content):
    hostile = tmp_path / f"{which}.geojson"
    hostile.write_bytes(content)
    paths = {"segments": SEGMENTS, "stations": STATIONS, which: hostile}
    config = write_config(tmp_path, **paths)
    result = cli(config, "check")
    assert result.exit_code == 1
    [line] = error_lines(result)
    assert line.startswith(f"error: {hostile}: "), line
    if content == WHOLE["empty-collection"]:
        assert f"no {which}" in line
    assert not db_path(config).exists()


def test_geodata_path_that_is_a_folder_is_one_line(tmp_path):
    folder = tmp_path / "segments.geojson"
    folder.mkdir()
    [line] = problems(folder, STATIONS)
    assert line.startswith(f"{folder}: cannot read")


# --- segment properties ----------------------------------------------------------

SEGMENT_CASES = [
    # (id, properties changed on feature #1, words expected in its one problem line)
    ("name-number", {"name": 5}, "`name` must be a string, got 5"),
    ("name-list", {"name": []}, "`name` must be a string"),
    ("name-blank", {"name": "   "}, "missing `name`"),
    ("name-nul", {"name": "Đường\u0000A"}, "`name` must not contain control characters"),
    ("name-10k-chars", {"name": "Đ" * 10_000}, "`name` is longer than 200 characters"),
    ("ward-list", {"ward": []}, "`ward` must be a string"),
    ("ward-object", {"ward": {"a": 1}}, "`ward` must be a string"),
    ("unit-object", {"unit": {}}, "`unit` must be a string"),
    ("unit-number", {"unit": 7}, "`unit` must be a string"),
    ("id-number", {"id": 5}, "`id` must be a string, got 5"),
    ("id-empty", {"id": ""}, "missing `id`"),
    ("id-null", {"id": None}, "`id` must be a string, got null"),
    ("id-newline", {"id": "a\nb"}, "`id` must not contain control characters"),
    ("crest-missing", {"crest_m": ...}, "missing `crest_m`"),
    ("crest-null", {"crest_m": None}, "missing `crest_m`"),
    ("crest-string", {"crest_m": "0.9"}, "`crest_m` must be a number"),
    ("crest-bool", {"crest_m": True}, "`crest_m` must be a number"),
    ("crest-list", {"crest_m": [0.9]}, "`crest_m` must be a number"),
    ("crest-minus-1e308", {"crest_m": -1e308}, "outside -10..20 m"),
    ("crest-1e308", {"crest_m": 1e308}, "outside -10..20 m"),
    ("crest-centimetres", {"crest_m": 95}, "outside -10..20 m"),
    ("crest-4000-digits", {"crest_m": int(BIG_DIGITS)}, "is outside -10..20 m"),
    ("outfall-1e300", {"outfall_m": 1e300}, "`outfall_m` 1e+300 is outside -10..20 m"),
    ("outfall-string", {"outfall_m": "low"}, "`outfall_m` must be a number"),
    ("drain-zero", {"drain_mm_h": 0}, "`drain_mm_h` 0 must be positive"),
    ("drain-negative", {"drain_mm_h": -5}, "`drain_mm_h` -5 must be positive"),
    ("drain-1e9", {"drain_mm_h": 1e9}, "at most 1000 mm/h"),
    ("drain-bool", {"drain_mm_h": True}, "`drain_mm_h` must be a number"),
    ("priority-1e30", {"priority": 1e30}, "`priority` must be a whole number 1 to 5"),
    ("priority-int-10e30", {"priority": 10**30}, "`priority` must be a whole number 1 to 5"),
    ("priority-zero", {"priority": 0}, "`priority` must be a whole number 1 to 5, got 0"),
    ("priority-six", {"priority": 6}, "`priority` must be a whole number 1 to 5, got 6"),
    ("priority-half", {"priority": 2.5}, "`priority` must be a whole number 1 to 5"),
    ("priority-bool", {"priority": True}, "`priority` must be a whole number 1 to 5"),
    ("priority-string", {"priority": "1"}, "`priority` must be a whole number 1 to 5"),
    ("tide-station-number", {"tide_station": 7}, "`tide_station` must be a station id"),
    ("tide-station-list", {"tide_station": []}, "`tide_station` must be a station id"),
    ("rain-station-object", {"rain_station": {}}, "`rain_station` must be a station id"),
    ("tide-station-unknown", {"tide_station": "atlantis"}, "unknown tide_station 'atlantis'"),
    ("unknown-property", {"colour": "red"}, "unknown properties ['colour']"),
]


@pytest.mark.parametrize(
    ("props", "words"), [c[1:] for c in SEGMENT_CASES], ids=[c[0] for c in SEGMENT_CASES]
)
def test_bad_segment_property_is_one_line(tmp_path, props, words):
    bad = with_props(segment("bad"), **props)
    path = write_text(tmp_path / "segments.geojson", json.dumps(collection([segment("ok"), bad])))
    [line] = problems(path, STATIONS)
    assert line.startswith(f"{path}: feature #1 (id="), line
    assert words in line, line
    assert len(line) < 400, line[:400]


@pytest.mark.parametrize(
    ("feature", "words"),
    [
        ("a string", "not a GeoJSON Feature (a JSON str)"),
        (None, "not a GeoJSON Feature (a JSON NoneType)"),
        ({"type": "Feature", "properties": None, "geometry": None}, "`properties` must be an"),
        ({"type": "Feature", "properties": [1, 2], "geometry": None}, "`properties` must be an"),
        ({**segment("bad"), "geometry": None}, "has no geometry"),
        ({**segment("bad"), "geometry": {"type": "LineString", "coordinates": "x"}},
         "malformed coordinates"),
        ({**segment("bad"), "geometry": {"type": "LineString",
                                         "coordinates": [[int(BIG_DIGITS), 9.0], [105, 9]]}},
         "feature #1"),
        ({**segment("bad"), "geometry": {"type": "LineString",
                                         "coordinates": [[105.1, 9.1], [1e300, 9.2]]}},
         "coordinates outside the WGS84 range"),
        ({**segment("bad"), "geometry": {"type": "LineString", "coordinates": [[105.1, 9.1]]}},
         "malformed coordinates"),
    ],
    ids=["string", "null", "properties-null", "properties-list", "geometry-null",
         "coordinates-string", "coordinate-4000-digits", "coordinate-1e300", "one-point-line"],
)  # fmt: skip
def test_malformed_segment_feature_is_one_line(tmp_path, feature, words):
    path = write_text(
        tmp_path / "segments.geojson", json.dumps(collection([segment("ok"), feature]))
    )
    [line] = problems(path, STATIONS)
    assert line.startswith(f"{path}: feature #1 "), line
    assert words in line, line


def test_duplicate_segment_id_is_one_line(tmp_path):
    path = write_text(
        tmp_path / "segments.geojson", json.dumps(collection([segment("a"), segment("a")]))
    )
    assert problems(path, STATIONS) == [f"{path}: feature #1 (id=a): duplicate id"]


# --- station properties ----------------------------------------------------------

STATION_CASES = [
    ("name-number", {"name": 5}, "`name` must be a string, got 5"),
    ("name-list", {"name": []}, "`name` must be a string"),
    ("id-number", {"id": 7}, "`id` must be a string, got 7"),
    ("measures-string", {"measures": "rainfall"}, "`measures` must be a non-empty list"),
    ("measures-empty", {"measures": []}, "`measures` must be a non-empty list"),
    ("measures-object-item", {"measures": [{}]}, "unknown measure(s) [{}]"),
    ("measures-snow", {"measures": ["snow"]}, 'unknown measure(s) ["snow"]'),
    ("river-object", {"river": {}}, "`river` must be a string, got {}"),
    ("river-number", {"river": 5}, "`river` must be a string, got 5"),
    ("alarm-string", {"alarm_m": "0.65"}, "`alarm_m` must be a list of 3 numbers or nulls"),
    ("alarm-two", {"alarm_m": [0.65, 0.75]}, "`alarm_m` must be a list of 3 numbers or nulls"),
    ("alarm-1e308", {"alarm_m": [0.6, 0.7, 1e308]}, "`alarm_m` 1e+308 is outside -10..20 m"),
    ("alarm-minus-50", {"alarm_m": [-50, None, 1.0]}, "`alarm_m` -50 is outside -10..20 m"),
    ("alarm-decreasing", {"alarm_m": [0.85, 0.75, 0.65]}, "must not decrease"),
    ("alarm-bool", {"alarm_m": [True, 0.7, 0.8]}, "`alarm_m` must be a number"),
    ("unknown-property", {"alarm": [0.6, 0.7, 0.8]}, "unknown properties ['alarm']"),
]


@pytest.mark.parametrize(
    ("props", "words"), [c[1:] for c in STATION_CASES], ids=[c[0] for c in STATION_CASES]
)
def test_bad_station_property_is_one_line(tmp_path, props, words):
    bad = with_props({**TIDE, "properties": {**TIDE["properties"], "id": "bad"}}, **props)
    stations = write_text(tmp_path / "stations.geojson", json.dumps(collection([TIDE, RAIN, bad])))
    segments = write_text(tmp_path / "segments.geojson", json.dumps(collection([segment()])))
    [line] = problems(segments, stations)
    assert line.startswith(f"{stations}: feature #2 (id="), line
    assert words in line, line


@pytest.mark.parametrize(
    ("geometry", "words"),
    [
        ({"type": "LineString", "coordinates": [[105.1, 9.1], [105.2, 9.2]]},
         "geometry is 'LineString', expected Point"),
        ({"type": "Point", "coordinates": [9.18, 105.15]}, "outside the WGS84 range"),
    ],
    ids=["line-for-a-station", "lat-lon-swapped"],
)  # fmt: skip
def test_bad_station_geometry_is_one_line(tmp_path, geometry, words):
    bad = {**TIDE, "geometry": geometry, "properties": {**TIDE["properties"], "id": "bad"}}
    stations = write_text(tmp_path / "stations.geojson", json.dumps(collection([TIDE, RAIN, bad])))
    segments = write_text(tmp_path / "segments.geojson", json.dumps(collection([segment()])))
    [line] = problems(segments, stations)
    assert line.startswith(f"{stations}: feature #2 (id=bad): ") and words in line, line


def test_duplicate_station_id_is_one_line(tmp_path):
    stations = write_text(tmp_path / "stations.geojson", json.dumps(collection([TIDE, RAIN, TIDE])))
    segments = write_text(tmp_path / "segments.geojson", json.dumps(collection([segment()])))
    assert problems(segments, stations) == [f"{stations}: feature #2 (id=tide): duplicate id"]


def test_bounds_are_inclusive_and_nulls_mean_unset(tmp_path):
    edge = with_props(segment("edge"), crest_m=-10, outfall_m=20, drain_mm_h=1000, priority=5)
    unset = with_props(segment("unset"), outfall_m=None, drain_mm_h=None, priority=None)
    alarms = with_props(TIDE, alarm_m=[None, None, 0.9], river=None)
    stations = write_text(tmp_path / "stations.geojson", json.dumps(collection([alarms, RAIN])))
    segments = write_text(tmp_path / "segments.geojson", json.dumps(collection([edge, unset])))
    geodata = load_geodata(segments, stations)
    assert [(s.crest_m, s.outfall_m, s.drain_mm_h, s.priority) for s in geodata.segments] == [
        (-10.0, 20.0, 1000.0, 5),
        (0.9, None, None, 2),
    ]
    assert geodata.stations["tide"].alarm_m == (None, None, 0.9)


# --- a shrunken segment file never deletes roads that have events ---------------


@pytest.fixture
def flooded(tmp_path) -> Path:
    """A config on the replay's test roads whose `tide-low` has an event in the database."""
    segments = tmp_path / "segments.geojson"
    segments.write_bytes((DATA / "replay" / "segments.geojson").read_bytes())
    config = write_config(tmp_path, segments=segments)
    rows = [f"{t.isoformat()},tp_ca_mau,water_level,{v}" for t, v in
            zip(recent_hours(4), (0.5, 1.3, 1.3, 1.3), strict=True)]  # fmt: skip
    csv = tmp_path / "flood.csv"
    csv.write_text("time,station,variable,value\n" + "\n".join(rows) + "\n", encoding="utf-8")
    result = cli(config, "replay", "--quiet", str(csv))
    assert result.exit_code == 0, result.output
    assert count_rows(db_path(config), "event") > 0
    return config


def segment_ids(database: Path) -> set[str]:
    """Segment ids stored in a SQLite file."""
    import sqlite3

    with sqlite3.connect(database) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM segment")}


def test_an_emptied_segment_file_is_refused_and_deletes_nothing(flooded):
    segments = flooded.parent / "segments.geojson"
    doc = json.loads(segments.read_text(encoding="utf-8"))
    segments.write_text(json.dumps({**doc, "features": []}), encoding="utf-8")
    before = segment_ids(db_path(flooded))

    result = cli(flooded, "poll")

    assert result.exit_code == 1, result.output
    [line] = error_lines(result)
    assert "no segments" in line
    assert segment_ids(db_path(flooded)) == before


def test_a_shrunken_segment_file_keeps_the_rows_of_roads_with_events(flooded):
    """Without the explicit `db prune-segments`, a road with events keeps its row; its open
    events are closed and the operators are told, so nothing goes quiet unseen."""
    segments = flooded.parent / "segments.geojson"
    doc = json.loads(segments.read_text(encoding="utf-8"))
    doc["features"] = [f for f in doc["features"] if f["properties"]["id"] in ("tide-mid",)]
    segments.write_text(json.dumps(doc), encoding="utf-8")
    before = segment_ids(db_path(flooded))
    assert "tide-low" in before

    result = cli(flooded, "poll")

    assert result.exit_code == 0, result.output
    assert "tide-low" in segment_ids(db_path(flooded))
    assert "ĐOẠN ĐƯỜNG KHÔNG CÒN TRONG DỮ LIỆU ĐỊA LÝ" in result.output
    assert "tide-low" in result.output
    pruned = cli(flooded, "db", "prune-segments")
    assert pruned.exit_code == 0 and "tide-low" in pruned.output
    assert "tide-low" not in segment_ids(db_path(flooded))
