"""`run`: the active instance's scheduler, its heartbeat, and waiting as a standby.

Each source is polled on its interval and a cycle follows every poll (and runs
every `step_minutes` besides); the daily bulletin, the retention job and the
heartbeat run beside them. One job at a time: a lock serializes them, so a
cycle never overlaps another.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from floodwatch.core.validate import OBSERVED_CLOCK_SLACK
from floodwatch.db.engine import database_errors
from floodwatch.db.leader import Leadership
from floodwatch.db.outages import is_outage
from floodwatch.db.outbox import NewAlert
from floodwatch.errors import FloodwatchError, StorageError
from floodwatch.messages.alarms import cycles_stopped_alarm
from floodwatch.service.app import App
from floodwatch.service.cycle import CycleResult, utcnow
from floodwatch.service.polling import poll_source, refresh_health
from floodwatch.service.routing import operator_targets
from floodwatch.service.sdnotify import notify, watchdog_interval_s
from floodwatch.sources import Source

logger = logging.getLogger(__name__)

# A cycle running longer than this is stuck: the watchdog is no longer fed.
MAX_CYCLE_S = 900
# No completed cycle for this many steps raises an operators' alarm.
HEARTBEAT_STEPS = 3
# What every job shares: never two of one at once, no pile-up after a pause.
JOB_DEFAULTS = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 300}


class Heartbeat:
    """Feeds systemd's watchdog while cycles progress; alarms operators when they stop."""

    def __init__(
        self,
        app: App,
        deliver: Callable[[], object],
        leadership: Leadership | None = None,
        on_lost: Callable[[], None] = lambda: None,
    ):
        self.app = app
        self.deliver = deliver
        self.leadership = leadership
        self.on_lost = on_lost
        self.alarmed = False

    def beat(self, busy_since: float | None, now: datetime | None = None) -> None:
        """One heartbeat: ping the watchdog unless a cycle is stuck; check cycle freshness."""
        if self.leadership is not None and not self.leadership.still_held():
            logger.error("heartbeat: no longer the active instance; stepping down")
            self.on_lost()
            return
        if busy_since is not None and time.monotonic() - busy_since > MAX_CYCLE_S:
            logger.error("heartbeat: a cycle has run for %.0f s; not feeding the watchdog",
                         time.monotonic() - busy_since)  # fmt: skip
        else:
            notify("WATCHDOG=1")
        with self.app.store.availability.watch("heartbeat", logger):
            self._check_cycles(now or utcnow())

    def _check_cycles(self, now: datetime) -> None:
        """Alarm the operators once when no cycle has completed for HEARTBEAT_STEPS steps."""
        last = self.app.store.events.last_cycle_at()
        limit = timedelta(minutes=self.app.settings.assessment.step_minutes * HEARTBEAT_STEPS)
        # A last cycle ahead of the clock (a clock set back, a reading from the future
        # stored by an older version) means every cycle is being skipped: alarm too.
        ahead = last is not None and last > now + OBSERVED_CLOCK_SLACK
        stale = last is None or now - last > limit or ahead
        if stale and not self.alarmed:
            self._alarm(last, now, ahead)
        elif not stale and self.alarmed:
            self.alarmed = False
            logger.warning("heartbeat: cycles completing again")

    def _alarm(self, last: datetime | None, now: datetime, ahead: bool) -> None:
        """Queue the operators' "HỆ THỐNG NGỪNG ĐÁNH GIÁ" once (again at the next beat if
        the database refuses it)."""
        body = cycles_stopped_alarm(last, now, ahead, self.app.settings.zone)
        chats = [(t.chat_id, t.thread_id) for t in operator_targets(self.app.settings)]
        alarm = NewAlert(now, self.app.settings.operators_unit, ["heartbeat"], body, chats)
        try:
            with database_errors(self.app.store.url):
                self.app.store.outbox.add([alarm])
        except StorageError as exc:  # e.g. a full disk: tried again at the next beat
            if is_outage(exc):
                raise  # told once by the heartbeat's watch
            logger.error("heartbeat: no cycle completed since %s; cannot queue the "
                         "operators' alarm: %s", last, exc)  # fmt: skip
            return
        logger.error("heartbeat: no cycle completed since %s; operators alarmed", last)
        self.alarmed = True
        self.deliver()


