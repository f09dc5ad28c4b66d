"""Quiet outages: one line when the database goes away, one when it is back, a count.

The outages are real: a second process holds the SQLite WAL locks (every read and
write of `run` then fails with "locking protocol" after SQLite's ~10 s of retries),
another connection holds the write lock past a short busy timeout ("database is
locked"), or, on PostgreSQL, the loopback proxy in front of the server vanishes.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from floodwatch.config import load_settings
from floodwatch.db.outages import Availability, is_outage
from floodwatch.db.outbox import NewAlert
from floodwatch.db.store import Store
from floodwatch.errors import StorageError
from floodwatch.service.app import App
from floodwatch.service.scheduler import Heartbeat, Service, StopRequest
from floodwatch.telegram.commands import FAILED
from tests.conftest import edit_config, floodwatch_run, on_database, wait_until
from tests.fake_telegram import FakeTelegram
from tests.test_metrics import one, scrape

TOKEN = "123456:QUIET-TOKEN"
OPERATORS, OPERATOR_USER = -1009, 4242

# Holds SQLite's WAL locks (the -shm bytes 120-127: write, checkpoint, recovery and the
# five read marks) from its own process, until a line arrives on stdin.
HOLD_WAL_LOCKS = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX, 8, 120, 0)
print("locked", flush=True)
sys.stdin.readline()
"""


