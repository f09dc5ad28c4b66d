"""Exactly one active instance: a PostgreSQL advisory lock, or a file lock beside SQLite.

The lock lives as long as the holder's database connection (or open file): when
the active instance dies, even by SIGKILL, the lock goes with it and a standby
takes over at its next try. The active instance checks that it still holds the
lock on every heartbeat and steps down if it lost it (a dropped connection).
"""

from __future__ import annotations

import fcntl
import logging
from pathlib import Path

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from floodwatch.db.engine import redact
from floodwatch.db.store import Store

logger = logging.getLogger(__name__)

# pg_advisory_lock key: "floodwatch" folded into a signed 64-bit number.
LOCK_KEY = int.from_bytes(b"floodwat", "big") - 2**63


class Leadership:
    """Try to become (and stay) the active instance."""

    def __init__(self, store: Store):
        self.store = store
        url = make_url(store.url)
        self.kind = url.get_backend_name()
        self.where = redact(store.url)
        self._conn: Connection | None = None
        self._file = None
        self._lock_path = (
            Path(url.database + ".leader") if self.kind == "sqlite" and url.database else None
        )

    @property
    def held(self) -> bool:
        """Whether this process believes it is active."""
        return self._conn is not None or self._file is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; never blocks."""
        if self.held:
            return True
        if self.kind == "postgresql":
            try:
                conn = self.store.engine.connect()
                got = conn.execute(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}
                ).scalar()
                conn.commit()
            except SQLAlchemyError as exc:  # an outage is told once, not at every try
                if not self.store.availability.failed(exc, "leader"):
                    logger.warning("leader: cannot ask %s: %s", self.where, type(exc).__name__)
                return False
            self.store.availability.answered("leader")
            if got:
                self._conn = conn
            else:
                conn.close()
            return bool(got)
        if self._lock_path is None:  # an in-memory database: one process by definition
            self._file = True
            return True
        handle = self._lock_path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        return True

    def still_held(self) -> bool:
        """True while the lock is ours (the PostgreSQL session is alive)."""
        if self._conn is None:
            return self._file is not None
        try:
            self._conn.execute(text("SELECT 1")).scalar()
            self._conn.commit()
            return True
        except SQLAlchemyError:
            logger.error("leader: lost the connection holding the lock on %s", self.where)
            self._conn = None
            return False

    def release(self) -> None:
        """Let a standby take over."""
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                self._conn.commit()
                self._conn.close()
            except SQLAlchemyError:
                pass
            self._conn = None
        if self._file not in (None, True):
            self._file.close()
        self._file = None
