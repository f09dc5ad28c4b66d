"""One assessment cycle: stored readings → depths → event changes → alert outbox."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np

from floodwatch.alerts import compose
from floodwatch.assess import (
    DEPTH_TOLERANCE_M,
    ModelParams,
    Outlook,
    alarm_levels,
    assess,
    outlook,
    rain_category,
)
from floodwatch.config import Settings
from floodwatch.events import (
    CLOSED,
    FLOODED,
    OBSERVED,
    Change,
    EventState,
    Forecast,
    Rules,
    SegmentNow,
    step,
)
from floodwatch.geo import Geodata, Segment, segment_arrays
from floodwatch.readings import Kind, Reading, Rejection, Variable
from floodwatch.routing import targets
from floodwatch.series import Grid, level_series, make_grid, rain_series, rain_total
from floodwatch.store import Store, database_errors
from floodwatch.text import centimetres, local_time
from floodwatch.validate import Verdict, validate

logger = logging.getLogger(__name__)


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
    """A station now: level against its alarm levels, rain against the categories."""

    station: str
    level_m: float | None
    level_observed: bool
    alarm: int  # 0 below BĐ I, 1..3 = BĐ I..III
    rain_24h_mm: float | None
    rain_category: int  # 0 none, 1.. = [rain] names


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


class Pipeline:
    """The assessment and event stages over one store, for one set of geodata."""

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
        # (station, variable) inputs whose every source is stale; set by source health.
        self.blind_inputs: set[tuple[str, str]] = set()
        # Doubtful readings stored since the last cycle, to note on open events.
        self._doubtful: list[Reading] = []

    def ingest(self, readings: Iterable[Reading], source: str) -> int:
        """Store readings from a source; returns how many were written."""
        count = self.store.upsert_readings(readings, source)
        logger.info("%s: %d readings stored", source, count)
        return count

    def ingest_checked(self, readings: list[Reading], now: datetime, source: str) -> Verdict:
        """Validate readings as known at `now`, store the accepted (and flagged) ones.

        Raises StorageError when the database cannot be reached or written.
        """
        with database_errors(self.store.url):
            return self._ingest_checked(readings, now, source)

    def _ingest_checked(self, readings: list[Reading], now: datetime, source: str) -> Verdict:
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
        recent = self.store.recent_observations(pairs, now - timedelta(hours=12))
        horizon = timedelta(hours=self.settings.assessment.horizon_hours)
        verdict = validate(
            known, now=now, horizon=horizon, limits=self.settings.validation, recent=recent
        )
        self.ingest(verdict.accepted, source)
        self._doubtful += verdict.flagged
        if unknown:
            verdict = replace(verdict, rejected=[*unknown, *verdict.rejected])
        return verdict

    def _reminders(
        self, at: datetime, open_events: dict[tuple[str, str], EventState], changes: list[Change]
    ) -> list[Change]:
        """A reminder for each road still flooded and not named in an alert for a while."""
        repeat = timedelta(minutes=self.settings.alerts.repeat_interval_minutes)
        current = {**open_events, **{(c.event.segment_id, c.event.kind): c.event for c in changes}}
        reminders = []
        for (_, kind), ev in current.items():
            if kind != OBSERVED or ev.status != FLOODED:
                continue
            if (ev.alerted_at or ev.opened_at) + repeat <= at:
                note = f"Nhắc lại: vẫn ngập {ev.depth_m * 100:.0f} cm (mức {ev.level})"
                reminders.append(
                    Change(replace(ev, alerted_at=at), "reminder", at, note, alert="reminder")
                )
        return reminders

    def _doubtful_notes(
        self, at: datetime, open_events: dict[tuple[str, str], EventState], changes: list[Change]
    ) -> list[Change]:
        """Record doubtful readings since the last cycle on the open events they touch."""
        doubtful, self._doubtful = self._doubtful, []
        if not doubtful:
            return []
        current = {**open_events, **{(c.event.segment_id, c.event.kind): c.event for c in changes}}
        notes = []
        for (segment_id, kind), ev in current.items():
            segment = self.geodata.segment(segment_id)
            if kind != OBSERVED or ev.status == CLOSED or segment is None:
                continue
            for r in doubtful:
                if (r.station, r.variable) in (
                    (segment.tide_station, Variable.WATER_LEVEL),
                    (segment.rain_station, Variable.RAINFALL),
                ):
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
        open_events: dict[tuple[str, str], EventState],
        changes: list[Change],
        reports: dict[str, tuple[float, list]],
    ) -> list[Change]:
        """Note each field report not yet linked on its segment's open observed event."""
        if not reports:
            return []
        current = {**open_events, **{(c.event.segment_id, c.event.kind): c.event for c in changes}}
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

    def blind_segments(self) -> list[Segment]:
        """Segments that need an input no fresh source delivers."""
        blind = self.blind_inputs
        if not blind:
            return []
        return [
            s
            for s in self.geodata.segments
            if (s.tide_station, Variable.WATER_LEVEL.value) in blind
            or (s.rain_station, Variable.RAINFALL.value) in blind
        ]

    def window(self, at: datetime) -> tuple[datetime, datetime]:
        """The time span a cycle at `at` reads (and sources should cover)."""
        grid = self.grid(at)
        return grid.at(0), grid.at(len(grid.times_s) - 1)

    def grid(self, at: datetime) -> Grid:
        """The assessment grid of a cycle at `at`."""
        a = self.settings.assessment
        return make_grid(at, a.step_minutes, a.lookback_hours, a.horizon_hours)

    def assess_at(self, at: datetime) -> tuple[Grid, Outlook]:
        """Assess every segment over the grid of `at` from what is stored."""
        grid = self.grid(at)
        start, end = grid.at(0), grid.at(len(grid.times_s) - 1)
        max_age_s = self.settings.assessment.observed_max_age_minutes * 60
        level_rows = self.store.reading_arrays(
            Variable.WATER_LEVEL, self.tide_index, start - timedelta(hours=3), end, at
        )
        rain_rows = self.store.reading_arrays(Variable.RAINFALL, self.rain_index, start, end, at)
        levels = level_series(grid, len(self.tide_stations), level_rows, max_age_s)
        rain = rain_series(grid, len(self.rain_stations), rain_rows, max_age_s)
        result = assess(
            self.params,
            self.arrays["crest_m"],
            self.arrays["drain_mm_h"],
            self.arrays["outfall_m"],
            self.tide_idx,
            self.rain_idx,
            levels,
            rain,
        )
        return grid, outlook(result, self.params, grid.now_idx, self.tide_idx, self.rain_idx,
                             levels, rain)  # fmt: skip

    def station_states(self, at: datetime) -> list[StationState]:
        """Each station's level and alarm level (BĐ) and 24-hour rain category at `at`."""
        grid = self.grid(at)
        start, end = grid.at(0) - timedelta(hours=12), grid.at(len(grid.times_s) - 1)
        max_age_s = self.settings.assessment.observed_max_age_minutes * 60
        level_rows = self.store.reading_arrays(
            Variable.WATER_LEVEL, self.tide_index, start, end, at
        )
        rain_rows = self.store.reading_arrays(Variable.RAINFALL, self.rain_index, start, end, at)
        levels = level_series(grid, len(self.tide_stations), level_rows, max_age_s)
        rain = rain_series(grid, len(self.rain_stations), rain_rows, max_age_s)
        level_now = levels.values[:, grid.now_idx]
        alarms = np.array(
            [
                [np.nan if a is None else a for a in self.geodata.stations[sid].alarm_m]
                for sid in self.tide_stations
            ]
        ).reshape(len(self.tide_stations), 3)
        alarm = alarm_levels(level_now, alarms)
        rain_24h = rain_total(rain, grid, 24)
        category = rain_category(rain_24h, tuple(self.settings.rain.categories_mm_24h))
        states = []
        for sid in self.geodata.stations:
            t, r = self.tide_index.get(sid), self.rain_index.get(sid)
            states.append(
                StationState(
                    station=sid,
                    level_m=None if t is None or np.isnan(level_now[t]) else float(level_now[t]),
                    level_observed=t is not None and bool(levels.observed[t, grid.now_idx]),
                    alarm=0 if t is None else int(alarm[t]),
                    rain_24h_mm=None if r is None else float(rain_24h[r]),
                    rain_category=0 if r is None else int(category[r]),
                )
            )
        return states

    def cycle(self, at: datetime) -> CycleResult:
        """Run one cycle at `at` (real or simulated time) and commit its outcome.

        Raises StorageError when the database cannot be reached or written (lost
        connection, locked, disk full); the cycle's writes are one transaction,
        so nothing of it is kept and the next cycle catches up.
        """
        with database_errors(self.store.url):
            return self._cycle(at)

    def _cycle(self, at: datetime) -> CycleResult:
        """cycle, with database failures still raw."""
        started = time.perf_counter()
        last = self.store.last_cycle_at()
        if last is not None and at <= last:
            logger.info("cycle: %s already assessed (latest %s); skipped", at, last)
            return CycleResult(at, [], 0, 0, 0, 0, 0.0, skipped=True)
        grid, out = self.assess_at(at)
        # Field reports count as observed depths for as long as a gauge reading would.
        max_age = timedelta(minutes=self.settings.assessment.observed_max_age_minutes)
        reports = self.store.recent_field_reports(at - max_age, at)
        open_events: dict[tuple[str, str], EventState] = {
            (e.segment_id, e.kind): e for e in self.store.open_events()
        }
        first_threshold = self.rules.thresholds_m[0] - DEPTH_TOLERANCE_M
        candidates = (out.observed & (out.obs_depth_m >= first_threshold)) | out.fc_has
        with_events = {seg for seg, _ in open_events}
        segments = self.geodata.segments
        # Python-level work only for segments that can change (wet now or later, or
        # with an open event), in segment order; plain lists and a precomputed time
        # table avoid numpy scalar and datetime overhead per segment.
        visit = candidates | np.fromiter(
            (s.id in with_events for s in segments), bool, len(segments)
        )
        for segment_id in reports:
            if (index := self.segment_index.get(segment_id)) is not None:
                visit[index] = True
        times = [grid.at(k) for k in range(len(grid.times_s))]
        last_idx = len(times) - 1
        observed, obs_depth_m, obs_cause = (
            out.observed.tolist(),
            out.obs_depth_m.tolist(),
            out.obs_cause.tolist(),
        )
        fc_has, fc_onset, fc_end = out.fc_has.tolist(), out.fc_onset.tolist(), out.fc_end.tolist()
        fc_peak, fc_peak_m, fc_cause = (
            out.fc_peak.tolist(),
            out.fc_peak_m.tolist(),
            out.fc_cause.tolist(),
        )
        changes: list[Change] = []
        for i in np.flatnonzero(visit).tolist():
            segment = segments[i]
            forecast = None
            if fc_has[i]:
                forecast = Forecast(
                    onset_at=max(times[fc_onset[i]], at),
                    end_at=times[min(fc_end[i], last_idx)],
                    peak_at=times[fc_peak[i]],
                    peak_m=fc_peak_m[i],
                    cause=fc_cause[i],
                )
            seg_observed, seg_depth_m, seg_cause = observed[i], obs_depth_m[i], obs_cause[i]
            if (reported := reports.get(segment.id)) is not None:
                seg_depth_m = max(seg_depth_m if seg_observed else 0.0, reported[0])
                if not (seg_observed and seg_cause):
                    seg_cause = fc_cause[i] if fc_has[i] else 0
                seg_observed = True
            now = SegmentNow(
                segment_id=segment.id,
                unit=segment.unit,
                at=at,
                observed=seg_observed,
                obs_depth_m=seg_depth_m,
                obs_cause=seg_cause,
                forecast=forecast,
            )
            changes.extend(
                step(
                    now,
                    open_events.get((segment.id, OBSERVED)),
                    open_events.get((segment.id, "forecast")),
                    self.rules,
                )
            )
        changes = [
            replace(c, event=replace(c.event, alerted_at=at)) if c.alert else c for c in changes
        ]
        changes += self._reminders(at, open_events, changes)
        changes += self._doubtful_notes(at, open_events, changes)
        changes += self._report_notes(at, open_events, changes, reports)
        silences = self.store.active_silences(at)
        messages = compose(
            changes,
            self.geodata,
            self.unit_names,
            self.settings.zone,
            self.settings.levels.names,
            at,
            muted=lambda unit, segment: (
                ("unit", unit) in silences or ("segment", segment) in silences
            ),
        )
        for message in messages:
            message["targets"] = [
                (t.chat_id, t.thread_id) for t in targets(self.settings, message["unit"])
            ]
        final = {(c.event.segment_id, c.event.kind): c.event for c in changes}
        states = {**open_events, **final}
        flooded = sum(1 for (_, k), e in states.items() if k == OBSERVED and e.status != CLOSED)
        forecast_open = sum(
            1 for (_, k), e in states.items() if k == "forecast" and e.status != CLOSED
        )
        unknown = int((~out.now_known).sum())
        blind = len(self.blind_segments())
        duration_s = time.perf_counter() - started
        self.store.record_cycle(
            at,
            changes,
            messages,
            {
                "duration_s": duration_s,
                "segments": len(segments),
                "flooded": flooded,
                "forecast": forecast_open,
                "changes": sum(1 for c in changes if c.change),
                "alerts": len(messages),
                "unknown": unknown,
                "blind": blind,
            },
        )
        if reports:
            # Right after the commit: a crash in between only repeats a note next cycle.
            self.store.link_field_reports(at, at - max_age)
        logger.info(
            "cycle %s: %d flooded, %d forecast, %d blind, %d changes, %d alerts, %.2fs",
            at.isoformat(),
            flooded,
            forecast_open,
            blind,
            sum(1 for c in changes if c.change),
            len(messages),
            duration_s,
        )
        return CycleResult(at, changes, len(messages), flooded, forecast_open, unknown, duration_s)


def utcnow() -> datetime:
    """The current time, aware UTC (the one place the pipeline reads the clock)."""
    return datetime.now(UTC)
