"""Warning skill: what the service forecast, scored against what was then observed.

Pure arithmetic over three inputs, all read from the store by the caller:

- `IssuedForecast`: each segment's first expected wet episode as a cycle issued
  it, kept only when it changed (a row stays in force until the next one of its
  segment; a row with `level == 0` withdraws the forecast);
- `ObservedFlood`: each observed event, with the time it first reached each level;
- `Coverage`: the observation times of every station, to tell "it stayed dry"
  from "nobody could see".

For each level L (counting floods that reached at least L):

- an observed flood reaching L at time T is a **hit** when the forecast in force
  just before T (the segment's last row issued before T) predicted level L or
  more with T inside its wet window, widened by `window` either side; its
  **lead time** is T minus the issue time of the first row of the unbroken run
  of such rows. Otherwise it is a **miss**.
- a **warning** is a run of consecutive rows at level L or more whose widened
  windows overlap (a run issued once the water was already there is none). It
  is verified when an observed flood at L or more overlaps it; otherwise it is
  **pending** when its widened window ends after the period, **unverifiable**
  when the gauges it depends on have a gap longer than `max_gap` within its
  window, and a **false alarm** if not.

POD = hits / (hits + misses); FAR = false alarms / (hits + false alarms);
CSI = hits / (hits + misses + false alarms). A score with a zero denominator
is None ("không xác định"), never 0.
"""

from __future__ import annotations

import bisect
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from floodwatch.core.depth import RAIN, TIDE

HIT, MISS = "hit", "miss"
VERIFIED, FALSE_ALARM, UNVERIFIABLE, PENDING = "verified", "false_alarm", "unverifiable", "pending"
# Lead-time bands (hours) for the timing and peak errors of tide-driven forecasts.
LEAD_BANDS_H = (0, 6, 12, 24, 48)


@dataclass(frozen=True)
class IssuedForecast:
    """A segment's next wet episode as one cycle forecast it (level 0: no flooding expected)."""

    segment_id: str
    issued_at: datetime
    level: int = 0
    onset_at: datetime | None = None
    end_at: datetime | None = None
    peak_at: datetime | None = None
    peak_m: float | None = None
    cause: int = 0

    def same_as(self, other: IssuedForecast | None, depth_m: float = 0.02) -> bool:
        """Whether `other` says the same (times equal, level equal, peak within depth_m)."""
        if other is None:
            return self.level == 0
        if self.level != other.level or self.level == 0:
            return self.level == other.level
        if self.under_way and other.under_way:
            # An episode under way: its peak moves with "now" every cycle; only a new
            # level, cause or end is news (a row a cycle would be no forecast at all).
            return (self.end_at, self.cause) == (other.end_at, other.cause)
        return (
            self.onset_at == other.onset_at
            and (self.end_at, self.peak_at, self.cause)
            == (other.end_at, other.peak_at, other.cause)
            and abs((self.peak_m or 0.0) - (other.peak_m or 0.0)) < depth_m
        )  # fmt: skip

    @property
    def under_way(self) -> bool:
        """Whether the forecast episode had begun when it was issued (its onset is "now")."""
        return self.onset_at is not None and self.onset_at <= self.issued_at

    def window(self, widen: timedelta) -> tuple[datetime, datetime]:
        """The predicted wet period, widened either side."""
        assert self.onset_at is not None and self.end_at is not None
        return self.onset_at - widen, self.end_at + widen


@dataclass(frozen=True)
class ObservedFlood:
    """An observed event, with when it first reached each level (None: never)."""

    event_id: int
    segment_id: str
    unit: str
    opened_at: datetime
    closed_at: datetime | None
    reached: tuple[datetime | None, ...]  # index L-1: first time at level L or more
    peak_m: float
    peak_at: datetime | None

    def at_level(self, level: int) -> datetime | None:
        """When the flood first reached `level`, if it did."""
        return self.reached[level - 1] if level <= len(self.reached) else None


@dataclass(frozen=True)
class Coverage:
    """Observation times per (station, variable), to find gaps."""

    times: Mapping[tuple[str, str], Sequence[datetime]]
    max_gap: timedelta

    def covered(self, station: str, variable: str, start: datetime, end: datetime) -> bool:
        """Whether observations of the station never pause longer than max_gap in [start, end]."""
        times = self.times.get((station, variable), ())
        i = bisect.bisect_right(times, start)
        previous = times[i - 1] if i > 0 else None
        if previous is None or start - previous > self.max_gap:
            return False
        for t in times[i:]:
            if t > end:
                return True
            if t - previous > self.max_gap:
                return False
            previous = t
        return end - previous <= self.max_gap


