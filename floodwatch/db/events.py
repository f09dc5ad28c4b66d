"""Flood events: the open ones for a cycle, the cycle's commit (events, changes, alerts
in one transaction), and the log with its filters, history and notes."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update

from floodwatch.core.events import CLOSED, FORECAST, Change, EventState, Message
from floodwatch.core.skill import IssuedForecast
from floodwatch.core.text import fold
from floodwatch.db.engine import bulk_execute
from floodwatch.db.forecasts import record_forecasts
from floodwatch.db.models import (
    AlertRow,
    CycleRow,
    DeliveryRow,
    EventChangeRow,
    EventNoteRow,
    EventRow,
    SegmentRow,
    may_list,
)
from floodwatch.db.outbox import NewAlert, acknowledge_alerts_of_event, insert_alerts

_EVENT_FIELDS = [f.name for f in fields(EventState)]
# Ids beyond a 64-bit integer cannot be in any table (and would not bind).
MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class EventFilter:
    """Filters of the event log (CLI, web and exports share them)."""

    start: datetime | None = None  # events still open at or closed after this
    end: datetime | None = None  # events opened at or before this
    segment: str | None = None  # segment id
    road: str | None = None  # part of the road name; diacritics and case optional
    ward: str | None = None  # the ward's name; diacritics, case and "Phường"/"Xã" optional
    unit: str | None = None
    kind: str | None = None  # observed or forecast
    status: str | None = None  # forecast, flooded, receding, closed
    open_only: bool = False
    min_level: int | None = None
    cause: str | None = None
    acknowledged: bool | None = None
    false_alarm: bool | None = None


SORTS = {
    "opened": EventRow.opened_at,
    "closed": EventRow.closed_at,
    "peak": EventRow.peak_depth_m,
    "level": EventRow.max_level,
    "road": SegmentRow.name,
    "unit": EventRow.unit,
}


# Words before a ward's name that a person may leave out ("Tân Thành" for "Phường Tân Thành").
_WARD_PREFIXES = ("phuong ", "xa ", "thi tran ")


def _ward_name(folded: str) -> str:
    """A folded ward name without its leading "phuong"/"xa"/"thi tran"."""
    for prefix in _WARD_PREFIXES:
        if folded.startswith(prefix):
            return folded[len(prefix) :]
    return folded


def named_segments(conn: Connection, flt: EventFilter) -> list[str] | None:
    """Ids of the segments the filter's road and ward texts name; None when it has neither.

    Names are compared folded (core.text.fold: no diacritics, đ = d, any case), in Python
    over the segment table's few thousand rows at most: SQLite and PostgreSQL agree on no
    accent-insensitive comparison, and the ids then filter in SQL like any other value.
    """
    if not flt.road and not flt.ward:
        return None
    road, ward = fold(flt.road or ""), _ward_name(fold(flt.ward or ""))
    rows = conn.execute(select(SegmentRow.id, SegmentRow.name, SegmentRow.ward))
    return [
        row.id
        for row in rows
        if road in fold(row.name) and (not ward or _ward_name(fold(row.ward)) == ward)
    ]


def event_query(
    flt: EventFilter,
    sort: str = "opened",
    descending: bool = True,
    named: Sequence[str] | None = None,
):
    """The SELECT of events (with segment name and ward) matching a filter, sorted.

    `named` is `named_segments(conn, flt)`, required when the filter has a road or a ward.
    """
    if (flt.road or flt.ward) and named is None:
        raise ValueError("event_query: resolve the road and ward texts with named_segments")
    query = select(
        EventRow, SegmentRow.name.label("segment_name"), SegmentRow.ward.label("ward")
    ).join(SegmentRow, SegmentRow.id == EventRow.segment_id, isouter=True)
    conditions = []
    if flt.start is not None:
        conditions.append((EventRow.closed_at.is_(None)) | (EventRow.closed_at >= flt.start))
    if flt.end is not None:
        conditions.append(EventRow.opened_at <= flt.end)
    for column, value in (
        (EventRow.segment_id, flt.segment),
        (EventRow.unit, flt.unit), (EventRow.kind, flt.kind), (EventRow.status, flt.status),
        (EventRow.cause, flt.cause), (EventRow.false_alarm, flt.false_alarm),
    ):  # fmt: skip
        if value is not None and value != "":
            conditions.append(column == value)
    if named is not None:
        conditions.append(EventRow.segment_id.in_(named))
    if flt.open_only:
        conditions.append(EventRow.status != CLOSED)
    if flt.min_level is not None:
        conditions.append(EventRow.max_level >= flt.min_level)
    if flt.acknowledged is not None:
        acked = EventRow.ack_at.is_not(None)
        conditions.append(acked if flt.acknowledged else ~acked)
    order = SORTS.get(sort, EventRow.opened_at)
    order = order.desc() if descending else order.asc()
    return query.where(*conditions).order_by(order, EventRow.id.desc())


def _state_values(state: EventState, at: datetime) -> dict:
    """Column values of an event row for a state."""
    values = {name: getattr(state, name) for name in _EVENT_FIELDS if name != "id"}
    values["cause"] = state.cause
    values["updated_at"] = at
    return values


@dataclass(frozen=True)
class CycleStats:
    """The figures of one cycle, stored in its `cycle` row."""

    duration_s: float
    segments: int
    flooded: int
    forecast: int
    changes: int
    alerts: int
    unknown: int
    blind: int


# An event a cycle writes: its id, or (k,) for the k-th event this cycle creates.
_Target = int | tuple[int]


@dataclass
class _WritePlan:
    """A cycle's changes resolved to event rows: new ones, updated ones, and per change its row.

    A row touched several times ends with its last values, as successive
    full-row updates would; it is written once, with one executemany per
    statement (per-row statements cost about 1 ms each).
    """

    targets: list[_Target]
    new_values: list[dict]
    updates: dict[int, dict]
    final: dict[tuple[str, str], _Target]  # (segment, kind) of events still open -> row
    new_ids: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, changes: Sequence[Change], at: datetime) -> _WritePlan:
        """Resolve every change to an existing event id or a new event (by first appearance)."""
        plan = cls([], [], {}, {})
        for change in changes:
            state = change.event
            key = (state.segment_id, state.kind)
            target = state.id or plan.final.get(key)
            values = _state_values(state, at)
            if change.alert:
                values["alerted_at"] = at
            if target is None:
                target = (len(plan.new_values),)
                plan.new_values.append(values)
            elif isinstance(target, tuple):
                _merge(plan.new_values[target[0]], values)
            else:
                _merge(plan.updates.setdefault(target, values), values)
            plan.final[key] = target
            plan.targets.append(target)
            if state.status == CLOSED:
                plan.final.pop(key, None)
        return plan

    def write(self, conn: Connection) -> None:
        """Insert the new events (learning their ids) and update the others."""
        if self.new_values:
            # A plain executemany, then the ids read back: RETURNING in
            # parameter order falls back to one statement per row. Only the
            # active instance writes events, so every id above the largest
            # before the insert is one of ours; a segment opens at most one
            # event of a kind at one moment.
            before = conn.execute(select(func.max(EventRow.id))).scalar() or 0
            bulk_execute(conn, insert(EventRow), self.new_values)
            fresh = conn.execute(
                select(EventRow.id, EventRow.segment_id, EventRow.kind, EventRow.opened_at).where(
                    EventRow.id > before
                )
            )
            by_key = {(row.segment_id, row.kind, row.opened_at): row.id for row in fresh}
            self.new_ids = [
                by_key[(v["segment_id"], v["kind"], v["opened_at"])] for v in self.new_values
            ]
        if self.updates:
            names = list(next(iter(self.updates.values())))
            stmt = (
                update(EventRow)
                .where(EventRow.id == bindparam("event_id"))
                .values({name: bindparam(f"v_{name}") for name in names})
            )
            rows = [
                {"event_id": i, **{f"v_{k}": v[k] for k in names}} for i, v in self.updates.items()
            ]
            bulk_execute(conn, stmt, rows)

    def event_id(self, target: _Target) -> int:
        """The row id of a target, once written."""
        return self.new_ids[target[0]] if isinstance(target, tuple) else target

    def alert(self, message: Message, at: datetime) -> NewAlert:
        """The outbox row of a message, naming the rows of the events it is about."""
        ids = {key: self.event_id(target) for key, target in self.final.items()}
        event_ids = [
            c.event.id or ids[(c.event.segment_id, c.event.kind)]
            for c in message.changes
            if c.event.id or (c.event.segment_id, c.event.kind) in ids
        ]
        return NewAlert(
            at=at,
            unit=message.unit,
            kinds=message.kinds,
            body=message.body,
            targets=message.targets,
            event_ids=event_ids,
            muted=message.muted,
            event_at=message.event_at,
        )


def _merge(row: dict, values: dict) -> None:
    """Later values of a row win, but an alert stamp of this cycle stays."""
    alerted = row.get("alerted_at")
    row.update(values)
    if alerted is not None and (row["alerted_at"] is None or row["alerted_at"] < alerted):
        row["alerted_at"] = alerted


class Events:
    """The `event`, `event_change`, `event_note` and `cycle` tables."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def open(self) -> list[EventState]:
        """Every event that is not closed."""
        # Only the state fields, positionally: building states attribute by
        # attribute from full rows dominated this call with thousands of events.
        columns = [getattr(EventRow, name) for name in _EVENT_FIELDS]
        with self.engine.connect() as conn:
            rows = conn.execute(select(*columns).where(EventRow.status != CLOSED))
            return [EventState(*row) for row in rows]

    def last_cycle_at(self) -> datetime | None:
        """The `at` time of the latest completed cycle."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(CycleRow.at))).scalar()

    def last_cycle(self) -> CycleRow | None:
        """The latest completed cycle."""
        query = select(CycleRow).order_by(CycleRow.at.desc(), CycleRow.id.desc()).limit(1)
        with self.engine.connect() as conn:
            return conn.execute(query).first()

    def record_cycle(
        self,
        at: datetime,
        changes: Sequence[Change],
        messages: Sequence[Message],
        stats: CycleStats,
        forecasts: Mapping[str, IssuedForecast] | None = None,
    ) -> None:
        """Write event changes, their alert messages, the forecasts that changed
        (`db.forecasts`) and the cycle row in one transaction.

        Every event named by an alert this cycle is stamped `alerted_at = at`.
        """
        plan = _WritePlan.of(changes, at)
        with self.engine.begin() as conn:
            plan.write(conn)
            change_rows = [
                {
                    "event_id": plan.event_id(target),
                    "at": change.at,
                    "change": change.change,
                    "status": change.event.status,
                    "level": change.event.level,
                    "depth_m": change.event.peak_depth_m
                    if change.event.kind == FORECAST
                    else change.event.depth_m,
                    "note": change.note,
                }
                for change, target in zip(changes, plan.targets, strict=True)
                if change.change
            ]
            bulk_execute(conn, insert(EventChangeRow), change_rows)
            insert_alerts(conn, [plan.alert(message, at) for message in messages])
            if forecasts is not None:
                record_forecasts(conn, at, forecasts)
            conn.execute(
                insert(CycleRow).values(at=at, finished_at=datetime.now(UTC), **asdict(stats))
            )

    def listing(
        self,
        flt: EventFilter = EventFilter(),
        *,
        sort: str = "opened",
        descending: bool = True,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[EventRecord]:
        """Events matching the filter, newest first unless sorted otherwise."""
        with self.engine.connect() as conn:
            query = event_query(flt, sort, descending, named_segments(conn, flt)).offset(offset)
            if limit is not None:
                query = query.limit(limit)
            return [EventRecord.of(row) for row in conn.execute(query)]

    def at(self, at: datetime, flt: EventFilter = EventFilter()) -> list[EventRecord]:
        """Events open at `at`, each with its status, level and depth as of then.

        At or after the latest cycle that is simply the open events; before it,
        the state comes from each event's last recorded change at or before `at`
        (peak: the deepest change recorded by then).
        """
        last = self.last_cycle_at()
        if last is None or at >= last:
            return self.listing(replace(flt, open_only=True, end=flt.end or at))
        with self.engine.connect() as conn:
            query = event_query(replace(flt, end=at), named=named_segments(conn, flt)).where(
                (EventRow.status != CLOSED) | (EventRow.updated_at >= at)
            )
            candidates = {row.id: EventRecord.of(row) for row in conn.execute(query)}
            if not candidates:
                return []
            latest = (
                select(func.max(EventChangeRow.id))
                .where(EventChangeRow.event_id.in_(candidates), EventChangeRow.at <= at)
                .group_by(EventChangeRow.event_id)
            )
            then = {
                row.event_id: row
                for row in conn.execute(select(EventChangeRow).where(EventChangeRow.id.in_(latest)))
            }
            peaks = dict(
                conn.execute(
                    select(EventChangeRow.event_id, func.max(EventChangeRow.depth_m))
                    .where(EventChangeRow.event_id.in_(candidates), EventChangeRow.at <= at)
                    .group_by(EventChangeRow.event_id)
                ).all()
            )
        found = []
        for event_id, ev in candidates.items():
            change = then.get(event_id)
            if change is None or change.status == CLOSED:
                continue
            found.append(
                replace(
                    ev,
                    status=change.status,
                    level=change.level,
                    max_level=max(ev.max_level if ev.kind == FORECAST else 0, change.level),
                    peak_depth_m=round(peaks.get(event_id, change.depth_m), 3),
                    closed_at=None,
                    close_reason=None,
                )
            )
        return found

    def count(self, flt: EventFilter = EventFilter()) -> int:
        """How many events match the filter."""
        with self.engine.connect() as conn:
            matching = event_query(flt, named=named_segments(conn, flt)).order_by(None)
            query = select(func.count()).select_from(matching.subquery())
            return conn.execute(query).scalar_one()

    def stream(self, flt: EventFilter = EventFilter(), batch: int = 2000) -> Iterator[EventRecord]:
        """Stream matching events (oldest first) without loading them all."""
        with self.engine.connect() as conn:
            query = event_query(flt, "opened", descending=False, named=named_segments(conn, flt))
            result = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
            for row in result:
                yield EventRecord.of(row)

    def get(self, event_id: int) -> EventRecord | None:
        """One event in the public JSON shape, with its current level; None if unknown."""
        if not 0 < event_id <= MAX_ID:
            return None
        query = event_query(EventFilter()).where(EventRow.id == event_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return EventRecord.of(row)

    def changes(self, event_id: int) -> list[EventChangeRow]:
        """The recorded changes of an event, oldest first."""
        query = (
            select(EventChangeRow)
            .where(EventChangeRow.event_id == event_id)
            .order_by(EventChangeRow.at, EventChangeRow.id)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def alerts_naming(self, event_id: int) -> list[tuple[AlertRow, list[DeliveryRow]]]:
        """Alerts whose `event_ids` list holds this event, each with its deliveries."""
        query = select(AlertRow).where(may_list(AlertRow.event_ids, event_id))
        with self.engine.connect() as conn:
            alerts = [
                a for a in conn.execute(query.order_by(AlertRow.id)) if event_id in a.event_ids
            ]
            ids = [a.id for a in alerts]
            deliveries: dict[int, list] = {i: [] for i in ids}
            if ids:
                rows = conn.execute(
                    select(DeliveryRow)
                    .where(DeliveryRow.alert_id.in_(ids))
                    .order_by(DeliveryRow.id)
                )
                for row in rows:
                    deliveries[row.alert_id].append(row)
        return [(a, deliveries[a.id]) for a in alerts]

    def notes(self, event_id: int) -> list[EventNoteRow]:
        """Operator notes (and acknowledgement / false-alarm marks) of an event, oldest first."""
        query = (
            select(EventNoteRow)
            .where(EventNoteRow.event_id == event_id)
            .order_by(EventNoteRow.at, EventNoteRow.id)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def add_note(self, event_id: int, at: datetime, author: str, kind: str, text: str):
        """Record an operator note; `ack` and `false_alarm*` also update the event row."""
        values: dict = {}
        if kind == "ack":
            values = {"ack_by": author, "ack_at": at}
        elif kind == "false_alarm":
            values = {"false_alarm": True}
        elif kind == "false_alarm_cleared":
            values = {"false_alarm": False}
        with self.engine.begin() as conn:
            if values:
                query = update(EventRow).where(EventRow.id == event_id).values(**values)
                if kind == "ack":  # the first acknowledgement stands
                    query = query.where(EventRow.ack_at.is_(None))
                    acknowledge_alerts_of_event(conn, event_id, author, at)
                conn.execute(query)
            conn.execute(
                insert(EventNoteRow).values(
                    event_id=event_id, at=at, author=author, kind=kind, text=text
                )
            )


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An event as the log shows it: the `events --format json` fields (DESIGN.md contract),
    with datetimes kept as aware UTC datetimes until the edge (`as_json`)."""

    id: int
    segment_id: str
    segment_name: str | None
    unit: str
    kind: str
    status: str
    opened_at: datetime
    closed_at: datetime | None
    peak_depth_m: float
    peak_at: datetime | None
    max_level: int
    cause: str | None
    expected_onset_at: datetime | None
    expected_end_at: datetime | None
    close_reason: str | None
    forecast_event_id: int | None
    ward: str | None
    ack_by: str | None
    ack_at: datetime | None
    false_alarm: bool
    level: int  # the current level (0 once the water is below the first threshold)

    @classmethod
    def of(cls, row) -> EventRecord:
        """The record of an `event_query` row."""
        return cls(
            id=row.id, segment_id=row.segment_id, segment_name=row.segment_name, unit=row.unit,
            kind=row.kind, status=row.status, opened_at=row.opened_at, closed_at=row.closed_at,
            peak_depth_m=round(row.peak_depth_m, 3), peak_at=row.peak_at,
            max_level=row.max_level, cause=row.cause, expected_onset_at=row.expected_onset_at,
            expected_end_at=row.expected_end_at, close_reason=row.close_reason,
            forecast_event_id=row.forecast_event_id, ward=row.ward, ack_by=row.ack_by,
            ack_at=row.ack_at, false_alarm=bool(row.false_alarm), level=row.level,
        )  # fmt: skip

    def as_dict(self) -> dict:
        """The fields as a dict, datetimes kept (for typed APIs)."""
        return {name: getattr(self, name) for name in self.__slots__}

    def as_json(self) -> dict:
        """The fields as JSON values: times ISO 8601 with their offset (`+00:00`)."""
        return {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in self.as_dict().items()
        }


def dumps(events: Sequence[EventRecord]) -> str:
    """Events as a JSON array (UTF-8, Vietnamese kept readable)."""
    return json.dumps([e.as_json() for e in events], ensure_ascii=False, indent=2)
