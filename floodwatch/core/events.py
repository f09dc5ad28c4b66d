"""The per-segment flood-event state machine (pure: no database, no clock).

Observed events:  flooded (level n) ⇄ receding → closed
Forecast events:  forecast → closed (confirmed | cancelled | expired)

Hysteresis keeps a depth hovering at a threshold from flapping: a level is left
only when the depth falls `hysteresis_m` below its threshold, and an observed
event closes only after the road has stayed below level 1 for
`close_after_minutes` (receding); water rising again in that time re-floods
the same event.

What is not known never lowers a state (floodwatch.known): an observation
missing one of its usual inputs may open or deepen an event but never make it
shallower or close it, and a forecast whose inputs no longer reach its onset is
held rather than cancelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum

from floodwatch.core.depth import CAUSE_NAMES, DEPTH_TOLERANCE_M
from floodwatch.core.readings import Kind
from floodwatch.core.text import centimetres, duration, local_time


class EventStatus(StrEnum):
    """Where an event stands (stored as these strings)."""

    FORECAST = "forecast"  # expected, not yet on the road
    FLOODED = "flooded"
    RECEDING = "receding"  # below level 1, closing after close_after_minutes
    CLOSED = "closed"


# An event's kind is the kind of data that opened it: observed water or a forecast.
OBSERVED, FORECAST = Kind.OBSERVED, Kind.FORECAST
FLOODED, RECEDING, CLOSED = EventStatus.FLOODED, EventStatus.RECEDING, EventStatus.CLOSED


@dataclass(frozen=True)
class Rules:
    """Thresholds and timings of the state machine (from the config)."""

    thresholds_m: tuple[float, ...]
    hysteresis_m: float = 0.03
    close_after: timedelta = timedelta(minutes=60)
    forecast_shift: timedelta = timedelta(minutes=60)
    forecast_shift_depth_m: float = 0.05
    zone: tzinfo = UTC  # for times written into notes

    def raw_level(self, depth_m: float) -> int:
        """Number of thresholds the depth reaches."""
        return sum(depth_m >= t - DEPTH_TOLERANCE_M for t in self.thresholds_m)

    def level(self, depth_m: float, previous: int) -> int:
        """The level with hysteresis: rising is immediate, falling needs a margin."""
        level = self.raw_level(depth_m)
        if level >= previous:
            return level
        level = previous
        while level > 0 and depth_m < self.thresholds_m[level - 1] - self.hysteresis_m - (
            DEPTH_TOLERANCE_M
        ):
            level -= 1
        return level


@dataclass(frozen=True)
class Forecast:
    """The first expected wet episode of a segment."""

    onset_at: datetime
    end_at: datetime
    peak_at: datetime
    peak_m: float
    cause: int


@dataclass(frozen=True)
class SegmentNow:
    """What the assessment says about one segment at one cycle."""

    segment_id: str
    unit: str
    at: datetime
    observed: bool  # an observed input exists now; otherwise observed events hold
    obs_depth_m: float
    obs_cause: int
    forecast: Forecast | None
    # Every input that is normally observed has a fresh observation; when not, the
    # depth is a lower bound: it may raise an event, never lower or close it.
    complete: bool = True
    # Until when the forecast's inputs are known (None: the whole horizon); a forecast
    # event expected after it is held, not cancelled, when no flooding is forecast.
    forecast_known_until: datetime | None = None


@dataclass(frozen=True)
class EventState:
    """An event as the state machine sees it (the store mirrors it in a row)."""

    segment_id: str
    unit: str
    kind: str
    status: str
    opened_at: datetime
    level: int = 0
    max_level: int = 0
    depth_m: float = 0.0
    peak_depth_m: float = 0.0
    peak_at: datetime | None = None
    causes: int = 0
    below_since: datetime | None = None
    expected_onset_at: datetime | None = None
    expected_end_at: datetime | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
    forecast_event_id: int | None = None
    alerted_at: datetime | None = None  # when an alert last named this event
    id: int | None = None

    @property
    def cause(self) -> str | None:
        """tide, rain or compound, from every cause seen during the event."""
        return CAUSE_NAMES.get(self.causes)


@dataclass(frozen=True)
class Change:
    """One recorded change of one event, with the alert it calls for (if any)."""

    event: EventState  # the state after the change
    change: str
    at: datetime
    note: str
    alert: str | None = None


@dataclass(frozen=True)
class Message:
    """One alert message for one unit: its kinds (most severe first), text and changes.

    `targets` are the (chat id, thread id) pairs it goes to; a muted message is
    stored for the log and goes nowhere.
    """

    unit: str
    kinds: tuple[str, ...]
    body: str
    changes: tuple[Change, ...]
    muted: bool = False
    targets: Sequence[tuple[int, int | None]] = ()

    @property
    def event_at(self) -> datetime | None:
        """The moment it describes: its earliest change (None without changes)."""
        return min((c.at for c in self.changes), default=None)


def _open_observed(now: SegmentNow, rules: Rules) -> list[Change]:
    """Open an observed event when the depth reaches level 1, else nothing."""
    depth = now.obs_depth_m
    level = rules.raw_level(depth)
    if level == 0:
        return []
    ev = EventState(
        segment_id=now.segment_id,
        unit=now.unit,
        kind=OBSERVED,
        status=FLOODED,
        opened_at=now.at,
        level=level,
        max_level=level,
        depth_m=depth,
        peak_depth_m=depth,
        peak_at=now.at,
        causes=now.obs_cause,
    )
    note = f"Bắt đầu ngập: sâu {centimetres(depth)} (mức {level})"
    return [Change(ev, "opened", now.at, note, alert="onset")]


def _observed_transition(
    now: SegmentNow, ev: EventState, updated: EventState, level: int, rules: Rules
) -> list[Change]:
    """The status change (if any) from `ev` to `updated`, an observed event at `level`."""
    depth = now.obs_depth_m
    wet = level >= 1
    if wet and ev.status == RECEDING:
        updated = replace(updated, status=FLOODED, below_since=None)
        note = f"Ngập trở lại: sâu {centimetres(depth)} (mức {level})"
        return [Change(updated, "reflooded", now.at, note, alert="level_up")]
    if wet and level != ev.level:
        change = "level_up" if level > ev.level else "level_down"
        note = f"Mức {ev.level} → {level}: sâu {centimetres(depth)}"
        return [Change(updated, change, now.at, note, alert=change)]
    if not wet and ev.status == FLOODED:
        updated = replace(updated, status=RECEDING, below_since=now.at)
        note = f"Nước rút dưới ngưỡng: sâu {centimetres(depth)}"
        return [Change(updated, "receding", now.at, note)]
    if (
        not wet
        and ev.status == RECEDING
        and ev.below_since is not None
        and now.at - ev.below_since >= rules.close_after
    ):
        updated = replace(updated, status=CLOSED, closed_at=ev.below_since, close_reason="receded")
        note = f"Hết ngập từ {duration(now.at - ev.below_since)} trước"
        return [Change(updated, "closed", now.at, note, alert="all_clear")]
    # No state change: keep the new depth and peak without recording a change.
    return [Change(updated, "", now.at, "")] if updated != ev else []


def _observed_step(now: SegmentNow, ev: EventState | None, rules: Rules) -> list[Change]:
    """Advance (or open) the observed event of a segment."""
    if ev is None:
        return _open_observed(now, rules)

    depth = now.obs_depth_m
    level = rules.level(depth, ev.level)
    if not now.complete and (level < ev.level or level == 0):
        # Part of the picture is missing: what is seen can only add to the event.
        if depth > ev.peak_depth_m:
            return [Change(replace(ev, peak_depth_m=depth, peak_at=now.at), "", now.at, "")]
        return []
    wet = level >= 1
    updated = replace(
        ev,
        depth_m=depth,
        level=level,
        max_level=max(ev.max_level, level),
        causes=ev.causes | (now.obs_cause if wet else 0),
    )
    if depth > ev.peak_depth_m:
        updated = replace(updated, peak_depth_m=depth, peak_at=now.at)
    return _observed_transition(now, ev, updated, level, rules)


def _forecast_fields(fc: Forecast, level: int) -> dict:
    """The event fields a forecast episode sets."""
    return {
        "level": level,
        "max_level": level,
        "peak_depth_m": fc.peak_m,
        "peak_at": fc.peak_at,
        "causes": fc.cause,
        "expected_onset_at": fc.onset_at,
        "expected_end_at": fc.end_at,
    }


def _open_forecast(now: SegmentNow, fc: Forecast, rules: Rules) -> Change:
    """A new forecast event for the segment's next wet episode."""
    level = rules.raw_level(fc.peak_m)
    ev = EventState(
        segment_id=now.segment_id,
        unit=now.unit,
        kind=FORECAST,
        status=EventStatus.FORECAST,
        opened_at=now.at,
        **_forecast_fields(fc, level),
    )
    note = (
        f"Dự báo ngập sau {duration(fc.onset_at - now.at)}: "
        f"sâu nhất {centimetres(fc.peak_m)} (mức {level})"
    )
    return Change(ev, "opened", now.at, note, alert="forecast")