@dataclass(frozen=True)
class Road:
    """What scoring needs of a segment."""

    unit: str
    tide_station: str
    rain_station: str


@dataclass(frozen=True)
class Rules:
    """The period and tolerances of one backtest."""

    start: datetime
    end: datetime
    levels: int
    window: timedelta = timedelta(hours=3)


@dataclass(frozen=True)
class Outcome:
    """One observed flood at one level: hit or miss, and how early it was warned."""

    segment_id: str
    unit: str
    level: int
    event_id: int
    observed_at: datetime
    result: str
    first_warning_at: datetime | None = None
    lead: timedelta | None = None


@dataclass(frozen=True)
class Warning:
    """A run of forecasts of one segment at one level, and what became of it."""

    segment_id: str
    unit: str
    level: int
    first_issued_at: datetime
    onset_at: datetime
    end_at: datetime
    verdict: str


@dataclass(frozen=True)
class TimingError:
    """A tide-driven forecast of a hit, compared with what happened."""

    segment_id: str
    lead: timedelta
    onset_error: timedelta
    peak_error_m: float


@dataclass(frozen=True)
class Scores:
    """Counts and scores of one group at one level."""

    hits: int = 0
    misses: int = 0
    false_alarms: int = 0
    unverifiable: int = 0
    pending: int = 0
    leads_h: tuple[float, ...] = ()

    @property
    def pod(self) -> float | None:
        return _ratio(self.hits, self.hits + self.misses)

    @property
    def far(self) -> float | None:
        return _ratio(self.false_alarms, self.hits + self.false_alarms)

    @property
    def csi(self) -> float | None:
        return _ratio(self.hits, self.hits + self.misses + self.false_alarms)

    @property
    def median_lead_h(self) -> float | None:
        return statistics.median(self.leads_h) if self.leads_h else None

    @property
    def min_lead_h(self) -> float | None:
        return min(self.leads_h) if self.leads_h else None


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass
class Skill:
    """Every outcome, warning and timing error of a backtest, and their tables."""

    rules: Rules
    outcomes: list[Outcome] = field(default_factory=list)
    warnings: list[Warning] = field(default_factory=list)
    timing: list[TimingError] = field(default_factory=list)

    def scores(self, level: int, key: str | None = None) -> dict[str, Scores]:
        """Scores at `level`, overall (key None, under "") or per "unit" or "segment_id"."""
        counts: dict[str, dict] = defaultdict(lambda: defaultdict(int))
        leads: dict[str, list[float]] = defaultdict(list)
        for o in self.outcomes:
            if o.level == level:
                group = getattr(o, key) if key else ""
                counts[group]["hits" if o.result == HIT else "misses"] += 1
                if o.lead is not None:
                    leads[group].append(o.lead.total_seconds() / 3600)
        names = {FALSE_ALARM: "false_alarms", UNVERIFIABLE: "unverifiable", PENDING: "pending"}
        for w in self.warnings:
            if w.level == level and w.verdict in names:
                counts[getattr(w, key) if key else ""][names[w.verdict]] += 1
        return {
            group: Scores(**counts[group], leads_h=tuple(sorted(leads[group])))
            for group in sorted(counts)
        }

    def timing_bands(self) -> list[tuple[str, int, float | None, float | None]]:
        """Per lead band: label, count, mean onset error (h) and mean peak error (m)."""
        rows = []
        edges = (*LEAD_BANDS_H, None)
        for low, high in zip(edges, edges[1:], strict=False):
            inside = [
                t
                for t in self.timing
                if t.lead >= timedelta(hours=low)
                and (high is None or t.lead < timedelta(hours=high))
            ]
            label = f"{low}–{high} h" if high is not None else f"≥ {low} h"
            onset = [t.onset_error.total_seconds() / 3600 for t in inside]
            peak = [t.peak_error_m for t in inside]
            rows.append((label, len(inside), _mean(onset), _mean(peak)))
        return rows


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def score(
    rules: Rules,
    roads: Mapping[str, Road],
    issued: Iterable[IssuedForecast],
    floods: Iterable[ObservedFlood],
    coverage: Coverage,
) -> Skill:
    """Score every segment at every level (see the module's docstring for the rules)."""
    skill = Skill(rules)
    by_segment: dict[str, list[IssuedForecast]] = defaultdict(list)
    for row in sorted(issued, key=lambda r: (r.segment_id, r.issued_at)):
        by_segment[row.segment_id].append(row)
    floods_of: dict[str, list[ObservedFlood]] = defaultdict(list)
    for flood in floods:
        floods_of[flood.segment_id].append(flood)
    for segment_id in sorted(set(by_segment) | set(floods_of)):
        road = roads.get(segment_id)
        if road is None:
            continue  # a segment no longer in the geodata
        rows, seen = by_segment.get(segment_id, []), floods_of.get(segment_id, [])
        for level in range(1, rules.levels + 1):
            _score_floods(skill, road, segment_id, level, rows, seen)
            _score_warnings(skill, road, segment_id, level, rows, seen, coverage)
    return skill


