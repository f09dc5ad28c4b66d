"""The depth model, levels, causes and station series (pure numpy)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from floodwatch.core.depth import (
    COMPOUND,
    RAIN,
    TIDE,
    ModelParams,
    StationSeries,
    alarm_levels,
    assess,
    cause_codes,
    depth_levels,
    rain_category,
)
from floodwatch.core.series import ReadingArrays, level_series, make_grid, rain_series

PARAMS = ModelParams(step_minutes=60, thresholds_m=(0.10, 0.30, 0.50))


def series(values: list[list[float]]) -> StationSeries:
    """Station series with everything observed."""
    arr = np.array(values, dtype=float)
    return StationSeries(arr, np.ones(arr.shape, bool), np.ones(arr.shape[0], bool))


def run(levels, rain, crest=(0.8,), drain=(10.0,), outfall=(np.nan,), params=PARAMS):
    """Assess one station pair for the given segments."""
    n = len(crest)
    return assess(
        params,
        np.array(crest),
        np.array(drain),
        np.array(outfall, dtype=float),
        np.zeros(n, np.int64),
        np.zeros(n, np.int64),
        series([levels]),
        series([rain]),
    )


def test_pure_tide_depth_is_level_minus_crest():
    result = run([0.5, 0.9, 1.07, 0.7], [0, 0, 0, 0])
    np.testing.assert_allclose(result.depth_m[0], [0, 0.1, 0.27, 0], atol=1e-6)
    assert result.level[0].tolist() == [0, 1, 1, 0]
    assert cause_codes(result.tide_m, result.rain_m, 0.02)[0].tolist() == [0, TIDE, TIDE, 0]


def test_rain_ponds_above_drainage_and_drains_over_time():
    # 40 mm in an hour on a 10 mm/h drain leaves 30 mm; x4 concentration = 0.12 m.
    result = run([0.0] * 4, [40, 0, 0, 0])
    np.testing.assert_allclose(result.rain_m[0], [0.12, 0.08, 0.04, 0.0], atol=1e-6)


def test_outfall_under_the_tide_cuts_drainage():
    open_drain = run([0.5] * 3, [40, 0, 0], outfall=(0.6,))
    blocked = run([0.7] * 3, [40, 0, 0], outfall=(0.6,))
    # Blocked: a quarter of 10 mm/h drains.
    np.testing.assert_allclose(blocked.rain_m[0], [0.15, 0.14, 0.13], atol=1e-6)
    assert (blocked.rain_m[0] > open_drain.rain_m[0]).all()


def test_rain_on_high_tide_is_compound():
    result = run([0.9, 0.9], [60, 0], crest=(0.8,))
    assert cause_codes(result.tide_m, result.rain_m, 0.02)[0, 0] == COMPOUND
    dry_road = run([0.5, 0.5], [60, 0], crest=(0.8,))
    assert cause_codes(dry_road.tide_m, dry_road.rain_m, 0.02)[0, 0] == RAIN


def test_unknown_level_is_marked_and_not_flooded():
    result = run([np.nan, 1.0], [0, 0])
    assert result.known[0].tolist() == [False, True]
    assert result.depth_m[0, 0] == 0


def test_levels_alarms_and_rain_categories():
    assert depth_levels(np.array([0.05, 0.1, 0.29, 0.3, 0.6]), (0.1, 0.3, 0.5)).tolist() == [
        0, 1, 1, 2, 3,
    ]  # fmt: skip
    tp_ca_mau = np.array([0.65, 0.75, 0.85])
    assert alarm_levels(np.array([0.6, 0.7, 0.8, 1.07]), tp_ca_mau).tolist() == [0, 1, 2, 3]
    phuoc_long = np.array([np.nan, np.nan, 0.90])  # only BĐ III is published
    assert alarm_levels(np.array([0.8, 0.95]), phuoc_long).tolist() == [0, 3]
    bounds = (16.0, 51.0, 100.01)
    assert rain_category(np.array([10, 16, 50, 51, 100, 101]), bounds).tolist() == [
        0, 1, 1, 2, 2, 3,
    ]  # fmt: skip


def arrays(rows: list[tuple[int, int, float, bool, int]]) -> ReadingArrays:
    """ReadingArrays from (station, time_s, value, observed, issued_s) tuples."""
    station, time_s, value, observed, issued = zip(*rows, strict=True)
    return ReadingArrays(
        np.array(station), np.array(time_s, np.int64), np.array(value, float),
        np.array(observed), np.array(issued, np.int64),
    )  # fmt: skip


def test_level_series_prefers_observations_then_latest_forecast():
    now = datetime(2024, 12, 16, 12, tzinfo=UTC)
    grid = make_grid(now, 60, lookback_hours=2, horizon_hours=2)
    t = [int(x) for x in grid.times_s]  # 10:00 .. 14:00
    rows = [(0, t[0], 0.50, True, t[0]), (0, t[2], 0.70, True, t[2])]
    rows += [(0, x, 0.10, False, t[0] - 86400) for x in t]  # older forecast issue
    rows += [(0, x, 0.20, False, t[0]) for x in t]  # newer issue wins
    result = level_series(grid, 1, arrays(rows), max_age_s=3600)
    np.testing.assert_allclose(result.values[0], [0.50, 0.60, 0.70, 0.20, 0.20])
    assert result.observed[0].tolist() == [True, True, True, False, False]
    assert result.observed_now.tolist() == [True]
    stale = level_series(make_grid(now.replace(hour=15), 60, 2, 2), 1, arrays(rows), 3600)
    assert stale.observed_now.tolist() == [False]


def test_rain_series_uses_the_hour_ending_at_each_step():
    now = datetime(2024, 12, 16, 12, tzinfo=UTC)
    grid = make_grid(now, 30, lookback_hours=1, horizon_hours=1)  # 11:00 .. 13:00 by 30 min
    t11, t12 = int(grid.times_s[0]), int(grid.times_s[2])
    result = rain_series(grid, 1, arrays([(0, t11, 10.0, True, t11), (0, t12, 20.0, True, t12)]),
                         3600)  # fmt: skip
    # 11:30 and 12:00 share the hour ending 12:00: half of 20 mm each.
    np.testing.assert_allclose(result.values[0], [5.0, 10.0, 10.0, 0.0, 0.0])


@pytest.mark.parametrize("step", [15, 60])
def test_grid_is_aligned_and_now_is_inside_its_step(step):
    now = datetime(2024, 12, 16, 12, 40, tzinfo=UTC)
    grid = make_grid(now, step, 3, 72)
    assert grid.times_s[grid.now_idx] <= now.timestamp() < grid.times_s[grid.now_idx] + step * 60
    assert (np.diff(grid.times_s) == step * 60).all()


def test_latest_fresh_observation_stands_for_now_instead_of_the_forecast():
    now = datetime(2024, 12, 16, 12, 10, tzinfo=UTC)
    grid = make_grid(now, 60, lookback_hours=1, horizon_hours=1)  # 11:00, 12:00, 13:00
    t11, t12 = int(grid.times_s[0]), int(grid.times_s[1])
    rows = [(0, t11, 0.80, True, t11), (0, t11 + 2700, 0.95, True, t11 + 2700)]  # 11:45
    rows += [(0, int(x), 0.50, False, t11 - 86400) for x in grid.times_s]
    result = level_series(grid, 1, arrays(rows), max_age_s=3600)
    assert result.values[0, grid.now_idx] == 0.95 and result.observed[0, grid.now_idx]
    assert result.values[0, 2] == 0.50 and not result.observed[0, 2]  # future: forecast
    assert t12 == grid.times_s[grid.now_idx]


def test_newer_forecast_issue_wins_whole_even_on_other_time_steps():
    now = datetime(2024, 12, 16, 12, tzinfo=UTC)
    grid = make_grid(now, 60, lookback_hours=0, horizon_hours=4)  # 12:00 .. 16:00
    t0 = int(grid.times_s[0])
    old_issue, new_issue = t0 - 86400, t0 - 3600
    # An older 15-minute prediction at 0.5 m, and a newer hourly one shifted by a
    # 25-minute lag at 1.0 m covering 12:25 .. 14:25 only.
    harmonic = [(0, t0 + 900 * k, 0.5, False, old_issue, 0) for k in range(0, 17)]
    sea = [(0, t0 + 1500 + 3600 * k, 1.0, False, new_issue, 1) for k in range(3)]
    rows = harmonic + sea
    station, time_s, value, observed, issued, source = zip(*rows, strict=True)
    readings = ReadingArrays(
        np.array(station), np.array(time_s, np.int64), np.array(value), np.array(observed),
        np.array(issued, np.int64), np.array(source),
    )  # fmt: skip
    result = level_series(grid, 1, readings, max_age_s=3600)
    # 13:00 and 14:00 lie inside the newer issue; 12:00, 15:00, 16:00 outside it.
    np.testing.assert_allclose(result.values[0], [0.5, 1.0, 1.0, 0.5, 0.5])
