"""Outages: the database away or locked, a full disk, a foreign host clock, a Telegram storm.

Each failure must end in one clear error (no traceback), keep nothing half written,
and the next cycle after recovery catches up to what an uninterrupted run records.
Everything runs on 127.0.0.1; the shared PostgreSQL server is never stopped: a TCP
proxy in the test plays the database that vanishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import event, select
from sqlalchemy.engine import make_url

from floodwatch.cli import main
from floodwatch.config import load_settings
from floodwatch.db.models import AlertRow, EventChangeRow, EventRow
from floodwatch.db.outbox import NewAlert
from floodwatch.errors import StorageError
from floodwatch.service.app import App
from floodwatch.service.polling import poll_once
from floodwatch.service.replay import replay
from floodwatch.service.scheduler import Heartbeat
from floodwatch.sources.csvfile import read_csv
from floodwatch.telegram.sender import Limiter, TelegramNotifier
from tests.conftest import DATA, ROOT, edit_config, on_database, on_test_roads
from tests.fake_telegram import FakeTelegram, retry_after_error
from tests.test_telegram_delivery import FAST, Clock, deliveries

REPLAY = DATA / "replay" / "spring_tide_dec2024.csv"
TOKEN = "123456:OUTAGE-TOKEN"
AN_XUYEN, SO_XAY_DUNG, TAN_THANH, OPERATORS = -1001, -1002, -1003, -1009


def designed(config: Path, url: str | None = None) -> Path:
    """The config on the designed test roads (and on `url`, if given)."""
    on_test_roads(config)
    return config if url is None else on_database(config, url)


def beside(config: Path, name: str, url: str) -> Path:
    """A copy of the config next to it (relative paths still work) on another database."""
    return on_database(config, url, copy=config.with_name(name))


def log_of(app: App) -> tuple[list, list, list]:
    """Events, changes and alerts, without ids or wall-clock columns."""
    with app.store.engine.connect() as conn:
        events = [
            (r.segment_id, r.kind, r.status, r.opened_at, r.closed_at, round(r.peak_depth_m, 4),
             r.peak_at, r.max_level, r.cause)
            for r in conn.execute(select(EventRow).order_by(EventRow.id))
        ]  # fmt: skip
        changes = [
            (r.at, r.change, r.status, r.level, r.note)
            for r in conn.execute(select(EventChangeRow).order_by(EventChangeRow.id))
        ]
        alerts = [
            (r.created_at, r.unit, r.kinds, r.body)
            for r in conn.execute(select(AlertRow).order_by(AlertRow.id))
        ]
    return events, changes, alerts


def reference_log(config: Path, tmp_path: Path) -> tuple[list, list, list]:
    """The log of one uninterrupted replay on a fresh SQLite file."""
    reference = beside(config, "reference.toml", f"sqlite:///{tmp_path / 'reference.db'}")
    app = App.open(reference, with_sources=False)
    try:
        replay(app, read_csv(REPLAY, app.geodata.stations).readings)
        return log_of(app)
    finally:
        app.close()


def counts(app: App) -> dict[str, int]:
    """Rows of the tables a cycle or an ingest writes."""
    return app.store.stats.counts()


# --- the database away ------------------------------------------------------------------------


class TcpProxy:
    """A loopback TCP forwarder that can vanish (listener and connections closed) and return."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._running = False

    def start(self) -> TcpProxy:
        """Listen (again, on the same port)."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._listener, self._running = listener, True
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the listener and every forwarded connection: the database is gone."""
        self._running = False
        with self._lock:
            sockets, self._sockets = self._sockets, set()
            if self._listener is not None:
                sockets.add(self._listener)
                self._listener = None
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._running and self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                if not self._running:
                    client.close()
                    upstream.close()
                    return
                self._sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def pg_proxy(database_url):
    """A proxy in front of the test PostgreSQL, and the test URL pointed through it."""
    if not database_url.startswith("postgresql"):
        pytest.skip("a vanishing server is a PostgreSQL scenario (SQLite: see the lock test)")
    url = make_url(database_url)
    proxy = TcpProxy(url.port or 5432).start()
    try:
        yield (
            proxy,
            url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
        )
    finally:
        proxy.stop()


