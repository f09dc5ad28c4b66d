"""SQLModel table classes (storage only; the core uses plain dataclasses).

Every datetime column is timezone-aware UTC in and out, on SQLite (stored as
naive UTC text) and on PostgreSQL (timestamptz).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, String, UniqueConstraint, cast
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator):
    """A datetime that must be aware on the way in and is aware UTC on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        """Refuse naive datetimes; store UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: floodwatch stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        """Attach UTC to what SQLite returns; normalize PostgreSQL's zone to UTC."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_column(nullable: bool = True, index: bool = False) -> Column:
    """A UTCDateTime column."""
    return Column(UTCDateTime(), nullable=nullable, index=index)


class StationRow(SQLModel, table=True):
    """A station as loaded from the station GeoJSON."""

    __tablename__ = "station"
    id: str = Field(primary_key=True)
    name: str
    river: str | None = None
    measures: str  # comma-separated variables
    lon: float
    lat: float
    alarm1_m: float | None = None
    alarm2_m: float | None = None
    alarm3_m: float | None = None


class SegmentRow(SQLModel, table=True):
    """A road segment as loaded from the segment GeoJSON, with its assigned stations."""

    __tablename__ = "segment"
    id: str = Field(primary_key=True)
    name: str
    ward: str
    unit: str = Field(index=True)
    crest_m: float
    tide_station: str
    rain_station: str
    drain_mm_h: float | None = None
    outfall_m: float | None = None
    priority: int = 2
    length_m: float = 0.0
    geometry: str = ""  # GeoJSON geometry, WGS84


class ReadingRow(SQLModel, table=True):
    """One stored reading; unique per station, variable, time, kind and issue time."""

    __tablename__ = "reading"
    __table_args__ = (
        UniqueConstraint("station", "variable", "time", "kind", "issued", name="uq_reading"),
        Index("ix_reading_time", "time"),
    )
    id: int | None = Field(default=None, primary_key=True)
    station: str
    variable: str
    time: datetime = Field(sa_column=utc_column(nullable=False))
    kind: str
    issued: datetime = Field(sa_column=utc_column(nullable=False))
    value: float
    source: str = ""
    flag: str | None = None  # why validation doubts it (soft_limit, spike, flat_line)


class EventRow(SQLModel, table=True):
    """A flood event (observed or forecast) of one segment."""

    __tablename__ = "event"
    __table_args__ = (Index("ix_event_open", "status", "segment_id"),)
    id: int | None = Field(default=None, primary_key=True)
    segment_id: str = Field(index=True)
    unit: str = Field(index=True)
    kind: str
    status: str
    opened_at: datetime = Field(sa_column=utc_column(nullable=False, index=True))
    closed_at: datetime | None = Field(default=None, sa_column=utc_column())
    level: int = 0
    max_level: int = 0
    depth_m: float = 0.0
    peak_depth_m: float = 0.0
    peak_at: datetime | None = Field(default=None, sa_column=utc_column())
    causes: int = 0
    cause: str | None = None
    below_since: datetime | None = Field(default=None, sa_column=utc_column())
    expected_onset_at: datetime | None = Field(default=None, sa_column=utc_column())
    expected_end_at: datetime | None = Field(default=None, sa_column=utc_column())
    close_reason: str | None = None
    forecast_event_id: int | None = None
    alerted_at: datetime | None = Field(default=None, sa_column=utc_column())
    updated_at: datetime = Field(sa_column=utc_column(nullable=False))
    # Set by operators on the web: who acknowledged, and whether it was a false alarm.
    ack_by: str | None = None
    ack_at: datetime | None = Field(default=None, sa_column=utc_column())
    false_alarm: bool = False


class EventChangeRow(SQLModel, table=True):
    """One recorded change of an event, with its reason."""

    __tablename__ = "event_change"
    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(index=True, foreign_key="event.id")
    at: datetime = Field(sa_column=utc_column(nullable=False))
    change: str
    status: str
    level: int
    depth_m: float
    note: str


