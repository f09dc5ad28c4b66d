"""Benchmark reading ingest and the assess+events cycle on a synthetic Cà Mau province."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import resource
import sqlite3
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import shapely
from sqlalchemy import create_engine, text

from floodwatch.config import parse_settings
from floodwatch.core.geo import Geodata, Segment, Station
from floodwatch.core.readings import Kind, Reading, Variable
from floodwatch.db.store import Store
from floodwatch.service import cycle as pipeline_module
from floodwatch.service.cycle import Pipeline

AT = datetime(2025, 11, 5, 6, tzinfo=UTC)  # a spring-tide morning (lunar 15th)
LAT, LON = (8.6, 9.5), (104.8, 105.5)
N_UNITS = 20
HOUR = timedelta(hours=1)
RAW_SCHEMA = """
CREATE TABLE reading (
    id INTEGER NOT NULL PRIMARY KEY, station VARCHAR NOT NULL, variable VARCHAR NOT NULL,
    time DATETIME NOT NULL, kind VARCHAR NOT NULL, issued DATETIME NOT NULL,
    value FLOAT NOT NULL, source VARCHAR NOT NULL,
    CONSTRAINT uq_reading UNIQUE (station, variable, time, kind, issued));
CREATE INDEX ix_reading_time ON reading (time);
"""
RAW_UPSERT = (
    "INSERT INTO reading (station, variable, time, kind, issued, value, source) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (station, variable, time, kind, issued) "
    "DO UPDATE SET value = excluded.value, source = excluded.source"
)


def build_province(n_segments: int, n_stations: int, seed: int = 7) -> Geodata:
    """Stations (even: water level, odd: rainfall) and short road segments linked to the nearest."""
    rng = np.random.default_rng(seed)
    st_lon, st_lat = rng.uniform(*LON, n_stations), rng.uniform(*LAT, n_stations)
    stations = {}
    for i in range(n_stations):
        tide = i % 2 == 0
        stations[f"st{i:03d}"] = Station(
            id=f"st{i:03d}",
            name=f"Trạm {i}",
            measures=frozenset({Variable.WATER_LEVEL if tide else Variable.RAINFALL}),
            lon=float(st_lon[i]),
            lat=float(st_lat[i]),
            alarm_m=(0.65, 0.75, 0.85) if tide else (None, None, None),
        )
    x, y = rng.uniform(*LON, n_segments), rng.uniform(*LAT, n_segments)
    angle, length = rng.uniform(0, 2 * math.pi, n_segments), rng.uniform(0.001, 0.005, n_segments)
    ends = np.stack([x + length * np.cos(angle), y + length * np.sin(angle)], axis=1)
    lines = shapely.linestrings(np.stack([np.stack([x, y], axis=1), ends], axis=1))
    ids = np.array(list(stations))
    nearest = {}
    for offset in (0, 1):  # 0: tide stations, 1: rain stations
        sx, sy = st_lon[offset::2], st_lat[offset::2]
        found = [
            np.argmin((x[c : c + 10_000, None] - sx) ** 2 + (y[c : c + 10_000, None] - sy) ** 2, 1)
            for c in range(0, n_segments, 10_000)
        ]
        nearest[offset] = ids[offset::2][np.concatenate(found)]
    crest = rng.uniform(0.7, 1.3, n_segments).round(3)
    segments = [
        Segment(
            id=f"seg{i:06d}",
            name=f"Đường số {i}",
            ward=f"Phường {i % 60}",
            unit=f"u{i % N_UNITS:02d}",
            crest_m=float(crest[i]),
            tide_station=str(nearest[0][i]),
            rain_station=str(nearest[1][i]),
            outfall_m=float(crest[i] - 0.4) if i % 2 else None,
            length_m=float(length[i] * 110_000),
            geometry=lines[i],
        )
        for i in range(n_segments)
    ]
    return Geodata(segments=segments, stations=stations)


def make_settings():
    """Default assessment (60 min steps, 72 h horizon) with the synthetic units."""
    units = [{"id": f"u{i:02d}", "name": f"UBND phường {i}"} for i in range(N_UNITS)]
    return parse_settings({"assessment": {"horizon_hours": 72}, "units": units}, "<bench>")


def tide_curve(hours: np.ndarray, phase: float, peak_m: float, window: np.ndarray) -> np.ndarray:
    """Mixed semi-diurnal/diurnal tide (m) whose highest value in `window` is `peak_m`."""

    def raw(h: np.ndarray) -> np.ndarray:
        return 0.6 * np.cos(2 * np.pi * (h - phase) / 12.42) + 0.4 * np.cos(
            2 * np.pi * (h - 2 * phase) / 23.93
        )

    return peak_m + 0.9 * (raw(hours) - raw(window).max())


def cycle_readings(
    geodata: Geodata, history_h: int = 72, seed: int = 11, gauge_minutes: int = 60
) -> list[Reading]:
    """Observed history up to AT+1h and two forecast issues covering both benchmark cycles.

    With `gauge_minutes` under 60, water-level gauges also report between the
    hours over the last 12 h (as real gauges do every 10-30 minutes).
    """
    rng = np.random.default_rng(seed)
    hours = np.arange(-history_h, 76)  # relative to AT; forecast reach 72 h + 1 cycle + margin
    window = np.arange(-12, 74)
    times = [AT + int(h) * HOUR for h in hours]
    readings = []
    for i, station in enumerate(geodata.stations.values()):
        if Variable.WATER_LEVEL in station.measures:
            variable = Variable.WATER_LEVEL
            level = tide_curve(hours, rng.uniform(0, 12), rng.uniform(0.78, 0.92), window)
            observed = level + rng.normal(0, 0.03, len(hours))
        else:
            variable = Variable.RAINFALL
            level = rng.exponential(1.0, len(hours)) * (rng.random(len(hours)) < 0.3)
            if i % 7 == 1:  # a heavy burst somewhere in the horizon
                start = int(rng.integers(history_h, len(hours) - 4))
                level[start : start + 3] = 45.0
            observed = level
        if variable == Variable.WATER_LEVEL and gauge_minutes < 60:
            sub = np.arange(-12 * 60, 61, gauge_minutes) / 60.0
            sub = sub[sub % 1 != 0]  # the whole hours come below
            phase, peak = rng.uniform(0, 12), rng.uniform(0.78, 0.92)
            extra = tide_curve(sub, phase, peak, window) + rng.normal(0, 0.03, len(sub))
            for h, value in zip(sub, extra, strict=True):
                when = AT + timedelta(hours=float(h))
                readings.append(Reading(station.id, variable, when, round(float(value), 3)))
        for h, t, fc, ob in zip(hours, times, level, observed, strict=True):
            if h <= 1:
                readings.append(Reading(station.id, variable, t, round(float(ob), 3)))
            for issued_h in (-30, -6):
                if issued_h - 15 <= h:
                    readings.append(
                        Reading(station.id, variable, t, round(float(fc), 3), Kind.FORECAST,
                                AT + issued_h * HOUR)
                    )  # fmt: skip
    return readings


def ingest_readings(n: int, geodata: Geodata) -> list[Reading]:
    """About `n` observed readings: every station hourly, going back from AT."""
    rng = np.random.default_rng(3)
    stations = list(geodata.stations.values())
    n_hours = -(-n // len(stations))
    values = rng.uniform(0, 2, (len(stations), n_hours)).round(3)
    return [
        Reading(s.id, next(iter(s.measures)), AT - h * HOUR, float(values[i, h]))
        for i, s in enumerate(stations)
        for h in range(n_hours)
    ][:n]


def raw_executemany(path: Path, readings: list[Reading]) -> float:
    """Seconds to upsert the readings with plain sqlite3 (WAL, one transaction)."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(RAW_SCHEMA)
    started = time.perf_counter()

    def as_text(when: datetime) -> str:
        return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    with conn:
        conn.executemany(
            RAW_UPSERT,
            (
                (r.station, str(r.variable), as_text(r.time), str(r.kind), as_text(r.issued_at),
                 r.value, "bench")
                for r in readings
            ),
        )  # fmt: skip
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