class WalLocks:
    """Another process holding a SQLite database's WAL locks: nobody else reads or writes."""

    def __init__(self, database: Path):
        self.shm = Path(f"{database}-shm")
        self.proc: subprocess.Popen | None = None

    def hold(self) -> None:
        """Take the locks (waits for read transactions under way to end)."""
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD_WAL_LOCKS, str(self.shm)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        """Let go: the database answers again."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.communicate("go\n", timeout=10)
        self.proc = None


def lines_with(log: str, words: str) -> list[str]:
    """The log lines containing `words`."""
    return [line for line in log.splitlines() if words in line]


def test_run_tells_a_database_outage_once_and_its_end_once(project, tmp_path, monkeypatch):
    database = tmp_path / "quiet.db"
    on_database(project, f"sqlite:///{database}?timeout=1")
    # The heartbeat every 12 s (half of systemd's WatchdogSec): it meets the outage too.
    monkeypatch.setenv("WATCHDOG_USEC", "24000000")
    locks = WalLocks(database)
    log = tmp_path / "run.log"
    with FakeTelegram(timeout_s=1.0) as tg:
        edit_config(
            project,
            append=f'[telegram]\nbase_url = "{tg.url}/bot"\noperators_chats = [{OPERATORS}]\n'
            "timeout_s = 2\n",
        )
        try:
            with floodwatch_run(project, log, token=TOKEN) as proc:
                wait_until(lambda: "Running;" in log.read_text(), proc, log)
                locks.hold()
                held_at = datetime.now(UTC)
                # The sender's pass (every second) fails after SQLite's retries; so do a
                # command and a button press meanwhile, and the heartbeat.
                tg.push_message(OPERATORS, OPERATOR_USER, "/status")
                tg.push_callback(OPERATORS, OPERATOR_USER, 1, "ack:1")  # a "Đã nhận" press
                wait_until(lambda: "went away" in log.read_text(), proc, log, seconds=30)
                wait_until(lambda: FAILED in tg.texts(OPERATORS), proc, log, seconds=30)
                time.sleep(max(0.0, 23 - (datetime.now(UTC) - held_at).total_seconds()))
                locks.release()
                wait_until(lambda: "is back" in log.read_text(), proc, log, seconds=30)
                # Delivery goes on: an alert queued now reaches the operators.
                store = Store(load_settings(project).storage.database_url)
                store.outbox.add([NewAlert(datetime.now(UTC), "operators", ["test"], "sau sự cố",
                                           [(OPERATORS, None)])])  # fmt: skip
                store.close()
                wait_until(lambda: "sau sự cố" in tg.texts(OPERATORS), proc, log, seconds=30)
        finally:
            locks.release()
    output = log.read_text()
    [away] = lines_with(output, "went away")
    [back] = lines_with(output, "is back")
    assert f"database sqlite:///{database}?timeout=1 went away" in away
    assert "locking protocol" in away
    assert "Traceback" not in output
    # Nothing else was logged from the outage on: not a line per pass, job or command.
    assert output.split("Running;")[1].splitlines()[1:] == [away, back]

    app = App.open(project, with_sources=False, writes=False)
    try:
        count, seconds = app.store.outages.totals()
        assert count == 1
        assert 10 <= seconds <= 40, seconds  # from the first failure to the first success
        samples = scrape(app)
        assert one(samples, "floodwatch_database_outages_total") == 1
        assert one(samples, "floodwatch_database_outage_seconds_total") == pytest.approx(seconds)
    finally:
        app.close()


# --- in one process: each job on its own ------------------------------------------------------


@pytest.fixture
def sqlite_app(project, tmp_path):
    """The app on a SQLite file with a 0.2 s busy timeout (a lock fails fast)."""
    url = load_settings(project).storage.database_url
    if not url.startswith("sqlite"):
        pytest.skip("a held write lock is a SQLite scenario (PostgreSQL: the proxy test)")
    on_database(project, f"sqlite:///{tmp_path / 'locked.db'}?timeout=0.2")
    app = App.open(project, with_sources=False)
    yield app
    app.close()


def hold_write_lock(app: App):
    """Another connection writing and not committing: writes fail after the busy timeout."""
    import sqlite3

    holder = sqlite3.connect(make_url(app.store.url).database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("DELETE FROM meta WHERE key = 'nothing'")
    return holder


def test_cycles_and_the_heartbeat_alarm_during_an_outage_log_one_line(sqlite_app, caplog):
    app = sqlite_app
    service = Service(app, deliver=lambda: 0, on_cycle=lambda _r: None, stop=StopRequest())
    heartbeat = Heartbeat(app, lambda: 0)
    late = datetime.now(UTC) + timedelta(days=1)  # no cycle for a day: the alarm is due
    holder = hold_write_lock(app)
    try:
        with caplog.at_level(logging.INFO):
            for _ in range(3):
                service.after_ingest(None)  # the cycle cannot commit
                heartbeat.beat(None, now=late)  # reads, then cannot queue the alarm
        assert heartbeat.alarmed is False  # tried again at the next beat
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with caplog.at_level(logging.INFO):
        service.after_ingest(None)
    away = [r for r in caplog.records if "went away" in r.getMessage()]
    back = [r for r in caplog.records if "is back" in r.getMessage()]
    assert len(away) == 1 and len(back) == 1
    assert "(cycle): database is locked" in away[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info]
    assert "cycle failed" not in caplog.text
    assert app.store.outages.totals()[0] == 1


def test_an_unexpected_error_keeps_its_traceback_but_not_every_time(sqlite_app, caplog):
    app = sqlite_app
    heartbeat = Heartbeat(app, lambda: 0)
    with app.store.engine.begin() as conn:  # a bug's effect: a table the heartbeat reads is gone
        conn.execute(text("DROP TABLE cycle"))
    with caplog.at_level(logging.ERROR):
        for _ in range(5):
            heartbeat.beat(None)
    failures = [r for r in caplog.records if r.getMessage().startswith("heartbeat failed")]
    assert len(failures) == 1 and "no such table: cycle" in failures[0].exc_text
    assert "went away" not in caplog.text
    assert app.store.availability.away is None


def test_tracebacks_resume_after_the_interval_with_a_count(caplog, monkeypatch):
    from floodwatch.db import outages

    availability = Availability("sqlite:///x.db")
    clock = [1000.0]
    monkeypatch.setattr(outages.time, "monotonic", lambda: clock[0])
    log = logging.getLogger("test.quiet")
    with caplog.at_level(logging.ERROR, logger="test.quiet"):
        for step in range(4):
            with availability.watch("job", log):
                raise ValueError(f"bug {step}")
            clock[0] += 100  # three within five minutes, the fourth after
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "job failed"
    assert len(messages) == 2 and messages[1].startswith("job failed (2 more since ")
    assert "bug 3" in caplog.records[1].exc_text


def test_outages_are_told_by_their_cause():
    refused = OperationalError("SELECT 1", {}, Exception("connection refused\nIs the server…"))
    wrapped = StorageError("database x: connection refused")
    wrapped.__cause__ = refused
    assert is_outage(refused) and is_outage(wrapped)
    assert not is_outage(ValueError("bug")) and not is_outage(StorageError("migration"))


def test_an_outage_seen_by_two_instances_counts_once(database_url):
    store = Store(database_url)
    try:
        t0 = datetime(2025, 11, 5, 10, tzinfo=UTC)
        store.outages.record(t0, t0 + timedelta(seconds=40), "connection refused")
        # the standby saw it a little later and longer
        store.outages.record(t0 + timedelta(seconds=5), t0 + timedelta(seconds=60), "refused")
        store.outages.record(t0 + timedelta(hours=1), t0 + timedelta(hours=1, seconds=3), "x")
        assert store.outages.totals() == (2, 63.0)
    finally:
        store.close()


# --- PostgreSQL: the server vanishes ------------------------------------------------------------


def test_postgresql_outage_in_run_is_told_once(project, tmp_path, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("a vanishing server is a PostgreSQL scenario")
    from tests.test_outages import TcpProxy

    url = make_url(database_url)
    proxy = TcpProxy(url.port or 5432).start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    on_database(project, proxied)
    log = tmp_path / "run.log"
    with FakeTelegram(timeout_s=1.0) as tg:
        edit_config(
            project,
            append=f'[telegram]\nbase_url = "{tg.url}/bot"\noperators_chats = [{OPERATORS}]\n',
        )
        try:
            # The outage ends before the first heartbeat (30 s), which would step down:
            # the connection holding the active instance's lock died with the proxy.
            with floodwatch_run(project, log, token=TOKEN) as proc:
                wait_until(lambda: "Running;" in log.read_text(), proc, log)
                proxy.stop()
                wait_until(lambda: "went away" in log.read_text(), proc, log, seconds=10)
                time.sleep(4)  # four more passes of the sender meet it
                proxy.start()
                wait_until(lambda: "is back" in log.read_text(), proc, log, seconds=10)
        finally:
            proxy.stop()
    output = log.read_text()
    assert len(lines_with(output, "went away")) == 1
    assert len(lines_with(output, "is back")) == 1
    assert f"127.0.0.1:{proxy.port}" in lines_with(output, "went away")[0]
    assert url.password is None or url.password not in output
    assert "Traceback" not in output
