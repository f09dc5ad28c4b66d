"""Plausibility checks on readings before storage: reject the impossible, flag the doubtful.

Pure: no database, clock or IO. The caller passes `now`, the forecast horizon,
the limits and the recently stored observations of each (station, variable),
so the rate-of-change and flat-line checks see across polls. Rules, in order:
duplicate, time_range and future, unit_mismatch, hard_limit/malformed
(reject); soft_limit, spike, flat_line (flag; the last two for observations
only). A reading keeps the first flag it gets, including one it arrived with.

Time sanity is judged twice: against the cycle's `now` (a replay's simulated
clock), and against the wall clock, so that no reading dated in the far future
(a typo, a gauge whose clock reset to 2099) is ever stored: one such reading
would otherwise make every later cycle look "already assessed".
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Literal

from pydantic import Field, model_validator

from floodwatch.core.readings import Kind, Reading, Rejection, Variable
from floodwatch.core.settings import DATUM_MAX_M, DATUM_MIN_M, StrictBase

# Validation limits (m of water level, mm of rain in an hour): generous, but finite.
_LIMIT = 10_000.0
# Where hard limits may lie: the datum range for levels; for rain, three times the
# wettest hour on record (305 mm).
_PHYSICAL = {"water_level": (DATUM_MIN_M, DATUM_MAX_M), "rainfall": (0.0, 1000.0)}


class VariableLimits(StrictBase):
    """Validation limits of one variable (metres for water level, mm/h for rain)."""

    hard_min: float = Field(ge=-_LIMIT, le=_LIMIT)
    hard_max: float = Field(ge=-_LIMIT, le=_LIMIT)
    soft_min: float = Field(ge=-_LIMIT, le=_LIMIT)
    soft_max: float = Field(ge=-_LIMIT, le=_LIMIT)
    # Largest believable change between consecutive hourly observations.
    max_step_change: float = Field(gt=0, le=_LIMIT)
    # The same non-zero value for this many hours in a row is a stuck sensor.
    flat_hours: int = Field(6, ge=2, le=7 * 24)

    @model_validator(mode="after")
    def _ordered(self) -> VariableLimits:
        if not self.hard_min <= self.soft_min < self.soft_max <= self.hard_max:
            raise ValueError("limits must satisfy hard_min <= soft_min < soft_max <= hard_max")
        return self


class ValidationSettings(StrictBase):
    """Checks applied to every reading from every source, before storage."""

    water_level: VariableLimits = VariableLimits(
        hard_min=-4.0, hard_max=6.0, soft_min=-2.0, soft_max=3.0, max_step_change=0.8
    )
    rainfall: VariableLimits = VariableLimits(
        hard_min=0.0, hard_max=300.0, soft_min=0.0, soft_max=150.0, max_step_change=200.0
    )
    # Per-station overrides, e.g. [validation.stations.tp_ca_mau.water_level].
    stations: dict[str, dict[Literal["water_level", "rainfall"], VariableLimits]] = {}

    @model_validator(mode="after")
    def _physical(self) -> ValidationSettings:
        tables = [("water_level", self.water_level), ("rainfall", self.rainfall)]
        for station, limits in self.stations.items():
            tables += [(f"stations.{station}.{var}", lim) for var, lim in limits.items()]
        for key, limits in tables:
            low, high = _PHYSICAL["water_level" if key.endswith("water_level") else "rainfall"]
            if limits.hard_min < low or limits.hard_max > high:
                raise ValueError(
                    f"{key}: hard_min and hard_max must lie within {low:g}..{high:g} "
                    f"({'m on the national datum' if high == DATUM_MAX_M else 'mm in an hour'})"
                )
        return self


# Clocks of gauges and servers drift; an observation a few minutes ahead is not an error.
OBSERVED_CLOCK_SLACK = timedelta(minutes=10)
# Forecasts may run a little past the horizon we asked for (whole days, model runs).
FORECAST_SLACK = timedelta(hours=24)
# No reading is older than this: gauges, models and the epoch-second arithmetic of
# the assessment all start here (years 0001 or 1900 are typos).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
# Flat-line values are compared in whole mm of level / tenths of a mm of rain.
_FLAT_SCALE = {Variable.WATER_LEVEL: 1000, Variable.RAINFALL: 10}
# Enum members as plain names: looking them up on the class costs in the per-reading loops.
_OBSERVED = Kind.OBSERVED


@dataclass(frozen=True)
class Verdict:
    """What validation made of one batch: readings to store (some flagged) and rejections."""

    accepted: list[Reading]
    rejected: list[Rejection]
    # One line per value flagged here (code, station, time, value, why), for the event log.
    notes: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> list[Reading]:
        """The accepted readings that carry a flag."""
        return [r for r in self.accepted if r.flag is not None]

    def counts(self) -> dict[str, int]:
        """Reason or flag code -> number of values, rejected and flagged together."""
        counts = Counter(r.reason for r in self.rejected)
        counts.update(r.flag for r in self.flagged)
        return dict(counts)


def _describe(r: Reading) -> str:
    """Station, variable, kind, UTC time and value of a reading, for a one-line detail."""
    return (
        f"{r.station} {r.variable} {r.kind} "
        f"{r.time.astimezone(UTC):%Y-%m-%d %H:%M}Z value {r.value:g}"
    )


def limits_for(limits: ValidationSettings, station: str, variable: str) -> VariableLimits:
    """The station's own limits for a variable, else the variable's defaults."""
    own = limits.stations.get(station, {}).get(variable)
    if own is not None:
        return own
    return limits.water_level if variable == Variable.WATER_LEVEL else limits.rainfall


def time_problem(
    r: Reading, *, now: datetime, horizon: timedelta, wall_clock: datetime | None = None
) -> tuple[str, str] | None:
    """(reason, why) when a reading's time cannot be true, else None.

    `now` is the cycle's clock, `wall_clock` the real one (None: the same as `now`):
    observations may not lie ahead of either (beyond a small clock slack), forecasts
    not beyond the horizon (and a day's slack), issue times not ahead of either.
    """
    latest_now = min(now, wall_clock) if wall_clock is not None else now
    if r.time < EARLIEST or r.issued_at < EARLIEST:
        return "time_range", f"before {EARLIEST:%Y-%m-%d} (a mistyped year?)"
    if r.issued_at > latest_now + OBSERVED_CLOCK_SLACK:
        what = "observed time" if r.kind == _OBSERVED else "issue time"
        clock = "the wall clock" if wall_clock is not None and wall_clock < now else "now"
        return "future", f"{what} is in the future (ahead of {clock})"
    if r.kind != _OBSERVED and r.time > latest_now + horizon + FORECAST_SLACK:
        return "future", "beyond the forecast horizon"
    return None


# Callbacks of `validate`: reject(reading, reason, why) and flag(index, code, why).
_Reject = Callable[[Reading, str, str], None]
_Flag = Callable[[int, str, str], None]


def _screen(
    readings: Sequence[Reading],
    *,
    now: datetime,
    horizon: timedelta,
    wall_clock: datetime | None,
    reject: _Reject,
) -> defaultdict[tuple[str, str], list[int]]:
    """Reject duplicates and impossible times in one pass; survivors per (station, variable)."""
    latest_now = min(now, wall_clock) if wall_clock is not None else now
    observed_until = latest_now + OBSERVED_CLOCK_SLACK
    forecast_until = latest_now + horizon + FORECAST_SLACK
    first_index: dict[tuple, int] = {}
    groups: defaultdict[tuple[str, str], list[int]] = defaultdict(list)
    for i, r in enumerate(readings):
        j = first_index.setdefault((r.station, r.variable, r.time, r.kind, r.issued_at), i)
        if j != i:
            kept = readings[j].value
            same = kept == r.value or (math.isnan(kept) and math.isnan(r.value))
            why = "same value" if same else f"value differs from the kept {kept:g}"
            reject(r, "duplicate", f"duplicate in batch ({why})")
            continue
        # The common case in two comparisons; the full reasons only for readings that fail.
        if (
            (r.time > observed_until if r.kind == _OBSERVED else r.time > forecast_until)
            or r.issued_at > observed_until
            or r.time < EARLIEST
        ):
            problem = time_problem(r, now=now, horizon=horizon, wall_clock=wall_clock)
            if problem is not None:
                reject(r, *problem)
                continue
        groups[r.station, r.variable].append(i)
    return groups


def _check_limits(
    readings: Sequence[Reading],
    indices: list[int],
    lim: VariableLimits,
    ok: list[bool],
    reject: _Reject,
    flag: _Flag,
) -> list[int]:
    """Reject values outside hard limits, flag those outside soft limits; marks the rest `ok`.

    Returns the indices of the accepted observations, for the series checks.
    """
    observed: list[int] = []
    hard_min, hard_max, soft_min, soft_max = (
        lim.hard_min,
        lim.hard_max,
        lim.soft_min,
        lim.soft_max,
    )
    for i in indices:
        r = readings[i]
        value = r.value
        if not math.isfinite(value):
            reject(r, "malformed", "not a finite number")
        elif value < hard_min or value > hard_max:
            reject(r, "hard_limit", f"outside hard limits [{hard_min:g}, {hard_max:g}]")
        else:
            ok[i] = True
            if value < soft_min or value > soft_max:
                flag(i, "soft_limit", f"outside soft limits [{lim.soft_min:g}, {lim.soft_max:g}]")
            if r.kind == _OBSERVED:
                observed.append(i)
    return observed


def validate(
    readings: Sequence[Reading],
    *,
    now: datetime,
    horizon: timedelta,
    limits: ValidationSettings,
    recent: Mapping[tuple[str, str], Sequence[tuple[datetime, float]]] = {},
    wall_clock: datetime | None = None,
) -> Verdict:
    """Check one batch of readings; `recent` holds stored observations, oldest first.

    `wall_clock` is the real time (None: trust `now`); a replay passes both.
    """
    rejected: list[Rejection] = []

    def reject(r: Reading, reason: str, why: str) -> None:
        rejected.append(Rejection(reason, f"{_describe(r)}: {why}", r.station, r.time, r))

    groups = _screen(readings, now=now, horizon=horizon, wall_clock=wall_clock, reject=reject)

    flags: list[str | None] = [r.flag for r in readings]
    notes: dict[int, str] = {}

    def flag(i: int, code: str, why: str) -> None:
        if flags[i] is None:
            flags[i] = code
            notes[i] = f"{code}: {_describe(readings[i])}: {why}"

    ok = [False] * len(readings)
    for (station, variable), indices in groups.items():
        lim = limits_for(limits, station, variable)
        if variable == Variable.WATER_LEVEL and _unit_mismatch(readings, indices, lim, reject):
            continue
        observed = _check_limits(readings, indices, lim, ok, reject, flag)
        if observed:
            history = recent.get((station, variable), ())
            _check_series(readings, observed, history, lim, variable, flag)

    accepted = [
        r if flags[i] == r.flag else replace(r, flag=flags[i])
        for i, r in enumerate(readings)
        if ok[i]
    ]
    return Verdict(accepted, rejected, [notes[i] for i in sorted(notes)])


def _unit_mismatch(readings, indices, lim: VariableLimits, reject) -> bool:
    """Reject a station's whole batch of levels if it looks like centimetres; True if so."""
    values = [readings[i].value for i in indices if math.isfinite(readings[i].value)]
    if not values:
        return False
    middle = median(values)
    if not (middle > lim.hard_max and lim.soft_min <= middle / 100 <= lim.soft_max):
        return False
    why = (
        f"looks like centimetres (batch median {middle:g}, /100 = {middle / 100:g} m); "
        "check the source's scale"
    )
    for i in indices:
        reject(readings[i], "unit_mismatch", why)
    return True


def _check_series(readings, observed, history, lim: VariableLimits, variable, flag) -> None:
    """Flag spikes and flat lines in the batch's observations merged with stored history."""
    # (timestamp_s, value, batch index or -1 for history); the batch wins on equal times.
    points = [(readings[i].time.timestamp(), readings[i].value, i) for i in observed]
    batch_times = {p[0] for p in points}
    for time, value in history:
        ts = time.timestamp()
        if ts not in batch_times and math.isfinite(value):
            points.append((ts, value, -1))
    points.sort()

    # Spike: compare with the last believable point, so that after a one-point spike
    # the return to normal is not flagged too; the allowance grows with the gap, so a
    # real shift is believed once enough time has passed.
    ref_ts = ref_value = None
    max_step = lim.max_step_change
    for ts, value, i in points:
        if ref_ts is not None:
            hours = max(1.0, (ts - ref_ts) / 3600)
            step = abs(value - ref_value)
            if step > max_step * hours:
                if i >= 0:
                    flag(
                        i,
                        "spike",
                        f"changed {step:g} in {hours:g} h since {ref_value:g} "
                        f"(limit {max_step:g} per hour)",
                    )
                continue
        ref_ts, ref_value = ts, value

    # Flat line: the same rounded value for flat_hours or more; zero rain is normal.
    scale = _FLAT_SCALE.get(variable, 1000)
    skip_zero = variable == Variable.RAINFALL
    flat_s = lim.flat_hours * 3600
    run_value = run_ts = None
    for ts, value, i in points:
        key = math.floor(value * scale + 0.5)  # round() is several times slower
        if key != run_value:
            run_value, run_ts = key, ts
        elif i >= 0 and ts - run_ts >= flat_s and not (skip_zero and key == 0):
            flag(i, "flat_line", f"unchanged at {key / scale:g} for {(ts - run_ts) / 3600:g} h")
