"""Benchmark `export maintenance` to XLSX and GeoJSON on a synthetic year of 10,000 segments."""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from bench_pipeline import build_province  # the same synthetic province

from floodwatch.db.store import Store
from floodwatch.exports.tables import (
    maintenance_events_filter,
    maintenance_notes,
    maintenance_rows,
    write_maintenance_geojson,
    write_maintenance_xlsx,
)

YEAR = datetime(2025, 1, 1, tzinfo=UTC) - timedelta(hours=7)  # local 1 January 2025
CAUSES = ("tide", "rain", "compound")
TARGET_S, TARGET_MB = 60, 300


def as_text(when: datetime) -> str:
    """A time as the store keeps it on SQLite (naive UTC text)."""
    return when.strftime("%Y-%m-%d %H:%M:%S.%f")


def build_database(path: Path, n_segments: int, n_changes: int, seed: int = 5) -> tuple[int, int]:
    """A migrated SQLite store with segments, a year of events and their changes."""
    geodata = build_province(n_segments, 200)
    store = Store(f"sqlite:///{path}")
    store.sync_geodata(geodata)
    store.close()
    rng = np.random.default_rng(seed)
    n_events = n_changes // 10  # opened, 3 level changes, peak, 3 receding, closed...
    segment = rng.integers(0, n_segments, n_events)
    opened_h = np.sort(rng.uniform(0, 365 * 24, n_events))
    duration_h = rng.gamma(2.0, 2.0, n_events) + 0.5
    peak = rng.gamma(2.0, 0.08, n_events).round(3) + 0.1
    cause = rng.integers(0, 3, n_events)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    with conn:
        events = []
        for i in range(n_events):
            opened = YEAR + timedelta(hours=float(opened_h[i]))
            closed = opened + timedelta(hours=float(duration_h[i]))
            level = 1 + int(peak[i] >= 0.3) + int(peak[i] >= 0.5)
            events.append(
                (i + 1, f"seg{segment[i]:06d}", f"u{segment[i] % 20:02d}", "observed", "closed",
                 as_text(opened), as_text(closed), 0, level, 0.0, float(peak[i]),
                 as_text(opened + (closed - opened) / 3), 1, CAUSES[cause[i]], "receded",
                 as_text(closed), 0)
            )  # fmt: skip
        conn.executemany(
            "INSERT INTO event (id, segment_id, unit, kind, status, opened_at, closed_at, level,"
            " max_level, depth_m, peak_depth_m, peak_at, causes, cause, close_reason,"
            " updated_at, false_alarm) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            events,
        )
        del events

        def changes():
            per_event = n_changes // n_events
            for i in range(n_events):
                opened = YEAR + timedelta(hours=float(opened_h[i]))
                step = timedelta(hours=float(duration_h[i]) / per_event)
                for k in range(per_event):
                    yield (i + 1, as_text(opened + k * step), "level", "flooded", 1, 0.1, "")

        conn.executemany(
            "INSERT INTO event_change (event_id, at, change, status, level, depth_m, note)"
            " VALUES (?,?,?,?,?,?,?)",
            changes(),
        )
    conn.close()
    return n_events, n_changes


def export_once(db: str, n_segments: int, fmt: str, out: str, traced: bool) -> dict:
    """In a fresh process: one maintenance export of the whole year; time and memory."""
    geodata = build_province(n_segments, 200)
    store = Store(f"sqlite:///{db}", run_migrations=False)
    start, end = YEAR, YEAR + timedelta(days=365)
    rss_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    rows = maintenance_rows(store, start, end, geodata)
    with open(out, "wb") as stream:
        if fmt == "xlsx":
            notes = maintenance_notes(
                start, end, ZoneInfo("Asia/Ho_Chi_Minh"), "bench", datetime.now(UTC)
            )
            events = store.events.stream(maintenance_events_filter(start, end))
            written, n_events = write_maintenance_xlsx(rows, events, stream, notes)
        else:
            written, n_events = write_maintenance_geojson(rows, geodata, stream), 0
    elapsed = time.perf_counter() - started
    traced_mb = tracemalloc.get_traced_memory()[1] / 2**20 if traced else None
    store.close()
    return {
        "seconds": elapsed,
        "rows": written,
        "events": n_events,
        "traced_mb": traced_mb,
        "rss_before_mb": rss_before_mb,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "size_mb": Path(out).stat().st_size / 2**20,
    }


def main(argv: list[str] | None = None) -> int:
    """Build the synthetic year once, then time each export in fresh processes."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="floodwatch-bench-") as tmp:
        db = Path(tmp) / "year.db"
        started = time.perf_counter()
        n_events, n_changes = build_database(db, args.segments, args.changes)
        print(
            f"\nSynthetic year: {args.segments:,} segments, {n_events:,} events, "
            f"{n_changes:,} event changes (built in {time.perf_counter() - started:.1f} s)"
        )
        head = ("format", "run", "seconds", "rows", "events", "file_MB", "traced_MB", "maxrss_MB")
        print("".join(f"{h:>11}" for h in head))
        for fmt in ("xlsx", "geojson"):
            for traced in (False, True):
                with spawn.Pool(1) as pool:
                    r = pool.apply(
                        export_once, (str(db), args.segments, fmt, f"{tmp}/out.{fmt}", traced)
                    )
                traced_mb = f"{r['traced_mb']:.0f}" if traced else "-"
                cells = [fmt, "traced" if traced else "timed", f"{r['seconds']:.1f}",
                         f"{r['rows']:,}", f"{r['events']:,}", f"{r['size_mb']:.1f}",
                         traced_mb, f"{r['maxrss_mb']:.0f}"]  # fmt: skip
                print("".join(f"{c:>11}" for c in cells))
                if not traced:
                    ok = r["seconds"] < TARGET_S and r["maxrss_mb"] < TARGET_MB
                    print(
                        f"{'':>11}target < {TARGET_S} s and < {TARGET_MB} MB: "
                        f"{'met' if ok else 'MISSED'} (RSS before export "
                        f"{r['rss_before_mb']:.0f} MB)"
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
