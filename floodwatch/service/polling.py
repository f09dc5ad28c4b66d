"""Poll a source (fetch → validate → store → record) and keep source health current.

Nothing a source does can stop the service: every failure is recorded against
the source, logged, and retried at its next interval. Health is tracked per
source and per input (station, variable) of each source; `health_view` computes
it for one moment and returns it, so nothing shared is ever written.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from floodwatch.core.health import (
    STALE,
    Health,
    HealthView,
    InputHealth,
    InputStatus,
    blind_inputs,
    input_stale,
    status,
)
from floodwatch.db.engine import database_errors
from floodwatch.db.outbox import NewAlert
from floodwatch.errors import SourceError
from floodwatch.messages.alarms import no_data_alert, recovered_alert
from floodwatch.service.cycle import CycleResult, utcnow
from floodwatch.service.routing import operator_targets
from floodwatch.sources import Source

if TYPE_CHECKING:  # the service module imports this one
    from floodwatch.db.health import SourceStateRow
    from floodwatch.service.app import App

logger = logging.getLogger(__name__)

# How many rejected/flagged values a poll keeps word for word for operators.
MAX_DETAILS = 20
# How far back stored observations feed the rate and flat-line checks.
HISTORY = timedelta(hours=12)


@dataclass(frozen=True)
class PollOutcome:
    """What one poll of one source did."""

    source: str
    ok: bool
    accepted: int = 0
    flagged: int = 0
    rejected: int = 0
    error: str | None = None


def poll_source(app: App, source: Source, now: datetime) -> PollOutcome:
    """Fetch one source over the window of a cycle at `now`, validate, store, record."""
    started = time.perf_counter()
    kind = app.settings.sources[source.name].type
    start, end = app.pipeline.window(now)
    try:
        result = source.fetch(start, end, now)
    except SourceError as exc:
        logger.error("%s: poll failed: %s", source.name, exc)
        return _failed(app, source.name, kind, now, started, str(exc))
    except Exception as exc:  # an adapter bug must not take the scheduler down
        logger.exception("%s: poll failed", source.name)
        return _failed(app, source.name, kind, now, started, f"internal error: {exc!r}")

    verdict = app.pipeline.ingest_checked(result.readings, now, source.name)
    after_store = getattr(source, "after_store", None)
    if after_store is not None:
        after_store(verdict)  # e.g. the drop folder archives files only once they are stored
    rejected = [*result.rejected, *verdict.rejected]
    reasons = Counter(r.reason for r in result.rejected) + Counter(verdict.counts())
    details = [*(r.detail for r in rejected), *verdict.notes][:MAX_DETAILS]
    good = [r for r in verdict.accepted if r.flag is None]
    inputs: dict[tuple[str, str], datetime | None] = dict.fromkeys(source.provides())
    for r in good:
        pair = (r.station, str(r.variable))
        newest = inputs.get(pair)
        if newest is None or r.issued_at > newest:
            inputs[pair] = r.issued_at
    outcome = PollOutcome(source.name, True, len(good), len(verdict.flagged), len(rejected))
    app.store.health.record_source_run(
        source.name,
        kind,
        now,
        ok=True,
        duration_s=time.perf_counter() - started,
        accepted=outcome.accepted,
        flagged=outcome.flagged,
        rejected=outcome.rejected,
        reasons=dict(reasons),
        details=details,
        newest_at=max((r.issued_at for r in good), default=None),
        inputs=inputs,
        references=getattr(result, "references", {}),
    )
    if rejected or verdict.flagged:
        logger.warning("%s: %d stored, %d flagged, %d rejected (%s)", source.name,
                       outcome.accepted, outcome.flagged, outcome.rejected,
                       ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))  # fmt: skip
    return outcome


def _failed(app: App, name: str, kind: str, now: datetime, started: float, error: str):
    """Record a failed poll (its inputs are created so they can go stale on their own)."""
    source = next((s for s in app.sources if s.name == name), None)
    inputs = dict.fromkeys(source.provides()) if source is not None else {}
    app.store.health.record_source_run(
        name, kind, now, ok=False, duration_s=time.perf_counter() - started, error=error,
        inputs=inputs,
    )  # fmt: skip
    return PollOutcome(name, False, error=error)


def health_view(app: App, now: datetime) -> HealthView:
    """Every enabled source's status and every input's staleness at `now`."""
    states = app.store.health.source_states()
    runs = app.store.health.last_source_runs()
    rows: dict[str, list] = {}
    for row in app.store.health.input_states():
        rows.setdefault(row.source, []).append(row)
    statuses: dict[str, str] = {}
    inputs: list[InputStatus] = []
    provides: dict[str, set[tuple[str, str]]] = {}
    for source in app.sources:
        state = states.get(source.name)
        if state is None:  # never polled yet
            continue
        mine = []
        for row in rows.get(source.name, []):
            health = InputHealth(
                source.name, row.station, row.variable, row.first_seen_at, row.newest_at,
                row.stale_since,
            )  # fmt: skip
            reference = json.loads(row.reference) if row.reference else None
            mine.append(
                InputStatus(health, input_stale(health, now, source.stale_after_minutes), reference)
            )
        inputs += mine
        provides[source.name] = set(source.provides()) | {i.pair for i in mine}
        run = runs.get(source.name)
        health = Health(
            first_seen_at=state.first_seen_at,
            consecutive_failures=state.consecutive_failures,
            newest_at=state.newest_at,
            last_delivered=run.accepted if run else 0,
            last_doubted=(run.flagged + run.rejected) if run else 0,
        )
        statuses[source.name] = status(
            health, now, source.stale_after_minutes, [i.stale for i in mine]
        )
    stale = {(i.health.source, *i.pair) for i in inputs if i.stale}
    return HealthView(now, statuses, inputs, frozenset(blind_inputs(provides, statuses, stale)))


def source_statuses(app: App, now: datetime) -> dict[str, str]:
    """The health status of every configured, enabled source at `now`."""
    return health_view(app, now).statuses


def _operators_alert(app: App, now: datetime, kind: str, body: str) -> NewAlert:
    """An alarm for the operators' chats."""
    chats = [(t.chat_id, t.thread_id) for t in operator_targets(app.settings)]
    return NewAlert(now, app.settings.operators_unit, [kind], body, chats)


