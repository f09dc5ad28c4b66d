"""What keeping each cycle's forecasts for scoring costs a cycle (db/forecasts.py).

On bench_pipeline's synthetic province (a spring-tide morning: thousands of roads
forecast to flood), six hourly cycles run on fresh SQLite databases in the same process:
as shipped, and with the forecast rows not written (the baseline), interleaved,
best of three each. Prints, per cycle, the rows written, the cycle's time with
and without, and the ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench_pipeline import AT, HOUR, build_province, cycle_readings, make_settings
from sqlalchemy import text

import floodwatch.db.events as events_module
from floodwatch.db.store import Store
from floodwatch.service.cycle import Pipeline


def run(geodata, folder: Path, name: str, keep: bool, cycles: int) -> list[tuple[int, float]]:
    """(rows written, cycle seconds) per cycle, keeping the forecasts or not."""
    store = Store(f"sqlite:///{folder / name}.db")
    store.sync_geodata(geodata)
    store.readings.upsert(cycle_readings(geodata), "bench")
    pipe = Pipeline(make_settings(), geodata, store)
    shipped = events_module.record_forecasts
    if not keep:
        events_module.record_forecasts = lambda conn, at, forecasts: 0
    out, before = [], 0
    try:
        for step in range(cycles):
            started = time.perf_counter()
            pipe.cycle(AT + step * HOUR)
            seconds = time.perf_counter() - started
            with store.engine.connect() as conn:
                total = conn.execute(text("SELECT count(*) FROM forecast_issue")).scalar()
            out.append((total - before, seconds))
            before = total
    finally:
        events_module.record_forecasts = shipped
        store.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", type=int, default=20_000)
    parser.add_argument("--cycles", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many, interleaved")
    args = parser.parse_args()
    geodata = build_province(args.segments, 200)
    runs: dict[bool, list] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="floodwatch-bench-") as tmp:
        for repeat in range(args.repeats):
            for keep in (True, False):
                runs[keep].append(run(geodata, Path(tmp), f"{keep}{repeat}", keep, args.cycles))
    kept, baseline = (
        [(rows[0][0], min(r[1] for r in rows)) for rows in zip(*runs[keep], strict=True)]
        for keep in (True, False)
    )
    print(f"\nForecasts kept for scoring: {args.segments:,} roads, hourly cycles, SQLite")
    print(f"{'cycle':>6}{'rows':>8}{'kept s':>10}{'without s':>11}{'ratio':>8}")
    for n, ((rows, with_s), (_, without_s)) in enumerate(zip(kept, baseline, strict=True)):
        print(f"{n + 1:>6}{rows:>8,}{with_s:>10.3f}{without_s:>11.3f}{with_s / without_s:>8.2f}")
    total_with = sum(s for _, s in kept)
    total_without = sum(s for _, s in baseline)
    print(f"{'all':>6}{sum(r for r, _ in kept):>8,}{total_with:>10.3f}{total_without:>11.3f}"
          f"{total_with / total_without:>8.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
