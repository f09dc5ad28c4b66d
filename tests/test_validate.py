"""Validation of readings before storage: one test per rule, plus history and volume."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from floodwatch.core.readings import Kind, Reading, Variable
from floodwatch.core.validate import ValidationSettings, VariableLimits, Verdict, validate

NOW = datetime(2025, 10, 20, 12, 0, tzinfo=UTC)
HORIZON = timedelta(days=3)
H = timedelta(hours=1)
LEVEL = Variable.WATER_LEVEL
RAIN = Variable.RAINFALL
# Defaults everywhere, and a tighter gauge at Cà Mau city.
LIMITS = ValidationSettings(
    stations={
        "tp_ca_mau": {
            "water_level": VariableLimits(
                hard_min=-1.0, hard_max=3.0, soft_min=-0.5, soft_max=2.0, max_step_change=0.3
            )
        }
    }
)


def level(station: str, hour: float, value: float, **kw) -> Reading:
    """A water level `hour` hours after NOW (negative = past)."""
    return Reading(station, LEVEL, NOW + hour * H, value, **kw)


def rain(station: str, hour: float, value: float, **kw) -> Reading:
    """An hourly rainfall `hour` hours after NOW."""
    return Reading(station, RAIN, NOW + hour * H, value, **kw)


def tide(station: str, hours: range, mean_m: float = 0.5, amp_m: float = 0.8) -> list[Reading]:
    """A believable semidiurnal tide: never flat, rising at most ~0.5 m/h per metre of amp_m."""
    return [
        level(station, h, round(mean_m + amp_m * math.sin(2 * math.pi * h / 12.42), 3))
        for h in hours
    ]


def check(readings, **kw) -> Verdict:
    """Validate with the test limits at NOW."""
    return validate(readings, now=NOW, horizon=HORIZON, limits=LIMITS, **kw)


def codes(verdict: Verdict) -> dict[datetime, str]:
    """Time -> flag of every flagged reading."""
    return {r.time: r.flag for r in verdict.flagged}


def test_good_values_pass_untouched():
    readings = tide("song_doc", range(-48, 0)) + tide("tp_ca_mau", range(-48, 0), 0.3, 0.4)
    readings += [rain("tp_ca_mau", h, [0.0, 1.2, 5.5, 0.4][h % 4]) for h in range(-48, 0)]
    # A flat forecast is fine: forecasts get no spike or flat-line checks.
    readings += [level("song_doc", h, 0.5, kind=Kind.FORECAST, issued=NOW) for h in range(72)]
    verdict = check(readings)
    assert verdict.rejected == []
    assert verdict.flagged == []
    assert verdict.counts() == {}
    assert all(a is b for a, b in zip(verdict.accepted, readings, strict=True))


def test_duplicate_keeps_first_and_says_whether_value_differed():
    good = tide("song_doc", range(-6, 0))
    first = level("song_doc", -10, 0.40)
    verdict = check(
        [
            first,
            *good,
            level("song_doc", -10, 0.40),
            level("song_doc", -10, 0.55),
            # Same time, other kind: not a duplicate.
            level("song_doc", -10, 0.60, kind=Kind.FORECAST, issued=NOW - 12 * H),
        ]
    )
    assert [r.reason for r in verdict.rejected] == ["duplicate", "duplicate"]
    assert "same value" in verdict.rejected[0].detail
    assert "differs from the kept 0.4" in verdict.rejected[1].detail
    assert "song_doc" in verdict.rejected[1].detail and "2025-10-20 02:00Z" in (
        verdict.rejected[1].detail
    )
    assert "0.55" in verdict.rejected[1].detail
    assert verdict.accepted[0] is first
    assert len(verdict.accepted) == 1 + len(good) + 1


def test_future_observed_and_forecast_beyond_horizon():
    verdict = check(
        [
            level("song_doc", 5 / 60, 0.5),  # clock drift: fine
            level("song_doc", 11 / 60, 0.5),  # observed in the future
            level("song_doc", 95, 0.5, kind=Kind.FORECAST, issued=NOW),  # within horizon + 24 h
            level("song_doc", 97, 0.5, kind=Kind.FORECAST, issued=NOW),
        ]
    )
    assert [r.reason for r in verdict.rejected] == ["future", "future"]
    assert "future" in verdict.rejected[0].detail
    assert "beyond the forecast horizon" in verdict.rejected[1].detail
    assert verdict.rejected[1].time == NOW + 97 * H
    assert [r.time for r in verdict.accepted] == [NOW + 5 * timedelta(minutes=1), NOW + 95 * H]


def test_unit_mismatch_rejects_the_whole_station_in_centimetres():
    in_cm = [level("song_doc", h, 80.0 + 10 * h) for h in range(-6, 0)]  # 20..70 cm
    in_cm += [level("song_doc", -8, 120.0), level("song_doc", -7, 130.0)]
    fine = tide("tp_ca_mau", range(-6, 0), 0.3, 0.4)
    verdict = check(in_cm + fine + [rain("tp_ca_mau", -1, -2.0)])
    reasons = verdict.counts()
    assert reasons == {"unit_mismatch": len(in_cm), "hard_limit": 1}
    mismatch = [r for r in verdict.rejected if r.reason == "unit_mismatch"]
    assert "looks like centimetres" in mismatch[0].detail
    assert "check the source's scale" in mismatch[0].detail
    # Negative rain is a hard limit, not a unit problem.
    assert [r for r in verdict.rejected if r.reason == "hard_limit"][0].station == "tp_ca_mau"
    assert verdict.accepted == fine


def test_hard_limit_and_malformed_are_rejected():
    verdict = check(
        [
            level("song_doc", -3, 0.5),
            level("song_doc", -2, 7.5),
            level("song_doc", -1, math.nan),
            rain("song_doc", -1, math.inf),
            rain("song_doc", -2, 350.0),
        ]
    )
    assert verdict.counts() == {"hard_limit": 2, "malformed": 2}
    detail = next(r.detail for r in verdict.rejected if "7.5" in r.detail)
    assert "song_doc" in detail and "hard limits [-4, 6]" in detail
    assert [r.value for r in verdict.accepted] == [0.5]


def test_soft_limit_is_stored_with_a_flag():
    verdict = check([level("song_doc", -2, 0.5), level("song_doc", -1, 1.2), rain("x", -1, 160.0)])
    assert verdict.rejected == []
    assert [r.flag for r in verdict.accepted] == [None, None, "soft_limit"]
    assert len(verdict.notes) == 1 and verdict.notes[0].startswith("soft_limit: x rainfall")


def test_station_override_replaces_the_default_limits():
    # Rising towards a record at both stations, 0.25 m/h (within both step limits).
    values = [2.5, 2.75, 3.0, 3.25]
    batch = [level(s, h - 4, v) for s in ("song_doc", "tp_ca_mau") for h, v in enumerate(values)]
    verdict = check(batch)
    flags = [(r.station, r.flag) for r in verdict.accepted]
    assert (
        flags
        == [("song_doc", None)] * 3
        + [("song_doc", "soft_limit")]
        + [("tp_ca_mau", "soft_limit")] * 3
    )
    assert [(r.station, r.reason) for r in verdict.rejected] == [("tp_ca_mau", "hard_limit")]
    assert "hard limits [-1, 3]" in verdict.rejected[0].detail


def test_single_point_spike_flags_one_value():
    values = [0.50, 0.60, 0.70, 2.40, 0.80, 0.85, 0.90]
    readings = [level("song_doc", h - 7, v) for h, v in enumerate(values)]
    verdict = check(readings)
    assert codes(verdict) == {NOW - 4 * H: "spike"}
    assert "spike: song_doc" in verdict.notes[0] and "2.4" in verdict.notes[0]


def test_spike_allowance_grows_with_the_gap():
    # 1.5 m in 3 h is within 0.8 m/h; in 1 h it is not.
    verdict = check([level("song_doc", -5, 0.2), level("song_doc", -2, 1.7)])
    assert verdict.flagged == []
    verdict = check([level("song_doc", -5, 0.2), level("song_doc", -4, 1.7)])
    assert codes(verdict) == {NOW - 4 * H: "spike"}


def test_spike_against_the_last_stored_value():
    recent = {("song_doc", "water_level"): [(NOW - 3 * H, 0.5), (NOW - 2 * H, 0.55)]}
    batch = [level("song_doc", -1, 1.9), level("song_doc", 0, 0.6)]
    verdict = check(batch, recent=recent)
    assert codes(verdict) == {NOW - H: "spike"}
    # A spike already stored is not held against the batch's return to normal.
    recent = {("song_doc", "water_level"): [(NOW - 3 * H, 0.5), (NOW - 2 * H, 1.9)]}
    assert check([level("song_doc", -1, 0.55)], recent=recent).flagged == []


def test_flat_line_flags_from_where_the_run_reaches_flat_hours():
    # Noise below 1 mm still counts as the same value.
    stuck = [level("song_doc", h, 1.234 + (0.0001 if h % 2 else -0.0001)) for h in range(-9, 0)]
    verdict = check(tide("song_doc", range(-20, -9)) + stuck)
    assert codes(verdict) == {NOW + h * H: "flat_line" for h in (-3, -2, -1)}
    assert "unchanged at 1.234 for 6 h" in verdict.notes[0]
    # Forecasts are never flat-line checked.
    flat_forecast = [level("song_doc", h, 0.5, kind=Kind.FORECAST, issued=NOW) for h in range(24)]
    assert check(flat_forecast).flagged == []


def test_flat_line_of_rainfall_counts_only_non_zero_values():
    dry = [rain("song_doc", h, 0.0) for h in range(-72, 0)]
    assert check(dry).flagged == []
    stuck = [rain("song_doc", h, 2.5) for h in range(-8, 0)]
    assert codes(check(stuck)) == {NOW - 2 * H: "flat_line", NOW - H: "flat_line"}


def test_flat_line_that_started_before_the_batch():
    history = [(NOW - h * H, 0.812) for h in range(10, 4, -1)]  # stuck since 10 h ago
    batch = [level("song_doc", h, 0.812) for h in (-4, -3)] + [level("song_doc", -2, 0.9)]
    verdict = check(batch, recent={("song_doc", "water_level"): history})
    assert codes(verdict) == {NOW - 4 * H: "flat_line", NOW - 3 * H: "flat_line"}


def test_a_reading_keeps_its_first_flag():
    # Soft limit comes before spike; a flag from the source comes before both.
    readings = [
        level("song_doc", -3, 0.5),
        level("song_doc", -2, -2.5),
        level("song_doc", -1, 0.5, flag="manual"),
    ]
    verdict = check(readings)
    assert [r.flag for r in verdict.accepted] == [None, "soft_limit", "manual"]
    assert verdict.accepted[2] is readings[2]


def test_counts_add_up_to_rejected_and_flagged():
    readings = tide("song_doc", range(-30, 0))
    readings += [
        readings[0],
        level("song_doc", 2, 0.5),
        level("x", -1, 9.0),
        level("x", -2, math.nan),
        level("x", -3, 0.5),
        level("x", -4, 0.6),
        level("tp_ca_mau", -5, 0.3),
        level("tp_ca_mau", -4, 2.6),
        level("tp_ca_mau", -3, 0.35),
    ]
    readings += [rain("y", h, 3.0) for h in range(-10, 0)]
    verdict = check(readings)
    counts = verdict.counts()
    assert counts == {
        "duplicate": 1,
        "future": 1,
        "hard_limit": 1,
        "malformed": 1,
        "soft_limit": 1,
        "flat_line": 4,
    }
    assert sum(counts.values()) == len(verdict.rejected) + len(verdict.flagged)
    assert len(verdict.accepted) + len(verdict.rejected) == len(readings)


def test_a_large_batch_is_validated_in_one_go():
    # 200 stations x 240 hours, as one Open-Meteo reply; timing is for the benchmark script.
    readings = [r for s in range(200) for r in tide(f"st{s:03d}", range(-240, 0))]
    recent = {(f"st{s:03d}", "water_level"): [(NOW - 241 * H, 0.5)] for s in range(200)}
    verdict = check(readings, recent=recent)
    assert len(verdict.accepted) == 48_000
    assert verdict.counts() == {}
