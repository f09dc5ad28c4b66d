"""Turn stored readings into per-station series on the assessment time grid (pure).

Times are int64 seconds since the Unix epoch, UTC. For each station, steps up
to `now` use observations where there are any and forecasts otherwise; steps
after `now` use forecasts only, the latest issued at or before `now`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from floodwatch.core.depth import StationSeries

# Interpolating water levels across a longer hole than this invents data.
MAX_LEVEL_GAP_S = 3 * 3600


@dataclass(frozen=True)
class Grid:
    """The regular time grid of one assessment cycle."""

    times_s: np.ndarray  # int64 epoch seconds
    now_idx: int
    now_s: int
    step_s: int

    def at(self, idx: int) -> datetime:
        """The UTC datetime of grid step `idx`."""
        return datetime.fromtimestamp(int(self.times_s[idx]), tz=UTC)


def make_grid(now: datetime, step_minutes: int, lookback_hours: int, horizon_hours: int) -> Grid:
    """A grid from `now - lookback` to `now + horizon`, steps aligned to the step size."""
    step_s = step_minutes * 60
    now_s = int(now.timestamp())
    anchor = now_s - now_s % step_s
    back = lookback_hours * 3600 // step_s
    ahead = horizon_hours * 3600 // step_s
    times = anchor + step_s * np.arange(-back, ahead + 1, dtype=np.int64)
    return Grid(times_s=times, now_idx=back, now_s=now_s, step_s=step_s)


@dataclass(frozen=True)
class ReadingArrays:
    """Readings of one variable as parallel arrays (what the store hands over)."""

    station: np.ndarray  # int index into the station list
    time_s: np.ndarray  # int64
    value: np.ndarray  # float64
    observed: np.ndarray  # bool
    issued_s: np.ndarray  # int64
    source: np.ndarray | None = None  # int code of the storing source; None = all one

    @classmethod
    def empty(cls) -> ReadingArrays:
        """No readings at all."""
        i = np.empty(0, dtype=np.int64)
        return cls(i, i, np.empty(0), np.empty(0, dtype=bool), i)

    def subset(self, mask: np.ndarray) -> ReadingArrays:
        """The readings where `mask` is true."""
        return ReadingArrays(
            self.station[mask], self.time_s[mask], self.value[mask], self.observed[mask],
            self.issued_s[mask], None if self.source is None else self.source[mask],
        )  # fmt: skip


def _latest_issue(r: ReadingArrays) -> ReadingArrays:
    """Keep, per (station, time), the reading with the latest issue time."""
    if len(r.time_s) == 0:
        return r
    order = np.lexsort((r.issued_s, r.time_s, r.station))
    r = r.subset(order)
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (r.station[1:] != r.station[:-1]) | (r.time_s[1:] != r.time_s[:-1])
    return r.subset(last)


def _interp_gapped(xp: np.ndarray, fp: np.ndarray, x: np.ndarray, max_gap_s: int) -> np.ndarray:
    """Linear interpolation of sorted points, NaN outside them or across long gaps."""
    out = np.full(len(x), np.nan)
    if len(xp) == 0:
        return out
    right = np.searchsorted(xp, x, side="left")
    inside = (right < len(xp)) & (x >= xp[0])
    exact = inside & (xp[np.minimum(right, len(xp) - 1)] == x)
    left = np.maximum(right - 1, 0)
    span = xp[np.minimum(right, len(xp) - 1)] - xp[left]
    ok = inside & (exact | (span <= max_gap_s))
    out[ok] = np.interp(x[ok], xp, fp)
    return out


def _newest_forecast(fc: ReadingArrays, times_s: np.ndarray) -> np.ndarray:
    """One station's forecast on the grid, each step from the newest issue covering it.

    Issues are taken whole (per issue time and source), newest first, each
    filling only the steps still unknown: forecasts from sources on different
    time steps (15-minute harmonic predictions, hourly sea level shifted by a
    lag) never interleave point by point.
    """
    out = np.full(len(times_s), np.nan)
    if len(fc.time_s) == 0:
        return out
    source = np.zeros(len(fc.time_s), np.int64) if fc.source is None else fc.source
    issues = sorted(set(zip(fc.issued_s.tolist(), source.tolist(), strict=True)), reverse=True)
    for issued, src in issues:
        mask = (fc.issued_s == issued) & (source == src)
        order = np.argsort(fc.time_s[mask], kind="stable")
        values = _interp_gapped(fc.time_s[mask][order], fc.value[mask][order], times_s,
                                MAX_LEVEL_GAP_S)  # fmt: skip
        fill = np.isnan(out) & ~np.isnan(values)
        out[fill] = values[fill]
        if not np.isnan(out).any():
            break
    return out


def level_series(
    grid: Grid, n_stations: int, readings: ReadingArrays, max_age_s: int
) -> StationSeries:
    """Water level per station and step (NaN where nothing is known)."""
    n_t = len(grid.times_s)
    values = np.full((n_stations, n_t), np.nan)
    observed = np.zeros((n_stations, n_t), dtype=bool)
    observed_now = np.zeros(n_stations, dtype=bool)
    past = grid.times_s <= grid.now_s
    obs = _latest_issue(readings.subset(readings.observed))
    fc = readings.subset(~readings.observed)
    for s in np.union1d(obs.station, fc.station):
        o = obs.station == s
        from_fc = _newest_forecast(fc.subset(fc.station == s), grid.times_s)
        from_obs = _interp_gapped(obs.time_s[o], obs.value[o], grid.times_s, MAX_LEVEL_GAP_S)
        use_obs = past & ~np.isnan(from_obs)
        values[s] = np.where(use_obs, from_obs, from_fc)
        observed[s] = use_obs
        if o.any():
            latest = int(np.argmax(obs.time_s[o]))
            observed_now[s] = obs.time_s[o][latest] >= grid.now_s - max_age_s
            if observed_now[s] and not use_obs[grid.now_idx]:
                # The gauge's latest reading (e.g. 09:45 for a 10:10 cycle) stands
                # for now rather than falling back to a forecast.
                values[s, grid.now_idx] = obs.value[o][latest]
                observed[s, grid.now_idx] = True
    return StationSeries(values=values, observed=observed, observed_now=observed_now)


def rain_series(
    grid: Grid, n_stations: int, readings: ReadingArrays, max_age_s: int
) -> StationSeries:
    """Rain (mm per grid step) per station; the model counts unknown rain as none.

    `covered` says which steps some reading covers, so that a total or a state
    built on the zeros can say it is not known.
    """
    n_t = len(grid.times_s)
    values = np.zeros((n_stations, n_t))
    observed = np.zeros((n_stations, n_t), dtype=bool)
    covered = np.zeros((n_stations, n_t), dtype=bool)
    observed_now = np.zeros(n_stations, dtype=bool)
    # A reading is the rain of the hour ending at its time; a sub-hour step
    # takes its share of the hour that contains it.
    hour_key = -(-grid.times_s // 3600) * 3600
    share = grid.step_s / 3600.0
    past = grid.times_s <= grid.now_s
    obs = _latest_issue(readings.subset(readings.observed))
    fc = _latest_issue(readings.subset(~readings.observed))
    for s in np.union1d(obs.station, fc.station):
        columns = []
        for part in (obs, fc):
            m = part.station == s
            times, vals = part.time_s[m], part.value[m]
            if len(times) == 0:
                columns.append((np.zeros(n_t, dtype=bool), np.zeros(n_t)))
                continue
            pos = np.clip(np.searchsorted(times, hour_key), 0, len(times) - 1)
            hit = times[pos] == hour_key
            columns.append((hit, np.where(hit, vals[pos], 0.0)))
        (obs_hit, obs_val), (fc_hit, fc_val) = columns
        # A station that reports observations is trusted for the past: a missing
        # hour there is no rain, not the old forecast's rain.
        use_obs = past & obs_hit
        use_fc = fc_hit & ~(past & obs_hit.any())
        values[s] = np.where(use_obs, obs_val, np.where(use_fc, fc_val, 0.0)) * share
        observed[s] = use_obs
        covered[s] = use_obs | use_fc
        om = obs.station == s
        if om.any():
            observed_now[s] = obs.time_s[om].max() >= grid.now_s - max_age_s
    return StationSeries(
        values=values, observed=observed, observed_now=observed_now, covered=covered
    )


def rain_window(series: StationSeries, grid: Grid, hours: int) -> tuple[np.ndarray, np.ndarray]:
    """(rain mm, hours with data) per station over the `hours` ending at now.

    The sum counts only steps some reading covers; `hours with data` says how
    much of the window that is (0 = nothing known, so no total at all).
    """
    steps = max(1, hours * 3600 // grid.step_s)
    start = max(0, grid.now_idx - steps + 1)
    window = slice(start, grid.now_idx + 1)
    covered = series.known[:, window]
    total = np.where(covered, series.values[:, window], 0.0).sum(axis=1)
    return total, covered.sum(axis=1) * (grid.step_s / 3600.0)


def observation_times(readings: ReadingArrays, after_s: int, until_s: int) -> list[int]:
    """Distinct times of observations in (after_s, until_s], oldest first."""
    mask = readings.observed & (readings.time_s > after_s) & (readings.time_s <= until_s)
    return np.unique(readings.time_s[mask]).tolist()


@dataclass(frozen=True)
class LatestObserved:
    """Observations sorted per station, to ask "what was last seen by t" many times."""

    key: np.ndarray  # station * 2**40 + time_s, sorted
    station: np.ndarray
    time_s: np.ndarray
    value: np.ndarray
    n_stations: int

    @classmethod
    def of(cls, readings: ReadingArrays, n_stations: int) -> LatestObserved:
        """Index the observations of `readings` (latest issue per station and time)."""
        obs = _latest_issue(readings.subset(readings.observed))
        key = obs.station * (1 << 40) + obs.time_s
        order = np.argsort(key, kind="stable")
        return cls(key[order], obs.station[order], obs.time_s[order], obs.value[order], n_stations)

    def at(self, t_s: int, max_age_s: int) -> tuple[np.ndarray, np.ndarray]:
        """(value, time) per station of its latest observation at or before `t_s` that
        is at most `max_age_s` old; NaN value (and time -1) where there is none."""
        stations = np.arange(self.n_stations, dtype=np.int64)
        pos = np.searchsorted(self.key, stations * (1 << 40) + t_s, side="right") - 1
        ok = pos >= 0
        safe = np.where(ok, pos, 0)
        if len(self.key):
            ok &= (self.station[safe] == stations) & (self.time_s[safe] >= t_s - max_age_s)
        else:
            ok[:] = False
        value = np.where(ok, self.value[safe] if len(self.key) else np.nan, np.nan)
        return value, np.where(ok, self.time_s[safe] if len(self.key) else -1, -1)

    def any_between(self, after_s: int, until_s: int) -> np.ndarray:
        """[stations] bool: the station has an observation in (after_s, until_s]."""
        found = np.zeros(self.n_stations, dtype=bool)
        mask = (self.time_s > after_s) & (self.time_s <= until_s)
        found[self.station[mask]] = True
        return found
