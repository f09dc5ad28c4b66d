"""The durable store: SQLite (WAL) by default, any SQLAlchemy URL otherwise.

Opening a store runs the Alembic migrations to head, so a fresh file or
database is ready to use and an old one is brought up to date.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import shapely
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    BigInteger,
    Engine,
    bindparam,
    cast,
    create_engine,
    delete,
    event,
    extract,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from floodwatch.errors import StorageError
from floodwatch.events import CLOSED, FORECAST, Change, EventState
from floodwatch.geo import Geodata
from floodwatch.models import (
    AlertRow,
    CycleRow,
    EventChangeRow,
    EventRow,
    ReadingRow,
    SegmentRow,
    SourceRunRow,
    StationRow,
)
from floodwatch.outbox import NewAlert, Outbox, insert_alerts
from floodwatch.readings import Kind, Reading
from floodwatch.series import ReadingArrays
from floodwatch.store_side import SideTables

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
_EVENT_FIELDS = [f.name for f in fields(EventState)]


def redact(url: str) -> str:
    """The URL with any password hidden, for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<invalid database URL>"


# How long SQLite waits for another writer's lock before "database is locked";
# a `?timeout=` (seconds) in the URL overrides it.
DEFAULT_BUSY_TIMEOUT_S = 30.0


def _sqlite_pragmas(busy_timeout_s: float):
    """A connect hook: WAL for concurrent readers, a busy timeout instead of instant 'locked'."""

    def on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.close()

    return on_connect


# A `?timeout=` beyond this is a typo, not a wish (the watchdog would fire first).
MAX_BUSY_TIMEOUT_S = 300.0


def make_engine(url: str) -> Engine:
    """An engine for the URL; creates the folder of a SQLite file.

    Raises StorageError (one line, password hidden) for a URL that does not
    parse, a driver that is not installed, a SQLite folder that cannot be
    created, or a busy timeout that is not 0-300 seconds.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise StorageError(f"storage.database_url: not a database URL: {redact(url)}") from None
    busy_timeout_s = DEFAULT_BUSY_TIMEOUT_S
    if parsed.get_backend_name() == "sqlite":
        if parsed.database not in (None, "", ":memory:"):
            folder = Path(parsed.database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(
                    f"storage.database_url: cannot create the folder {folder} "
                    f"({exc.strerror or type(exc).__name__})"
                ) from None
        if "timeout" in parsed.query:
            try:
                busy_timeout_s = float(parsed.query["timeout"])
            except (TypeError, ValueError):
                busy_timeout_s = math.nan
            if not 0 <= busy_timeout_s <= MAX_BUSY_TIMEOUT_S:  # NaN fails too
                raise StorageError(
                    f"storage.database_url: timeout must be 0-{MAX_BUSY_TIMEOUT_S:g} seconds: "
                    f"{redact(url)}"
                ) from None
    try:
        engine = create_engine(parsed)
    except (NoSuchModuleError, ImportError) as exc:
        raise StorageError(f"storage.database_url: no driver for {redact(url)} ({exc})") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_s))
    return engine


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Turn a database that cannot be reached or written into one StorageError line.

    Covers a lost or refused connection, a SQLite file locked past its busy
    timeout and a full disk (all OperationalError); the transaction in flight
    has rolled back, so nothing was half written.
    """
    try:
        yield
    except OperationalError as exc:
        detail = str(exc.orig or exc).strip()
        reason = detail.splitlines()[0] if detail else type(exc).__name__
        raise StorageError(f"database {redact(url)}: {reason}") from exc


