"""Pure, vectorized flood assessment: station series in, per-segment depths out.

The depth model (docs/model.md) for segment s at grid step t:

    tide_m[s, t] = max(0, level[station(s), t] - crest_m[s])
    store[s, t]  = max(0, store[s, t-1] + rain_mm[t] - capacity_mm[s, t])
    rain_m[s, t] = store[s, t] / 1000 * runoff_concentration
    depth_m      = tide_m + rain_m

where capacity_mm = drain_mm_h * step_h, reduced to `blocked_outfall_factor`
of that while the river level stands above the segment's outfall. Nothing here
touches the database, the network or the clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Depths within this of a threshold count as reaching it (float32 arithmetic
# makes 0.90 - 0.80 come out as 0.0999999).
DEPTH_TOLERANCE_M = 1e-5

# Cause bit flags; a union over time is a bitwise OR, so TIDE | RAIN = COMPOUND.
TIDE, RAIN, COMPOUND = 1, 2, 3
CAUSE_NAMES = {TIDE: "tide", RAIN: "rain", COMPOUND: "compound"}


@dataclass(frozen=True)
class ModelParams:
    """Shared depth-model parameters (see AssessmentSettings)."""

    step_minutes: int
    thresholds_m: tuple[float, ...]
    blocked_outfall_factor: float = 0.25
    runoff_concentration: float = 4.0
    compound_min_m: float = 0.02


@dataclass(frozen=True)
class StationSeries:
    """Values of one variable for each station on the time grid."""

    values: np.ndarray  # [stations, T]; water level m (NaN unknown) or rain mm per step
    observed: np.ndarray  # [stations, T] bool: value came from an observation
    observed_now: np.ndarray  # [stations] bool: a fresh observation exists at `now`
    # [stations, T] bool: some reading covers the step; None = wherever values is not NaN.
    # Rain the model counts as none where nothing is known (a lower bound) is not known.
    covered: np.ndarray | None = None

    @property
    def known(self) -> np.ndarray:
        """[stations, T] bool: a value (observed or forecast) exists for the step."""
        return ~np.isnan(self.values) if self.covered is None else self.covered


@dataclass(frozen=True)
class Assessment:
    """Depths for every segment and step, split by cause."""

    tide_m: np.ndarray  # [S, T] float32
    rain_m: np.ndarray  # [S, T] float32
    depth_m: np.ndarray  # [S, T] float32
    level: np.ndarray  # [S, T] int8, 0 = below the first threshold
    known: np.ndarray  # [S, T] bool: the tide station had a level at that step


def depth_levels(depth_m: np.ndarray, thresholds_m: tuple[float, ...]) -> np.ndarray:
    """Map depths to levels 0..n (number of thresholds reached)."""
    level = np.zeros(np.shape(depth_m), dtype=np.int8)
    for threshold in thresholds_m:
        level += depth_m >= np.float32(threshold - DEPTH_TOLERANCE_M)
    return level


def cause_codes(tide_m: np.ndarray, rain_m: np.ndarray, compound_min_m: float) -> np.ndarray:
    """Cause bits per cell: TIDE, RAIN, or both (COMPOUND); 0 where neither contributes."""
    return ((tide_m >= compound_min_m) * TIDE | (rain_m >= compound_min_m) * RAIN).astype(np.int8)


def assess(
    params: ModelParams,
    crest_m: np.ndarray,
    drain_mm_h: np.ndarray,
    outfall_m: np.ndarray,
    tide_idx: np.ndarray,
    rain_idx: np.ndarray,
    levels: StationSeries,
    rain: StationSeries,
) -> Assessment:
    """Compute tide overtopping, rain ponding and total depth for all segments."""
    # The rain store is a recurrence over time, so work time-major ([T, S],
    # contiguous per step) and hand back [S, T] views.
    level_ts = levels.values.T.astype(np.float32)[:, tide_idx]  # [T, S]
    known = ~np.isnan(level_ts)
    tide_ts = np.subtract(level_ts, crest_m.astype(np.float32))
    np.nan_to_num(tide_ts, copy=False)
    np.maximum(tide_ts, 0, out=tide_ts)

    step_h = params.step_minutes / 60.0
    full_capacity = (drain_mm_h * step_h).astype(np.float32)
    blocked_capacity = full_capacity * np.float32(params.blocked_outfall_factor)
    outfall = outfall_m.astype(np.float32)
    scale = np.float32(params.runoff_concentration / 1000.0)
    rain_station = np.nan_to_num(rain.values).astype(np.float32).T  # [T, R]

    n_t, n_seg = level_ts.shape
    rain_ts = np.empty((n_t, n_seg), dtype=np.float32)
    store = np.zeros(n_seg, dtype=np.float32)
    with np.errstate(invalid="ignore"):  # NaN level or outfall compares False: drain open
        for t in range(n_t):
            blocked = level_ts[t] > outfall
            store += rain_station[t][rain_idx]
            store -= np.where(blocked, blocked_capacity, full_capacity)
            np.maximum(store, 0, out=store)
            np.multiply(store, scale, out=rain_ts[t])
    del level_ts

    depth_ts = tide_ts + rain_ts
    return Assessment(
        tide_m=tide_ts.T,
        rain_m=rain_ts.T,
        depth_m=depth_ts.T,
        level=depth_levels(depth_ts, params.thresholds_m).T,
        known=known.T,
    )


@dataclass(frozen=True)
class Outlook:
    """The first expected wet episode of each segment from now on (best estimate:
    observed, then forecast)."""

    fc_has: np.ndarray  # [S] bool
    fc_onset: np.ndarray  # [S] step index
    fc_end: np.ndarray  # [S] step index (T = beyond the horizon)
    fc_peak: np.ndarray  # [S] step index
    fc_peak_m: np.ndarray  # [S]
    fc_cause: np.ndarray  # [S] cause bits over the episode


def outlook(result: Assessment, params: ModelParams, now_idx: int) -> Outlook:
    """Summarize an assessment into the per-segment forecast facts the event engine needs."""
    n_seg = result.depth_m.shape[0]
    fc_has = (result.level[:, now_idx:] >= 1).any(axis=1)
    rows = np.flatnonzero(fc_has)  # the episode arithmetic only for segments that get wet
    wet = result.level[rows, now_idx:] >= 1
    n_future = wet.shape[1]
    onset = wet.argmax(axis=1)
    cols = np.arange(n_future)
    dry_after = ~wet & (cols[None, :] >= onset[:, None])
    end = np.where(dry_after.any(axis=1), dry_after.argmax(axis=1), n_future)
    in_episode = (cols[None, :] >= onset[:, None]) & (cols[None, :] < end[:, None]) & wet
    future_depth = np.where(in_episode, result.depth_m[rows, now_idx:], np.float32(-1))
    peak = future_depth.argmax(axis=1)
    causes = cause_codes(
        result.tide_m[rows, now_idx:], result.rain_m[rows, now_idx:], params.compound_min_m
    )
    episode_cause = np.bitwise_or.reduce(np.where(in_episode, causes, 0), axis=1)

    def full(values: np.ndarray, dtype) -> np.ndarray:
        out = np.zeros(n_seg, dtype=dtype)
        out[rows] = values
        return out

    return Outlook(
        fc_has=fc_has,
        fc_onset=full(onset + now_idx, np.int64),
        fc_end=full(end + now_idx, np.int64),
        fc_peak=full(peak + now_idx, np.int64),
        fc_peak_m=full(np.take_along_axis(future_depth, peak[:, None], axis=1)[:, 0], np.float32),
        fc_cause=full(episode_cause, np.int8),
    )


@dataclass(frozen=True)
class ObservedMoment:
    """What observations say of every segment at one moment (an observation time or now)."""

    at_s: int
    observed: np.ndarray  # [S] bool: at least one input has a fresh observation
    depth_m: np.ndarray  # [S] float32: overtopping + ponding from observed inputs only
    cause: np.ndarray  # [S] cause bits
    complete: np.ndarray  # [S] bool: every normally observed input is fresh


def observed_moment(
    params: ModelParams,
    at_s: int,
    crest_m: np.ndarray,
    tide_idx: np.ndarray,
    rain_idx: np.ndarray,
    level_m: np.ndarray,
    rain_m: np.ndarray,
    rain_fresh: np.ndarray,
    complete_level: np.ndarray,
    complete_rain: np.ndarray,
) -> ObservedMoment:
    """Observed depth of every segment at one moment.

    `level_m` [tide stations]: the latest fresh observed level (NaN where none);
    `rain_m` [S]: the ponded depth of the grid step holding the moment;
    `rain_fresh` [rain stations]: a fresh rain observation exists; `complete_*`
    [stations]: the input is observed now or is not normally observed.
    """
    level_seg = level_m.astype(np.float32)[tide_idx]
    level_obs = ~np.isnan(level_seg)
    tide = np.where(level_obs, level_seg - crest_m.astype(np.float32), np.float32(0))
    np.maximum(tide, 0, out=tide)
    rain_obs = rain_fresh[rain_idx]
    rain = np.where(rain_obs, rain_m, np.float32(0)).astype(np.float32)
    return ObservedMoment(
        at_s=at_s,
        observed=level_obs | rain_obs,
        depth_m=tide + rain,
        cause=cause_codes(tide, rain, params.compound_min_m),
        complete=complete_level[tide_idx] & complete_rain[rain_idx],
    )


def known_until(known: np.ndarray, now_idx: int) -> np.ndarray:
    """[stations] the first step from `now_idx` on without data (T when none is missing)."""
    future = ~known[:, now_idx:]
    n_t = known.shape[1]
    return np.where(future.any(axis=1), future.argmax(axis=1) + now_idx, n_t)


def recession_step(level: np.ndarray, now_idx: int, known_until: int) -> int | None:
    """The first grid step from `now_idx` on where a segment's level is back to 0.

    `level` [T] is the segment's level on the grid (observed, then forecast) and
    `known_until` the first step its inputs no longer reach. None when the grid is not
    wet at `now_idx` (the model does not see the water a gauge or report does) or no
    known step is dry: the recession is then not forecast, never guessed.
    """
    if now_idx >= len(level) or level[now_idx] < 1:
        return None
    dry = np.flatnonzero(level[now_idx:known_until] < 1)
    return now_idx + int(dry[0]) if dry.size else None


def alarm_levels(level_m: np.ndarray, alarm_m: np.ndarray) -> np.ndarray:
    """Station alarm level 0..3 (BĐ I/II/III) per value; NaN alarms never trip."""
    ranks = np.arange(1, alarm_m.shape[-1] + 1)
    with np.errstate(invalid="ignore"):
        reached = level_m[..., None] >= alarm_m
    return (reached * ranks).max(axis=-1).astype(np.int8)


def rain_category(rain_24h_mm: np.ndarray, bounds_mm: tuple[float, ...]) -> np.ndarray:
    """Rain category 0..n per 24-hour total (0 = below the first bound)."""
    return np.searchsorted(np.asarray(bounds_mm), rain_24h_mm, side="right").astype(np.int8)