def may_list(column, number: int):
    """A SQL pre-filter for rows whose JSON list `column` may hold `number`.

    It matches the digits anywhere in the JSON text (11 for 1 too); callers keep
    the rows whose decoded list really holds it. Portable across SQLite and
    PostgreSQL, where JSON operators differ.
    """
    return cast(column, String).contains(str(int(number)))


class AlertRow(SQLModel, table=True):
    """The alert outbox: committed with the event changes that caused it."""

    __tablename__ = "alert"
    __table_args__ = (Index("ix_alert_pending", "status", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(sa_column=utc_column(nullable=False))
    # The moment it describes (its earliest change); None: created_at (alarms, notes).
    event_at: datetime | None = Field(default=None, sa_column=utc_column())
    unit: str
    kinds: list[str] = Field(sa_column=Column(JSON, nullable=False))  # most severe first
    event_ids: list[int] = Field(sa_column=Column(JSON, nullable=False))
    body: str
    status: str = "pending"  # pending, sent, muted
    attempts: int = 0
    sent_at: datetime | None = Field(default=None, sa_column=utc_column())
    last_error: str | None = None
    # The first "Đã nhận" press: who and when. Stops escalation.
    ack_by: str | None = None
    ack_at: datetime | None = Field(default=None, sa_column=utc_column())
    escalated_at: datetime | None = Field(default=None, sa_column=utc_column())
    escalation_of: int | None = None  # the alert this one escalates
    # The hydrographs that follow the text, fixed at the first attempt to deliver it
    # (station, crest, road, rain station, caption each): every chat, and every retry
    # after a restart, gets the same pictures in the same order. None: not planned yet.
    charts: list[dict] | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True)
    )


class DeliveryRow(SQLModel, table=True):
    """One alert to one chat: the unit of sending, retrying and ordering."""

    __tablename__ = "delivery"
    __table_args__ = (Index("ix_delivery_pending", "status", "chat_id", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(index=True, foreign_key="alert.id")
    chat_id: int = Field(sa_type=BigInteger)
    thread_id: int | None = None
    status: str = "pending"  # pending, sent, console, broken, failed
    # Which pending delivery of a chat goes first: one with parts already sent (2), an
    # operators' note about a broken or migrated chat (1), then the rest (0); oldest first.
    priority: int = 0
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_column=utc_column())
    sent_at: datetime | None = Field(default=None, sa_column=utc_column())
    # Telegram's ids of the parts delivered so far, in order (text parts, then photos).
    message_ids: list[int] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, default=lambda: [])
    )
    last_error: str | None = None


class DeliveryPartRow(SQLModel, table=True):
    """One part of a delivery that is done: a text chunk or a chart Telegram accepted, or a
    chart that could not be drawn (no message id). Parts are numbered in the alert's plan:
    its text chunks, then its charts. Their sent times rebuild the flood limits at start."""

    __tablename__ = "delivery_part"
    __table_args__ = (UniqueConstraint("delivery_id", "seq", name="uq_delivery_part"),)
    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="delivery.id")
    seq: int
    chat_id: int = Field(sa_type=BigInteger)  # where it went (a migrated group's new id)
    message_id: int | None = Field(default=None, sa_type=BigInteger)  # None: skipped
    # Real time (Telegram's limits are); None only for parts recorded before migration 0011.
    sent_at: datetime | None = Field(default=None, sa_column=utc_column(index=True))


class MetaRow(SQLModel, table=True):
    """Small facts about the database itself, by key (e.g. the synced geodata's fingerprint)."""

    __tablename__ = "meta"
    key: str = Field(primary_key=True)
    value: str


class ChatRow(SQLModel, table=True):
    """What delivery learned about a chat: gone (blocked, not found) or migrated."""

    __tablename__ = "chat"
    chat_id: int = Field(primary_key=True, sa_type=BigInteger)
    status: str  # ok, broken, migrated
    reason: str | None = None
    migrated_to: int | None = Field(default=None, sa_type=BigInteger)
    updated_at: datetime = Field(sa_column=utc_column(nullable=False))


