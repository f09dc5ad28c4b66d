"""Readings: upsert what sources deliver, read them back as arrays for a cycle."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import numpy as np
from sqlalchemy import BigInteger, Engine, cast, extract, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from floodwatch.core.readings import Kind, Reading, Variable
from floodwatch.core.series import ReadingArrays
from floodwatch.db.models import ReadingRow


class Readings:
    """The `reading` table."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def upsert(self, readings: Iterable[Reading], source: str = "") -> int:
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

    def arrays(
        self,
        variable: str,
        station_index: dict[str, int],
        start: datetime,
        end: datetime,
        known_by: datetime,
    ) -> ReadingArrays:
        """Readings of one variable in [start, end] known by `known_by`, as arrays."""
        epoch = _epoch_seconds(self.engine.dialect.name)
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
        return _as_arrays(rows, station_index, epoch is not None)

    def flagged(self, after: datetime, until: datetime) -> list[Reading]:
        """Observations validation doubted, timed in (after, until], oldest first."""
        query = (
            select(ReadingRow)
            .where(ReadingRow.flag.is_not(None), ReadingRow.kind == Kind.OBSERVED.value)
            .where(ReadingRow.time > after, ReadingRow.time <= until)
            .order_by(ReadingRow.time, ReadingRow.station)
        )
        with self.engine.connect() as conn:
            return [
                Reading(
                    r.station, Variable(r.variable), r.time, r.value, Kind.OBSERVED, flag=r.flag
                )  # fmt: skip
                for r in conn.execute(query)
            ]

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

    def latest_levels(
        self, until: datetime | None = None
    ) -> dict[str, tuple[datetime, float, str]]:
        """Latest observed water level per station known by `until`: (time, value m, kind)."""
        newest = select(ReadingRow.station, func.max(ReadingRow.time).label("time")).where(
            ReadingRow.variable == Variable.WATER_LEVEL, ReadingRow.kind == Kind.OBSERVED
        )
        if until is not None:
            newest = newest.where(ReadingRow.time <= until)
        newest = newest.group_by(ReadingRow.station).subquery()
        query = (
            select(ReadingRow.station, ReadingRow.time, ReadingRow.value, ReadingRow.kind)
            .join(
                newest,
                (ReadingRow.station == newest.c.station) & (ReadingRow.time == newest.c.time),
            )
            .where(ReadingRow.variable == Variable.WATER_LEVEL, ReadingRow.kind == Kind.OBSERVED)
        )
        with self.engine.connect() as conn:
            return {row.station: (row.time, row.value, row.kind) for row in conn.execute(query)}

    def listing(
        self,
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
        with self.engine.connect() as conn:
            return list(conn.execute(query))


def _epoch_seconds(dialect: str):
    """A SQL expression maker for a column's epoch seconds, or None where we do not know one.

    Computed by the database (truncated like int(datetime.timestamp())):
    converting tens of thousands of datetimes in Python is most of the cost
    of a cycle's reading load.
    """
    if dialect == "sqlite":  # naive UTC text
        return lambda column: cast(func.strftime("%s", column), BigInteger)
    if dialect == "postgresql":
        return lambda column: cast(func.trunc(extract("epoch", column)), BigInteger)
    return None


def _as_arrays(rows: list, station_index: dict[str, int], in_seconds: bool) -> ReadingArrays:
    """(station, time, value, kind, issued, source) rows as ReadingArrays."""
    station, time_s, value, kind, issued_s, source = zip(*rows, strict=True)
    if not in_seconds:
        time_s = [int(t.timestamp()) for t in time_s]
        issued_s = [int(t.timestamp()) for t in issued_s]
    source_codes: dict[str, int] = {}
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
