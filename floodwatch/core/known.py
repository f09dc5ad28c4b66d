"""What is known (pure): the one rule that decides "không có dữ liệu" (no data).

Every surface (the cycle's counts, alerts, bulletin, `status`, web, API, bot,
exports) asks this module, so a road without data reads the same everywhere
and never as dry or 0 mm.

- A station's **water level** is known at a moment when its series has a value
  there (an observation, or a prediction from a tide table or a forecast) and
  the input is not *blind* (every source that should deliver it has gone
  quiet).
- A station's **rain** is known for a moment when an observation or a forecast
  covers that hour (or a fresh observation stands for it), and it is not blind.
  The depth model counts rain nobody reported as none: a lower bound, which is
  why it must not be shown as a measured 0 mm.
- A **segment** is known when both its tide station's level and its rain
  station's rain are; otherwise its state is "không có dữ liệu" unless an open
  event says it is flooded (water seen is never unseen by a later gap).
- A segment's **observation is complete** when each input that is normally
  observed (a gauge reported in the window, or has a source that is now quiet)
  has a fresh observation. An incomplete observation is a lower bound on the
  depth: it may open or deepen an event, never make it shallower or close it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from floodwatch.core.geo import Segment

WATER_LEVEL, RAINFALL = "water_level", "rainfall"
MISSING_VI = {WATER_LEVEL: "mực nước", RAINFALL: "mưa"}
NO_DATA_VI = "không có dữ liệu"


def input_mask(stations: Sequence[str], variable: str, pairs: Iterable[tuple[str, str]]):
    """[stations] bool: which of `stations` have (station, variable) in `pairs`."""
    wanted = {station for station, var in pairs if var == variable}
    return np.fromiter((s in wanted for s in stations), bool, len(stations))


def stations_known(
    level_values_now: np.ndarray,
    rain_covered_now: np.ndarray,
    rain_fresh: np.ndarray,
    level_blind: np.ndarray,
    rain_blind: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(level known [tide stations], rain known [rain stations]) at one moment."""
    level_known = ~np.isnan(level_values_now) & ~level_blind
    rain_known = (rain_covered_now | rain_fresh) & ~rain_blind
    return level_known, rain_known


def segments_known(
    level_known: np.ndarray, rain_known: np.ndarray, tide_idx: np.ndarray, rain_idx: np.ndarray
) -> np.ndarray:
    """[segments] bool: both inputs of the segment are known."""
    return level_known[tide_idx] & rain_known[rain_idx]


def observation_complete(
    fresh: np.ndarray, normally_observed: np.ndarray, quiet: np.ndarray
) -> np.ndarray:
    """[stations] bool: the input is observed now, or nobody observes it anyway.

    `normally_observed`: the station reported observations in the cycle's window;
    `quiet`: some source of the input has gone stale.
    """
    return fresh | ~(normally_observed | quiet)


@dataclass(frozen=True)
class Unknown:
    """A segment without usable data, and which of its inputs are missing."""

    segment: Segment
    missing: tuple[str, ...]  # water_level and/or rainfall

    @property
    def missing_vi(self) -> str:
        """`mực nước, mưa`: what is missing, for people."""
        return ", ".join(MISSING_VI[m] for m in self.missing)


def unknown_segments(
    segments: Sequence[Segment],
    level_known: dict[str, bool],
    rain_known: dict[str, bool],
) -> list[Unknown]:
    """Every segment whose tide or rain station is not known, with what is missing."""
    found = []
    for segment in segments:
        missing = tuple(
            variable
            for variable, known, station in (
                (WATER_LEVEL, level_known, segment.tide_station),
                (RAINFALL, rain_known, segment.rain_station),
            )
            if not known.get(station, False)
        )
        if missing:
            found.append(Unknown(segment, missing))
    return found


def blind_segments(segments: Sequence[Segment], blind: Iterable[tuple[str, str]]) -> list[Segment]:
    """Segments that need an input no fresh source delivers."""
    blind = set(blind)
    if not blind:
        return []
    return [
        s
        for s in segments
        if (s.tide_station, WATER_LEVEL) in blind or (s.rain_station, RAINFALL) in blind
    ]
