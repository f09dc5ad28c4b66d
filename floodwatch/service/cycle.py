"""One assessment cycle: stored readings → depths → event changes → alert outbox.

The cycle's clock is the wall clock (`run`, `poll`), `--at`, or a replay's own
reading times; never the newest stored reading. A database that already holds
a cycle ahead of the wall clock is an error with the way out
(`FutureCycleError`), since every cycle before it would be skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np

from floodwatch.config import Settings
from floodwatch.core.depth import (
    DEPTH_TOLERANCE_M,
    RAIN,
    TIDE,
    Assessment,
    ModelParams,
    ObservedMoment,
    Outlook,
    StationSeries,
    alarm_levels,
    assess,
    known_until,
    observed_moment,
    outlook,
    rain_category,
    recession_step,
)
from floodwatch.core.events import (
    CLOSED,
    FLOODED,
    FORECAST,
    OBSERVED,
    Change,
    EventState,
    Forecast,
    Message,
    Rules,
    SegmentNow,
    retire,
    step_through,
)
from floodwatch.core.geo import Geodata, Segment, segment_arrays
from floodwatch.core.health import HealthView
from floodwatch.core.known import (
    RAINFALL,
    WATER_LEVEL,
    Unknown,
    blind_segments,
    input_mask,
    observation_complete,
    segments_known,
    stations_known,
    unknown_segments,
)
from floodwatch.core.readings import Kind, Reading, Rejection, Variable
from floodwatch.core.series import (
    Grid,
    LatestObserved,
    ReadingArrays,
    level_series,
    make_grid,
    observation_times,
    rain_series,
    rain_window,
)
from floodwatch.core.skill import IssuedForecast
from floodwatch.core.text import KIND_VI, centimetres, local_time
from floodwatch.core.validate import OBSERVED_CLOCK_SLACK, Verdict, validate
from floodwatch.db.engine import database_errors
from floodwatch.db.events import CycleStats
from floodwatch.db.store import Store
from floodwatch.errors import FloodwatchError
from floodwatch.messages.alarms import segments_removed_alarm
from floodwatch.messages.alerts import OBSERVED_KINDS, Wording, compose
from floodwatch.messages.digest import compose_digest
from floodwatch.service.routing import operator_targets, road_alert_targets

logger = logging.getLogger(__name__)

# Rain totals the bulletin, `status`, the web and the API show, whatever the lookback.
RAIN_WINDOW_HOURS = 24
# Levels are read this far before the grid, so interpolation has a point on each side.
LEVEL_MARGIN = timedelta(hours=3)


class FutureCycleError(FloodwatchError):
    """The database holds a cycle ahead of the wall clock: cycles would be skipped."""


@dataclass(frozen=True)
class CycleResult:
    """What one cycle did."""

    at: datetime
    changes: list[Change]
    alerts: int
    flooded: int
    forecast: int
    unknown: int
    duration_s: float
    skipped: bool = False


@dataclass(frozen=True)
class StationState:
    """A station at one moment: level against its alarm levels, rain against the categories.

    `level_m` and `rain_24h_mm` are None when not known ("không có dữ liệu"), never 0.
    """

    station: str
    level_m: float | None
    level_observed: bool
    alarm: int  # 0 below BĐ I (or unknown), 1..3 = BĐ I..III
    rain_24h_mm: float | None
    rain_category: int  # 0 none (or unknown), 1.. = [rain] names
    rain_hours: float = 0.0  # hours of the 24 h window some reading covers
    level_blind: bool = False  # every source of the level has gone quiet
    rain_blind: bool = False
    measures_level: bool = False
    measures_rain: bool = False

    @property
    def rain_complete(self) -> bool:
        """Whether the 24 h rain total covers the whole 24 hours."""
        return self.rain_hours >= RAIN_WINDOW_HOURS - 1e-9


@dataclass(frozen=True)
class Situation:
    """What is known at one moment: every station, and every road without usable data."""

    at: datetime
    stations: list[StationState]
    unknown: list[Unknown]
    blind: frozenset[tuple[str, str]] = frozenset()

    def station(self, station_id: str) -> StationState | None:
        """The state of one station."""
        return next((s for s in self.stations if s.station == station_id), None)


@dataclass(frozen=True)
class Loaded:
    """The readings and station series one moment's assessment is built on."""

    grid: Grid
    level_rows: ReadingArrays
    rain_rows: ReadingArrays
    levels: StationSeries
    rain: StationSeries


