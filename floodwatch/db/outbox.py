"""The alert outbox: alerts and their per-chat deliveries, stored before anything is sent.

An alert is inserted in the same transaction as whatever caused it (event
changes, a stale source), together with one delivery per target chat. Senders
only ever read committed deliveries, so a crash loses nothing; a delivery is
marked sent right after Telegram accepts it, so the one window for a duplicate
is a crash between Telegram's reply and that commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.orm import Session

from floodwatch.db.models import (
    AlertRow,
    ChatRow,
    DeliveryPartRow,
    DeliveryRow,
    EventRow,
    may_list,
)

PENDING, SENT, CONSOLE, BROKEN, FAILED, MUTED = (
    "pending", "sent", "console", "broken", "failed", "muted",
)  # fmt: skip
# Which pending delivery of a chat goes first (highest, then oldest): one already
# partly sent, so its parts stay together; then an urgent operators' note.
NORMAL, URGENT, STARTED = 0, 1, 2
# The `last_error` of a delivery held back by Telegram's own RetryAfter: not woken early.
RETRY_AFTER = "retry_after"


@dataclass(frozen=True)
class NewAlert:
    """An alert to store: its text, kinds, events and the chats it goes to."""

    at: datetime
    unit: str
    kinds: Sequence[str]
    body: str
    targets: Sequence[tuple[int, int | None]] = ()  # (chat id, thread id)
    event_ids: Sequence[int] = ()
    muted: bool = False
    escalation_of: int | None = None
    event_at: datetime | None = None  # the moment it describes; None: `at`
    urgent: bool = False  # goes ahead of each chat's backlog (notes about broken chats)


@dataclass(frozen=True)
class SentCopy:
    """One delivered copy of an alert: where, its messages, when, its text and the moment
    the alert describes."""

    chat_id: int
    message_ids: list[int]
    sent_at: datetime | None
    body: str
    described_at: datetime


def _close_if_done(conn: Connection, alert_id: int, at: datetime) -> None:
    """Mark an alert sent once none of its deliveries is pending."""
    still = conn.execute(
        select(DeliveryRow.id).where(
            DeliveryRow.alert_id == alert_id, DeliveryRow.status == PENDING
        )
    ).first()
    if still is None:
        done = update(AlertRow).where(AlertRow.id == alert_id, AlertRow.status == PENDING)
        conn.execute(done.values(status=SENT, sent_at=at))


def insert_alerts(conn: Connection, alerts: Sequence[NewAlert]) -> list[int]:
    """Insert alerts and their deliveries on an open transaction; returns the alert ids."""
    ids = []
    for alert in alerts:
        alert_id = conn.execute(
            insert(AlertRow)
            .values(
                created_at=alert.at,
                event_at=alert.event_at,
                unit=alert.unit,
                kinds=list(alert.kinds),
                event_ids=[int(i) for i in alert.event_ids],
                body=alert.body,
                status=MUTED if alert.muted else PENDING,
                escalation_of=alert.escalation_of,
            )
            .returning(AlertRow.id)
        ).scalar_one()
        ids.append(alert_id)
        if alert.muted or not alert.targets:
            continue
        conn.execute(
            insert(DeliveryRow),
            [
                {
                    "alert_id": alert_id,
                    "chat_id": chat,
                    "thread_id": thread,
                    "status": PENDING,
                    "priority": URGENT if alert.urgent else NORMAL,
                }
                for chat, thread in alert.targets
            ],
        )
    return ids


def acknowledge_events(conn: Connection, event_ids: Sequence[int], who: str, at: datetime) -> None:
    """Mark the events of an alert acknowledged (the first acknowledgement stands)."""
    ids = list(event_ids)
    if ids:
        conn.execute(
            update(EventRow)
            .where(EventRow.id.in_(ids), EventRow.ack_at.is_(None))
            .values(ack_by=who, ack_at=at)
        )


def acknowledge_alerts_of_event(conn: Connection, event_id: int, who: str, at: datetime) -> None:
    """An event acknowledged elsewhere (the web) stops the escalation of its alerts."""
    candidates = conn.execute(
        select(AlertRow.id, AlertRow.event_ids).where(
            AlertRow.ack_at.is_(None), may_list(AlertRow.event_ids, event_id)
        )
    ).all()
    ids = [a.id for a in candidates if event_id in a.event_ids]
    if ids:
        conn.execute(update(AlertRow).where(AlertRow.id.in_(ids)).values(ack_by=who, ack_at=at))


class Outbox:
    """Reads and updates of alerts and deliveries."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def add(self, alerts: Sequence[NewAlert]) -> list[int]:
        """Store alerts (with deliveries) in their own transaction."""
        with self.engine.begin() as conn:
            return insert_alerts(conn, alerts)

    def alert(self, alert_id: int) -> AlertRow | None:
        """One alert."""
        with self.engine.connect() as conn:
            return conn.execute(select(AlertRow).where(AlertRow.id == alert_id)).first()

    def pending_alerts(self, limit: int = 100) -> list[AlertRow]:
        """Alerts not yet delivered to the console, oldest first."""
        query = select(AlertRow).where(AlertRow.status == PENDING).order_by(AlertRow.id)
        with self.engine.connect() as conn:
            return list(conn.execute(query.limit(limit)))

    def mark_console(self, alert_id: int, at: datetime) -> None:
        """The console showed an alert: it and its deliveries are done."""
        with self.engine.begin() as conn:
            conn.execute(
                update(AlertRow)
                .where(AlertRow.id == alert_id)
                .values(status=SENT, sent_at=at, attempts=AlertRow.attempts + 1)
            )
            conn.execute(
                update(DeliveryRow)
                .where(DeliveryRow.alert_id == alert_id, DeliveryRow.status == PENDING)
                .values(status=CONSOLE, sent_at=at)
            )

    # --- Telegram deliveries --------------------------------------------------

    def next_per_chat(self, now: datetime, limit: int = 200) -> list[tuple[DeliveryRow, AlertRow]]:
        """The first pending delivery of each chat, if it is due (per-chat order is kept).

        First means: one with parts already sent, then an urgent note, then the oldest.
        """
        ranked = (
            select(
                DeliveryRow.id,
                func.row_number()
                .over(
                    partition_by=DeliveryRow.chat_id,
                    order_by=(DeliveryRow.priority.desc(), DeliveryRow.id),
                )
                .label("place"),
            )
            .where(DeliveryRow.status == PENDING)
            .subquery()
        )
        heads = select(ranked.c.id).where(ranked.c.place == 1)
        query = (
            select(DeliveryRow, AlertRow)
            .join(AlertRow, AlertRow.id == DeliveryRow.alert_id)
            .where(DeliveryRow.id.in_(heads))
            .where((DeliveryRow.next_attempt_at.is_(None)) | (DeliveryRow.next_attempt_at <= now))
            .order_by(DeliveryRow.id)
            .limit(limit)
        )
        with Session(self.engine) as session:
            return [(d, a) for d, a in session.execute(query).all()]

    def pending_count(self) -> int:
        """Deliveries still to send."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(DeliveryRow.id).where(DeliveryRow.status == PENDING))
            return len(rows.all())

    def delivered(self, delivery_id: int, at: datetime) -> None:
        """Every part of a delivery is done (each recorded by `part_done`)."""
        with self.engine.begin() as conn:
            row = conn.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery_id)
                .values(status=SENT, sent_at=at, attempts=DeliveryRow.attempts + 1,
                        last_error=None)
                .returning(DeliveryRow.alert_id)
            ).first()  # fmt: skip
            _close_if_done(conn, row.alert_id, at)

    def plan_charts(self, alert_id: int, charts: Sequence[dict]) -> list[dict]:
        """Fix an alert's charts at its first delivery attempt; returns the plan that stands."""
        with self.engine.begin() as conn:
            conn.execute(
                update(AlertRow)
                .where(AlertRow.id == alert_id, AlertRow.charts.is_(None))
                .values(charts=list(charts))
            )
            return list(conn.execute(select(AlertRow.charts).where(AlertRow.id == alert_id))
                        .scalar_one())  # fmt: skip

    def parts_done(self, delivery_id: int) -> set[int]:
        """The parts of a delivery already sent (or skipped), by their place in the plan."""
        query = select(DeliveryPartRow.seq).where(DeliveryPartRow.delivery_id == delivery_id)
        with self.engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def part_done(
        self, delivery_id: int, seq: int, chat_id: int, message_id: int | None, at: datetime
    ) -> None:
        """Record one part sent (its message id) or skipped (None), so a retry goes on after it."""
        with self.engine.begin() as conn:
            conn.execute(
                insert(DeliveryPartRow).values(delivery_id=delivery_id, seq=seq, chat_id=chat_id,
                                               message_id=message_id, sent_at=at)
            )  # fmt: skip
            ids = conn.execute(
                select(DeliveryPartRow.message_id)
                .where(DeliveryPartRow.delivery_id == delivery_id,
                       DeliveryPartRow.message_id.is_not(None))
                .order_by(DeliveryPartRow.seq)
            ).scalars()  # fmt: skip
            conn.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery_id)
                .values(message_ids=list(ids), priority=STARTED)
            )

    def recent_sends(self, since: datetime) -> list[tuple[int, datetime]]:
        """(chat, sent at) of every part Telegram accepted since a time, oldest first."""
        query = (
            select(DeliveryPartRow.chat_id, DeliveryPartRow.sent_at)
            .where(DeliveryPartRow.sent_at >= since, DeliveryPartRow.message_id.is_not(None))
            .order_by(DeliveryPartRow.sent_at)
        )
        with self.engine.connect() as conn:
            return [(chat, at) for chat, at in conn.execute(query)]

    def wake(self) -> int:
        """Telegram answers again: retry now what network errors held back (not RetryAfter)."""
        with self.engine.begin() as conn:
            return conn.execute(
                update(DeliveryRow)
                .where(
                    DeliveryRow.status == PENDING,
                    DeliveryRow.next_attempt_at.is_not(None),
                    (DeliveryRow.last_error.is_(None)) | (DeliveryRow.last_error != RETRY_AFTER),
                )
                .values(next_attempt_at=None)
            ).rowcount

    def retry_later(self, delivery_id: int, when: datetime, error: str) -> None:
        """A failure worth retrying: try again at `when`."""
        with self.engine.begin() as conn:
            conn.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery_id)
                .values(next_attempt_at=when, attempts=DeliveryRow.attempts + 1, last_error=error)
            )

    def give_up(self, delivery_id: int, status: str, error: str, at: datetime) -> None:
        """A failure not worth retrying (broken chat, rejected message)."""
        with self.engine.begin() as conn:
            row = conn.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery_id)
                .values(status=status, attempts=DeliveryRow.attempts + 1, last_error=error)
                .returning(DeliveryRow.alert_id)
            ).first()
            _close_if_done(conn, row.alert_id, at)

    def redirect(self, old_chat: int, new_chat: int, at: datetime) -> None:
        """A group became a supergroup: record it and move its pending deliveries."""
        with self.engine.begin() as conn:
            self._set_chat(conn, old_chat, "migrated", f"migrated to {new_chat}", at, new_chat)
            conn.execute(
                update(DeliveryRow)
                .where(DeliveryRow.chat_id == old_chat, DeliveryRow.status == PENDING)
                .values(chat_id=new_chat, next_attempt_at=None)
            )

    def follow_migrations(self) -> None:
        """Move pending deliveries of every migrated group to its new chat id."""
        with self.engine.begin() as conn:
            moved = conn.execute(
                select(ChatRow.chat_id, ChatRow.migrated_to).where(ChatRow.migrated_to.is_not(None))
            ).all()
            for old, new in moved:
                conn.execute(
                    update(DeliveryRow)
                    .where(DeliveryRow.chat_id == old, DeliveryRow.status == PENDING)
                    .values(chat_id=new)
                )

    def break_chat(self, chat_id: int, reason: str, at: datetime) -> tuple[int, bool]:
        """A chat is gone: mark it and its pending deliveries broken.

        Returns how many deliveries were dropped, and whether the chat was
        newly broken (so operators hear about it once, not on every alert).
        """
        with self.engine.begin() as conn:
            before = conn.execute(select(ChatRow.status).where(ChatRow.chat_id == chat_id)).scalar()
            self._set_chat(conn, chat_id, BROKEN, reason, at, None)
            rows = conn.execute(
                update(DeliveryRow)
                .where(DeliveryRow.chat_id == chat_id, DeliveryRow.status == PENDING)
                .values(status=BROKEN, last_error=reason)
                .returning(DeliveryRow.alert_id)
            ).all()
            for alert_id in {r.alert_id for r in rows}:
                _close_if_done(conn, alert_id, at)
            return len(rows), before != BROKEN

    def chat_ok(self, chat_id: int, at: datetime) -> None:
        """A chat took a message again: forget that it was broken."""
        with self.engine.begin() as conn:
            conn.execute(
                update(ChatRow)
                .where(ChatRow.chat_id == chat_id, ChatRow.status == BROKEN)
                .values(status="ok", reason=None, updated_at=at)
            )

    def chats(self) -> dict[int, ChatRow]:
        """What delivery learned about chats."""
        with self.engine.connect() as conn:
            return {row.chat_id: row for row in conn.execute(select(ChatRow))}

    @staticmethod
    def _set_chat(conn, chat_id, status, reason, at, migrated_to) -> None:
        """Insert or update a chat row."""
        values = {"status": status, "reason": reason, "updated_at": at, "migrated_to": migrated_to}
        done = conn.execute(update(ChatRow).where(ChatRow.chat_id == chat_id).values(**values))
        if done.rowcount == 0:
            conn.execute(insert(ChatRow).values(chat_id=chat_id, **values))

    # --- acknowledgement and escalation ---------------------------------------

    def acknowledge(self, alert_id: int, who: str, at: datetime) -> AlertRow | None:
        """Record the first acknowledgement of an alert, and of the events it names.

        Returns the alert as it now stands.
        """
        with self.engine.begin() as conn:
            conn.execute(
                update(AlertRow)
                .where(AlertRow.id == alert_id, AlertRow.ack_at.is_(None))
                .values(ack_by=who, ack_at=at)
            )
            alert = conn.execute(select(AlertRow).where(AlertRow.id == alert_id)).first()
            if alert is not None:
                acknowledge_events(conn, alert.event_ids, who, at)
            return alert

    def sent_copies(self, alert_id: int) -> list[SentCopy]:
        """Every delivered copy of an alert and its escalations."""
        query = (
            select(
                DeliveryRow.chat_id, DeliveryRow.message_ids, DeliveryRow.sent_at, AlertRow.body,
                func.coalesce(AlertRow.event_at, AlertRow.created_at),
            )
            .join(AlertRow, AlertRow.id == DeliveryRow.alert_id)
            .where((AlertRow.id == alert_id) | (AlertRow.escalation_of == alert_id))
            .where(DeliveryRow.status == SENT)
        )  # fmt: skip
        with self.engine.connect() as conn:
            return [
                SentCopy(chat, list(ids), sent_at, body, described)
                for chat, ids, sent_at, body, described in conn.execute(query)
                if ids
            ]

    def unacknowledged(self, kinds: frozenset[str], older_than: datetime) -> list[AlertRow]:
        """Delivered, unacknowledged, not yet escalated alerts of these kinds sent before a time.

        The delay counts from delivery: an alert held up by an outage has not
        been seen yet, so it does not escalate early.
        """
        query = select(AlertRow).where(
            AlertRow.ack_at.is_(None),
            AlertRow.escalated_at.is_(None),
            AlertRow.escalation_of.is_(None),
            AlertRow.status == SENT,
            AlertRow.sent_at <= older_than,
        )
        with self.engine.connect() as conn:
            return [row for row in conn.execute(query) if set(row.kinds) & kinds]

    def escalate(self, alert_id: int, escalation: NewAlert, at: datetime) -> int | None:
        """Queue an escalation once (a second call for the same alert does nothing)."""
        with self.engine.begin() as conn:
            claimed = conn.execute(
                update(AlertRow)
                .where(AlertRow.id == alert_id, AlertRow.escalated_at.is_(None))
                .values(escalated_at=at)
            ).rowcount
            if not claimed:
                return None
            return insert_alerts(conn, [escalation])[0]


def backoff(attempts: int, base_s: float = 2.0, cap_s: float = 300.0) -> timedelta:
    """Wait before the next try after `attempts` failures."""
    return timedelta(seconds=min(cap_s, base_s * 2 ** max(0, attempts)))
