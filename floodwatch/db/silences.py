"""Silences (mutes): a segment or unit whose alerts are logged but not sent for a while."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, insert, select

from floodwatch.db.models import SilenceRow


class Silences:
    """The `silence` table."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def add(
        self, kind: str, target: str, start: datetime, until: datetime, reason: str, by: str
    ) -> int:
        """Mute a segment or unit until `until`; returns the silence id."""
        with self.engine.begin() as conn:
            return conn.execute(
                insert(SilenceRow)
                .values(
                    target_kind=kind,
                    target_id=target,
                    starts_at=start,
                    until=until,
                    reason=reason,
                    created_by=by,
                )  # fmt: skip
                .returning(SilenceRow.id)
            ).scalar_one()

    def active(self, at: datetime) -> set[tuple[str, str]]:
        """(kind, id) of every segment or unit muted at `at`."""
        query = select(SilenceRow.target_kind, SilenceRow.target_id).where(
            SilenceRow.starts_at <= at, SilenceRow.until > at
        )
        with self.engine.connect() as conn:
            return {(kind, target) for kind, target in conn.execute(query)}

    def listing(self, at: datetime, active_only: bool = False) -> list[SilenceRow]:
        """Silences still running or yet to come at `at` (only running ones: `active_only`)."""
        query = select(SilenceRow).where(SilenceRow.until > at).order_by(SilenceRow.until)
        if active_only:
            query = query.where(SilenceRow.starts_at <= at)
        with self.engine.connect() as conn:
            return list(conn.execute(query))
