"""Geodata: one `file: feature #i (id=…): problem` line per mistake, station links, lengths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from floodwatch.cli import main
from floodwatch.core.geo import load_geodata
from floodwatch.errors import GeodataError

# Two stations near TP Cà Mau: a tide gauge to the east, a rain gauge to the west.
TIDE_EAST = {"id": "tide_east", "measures": ["water_level"], "lonlat": (105.20, 9.18)}
RAIN_WEST = {"id": "rain_west", "measures": ["rainfall"], "lonlat": (105.10, 9.18)}
BOTH_FAR = {"id": "both_far", "measures": ["water_level", "rainfall"], "lonlat": (105.50, 9.50)}
ROAD = [[105.149, 9.174], [105.151, 9.176]]  # ~5 km from each near gauge, ~45 km from both_far


def station(spec: dict) -> dict:
    """A station feature from a short spec."""
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": list(spec["lonlat"])},
        "properties": {"id": spec["id"], "name": spec["id"], "measures": spec["measures"]},
    }


def segment(sid: str = "road", coords: list | None = None, **props) -> dict:
    """A valid segment feature, with properties overridden or removed (value None)."""
    base = {"id": sid, "name": "Đường A", "ward": "Phường 1", "unit": "u1", "crest_m": 0.9}
    base.update(props)
    return {
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": coords or ROAD},
        "properties": {k: v for k, v in base.items() if v is not None},
    }


def collection(features: list[dict]) -> dict:
    """A GeoJSON FeatureCollection."""
    return {"type": "FeatureCollection", "features": features}


def write_json(path: Path, doc: object) -> Path:
    """Write a JSON document and return the path."""
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.fixture
def stations_file(tmp_path) -> Path:
    """The three test stations."""
    return write_json(
        tmp_path / "stations.geojson",
        collection([station(s) for s in (TIDE_EAST, RAIN_WEST, BOTH_FAR)]),
    )


def segment_problems(tmp_path, stations_file, features_or_doc, unit_ids=None) -> list[str]:
    """Problems raised when loading these segment features (or a raw document)."""
    doc = features_or_doc if isinstance(features_or_doc, dict) else collection(features_or_doc)
    path = write_json(tmp_path / "segments.geojson", doc)
    with pytest.raises(GeodataError) as info:
        load_geodata(path, stations_file, unit_ids)
    return info.value.problems


@pytest.mark.parametrize(
    ("feature", "problem"),
    [
        (
            {**segment(), "geometry": {"type": "Point", "coordinates": [105.15, 9.17]}},
            "geometry is 'Point', expected LineString or MultiLineString",
        ),
        (
            segment(coords=[[9.17, 105.15], [9.18, 105.16]]),  # lat, lon swapped
            "coordinates outside the WGS84 range",
        ),
        (segment(crest_m=None), "missing `crest_m`"),
        (segment(crest_m="0.9 m"), "`crest_m` must be a number"),
        (segment(tide_station="atlantis"), "unknown tide_station 'atlantis'"),
        (
            segment(tide_station="rain_west"),
            "tide_station 'rain_west' does not measure water_level",
        ),
        (segment(colour="red"), "unknown properties ['colour']"),
    ],
)
def test_one_broken_feature_is_one_line(tmp_path, stations_file, feature, problem):
    path = tmp_path / "segments.geojson"
    [line] = segment_problems(tmp_path, stations_file, [segment("ok"), feature])
    assert line.startswith(f"{path}: feature #1 (id=road): ")
    assert problem in line


def test_duplicate_id(tmp_path, stations_file):
    path = tmp_path / "segments.geojson"
    lines = segment_problems(tmp_path, stations_file, [segment("a"), segment("a")])
    assert lines == [f"{path}: feature #1 (id=a): duplicate id"]


def test_unknown_unit_when_units_are_given(tmp_path, stations_file):
    path = tmp_path / "segments.geojson"
    lines = segment_problems(tmp_path, stations_file, [segment(unit="ghost")], {"u1"})
    assert lines == [
        f"{path}: feature #0 (id=road): unknown unit 'ghost' (not in [[units]] of the config)"
    ]


def test_invalid_json_is_one_line(tmp_path, stations_file):
    path = tmp_path / "segments.geojson"
    path.write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    with pytest.raises(GeodataError) as info:
        load_geodata(path, stations_file)
    [line] = info.value.problems
    assert line.startswith(f"{path}: not valid JSON: line 1")


def test_not_a_feature_collection(tmp_path, stations_file):
    lines = segment_problems(tmp_path, stations_file, segment())  # a bare Feature
    assert lines == [f"{tmp_path / 'segments.geojson'}: not a GeoJSON FeatureCollection"]


def test_several_broken_features_are_reported_together(tmp_path, stations_file):
    features = [
        segment("good"),
        segment("no-crest", crest_m=None),
        segment("good2"),
        segment("far", coords=[[200.0, 9.0], [201.0, 9.0]]),
        segment("odd", colour="red", tide_station="atlantis"),
    ]
    lines = segment_problems(tmp_path, stations_file, features)
    assert len(lines) == 4, lines
    assert [line.split(": ")[1] for line in lines] == [
        "feature #1 (id=no-crest)",
        "feature #3 (id=far)",
        "feature #4 (id=odd)",
        "feature #4 (id=odd)",
    ]


def test_multilinestring_is_accepted(tmp_path, stations_file):
    feature = segment()
    feature["geometry"] = {"type": "MultiLineString", "coordinates": [ROAD, ROAD[::-1]]}
    path = write_json(tmp_path / "segments.geojson", collection([feature]))
    [road] = load_geodata(path, stations_file).segments
    assert road.length_m > 0


def test_nearest_station_measuring_the_variable_is_assigned(tmp_path, stations_file):
    path = write_json(
        tmp_path / "segments.geojson",
        collection([segment("auto"), segment("pinned", tide_station="both_far")]),
    )
    geodata = load_geodata(path, stations_file)
    auto, pinned = geodata.segment("auto"), geodata.segment("pinned")
    # Nearest per variable: the east gauge for tide, the west gauge for rain; the far
    # station measures both but is never nearest.
    assert (auto.tide_station, auto.rain_station) == ("tide_east", "rain_west")
    # An explicit station wins over the nearest one.
    assert (pinned.tide_station, pinned.rain_station) == ("both_far", "rain_west")


def test_rain_gauge_nearer_than_tide_gauge_is_not_used_for_tide(tmp_path, stations_file):
    road_west = [[105.11, 9.18], [105.11, 9.181]]  # right next to the rain gauge
    path = write_json(tmp_path / "segments.geojson", collection([segment(coords=road_west)]))
    [road] = load_geodata(path, stations_file).segments
    assert road.tide_station == "tide_east"
    assert road.rain_station == "rain_west"


def test_length_of_a_one_km_north_south_line_is_in_metres(tmp_path, stations_file):
    # 1 km of latitude is about 1/110.6 degree near 9° N.
    line = [[105.15, 9.17], [105.15, 9.17 + 1000 / 110_590]]
    path = write_json(tmp_path / "segments.geojson", collection([segment(coords=line)]))
    [road] = load_geodata(path, stations_file).segments
    assert road.length_m == pytest.approx(1000, rel=0.02)


def test_check_prints_the_broken_feature_and_exits_1(project):
    segments_path = project.parent.parent / "geodata" / "segments.geojson"
    doc = json.loads(segments_path.read_text(encoding="utf-8"))
    doc["features"][3]["properties"]["crest_m"] = "high"
    broken_id = doc["features"][3]["properties"]["id"]
    segments_path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(project), "check"])
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    assert f"segments.geojson: feature #3 (id={broken_id}): `crest_m` must be a number" in line
    assert "Traceback" not in result.output
