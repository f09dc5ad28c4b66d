"""Benchmark whole processes: CLI start-up, and a one-cycle replay against plain numpy.

Every figure is a separate process, timed from outside (wall clock, median of
several runs) with its peak RSS from the kernel (`RUSAGE_CHILDREN` read before
and after each child: the high-water mark of the largest child so far), so
imports, start-up and shutdown count as a user sees them.

- **Start-up**: `python -c "import click"` (the floor of any click program),
  then `floodwatch --help`, `floodwatch status` and `floodwatch events` on a
  small project (the shipped config and geodata, one replayed day).
- **One-cycle replay**: a synthetic province of N segments (GeoJSON), its
  stations, and a CSV of one forecast issue (72 h of hourly levels and rain at
  every station) that replays as exactly one cycle: `floodwatch replay -q` as a
  process, against a plain numpy script reading the same three files and
  computing the same depths (tide overtopping plus rain ponding, hourly, with
  the same drainage and blocked-outfall rules) and the first flooded step of
  each segment.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
FLOODWATCH = [PYTHON, "-m", "floodwatch"]
T0 = datetime(2025, 11, 5, 0, tzinfo=UTC)

NUMPY_BASELINE = r'''
"""The same depth work as a one-cycle replay, in plain numpy (no floodwatch)."""
import csv, json, sys
from datetime import datetime
import numpy as np

segments_path, stations_path, readings_path = sys.argv[1:4]
stations = [f["properties"] for f in json.load(open(stations_path, encoding="utf-8"))["features"]]
tide = [s["id"] for s in stations if "water_level" in s["measures"]]
rain = [s["id"] for s in stations if "rainfall" in s["measures"]]
t_index, r_index = {s: i for i, s in enumerate(tide)}, {s: i for i, s in enumerate(rain)}
props = [f["properties"] for f in json.load(open(segments_path, encoding="utf-8"))["features"]]
crest = np.array([p["crest_m"] for p in props])
drain = np.array([p.get("drain_mm_h", 30.0) for p in props])
outfall = np.array([p.get("outfall_m", np.nan) for p in props])
t_idx = np.array([t_index[p["tide_station"]] for p in props])
r_idx = np.array([r_index[p["rain_station"]] for p in props])
times, level, rainfall = [], {}, {}
with open(readings_path, encoding="utf-8") as handle:
    for row in csv.DictReader(handle):
        when = int(datetime.fromisoformat(row["time"]).timestamp())
        target = level if row["variable"] == "water_level" else rainfall
        target[(row["station"], when)] = float(row["value"])
        times.append(when)
grid = np.arange(min(times), max(times) + 1, 3600)
lv = np.full((len(tide), len(grid)), np.nan)
rn = np.zeros((len(rain), len(grid)))
col = {t: k for k, t in enumerate(grid.tolist())}
for (station, when), value in level.items():
    lv[t_index[station], col[when]] = value
for (station, when), value in rainfall.items():
    rn[r_index[station], col[when]] = value
level_ts = lv.T[:, t_idx].astype(np.float32)
tide_m = np.maximum(np.nan_to_num(level_ts - crest.astype(np.float32)), 0)
store = np.zeros(len(props), np.float32)
rain_m = np.empty_like(tide_m)
full, blocked = drain.astype(np.float32), (drain * 0.25).astype(np.float32)
with np.errstate(invalid="ignore"):
    for t in range(len(grid)):
        store += rn.T[t][r_idx]
        store -= np.where(level_ts[t] > outfall, blocked, full)
        np.maximum(store, 0, out=store)
        rain_m[t] = store * np.float32(4.0 / 1000)
depth = tide_m + rain_m
wet = depth >= 0.1
first = np.where(wet.any(axis=0), wet.argmax(axis=0), -1)
print(int((first >= 0).sum()), "segments flood within the horizon")
'''


def run(cmd: list[str], cwd: Path, env: dict | None = None) -> tuple[float, float]:
    """Wall seconds of one child process, and the peak RSS (MB) of any child so far."""
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def median_of(runs: int, cmd: list[str], cwd: Path, env=None) -> float:
    """Median wall seconds over `runs` runs."""
    return statistics.median(run(cmd, cwd, env)[0] for _ in range(runs))


def small_project(folder: Path) -> Path:
    """The shipped config and geodata with one replayed day; returns the config path."""
    for name in ("config", "geodata"):
        shutil.copytree(ROOT / name, folder / name)
    config = folder / "config" / "floodwatch.toml"
    text = config.read_text(encoding="utf-8")
    for source in ("rain", "sea_level"):  # no network here: polls would only wait
        text = text.replace(f"[sources.{source}]\n", f"[sources.{source}]\nenabled = false\n")
    config.write_text(text, encoding="utf-8")
    day = ROOT / "tests" / "data" / "replay" / "spring_tide_dec2024.csv"
    run([*FLOODWATCH, "--config", str(config), "replay", "-q", str(day)], folder)
    return config


def province(folder: Path, n_segments: int, n_stations: int = 100, seed: int = 5):
    """Segments, stations and one forecast issue as files; returns their paths."""
    import numpy as np

    rng = np.random.default_rng(seed)
    stations = []
    for i in range(n_stations):
        measures = ["water_level"] if i % 2 == 0 else ["rainfall"]
        stations.append({
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [float(rng.uniform(104.8, 105.5)),
                                                          float(rng.uniform(8.6, 9.5))]},
            "properties": {"id": f"st{i:03d}", "name": f"Trạm {i}", "measures": measures},
        })  # fmt: skip
    tide_ids = [
        s["properties"]["id"] for s in stations if s["properties"]["measures"][0] == "water_level"
    ]  # noqa: E501
    rain_ids = [
        s["properties"]["id"] for s in stations if s["properties"]["measures"][0] == "rainfall"
    ]  # noqa: E501
    features = []
    for k in range(n_segments):
        lon, lat = float(rng.uniform(104.8, 105.5)), float(rng.uniform(8.6, 9.5))
        features.append({
            "type": "Feature",
            "geometry": {"type": "LineString",
                         "coordinates": [[lon, lat], [lon + 0.002, lat + 0.001]]},
            "properties": {
                "id": f"s{k:06d}", "name": f"Đường {k}", "ward": f"Phường {k % 40}",
                "unit": f"u{k % 20:02d}", "crest_m": round(float(rng.uniform(0.7, 1.3)), 3),
                "tide_station": tide_ids[k % len(tide_ids)],
                "rain_station": rain_ids[k % len(rain_ids)],
                "drain_mm_h": 30, "outfall_m": 0.7,
            },
        })  # fmt: skip
    segments_path = folder / "segments.geojson"
    stations_path = folder / "stations.geojson"
    segments_path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    stations_path.write_text(json.dumps({"type": "FeatureCollection", "features": stations}))
    rows = ["time,station,variable,value,kind,issued"]
    issued = T0.isoformat()
    for sid in tide_ids:
        phase = rng.uniform(0, 12)
        for h in range(0, 73):
            level = 0.85 + 0.45 * math.cos(2 * math.pi * (h - phase) / 12.42)
            when = (T0 + timedelta(hours=h)).isoformat()
            rows.append(f"{when},{sid},water_level,{level:.3f},forecast,{issued}")
    for sid in rain_ids:
        for h in range(1, 73):
            mm = 40.0 if h in (20, 21) else 0.0
            when = (T0 + timedelta(hours=h)).isoformat()
            rows.append(f"{when},{sid},rainfall,{mm:.1f},forecast,{issued}")
    readings_path = folder / "forecast.csv"
    readings_path.write_text("\n".join(rows) + "\n")
    units = "".join(f'[[units]]\nid = "u{i:02d}"\nname = "UBND {i}"\n\n' for i in range(20))
    config = folder / "floodwatch.toml"
    config.write_text(
        f'[storage]\ndatabase_url = "sqlite:///{folder / "replay.db"}"\n\n'
        f'[geodata]\nsegments = "{segments_path}"\nstations = "{stations_path}"\n\n{units}'
    )
    return config, segments_path, stations_path, readings_path


def main(argv: list[str] | None = None) -> int:
    """Run both benchmarks and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per start-up figure")
    parser.add_argument("--segments", type=int, default=20_000)
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="floodwatch-startup-") as tmp:
        folder = Path(tmp)
        config = small_project(folder)
        click_s = median_of(args.runs, [PYTHON, "-c", "import click"], folder, env)
        print(f"\nStart-up (median of {args.runs}, wall seconds)")
        print(f"{'command':<28}{'seconds':>10}{'x import click':>16}")
        floor = 'python -c "import click"'
        print(f"{floor:<28}{click_s:>10.3f}{1.0:>16.1f}")
        for label, cmd in (
            ("floodwatch --help", ["--help"]),
            ("floodwatch status", ["--config", str(config), "status"]),
            ("floodwatch events", ["--config", str(config), "events"]),
        ):
            seconds = median_of(args.runs, [*FLOODWATCH, *cmd], folder, env)
            print(f"{label:<28}{seconds:>10.3f}{seconds / click_s:>16.1f}")

    with tempfile.TemporaryDirectory(prefix="floodwatch-replay-") as tmp:
        folder = Path(tmp)
        config, segments, stations, readings = province(folder, args.segments)
        script = folder / "baseline.py"
        script.write_text(NUMPY_BASELINE)
        # Each in a fresh process; RSS from a child of its own so the figures do not mix.
        base = _isolated([PYTHON, str(script), str(segments), str(stations), str(readings)],
                         folder, env)  # fmt: skip
        fw = _isolated([*FLOODWATCH, "--config", str(config), "replay", "-q", str(readings)],
                       folder, env)  # fmt: skip
        print(f"\nOne-cycle replay, {args.segments:,} segments, 100 stations, 72 h")
        print(f"{'process':<28}{'seconds':>10}{'peak RSS MB':>14}{'x numpy':>10}")
        print(f"{'plain numpy, same files':<28}{base[0]:>10.2f}{base[1]:>14.0f}{1.0:>10.1f}")
        print(f"{'floodwatch replay':<28}{fw[0]:>10.2f}{fw[1]:>14.0f}{fw[0] / base[0]:>10.1f}")
    return 0


def _isolated(cmd: list[str], cwd: Path, env: dict) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one command run through a fresh measuring child."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True)\n"
        "w = time.perf_counter() - t\n"
        "assert r.returncode in (0, 3), r.stderr.decode()[-2000:]\n"
        "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
    )
    out = subprocess.run([PYTHON, "-c", probe, *cmd], cwd=cwd, env=env, capture_output=True,
                         text=True)  # fmt: skip
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    wall, rss = out.stdout.split()
    return float(wall), float(rss)


if __name__ == "__main__":
    sys.exit(main())
