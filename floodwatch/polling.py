"""Poll a source (fetch → validate → store → record) and keep source health current.

Nothing a source does can stop the service: every failure is recorded against
the source, logged, and retried at its next interval.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from floodwatch.errors import SourceError
from floodwatch.health import (
    STALE,
    Health,
    blind_inputs,
    no_data_alert,
    recovered_alert,
    status,
)
from floodwatch.outbox import NewAlert
from floodwatch.routing import operator_targets
from floodwatch.sources import Source

if TYPE_CHECKING:  # the service module imports this one
    from floodwatch.service import App

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
        after_store()  # e.g. the drop folder archives files only once they are stored
    rejected = [*result.rejected, *verdict.rejected]
    reasons = Counter(r.reason for r in result.rejected) + Counter(verdict.counts())
    details = [*(r.detail for r in rejected), *verdict.notes][:MAX_DETAILS]
    good = [r for r in verdict.accepted if r.flag is None]
    outcome = PollOutcome(source.name, True, len(good), len(verdict.flagged), len(rejected))
    app.store.record_source_run(
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
    )
    if rejected or verdict.flagged:
        logger.warning("%s: %d stored, %d flagged, %d rejected (%s)", source.name,
                       outcome.accepted, outcome.flagged, outcome.rejected,
                       ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))  # fmt: skip
    return outcome


def _failed(app: App, name: str, kind: str, now: datetime, started: float, error: str):
    """Record a failed poll."""
    app.store.record_source_run(
        name, kind, now, ok=False, duration_s=time.perf_counter() - started, error=error
    )
    return PollOutcome(name, False, error=error)


def source_statuses(app: App, now: datetime) -> dict[str, str]:
    """The health status of every configured, enabled source at `now`."""
    states = app.store.source_states()
    runs = app.store.last_source_runs()
    statuses = {}
    for source in app.sources:
        state = states.get(source.name)
        if state is None:  # never polled yet
            continue
        run = runs.get(source.name)
        health = Health(
            first_seen_at=state.first_seen_at,
            consecutive_failures=state.consecutive_failures,
            newest_at=state.newest_at,
            last_delivered=run.accepted if run else 0,
            last_doubted=(run.flagged + run.rejected) if run else 0,
        )
        statuses[source.name] = status(health, now, source.stale_after_minutes)
    return statuses


def update_blind(app: App, statuses: dict[str, str]) -> None:
    """Tell the pipeline which inputs no fresh source delivers."""
    provides = {source.name: source.provides() for source in app.sources}
    app.pipeline.blind_inputs = blind_inputs(provides, statuses)


def _operators_alert(app: App, now: datetime, kind: str, body: str) -> NewAlert:
    """An alarm for the operators' chats."""
    chats = [(t.chat_id, t.thread_id) for t in operator_targets(app.settings)]
    return NewAlert(now, app.settings.operators_unit, [kind], body, chats)


def refresh_health(app: App, now: datetime) -> dict[str, str]:
    """Raise or clear "no data" alarms and tell the pipeline which inputs are blind."""
    statuses = source_statuses(app, now)
    update_blind(app, statuses)
    provides = {source.name: source.provides() for source in app.sources}
    states = app.store.source_states()
    zone = app.settings.zone
    changes: dict[str, datetime | None] = {}
    alerts = []
    for name, current in statuses.items():
        state = states[name]
        if current == STALE and state.stale_since is None:
            stations = {
                app.geodata.stations[s].name for s, _ in provides[name] if s in app.geodata.stations
            }
            roads = [seg.name for seg in app.pipeline.blind_segments()]
            body = no_data_alert(name, state.newest_at, now, stations, roads, zone)
            changes[name] = now
            alerts.append(_operators_alert(app, now, "no_data", body))
            logger.error("%s: stale: no new data since %s", name, state.newest_at)
        elif current != STALE and state.stale_since is not None:
            body = recovered_alert(name, state.stale_since, now, zone)
            changes[name] = None
            alerts.append(_operators_alert(app, now, "data_back", body))
            logger.warning("%s: delivering again", name)
    if changes:
        app.store.set_stale(changes, alerts)
    return statuses
