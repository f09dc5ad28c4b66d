"""Silences (mutes): a segment or unit whose alerts are logged but not sent for a while.

One silence per target: muting a target that is already muted extends that silence
(and takes the new reason) instead of adding a second one; lifting a silence early
ends it now (its row is kept, so the log shows it was muted until then).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, insert, select, update

from floodwatch.db.models import SilenceRow

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Muted:
    """What `Silences.add` did: the silence's id, when it now ends, whether it was extended."""

    id: int
    until: datetime
    extended: bool


class Silences:
    """The `silence` table."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def add(
        self, kind: str, target: str, start: datetime, until: datetime, reason: str, by: str
    ) -> Muted:
        """Mute a segment or unit until `until`.

        A target already muted (running or coming) keeps its one silence: it runs until the
        later of both ends, from the earlier start, with the new reason (when one is given)
        and `by`. Older duplicates left by earlier versions are folded into it.
        """
        same = (
            select(SilenceRow)
            .where(SilenceRow.target_kind == kind, SilenceRow.target_id == target,
                   SilenceRow.until > start)
            .order_by(SilenceRow.id)
            .with_for_update()
        )  # fmt: skip
        with self.engine.begin() as conn:
            rows = list(conn.execute(same))
            if not rows:
                values = {"target_kind": kind, "target_id": target, "starts_at": start,
                          "until": until, "reason": reason, "created_by": by}  # fmt: skip
                new_id = conn.execute(
                    insert(SilenceRow).values(**values).returning(SilenceRow.id)
                ).scalar_one()
                return Muted(new_id, until, False)
            keep = rows[0]
            end = max([until, *(r.until for r in rows)])
            first = min([start, *(r.starts_at for r in rows)])
            conn.execute(
                update(SilenceRow)
                .where(SilenceRow.id == keep.id)
                .values(starts_at=first, until=end, reason=reason or keep.reason, created_by=by)
            )
            for row in rows[1:]:  # duplicates: covered by the one kept
                conn.execute(update(SilenceRow).where(SilenceRow.id == row.id).values(until=start))
        logger.info("silence %d on %s %s extended to %s by %s (was until %s)", keep.id, kind,
                    target, end.isoformat(), by, keep.until.isoformat())  # fmt: skip
        return Muted(keep.id, end, True)

    def lift(self, silence_id: int, at: datetime, by: str) -> SilenceRow | None:
        """End a running or coming silence at `at`; the silence as it was, or None when
        there is no such silence or it is already over."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(SilenceRow)
                .where(SilenceRow.id == silence_id, SilenceRow.until > at)
                .with_for_update()
            ).first()
            if row is None:
                return None
            conn.execute(
                update(SilenceRow)
                .where(SilenceRow.id == silence_id)
                .values(until=at, starts_at=min(row.starts_at, at))
            )
        logger.info("silence %d on %s %s lifted by %s (was until %s)", row.id, row.target_kind,
                    row.target_id, by, row.until.isoformat())  # fmt: skip
        return row

    def lift_target(self, kind: str, target: str, at: datetime, by: str) -> list[SilenceRow]:
        """End every running or coming silence of a segment or unit at `at`; those lifted."""
        query = select(SilenceRow.id).where(
            SilenceRow.target_kind == kind, SilenceRow.target_id == target, SilenceRow.until > at
        )
        with self.engine.connect() as conn:
            ids = [row.id for row in conn.execute(query)]
        lifted = (self.lift(silence_id, at, by) for silence_id in ids)
        return [row for row in lifted if row is not None]

    def get(self, silence_id: int) -> SilenceRow | None:
        """One silence by id, whether over or not."""
        with self.engine.connect() as conn:
            return conn.execute(select(SilenceRow).where(SilenceRow.id == silence_id)).first()

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
