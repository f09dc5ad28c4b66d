"""A drill: a recorded flood replayed into a database of its own and delivered as the live
service would deliver it, every message marked "DIỄN TẬP" (`floodwatch drill`).

The live database is never opened: the drill refuses a URL naming it, and a database
that already holds cycles, events or alerts. Alerts keep their simulated time (the
replayed cycle's); delivery runs on the wall clock, so nothing a drill queues counts
as late or waits for its simulated time: it goes out as soon as the limits allow.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from floodwatch.config import Settings
from floodwatch.core.geo import Geodata
from floodwatch.core.readings import Kind, Reading
from floodwatch.core.text import local_time
from floodwatch.db.drills import (
    DeliveredCopy,
    recorded_rows,
    same_database,
    sqlite_file,
    url_beside,
)
from floodwatch.db.engine import check_storage, database_errors, redact
from floodwatch.db.outbox import BROKEN, CONSOLE, FAILED, PENDING, SENT
from floodwatch.db.store import Store
from floodwatch.errors import ConfigError, FloodwatchError, InputError, StorageError
from floodwatch.messages.alerts import NEEDS_ACK
from floodwatch.messages.drill import AckLine, ChatLine, DrillReport, drill_parts
from floodwatch.service.app import App, load_checked
from floodwatch.service.cycle import CycleResult, Pipeline, utcnow
from floodwatch.service.daily import bulletin_alert
from floodwatch.service.replay import ReplayResult, replay
from floodwatch.service.routing import operator_targets
from floodwatch.sources.csvfile import CsvResult, read_csv

logger = logging.getLogger(__name__)
OPERATORS_VI = "Văn phòng thường trực"
BULLETIN_VI = "Bản tin hằng ngày (mọi nhóm)"
PROGRESS_EVERY_S = 10.0


class DrillRefused(FloodwatchError):
    """A drill that must not run (the live database, a used database, no readings)."""


@dataclass
class DrillSetup:
    """What a drill runs on: the config on the drill database, and the file's readings."""

    settings: Settings
    geodata: Geodata
    live_url: str
    url: str
    csv: CsvResult


def default_url(live_url: str, now: datetime, settings: Settings) -> str:
    """A new SQLite file `drill-YYYYMMDD-HHMMSS.db` beside the live SQLite file (or in var/)."""
    stamp = now.astimezone(settings.zone).strftime("%Y%m%d-%H%M%S")
    url = url_beside(live_url, f"drill-{stamp}.db")
    count = 2
    while (path := sqlite_file(url)) is not None and os.path.exists(path):
        url = url_beside(live_url, f"drill-{stamp}-{count}.db")
        count += 1
    return url


def prepare(config_path: Path | None, csv_file: Path, db_url: str | None) -> DrillSetup:
    """Check everything a drill needs before anything is written.

    Raises DrillRefused for the live database or one already used, ConfigError for
    a config, geodata or database URL that is wrong, InputError for a file that is not
    a readings CSV. Rows the file rejects are in `csv.problems`.
    """
    settings, geodata = load_checked(config_path)
    live_url = settings.storage.database_url
    url = db_url or default_url(live_url, utcnow(), settings)
    if same_database(url, live_url):
        raise DrillRefused(
            f"--db {redact(url)} is the live database; a drill needs its own "
            "(leave out --db for a new file beside it)"
        )
    problems = [p.replace("storage.database_url", "--db") for p in check_storage(url)]
    if problems:
        raise ConfigError(problems)
    parsed = read_csv(csv_file, geodata.stations)
    if not parsed.readings and not parsed.problems:
        raise InputError(f"{csv_file}: no readings (only a header)")
    used = recorded_rows(url)
    if used:
        raise DrillRefused(
            f"--db {redact(url)} already holds {used} cycles, events or alerts; a drill "
            "starts from an empty database (leave out --db for a new file)"
        )
    drill_settings = settings.model_copy(
        update={"storage": settings.storage.model_copy(update={"database_url": url})}
    )
    return DrillSetup(drill_settings, geodata, live_url, url, parsed)


def open_drill(setup: DrillSetup, source: str) -> App:
    """Create the drill database, mark it a drill's and write the geodata into it."""
    store = Store(setup.url)
    try:
        with database_errors(store.url):
            store.drills.mark(source, utcnow())
            store.sync_geodata(setup.geodata)
    except StorageError:
        store.close()
        raise
    pipeline = Pipeline(setup.settings, setup.geodata, store)
    return App(setup.settings, setup.geodata, store, pipeline, [])


