"""The store on SQLite and PostgreSQL: migrations, UTC times, idempotent upserts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, select

from floodwatch.core.readings import Kind, Reading, Variable
from floodwatch.db.engine import MIGRATIONS, head_revision, migrate, redact, schema_revision
from floodwatch.db.models import ReadingRow
from floodwatch.db.store import Store
from floodwatch.errors import StorageError

ICT = timezone(timedelta(hours=7))


@pytest.fixture
def store(database_url):
    """A freshly migrated store."""
    s = Store(database_url)
    yield s
    s.close()


def stored(store: Store) -> list[ReadingRow]:
    """Every stored reading, by time."""
    with store.engine.connect() as conn:
        return list(conn.execute(select(ReadingRow).order_by(ReadingRow.time)))


def test_migrations_create_every_table_and_reopen_cleanly(database_url):
    Store(database_url).close()
    store = Store(database_url)  # second open: already at head
    tables = set(inspect(store.engine).get_table_names())
    assert {"station", "segment", "reading", "event", "event_change", "alert", "cycle"} <= tables
    assert "alembic_version" in tables
    store.close()


def test_head_read_without_alembic_is_alembics_head():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert head_revision() == ScriptDirectory.from_config(cfg).get_current_head()


def test_a_database_behind_the_head_is_migrated_on_open(database_url):
    store = Store(database_url, run_migrations=False)
    assert schema_revision(store.engine) is None  # nothing there yet
    migrate(store.engine, "0004")
    assert schema_revision(store.engine) == "0004"
    store.close()
    store = Store(database_url)
    assert schema_revision(store.engine) == head_revision()
    assert "input_state" in inspect(store.engine).get_table_names()  # 0005's table
    store.close()


def test_times_come_back_aware_utc_whatever_offset_went_in(store):
    local = datetime(2024, 12, 16, 18, 0, tzinfo=ICT)
    store.readings.upsert([Reading("tp_ca_mau", Variable.WATER_LEVEL, local, 1.07)], "test")
    [row] = stored(store)
    assert row.time == local and row.time.tzinfo is not None
    assert row.time.utcoffset() == timedelta(0)
    assert row.time.hour == 11
    assert row.issued == row.time  # an observation is issued when observed


def test_naive_times_are_refused(store):
    with pytest.raises(Exception, match="naive datetime"):
        store.readings.upsert(
            [Reading("x", Variable.RAINFALL, datetime(2024, 12, 16), 1.0)], "test"
        )


def test_upsert_is_idempotent_and_keeps_forecast_issues_apart(store):
    t = datetime(2024, 12, 16, 11, tzinfo=UTC)
    obs = Reading("tp_ca_mau", Variable.WATER_LEVEL, t, 1.00)
    fc1 = Reading("tp_ca_mau", Variable.WATER_LEVEL, t, 0.90, Kind.FORECAST, t - timedelta(days=1))
    fc2 = Reading("tp_ca_mau", Variable.WATER_LEVEL, t, 0.95, Kind.FORECAST, t - timedelta(hours=6))
    store.readings.upsert([obs, fc1, fc2], "test")
    store.readings.upsert([obs, fc1, fc2], "test")
    assert len(stored(store)) == 3
    corrected = Reading("tp_ca_mau", Variable.WATER_LEVEL, t, 1.02)
    store.readings.upsert([corrected], "test")
    values = sorted(r.value for r in stored(store))
    assert values == [0.90, 0.95, 1.02]


def test_bulk_insert_of_many_readings(store):
    t0 = datetime(2024, 12, 1, tzinfo=UTC)
    readings = [
        Reading(f"s{i % 50}", Variable.RAINFALL, t0 + timedelta(hours=i // 50), float(i % 7))
        for i in range(60_000)
    ]
    assert store.readings.upsert(readings, "bulk") == 60_000
    assert store.stats.counts()["reading"] == 60_000


def test_bad_urls_give_one_clear_line_without_secrets():
    with pytest.raises(StorageError, match="not a database URL"):
        Store("nonsense")
    with pytest.raises(StorageError) as info:
        Store("postgresql+psycopg://fw:s3cret@127.0.0.1:1/none")
    assert "s3cret" not in str(info.value)
    assert "s3cret" not in redact("postgresql://fw:s3cret@host/db")


def test_migrations_match_the_models(store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []


def test_upgrading_a_database_with_history_keeps_it(database_url):
    """A database made by the first schema, with events and changes, upgrades cleanly."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    from floodwatch.db.engine import make_engine, migrate

    engine = make_engine(database_url)
    migrate(engine, "0001")
    at = datetime(2024, 12, 16, 11, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO event (segment_id, unit, kind, status, opened_at, level, max_level,"
                " depth_m, peak_depth_m, causes, updated_at) VALUES ('s1', 'u1', 'observed',"
                " 'flooded', :at, 1, 1, 0.2, 0.2, 1, :at)"
            ),
            {"at": at.replace(tzinfo=None) if engine.dialect.name == "sqlite" else at},
        )
        event_id = conn.execute(text("SELECT max(id) FROM event")).scalar()
        conn.execute(
            text(
                "INSERT INTO event_change (event_id, at, change, status, level, depth_m, note)"
                " VALUES (:e, :at, 'opened', 'flooded', 1, 0.2, 'x')"
            ),
            {
                "e": event_id,
                "at": at.replace(tzinfo=None) if engine.dialect.name == "sqlite" else at,
            },
        )
    engine.dispose()
    store = Store(database_url)  # opening upgrades to the newest schema
    try:
        [event] = store.events.listing()
        assert event.segment_id == "s1" and event.false_alarm is False
        assert store.stats.counts()["event_change"] == 1
    finally:
        store.close()


