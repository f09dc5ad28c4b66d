"""Make geodata/outline.geojson: the coast of Cà Mau from Natural Earth's 10 m land.

Source: the npm package world-atlas 2.0.2 (ISC licence, by Mike Bostock), whose
land-10m.json is Natural Earth's 1:10m land polygons (public domain) as TopoJSON.
Reproduce with:

    npm pack world-atlas@2.0.2 && tar -xzf world-atlas-2.0.2.tgz
    python geodata/tools/make_outline.py package/land-10m.json > geodata/outline.geojson

It decodes the TopoJSON (delta-encoded, quantized arcs), clips the land to the
province's box and writes two kinds of feature: `land` (the clipped polygons,
drawn filled) and `coast` (the shoreline alone, without the box's cut edges).
Coordinates are rounded to 4 decimals (about 10 m; the source's grid is coarser).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import shapely
from shapely.geometry import MultiPolygon, Polygon, box, mapping

# Cà Mau province and its sea, lon/lat (WGS84).
BBOX = (104.3, 8.3, 105.7, 9.7)
DIGITS = 4


def decode_arcs(topology: dict) -> list[list[tuple[float, float]]]:
    """Every arc as absolute lon/lat points (TopoJSON quantized, delta-encoded arcs)."""
    (sx, sy), (tx, ty) = topology["transform"]["scale"], topology["transform"]["translate"]
    arcs = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)
    return arcs


def ring(indices: list[int], arcs: list[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    """A closed ring from arc indices (a negative index ~i is arc i reversed)."""
    points: list[tuple[float, float]] = []
    for index in indices:
        arc = arcs[index] if index >= 0 else arcs[~index][::-1]
        points.extend(arc if not points else arc[1:])  # arcs share their end points
    return points


def polygons(topology: dict, name: str) -> list[Polygon]:
    """The polygons of one object of the topology."""
    arcs = decode_arcs(topology)
    found = []
    for geometry in topology["objects"][name]["geometries"]:
        kind, coords = geometry["type"], geometry.get("arcs", [])
        parts = [coords] if kind == "Polygon" else coords if kind == "MultiPolygon" else []
        for rings in parts:
            shell, *holes = (ring(r, arcs) for r in rings)
            found.append(Polygon(shell, holes))
    return found


def rounded(geom):
    """The geometry with coordinates rounded to DIGITS decimals."""
    return shapely.set_precision(geom, 10**-DIGITS)


def outline(topology: dict) -> dict:
    """The FeatureCollection of the clipped land and its coast."""
    frame = box(*BBOX)
    candidates = [p for p in polygons(topology, "land") if p.intersects(frame)]
    land = shapely.make_valid(shapely.union_all(candidates)).intersection(frame)
    land = rounded(land)
    coast = rounded(land.boundary.difference(frame.exterior.buffer(1e-6)))
    if isinstance(land, Polygon):
        land = MultiPolygon([land])
    source = "Natural Earth 1:10m land (public domain), via world-atlas 2.0.2 land-10m.json"
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"kind": "land", "source": source},
             "geometry": mapping(land)},
            {"type": "Feature", "properties": {"kind": "coast", "source": source},
             "geometry": mapping(shapely.line_merge(coast))},
        ],
    }  # fmt: skip


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: make_outline.py LAND-10M.JSON > outline.geojson", file=sys.stderr)
        return 2
    topology = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    json.dump(outline(topology), sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
