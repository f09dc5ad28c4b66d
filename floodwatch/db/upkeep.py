"""Database upkeep: online backups, retention of old readings, rows from the future.

Retention deletes readings (and per-poll source runs) only; events, their
changes, alerts and reports are the log and are kept for good.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import make_url

from floodwatch.core.validate import EARLIEST, FORECAST_SLACK, OBSERVED_CLOCK_SLACK
from floodwatch.db.engine import redact
from floodwatch.db.models import (
    CycleRow,
    EventChangeRow,
    EventNoteRow,
    EventRow,
    FieldReportRow,
    ReadingRow,
    SourceRunRow,
)
from floodwatch.db.store import Store
from floodwatch.errors import StorageError

logger = logging.getLogger(__name__)


def backup_sqlite(store: Store, target: Path) -> int:
    """Copy a live SQLite database with SQLite's online backup API; returns the bytes written.

    Writers may keep working: the backup API copies a consistent snapshot.
    """
    url = make_url(store.url)
    if url.get_backend_name() != "sqlite" or not url.database:
        raise StorageError(
            f"{redact(store.url)} is not a SQLite file; back PostgreSQL up with pg_dump, e.g. "
            "`pg_dump --format=custom --file=floodwatch.dump DBNAME` (docs/deploy.md)"
        )
    target = Path(target)
    if target.exists():
        raise StorageError(f"{target}: already exists; choose a new file name")
    target.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(url.database)
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy, pages=1024)
        finally:
            copy.close()
    except sqlite3.Error as exc:
        target.unlink(missing_ok=True)
        raise StorageError(f"backup to {target} failed: {exc}") from None
    finally:
        source.close()
    size = target.stat().st_size
    logger.info("backup: %s → %s (%d bytes)", redact(store.url), target, size)
    return size


@dataclass(frozen=True)
class Retention:
    """What a retention run removed."""

    readings: int
    source_runs: int
    cutoff: datetime


def apply_retention(store: Store, now: datetime, keep_days: int) -> Retention:
    """Delete readings and source runs older than `keep_days`; events are never touched."""
    if keep_days < 1:
        raise StorageError("retention: keep_days must be at least 1")
    cutoff = now - timedelta(days=keep_days)
    with store.engine.begin() as conn:
        readings = conn.execute(delete(ReadingRow).where(ReadingRow.time < cutoff)).rowcount
        runs = conn.execute(delete(SourceRunRow).where(SourceRunRow.at < cutoff)).rowcount
    logger.info("retention: removed %d readings and %d source runs before %s", readings, runs,
                cutoff.isoformat())  # fmt: skip
    return Retention(readings, runs, cutoff)


@dataclass(frozen=True)
class FromTheFuture:
    """Rows dated ahead of the clock: what a wrong clock or an old bug left behind."""

    cutoff: datetime  # the wall clock plus the clock slack
    cycles: int
    readings: int
    events: int  # events opened after the cutoff (deleted with their changes and notes)
    changes: int  # changes dated after the cutoff on events opened before it
    changed_events: list[int]  # those events: their state may need an operator's look


def _future_conditions(cutoff: datetime, horizon: timedelta):
    """WHERE clauses of readings, cycles, events and changes that lie in the future."""
    readings = (
        (ReadingRow.issued > cutoff)
        | (ReadingRow.time > cutoff + horizon + FORECAST_SLACK)
        | (ReadingRow.time < EARLIEST)
        | (ReadingRow.issued < EARLIEST)
    )
    return readings, CycleRow.at > cutoff, EventRow.opened_at > cutoff, EventChangeRow.at > cutoff


def future_rows(
    store: Store, now: datetime, horizon: timedelta, *, delete_them: bool = False
) -> FromTheFuture:
    """Count (and with `delete_them`, delete in one transaction) what is dated after `now`.

    Readings count when issued after now, timed beyond the forecast horizon or
    before 1970; cycles and events when after now. Alerts already sent stay in
    the outbox's history.
    """
    cutoff = now + OBSERVED_CLOCK_SLACK
    readings, cycles, events, changes = _future_conditions(cutoff, horizon)
    with store.engine.begin() as conn:
        future_events = select(EventRow.id).where(events)
        counts = [
            conn.execute(select(func.count()).select_from(ReadingRow).where(readings)).scalar(),
            conn.execute(select(func.count()).select_from(CycleRow).where(cycles)).scalar(),
            conn.execute(select(func.count()).select_from(EventRow).where(events)).scalar(),
        ]
        changed = conn.execute(
            select(EventChangeRow.event_id, func.count())
            .where(changes, EventChangeRow.event_id.not_in(future_events))
            .group_by(EventChangeRow.event_id)
            .order_by(EventChangeRow.event_id)
        ).all()
        if delete_them:
            conn.execute(delete(ReadingRow).where(readings))
            conn.execute(delete(CycleRow).where(cycles))
            conn.execute(delete(EventChangeRow).where(changes))
            conn.execute(delete(EventChangeRow).where(EventChangeRow.event_id.in_(future_events)))
            conn.execute(delete(EventNoteRow).where(EventNoteRow.event_id.in_(future_events)))
            conn.execute(
                update(FieldReportRow)
                .where(FieldReportRow.event_id.in_(future_events))
                .values(event_id=None)
            )
            conn.execute(delete(EventRow).where(events))
    found = FromTheFuture(
        cutoff, counts[1], counts[0], counts[2], sum(n for _, n in changed),
        [event_id for event_id, _ in changed],
    )  # fmt: skip
    if delete_them:
        logger.warning("db future: removed %s", found)
    return found