def rules_from(settings: Settings) -> Rules:
    """State-machine rules from the config."""
    return Rules(
        thresholds_m=tuple(settings.levels.thresholds_m),
        hysteresis_m=settings.levels.hysteresis_m,
        close_after=timedelta(minutes=settings.events.close_after_minutes),
        forecast_shift=timedelta(minutes=settings.events.forecast_shift_minutes),
        forecast_shift_depth_m=settings.events.forecast_shift_depth_m,
        zone=settings.zone,
    )


@dataclass(frozen=True)
class _StepTables:
    """A cycle's arrays as plain lists, so stepping one segment costs no numpy scalars."""

    at: datetime
    times: list[datetime]  # the grid
    level_until: list[int]  # per tide station: the first grid step not known
    rain_until: list[int]  # per rain station: the same
    tide_idx: list[int]
    rain_idx: list[int]
    fc: tuple[list, ...]  # has, onset, end, peak step, peak depth, cause (per segment)
    final: tuple[list, ...]  # observed, depth, cause, complete at the cycle's moment
    earlier: list[tuple[datetime, ObservedMoment]]  # observation times since the last cycle

    @classmethod
    def of(
        cls,
        at: datetime,
        loaded: Loaded,
        out: Outlook,
        moments: list[ObservedMoment],
        masks: tuple[np.ndarray, np.ndarray],
        pipeline: Pipeline,
    ) -> _StepTables:
        """The tables of one cycle."""
        grid = loaded.grid
        level_blind, rain_blind = masks
        level_until = np.where(level_blind, grid.now_idx,
                               known_until(loaded.levels.known, grid.now_idx))  # fmt: skip
        rain_until = np.where(rain_blind, grid.now_idx,
                              known_until(loaded.rain.known, grid.now_idx))  # fmt: skip
        last = moments[-1]
        return cls(
            at=at,
            times=[grid.at(k) for k in range(len(grid.times_s))],
            level_until=level_until.tolist(),
            rain_until=rain_until.tolist(),
            tide_idx=pipeline.tide_idx.tolist(),
            rain_idx=pipeline.rain_idx.tolist(),
            fc=(
                out.fc_has.tolist(),
                out.fc_onset.tolist(),
                out.fc_end.tolist(),
                out.fc_peak.tolist(),
                out.fc_peak_m.tolist(),
                out.fc_cause.tolist(),
            ),  # fmt: skip
            final=(
                last.observed.tolist(),
                last.depth_m.tolist(),
                last.cause.tolist(),
                last.complete.tolist(),
            ),  # fmt: skip
            earlier=[(datetime.fromtimestamp(m.at_s, tz=UTC), m) for m in moments[:-1]],
        )

    def forecast(self, i: int) -> Forecast | None:
        """Segment i's next wet episode on the grid, if any."""
        fc, times = self.fc, self.times
        if not fc[0][i]:
            return None
        return Forecast(
            onset_at=max(times[fc[1][i]], self.at),
            end_at=times[min(fc[2][i], len(times) - 1)],
            peak_at=times[fc[3][i]],
            peak_m=fc[4][i],
            cause=fc[5][i],
        )

    def known_until(self, i: int, forecast_ev: EventState | None, forecast: Forecast | None):
        """How far the inputs of an open forecast event still reach, when no forecast stands."""
        known_idx = len(self.times)
        if forecast_ev is not None and forecast is None:
            causes = forecast_ev.causes or TIDE
            if causes & TIDE:
                known_idx = min(known_idx, self.level_until[self.tide_idx[i]])
            if causes & RAIN:
                known_idx = min(known_idx, self.rain_until[self.rain_idx[i]])
        return self.times[known_idx] if known_idx < len(self.times) else None

    def moments_of(
        self,
        i: int,
        segment: Segment,
        forecast_ev: EventState | None,
        reported: tuple[float, list] | None,
    ) -> list[SegmentNow]:
        """Segment i at each observation time since the last cycle, then at the cycle."""
        moments = [
            SegmentNow(
                segment.id, segment.unit, when, True, float(m.depth_m[i]), int(m.cause[i]),
                None, bool(m.complete[i]),
            )
            for when, m in self.earlier
            if m.observed[i]
        ]  # fmt: skip
        observed, depth_m, cause, complete = (column[i] for column in self.final)
        if reported is not None:  # a field report counts as an observed depth
            depth_m = max(depth_m if observed else 0.0, reported[0])
            if not (observed and cause):
                cause = self.fc[5][i] if self.fc[0][i] else 0
            observed = True
        forecast = self.forecast(i)
        moments.append(
            SegmentNow(
                segment_id=segment.id,
                unit=segment.unit,
                at=self.at,
                observed=observed,
                obs_depth_m=depth_m,
                obs_cause=cause,
                forecast=forecast,
                complete=complete,
                forecast_known_until=self.known_until(i, forecast_ev, forecast),
            )
        )
        return moments