class StopRequest:
    """SIGTERM (and a first Ctrl-C) as a flag that start-up checks between its steps
    and that stops the scheduler.

    The signal handler only writes a byte to a pipe (safe at any point, as an
    exception or a lock taken inside a handler is not: a handler runs between
    two bytecodes of the main thread, which may hold the very lock it needs);
    a watcher thread reads it, sets the flag and calls `on_stop`.
    """

    def __init__(self):
        self.event = threading.Event()
        self.on_stop: Callable[[], None] = lambda: None
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        threading.Thread(target=self._watch, name="stop-request", daemon=True).start()
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, _frame) -> None:
        if signum == signal.SIGINT:  # Ctrl-C stops like SIGTERM; a second one interrupts
            signal.signal(signal.SIGINT, signal.default_int_handler)
        with contextlib.suppress(BlockingIOError):  # a full pipe: a stop is on its way
            os.write(self._write, bytes([signum]))

    def _watch(self) -> None:
        """Wait for the signal's byte, then stop (in this thread, never in the handler)."""
        signum = os.read(self._read, 1)[0]
        logger.info("signal %s: stopping", signum)
        self.event.set()
        self.on_stop()

    def __bool__(self) -> bool:
        return self.event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when a stop was requested."""
        return self.event.wait(seconds)


def wait_for_leadership(
    app: App, leadership: Leadership, on_standby: Callable[[], None], stop: StopRequest
) -> bool:
    """Block as a standby until this instance holds the lock; False when stopped first."""
    if leadership.try_acquire():
        return True
    on_standby()
    notify("READY=1", "STATUS=standby")
    every = app.settings.service.standby_check_seconds
    while not leadership.try_acquire():
        notify("WATCHDOG=1")
        if stop.wait(every):
            return False
    logger.warning("leader: this instance is now active")
    return True


class Service:
    """The jobs of the active instance on one APScheduler, one at a time."""

    def __init__(
        self,
        app: App,
        deliver: Callable[[], object],
        on_cycle: Callable[[CycleResult], None],
        leadership: Leadership | None = None,
        stop: StopRequest | None = None,
    ):
        from apscheduler.schedulers.blocking import BlockingScheduler

        self.app = app
        self.deliver = deliver
        self.on_cycle = on_cycle
        self.lock = threading.Lock()
        self.scheduler = BlockingScheduler(timezone=UTC)
        self.busy_since: float | None = None  # monotonic start of the running cycle
        self.lost = False
        self.stop = stop or StopRequest()
        self.stop.on_stop = self.shutdown
        self.heartbeat = Heartbeat(app, deliver, leadership, self.step_down)

    def after_ingest(self, source: Source | None) -> None:
        """Poll `source` (if any), refresh source health, run a cycle and deliver."""
        # A job must never take the scheduler down; it is retried at the next interval.
        with self.lock, self.app.store.availability.watch("cycle", logger):
            now = utcnow()
            self.busy_since = time.monotonic()
            try:
                with database_errors(self.app.store.url):
                    if source is not None:
                        poll_source(self.app, source, now)  # records its own failures
                    health = refresh_health(self.app, now)
                    self.on_cycle(self.app.pipeline.cycle(now, health))
                    self.deliver()
            except FloodwatchError as exc:
                if is_outage(exc):
                    raise  # told once by the watch, not at every cycle
                logger.error("cycle failed: %s", exc)
            finally:
                self.busy_since = None

    def daily_bulletin(self) -> None:
        """Queue the day's bulletin for every configured chat."""
        from floodwatch.service.daily import bulletin_alert

        with self.lock, self.app.store.availability.watch("daily bulletin", logger) as outcome:
            self.app.store.outbox.add([bulletin_alert(self.app, utcnow())])
            self.deliver()
        if outcome.outage:  # not retried until tomorrow: say so, even during an outage
            logger.error("daily bulletin not queued: the database is away")

    def retention(self) -> None:
        """Delete readings older than `[storage] keep_readings_days`."""
        from floodwatch.db.upkeep import apply_retention

        with self.lock, self.app.store.availability.watch("retention", logger):  # tried tomorrow
            keep = self.app.settings.storage.keep_readings_days
            apply_retention(self.app.store, utcnow(), keep)

    def beat(self) -> None:
        """One heartbeat (not under the lock: it must notice a stuck cycle)."""
        self.heartbeat.beat(self.busy_since)

    def step_down(self) -> None:
        """Stop: another instance holds the lock now."""
        self.lost = True
        self.scheduler.shutdown(wait=False)

    def stop_if_requested(self) -> None:
        """Shut down when a stop was requested."""
        if self.stop:
            self.shutdown()

    def shutdown(self) -> None:
        """On SIGTERM: finish the running job and stop."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def add_jobs(self) -> None:
        """Every source on its interval, a cycle every step, the bulletin, retention, heartbeat."""
        from apscheduler.triggers.cron import CronTrigger

        add, settings = self.scheduler.add_job, self.app.settings
        for source in self.app.sources:
            add(self.after_ingest, "interval", args=[source], minutes=source.interval_minutes,
                id=f"source:{source.name}", **JOB_DEFAULTS)  # fmt: skip
        # Cycles also run on the assessment step, so clocks advance without sources.
        step = settings.assessment.step_minutes
        add(self.after_ingest, "interval", args=[None], minutes=step, id="cycle",
            next_run_time=datetime.now(UTC) + timedelta(minutes=step), **JOB_DEFAULTS)  # fmt: skip
        if settings.alerts.daily_bulletin_at:
            hour, minute = (int(part) for part in settings.alerts.daily_bulletin_at.split(":"))
            add(self.daily_bulletin, CronTrigger(hour=hour, minute=minute, timezone=settings.zone),
                id="daily_bulletin", **JOB_DEFAULTS)  # fmt: skip
        add(self.retention, CronTrigger(hour=3, minute=30, timezone=settings.zone),
            id="retention", **JOB_DEFAULTS)  # fmt: skip
        add(self.beat, "interval", seconds=watchdog_interval_s() or 30, id="heartbeat",
            **JOB_DEFAULTS)  # fmt: skip
        # A SIGTERM between the check in `run` and the scheduler's start found it not
        # running: this first job sees the flag.
        add(self.stop_if_requested, id="stop_check")

    def run(self, on_ready: Callable[[], None]) -> bool:
        """Run until stopped; False when the instance lost the active role."""
        self.add_jobs()
        logger.info("scheduler: %d sources, cycle every %d min", len(self.app.sources),
                    self.app.settings.assessment.step_minutes)  # fmt: skip
        on_ready()
        notify("READY=1", "STATUS=active")
        if not self.stop:
            self.scheduler.start()
        notify("STOPPING=1")
        return not self.lost


def run_forever(
    app: App,
    deliver: Callable[[], object],
    on_cycle: Callable[[CycleResult], None],
    on_ready: Callable[[], None] = lambda: None,
    leadership: Leadership | None = None,
    stop: StopRequest | None = None,
) -> bool:
    """Poll each source on its interval and run a cycle after each ingest, until stopped.

    `deliver` runs after every cycle (the console notifier's drain; with
    Telegram the sender thread drains the outbox by itself). Returns False when
    the instance stopped because it lost the active role.
    """
    return Service(app, deliver, on_cycle, leadership, stop).run(on_ready)
