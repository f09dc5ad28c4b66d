"""Reads and operator writes the web needs beyond the store's public methods."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, func, insert, literal, select, update

from floodwatch.models import (
    AlertRow,
    CycleRow,
    DeliveryRow,
    EventChangeRow,
    EventNoteRow,
    EventRow,
    ReadingRow,
)
from floodwatch.outbox import acknowledge_alerts_of_event
from floodwatch.store import EventFilter, event_dict, event_query

# Ids beyond a 64-bit integer cannot be in any table (and would not bind).
MAX_ID = 2**63 - 1


def event(engine: Engine, event_id: int) -> dict | None:
    """One event in the public JSON shape, with its current level; None if unknown."""
    if not 0 < event_id <= MAX_ID:
        return None
    query = event_query(EventFilter()).where(EventRow.id == event_id)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    return event_dict(row)


def changes(engine: Engine, event_id: int) -> list[EventChangeRow]:
    """The recorded changes of an event, oldest first."""
    query = (
        select(EventChangeRow)
        .where(EventChangeRow.event_id == event_id)
        .order_by(EventChangeRow.at, EventChangeRow.id)
    )
    with engine.connect() as conn:
        return list(conn.execute(query))


def alerts_naming(engine: Engine, event_id: int) -> list[tuple[AlertRow, list[DeliveryRow]]]:
    """Alerts whose `event_ids` list holds this event, each with its deliveries."""
    # event_ids is comma-separated: wrap it in commas so 1 does not match 11.
    wrapped = literal(",") + AlertRow.event_ids + literal(",")
    query = select(AlertRow).where(wrapped.like(f"%,{int(event_id)},%")).order_by(AlertRow.id)
    with engine.connect() as conn:
        alerts = list(conn.execute(query))
        ids = [a.id for a in alerts]
        deliveries: dict[int, list] = {i: [] for i in ids}
        if ids:
            rows = conn.execute(
                select(DeliveryRow).where(DeliveryRow.alert_id.in_(ids)).order_by(DeliveryRow.id)
            )
            for row in rows:
                deliveries[row.alert_id].append(row)
    return [(a, deliveries[a.id]) for a in alerts]


def notes(engine: Engine, event_id: int) -> list[EventNoteRow]:
    """Operator notes (and acknowledgement / false-alarm marks) of an event, oldest first."""
    query = (
        select(EventNoteRow)
        .where(EventNoteRow.event_id == event_id)
        .order_by(EventNoteRow.at, EventNoteRow.id)
    )
    with engine.connect() as conn:
        return list(conn.execute(query))


def add_note(engine: Engine, event_id: int, at: datetime, author: str, kind: str, text: str):
    """Record an operator note; `ack` and `false_alarm*` also update the event row."""
    values: dict = {}
    if kind == "ack":
        values = {"ack_by": author, "ack_at": at}
    elif kind == "false_alarm":
        values = {"false_alarm": True}
    elif kind == "false_alarm_cleared":
        values = {"false_alarm": False}
    with engine.begin() as conn:
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


def last_cycle(engine: Engine) -> CycleRow | None:
    """The latest completed cycle."""
    query = select(CycleRow).order_by(CycleRow.at.desc(), CycleRow.id.desc()).limit(1)
    with engine.connect() as conn:
        return conn.execute(query).first()


def readings(
    engine: Engine,
    station: str | None,
    variable: str | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> list[ReadingRow]:
    """Stored readings, oldest first, at most `limit`."""
    query = select(ReadingRow)
    if station:
        query = query.where(ReadingRow.station == station)
    if variable:
        query = query.where(ReadingRow.variable == variable)
    if start is not None:
        query = query.where(ReadingRow.time >= start)
    if end is not None:
        query = query.where(ReadingRow.time <= end)
    query = query.order_by(ReadingRow.time, ReadingRow.id).limit(limit)
    with engine.connect() as conn:
        return list(conn.execute(query))


def latest_levels(
    engine: Engine, until: datetime | None = None
) -> dict[str, tuple[datetime, float, str]]:
    """Latest observed water level per station known by `until`: (time, value m, kind)."""
    newest = select(ReadingRow.station, func.max(ReadingRow.time).label("time")).where(
        ReadingRow.variable == "water_level", ReadingRow.kind == "observed"
    )
    if until is not None:
        newest = newest.where(ReadingRow.time <= until)
    newest = newest.group_by(ReadingRow.station).subquery()
    query = (
        select(ReadingRow.station, ReadingRow.time, ReadingRow.value, ReadingRow.kind)
        .join(newest, (ReadingRow.station == newest.c.station) & (ReadingRow.time == newest.c.time))
        .where(ReadingRow.variable == "water_level", ReadingRow.kind == "observed")
    )
    with engine.connect() as conn:
        return {row.station: (row.time, row.value, row.kind) for row in conn.execute(query)}