class Pipeline:
    """The assessment and event stages over one store, for one set of geodata.

    Holds no state between calls except what the geodata and settings fix: the
    health of the inputs is passed in, never written onto the pipeline.
    """

    def __init__(self, settings: Settings, geodata: Geodata, store: Store):
        self.settings = settings
        self.geodata = geodata
        self.store = store
        self.rules = rules_from(settings)
        a = settings.assessment
        self.params = ModelParams(
            step_minutes=a.step_minutes,
            thresholds_m=tuple(settings.levels.thresholds_m),
            blocked_outfall_factor=a.blocked_outfall_factor,
            runoff_concentration=a.runoff_concentration,
            compound_min_m=a.compound_min_m,
        )
        stations = geodata.stations.values()
        self.tide_stations = [s.id for s in stations if Variable.WATER_LEVEL in s.measures]
        self.rain_stations = [s.id for s in stations if Variable.RAINFALL in s.measures]
        self.tide_index = {sid: i for i, sid in enumerate(self.tide_stations)}
        self.rain_index = {sid: i for i, sid in enumerate(self.rain_stations)}
        segments = geodata.segments
        self.arrays = segment_arrays(segments, a.default_drain_mm_h)
        self.tide_idx = np.array([self.tide_index[s.tide_station] for s in segments], np.int64)
        self.rain_idx = np.array([self.rain_index[s.rain_station] for s in segments], np.int64)
        self.unit_names = {u.id: u.name for u in settings.units}
        self.segment_index = {s.id: i for i, s in enumerate(segments)}

    def ingest(self, readings: Iterable[Reading], source: str) -> int:
        """Store readings from a source; returns how many were written."""
        count = self.store.readings.upsert(readings, source)
        logger.info("%s: %d readings stored", source, count)
        return count

    def ingest_checked(
        self,
        readings: list[Reading],
        now: datetime,
        source: str,
        wall_clock: datetime | None = None,
    ) -> Verdict:
        """Validate readings as known at `now` (and the wall clock), store the accepted ones.

        Raises StorageError when the database cannot be reached or written.
        """
        with database_errors(self.store.url):
            return self._ingest_checked(readings, now, source, wall_clock or utcnow())

    def _ingest_checked(
        self, readings: list[Reading], now: datetime, source: str, wall_clock: datetime
    ) -> Verdict:
        """ingest_checked, with database failures still raw."""
        stations = self.geodata.stations
        known, unknown = [], []
        for r in readings:
            station = stations.get(r.station)
            if station is None:
                unknown.append(Rejection("unknown_station", f"unknown station {r.station!r}"))
            elif r.variable not in station.measures:
                unknown.append(
                    Rejection(
                        "wrong_variable",
                        f"station {r.station!r} does not measure {r.variable}",
                        r.station,
                        r.time,
                    )  # fmt: skip
                )
            else:
                known.append(r)
        pairs = {(r.station, str(r.variable)) for r in known if r.kind is Kind.OBSERVED}
        recent = self.store.readings.recent_observations(pairs, now - timedelta(hours=12))
        horizon = timedelta(hours=self.settings.assessment.horizon_hours)
        verdict = validate(
            known,
            now=now,
            horizon=horizon,
            limits=self.settings.validation,
            recent=recent,
            wall_clock=wall_clock,
        )
        self.ingest(verdict.accepted, source)
        if unknown:
            verdict = replace(verdict, rejected=[*unknown, *verdict.rejected])
        return verdict

    # --- what is known -------------------------------------------------------

    def window(self, at: datetime) -> tuple[datetime, datetime]:
        """The time span a cycle at `at` reads (and sources should cover)."""
        grid = self.grid(at)
        return grid.at(0), grid.at(len(grid.times_s) - 1)

    def grid(self, at: datetime, lookback_hours: int | None = None) -> Grid:
        """The assessment grid of a cycle at `at`."""
        a = self.settings.assessment
        return make_grid(at, a.step_minutes, lookback_hours or a.lookback_hours, a.horizon_hours)

    def load(self, at: datetime, lookback_hours: int | None = None) -> Loaded:
        """The readings known by `at` around its grid, and the station series on it."""
        grid = self.grid(at, lookback_hours)
        start, end = grid.at(0), grid.at(len(grid.times_s) - 1)
        max_age_s = self.settings.assessment.observed_max_age_minutes * 60
        level_rows = self.store.readings.arrays(
            Variable.WATER_LEVEL, self.tide_index, start - LEVEL_MARGIN, end, at
        )
        rain_rows = self.store.readings.arrays(Variable.RAINFALL, self.rain_index, start, end, at)
        levels = level_series(grid, len(self.tide_stations), level_rows, max_age_s)
        rain = rain_series(grid, len(self.rain_stations), rain_rows, max_age_s)
        return Loaded(grid, level_rows, rain_rows, levels, rain)

    def _masks(self, pairs: Iterable[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
        """(tide stations, rain stations) bool masks of the (station, variable) `pairs`."""
        pairs = list(pairs)
        return (
            input_mask(self.tide_stations, WATER_LEVEL, pairs),
            input_mask(self.rain_stations, RAINFALL, pairs),
        )

    def _known_now(self, loaded: Loaded, blind: Iterable[tuple[str, str]]):
        """(level known, rain known) per station at the grid's now (floodwatch.known)."""
        level_blind, rain_blind = self._masks(blind)
        now_idx = loaded.grid.now_idx
        return stations_known(
            loaded.levels.values[:, now_idx],
            loaded.rain.known[:, now_idx],
            loaded.rain.observed_now,
            level_blind,
            rain_blind,
        )

    def situation(self, at: datetime, health: HealthView | None = None) -> Situation:
        """Each station's level (BĐ) and 24-hour rain at `at`, and the roads without data."""
        blind = health.blind if health is not None else frozenset()
        lookback = max(self.settings.assessment.lookback_hours, RAIN_WINDOW_HOURS)
        loaded = self.load(at, lookback)
        grid, levels = loaded.grid, loaded.levels
        level_known, rain_known = self._known_now(loaded, blind)
        level_now = np.where(level_known, levels.values[:, grid.now_idx], np.nan)
        alarms = np.array(
            [
                [np.nan if a is None else a for a in self.geodata.stations[sid].alarm_m]
                for sid in self.tide_stations
            ]
        ).reshape(len(self.tide_stations), 3)
        alarm = alarm_levels(level_now, alarms)
        rain_24h, rain_hours = rain_window(loaded.rain, grid, RAIN_WINDOW_HOURS)
        category = rain_category(rain_24h, tuple(self.settings.rain.categories_mm_24h))
        states = []
        for sid in self.geodata.stations:
            t, r = self.tide_index.get(sid), self.rain_index.get(sid)
            rain_has = r is not None and rain_hours[r] > 0 and (sid, RAINFALL) not in blind
            states.append(
                StationState(
                    station=sid,
                    level_m=None if t is None or np.isnan(level_now[t]) else float(level_now[t]),
                    level_observed=t is not None
                    and bool(level_known[t] and levels.observed[t, grid.now_idx]),
                    alarm=0 if t is None else int(alarm[t]),
                    rain_24h_mm=float(rain_24h[r]) if rain_has else None,
                    rain_category=int(category[r]) if rain_has else 0,
                    rain_hours=float(rain_hours[r]) if rain_has else 0.0,
                    level_blind=(sid, WATER_LEVEL) in blind,
                    rain_blind=(sid, RAINFALL) in blind,
                    measures_level=t is not None,
                    measures_rain=r is not None,
                )
            )
        unknown = unknown_segments(
            self.geodata.segments,
            {sid: bool(level_known[i]) for sid, i in self.tide_index.items()},
            {sid: bool(rain_known[i]) for sid, i in self.rain_index.items()},
        )
        return Situation(at, states, unknown, frozenset(blind))

    def blind_segments(self, health: HealthView | None) -> list[Segment]:
        """Segments that need an input no fresh source delivers."""
        return blind_segments(self.geodata.segments, health.blind if health else ())

    # --- the cycle -----------------------------------------------------------

    def cycle(self, at: datetime, health: HealthView | None = None) -> CycleResult:
        """Run one cycle at `at` (real or simulated time) and commit its outcome.

        `health` is the source and input health at `at` (None: everything fresh,
        as in a replay). Raises StorageError when the database cannot be reached
        or written (lost connection, locked, disk full); the cycle's writes are
        one transaction, so nothing of it is kept and the next cycle catches up.
        Raises FutureCycleError when the database holds a cycle ahead of the
        wall clock, and FloodwatchError when `at` itself is.
        """
        with database_errors(self.store.url):
            return self._cycle(at, health)

    def check_clock(self, at: datetime, wall_clock: datetime | None = None) -> datetime | None:
        """The latest cycle's time, after checking neither it nor `at` is ahead of the clock."""
        wall = wall_clock or utcnow()
        if at > wall + OBSERVED_CLOCK_SLACK:
            raise FloodwatchError(
                f"cycle time {at.isoformat()} is ahead of the clock ({wall.isoformat()}); "
                "floodwatch assesses only what is known by now"
            )
        last = self.store.events.last_cycle_at()
        if last is not None and last > wall + OBSERVED_CLOCK_SLACK:
            raise FutureCycleError(
                f"the database holds a cycle at {last.isoformat()}, ahead of the clock "
                f"({wall.isoformat()}): every cycle before it would be skipped. If the clock "
                "is right, `floodwatch db future` lists what was stored from the future and "
                "`floodwatch db future --delete` removes it"
            )
        return last

    def _cycle(self, at: datetime, health: HealthView | None) -> CycleResult:
        """cycle, with database failures still raw: read → assess → step → annotate → commit."""
        started = time.perf_counter()
        last = self.check_clock(at)
        if last is not None and at <= last:
            logger.info("cycle: %s already assessed (latest %s); skipped", at, last)
            return CycleResult(at, [], 0, 0, 0, 0, 0.0, skipped=True)
        blind = health.blind if health is not None else frozenset()
        quiet = health.quiet if health is not None else frozenset()
        loaded = self.load(at)
        result = self._assess(loaded)
        moments = self._moments(loaded, result, last, at, quiet)
        # Field reports count as observed depths for as long as a gauge reading would.
        reports = self.store.reports.recent(at - self.max_age, at)
        open_events = {(e.segment_id, e.kind): e for e in self.store.events.open()}
        out = outlook(result, self.params, loaded.grid.now_idx)
        changes = self._step_segments(at, loaded, out, moments, open_events, reports, blind)
        changes += self._annotate(at, last, open_events, changes, reports)
        messages = self._compose(at, changes, self._recession(loaded, result, out, changes, blind))
        stats = self._stats(loaded, open_events, changes, messages, blind, started)
        issued = self._issued(at, loaded.grid, out)
        self.store.events.record_cycle(at, changes, messages, stats, issued)
        if reports:
            # Right after the commit: a crash in between only repeats a note next cycle.
            self.store.reports.link(at, at - self.max_age)
        logger.info(
            "cycle %s: %d flooded, %d forecast, %d without data (%d blind), %d changes, "
            "%d alerts, %.2fs",
            at.isoformat(), stats.flooded, stats.forecast, stats.unknown, stats.blind,
            stats.changes, stats.alerts, stats.duration_s,
        )  # fmt: skip
        return CycleResult(
            at, changes, stats.alerts, stats.flooded, stats.forecast, stats.unknown,
            stats.duration_s,
        )  # fmt: skip

    def _issued(self, at: datetime, grid: Grid, out: Outlook) -> dict[str, IssuedForecast]:
        """This cycle's forecast of every segment expected to flood, kept for scoring."""
        last = len(grid.times_s) - 1
        issued = {}
        for i in np.flatnonzero(out.fc_has).tolist():
            peak_m = round(float(out.fc_peak_m[i]), 3)
            level = self.rules.raw_level(peak_m)
            if level:
                segment_id = self.geodata.segments[i].id
                issued[segment_id] = IssuedForecast(
                    segment_id, at, level,
                    max(grid.at(int(out.fc_onset[i])), at),
                    grid.at(min(int(out.fc_end[i]), last)),
                    grid.at(int(out.fc_peak[i])),
                    peak_m,
                    int(out.fc_cause[i]),
                )  # fmt: skip
        return issued

    @property
    def max_age(self) -> timedelta:
        """How long an observation (or a field report) stands for the present."""
        return timedelta(minutes=self.settings.assessment.observed_max_age_minutes)

    def _annotate(
        self,
        at: datetime,
        last: datetime | None,
        open_events: dict[tuple[str, str], EventState],
        changes: list[Change],
        reports: dict[str, tuple[float, list]],
    ) -> list[Change]:
        """Reminders, and notes of doubtful readings and field reports on open events."""
        current = {**open_events, **{(c.event.segment_id, c.event.kind): c.event for c in changes}}
        alerted = {(c.event.segment_id, c.event.kind) for c in changes if c.alert}
        doubtful = self.store.readings.flagged(last or at - self.max_age, at)
        return [
            *self._reminders(at, current, alerted),
            *self._doubtful_notes(at, current, doubtful),
            *self._report_notes(at, current, reports),
        ]

    def _stats(
        self,
        loaded: Loaded,
        open_events: dict[tuple[str, str], EventState],
        changes: list[Change],
        messages: list[Message],
        blind: frozenset[tuple[str, str]],
        started: float,
    ) -> CycleStats:
        """The cycle's figures: roads flooded and forecast after it, unknown, blind."""
        states = {**open_events, **{(c.event.segment_id, c.event.kind): c.event for c in changes}}
        still_open = [kind for (_, kind), e in states.items() if e.status != CLOSED]
        level_known, rain_known = self._known_now(loaded, blind)
        known = segments_known(level_known, rain_known, self.tide_idx, self.rain_idx)
        return CycleStats(
            duration_s=time.perf_counter() - started,
            segments=len(self.geodata.segments),
            flooded=still_open.count(OBSERVED),
            forecast=still_open.count(FORECAST),
            changes=sum(1 for c in changes if c.change),
            alerts=len(messages),
            unknown=int((~known).sum()),
            blind=len(blind_segments(self.geodata.segments, blind)),
        )

    def _assess(self, loaded: Loaded) -> Assessment:
        """The depth model over the loaded series."""
        return assess(
            self.params,
            self.arrays["crest_m"],
            self.arrays["drain_mm_h"],
            self.arrays["outfall_m"],
            self.tide_idx,
            self.rain_idx,
            loaded.levels,
            loaded.rain,
        )

    def _moments(
        self,
        loaded: Loaded,
        result: Assessment,
        last: datetime | None,
        at: datetime,
        quiet: frozenset[tuple[str, str]],
    ) -> list[ObservedMoment]:
        """Observed depths at each observation time since the last cycle, and at `at`.

        Steps between cycles are only those of the cycle's own window, so a long
        stop does not replay a day of observations.
        """
        grid = loaded.grid
        at_s = int(at.timestamp())
        start_s = int(grid.times_s[0])
        after_s = max(int(last.timestamp()), start_s) if last is not None else at_s
        times = [
            t
            for t in sorted(
                set(observation_times(loaded.level_rows, after_s, at_s))
                | set(observation_times(loaded.rain_rows, after_s, at_s))
            )
            if t < at_s
        ] + [at_s]
        max_age_s = self.settings.assessment.observed_max_age_minutes * 60
        levels = LatestObserved.of(loaded.level_rows, len(self.tide_stations))
        rain = LatestObserved.of(loaded.rain_rows, len(self.rain_stations))
        window_s = start_s - int(LEVEL_MARGIN.total_seconds())
        quiet_level, quiet_rain = self._masks(quiet)
        level_usual = levels.any_between(window_s, at_s)
        rain_usual = rain.any_between(window_s, at_s)
        crest = self.arrays["crest_m"]
        moments = []
        for t_s in times:
            level_m, _ = levels.at(t_s, max_age_s)
            rain_fresh = ~np.isnan(rain.at(t_s, max_age_s)[0])
            step = min(max(int(np.searchsorted(grid.times_s, t_s, side="right")) - 1, 0),
                       len(grid.times_s) - 1)  # fmt: skip
            moments.append(
                observed_moment(
                    self.params, t_s, crest, self.tide_idx, self.rain_idx, level_m,
                    result.rain_m[:, step], rain_fresh,
                    observation_complete(~np.isnan(level_m), level_usual, quiet_level),
                    observation_complete(rain_fresh, rain_usual, quiet_rain),
                )
            )  # fmt: skip
        return moments

    def _step_segments(
        self,
        at: datetime,
        loaded: Loaded,
        out: Outlook,
        moments: list[ObservedMoment],
        open_events: dict[tuple[str, str], EventState],
        reports: dict[str, tuple[float, list]],
        blind: frozenset[tuple[str, str]],
    ) -> list[Change]:
        """Every event change of this cycle, segment by segment."""
        # Python-level work only for segments that can change (wet at a moment or
        # later, or with an open event), in segment order; plain lists and a
        # precomputed time table avoid numpy scalar and datetime overhead per segment.
        visit = self._visit(out, moments, open_events, reports)
        tables = _StepTables.of(at, loaded, out, moments, self._masks(blind), self)
        changes: list[Change] = []
        for i in np.flatnonzero(visit).tolist():
            segment = self.geodata.segments[i]
            observed_ev = open_events.get((segment.id, OBSERVED))
            forecast_ev = open_events.get((segment.id, FORECAST))
            now_i = tables.moments_of(i, segment, forecast_ev, reports.get(segment.id))
            changes.extend(step_through(now_i, observed_ev, forecast_ev, self.rules))
        for (segment_id, _), ev in open_events.items():
            if segment_id not in self.segment_index:
                logger.warning("cycle: segment %s is no longer in the geodata; its %s event "
                               "%s is closed", segment_id, ev.kind, ev.id)  # fmt: skip
                changes.append(retire(ev, at))
        return changes

    def _visit(
        self,
        out: Outlook,
        moments: list[ObservedMoment],
        open_events: dict[tuple[str, str], EventState],
        reports: dict[str, tuple[float, list]],
    ) -> np.ndarray:
        """Which segments can change: wet at a moment or later, with an open event or a report."""
        segments = self.geodata.segments
        first_threshold = self.rules.thresholds_m[0] - DEPTH_TOLERANCE_M
        visit = out.fc_has.copy()
        for moment in moments:
            visit |= moment.observed & (moment.depth_m >= first_threshold)
        with_events = {seg for seg, _ in open_events}
        visit |= np.fromiter((s.id in with_events for s in segments), bool, len(segments))
        for segment_id in reports:
            if (index := self.segment_index.get(segment_id)) is not None:
                visit[index] = True
        return visit

    def wording(self, recession: dict[str, datetime | None] | None = None) -> Wording:
        """What messages name things with (and when each road's water should go down)."""
        return Wording(
            geodata=self.geodata,
            unit_names=self.unit_names,
            zone=self.settings.zone,
            level_names=self.settings.levels.names,
            public_url=self.settings.web.public_url,
            recession=recession or {},
        )

    def _recession(
        self,
        loaded: Loaded,
        result: Assessment,
        out: Outlook,
        changes: list[Change],
        blind: frozenset[tuple[str, str]],
    ) -> dict[str, datetime | None]:
        """When the water of each road in an observed alert line is expected below the
        first threshold (None: the forecast does not say), from the cycle's grid."""
        wanted = {c.event.segment_id: c.event for c in changes if c.alert in OBSERVED_KINDS}
        if not wanted:
            return {}
        grid = loaded.grid
        level_blind, rain_blind = self._masks(blind)
        level_until = np.where(level_blind, grid.now_idx,
                               known_until(loaded.levels.known, grid.now_idx))  # fmt: skip
        rain_until = np.where(rain_blind, grid.now_idx,
                              known_until(loaded.rain.known, grid.now_idx))  # fmt: skip
        found: dict[str, datetime | None] = {}
        for segment_id, ev in wanted.items():
            i = self.segment_index.get(segment_id)
            if i is None:
                found[segment_id] = None
                continue
            # Only the inputs behind this water must be known up to its recession.
            causes = (ev.causes | int(out.fc_cause[i])) or TIDE
            limit = len(grid.times_s)
            if causes & TIDE:
                limit = min(limit, int(level_until[self.tide_idx[i]]))
            if causes & RAIN:
                limit = min(limit, int(rain_until[self.rain_idx[i]]))
            step = recession_step(result.level[i], grid.now_idx, limit)
            found[segment_id] = None if step is None else grid.at(step)
        return found

    def _compose(
        self, at: datetime, changes: list[Change], recession: dict[str, datetime | None]
    ) -> list[Message]:
        """One message per unit (muted ones apart), each with its target chats; the
        operators' digest of them; and one to the operators when roads with open events
        left the geodata."""
        silences = self.store.silences.active(at)
        wording = self.wording(recession)
        messages = compose(
            changes,
            wording,
            at,
            muted=lambda unit, segment: (
                ("unit", unit) in silences or ("segment", segment) in silences
            ),
            targets=lambda unit: [
                (t.chat_id, t.thread_id) for t in road_alert_targets(self.settings, unit)
            ],
        )
        if (digest := self._digest(messages, wording, at)) is not None:
            messages.append(digest)
        retired = [c for c in changes if c.event.close_reason == "removed"]
        if retired:
            names = sorted({f"{c.event.segment_id} ({KIND_VI.get(c.event.kind, c.event.kind)})"
                            for c in retired})  # fmt: skip
            operators = operator_targets(self.settings)
            messages.append(
                Message(
                    unit=self.settings.operators_unit,
                    kinds=("segment_removed",),
                    body=segments_removed_alarm(names),
                    changes=tuple(retired),
                    targets=[(t.chat_id, t.thread_id) for t in operators],
                )
            )
        return messages

    def _digest(self, messages: list[Message], wording: Wording, at: datetime) -> Message | None:
        """The operators' digest of this cycle's unit messages, when they take digests and
        some message did not reach their chats in full."""
        if self.settings.telegram.operators_copy != "digest":
            return None
        operators = [(t.chat_id, t.thread_id) for t in operator_targets(self.settings)]
        chats = {chat for chat, _ in operators}
        if not any(not m.muted and not chats <= {chat for chat, _ in m.targets} for m in messages):
            return None  # no operators' chat, or every message went to them in full
        return compose_digest(messages, wording, at, self.settings.operators_unit, operators)

    def _reminders(
        self,
        at: datetime,
        current: dict[tuple[str, str], EventState],
        alerted: set[tuple[str, str]],
    ) -> list[Change]:
        """A reminder for each road still flooded and not named in an alert for a while."""
        repeat = timedelta(minutes=self.settings.alerts.repeat_interval_minutes)
        reminders = []
        for key, ev in current.items():
            if key[1] != OBSERVED or ev.status != FLOODED or key in alerted:
                continue
            if (ev.alerted_at or ev.opened_at) + repeat <= at:
                note = f"Nhắc lại: vẫn ngập {ev.depth_m * 100:.0f} cm (mức {ev.level})"
                reminders.append(Change(ev, "reminder", at, note, alert="reminder"))
        return reminders

    def _doubtful_notes(
        self, at: datetime, current: dict[tuple[str, str], EventState], doubtful: list[Reading]
    ) -> list[Change]:
        """Note doubtful readings of this cycle's period on the open events they touch."""
        notes = []
        for (segment_id, kind), ev in current.items():
            segment = self.geodata.segment(segment_id)
            if not doubtful or kind != OBSERVED or ev.status == CLOSED or segment is None:
                continue
            inputs = {
                (segment.tide_station, Variable.WATER_LEVEL),
                (segment.rain_station, Variable.RAINFALL),
            }
            for r in doubtful:
                if (r.station, r.variable) in inputs:
                    unit = "m" if r.variable == Variable.WATER_LEVEL else "mm"
                    note = (
                        f"Số liệu nghi ngờ, không dùng: {r.station} {r.value:g} {unit} lúc "
                        f"{local_time(r.time, self.settings.zone)} ({r.flag})"
                    )
                    notes.append(Change(ev, "doubtful_reading", at, note))
        return notes

    def _report_notes(
        self,
        at: datetime,
        current: dict[tuple[str, str], EventState],
        reports: dict[str, tuple[float, list]],
    ) -> list[Change]:
        """Note each field report not yet linked on its segment's open observed event."""
        notes = []
        for segment_id, (_, rows) in reports.items():
            ev = current.get((segment_id, OBSERVED))
            if ev is None or ev.status == CLOSED:
                continue
            for row in rows:
                if row.event_id is None:
                    note = f"Báo cáo hiện trường: {centimetres(row.depth_m)} ({row.user_name})"
                    if row.note:
                        note += f": {row.note}"
                    notes.append(Change(ev, "field_report", at, note))
        return notes


def utcnow() -> datetime:
    """The current time, aware UTC (the one place the pipeline reads the clock)."""
    return datetime.now(UTC)