@contextlib.contextmanager
def fresh_database(url: str | None, folder: Path):
    """A URL of an empty database: a new SQLite file, or a new schema on PostgreSQL."""
    if url is None:
        yield f"sqlite:///{folder / f'{uuid.uuid4().hex[:8]}.db'}"
        return
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def bench_ingest(args: argparse.Namespace, folder: Path) -> list[tuple[str, float]]:
    """Rows per second of Store.readings.upsert per backend, and of plain executemany."""
    readings = ingest_readings(args.readings, build_province(10, args.stations))
    figures = [
        ("sqlite3.executemany", len(readings) / raw_executemany(folder / "raw.db", readings))
    ]
    for label, url in (("Store, SQLite", None), ("Store, PostgreSQL", args.database_url)):
        if label.endswith("PostgreSQL") and url is None:
            continue
        with fresh_database(url, folder) as db_url:
            store = Store(db_url)
            started = time.perf_counter()
            store.readings.upsert(readings, "bench")
            figures.append((label, len(readings) / (time.perf_counter() - started)))
            store.close()
    return figures


class Phases:
    """Wall time per cycle phase, by wrapping the functions a cycle calls."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, owner: object, name: str, phase: str) -> None:
        """Replace owner.name by a timed wrapper charging `phase`."""
        inner = getattr(owner, name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - started

        setattr(owner, name, timed)


def bench_cycle(
    n_segments: int, n_stations: int, url: str | None, folder: str, gauge_minutes: int = 60
) -> dict:
    """In a fresh process: two timed cycles, then the same two under tracemalloc."""
    geodata = build_province(n_segments, n_stations)
    with fresh_database(url, Path(folder)) as db_url:
        store = Store(db_url)
        store.sync_geodata(geodata)
        store.readings.upsert(cycle_readings(geodata, gauge_minutes=gauge_minutes), "bench")
        pipe = Pipeline(make_settings(), geodata, store)
        phases = Phases()
        phases.wrap(store.readings, "arrays", "load")
        for name in ("level_series", "rain_series"):
            phases.wrap(pipeline_module, name, "load")
        for name in ("assess", "outlook", "observed_moment"):
            if hasattr(pipeline_module, name):  # observed_moment: since issue 9
                phases.wrap(pipeline_module, name, "assess")
        phases.wrap(store.events, "record_cycle", "write")
        rss_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows = []
        for label, at in (("first", AT), ("steady", AT + HOUR)):
            phases.seconds.clear()
            started = time.perf_counter()
            result = pipe.cycle(at)
            total = time.perf_counter() - started
            split = dict(phases.seconds)
            split["events"] = total - sum(split.values())
            changes = sum(1 for c in result.changes if c.change)
            rows.append(dict(cycle=label, total_s=total, **split, changes=changes,
                             flooded=result.flooded, forecast=result.forecast))  # fmt: skip
        maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with store.engine.begin() as conn:  # same state again for the traced run
            for table in ("event_change", "alert", "event", "cycle", "forecast_issue"):
                conn.execute(text(f"DELETE FROM {table}"))
        tracemalloc.start()
        for row, at in zip(rows, (AT, AT + HOUR), strict=True):
            tracemalloc.reset_peak()
            pipe.cycle(at)
            row["traced_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        store.close()
    return {"rows": rows, "rss_before_mb": rss_before_mb, "maxrss_mb": maxrss_mb}


def open_meteo_text(n_points: int = 200, n_hours: int = 240) -> str:
    """A synthetic Open-Meteo forecast reply (JSON text): n_points locations x n_hours."""
    rng = np.random.default_rng(17)
    first = np.datetime64("2025-11-01T00:00")
    times = [str(first + np.timedelta64(h, "h")) for h in range(n_hours)]
    rain = rng.exponential(1.0, (n_points, n_hours)) * (rng.random((n_points, n_hours)) < 0.3)
    return json.dumps(
        [
            {
                "location_id": i,
                "latitude": 9.0 + i * 0.001,
                "longitude": 105.0,
                "utc_offset_seconds": 0,
                "timezone": "GMT",
                "hourly_units": {"time": "iso8601", "precipitation": "mm"},
                "hourly": {"time": times, "precipitation": rain[i].round(1).tolist()},
            }
            for i in range(n_points)
        ]
    )


def bench_open_meteo_parse(n_points: int = 200, n_hours: int = 240) -> tuple[int, float, float]:
    """Rows, and best-of-3 seconds to parse one Open-Meteo reply and then to validate it."""
    from floodwatch.core.validate import ValidationSettings, validate
    from floodwatch.sources.open_meteo import parse_forecast

    text = open_meteo_text(n_points, n_hours)
    stations = [f"p{i:03d}" for i in range(n_points)]
    now = datetime(2025, 11, 3, 12, 30, tzinfo=UTC)
    limits = ValidationSettings()
    parse_best = check_best = math.inf
    rows = 0
    for _ in range(3):
        started = time.perf_counter()
        result = parse_forecast(json.loads(text), stations, now)
        parsed = time.perf_counter()
        validate(result.readings, now=now, horizon=timedelta(hours=72), limits=limits)
        parse_best = min(parse_best, parsed - started)
        check_best = min(check_best, time.perf_counter() - parsed)
        rows = len(result.readings)
    return rows, parse_best, check_best


def main(argv: list[str] | None = None) -> int:
    """Parse options, run the benchmarks and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", default="10000,100000", help="comma-separated sizes")
    parser.add_argument("--stations", type=int, default=200)
    parser.add_argument("--readings", type=int, default=200_000, help="rows for the ingest part")
    parser.add_argument("--database-url", help="also bench this (empty) PostgreSQL database")
    parser.add_argument(
        "--gauge-minutes", type=int, default=60,
        help="water-level gauges report this often (under 60: between the grid's hours too)",
    )  # fmt: skip
    parser.add_argument("--cycles-only", action="store_true", help="skip Open-Meteo and ingest")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.segments.split(",") if s.strip()]
    if not args.cycles_only:
        rows, parse_s, check_s = bench_open_meteo_parse()
        print("\nOpen-Meteo: one reply of 200 points x 240 hours")
        print(f"{'rows':<22}{rows:>12,}")
        print(f"{'parse s':<22}{parse_s:>12.3f}   (json.loads + parse_forecast)")
        print(f"{'validate s':<22}{check_s:>12.3f}")
        print(f"{'total s':<22}{parse_s + check_s:>12.3f}   (target < 0.5)")
    with tempfile.TemporaryDirectory(prefix="floodwatch-bench-") as tmp:
        folder = Path(tmp)
        if not args.cycles_only:
            figures = bench_ingest(args, folder)
            baseline = figures[0][1]
            print(
                f"\nIngest: {args.readings:,} readings, {args.stations} stations, one transaction"
            )
            print(f"{'writer':<22}{'rows/s':>12}{'vs executemany':>16}")
            for label, rate in figures:
                print(f"{label:<22}{rate:>12,.0f}{rate / baseline:>16.2f}")

        backends = [("SQLite", None)] + (
            [("PostgreSQL", args.database_url)] * bool(args.database_url)
        )
        print(
            f"\nCycle: {args.stations} stations, 72 h horizon, 60 min steps (first, then +1 h), "
            f"gauges every {args.gauge_minutes} min"
        )
        head = ("backend", "segments", "cycle", "total_s", "load", "assess", "events", "write",
                "changes", "flooded", "forecast", "traced_MB", "maxrss_MB")  # fmt: skip
        print("".join(f"{h:>10}" for h in head))
        spawn = multiprocessing.get_context("spawn")
        for name, url in backends:
            for n in sizes:
                with spawn.Pool(1) as pool:
                    out = pool.apply(bench_cycle, (n, args.stations, url, tmp, args.gauge_minutes))
                for r in out["rows"]:
                    cells = [name, f"{n:,}", r["cycle"]]
                    cells += [
                        f"{r[k]:.3f}" for k in ("total_s", "load", "assess", "events", "write")
                    ]
                    cells += [f"{r['changes']:,}", f"{r['flooded']:,}", f"{r['forecast']:,}"]
                    cells += [f"{r['traced_mb']:.0f}", f"{out['maxrss_mb']:.0f}"]
                    print("".join(f"{c:>10}" for c in cells))
                print(f"{'':>10}(RSS high-water before the cycles: {out['rss_before_mb']:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