def _close(ev: EventState, at: datetime, reason: str, note: str, alert: str | None) -> Change:
    """Close an event with a reason."""
    closed = replace(ev, status=CLOSED, closed_at=at, close_reason=reason)
    return Change(closed, reason if ev.kind == FORECAST else "closed", at, note, alert=alert)


def retire(ev: EventState, at: datetime) -> Change:
    """Close an event whose segment is no longer in the geodata (no alert)."""
    return _close(ev, at, "removed", "Đoạn đường không còn trong dữ liệu địa lý", None)


def _forecast_step(now: SegmentNow, ev: EventState | None, rules: Rules) -> list[Change]:
    """Open, update or close the forecast event of a segment without an observed one."""
    fc = now.forecast
    if fc is None:
        if ev is None:
            return []
        if ev.expected_onset_at is not None and ev.expected_onset_at <= now.at:
            return [_close(ev, now.at, "expired", "Hết thời gian dự báo", None)]
        known_until = now.forecast_known_until
        if known_until is not None and (ev.expected_onset_at or now.at) >= known_until:
            return []  # no data reaches the expected onset: not a reason to cancel
        return [_close(ev, now.at, "cancelled", "Dự báo ngập đã được huỷ", "forecast_cancelled")]
    if ev is None:
        return [_open_forecast(now, fc, rules)]
    if ev.expected_end_at is not None and fc.onset_at > ev.expected_end_at:
        # The episode this event forecast is over; the next one is a new event.
        return [
            _close(ev, now.at, "expired", "Hết thời gian dự báo", None),
            _open_forecast(now, fc, rules),
        ]
    level = rules.raw_level(fc.peak_m)
    # Once the expected episode has begun, its onset is "now" every cycle; only
    # a move of a still-future onset counts.
    onset_moved = abs(fc.onset_at - ev.expected_onset_at) >= rules.forecast_shift and (
        fc.onset_at > now.at or ev.expected_onset_at > now.at
    )
    moved = (
        onset_moved
        or abs(fc.peak_m - ev.peak_depth_m) >= rules.forecast_shift_depth_m
        or level != ev.max_level
    )
    if not moved:
        return []
    updated = replace(ev, **_forecast_fields(fc, level))
    note = (
        f"Cập nhật dự báo: bắt đầu {local_time(fc.onset_at, rules.zone)}, "
        f"sâu nhất {centimetres(fc.peak_m)} (mức {level})"
    )
    return [Change(updated, "forecast_updated", now.at, note, alert="forecast_update")]