class FieldReportRow(SQLModel, table=True):
    """A depth seen on a road by field staff, reported through the bot."""

    __tablename__ = "field_report"
    id: int | None = Field(default=None, primary_key=True)
    segment_id: str = Field(index=True)
    depth_m: float
    at: datetime = Field(sa_column=utc_column(nullable=False, index=True))
    chat_id: int = Field(sa_type=BigInteger)
    user_id: int = Field(sa_type=BigInteger)
    user_name: str
    photo_file_id: str | None = None
    lat: float | None = None
    lon: float | None = None
    note: str = ""
    event_id: int | None = None


class SilenceRow(SQLModel, table=True):
    """A mute: alerts for a segment or unit are logged but not sent until `until`."""

    __tablename__ = "silence"
    id: int | None = Field(default=None, primary_key=True)
    target_kind: str  # segment or unit
    target_id: str
    starts_at: datetime = Field(sa_column=utc_column(nullable=False))
    until: datetime = Field(sa_column=utc_column(nullable=False, index=True))
    reason: str = ""
    created_by: str = ""


class CycleRow(SQLModel, table=True):
    """One completed assessment cycle (its simulated or real `at`)."""

    __tablename__ = "cycle"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=utc_column(nullable=False, index=True))
    finished_at: datetime = Field(sa_column=utc_column(nullable=False))
    duration_s: float
    segments: int
    flooded: int
    forecast: int
    changes: int
    alerts: int
    unknown: int = 0  # segments whose tide station had no level now
    blind: int = 0  # segments whose only sources for a needed input are stale


class ForecastIssueRow(SQLModel, table=True):
    """A segment's next wet episode as a cycle forecast it, kept only when it changed.

    A row stays in force until the segment's next row; `level` 0 withdraws the
    forecast. `current` marks each segment's row in force now (what the next
    cycle compares with). Read by `floodwatch backtest`.
    """

    __tablename__ = "forecast_issue"
    id: int | None = Field(default=None, primary_key=True)
    segment_id: str = Field(index=True)
    issued_at: datetime = Field(sa_column=utc_column(nullable=False, index=True))
    level: int = 0
    onset_at: datetime | None = Field(default=None, sa_column=utc_column())
    end_at: datetime | None = Field(default=None, sa_column=utc_column())
    peak_at: datetime | None = Field(default=None, sa_column=utc_column())
    peak_m: float | None = None
    cause: int = 0
    current: bool = Field(default=False, index=True)


class SourceStateRow(SQLModel, table=True):
    """The health of one source, updated after every poll."""

    __tablename__ = "source_state"
    name: str = Field(primary_key=True)
    type: str
    first_seen_at: datetime = Field(sa_column=utc_column(nullable=False))
    last_attempt_at: datetime | None = Field(default=None, sa_column=utc_column())
    last_success_at: datetime | None = Field(default=None, sa_column=utc_column())
    consecutive_failures: int = 0
    last_error: str | None = None
    # The newest time at which any of its accepted values became known.
    newest_at: datetime | None = Field(default=None, sa_column=utc_column())
    # Set while a "no data" alarm is out for this source.
    stale_since: datetime | None = Field(default=None, sa_column=utc_column())


class InputStateRow(SQLModel, table=True):
    """The health of one input (station, variable) as one source delivers it."""

    __tablename__ = "input_state"
    source: str = Field(primary_key=True)
    station: str = Field(primary_key=True)
    variable: str = Field(primary_key=True)
    # When the source was first polled for it: the reference while nothing has arrived.
    first_seen_at: datetime = Field(sa_column=utc_column(nullable=False))
    # The newest time at which a stored, unflagged value of it became known.
    newest_at: datetime | None = Field(default=None, sa_column=utc_column())
    # Set while a "mất tín hiệu" alarm is out for this input.
    stale_since: datetime | None = Field(default=None, sa_column=utc_column())
    # What the provider says of the station (alarm levels, record flood), as JSON.
    reference: str | None = None