def _road_names(app: App, pairs: set[tuple[str, str]], blind: frozenset) -> list[str]:
    """Names of the roads that need one of `pairs` and are blind for it."""
    return [
        s.name
        for s in app.geodata.segments
        if ((s.tide_station, "water_level") in pairs and (s.tide_station, "water_level") in blind)
        or ((s.rain_station, "rainfall") in pairs and (s.rain_station, "rainfall") in blind)
    ]


@dataclass
class _StaleChanges:
    """What refresh_health writes: stale marks per source and per input, and operator alerts."""

    sources: dict[str, datetime | None] = field(default_factory=dict)
    inputs: dict[tuple[str, str, str], datetime | None] = field(default_factory=dict)
    alerts: list[NewAlert] = field(default_factory=list)


def _inputs_gone(
    app: App,
    now: datetime,
    name: str,
    gone: list[InputStatus],
    view: HealthView,
    names: dict[str, str],
    changes: _StaleChanges,
) -> None:
    """Alarm operators about a source's inputs that just went stale, and mark them."""
    body = no_data_alert(
        name, None, now, (), _road_names(app, {i.pair for i in gone}, view.blind),
        app.settings.zone,
        [(names.get(i.health.station, i.health.station), i.health.variable,
          i.health.newest_at) for i in gone],
    )  # fmt: skip
    changes.alerts.append(_operators_alert(app, now, "no_data", body))
    for i in gone:
        changes.inputs[(name, *i.pair)] = now
        logger.error("%s: %s %s: stale: no new data since %s", name, i.health.station,
                     i.health.variable, i.health.newest_at)  # fmt: skip


def _inputs_back(
    app: App,
    now: datetime,
    name: str,
    back: list[InputStatus],
    names: dict[str, str],
    changes: _StaleChanges,
) -> None:
    """Tell operators a source's stale inputs deliver again, and clear their marks."""
    since = min(i.health.stale_since for i in back)  # type: ignore[type-var]
    pairs = [(names.get(i.health.station, i.health.station), i.health.variable)
             for i in back]  # fmt: skip
    body = recovered_alert(name, since, now, app.settings.zone, pairs)
    changes.alerts.append(_operators_alert(app, now, "data_back", body))
    for i in back:
        changes.inputs[(name, *i.pair)] = None
    logger.warning("%s: delivering again for %d inputs", name, len(back))


def _source_inputs(
    app: App,
    now: datetime,
    name: str,
    mine: list[InputStatus],
    view: HealthView,
    names: dict[str, str],
    changes: _StaleChanges,
) -> None:
    """Raise or clear "no data" alarms for the inputs of a source that has inputs."""
    gone = [i for i in mine if i.stale and i.health.stale_since is None]
    back = [i for i in mine if not i.stale and i.health.stale_since is not None]
    if gone:
        _inputs_gone(app, now, name, gone, view, names, changes)
    if back:
        _inputs_back(app, now, name, back, names, changes)


def _whole_source(
    app: App, now: datetime, name: str, current: str, state: SourceStateRow, changes: _StaleChanges
) -> None:
    """Raise or clear the "no data" alarm of a source without inputs, as a whole."""
    zone = app.settings.zone
    if current == STALE and state.stale_since is None:
        body = no_data_alert(name, state.newest_at, now, (), [], zone)
        changes.sources[name] = now
        changes.alerts.append(_operators_alert(app, now, "no_data", body))
        logger.error("%s: stale: no new data since %s", name, state.newest_at)
    elif current != STALE and state.stale_since is not None:
        body = recovered_alert(name, state.stale_since, now, zone)
        changes.sources[name] = None
        changes.alerts.append(_operators_alert(app, now, "data_back", body))
        logger.warning("%s: delivering again", name)


def refresh_health(app: App, now: datetime) -> HealthView:
    """Raise or clear "no data" alarms, per input where a source has inputs; return the view."""
    view = health_view(app, now)
    states = app.store.health.source_states()
    names = {sid: st.name for sid, st in app.geodata.stations.items()}
    changes = _StaleChanges()
    by_source: dict[str, list[InputStatus]] = {}
    for item in view.inputs:
        by_source.setdefault(item.health.source, []).append(item)
    for name, current in view.statuses.items():
        mine = by_source.get(name, [])
        if mine:
            _source_inputs(app, now, name, mine, view, names, changes)
            continue
        _whole_source(app, now, name, current, states[name], changes)
    opened, closed = _gap_changes(app, view)
    if changes.sources or changes.inputs or opened or closed:
        app.store.health.set_stale(changes.sources, changes.alerts, changes.inputs, opened, closed)
    return view


def _gap_changes(app: App, view: HealthView):
    """Data gaps to open (blind now, none open) and close (open, no longer blind)."""
    open_gaps = app.store.health.open_gaps()
    newest: dict[tuple[str, str], datetime] = {}
    for item in view.inputs:
        when = item.health.newest_at or item.health.first_seen_at
        if item.pair not in newest or when > newest[item.pair]:
            newest[item.pair] = when
    opened = {pair: newest.get(pair, view.at) for pair in view.blind - open_gaps}
    closed = dict.fromkeys(open_gaps - view.blind, view.at)
    return opened, closed


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