def test_a_failing_migration_leaves_the_sqlite_schema_as_it_was(tmp_path):
    """Migrations are all-or-nothing: a failure half-way rolls back its DDL too."""
    import sqlite3

    from sqlalchemy import inspect

    from floodwatch.db.engine import make_engine, migrate

    url = f"sqlite:///{tmp_path / 'half.db'}"
    engine = make_engine(url)
    migrate(engine, "0003")
    with sqlite3.connect(tmp_path / "half.db") as conn:  # in the way of 0004's second table
        conn.execute("CREATE TABLE event_note (id INTEGER PRIMARY KEY)")
    with pytest.raises(Exception, match="event_note"):
        migrate(engine)
    tables = set(inspect(engine).get_table_names())
    assert "web_user" not in tables  # 0004's first table was rolled back with the rest
    with engine.connect() as conn:
        from sqlalchemy import text

        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0003"
    engine.dispose()


def test_bulk_execute_writes_what_sqlalchemy_would(store):
    """The driver-level executemany stores the same values, defaults and times as SQLAlchemy."""
    from sqlalchemy import bindparam, insert, update

    from floodwatch.db.engine import bulk_execute
    from floodwatch.db.models import EventRow

    t = datetime(2024, 12, 16, 18, 30, 15, 123456, tzinfo=ICT)
    rows = [
        {
            "segment_id": f"s{i}", "unit": "u", "kind": "observed", "status": "open",
            "opened_at": t + timedelta(minutes=i % 3), "level": i % 4, "depth_m": 0.1 * i,
            "peak_at": None if i % 2 else t, "updated_at": t,
        }
        for i in range(6)
    ]  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(insert(EventRow), rows[:3])
        bulk_execute(conn, insert(EventRow), rows[3:])
        bulk_execute(
            conn,
            update(EventRow)
            .where(EventRow.id == bindparam("event_id"))
            .values(level=bindparam("v")),
            [{"event_id": 1, "v": 3}, {"event_id": 4, "v": 3}],
        )
    with store.engine.connect() as conn:
        got = list(conn.execute(select(EventRow).order_by(EventRow.id)))
    assert len(got) == 6
    for row, want in zip(got, rows, strict=True):
        assert row.opened_at == want["opened_at"] and row.opened_at.tzinfo is not None
        assert row.peak_at == want["peak_at"] and row.updated_at == t
        assert row.depth_m == pytest.approx(want["depth_m"])
        assert row.false_alarm is False and row.max_level == 0  # Python-side defaults
    assert [r.level for r in got] == [3, 1, 2, 3, 0, 1]
    with store.engine.connect() as conn:  # the same text on SQLite, so ordering and filters agree
        raw = conn.exec_driver_sql("SELECT DISTINCT updated_at FROM event").fetchall()
    assert len(raw) == 1


def test_comma_lists_become_json_lists_on_upgrade(database_url):
    """0006: alerts and deliveries written as comma-joined text read back as lists."""
    from sqlalchemy import text as sql

    store = Store(database_url, run_migrations=False)
    migrate(store.engine, "0005")
    t = datetime(2024, 12, 16, 11, tzinfo=UTC)
    with store.engine.begin() as conn:
        rows = ((1, "onset,level_up", "3,11", "sent"), (2, "heartbeat", "", "pending"))
        for alert_id, kinds, events, status in rows:
            conn.execute(
                sql(
                    "INSERT INTO alert (id, created_at, unit, kinds, event_ids, body, status, "
                    "attempts) VALUES (:id, :at, 'u', :kinds, :events, 'b', :status, 0)"
                ),
                {"id": alert_id, "at": t, "kinds": kinds, "events": events, "status": status},
            )
        conn.execute(
            sql(
                "INSERT INTO delivery (id, alert_id, chat_id, status, attempts, message_ids) "
                "VALUES (1, 1, -100, 'sent', 1, '501,502'), (2, 2, -100, 'pending', 0, '')"
            )
        )
    store.close()
    store = Store(database_url)
    alerts = store.events.alerts_naming(11)
    assert [(a.kinds, a.event_ids) for a, _ in alerts] == [(["onset", "level_up"], [3, 11])]
    assert store.events.alerts_naming(1) == []  # 11 holds the digit 1, not the event
    assert [d.message_ids for d in alerts[0][1]] == [[501, 502]]
    copies = store.outbox.sent_copies(1)
    assert [(c.chat_id, c.message_ids, c.body) for c in copies] == [(-100, [501, 502], "b")]
    [pending] = store.outbox.pending_alerts()
    assert pending.kinds == ["heartbeat"] and pending.event_ids == []
    store.close()


