"""Statistics over the log and the outbox, aggregated in SQL: table counts, what
`/metrics` reports, and the planners' per-road flood statistics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import BigInteger, Engine, case, cast, extract, false, func, literal, select

from floodwatch.core.events import CLOSED, OBSERVED
from floodwatch.db.events import EventFilter, event_query, named_segments
from floodwatch.db.models import (
    AlertRow,
    CycleRow,
    DeliveryRow,
    EventChangeRow,
    EventRow,
    FieldReportRow,
    ReadingRow,
    SegmentRow,
    SourceRunRow,
)
from floodwatch.db.outbox import PENDING


def _sql_helpers(dialect: str):
    """Epoch seconds, two-argument max/min and floor-to-integer in this dialect's SQL."""
    if dialect == "sqlite":  # naive UTC text; julianday 2440587.5 is 1970-01-01T00:00Z

        def epoch(column):
            return (func.julianday(column) - 2440587.5) * 86400.0

        def floor_int(value):  # epochs are positive: truncation is floor
            return cast(value, BigInteger)

        return epoch, func.max, func.min, floor_int

    def epoch(column):
        return extract("epoch", column)

    def floor_int(value):
        return cast(func.floor(value), BigInteger)

    return epoch, func.greatest, func.least, floor_int


def _event_stats_query(dialect: str, start: datetime, end: datetime, offset_s: float):
    """One GROUP BY segment over observed, non-false-alarm events overlapping [start, end]."""
    epoch, greatest, least, floor_int = _sql_helpers(dialect)
    start_s = literal(start.timestamp())
    end_s = literal(end.timestamp())
    lo = greatest(epoch(EventRow.opened_at), start_s)
    hi = least(func.coalesce(epoch(EventRow.closed_at), end_s), end_s)
    # Local day numbers; the last instant is taken 1 s early so that an event
    # ending at midnight does not count the day it never touched.
    first_day = floor_int((lo + offset_s) / 86400.0)
    last_day = floor_int((greatest(hi - 1.0, lo) + offset_s) / 86400.0)
    by_segment = EventRow.segment_id
    per_event = (
        select(
            by_segment.label("segment_id"),
            (greatest(hi - lo, 0.0) / 3600.0).label("hours"),
            EventRow.peak_depth_m.label("peak"),
            EventRow.cause.label("cause"),
            func.coalesce(EventRow.peak_at, EventRow.opened_at).label("peak_at"),
            EventRow.opened_at.label("opened_at"),
            first_day.label("first_day"),
            last_day.label("last_day"),
            # Highest local day already covered by this segment's earlier events:
            # distinct flooded dates without listing the dates.
            func.max(last_day)
            .over(partition_by=by_segment, order_by=(lo, EventRow.id), rows=(None, -1))
            .label("covered_day"),
            func.row_number()
            .over(
                partition_by=by_segment,
                order_by=(EventRow.peak_depth_m.desc(), EventRow.peak_at, EventRow.id),
            )
            .label("depth_rank"),
        )
        .where(
            EventRow.kind == OBSERVED,
            EventRow.false_alarm == false(),
            EventRow.opened_at <= end,
            EventRow.closed_at.is_(None) | (EventRow.closed_at >= start),
        )
        .subquery()
    )
    return _per_segment(per_event.c, greatest)


def _per_segment(ev, greatest):
    """Sum the per-event rows of `_event_stats_query` up per segment."""
    from_day = greatest(ev.first_day, func.coalesce(ev.covered_day, ev.first_day - 1) + 1)
    new_days = greatest(ev.last_day - from_day + 1, 0)

    def count_cause(cause: str):
        return func.sum(case((ev.cause == cause, 1), else_=0))

    return select(
        ev.segment_id,
        func.count().label("events"),
        func.sum(new_days).label("flood_days"),
        func.sum(ev.hours).label("hours"),
        func.max(ev.peak).label("max_peak"),
        func.avg(ev.peak).label("mean_peak"),
        count_cause("tide").label("tide"),
        count_cause("rain").label("rain"),
        count_cause("compound").label("compound"),
        func.max(case((ev.depth_rank == 1, ev.peak_at))).label("worst_at"),
        func.max(ev.opened_at).label("last_at"),
        func.sum(ev.hours * ev.peak).label("depth_hours"),
    ).group_by(ev.segment_id)


