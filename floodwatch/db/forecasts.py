"""Forecasts kept for scoring, and what `floodwatch backtest` reads back.

Each cycle's forecast of a segment (its next expected wet episode) is written
only when it differs from the segment's row in force, in the cycle's own
transaction; a forecast that disappears gets a level-0 row. A season of hourly
cycles over a stable tide forecast thus keeps a few rows per flood, not one
per cycle and segment.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Connection, Engine, func, insert, select, update

from floodwatch.core.readings import Kind
from floodwatch.core.skill import IssuedForecast, ObservedFlood
from floodwatch.db.engine import bulk_execute
from floodwatch.db.models import (
    CycleRow,
    EventChangeRow,
    EventRow,
    ForecastIssueRow,
    ReadingRow,
)

_FIELDS = ("level", "onset_at", "end_at", "peak_at", "peak_m", "cause")


def _issued(row) -> IssuedForecast:
    return IssuedForecast(
        row.segment_id, row.issued_at, row.level, row.onset_at, row.end_at, row.peak_at,
        row.peak_m, row.cause,
    )  # fmt: skip


def record_forecasts(
    conn: Connection, at: datetime, forecasts: Mapping[str, IssuedForecast]
) -> int:
    """Write the forecasts that changed since each segment's row in force; returns how many."""
    current = {
        row.segment_id: _issued(row)
        for row in conn.execute(select(ForecastIssueRow).where(ForecastIssueRow.current))
    }
    changed = [
        forecast
        for segment_id, forecast in forecasts.items()
        if not forecast.same_as(current.get(segment_id))
    ]
    changed += [
        IssuedForecast(segment_id, at)
        for segment_id in current.keys() - forecasts.keys()
    ]  # fmt: skip
    if not changed:
        return 0
    ids = [f.segment_id for f in changed]
    for start in range(0, len(ids), 1000):
        conn.execute(
            update(ForecastIssueRow)
            .where(
                ForecastIssueRow.current, ForecastIssueRow.segment_id.in_(ids[start : start + 1000])
            )
            .values(current=False)
        )
    rows = [
        {"segment_id": f.segment_id, "issued_at": at, "current": f.level > 0}
        | {name: getattr(f, name) for name in _FIELDS}
        for f in changed
    ]
    bulk_execute(conn, insert(ForecastIssueRow), rows)
    return len(rows)


class Forecasts:
    """The `forecast_issue` table, and the observed side of a backtest."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def issued(self, before: datetime) -> list[IssuedForecast]:
        """Every forecast row issued before `before`, by segment and issue time."""
        query = (
            select(ForecastIssueRow)
            .where(ForecastIssueRow.issued_at < before)
            .order_by(ForecastIssueRow.segment_id, ForecastIssueRow.issued_at, ForecastIssueRow.id)
        )
        with self.engine.connect() as conn:
            return [_issued(row) for row in conn.execute(query)]

    def observed_floods(self, start: datetime, end: datetime, levels: int) -> list[ObservedFlood]:
        """Observed events overlapping [start, end) not marked false alarms, with when each
        level was first reached (from their recorded changes)."""
        events = (
            select(EventRow)
            .where(
                EventRow.kind == str(Kind.OBSERVED),
                EventRow.opened_at < end,
                (EventRow.closed_at.is_(None)) | (EventRow.closed_at >= start),
                EventRow.false_alarm.is_(False),
            )
            .order_by(EventRow.id)
        )
        with self.engine.connect() as conn:
            rows = list(conn.execute(events))
            reached = self._reached([row.id for row in rows], levels, conn)
        return [
            ObservedFlood(
                row.id, row.segment_id, row.unit, row.opened_at, row.closed_at,
                reached.get(row.id, (row.opened_at,) + (None,) * (levels - 1)),
                row.peak_depth_m, row.peak_at,
            )
            for row in rows
        ]  # fmt: skip

    @staticmethod
    def _reached(ids: list[int], levels: int, conn: Connection) -> dict[int, tuple]:
        """Per event: the first change time at each level 1..levels (None if never)."""
        firsts: dict[int, list] = defaultdict(lambda: [None] * levels)
        for start in range(0, len(ids), 1000):
            query = (
                select(EventChangeRow.event_id, EventChangeRow.at, EventChangeRow.level)
                .where(EventChangeRow.event_id.in_(ids[start : start + 1000]))
                .order_by(EventChangeRow.event_id, EventChangeRow.at, EventChangeRow.id)
            )
            for event_id, at, level in conn.execute(query):
                first = firsts[event_id]
                for index in range(min(level, levels)):
                    if first[index] is None:
                        first[index] = at
        return {event_id: tuple(first) for event_id, first in firsts.items()}

    def observation_times(
        self, start: datetime, end: datetime
    ) -> dict[tuple[str, str], list[datetime]]:
        """Times of the unflagged observations of every station and variable in [start, end]."""
        query = (
            select(ReadingRow.station, ReadingRow.variable, ReadingRow.time)
            .where(
                ReadingRow.kind == str(Kind.OBSERVED),
                ReadingRow.flag.is_(None),
                ReadingRow.time >= start,
                ReadingRow.time <= end,
            )
            .order_by(ReadingRow.station, ReadingRow.variable, ReadingRow.time)
        )
        out: dict[tuple[str, str], list[datetime]] = defaultdict(list)
        with self.engine.connect() as conn:
            for station, variable, time in conn.execute(query):
                out[(station, variable)].append(time)
        return dict(out)

    def span(self) -> tuple[datetime, datetime] | None:
        """The first and the last cycle's time, if any cycle ran."""
        with self.engine.connect() as conn:
            first, last = conn.execute(select(func.min(CycleRow.at), func.max(CycleRow.at))).one()
        return (first, last) if first is not None else None
