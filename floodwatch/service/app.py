"""Wiring: config + geodata + store + sources + pipeline, and the ways to drive them."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import groupby
from pathlib import Path

from floodwatch.config import Settings, check_paths, load_settings
from floodwatch.core.geo import Geodata, load_geodata
from floodwatch.core.readings import Kind, Reading, Rejection
from floodwatch.core.text import local_time
from floodwatch.core.validate import OBSERVED_CLOCK_SLACK, time_problem
from floodwatch.db.engine import check_storage, database_errors
from floodwatch.db.leader import Leadership
from floodwatch.db.outbox import NewAlert
from floodwatch.db.store import Store
from floodwatch.errors import ConfigError, FloodwatchError, StorageError
from floodwatch.messages.bulletin import html_to_plain
from floodwatch.service.cycle import CycleResult, Pipeline, utcnow
from floodwatch.service.polling import poll_source, refresh_health
from floodwatch.service.routing import operator_targets
from floodwatch.service.sdnotify import notify, watchdog_interval_s
from floodwatch.sources import Source, build_sources

logger = logging.getLogger(__name__)


def load_checked(config_path: Path | str | None) -> tuple[Settings, Geodata]:
    """Settings and geodata, or ConfigError listing every problem of both."""
    settings = load_settings(config_path)
    origin = str(settings.config_path or "<config>")
    problems = check_paths(settings)
    problems += [f"{origin}: {p}" for p in check_storage(settings.storage.database_url)]
    if problems:
        raise ConfigError(problems)
    geodata = load_geodata(
        settings.resolve(settings.geodata.segments),
        settings.resolve(settings.geodata.stations),
        settings.unit_ids,
    )
    return settings, geodata


@dataclass
class App:
    """Everything a command needs, opened once."""

    settings: Settings
    geodata: Geodata
    store: Store
    pipeline: Pipeline
    sources: list[Source] = field(default_factory=list)

    @classmethod
    def open(
        cls, config_path: Path | str | None, *, with_sources: bool = True, writes: bool = True
    ) -> App:
        """Load and check the config, open (and migrate) the store, build the sources.

        Commands that only read (`writes=False`) leave the stored geodata alone.
        """
        settings, geodata = load_checked(config_path)
        sources = build_sources(settings, geodata) if with_sources else []
        store = Store(settings.storage.database_url)
        if writes:
            try:
                with database_errors(store.url):
                    store.sync_geodata(geodata)
            except StorageError:
                store.close()
                raise
        return cls(settings, geodata, store, Pipeline(settings, geodata, store), sources)

    def close(self) -> None:
        """Release the database."""
        self.store.close()


class ConsoleNotifier:
    """Delivers outbox alerts by writing them out (used when no Telegram token is set)."""

    def __init__(self, app: App, echo: Callable[[str], None]):
        self.app = app
        self.echo = echo

    def drain(self) -> int:
        """Write every pending alert as plain text and mark it delivered; returns the count."""
        sent = 0
        outbox = self.app.store.outbox
        with database_errors(self.app.store.url):
            while batch := outbox.pending_alerts():
                for alert in batch:
                    text = html_to_plain(alert.body)
                    self.echo(f"── alert #{alert.id} → {alert.unit} [{alert.kinds}]\n{text}\n")
                    outbox.mark_console(alert.id, utcnow())
                    sent += 1
        return sent


def poll_once(app: App, now: datetime | None = None) -> CycleResult:
    """Poll every source once, bring source health up to date, then run one cycle.

    Raises StorageError when the database cannot be reached or written.
    """
    now = now or utcnow()
    with database_errors(app.store.url):
        app.pipeline.check_clock(now)  # before polling: a wrong --at stores nothing
        for source in app.sources:
            poll_source(app, source, now)
        health = refresh_health(app, now)
        return app.pipeline.cycle(now, health)


@dataclass
class ReplayResult:
    """What a replay did."""

    cycles: int = 0
    skipped: int = 0
    readings: int = 0
    flagged: int = 0
    rejected: list[Rejection] = field(default_factory=list)  # each value validation refused
    results: list[CycleResult] = field(default_factory=list)


def replay(
    app: App,
    readings: list[Reading],
    after_cycle: Callable[[CycleResult], None] | None = None,
) -> ReplayResult:
    """Feed readings through the pipeline in the order they became known.

    Readings are validated as they would be live (doubtful values are stored
    with a flag and never count as observed flooding). The simulated clock
    steps through each distinct time at which a reading became known: its
    `time` for observations, its `issued` time for forecasts (a forecast row
    without `issued` is known from the start of the replay). Cycles at or
    before the latest already assessed are skipped, so replaying the same
    file twice adds nothing.

    Rows dated where no reading can be (before 1970, or ahead of the wall
    clock) are rejected before anything runs: the simulated clock never
    leaves the real one behind.
    """
    out = ReplayResult()
    wall = utcnow()
    horizon = timedelta(hours=app.settings.assessment.horizon_hours)
    sane = []
    for r in readings:
        problem = time_problem(r, now=wall, horizon=horizon, wall_clock=wall)
        if problem is None:
            sane.append(r)
        else:
            reason, why = problem
            out.rejected.append(Rejection(reason, f"{_describe(r)}: {why}", r.station, r.time, r))
    readings = sane
    if not readings:
        return out
    with database_errors(app.store.url):
        app.pipeline.check_clock(wall, wall)
    start = min(r.time for r in readings)
    known = [
        r if r.kind is Kind.OBSERVED or r.issued else replace(r, issued=start) for r in readings
    ]
    known.sort(key=lambda r: r.issued_at)
    for at, group in groupby(known, key=lambda r: r.issued_at):
        verdict = app.pipeline.ingest_checked(list(group), at, "replay", wall)
        out.readings += len(verdict.accepted)
        out.flagged += len(verdict.flagged)
        out.rejected += verdict.rejected
        result = app.pipeline.cycle(at)
        out.results.append(result)
        if result.skipped:
            out.skipped += 1
        else:
            out.cycles += 1
        if after_cycle:
            after_cycle(result)
    return out


def _describe(r: Reading) -> str:
    """Station, variable, kind, time and value of a reading, for a rejection line."""
    return f"{r.station} {r.variable} {r.kind} {r.time.isoformat()} value {r.value:g}"


# A cycle running longer than this is stuck: the watchdog is no longer fed.
MAX_CYCLE_S = 900
# No completed cycle for this many steps raises an operators' alarm.
HEARTBEAT_STEPS = 3


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
        now = now or utcnow()
        try:
            last = self.app.store.events.last_cycle_at()
        except Exception:  # the database may be the problem; the cycle logs it
            logger.exception("heartbeat: cannot read the last cycle")
            return
        limit = timedelta(minutes=self.app.settings.assessment.step_minutes * HEARTBEAT_STEPS)
        # A last cycle ahead of the clock (a clock set back, a reading from the future
        # stored by an older version) means every cycle is being skipped: alarm too.
        ahead = last is not None and last > now + OBSERVED_CLOCK_SLACK
        stale = last is None or now - last > limit or ahead
        if stale and not self.alarmed:
            since = local_time(last, self.app.settings.zone) if last else "khi khởi động"
            reason = (
                f"Chu kỳ gần nhất ghi lúc {since}, sau giờ hiện tại của máy chủ "
                f"({local_time(now, self.app.settings.zone)}): đồng hồ máy chủ bị lệch hoặc "
                "có số liệu ghi thời điểm tương lai, nên mọi chu kỳ đều bị bỏ qua."
                if ahead
                else f"Chưa hoàn thành chu kỳ đánh giá nào từ {since}."
            )
            body = (
                "🫀 <b>HỆ THỐNG NGỪNG ĐÁNH GIÁ</b>\n"
                f"{reason} Cảnh báo ngập có thể bị "
                "chậm hoặc thiếu; đề nghị kiểm tra máy chủ và nhật ký (journalctl -u floodwatch)."
            )
            chats = [(t.chat_id, t.thread_id) for t in operator_targets(self.app.settings)]
            alarm = NewAlert(now, self.app.settings.operators_unit, ["heartbeat"], body, chats)
            logger.error("heartbeat: no cycle completed since %s", last)
            try:
                with database_errors(self.app.store.url):
                    self.app.store.outbox.add([alarm])
            except StorageError as exc:  # e.g. a full disk: tried again at the next beat
                logger.error("heartbeat: cannot queue the operators' alarm: %s", exc)
                return
            self.alarmed = True
            self.deliver()
        elif not stale and self.alarmed:
            self.alarmed = False
            logger.warning("heartbeat: cycles completing again")


def wait_for_leadership(app: App, leadership: Leadership, on_standby: Callable[[], None]) -> None:
    """Block as a standby until this instance holds the lock (SIGTERM interrupts)."""
    if leadership.try_acquire():
        return
    on_standby()
    notify("READY=1", "STATUS=standby")
    every = app.settings.service.standby_check_seconds
    while not leadership.try_acquire():
        notify("WATCHDOG=1")
        time.sleep(every)
    logger.warning("leader: this instance is now active")


def run_forever(
    app: App,
    deliver: Callable[[], object],
    on_cycle: Callable[[CycleResult], None],
    on_ready: Callable[[], None] = lambda: None,
    leadership: Leadership | None = None,
) -> bool:
    """Poll each source on its interval and run a cycle after each ingest, until stopped.

    `deliver` runs after every cycle (the console notifier's drain; with
    Telegram the sender thread drains the outbox by itself). Returns False when
    the instance stopped because it lost the active role.
    """
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger

    from floodwatch.db.upkeep import apply_retention
    from floodwatch.service.daily import bulletin_alert

    lock = threading.Lock()
    scheduler = BlockingScheduler(timezone=UTC)

    busy_since: list[float | None] = [None]  # monotonic start of the running cycle

    def after_ingest(source: Source | None) -> None:
        with lock:  # one cycle at a time, whichever source triggered it
            now = utcnow()
            busy_since[0] = time.monotonic()
            try:
                with database_errors(app.store.url):  # one clear line when the database is away
                    if source is not None:
                        poll_source(app, source, now)  # records its own failures
                    health = refresh_health(app, now)
                    on_cycle(app.pipeline.cycle(now, health))
                    deliver()
            except FloodwatchError as exc:
                logger.error("cycle failed: %s", exc)
            except Exception:  # a job must never take the scheduler down; retried next time
                logger.exception("cycle failed; retrying at the next interval")
            finally:
                busy_since[0] = None

    lost: list[bool] = [False]

    def step_down() -> None:
        lost[0] = True
        scheduler.shutdown(wait=False)

    heartbeat = Heartbeat(app, deliver, leadership, step_down)

    def beat() -> None:
        heartbeat.beat(busy_since[0])

    common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 300}
    for source in app.sources:
        scheduler.add_job(
            after_ingest,
            "interval",
            args=[source],
            minutes=source.interval_minutes,
            id=f"source:{source.name}",
            **common,
        )
    # Cycles also run on the assessment step, so clocks advance without sources.
    scheduler.add_job(
        after_ingest,
        "interval",
        args=[None],
        minutes=app.settings.assessment.step_minutes,
        id="cycle",
        next_run_time=datetime.now(UTC) + timedelta(minutes=app.settings.assessment.step_minutes),
        **common,
    )

    bulletin_at = app.settings.alerts.daily_bulletin_at
    if bulletin_at:

        def daily_bulletin() -> None:
            with lock:
                try:
                    app.store.outbox.add([bulletin_alert(app, utcnow())])
                    deliver()
                except Exception:  # retried tomorrow; the log says why
                    logger.exception("daily bulletin failed")

        hour, minute = (int(part) for part in bulletin_at.split(":"))
        scheduler.add_job(
            daily_bulletin,
            CronTrigger(hour=hour, minute=minute, timezone=app.settings.zone),
            id="daily_bulletin",
            **common,
        )

    def retention() -> None:
        with lock:
            try:
                apply_retention(app.store, utcnow(), app.settings.storage.keep_readings_days)
            except Exception:  # tried again tomorrow; the log says why
                logger.exception("retention failed")

    scheduler.add_job(
        retention,
        CronTrigger(hour=3, minute=30, timezone=app.settings.zone),
        id="retention",
        **common,
    )

    scheduler.add_job(
        beat, "interval", seconds=watchdog_interval_s() or 30, id="heartbeat", **common
    )

    stopping = threading.Event()

    def stop(signum, _frame):
        logger.info("signal %s: stopping", signum)
        stopping.set()
        if scheduler.running:
            scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    logger.info("scheduler: %d sources, cycle every %d min", len(app.sources),
                app.settings.assessment.step_minutes)  # fmt: skip
    on_ready()
    notify("READY=1", "STATUS=active")
    if not stopping.is_set():
        scheduler.start()
    notify("STOPPING=1")
    return not lost[0]
