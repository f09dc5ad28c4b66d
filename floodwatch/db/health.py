"""Source health: each poll's record, each source's and each input's state, and data gaps."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Engine, func, insert, select, update

from floodwatch.db.models import DataGapRow, InputStateRow, SourceRunRow, SourceStateRow
from floodwatch.db.outbox import NewAlert, insert_alerts


class SourceHealth:
    """The `source_state`, `source_run`, `input_state` and `data_gap` tables."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def source_states(self) -> dict[str, SourceStateRow]:
        """The health record of every source that has been polled."""
        with self.engine.connect() as conn:
            return {row.name: row for row in conn.execute(select(SourceStateRow))}

    def record_source_run(
        self,
        name: str,
        source_type: str,
        at: datetime,
        *,
        ok: bool,
        duration_s: float,
        accepted: int = 0,
        flagged: int = 0,
        rejected: int = 0,
        reasons: dict[str, int] | None = None,
        details: Sequence[str] = (),
        error: str | None = None,
        newest_at: datetime | None = None,
        inputs: Mapping[tuple[str, str], datetime | None] = {},
        references: Mapping[tuple[str, str], dict] = {},
    ) -> None:
        """Record one poll and update the source's health in one transaction.

        `inputs` maps each (station, variable) the source provides or delivered
        to the newest issue time among its stored, unflagged values (None: none
        this poll); `references` what the provider says of a station (alarm
        levels, record flood), kept as JSON.
        """
        with self.engine.begin() as conn:
            if inputs:
                self._record_inputs(conn, name, at, inputs, references)
            state = conn.execute(select(SourceStateRow).where(SourceStateRow.name == name)).first()
            if state is None:
                conn.execute(
                    insert(SourceStateRow).values(
                        name=name, type=source_type, first_seen_at=at, consecutive_failures=0
                    )
                )
                failures, newest = 0, None
            else:
                failures, newest = state.consecutive_failures, state.newest_at
            values = {"type": source_type, "last_attempt_at": at}
            if ok:
                values.update(last_success_at=at, consecutive_failures=0, last_error=None)
                if newest_at is not None and (newest is None or newest_at > newest):
                    values["newest_at"] = newest_at
            else:
                values.update(consecutive_failures=failures + 1, last_error=error)
            conn.execute(update(SourceStateRow).where(SourceStateRow.name == name).values(**values))
            conn.execute(
                insert(SourceRunRow).values(
                    source=name,
                    at=at,
                    ok=ok,
                    duration_s=duration_s,
                    accepted=accepted,
                    flagged=flagged,
                    rejected=rejected,
                    reasons=json.dumps(reasons or {}, sort_keys=True),
                    details="\n".join(details),
                    error=error,
                )
            )

    @staticmethod
    def _record_inputs(conn, source, at, inputs, references) -> None:
        """Create missing input rows and advance their newest data times."""
        known = {
            (row.station, row.variable): row
            for row in conn.execute(select(InputStateRow).where(InputStateRow.source == source))
        }
        for (station, variable), newest in inputs.items():
            row = known.get((station, variable))
            reference = references.get((station, variable))
            ref_json = (
                json.dumps(reference, ensure_ascii=False, sort_keys=True) if reference else None
            )
            if row is None:
                conn.execute(
                    insert(InputStateRow).values(
                        source=source, station=station, variable=variable, first_seen_at=at,
                        newest_at=newest, reference=ref_json,
                    )
                )  # fmt: skip
                continue
            values: dict = {}
            if newest is not None and (row.newest_at is None or newest > row.newest_at):
                values["newest_at"] = newest
            if ref_json is not None and ref_json != row.reference:
                values["reference"] = ref_json
            if values:
                conn.execute(
                    update(InputStateRow)
                    .where(InputStateRow.source == source)
                    .where(InputStateRow.station == station, InputStateRow.variable == variable)
                    .values(**values)
                )

    def open_gaps(self) -> set[tuple[str, str]]:
        """(station, variable) of every data gap not yet closed."""
        query = select(DataGapRow.station, DataGapRow.variable).where(DataGapRow.ended_at.is_(None))
        with self.engine.connect() as conn:
            return {(station, variable) for station, variable in conn.execute(query)}

    def gaps(self, start: datetime, end: datetime) -> list[DataGapRow]:
        """Data gaps overlapping [start, end], oldest first."""
        query = (
            select(DataGapRow)
            .where(DataGapRow.started_at <= end)
            .where(DataGapRow.ended_at.is_(None) | (DataGapRow.ended_at >= start))
            .order_by(DataGapRow.started_at)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def input_states(self) -> list[InputStateRow]:
        """The health record of every input of every polled source."""
        query = select(InputStateRow).order_by(
            InputStateRow.source, InputStateRow.station, InputStateRow.variable
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def last_source_runs(self) -> dict[str, SourceRunRow]:
        """The latest run of every source."""
        latest = select(func.max(SourceRunRow.id)).group_by(SourceRunRow.source)
        with self.engine.connect() as conn:
            rows = conn.execute(select(SourceRunRow).where(SourceRunRow.id.in_(latest)))
            return {row.source: row for row in rows}

    def set_stale(
        self,
        changes: dict[str, datetime | None],
        alerts: Sequence[NewAlert],
        input_changes: Mapping[tuple[str, str, str], datetime | None] = {},
        gaps_opened: Mapping[tuple[str, str], datetime] = {},
        gaps_closed: Mapping[tuple[str, str], datetime] = {},
    ) -> None:
        """Mark sources and (source, station, variable) inputs stale or recovered, open or
        close data gaps of (station, variable), and queue the alarms, atomically."""
        with self.engine.begin() as conn:
            for (station, variable), started in gaps_opened.items():
                conn.execute(
                    insert(DataGapRow).values(
                        station=station, variable=variable, started_at=started
                    )
                )
            for (station, variable), ended in gaps_closed.items():
                conn.execute(
                    update(DataGapRow)
                    .where(DataGapRow.ended_at.is_(None), DataGapRow.station == station)
                    .where(DataGapRow.variable == variable)
                    .values(ended_at=ended)
                )
            for name, since in changes.items():
                conn.execute(
                    update(SourceStateRow)
                    .where(SourceStateRow.name == name)
                    .values(stale_since=since)
                )
            for (source, station, variable), since in input_changes.items():
                conn.execute(
                    update(InputStateRow)
                    .where(InputStateRow.source == source, InputStateRow.station == station)
                    .where(InputStateRow.variable == variable)
                    .values(stale_since=since)
                )
            insert_alerts(conn, alerts)