class Stats:
    """Aggregates read by status, `/metrics`, the planners' export and CAP."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def counts(self) -> dict[str, int]:
        """Row counts of the main tables (for status)."""
        with self.engine.connect() as conn:
            return {
                table.__tablename__: conn.execute(select(func.count()).select_from(table)).scalar()
                for table in (
                    ReadingRow,
                    EventRow,
                    EventChangeRow,
                    AlertRow,
                    CycleRow,
                    SourceRunRow,
                )
            }

    def outbox_figures(self) -> tuple[int, int, datetime | None]:
        """(pending deliveries, pending alerts, creation time of the oldest pending alert).

        An alert stays pending until none of its deliveries is, so the oldest
        pending alert is also the oldest message still waiting for any chat.
        """
        with self.engine.connect() as conn:
            deliveries = conn.execute(
                select(func.count()).select_from(DeliveryRow).where(DeliveryRow.status == PENDING)
            ).scalar_one()
            alerts, oldest = conn.execute(
                select(func.count(), func.min(AlertRow.created_at)).where(
                    AlertRow.status == PENDING
                )
            ).one()
        return deliveries, alerts, oldest

    def source_totals(self) -> list[tuple]:
        """Per source: (name, accepted, flagged, rejected, ok polls, polls) over stored runs."""
        query = select(
            SourceRunRow.source,
            func.sum(SourceRunRow.accepted),
            func.sum(SourceRunRow.flagged),
            func.sum(SourceRunRow.rejected),
            func.sum(case((SourceRunRow.ok, 1), else_=0)),
            func.count(),
        ).group_by(SourceRunRow.source)
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(query.order_by(SourceRunRow.source))]

    def open_events_by_level(self) -> dict[tuple[str, int], int]:
        """Open events counted by (kind, current level)."""
        query = (
            select(EventRow.kind, EventRow.level, func.count())
            .where(EventRow.status != CLOSED)
            .group_by(EventRow.kind, EventRow.level)
        )
        with self.engine.connect() as conn:
            return {(kind, level): n for kind, level, n in conn.execute(query)}

    def deliveries_by_chat(self) -> list[tuple]:
        """Per chat and status: (chat, status, deliveries, attempts)."""
        query = select(
            DeliveryRow.chat_id, DeliveryRow.status, func.count(), func.sum(DeliveryRow.attempts)
        ).group_by(DeliveryRow.chat_id, DeliveryRow.status)
        with self.engine.connect() as conn:
            order = (DeliveryRow.chat_id, DeliveryRow.status)
            return [tuple(row) for row in conn.execute(query.order_by(*order))]

    def maintenance(
        self, start: datetime, end: datetime, offset_s: float
    ) -> tuple[dict[str, object], dict[str, int]]:
        """(per-segment event statistics over [start, end], field reports per segment)."""
        query = _event_stats_query(self.engine.dialect.name, start, end, offset_s)
        reports = (
            select(FieldReportRow.segment_id, func.count())
            .where(FieldReportRow.at >= start, FieldReportRow.at <= end)
            .group_by(FieldReportRow.segment_id)
        )
        with self.engine.connect() as conn:
            stats = {row.segment_id: row for row in conn.execute(query)}
            report_counts = dict(conn.execute(reports).all())
        return stats, report_counts

    def cap_changes(
        self, since: datetime | None, flt: EventFilter | None, changes: tuple[str, ...]
    ) -> Iterator:
        """Changes of the given kinds of events with one at or after `since`, per event in order."""
        query = (
            select(
                EventChangeRow.id.label("change_id"),
                EventChangeRow.event_id,
                EventChangeRow.at,
                EventChangeRow.change,
                EventChangeRow.level,
                EventChangeRow.depth_m,
                EventChangeRow.note,
                EventRow.kind,
                EventRow.segment_id,
                EventRow.opened_at,
                EventRow.max_level,
                EventRow.peak_depth_m,
                EventRow.peak_at,
                EventRow.cause,
                EventRow.expected_onset_at,
                EventRow.expected_end_at,
                SegmentRow.name,
                SegmentRow.ward,
                SegmentRow.geometry,
            )
            .join(EventRow, EventRow.id == EventChangeRow.event_id)
            .join(SegmentRow, SegmentRow.id == EventRow.segment_id, isouter=True)
            .where(EventChangeRow.change.in_(changes))
            .order_by(EventChangeRow.event_id, EventChangeRow.id)
        )
        if since is not None:
            # Whole histories of the events touched since then: references need them.
            recent = select(EventChangeRow.event_id).where(
                EventChangeRow.at >= since, EventChangeRow.change.in_(changes)
            )
            query = query.where(EventChangeRow.event_id.in_(recent))
        with self.engine.connect() as conn:
            if flt is not None:
                matching = event_query(flt, named=named_segments(conn, flt)).order_by(None)
                ids = matching.with_only_columns(EventRow.id)
                query = query.where(EventChangeRow.event_id.in_(ids))
            yield from conn.execution_options(stream_results=True, yield_per=2000).execute(query)
