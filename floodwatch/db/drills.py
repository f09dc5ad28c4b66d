"""Drill databases: the mark that makes a database a drill's, the checks that keep a drill
out of the live database, and what a drill delivered (for its summary).

A drill database is an ordinary floodwatch database with a `drill` row in `meta`;
whatever reads it (the CAP export and feed) can tell its alerts are an exercise.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, insert, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from floodwatch.db.engine import make_engine, redact
from floodwatch.db.models import AlertRow, CycleRow, DeliveryRow, EventRow, MetaRow
from floodwatch.db.outbox import PENDING
from floodwatch.errors import StorageError

DRILL_KEY = "drill"


def _identity(url: str) -> tuple:
    """What names one database: a SQLite file's real path, or backend, host, port and name."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return ("unparsed", url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            return (backend, database)
        return (backend, os.path.realpath(database))
    return (backend, parsed.host or "localhost", parsed.port, parsed.database)


def same_database(url_a: str, url_b: str) -> bool:
    """Whether two URLs name the same database (drivers and options aside)."""
    return _identity(url_a) == _identity(url_b)


def url_beside(live_url: str, name: str) -> str:
    """A SQLite URL for file `name` in the live SQLite database's folder (else in `var/`)."""
    folder = "var"
    try:
        parsed = make_url(live_url)
    except (ArgumentError, ValueError):
        parsed = None
    if parsed is not None and parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database not in ("", ":memory:") and not database.startswith("file:"):
            folder = os.path.dirname(database) or "."
    return f"sqlite:///{os.path.join(folder, name)}"


def sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL, or None for another database."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def recorded_rows(url: str) -> int:
    """Cycles, events and alerts already in a database, looked at without migrating it.

    0 for a SQLite file that does not exist yet (nothing is created) or a database
    without floodwatch's tables.
    """
    path = sqlite_file(url)
    if path is not None and not path.startswith("file:") and not os.path.exists(path):
        return 0
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            return sum(
                conn.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (CycleRow.__table__, EventRow.__table__, AlertRow.__table__)
                if table.name in tables
            )
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot open database {redact(url)}: {exc.orig or exc}") from None
    finally:
        engine.dispose()


@dataclass(frozen=True)
class DeliveredCopy:
    """One alert and one of its deliveries (None: the alert had no chat to go to)."""

    alert_id: int
    unit: str
    kinds: tuple[str, ...]
    created_at: datetime
    body: str
    escalation_of: int | None
    ack_by: str | None
    ack_at: datetime | None
    chat_id: int | None
    status: str | None
    parts: int
    sent_at: datetime | None
    error: str | None


class Drills:
    """The drill mark of a database, and its deliveries as the summary needs them."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def mark(self, source: str, at: datetime) -> None:
        """Make this database a drill's (once; a second mark keeps the first)."""
        value = json.dumps({"source": source, "started_at": at.isoformat()}, ensure_ascii=False)
        with self.engine.begin() as conn:
            found = conn.execute(select(MetaRow.key).where(MetaRow.key == DRILL_KEY)).first()
            if found is None:
                conn.execute(insert(MetaRow).values(key=DRILL_KEY, value=value))

    def info(self) -> dict | None:
        """The drill mark (source file, start time), or None for a live database."""
        with self.engine.connect() as conn:
            value = conn.execute(select(MetaRow.value).where(MetaRow.key == DRILL_KEY)).scalar()
        return json.loads(value) if value is not None else None

    def delivery_counts(self) -> dict[str, int]:
        """Deliveries by status."""
        query = select(DeliveryRow.status, func.count()).group_by(DeliveryRow.status)
        with self.engine.connect() as conn:
            return {status: count for status, count in conn.execute(query)}

    def pending(self) -> int:
        """Deliveries still to send."""
        return self.delivery_counts().get(PENDING, 0)

    def events(self) -> int:
        """Flood events recorded."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(EventRow)).scalar_one()

    def copies(self) -> list[DeliveredCopy]:
        """Every alert with each of its deliveries, in alert then delivery order."""
        query = (
            select(
                AlertRow.id,
                AlertRow.unit,
                AlertRow.kinds,
                AlertRow.created_at,
                AlertRow.body,
                AlertRow.escalation_of,
                AlertRow.ack_by,
                AlertRow.ack_at,
                DeliveryRow.chat_id,
                DeliveryRow.status,
                DeliveryRow.message_ids,
                DeliveryRow.sent_at,
                DeliveryRow.last_error,
            )  # fmt: skip
            .outerjoin(DeliveryRow, DeliveryRow.alert_id == AlertRow.id)
            .order_by(AlertRow.id, DeliveryRow.id)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            DeliveredCopy(
                alert_id=r[0],
                unit=r[1],
                kinds=tuple(r[2]),
                created_at=r[3],
                body=r[4],
                escalation_of=r[5],
                ack_by=r[6],
                ack_at=r[7],
                chat_id=r[8],
                status=r[9],
                parts=len(r[10] or []),
                sent_at=r[11],
                error=r[12],
            )  # fmt: skip
            for r in rows
        ]
