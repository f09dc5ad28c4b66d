"""Field reports: depths seen on the road, sent through the bot."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, insert, select, true, update

from floodwatch.core.events import CLOSED, OBSERVED
from floodwatch.db.models import EventRow, FieldReportRow


class FieldReports:
    """The `field_report` table."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def add(
        self,
        segment_id: str,
        depth_m: float,
        at: datetime,
        *,
        chat_id: int,
        user_id: int,
        user_name: str,
        photo_file_id: str | None = None,
        lat: float | None = None,
        lon: float | None = None,
        note: str = "",
    ) -> int:
        """Store a depth reported from the field; returns the report id."""
        with self.engine.begin() as conn:
            return conn.execute(
                insert(FieldReportRow)
                .values(
                    segment_id=segment_id,
                    depth_m=depth_m,
                    at=at,
                    chat_id=chat_id,
                    user_id=user_id,
                    user_name=user_name,
                    photo_file_id=photo_file_id,
                    lat=lat,
                    lon=lon,
                    note=note,
                )  # fmt: skip
                .returning(FieldReportRow.id)
            ).scalar_one()

    def recent(
        self, since: datetime, until: datetime | None = None
    ) -> dict[str, tuple[float, list[FieldReportRow]]]:
        """Reports in (since, until] per segment: (the latest depth, every report, oldest first)."""
        query = select(FieldReportRow).where(FieldReportRow.at > since)
        if until is not None:
            query = query.where(FieldReportRow.at <= until)
        recent: dict[str, tuple[float, list[FieldReportRow]]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query.order_by(FieldReportRow.at, FieldReportRow.id)):
                rows = recent.get(row.segment_id, (0.0, []))[1]
                recent[row.segment_id] = (row.depth_m, [*rows, row])
        return recent

    def link(self, at: datetime, since: datetime | None = None) -> int:
        """Link unlinked reports in (since, at] to their segment's open observed event."""
        open_event = (
            select(EventRow.id)
            .where(EventRow.segment_id == FieldReportRow.segment_id)
            .where(EventRow.kind == OBSERVED, EventRow.status != CLOSED)
            .order_by(EventRow.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        with self.engine.begin() as conn:
            return conn.execute(
                update(FieldReportRow)
                .where(FieldReportRow.event_id.is_(None), FieldReportRow.at <= at)
                .where(FieldReportRow.at > since if since is not None else true())
                .where(open_event.is_not(None))
                .values(event_id=open_event)
            ).rowcount

    def listing(self, event_id: int | None = None) -> list[FieldReportRow]:
        """Stored field reports (of one event, if given), oldest first."""
        query = select(FieldReportRow).order_by(FieldReportRow.at, FieldReportRow.id)
        if event_id is not None:
            query = query.where(FieldReportRow.event_id == event_id)
        with self.engine.connect() as conn:
            return list(conn.execute(query))
