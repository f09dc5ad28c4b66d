"""Tests for harmonic tide prediction, extremes and fitting (floodwatch.tides)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from floodwatch.core.tides import (
    ConstituentTable,
    find_extremes,
    fit_constituents,
    high_low_waters,
    load_constituents,
    predict_levels,
    write_constituents,
)
from floodwatch.errors import InputError

TIDES_DIR = Path(__file__).resolve().parents[1] / "config" / "tides"
STATIONS = ("tp_ca_mau", "ganh_hao", "song_doc", "nam_can", "rach_goc", "phuoc_long")
HEADER = "constituent,amplitude_m,phase_deg\n"


def _table() -> ConstituentTable:
    """An East-Sea-like table with seasonal terms."""
    names = ("M2", "S2", "N2", "K2", "K1", "O1", "P1", "Q1", "SA", "SSA")
    amplitudes = [0.75, 0.28, 0.15, 0.08, 0.45, 0.34, 0.14, 0.06, 0.20, 0.05]
    phases = [20.0, 65.0, 0.0, 62.0, 320.0, 268.0, 316.0, 250.0, 215.0, 120.0]
    return ConstituentTable("test", 0.3, names, np.array(amplitudes), np.array(phases))


def _hourly(start: datetime, hours: int) -> list[datetime]:
    """Hourly tz-aware times."""
    return [start + timedelta(hours=i) for i in range(hours)]


def _write(tmp_path: Path, text: str) -> Path:
    """Write a constituent CSV and return its path."""
    path = tmp_path / "station.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_write_then_load_round_trip(tmp_path):
    table = _table()
    out = io.StringIO()
    write_constituents(table, out)
    loaded = load_constituents(_write(tmp_path, out.getvalue()), "test")
    assert loaded.station == "test"
    assert loaded.names == table.names
    assert loaded.z0_m == pytest.approx(table.z0_m)
    np.testing.assert_allclose(loaded.amplitudes_m, table.amplitudes_m, atol=1e-4)
    np.testing.assert_allclose(loaded.phases_deg, table.phases_deg, atol=1e-2)


def test_load_accepts_comments_anywhere_and_any_name_case(tmp_path):
    text = "# Sample\n" + HEADER + "# mean level\nZ0,0.10,0\nM2,0.30,95\n\n# seasonal\nSa,0.1,225\n"
    table = load_constituents(_write(tmp_path, text), "x")
    assert table.names == ("M2", "SA")
    assert table.z0_m == pytest.approx(0.10)


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (HEADER + "Z0,0.1,0\nXX9,0.3,95\n", 3, "unknown to the tide engine"),
        (HEADER + "Z0,0.1,0\nM2,abc,95\n", 3, "not a number"),
        (HEADER + "Z0,0.1,0\nM2,-0.3,95\n", 3, "negative"),
        ("# only M2\n" + HEADER + "M2,0.3,95\n", 2, "no Z0 row"),
        (HEADER + "Z0,0.1,0\nM2,0.3,95\nK1,0.2,300\nm2,0.3,95\n", 5, "duplicate"),
        ("# comment\nM2,0.3,95\n", 2, "expected header"),
        ("# nothing but a comment\n", 1, "missing header"),
        (HEADER + "Z0,0.1,0\nM2,0.3\n", 3, "expected 3 columns"),
    ],
)
def test_load_errors_are_one_line_naming_file_and_line(tmp_path, text, line, problem):
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        load_constituents(path, "x")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: line {line}: ")
    assert problem in message


def test_load_missing_file_is_one_line(tmp_path):
    path = tmp_path / "absent.csv"
    with pytest.raises(InputError, match="file not found") as caught:
        load_constituents(path, "x")
    assert str(caught.value).startswith(str(path))
    assert "\n" not in str(caught.value)


def test_predict_rejects_naive_times():
    with pytest.raises(ValueError, match="naive"):
        predict_levels(_table(), [datetime(2025, 11, 1, 12, 0)])


def test_predict_is_independent_of_time_zone():
    utc = datetime(2025, 11, 5, 3, 0, tzinfo=UTC)
    local = utc.astimezone(timezone(timedelta(hours=7)))
    levels = predict_levels(_table(), [utc, local])
    assert levels[0] == pytest.approx(levels[1])


def test_find_extremes_on_sine_within_a_minute():
    period_s, start = 12.42 * 3600.0, datetime(2025, 1, 1, tzinfo=UTC)
    times = [start + timedelta(minutes=6 * i) for i in range(10 * 24 * 10)]
    seconds = np.array([(t - start).total_seconds() for t in times])
    phase_s = 2000.0
    levels = 0.2 + 1.1 * np.cos(2 * np.pi * (seconds - phase_s) / period_s)
    extremes = find_extremes(times, levels)
    highs = [e for e in extremes if e.kind == "high"]
    lows = [e for e in extremes if e.kind == "low"]
    assert len(highs) == 20 and len(lows) == 19
    for k, extreme in enumerate(highs):
        expected = start + timedelta(seconds=phase_s + k * period_s)
        assert abs((extreme.time - expected).total_seconds()) <= 60
        assert extreme.level_m == pytest.approx(1.3, abs=2e-3)
        assert extreme.time.tzinfo is not None
    for k, extreme in enumerate(lows):
        expected = start + timedelta(seconds=phase_s + (k + 0.5) * period_s)
        assert abs((extreme.time - expected).total_seconds()) <= 60
        assert extreme.level_m == pytest.approx(-0.9, abs=2e-3)


def test_find_extremes_skips_gaps():
    start = datetime(2025, 1, 1, tzinfo=UTC)
    times = [start + timedelta(hours=i) for i in range(5)]
    assert find_extremes(times, np.array([0.0, np.nan, 1.0, 2.0, np.nan])) == []


def test_high_low_waters_alternate_and_match_curve():
    table = load_constituents(TIDES_DIR / "ganh_hao.csv", "ganh_hao")
    start = datetime(2025, 11, 1, tzinfo=timezone(timedelta(hours=7)))
    extremes = high_low_waters(table, start, start + timedelta(days=3))
    assert 8 <= len(extremes) <= 13
    assert all(a.kind != b.kind for a, b in zip(extremes, extremes[1:], strict=False))
    for extreme in extremes:
        assert extreme.time.second == 0 and extreme.time.utcoffset() == timedelta(0)
        around = [extreme.time + timedelta(minutes=m) for m in (-3, 3)]
        neighbours = predict_levels(table, around)
        if extreme.kind == "high":
            assert extreme.level_m >= neighbours.max() - 1e-4
        else:
            assert extreme.level_m <= neighbours.min() + 1e-4


def test_fit_round_trip_with_utide():
    table = _table()
    times = _hourly(datetime(2025, 1, 1, tzinfo=UTC), 24 * 370)
    levels = predict_levels(table, times)
    levels[100:130] = np.nan  # gaps must be ignored
    fitted, rms_m = fit_constituents("test", times, levels, latitude=9.0)
    assert rms_m < 0.01
    assert fitted.z0_m == pytest.approx(table.z0_m, abs=0.01)
    found = dict(
        zip(fitted.names, zip(fitted.amplitudes_m, fitted.phases_deg, strict=True), strict=True)
    )
    for name in ("M2", "S2", "N2", "K2", "K1", "O1", "P1", "SA"):
        i = table.names.index(name)
        amplitude_m, phase_deg = found[name]
        assert amplitude_m == pytest.approx(table.amplitudes_m[i], abs=0.01), name
        phase_error = (phase_deg - table.phases_deg[i] + 180.0) % 360.0 - 180.0
        assert abs(phase_error) < 3.0, name


def test_fit_rejects_short_or_empty_series():
    times = _hourly(datetime(2025, 1, 1, tzinfo=UTC), 36)
    with pytest.raises(InputError, match="at least 2"):
        fit_constituents("x", times, np.zeros(36), latitude=9.0)
    with pytest.raises(InputError, match="missing"):
        fit_constituents("x", times, np.full(36, np.nan), latitude=9.0)


def _max_between(table: ConstituentTable, start: datetime, end: datetime) -> float:
    """Highest predicted level on a 10-minute grid."""
    steps = int((end - start).total_seconds() // 600)
    return float(
        predict_levels(table, [start + timedelta(minutes=10 * i) for i in range(steps)]).max()
    )


@pytest.mark.parametrize(
    ("station", "season_low", "season_high"),
    [
        ("tp_ca_mau", 0.85, 1.15),
        ("ganh_hao", 1.80, 2.30),
        ("rach_goc", 1.85, 2.10),
        ("nam_can", 1.40, 1.65),
        ("song_doc", 0.75, 1.00),
        ("phuoc_long", 0.80, 1.00),
    ],
)
def test_sample_tables_peak_in_season(station, season_low, season_high):
    table = load_constituents(TIDES_DIR / f"{station}.csv", station)
    season_max = _max_between(
        table, datetime(2025, 11, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    )
    spring_max = _max_between(
        table, datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 6, 1, tzinfo=UTC)
    )
    assert season_low <= season_max <= season_high
    assert spring_max < season_max - 0.1
    if station == "tp_ca_mau":
        assert spring_max < 0.80


def test_all_sample_tables_load_and_say_sample():
    for station in STATIONS:
        path = TIDES_DIR / f"{station}.csv"
        assert "SAMPLE" in path.read_text(encoding="utf-8").splitlines()[0]
        table = load_constituents(path, station)
        assert {"M2", "K1", "O1", "SA", "SSA"} <= set(table.names)