def migrate(engine: Engine, revision: str = "head") -> None:
    """Run the Alembic migrations up to `revision` (default: the newest) on this engine.

    On SQLite, altering a table means copying it; foreign keys are switched off
    for the migration (a PRAGMA that only works outside a transaction) and
    checked afterwards, as SQLite's documentation prescribes.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        raw = conn.connection.driver_connection if sqlite else None
        if raw is not None:  # outside any transaction, or SQLite ignores it
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                if raw is not None:
                    # pysqlite opens a transaction only before INSERT/UPDATE/DELETE;
                    # open it now so a migration's DDL commits (or not) as a whole.
                    raw.execute("BEGIN")
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
        finally:
            if raw is not None:
                broken = raw.execute("PRAGMA foreign_key_check").fetchall()
                raw.execute("PRAGMA foreign_keys=ON")
        if raw is not None and broken:
            raise StorageError(f"migration left {len(broken)} rows with broken references")


@dataclass(frozen=True)
class EventFilter:
    """Filters of the event log (CLI, web and exports share them)."""

    start: datetime | None = None  # events still open at or closed after this
    end: datetime | None = None  # events opened at or before this
    segment: str | None = None  # segment id
    road: str | None = None  # part of the road name
    ward: str | None = None
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


def event_query(flt: EventFilter, sort: str = "opened", descending: bool = True):
    """The SELECT of events (with segment name and ward) matching a filter, sorted."""
    query = select(
        EventRow, SegmentRow.name.label("segment_name"), SegmentRow.ward.label("ward")
    ).join(SegmentRow, SegmentRow.id == EventRow.segment_id, isouter=True)
    conditions = []
    if flt.start is not None:
        conditions.append((EventRow.closed_at.is_(None)) | (EventRow.closed_at >= flt.start))
    if flt.end is not None:
        conditions.append(EventRow.opened_at <= flt.end)
    for column, value in (
        (EventRow.segment_id, flt.segment), (SegmentRow.ward, flt.ward),
        (EventRow.unit, flt.unit), (EventRow.kind, flt.kind), (EventRow.status, flt.status),
        (EventRow.cause, flt.cause), (EventRow.false_alarm, flt.false_alarm),
    ):  # fmt: skip
        if value is not None and value != "":
            conditions.append(column == value)
    if flt.road:
        conditions.append(SegmentRow.name.ilike(f"%{flt.road}%"))
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


class Store(SideTables):
    """Repository over the database; one instance per process."""

    def __init__(self, url: str, *, run_migrations: bool = True):
        self.url = url
        self.engine = make_engine(url)
        self.outbox = Outbox(self.engine)
        if run_migrations:
            try:
                migrate(self.engine)
            except OperationalError as exc:
                raise StorageError(
                    f"cannot open database {redact(url)}: {exc.orig or exc}"
                ) from None

    def close(self) -> None:
        """Release all connections."""
        self.engine.dispose()

    # --- geodata -------------------------------------------------------------

    def sync_geodata(self, geodata: Geodata, *, prune: bool = False) -> list[str]:
        """Replace the station and segment tables with the loaded geodata.

        A segment that has events but is no longer in the geodata keeps its row
        (the log and the exports still name it) unless `prune` says to remove it;
        returns the ids of such segments kept or pruned.
        """
        station_rows = [
            {
                "id": s.id,
                "name": s.name,
                "river": s.river,
                "measures": ",".join(sorted(s.measures)),
                "lon": s.lon,
                "lat": s.lat,
                "alarm1_m": s.alarm_m[0],
                "alarm2_m": s.alarm_m[1],
                "alarm3_m": s.alarm_m[2],
            }
            for s in geodata.stations.values()
        ]
        segment_rows = [
            {
                "id": s.id,
                "name": s.name,
                "ward": s.ward,
                "unit": s.unit,
                "crest_m": s.crest_m,
                "tide_station": s.tide_station,
                "rain_station": s.rain_station,
                "drain_mm_h": s.drain_mm_h,
                "outfall_m": s.outfall_m,
                "priority": s.priority,
                "length_m": s.length_m,
                "geometry": shapely.to_geojson(s.geometry) if s.geometry is not None else "",
            }
            for s in geodata.segments
        ]
        current = {row["id"] for row in segment_rows}
        with self.engine.begin() as conn:
            with_events = set(
                conn.execute(
                    select(SegmentRow.id).where(
                        SegmentRow.id.in_(select(EventRow.segment_id).distinct())
                    )
                ).scalars()
            )
            gone = sorted(with_events - current)
            keep = set() if prune else set(gone)
            conn.execute(delete(SegmentRow).where(SegmentRow.id.not_in(keep)))
            conn.execute(delete(StationRow))
            if station_rows:
                conn.execute(insert(StationRow), station_rows)
            if segment_rows:
                conn.execute(insert(SegmentRow), segment_rows)
        if gone:
            logger.warning(
                "geodata: %d segments with events are no longer in the segment file (%s%s); "
                "%s", len(gone), ", ".join(gone[:5]), " …" if len(gone) > 5 else "",
                "their rows were removed (--prune)" if prune
                else "their rows are kept for the log; `floodwatch db prune-segments` removes them",
            )  # fmt: skip
        return gone

    # --- readings ------------------------------------------------------------

    def upsert_readings(self, readings: Iterable[Reading], source: str = "") -> int:
        """Insert readings, updating the value of any already stored; returns the count."""
        rows = [
            {
                "station": r.station,
                "variable": str(r.variable),
                "time": r.time,
                "kind": str(r.kind),
                "issued": r.issued_at,
                "value": r.value,
                "source": source,
                "flag": r.flag,
            }
            for r in readings
        ]
        if not rows:
            return 0
        dialect = self.engine.dialect.name
        make_insert = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = make_insert(ReadingRow)
        stmt = stmt.on_conflict_do_update(
            index_elements=["station", "variable", "time", "kind", "issued"],
            set_={
                "value": stmt.excluded.value,
                "source": stmt.excluded.source,
                "flag": stmt.excluded.flag,
            },
        )
        with self.engine.begin() as conn:
            for start in range(0, len(rows), 50_000):
                conn.execute(stmt, rows[start : start + 50_000])
        return len(rows)

    def reading_arrays(
        self,
        variable: str,
        station_index: dict[str, int],
        start: datetime,
        end: datetime,
        known_by: datetime,
    ) -> ReadingArrays:
        """Readings of one variable in [start, end] known by `known_by`, as arrays."""
        # Epoch seconds computed by the database where we know how (truncated
        # like int(datetime.timestamp())): converting tens of thousands of
        # datetimes in Python is most of the cost of a cycle's reading load.
        dialect = self.engine.dialect.name
        if dialect == "sqlite":  # naive UTC text

            def epoch(column):
                return cast(func.strftime("%s", column), BigInteger)

        elif dialect == "postgresql":

            def epoch(column):
                return cast(func.trunc(extract("epoch", column)), BigInteger)

        else:
            epoch = None
        time_col, issued_col = (
            (ReadingRow.time, ReadingRow.issued)
            if epoch is None
            else (epoch(ReadingRow.time), epoch(ReadingRow.issued))
        )
        query = (
            select(
                ReadingRow.station,
                time_col,
                ReadingRow.value,
                ReadingRow.kind,
                issued_col,
                ReadingRow.source,
            )
            .where(ReadingRow.variable == variable)
            .where(ReadingRow.time >= start, ReadingRow.time <= end)
            .where(ReadingRow.issued <= known_by)
            # Doubtful observations are kept and shown, but never drive the assessment.
            .where((ReadingRow.flag.is_(None)) | (ReadingRow.kind != Kind.OBSERVED.value))
        )
        with self.engine.connect() as conn:
            rows = [r for r in conn.execute(query) if r[0] in station_index]
        if not rows:
            return ReadingArrays.empty()
        station, time_s, value, kind, issued_s, source = zip(*rows, strict=True)
        source_codes: dict[str, int] = {}
        if epoch is None:
            time_s = [int(t.timestamp()) for t in time_s]
            issued_s = [int(t.timestamp()) for t in issued_s]
        observed = Kind.OBSERVED.value
        return ReadingArrays(
            station=np.fromiter((station_index[s] for s in station), np.int64, len(rows)),
            time_s=np.array(time_s, dtype=np.int64),
            value=np.array(value, dtype=np.float64),
            observed=np.fromiter((k == observed for k in kind), bool, len(rows)),
            issued_s=np.array(issued_s, dtype=np.int64),
            source=np.fromiter(
                (source_codes.setdefault(name, len(source_codes)) for name in source),
                np.int64,
                len(rows),
            ),
        )

    def recent_observations(
        self, pairs: Iterable[tuple[str, str]], since: datetime
    ) -> dict[tuple[str, str], list[tuple[datetime, float]]]:
        """Stored observations since `since` per (station, variable), oldest first."""
        wanted = set(pairs)
        if not wanted:
            return {}
        query = (
            select(ReadingRow.station, ReadingRow.variable, ReadingRow.time, ReadingRow.value)
            .where(ReadingRow.kind == Kind.OBSERVED.value, ReadingRow.time >= since)
            .where(ReadingRow.station.in_({s for s, _ in wanted}))
            .order_by(ReadingRow.time)
        )
        recent: dict[tuple[str, str], list[tuple[datetime, float]]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                key = (row.station, row.variable)
                if key in wanted:
                    recent.setdefault(key, []).append((row.time, row.value))
        return recent

    # --- events --------------------------------------------------------------

    def open_events(self) -> list[EventState]:
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

    def record_cycle(
        self,
        at: datetime,
        changes: Sequence[Change],
        alerts: Sequence[dict],
        stats: dict,
    ) -> None:
        """Write event changes, their alerts and the cycle row in one transaction."""
        # Resolve every change to an existing event id or to a new event (by
        # first appearance), then write with one executemany per statement:
        # per-row statements cost about 1 ms each. A row touched several times
        # ends with its last values, as successive full-row updates would.
        ids: dict[tuple[str, str], int | tuple[int]] = {}
        targets: list[int | tuple[int]] = []
        new_values: list[dict] = []
        updates: dict[int, dict] = {}
        for change in changes:
            state = change.event
            key = (state.segment_id, state.kind)
            target = state.id or ids.get(key)
            values = _state_values(state, at)
            if target is None:
                target = (len(new_values),)
                new_values.append(values)
            elif isinstance(target, tuple):
                new_values[target[0]] = values
            else:
                updates[target] = values
            ids[key] = target
            targets.append(target)
            if state.status == CLOSED:
                ids.pop(key, None)
        with self.engine.begin() as conn:
            new_ids: list[int] = []
            if new_values:
                # A plain executemany, then the ids read back: RETURNING in
                # parameter order falls back to one statement per row. Only the
                # active instance writes events, so every id above the largest
                # before the insert is one of ours; a segment opens at most one
                # event of a kind at one moment.
                before = conn.execute(select(func.max(EventRow.id))).scalar() or 0
                conn.execute(insert(EventRow), new_values)
                fresh = conn.execute(
                    select(
                        EventRow.id, EventRow.segment_id, EventRow.kind, EventRow.opened_at
                    ).where(EventRow.id > before)
                )
                by_key = {(row.segment_id, row.kind, row.opened_at): row.id for row in fresh}
                new_ids = [by_key[(v["segment_id"], v["kind"], v["opened_at"])] for v in new_values]

            def real(target: int | tuple[int]) -> int:
                return new_ids[target[0]] if isinstance(target, tuple) else target

            if updates:
                stmt = (
                    update(EventRow)
                    .where(EventRow.id == bindparam("event_id"))
                    .values({name: bindparam(f"v_{name}") for name in next(iter(updates.values()))})
                )
                rows = [
                    {"event_id": i, **{f"v_{k}": x for k, x in v.items()}}
                    for i, v in updates.items()
                ]
                conn.execute(stmt, rows)
            change_rows = [
                {
                    "event_id": real(target),
                    "at": change.at,
                    "change": change.change,
                    "status": change.event.status,
                    "level": change.event.level,
                    "depth_m": change.event.peak_depth_m
                    if change.event.kind == FORECAST
                    else change.event.depth_m,
                    "note": change.note,
                }
                for change, target in zip(changes, targets, strict=True)
                if change.change
            ]
            if change_rows:
                conn.execute(insert(EventChangeRow), change_rows)
            final_ids = {key: real(target) for key, target in ids.items()}
            insert_alerts(
                conn,
                [
                    NewAlert(
                        at=at,
                        unit=alert["unit"],
                        kinds=alert["kinds"],
                        body=alert["body"],
                        targets=alert.get("targets", ()),
                        event_ids=[
                            c.event.id or final_ids[(c.event.segment_id, c.event.kind)]
                            for c in alert["changes"]
                            if c.event.id or (c.event.segment_id, c.event.kind) in final_ids
                        ],
                        muted=alert.get("muted", False),
                    )
                    for alert in alerts
                ],
            )
            conn.execute(insert(CycleRow).values(at=at, finished_at=datetime.now(UTC), **stats))

    def list_events(
        self,
        flt: EventFilter = EventFilter(),
        *,
        sort: str = "opened",
        descending: bool = True,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict]:
        """Events matching the filter, newest first unless sorted otherwise."""
        query = event_query(flt, sort, descending).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [event_dict(row) for row in conn.execute(query)]

    def events_at(self, at: datetime, flt: EventFilter = EventFilter()) -> list[dict]:
        """Events open at `at`, each with its status, level and depth as of then.

        At or after the latest cycle that is simply the open events; before it,
        the state comes from each event's last recorded change at or before `at`
        (peak: the deepest change recorded by then).
        """
        last = self.last_cycle_at()
        if last is None or at >= last:
            return self.list_events(replace(flt, open_only=True, end=flt.end or at))
        query = event_query(replace(flt, end=at)).where(
            (EventRow.status != CLOSED) | (EventRow.updated_at >= at)
        )
        with self.engine.connect() as conn:
            candidates = {row.id: event_dict(row) for row in conn.execute(query)}
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
                {
                    **ev,
                    "status": change.status,
                    "level": change.level,
                    "max_level": max(
                        ev["max_level"] if ev["kind"] == FORECAST else 0, change.level
                    ),  # fmt: skip
                    "peak_depth_m": round(peaks.get(event_id, change.depth_m), 3),
                    "closed_at": None,
                    "close_reason": None,
                }
            )
        return found

    def count_events(self, flt: EventFilter = EventFilter()) -> int:
        """How many events match the filter."""
        query = select(func.count()).select_from(event_query(flt).order_by(None).subquery())
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def iter_events(self, flt: EventFilter = EventFilter(), batch: int = 2000) -> Iterator[dict]:
        """Stream matching events (oldest first) without loading them all."""
        query = event_query(flt, "opened", descending=False)
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
            for row in result:
                yield event_dict(row)

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


def _iso(when: datetime | None) -> str | None:
    """ISO 8601 with offset, or None."""
    return when.isoformat() if when is not None else None


def event_dict(row) -> dict:
    """The public JSON shape of an event (DESIGN.md contract)."""
    return {
        "id": row.id,
        "segment_id": row.segment_id,
        "segment_name": row.segment_name,
        "unit": row.unit,
        "kind": row.kind,
        "status": row.status,
        "opened_at": _iso(row.opened_at),
        "closed_at": _iso(row.closed_at),
        "peak_depth_m": round(row.peak_depth_m, 3),
        "peak_at": _iso(row.peak_at),
        "max_level": row.max_level,
        "cause": row.cause,
        "expected_onset_at": _iso(row.expected_onset_at),
        "expected_end_at": _iso(row.expected_end_at),
        "close_reason": row.close_reason,
        "forecast_event_id": row.forecast_event_id,
        "ward": row.ward,
        "ack_by": row.ack_by,
        "ack_at": _iso(row.ack_at),
        "false_alarm": bool(row.false_alarm),
        "level": row.level,
    }


def dumps(events: list[dict]) -> str:
    """Events as a JSON array (UTF-8, Vietnamese kept readable)."""
    return json.dumps(events, ensure_ascii=False, indent=2)