class DataGapRow(SQLModel, table=True):
    """A period when no fresh source delivered a (station, variable): its roads were blind."""

    __tablename__ = "data_gap"
    __table_args__ = (Index("ix_data_gap_open", "ended_at", "station", "variable"),)
    id: int | None = Field(default=None, primary_key=True)
    station: str
    variable: str
    # The newest data before the gap (or when the gap was found, if there never was any).
    started_at: datetime = Field(sa_column=utc_column(nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=utc_column())


class SourceRunRow(SQLModel, table=True):
    """One poll of one source: what arrived, what was flagged or rejected and why."""

    __tablename__ = "source_run"
    __table_args__ = (Index("ix_source_run_source", "source", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    source: str
    at: datetime = Field(sa_column=utc_column(nullable=False))
    ok: bool
    duration_s: float
    accepted: int = 0
    flagged: int = 0
    rejected: int = 0
    reasons: str = "{}"  # JSON: code -> count
    details: str = ""  # the first rejected/flagged values, one per line
    error: str | None = None


class EventNoteRow(SQLModel, table=True):
    """An operator's note on an event (acknowledgements and false-alarm marks too)."""

    __tablename__ = "event_note"
    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(index=True, foreign_key="event.id")
    at: datetime = Field(sa_column=utc_column(nullable=False))
    author: str
    kind: str = "note"  # note, ack, false_alarm, false_alarm_cleared
    text: str = ""


class UserRow(SQLModel, table=True):
    """An operator who may log in to the web (password stored as a salted hash)."""

    __tablename__ = "web_user"
    username: str = Field(primary_key=True)
    password_hash: str
    display_name: str = ""
    created_at: datetime = Field(sa_column=utc_column(nullable=False))
    # Set by `floodwatch user disable`: no login, and every session ends.
    disabled: bool = False
    last_login_at: datetime | None = Field(default=None, sa_column=utc_column())


class SessionRow(SQLModel, table=True):
    """A web login: the sha256 of the random id in the signed cookie (server-side, so
    logout, `user remove` and `user disable` end it at once)."""

    __tablename__ = "web_session"
    id_hash: str = Field(primary_key=True)
    username: str = Field(index=True)
    created_at: datetime = Field(sa_column=utc_column(nullable=False))
    expires_at: datetime = Field(sa_column=utc_column(nullable=False, index=True))


class LoginThrottleRow(SQLModel, table=True):
    """Failed logins of one user name (`user:NAME`) or one address (`addr:IP`): after a
    few, attempts are refused for a growing delay; a user name can be locked out."""

    __tablename__ = "login_throttle"
    key: str = Field(primary_key=True)
    failures: int = 0  # consecutive failures (started attempts, until one succeeds)
    last_failure_at: datetime = Field(sa_column=utc_column(nullable=False, index=True))
    blocked_until: datetime | None = Field(default=None, sa_column=utc_column())
    locked: bool = False  # a user name locked out until `user unlock` or blocked_until


class ApiTokenRow(SQLModel, table=True):
    """A token a program sends as `Authorization: Bearer …` (only its sha256 is kept)."""

    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String, nullable=False, unique=True))
    token_hash: str = Field(sa_column=Column(String, nullable=False, unique=True))
    note: str = ""
    created_at: datetime = Field(sa_column=utc_column(nullable=False))
    last_used_at: datetime | None = Field(default=None, sa_column=utc_column())
    revoked_at: datetime | None = Field(default=None, sa_column=utc_column())


class DatabaseOutageRow(SQLModel, table=True):
    """A time the database could not be used, written once it answered again."""

    __tablename__ = "database_outage"
    id: int | None = Field(default=None, primary_key=True)
    # From the first failure a process saw to its first success afterwards.
    started_at: datetime = Field(sa_column=utc_column(nullable=False, index=True))
    ended_at: datetime = Field(sa_column=utc_column(nullable=False))
    seconds: float
    reason: str = ""  # the driver's first line for the first failure