def step(
    now: SegmentNow,
    observed: EventState | None,
    forecast: EventState | None,
    rules: Rules,
    with_forecast: bool = True,
) -> list[Change]:
    """All changes for one segment at one moment, observed event first.

    A change with an empty `change` name only carries new depth/peak values.
    `with_forecast=False` steps only the observed event (an observation time
    between cycles), though a forecast it confirms is still closed.
    """
    # Without a fresh observation an open observed event holds its state.
    changes = _observed_step(now, observed, rules) if now.observed else []
    current = changes[-1].event if changes else observed
    if current is not None and current.status != CLOSED:
        # Observed water on the road: a pending forecast came true.
        if forecast is not None and changes and changes[0].change == "opened":
            changes[0] = replace(
                changes[0], event=replace(changes[0].event, forecast_event_id=forecast.id)
            )
            changes.append(_close(forecast, now.at, "confirmed", "Dự báo đã xảy ra", None))
        return changes
    if not with_forecast:
        return changes
    return changes + _forecast_step(now, forecast, rules)


def step_through(
    moments: list[SegmentNow],
    observed: EventState | None,
    forecast: EventState | None,
    rules: Rules,
) -> list[Change]:
    """Step one segment through several moments of one cycle, oldest first.

    Every moment but the last is an observation time since the previous cycle
    (observed event only); the last is the cycle itself, forecast included. So a
    peak seen between two grid steps opens, raises and peaks the event at its
    own time.
    """
    changes: list[Change] = []
    last = len(moments) - 1
    for index, now in enumerate(moments):
        new = step(now, observed, forecast, rules, with_forecast=index == last)
        for change in new:
            if change.event.kind == OBSERVED:
                observed = change.event if change.event.status != CLOSED else None
            else:
                forecast = change.event if change.event.status != CLOSED else None
        changes += new
    return changes