def _warns(row: IssuedForecast, level: int, when: datetime, widen: timedelta) -> bool:
    """Whether the row predicted `level` or more with `when` in its widened window."""
    if row.level < level:
        return False
    start, end = row.window(widen)
    return start <= when <= end


def _score_floods(
    skill: Skill,
    road: Road,
    segment_id: str,
    level: int,
    rows: list[IssuedForecast],
    floods: list[ObservedFlood],
) -> None:
    """Hit or miss, and lead time, for each flood of a segment that reached `level`."""
    rules = skill.rules
    issue_times = [r.issued_at for r in rows]
    for flood in floods:
        when = flood.at_level(level)
        if when is None or not rules.start <= when < rules.end:
            continue
        last = bisect.bisect_left(issue_times, when) - 1
        if last < 0 or not _warns(rows[last], level, when, rules.window):
            skill.outcomes.append(Outcome(segment_id, road.unit, level, flood.event_id, when, MISS))
            continue
        first = last
        while first > 0 and _warns(rows[first - 1], level, when, rules.window):
            first -= 1
        issued_at = rows[first].issued_at
        skill.outcomes.append(
            Outcome(
                segment_id, road.unit, level, flood.event_id, when, HIT, issued_at,
                when - issued_at,
            )
        )  # fmt: skip
        if level == 1:
            skill.timing.extend(_timing(segment_id, flood, when, rows[first : last + 1]))


def _timing(
    segment_id: str, flood: ObservedFlood, when: datetime, rows: list[IssuedForecast]
) -> list[TimingError]:
    """Onset and peak errors of each tide-driven row that warned of a flood."""
    return [
        TimingError(
            segment_id,
            when - row.issued_at,
            row.onset_at - when,
            round((row.peak_m or 0.0) - flood.peak_m, 4),
        )
        for row in rows
        if row.cause == TIDE and row.onset_at is not None
    ]


def _runs(rows: list[IssuedForecast], level: int, widen: timedelta):
    """Maximal runs of consecutive rows at `level` or more whose widened windows overlap."""
    run: list[IssuedForecast] = []
    for row in rows:
        if row.level < level:
            if run:
                yield run
            run = []
            continue
        if run and row.window(widen)[0] > max(r.window(widen)[1] for r in run):
            yield run
            run = []
        run.append(row)
    if run:
        yield run


def _score_warnings(
    skill: Skill,
    road: Road,
    segment_id: str,
    level: int,
    rows: list[IssuedForecast],
    floods: list[ObservedFlood],
    coverage: Coverage,
) -> None:
    """The verdict on each warning of a segment at `level` issued in the period."""
    rules = skill.rules
    for run in _runs(rows, level, rules.window):
        if not rules.start <= run[0].issued_at < rules.end or run[0].under_way:
            continue  # outside the period, or issued once the water was there: no warning
        onset = min(r.onset_at for r in run)
        end = max(r.end_at for r in run)
        verdict = _verdict(rules, road, level, run, floods, coverage, (onset, end))
        skill.warnings.append(
            Warning(segment_id, road.unit, level, run[0].issued_at, onset, end, verdict)
        )


def _verdict(
    rules: Rules,
    road: Road,
    level: int,
    run: list[IssuedForecast],
    floods: list[ObservedFlood],
    coverage: Coverage,
    span: tuple[datetime, datetime],
) -> str:
    """verified, pending, unverifiable or false_alarm (in that order of precedence)."""
    low, high = span[0] - rules.window, span[1] + rules.window
    for flood in floods:
        reached = flood.at_level(level)
        if reached is not None and reached <= high and (flood.closed_at or rules.end) >= low:
            return VERIFIED
    if high > rules.end:  # a flood that would verify it may come after the period
        return PENDING
    causes = 0
    for row in run:
        causes |= row.cause
    seen = coverage.covered(road.tide_station, "water_level", *span)
    if causes & RAIN:
        seen = seen and coverage.covered(road.rain_station, "rainfall", *span)
    return FALSE_ALARM if seen else UNVERIFIABLE
