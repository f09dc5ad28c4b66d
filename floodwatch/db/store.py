"""The durable store: one database, and one repository per concern.

`Store(url)` opens the engine (SQLite with WAL by default, any SQLAlchemy URL
otherwise), runs the Alembic migrations when the schema is behind, and gives
each table group its repository: `readings`, `events`, `forecasts` (kept for
scoring), `outbox`, `health`, `silences`, `reports`, `stats`, `users` (with their
sessions), `logins` (throttling), `tokens` (API tokens), `outages` and `drills`
(the drill mark, a drill's deliveries); `availability` is what the process last
saw of the database (`db/outages.py`). Every SQL statement of floodwatch lives
in this package.
"""

from __future__ import annotations

import hashlib
import json
import logging

import shapely
from sqlalchemy import delete, insert, select, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from floodwatch.core.geo import Geodata
from floodwatch.db.drills import Drills
from floodwatch.db.engine import bulk_execute, make_engine, migrate, redact
from floodwatch.db.events import Events
from floodwatch.db.forecasts import Forecasts
from floodwatch.db.health import SourceHealth
from floodwatch.db.logins import LoginThrottle
from floodwatch.db.models import EventRow, MetaRow, SegmentRow, StationRow
from floodwatch.db.outages import Availability, Outages
from floodwatch.db.outbox import Outbox
from floodwatch.db.readings import Readings
from floodwatch.db.reports import FieldReports
from floodwatch.db.silences import Silences
from floodwatch.db.stats import Stats
from floodwatch.db.tokens import ApiTokens
from floodwatch.db.users import Users
from floodwatch.errors import StorageError

logger = logging.getLogger(__name__)
# The `meta` key holding the fingerprint of the geodata last written to the tables.
GEODATA_KEY = "geodata_sha256"


class Store:
    """One database and its repositories; one instance per process."""

    def __init__(self, url: str, *, run_migrations: bool = True):
        self.url = url
        self.engine = make_engine(url)
        self.readings = Readings(self.engine)
        self.events = Events(self.engine)
        self.forecasts = Forecasts(self.engine)
        self.outbox = Outbox(self.engine)
        self.health = SourceHealth(self.engine)
        self.silences = Silences(self.engine)
        self.reports = FieldReports(self.engine)
        self.stats = Stats(self.engine)
        self.users = Users(self.engine)
        self.logins = LoginThrottle(self.engine)
        self.tokens = ApiTokens(self.engine)
        self.drills = Drills(self.engine)
        self.outages = Outages(self.engine)
        self.availability = Availability(url, self.outages.record)
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

    def ping(self) -> bool:
        """Whether the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            logger.error("database: %s", type(exc).__name__)
            return False
        return True

    def sync_geodata(self, geodata: Geodata, *, prune: bool = False) -> list[str]:
        """Replace the station and segment tables with the loaded geodata.

        A segment that has events but is no longer in the geodata keeps its row
        (the log and the exports still name it) unless `prune` says to remove it;
        returns the ids of such segments kept or pruned. Geodata identical to the
        last synced (by fingerprint) is not written again.
        """
        station_rows, segment_rows = _station_rows(geodata), _segment_rows(geodata)
        digest = hashlib.sha256(
            json.dumps([station_rows, segment_rows], sort_keys=True).encode()
        ).hexdigest()
        current = {row["id"] for row in segment_rows}
        with self.engine.begin() as conn:
            synced = conn.execute(select(MetaRow.value).where(MetaRow.key == GEODATA_KEY))
            if not prune and synced.scalar() == digest:
                return []
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
            bulk_execute(conn, insert(StationRow), station_rows)
            bulk_execute(conn, insert(SegmentRow), segment_rows)
            conn.execute(delete(MetaRow).where(MetaRow.key == GEODATA_KEY))
            conn.execute(insert(MetaRow).values(key=GEODATA_KEY, value=digest))
        if gone:
            logger.warning(
                "geodata: %d segments with events are no longer in the segment file (%s%s); "
                "%s", len(gone), ", ".join(gone[:5]), " …" if len(gone) > 5 else "",
                "their rows were removed (--prune)" if prune
                else "their rows are kept for the log; `floodwatch db prune-segments` removes them",
            )  # fmt: skip
        return gone


def _station_rows(geodata: Geodata) -> list[dict]:
    """The `station` table's rows for the loaded geodata."""
    return [
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


def _segment_rows(geodata: Geodata) -> list[dict]:
    """The `segment` table's rows for the loaded geodata (geometry as GeoJSON text)."""
    return [
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