def _known_times(readings: list[Reading]) -> int:
    """How many cycles a replay of these readings runs (one per distinct time known)."""
    if not readings:
        return 0
    start = min(r.time for r in readings)
    return len({r.time if r.kind is Kind.OBSERVED else (r.issued or start) for r in readings})


def bulletin_times(after: datetime | None, until: datetime, at_text: str, zone) -> list[datetime]:
    """The daily bulletin's times (local HH:MM) in (after, until]; `until` alone if no after."""
    if not at_text:
        return []
    hour, minute = (int(part) for part in at_text.split(":"))
    start = after if after is not None else until - timedelta(microseconds=1)
    day = start.astimezone(zone).date()
    found = []
    while True:
        local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
        if local > until:
            return found
        if local > start:
            found.append(local.astimezone(until.tzinfo))
        day += timedelta(days=1)


def replay_drill(
    app: App,
    readings: list[Reading],
    progress: Callable[[str], None],
    deliver: Callable[[], object],
) -> ReplayResult:
    """Replay the readings, queue the daily bulletin when the simulated clock passes its
    time, deliver after each cycle and report progress every tenth of the way."""
    steps = _known_times(readings)
    every = max(1, steps // 10)
    seen = {"cycles": 0, "alerts": 0, "last": None}
    zone = app.settings.zone
    progress(f"drill: replaying {len(readings)} readings, {steps} cycles")

    def after(result: CycleResult) -> None:
        for when in bulletin_times(seen["last"], result.at, app.settings.alerts.daily_bulletin_at,
                                   zone):  # fmt: skip
            app.store.outbox.add([bulletin_alert(app, when)])
            seen["alerts"] += 1
        seen["last"] = result.at
        seen["cycles"] += 1
        seen["alerts"] += result.alerts
        if seen["cycles"] % every == 0 or seen["cycles"] == steps:
            progress(
                f"drill: cycle {seen['cycles']}/{steps} at {local_time(result.at, zone)}: "
                f"{seen['alerts']} alerts queued so far"
            )
        deliver()

    with database_errors(app.store.url):
        return replay(app, readings, after)


def wait_delivered(
    app: App,
    timeout_s: float,
    progress: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Wait until no delivery is pending (each sent, failed or broken), or the timeout."""
    deadline = clock() + timeout_s
    next_note = clock() + PROGRESS_EVERY_S
    while True:
        counts = app.store.drills.delivery_counts()
        pending = counts.get(PENDING, 0)
        if not pending:
            return True
        if clock() >= deadline:
            return False
        if clock() >= next_note:
            total = sum(counts.values())
            progress(f"drill: {total - pending}/{total} deliveries done, {pending} waiting")
            next_note += PROGRESS_EVERY_S
        sleep(0.5)


def _awaiting_ack(copies: list[DeliveredCopy]) -> list[int]:
    """Alerts that ask for "Đã nhận", reached a chat, and nobody has acknowledged yet."""
    sent = {c.alert_id for c in copies if c.status == SENT}
    return sorted(
        {
            c.alert_id
            for c in copies
            if c.alert_id in sent
            and c.escalation_of is None
            and set(c.kinds) & NEEDS_ACK
            and c.ack_at is None
        }
    )


def wait_acks(
    app: App,
    minutes: float,
    progress: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Wait up to `minutes` for every delivered alert asking for "Đã nhận" to be pressed."""
    deadline = clock() + minutes * 60
    next_note = clock()
    while True:
        waiting = _awaiting_ack(app.store.drills.copies())
        if not waiting:
            return True
        if clock() >= deadline:
            return False
        if clock() >= next_note:
            left = max(0.0, (deadline - clock()) / 60)
            progress(f"drill: waiting for acknowledgement of {len(waiting)} alerts "
                     f"({left:.0f} min left)")  # fmt: skip
            next_note += 6 * PROGRESS_EVERY_S
        sleep(0.5)


def _owners(settings: Settings) -> dict[int, str]:
    """Whose each configured chat is: unit names, or the operators."""
    owners: dict[int, list[str]] = defaultdict(list)
    for unit in settings.units:
        for chat in unit.telegram_chats:
            owners[chat].append(unit.name)
    for target in operator_targets(settings):
        if not owners[target.chat_id]:
            owners[target.chat_id].append(OPERATORS_VI)
    return {chat: ", ".join(names) for chat, names in owners.items()}


def _unit_names(settings: Settings) -> dict[str, str]:
    """Display names of alert units: the units, the operators, the bulletin."""
    names = {u.id: u.name for u in settings.units}
    names.setdefault("operators", OPERATORS_VI)
    names["all"] = BULLETIN_VI
    return names


def _by_unit(app: App, copies: list[DeliveredCopy]) -> list[tuple[str, int, bool]]:
    """(unit name, alerts, whether the unit has no chat of its own) per unit, by name."""
    names = _unit_names(app.settings)
    units = {u.id: u for u in app.settings.units}
    alerts: dict[str, set[int]] = defaultdict(set)
    for c in copies:
        if c.escalation_of is None:
            alerts[c.unit].add(c.alert_id)
    return sorted(
        (names.get(unit, unit), len(ids), unit in units and not units[unit].telegram_chats)
        for unit, ids in alerts.items()
    )


def _chat_lines(app: App, copies: list[DeliveredCopy]) -> list[ChatLine]:
    """What each chat received."""
    owners = _owners(app.settings)
    rows: dict[int, dict] = {}
    for c in copies:
        if c.chat_id is None:
            continue
        row = rows.setdefault(c.chat_id, {"messages": 0, "parts": 0, "delivered": 0,
                                          "failed": 0, "pending": 0, "errors": []})  # fmt: skip
        row["messages"] += 1
        row["parts"] += len(drill_parts(c.body)) if c.status == CONSOLE else c.parts
        if c.status in (SENT, CONSOLE):
            row["delivered"] += 1
        elif c.status in (FAILED, BROKEN):
            row["failed"] += 1
            if c.error and c.error not in row["errors"]:
                row["errors"].append(c.error)
        elif c.status == PENDING:
            row["pending"] += 1
    lines = [
        ChatLine(chat, owners.get(chat, "?"), **{**row, "errors": tuple(row["errors"])})
        for chat, row in rows.items()
    ]
    return sorted(lines, key=lambda c: (c.owner == OPERATORS_VI, c.owner, c.chat_id))


def _ack_lines(app: App, copies: list[DeliveredCopy]) -> list[AckLine]:
    """The alerts that asked for "Đã nhận", with who pressed it and when."""
    names = _unit_names(app.settings)
    first_sent: dict[int, datetime] = {}
    for c in copies:
        if c.sent_at is not None and c.status == SENT:
            first_sent[c.alert_id] = min(c.sent_at, first_sent.get(c.alert_id, c.sent_at))
    lines: dict[int, AckLine] = {}
    for c in copies:
        if c.escalation_of is None and set(c.kinds) & NEEDS_ACK and c.alert_id not in lines:
            kinds = tuple(k for k in ("onset", "level_up") if k in c.kinds)
            lines[c.alert_id] = AckLine(c.alert_id, names.get(c.unit, c.unit), kinds, c.created_at,
                                        first_sent.get(c.alert_id), c.ack_by, c.ack_at)  # fmt: skip
    return list(lines.values())


def drill_report(
    app: App,
    *,
    csv_name: str,
    telegram: bool,
    started_at: datetime,
    result: ReplayResult | None,
    wait_ack_minutes: float | None,
    rejected: int,
    notes: list[str],
) -> DrillReport:
    """Everything the operators' summary says, read back from the drill database."""
    with database_errors(app.store.url):
        copies = app.store.drills.copies()
        events = app.store.drills.events()
    cycles = [r.at for r in result.results] if result else []
    return DrillReport(
        csv_name=csv_name,
        database=redact(app.store.url),
        telegram=telegram,
        started_at=started_at,
        finished_at=utcnow(),
        first_at=min(cycles) if cycles else None,
        last_at=max(cycles) if cycles else None,
        cycles=result.cycles if result else 0,
        events=events,
        alerts_by_unit=_by_unit(app, copies),
        chats=_chat_lines(app, copies),
        acks=_ack_lines(app, copies),
        wait_ack_minutes=wait_ack_minutes,
        escalations=len({c.alert_id for c in copies if c.escalation_of is not None}),
        rejected=rejected,
        notes=tuple(notes),
    )
