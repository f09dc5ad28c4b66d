"""Database outages: noticed once, told once, recorded when they end.

Every thread of `run` that touches the database (the sender's passes, the
scheduler's jobs, the heartbeat, the bot's commands and buttons, a standby's
tries) runs its unit of work under `Availability.watch`. The first failure that
means the database cannot be used now (`is_outage`: a refused or dropped
connection, a lock held past the busy timeout, a full disk) logs one line naming
the database (password hidden); further such failures are not logged. The
outage ends when a kind of work that failed during it succeeds (so a full disk,
where reads still work, is not ended by the sender's read-only passes): one line,
and the outage (start, end, seconds, first reason) is written to
`database_outage`. An outage cannot be written while it happens, so it is
counted when it ends, and `/metrics` reads the count from there. Any other
error is unexpected: logged with its traceback, at most once every
`TRACEBACK_EVERY_S` per unit of work, with a count of the ones not shown.

`Availability` is the one object every thread of the process writes to, by
design (the outage is the process's, not a thread's); a lock guards it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from floodwatch.db.engine import redact
from floodwatch.db.models import DatabaseOutageRow

logger = logging.getLogger(__name__)

# At most one traceback per unit of work in this many seconds.
TRACEBACK_EVERY_S = 300.0
# A reason is kept to its first line, and to this many characters.
MAX_REASON = 200
# SQLite calls a missing table an OperationalError too: only these messages are outages.
SQLITE_OUTAGES = (
    "database is locked", "database table is locked", "locking protocol",
    "database or disk is full", "unable to open database", "disk i/o error",
    "readonly database",
)  # fmt: skip


def outage_cause(exc: BaseException | None) -> BaseException | None:
    """The error in `exc`'s chain that means the database cannot be used now, or None.

    OperationalError covers a refused or dropped connection, a server shutting
    down, a SQLite file locked past its busy timeout or unreadable, and a full
    disk (SQLite's own: `SQLITE_OUTAGES`); InterfaceError a connection the
    driver already lost; a pool timeout means every connection is stuck.
    StorageError (`database_errors`) carries its OperationalError as its cause.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OperationalError):
            if not isinstance(exc.orig, sqlite3.Error):
                return exc
            if any(words in str(exc.orig).lower() for words in SQLITE_OUTAGES):
                return exc
        if isinstance(exc, (InterfaceError, PoolTimeout)):
            return exc
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` is expected while the database is away (no traceback needed)."""
    return outage_cause(exc) is not None


def reason_of(exc: BaseException) -> str:
    """The driver's first line for an error (never the SQL or its parameters)."""
    cause = outage_cause(exc) or exc
    detail = str(getattr(cause, "orig", None) or cause).strip()
    line = detail.splitlines()[0] if detail else type(cause).__name__
    return line[:MAX_REASON]


@dataclass
class Outcome:
    """How a watched unit of work ended: `outage` when the database was away."""

    failed: bool = False
    outage: bool = False


@dataclass
class Away:
    """The outage under way: since when, why, and the kinds of work that failed."""

    since: datetime
    reason: str
    failed: set[str]


class Availability:
    """Whether the database answers, as this process last saw it (shared by its threads)."""

    def __init__(
        self,
        url: str,
        record: Callable[[datetime, datetime, str], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.where = redact(url)
        self.record = record
        self.clock = clock
        self._lock = threading.Lock()
        self._away: Away | None = None
        self._closing = False
        self._tracebacks: dict[str, tuple[float, int, datetime | None]] = {}

    @property
    def away(self) -> Away | None:
        """The outage under way, or None while the database answers."""
        return self._away

    def failed(self, exc: BaseException, what: str = "") -> bool:
        """Note a failure; True when it is an outage (logged once per outage, here)."""
        if not is_outage(exc):
            return False
        with self._lock:
            if self._away is not None:
                self._away.failed.add(what)
                return True
            self._away = away = Away(self.clock(), reason_of(exc), {what})
        logger.error("database %s went away%s: %s; not logged again until it answers",
                     self.where, f" ({what})" if what else "", away.reason)  # fmt: skip
        return True

    def answered(self, what: str = "") -> None:
        """Note a success of `what`: ends the outage if that kind of work failed during it."""
        if self._away is None:  # the usual case, without taking the lock
            return
        with self._lock:
            away = self._away
            if away is None or self._closing or what not in away.failed:
                return
            self._closing = True
        now = self.clock()
        try:
            if self.record is not None:
                self.record(away.since, now, away.reason)
        except Exception as exc:  # still away (or the record is broken): the next success retries
            with self._lock:
                self._closing = False
            if not is_outage(exc):
                self.unexpected("database: recording an outage", exc, logger)
            return
        with self._lock:
            self._away, self._closing = None, False
        since = away.since.isoformat(timespec="seconds")
        logger.warning("database %s is back after %.0f s (away since %s)", self.where,
                       (now - away.since).total_seconds(), since)  # fmt: skip

    def unexpected(self, what: str, exc: BaseException, log: logging.Logger) -> None:
        """Log an unexpected failure with its traceback, once per TRACEBACK_EVERY_S per `what`."""
        now = time.monotonic()
        with self._lock:
            last, hidden, hidden_since = self._tracebacks.get(what, (-TRACEBACK_EVERY_S, 0, None))
            if now - last < TRACEBACK_EVERY_S:
                self._tracebacks[what] = (last, hidden + 1, hidden_since or self.clock())
                return
            self._tracebacks[what] = (now, 0, None)
        more = ""
        if hidden:
            since = hidden_since.isoformat(timespec="seconds") if hidden_since else "?"
            more = f" ({hidden} more since {since} not shown)"
        log.error("%s failed%s", what, more, exc_info=(type(exc), exc, exc.__traceback__))

    @contextmanager
    def watch(self, what: str, log: logging.Logger) -> Iterator[Outcome]:
        """Run a unit of work: an outage is noted (not raised), anything else logged.

        Exceptions (not BaseExceptions: a cancellation still passes) end here;
        the yielded `Outcome` says whether the work failed and why.
        """
        outcome = Outcome()
        try:
            yield outcome
        except Exception as exc:
            outcome.failed = True
            outcome.outage = self.failed(exc, what)
            if not outcome.outage:
                self.unexpected(what, exc, log)
        else:
            self.answered(what)


class Outages:
    """The recorded database outages, for `/metrics`."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def record(self, started_at: datetime, ended_at: datetime, reason: str) -> None:
        """Store one outage; one overlapping another already stored (the standby saw it
        too) widens that one instead, so an outage counts once."""
        row = DatabaseOutageRow
        with self.engine.begin() as conn:
            same = conn.execute(
                select(row.id, row.started_at, row.ended_at)
                .where(row.started_at <= ended_at, row.ended_at >= started_at)
                .order_by(row.id)
                .limit(1)
            ).first()
            if same is None:
                conn.execute(
                    insert(row).values(
                        started_at=started_at, ended_at=ended_at, reason=reason,
                        seconds=(ended_at - started_at).total_seconds(),
                    )
                )  # fmt: skip
                return
            start, end = min(same.started_at, started_at), max(same.ended_at, ended_at)
            conn.execute(
                update(row).where(row.id == same.id).values(
                    started_at=start, ended_at=end, seconds=(end - start).total_seconds()
                )
            )  # fmt: skip

    def totals(self) -> tuple[int, float]:
        """How many outages are recorded, and their seconds."""
        with self.engine.connect() as conn:
            count, seconds = conn.execute(
                select(func.count(), func.sum(DatabaseOutageRow.seconds))
            ).one()
        return count, float(seconds or 0.0)
