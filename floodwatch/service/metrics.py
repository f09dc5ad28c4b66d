"""What the service reports about itself: Prometheus metrics and the `status --json` document.

Every figure is read from the database when it is asked for, not counted in
the process: the web (which may run on both machines) then reports the active
instance's work, and a restart loses no count. Counters are sums over stored
rows; retention deletes source runs older than `[storage] keep_readings_days`,
which Prometheus sees as a counter reset once a day. A database outage cannot
be written while it happens: it is recorded, and counted, once the database
answers again (`db/outages.py`); `floodwatch_database_up` is this scrape's view.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from floodwatch.core.events import FORECAST, OBSERVED
from floodwatch.core.health import DEGRADED, FAILING, OK, STALE, HealthView
from floodwatch.db.engine import database_errors
from floodwatch.db.outbox import SENT
from floodwatch.errors import StorageError
from floodwatch.service.cycle import utcnow
from floodwatch.service.polling import health_view
from floodwatch.service.views import NEVER

if TYPE_CHECKING:  # the service module imports the pipeline this one reads
    from floodwatch.service.app import App

logger = logging.getLogger(__name__)

SOURCE_STATUSES = (OK, DEGRADED, FAILING, STALE, NEVER)
OUTCOMES = ("accepted", "flagged", "rejected")


class FloodwatchCollector(Collector):
    """Reads the service's figures from the database at every scrape."""

    def __init__(self, app: App, clock: Callable[[], datetime] = utcnow):
        self.app = app
        self.clock = clock

    def describe(self) -> list[Metric]:
        """Nothing up front: registering must not query the database."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Every metric, or only `floodwatch_database_up 0` when the database does not answer."""
        up = GaugeMetricFamily("floodwatch_database_up", "1 if the database answered this scrape.")
        try:
            with database_errors(self.app.store.url, any_error=True):
                metrics = list(self._metrics(self.clock()))
        except StorageError as exc:
            logger.error("metrics: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from metrics

    def _metrics(self, now: datetime) -> Iterator[Metric]:
        """The figures at `now`."""
        yield from self._sources(now)
        yield from self._cycle(now)
        yield from self._events()
        yield from self._outbox(now)
        yield from self._deliveries()
        yield from self._database_outages()

    def _sources(self, now: datetime) -> Iterator[Metric]:
        """Per source: last poll's counts, totals, newest data age, status."""
        yield from self._last_polls()
        yield from self._poll_totals()
        yield from self._source_ages(now)
        yield from self._source_health(now)

    def _last_polls(self) -> Iterator[Metric]:
        """Per source: the latest poll's readings by outcome, and whether it succeeded."""
        runs = self.app.store.health.last_source_runs()
        last = GaugeMetricFamily(
            "floodwatch_source_last_poll_readings",
            "Readings of the source's latest poll: accepted, flagged (doubtful) or rejected.",
            labels=["source", "outcome"],
        )
        ok = GaugeMetricFamily(
            "floodwatch_source_last_poll_ok", "1 if the source's latest poll succeeded.",
            labels=["source"],
        )  # fmt: skip
        for name, run in sorted(runs.items()):
            for outcome in OUTCOMES:
                last.add_metric([name, outcome], getattr(run, outcome))
            ok.add_metric([name], 1 if run.ok else 0)
        yield last
        yield ok

    def _poll_totals(self) -> Iterator[Metric]:
        """Per source: readings by outcome and polls by result, over the stored polls."""
        store = self.app.store
        totals = CounterMetricFamily(
            "floodwatch_source_readings",
            "Readings per source and outcome, summed over the stored polls.",
            labels=["source", "outcome"],
        )
        polls = CounterMetricFamily(
            "floodwatch_source_polls", "Stored polls per source, by result.",
            labels=["source", "result"],
        )  # fmt: skip
        for name, accepted, flagged, rejected, succeeded, count in store.stats.source_totals():
            for outcome, value in zip(OUTCOMES, (accepted, flagged, rejected), strict=True):
                totals.add_metric([name, outcome], value or 0)
            polls.add_metric([name, "ok"], succeeded or 0)
            polls.add_metric([name, "failed"], count - (succeeded or 0))
        yield totals
        yield polls

    def _source_ages(self, now: datetime) -> Iterator[Metric]:
        """Per source: the age of its newest data and its failed polls in a row."""
        states = self.app.store.health.source_states()
        age = GaugeMetricFamily(
            "floodwatch_source_newest_data_age_seconds",
            "Seconds since the newest data the source delivered became known.",
            labels=["source"],
        )
        failures = GaugeMetricFamily(
            "floodwatch_source_consecutive_failures", "Failed polls in a row.", labels=["source"]
        )
        for name, state in sorted(states.items()):
            if state.newest_at is not None:
                age.add_metric([name], (now - state.newest_at).total_seconds())
            failures.add_metric([name], state.consecutive_failures)
        yield age
        yield failures

    def _source_health(self, now: datetime) -> Iterator[Metric]:
        """Per source its status, per input its staleness, and the blind and unknown segments."""
        health = health_view(self.app, now)
        statuses = health.statuses
        status = GaugeMetricFamily(
            "floodwatch_source_status",
            "1 for the source's current status (ok, degraded, failing, stale, never), 0 others.",
            labels=["source", "status"],
        )
        for source in self.app.sources:
            current = statuses.get(source.name, NEVER)
            for name in SOURCE_STATUSES:
                status.add_metric([source.name, name], 1 if name == current else 0)
        yield status
        yield from self._inputs(health, now)
        yield GaugeMetricFamily(
            "floodwatch_blind_segments",
            "Segments whose every source for a needed input is stale (state unknown).",
            value=len(self.app.pipeline.blind_segments(health)),
        )
        situation = self.app.pipeline.situation(now, health)
        yield GaugeMetricFamily(
            "floodwatch_unknown_segments",
            "Segments without usable data now (không có dữ liệu): a level or rain is missing.",
            value=len(situation.unknown),
        )

    def _inputs(self, health: HealthView, now: datetime) -> Iterator[Metric]:
        """Per source, station and variable: stale or not, and the newest data's age."""
        stale = GaugeMetricFamily(
            "floodwatch_input_stale",
            "1 while the source has delivered nothing new for the station's variable "
            "for longer than its stale_after_minutes (mất tín hiệu), else 0.",
            labels=["source", "station", "variable"],
        )
        input_age = GaugeMetricFamily(
            "floodwatch_input_newest_data_age_seconds",
            "Seconds since the newest data of the station's variable from the source.",
            labels=["source", "station", "variable"],
        )
        for item in health.inputs:
            labels = [item.health.source, item.health.station, item.health.variable]
            stale.add_metric(labels, 1 if item.stale else 0)
            if item.health.newest_at is not None:
                input_age.add_metric(labels, (now - item.health.newest_at).total_seconds())
        yield stale
        yield input_age

    def _cycle(self, now: datetime) -> Iterator[Metric]:
        """The latest cycle's duration and age."""
        cycle = self.app.store.events.last_cycle()
        duration = GaugeMetricFamily(
            "floodwatch_cycle_duration_seconds", "How long the latest cycle took."
        )
        age = GaugeMetricFamily(
            "floodwatch_cycle_age_seconds", "Seconds since the time the latest cycle assessed."
        )
        if cycle is not None:
            duration.add_metric([], cycle.duration_s)
            age.add_metric([], (now - cycle.at).total_seconds())
        yield duration
        yield age

    def _events(self) -> Iterator[Metric]:
        """Open events by kind and current level (0 for every level none is at)."""
        counts = self.app.store.stats.open_events_by_level()
        levels = range(len(self.app.settings.levels.thresholds_m) + 1)
        for kind in (OBSERVED, FORECAST):
            for level in levels:
                counts.setdefault((kind, level), 0)
        family = GaugeMetricFamily(
            "floodwatch_open_events",
            "Events not closed, by kind (observed, forecast) and current level.",
            labels=["kind", "level"],
        )
        for (kind, level), n in sorted(counts.items()):
            family.add_metric([kind, str(level)], n)
        yield family

    def _outbox(self, now: datetime) -> Iterator[Metric]:
        """Outbox depth and the age of its oldest pending alert."""
        deliveries, alerts, oldest = self.app.store.stats.outbox_figures()
        yield GaugeMetricFamily(
            "floodwatch_outbox_pending", "Deliveries (one alert to one chat) not yet sent.",
            value=deliveries,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "floodwatch_outbox_pending_alerts", "Alerts with a delivery (or the console) pending.",
            value=alerts,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "floodwatch_outbox_oldest_pending_seconds",
            "Age of the oldest pending alert (0 when nothing is pending).",
            value=(now - oldest).total_seconds() if oldest is not None else 0.0,
        )

    def _deliveries(self) -> Iterator[Metric]:
        """Deliveries per chat and status, and failed attempts per chat."""
        rows = self.app.store.stats.deliveries_by_chat()
        deliveries = CounterMetricFamily(
            "floodwatch_deliveries",
            "Deliveries per chat by status (pending, sent, console, broken, failed).",
            labels=["chat", "status"],
        )
        failed: dict[int, int] = {}
        for chat, status, n, attempts in rows:
            deliveries.add_metric([str(chat), status], n)
            # Every try counts an attempt; only the successful one of a sent delivery is not
            # a failure (console deliveries are not tries).
            failed[chat] = failed.get(chat, 0) + (attempts or 0) - (n if status == SENT else 0)
        yield deliveries
        attempts = CounterMetricFamily(
            "floodwatch_delivery_failed_attempts",
            "Tries to send to a chat that failed (retried later or given up).",
            labels=["chat"],
        )
        for chat, n in sorted(failed.items()):
            attempts.add_metric([str(chat)], max(n, 0))
        yield attempts

    def _database_outages(self) -> Iterator[Metric]:
        """Database outages that have ended, and their seconds (recorded once it answered)."""
        count, seconds = self.app.store.outages.totals()
        yield CounterMetricFamily(
            "floodwatch_database_outages",
            "Times the database could not be used, counted when it answered again.",
            value=count,
        )
        yield CounterMetricFamily(
            "floodwatch_database_outage_seconds",
            "Seconds the database could not be used, over the outages counted.",
            value=seconds,
        )


def metrics_registry(app: App, clock: Callable[[], datetime] = utcnow) -> CollectorRegistry:
    """A registry of its own (no global state) with the floodwatch collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FloodwatchCollector(app, clock))
    return registry