def test_postgresql_outage_fails_cycles_cleanly_and_the_next_cycle_catches_up(
    project, pg_proxy, tmp_path, caplog
):
    proxy, proxied_url = pg_proxy
    config = designed(project, proxied_url)
    expected = reference_log(config, tmp_path)
    app = App.open(config)  # with the network sources, down: poll_once records their failures
    try:
        readings = read_csv(REPLAY, app.geodata.stations).readings
        times = sorted({r.time for r in readings})
        first_cut, second_cut = times[len(times) // 3], times[2 * len(times) // 3]
        replay(app, [r for r in readings if r.time <= first_cut])
        before = counts(app)
        last = app.store.events.last_cycle_at()

        # The server vanishes between cycles: every way a cycle enters the database fails
        # with one StorageError line naming the (password-free) database.
        proxy.stop()
        outage = [r for r in readings if first_cut < r.time <= second_cut]
        for attempt in (
            lambda: replay(app, outage),
            lambda: app.pipeline.cycle(outage[0].time),
            lambda: poll_once(app, outage[0].time),
        ):
            with pytest.raises(StorageError) as failed:
                attempt()
            message = str(failed.value)
            assert message.startswith(
                f"database postgresql+psycopg://postgres@127.0.0.1:{proxy.port}"
            )
            assert "\n" not in message

        # It vanishes in the middle of a cycle's commit: none of that cycle is kept.
        proxy.start()
        armed = [True]

        def drop_before_cycle_row(_conn, _cursor, statement, *_args):
            if armed[0] and statement.lstrip().upper().startswith("INSERT INTO CYCLE "):
                armed[0] = False
                proxy.stop()

        event.listen(app.store.engine, "before_cursor_execute", drop_before_cycle_row)
        try:
            with pytest.raises(StorageError):
                replay(app, outage)
        finally:
            event.remove(app.store.engine, "before_cursor_execute", drop_before_cycle_row)
        proxy.start()
        after = counts(app)
        for table in ("event", "event_change", "alert", "cycle"):
            assert after[table] == before[table], table
        assert app.store.events.last_cycle_at() == last
        assert after["reading"] > before["reading"]  # the ingest before it did commit

        # Back: the next cycles catch up, and the log is that of an uninterrupted run.
        replay(app, [r for r in readings if r.time > first_cut])
        assert log_of(app) == expected
    finally:
        app.close()
    assert "Traceback" not in caplog.text


def test_sqlite_locked_by_another_writer_fails_the_cycle_then_succeeds(project, tmp_path):
    url = load_settings(project).storage.database_url
    if not url.startswith("sqlite"):
        pytest.skip("a file lock is a SQLite scenario")
    path = make_url(url).database
    config = designed(project, f"{url}?timeout=0.5")
    expected = reference_log(config, tmp_path)
    app = App.open(config, with_sources=False)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        readings = read_csv(REPLAY, app.geodata.stations).readings
        cut = sorted({r.time for r in readings})[len(readings) // 4]
        replay(app, [r for r in readings if r.time <= cut])
        before = counts(app)
        nxt = min(r.time for r in readings if r.time > cut)

        holder.execute("BEGIN EXCLUSIVE")  # a backup tool or a stuck second process
        started = time.monotonic()
        with pytest.raises(StorageError, match=r"database sqlite:///.*: database is locked"):
            app.pipeline.cycle(nxt)
        assert time.monotonic() - started < 5  # the short busy timeout, not the default 30 s
        assert counts(app) == before

        # A lock released within the busy timeout is simply waited for.
        app.close()
        threading.Timer(1.0, holder.execute, args=("COMMIT",)).start()
        app = App.open(beside(config, "patient.toml", f"{url}?timeout=10"), with_sources=False)
        replay(app, [r for r in readings if r.time > cut])
        assert log_of(app) == expected
    finally:
        holder.close()
        app.close()


def test_busy_timeout_defaults_to_thirty_seconds(tmp_path):
    from floodwatch.db.engine import make_engine

    for url, expected_ms in ((f"sqlite:///{tmp_path / 'a.db'}", 30000),
                             (f"sqlite:///{tmp_path / 'b.db'}?timeout=2.5", 2500)):  # fmt: skip
        engine = make_engine(url)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == expected_ms
        engine.dispose()
    with pytest.raises(StorageError, match="timeout must be 0-300 seconds"):
        make_engine(f"sqlite:///{tmp_path / 'c.db'}?timeout=soon")


# --- a full disk --------------------------------------------------------------------------------


@pytest.fixture
def small_disk():
    """A 6 MiB tmpfs, unmounted afterwards (skipped where mounting is not permitted)."""
    if sys.platform != "linux" or shutil.which("mount") is None:
        pytest.skip("needs Linux mount(8) for a size-limited tmpfs")
    mountpoint = Path(tempfile.mkdtemp(prefix="floodwatch-disk-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m,mode=0777", "tmpfs", str(mountpoint)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        mountpoint.rmdir()
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)
        mountpoint.rmdir()


def fill(folder: Path, leave_bytes: int) -> Path:
    """A ballast file taking all but `leave_bytes` of the file system."""
    ballast = folder / "ballast"
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    with ballast.open("wb") as out:
        out.truncate(0)
        chunk = b"\0" * 65536
        remaining = max(0, free - leave_bytes)
        while remaining > 0:
            remaining -= out.write(chunk[: min(len(chunk), remaining)])
    return ballast


def test_disk_full_ends_in_one_clear_line_and_a_sound_database(
    project, small_disk, tmp_path, caplog
):
    if not load_settings(project).storage.database_url.startswith("sqlite"):
        pytest.skip("a full disk under the SQLite file (PostgreSQL's disk is the server's)")
    db = small_disk / "floodwatch.db"
    config = designed(project, f"sqlite:///{db}")
    expected = reference_log(config, tmp_path)
    app = App.open(config, with_sources=False)
    try:
        readings = read_csv(REPLAY, app.geodata.stations).readings
        cut = sorted({r.time for r in readings})[10]
        replay(app, [r for r in readings if r.time <= cut])
        ballast = fill(small_disk, leave_bytes=0)
        with pytest.raises(StorageError) as failed:
            replay(app, readings)
        assert str(failed.value) == f"database sqlite:///{db}: database or disk is full"
        before = counts(app)

        # The CLI says so in one line naming the database, without a traceback.
        cli = CliRunner().invoke(main, ["--config", str(config), "replay", "-q", str(REPLAY)])
        assert cli.exit_code == 1, cli.output
        assert cli.output.strip() == f"error: database sqlite:///{db}: database or disk is full"
        assert cli.exception is None or isinstance(cli.exception, SystemExit)

        # The operators' alarm: no cycle for three steps. Whether the full disk still
        # takes it depends on free pages; either it is queued or the log says why not
        # (the one line of a database outage), and it is queued at a later beat once
        # there is room.
        caplog.clear()
        late = app.store.events.last_cycle_at() + timedelta(hours=4)
        heartbeat = Heartbeat(app, lambda: None)
        with caplog.at_level(logging.ERROR, logger="floodwatch.service"):
            heartbeat.beat(None, now=late)
        alarms = [a for a in app.store.outbox.pending_alerts() if a.kinds == ["heartbeat"]]
        if not alarms:
            assert heartbeat.alarmed is False
            assert (
                f"database sqlite:///{db} went away (heartbeat): database or disk is full"
            ) in caplog.text
        assert "Traceback" not in caplog.text

        with app.store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        assert counts(app)["cycle"] == before["cycle"]

        ballast.unlink()  # an operator frees space: the next beat and cycles go through
        heartbeat.beat(None, now=late)
        alarms = [a.id for a in app.store.outbox.pending_alerts() if a.kinds == ["heartbeat"]]
        assert alarms
        with app.store.engine.begin() as conn:  # the alarm is not part of the replay's log
            conn.execute(AlertRow.__table__.delete().where(AlertRow.id.in_(alarms)))
        replay(app, readings)
        assert log_of(app) == expected
        with app.store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    finally:
        app.close()


# --- the host clock -----------------------------------------------------------------------------


def cli_process(config: Path, tz: str, *args: str) -> subprocess.CompletedProcess:
    """Run the CLI in its own process with the host time zone `tz`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TZ": tz, "PGTZ": tz}
    return subprocess.run(
        [sys.executable, "-m", "floodwatch", "--config", str(config), *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("host_zone", ["America/New_York", "Asia/Ho_Chi_Minh"])
def test_host_time_zone_changes_nothing(project, tmp_path, host_zone):
    config = designed(project)
    reference = beside(config, "reference.toml", f"sqlite:///{tmp_path / 'reference.db'}")
    runner = CliRunner()  # TZ=UTC in this process (conftest)
    assert (
        runner.invoke(main, ["--config", str(reference), "replay", "-q", str(REPLAY)]).exit_code
        == 0
    )

    done = cli_process(config, host_zone, "replay", "-q", str(REPLAY))
    assert done.returncode == 0, done.stderr
    listed = cli_process(config, host_zone, "events", "--format", "json")
    table = cli_process(config, host_zone, "events")
    assert listed.returncode == 0 and table.returncode == 0, listed.stderr + table.stderr

    utc_json = runner.invoke(main, ["--config", str(reference), "events", "--format", "json"])
    utc_table = runner.invoke(main, ["--config", str(reference), "events"])

    def without_ids(rows):
        return [{k: v for k, v in e.items() if not k.endswith("id")} for e in rows]

    ours, theirs = json.loads(listed.stdout), json.loads(utc_json.output)
    assert ours and without_ids(ours) == without_ids(theirs)
    # Stored in UTC: the 1.07 m peak at 18:00 in Cà Mau is 11:00 UTC, in either zone.
    peaks = {e["peak_at"] for e in ours if e["segment_id"] == "tide-low"}
    assert "2024-12-16T11:00:00+00:00" in peaks
    # Displayed in the configured zone (UTC+7, no DST) whatever the host's.
    assert [line.split()[1:] for line in table.stdout.splitlines()] == [
        line.split()[1:] for line in utc_table.output.splitlines()
    ]
    assert "16/12/2024 18:00" in table.stdout


# --- a Telegram storm ---------------------------------------------------------------------------


@pytest.fixture
def tg():
    with FakeTelegram(timeout_s=1.0) as server:
        yield server


@pytest.fixture
def telegram_config(project, tg, monkeypatch):
    """Units with chats and operators, on the fake Bot API; no hydrographs (speed)."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    chats = {"ubnd_an_xuyen": AN_XUYEN, "so_xay_dung": SO_XAY_DUNG, "ubnd_tan_thanh": TAN_THANH}
    edit_config(
        project,
        units={unit: f"telegram_chats = [{chat}]" for unit, chat in chats.items()},
        append=f'[telegram]\nbase_url = "{tg.url}/bot"\noperators_chats = [{OPERATORS}]\n'
        "timeout_s = 2\nhydrographs = false\n",
    )
    return project


def test_telegram_refused_then_502_then_429_storms_delivers_everything_once_in_order(
    telegram_config, tg
):
    app = App.open(telegram_config, with_sources=False)
    clock = Clock(datetime(2024, 12, 16, tzinfo=UTC))
    chats = (AN_XUYEN, SO_XAY_DUNG, TAN_THANH, OPERATORS)
    try:
        app.store.outbox.add(
            [NewAlert(clock.now, "u", ["onset"], f"tin {i}", [(chat, None) for chat in chats])
             for i in range(6)]
        )  # fmt: skip
        notifier = TelegramNotifier(app, TOKEN, clock=clock, limiter=Limiter(**FAST))

        async def passes(n: int) -> None:
            for _ in range(n):  # simulated minutes pass between delivery passes
                clock.now += timedelta(minutes=10)
                for _ in range(5):
                    if not await notifier.send_due():
                        break

        async def storm() -> None:
            await notifier.bot.initialize()  # the bot started while Telegram was reachable
            try:
                tg.down("refused")
                await passes(3)
                assert not tg.sent and all(d.status == "pending" for d in deliveries(app))
                assert (
                    max(d.attempts for d in deliveries(app)) == 3
                )  # each chat's head, kept in order
                tg.up()
                tg.down(502)
                await passes(3)
                assert not tg.sent and any("502" in (d.last_error or "") for d in deliveries(app))
                tg.up()
                # 429 storms: call after call refused with a (short) retry_after.
                tg.fail_next("sendMessage", 24, retry_after_error(1))
                await passes(2)
                tg.fail_next("sendMessage", 12, retry_after_error(1))
                for _ in range(30):
                    if all(d.status == "sent" for d in deliveries(app)):
                        break
                    await passes(1)
            finally:
                await notifier.bot.shutdown()

        asyncio.run(storm())
        rows = deliveries(app)
        assert all(d.status == "sent" for d in rows)
        assert any(c.status == 429 for c in tg.calls)
        for chat in chats:  # every alert once, in the order it was queued
            texts = tg.texts(chat)
            # Delivered an hour or more after they were queued: each one says so.
            assert all(t.startswith("⏱ <b>Gửi trễ ") for t in texts), texts
            assert [t.split("\n", 1)[1] for t in texts] == [f"tin {i}" for i in range(6)]
    finally:
        app.close()