def test_unchanged_geodata_is_not_written_again(database_url):
    """Each command syncs the geodata; the same files leave the tables untouched."""
    from floodwatch.core.geo import load_geodata
    from floodwatch.db.models import SegmentRow
    from tests.conftest import ROOT

    geodata = load_geodata(ROOT / "geodata/segments.geojson", ROOT / "geodata/stations.geojson")
    store = Store(database_url)
    try:
        store.sync_geodata(geodata)
        with store.engine.begin() as conn:  # a marker the sync would wipe if it rewrote
            conn.execute(SegmentRow.__table__.update().values(name="marker"))
        store.sync_geodata(geodata)
        with store.engine.connect() as conn:
            names = set(conn.execute(select(SegmentRow.name)).scalars())
        assert names == {"marker"}
        first = geodata.segments[0]
        changed = load_geodata(ROOT / "geodata/segments.geojson", ROOT / "geodata/stations.geojson")
        object.__setattr__(changed.segments[0], "crest_m", first.crest_m + 0.01)
        store.sync_geodata(changed)
        with store.engine.connect() as conn:
            names = set(conn.execute(select(SegmentRow.name)).scalars())
        assert "marker" not in names and first.name in names
    finally:
        store.close()


def test_operators_survive_the_locked_doors_upgrade(database_url):
    """0007: an operator made before sessions and throttling logs in after, enabled."""
    from sqlalchemy import text as sql

    from floodwatch.web.auth import hash_password, log_in_attempt

    store = Store(database_url, run_migrations=False)
    migrate(store.engine, "0006")
    t = datetime(2024, 12, 16, 11, tzinfo=UTC)
    with store.engine.begin() as conn:
        conn.execute(
            sql("INSERT INTO web_user (username, password_hash, display_name, created_at) "
                "VALUES ('lan', :h, 'Nguyễn Thị Lan', :at)"),
            {"h": hash_password("mật-khẩu-dài"), "at": t},
        )  # fmt: skip
    store.close()
    store = Store(database_url)
    try:
        [row] = store.users.listing(t)
        assert row.username == "lan" and row.disabled is False and row.last_login_at is None
        assert row.sessions == 0
        user = log_in_attempt(store, "lan", "mật-khẩu-dài", "192.0.2.1", datetime.now(UTC))
        assert user is not None and user.display_name == "Nguyễn Thị Lan"
        assert store.tokens.listing() == [] and store.logins.locked_out(t) == {}
    finally:
        store.close()


def test_parts_sent_before_the_parts_table_are_kept_on_upgrade(database_url):
    """0011: a delivery cut off after two of its parts goes on with the third."""
    from sqlalchemy import text as sql

    store = Store(database_url, run_migrations=False)
    migrate(store.engine, "0007")
    t = datetime(2024, 12, 16, 11, tzinfo=UTC)
    with store.engine.begin() as conn:
        conn.execute(
            sql("INSERT INTO alert (id, created_at, unit, kinds, event_ids, body, status, "
                "attempts) VALUES (1, :at, 'u', '[\"onset\"]', '[]', 'b', 'pending', 0)"),
            {"at": t},
        )  # fmt: skip
        conn.execute(
            sql("INSERT INTO delivery (id, alert_id, chat_id, status, attempts, message_ids) "
                "VALUES (1, 1, -100, 'pending', 1, '[501, 502]'), "
                "(2, 1, -200, 'sent', 1, '[7]'), (3, 1, -300, 'pending', 0, '[]')")
        )  # fmt: skip
    store.close()
    store = Store(database_url)
    try:
        outbox = store.outbox
        assert [outbox.parts_done(i) for i in (1, 2, 3)] == [{0, 1}, set(), set()]
        assert outbox.recent_sends(t - timedelta(days=1)) == []  # no time known: not counted
        outbox.part_done(1, 2, -100, 503, t)
        assert outbox.alert(1).charts is None
        [(delivery, _)] = [(d, a) for d, a in outbox.next_per_chat(t) if d.chat_id == -100]
        assert delivery.message_ids == [501, 502, 503] and delivery.priority == 2
        assert outbox.recent_sends(t) == [(-100, t)]
    finally:
        store.close()
