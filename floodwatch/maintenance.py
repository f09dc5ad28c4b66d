"""Database upkeep: migrations on demand, online backups, and retention of old readings.

Retention deletes readings (and per-poll source runs) only; events, their
changes, alerts and reports are the log and are kept for good.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete
from sqlalchemy.engine import make_url

from floodwatch.errors import StorageError
from floodwatch.models import ReadingRow, SourceRunRow
from floodwatch.store import Store, redact

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
