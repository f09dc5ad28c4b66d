"""/metrics and `status --json` after a replayed spring tide, checked against the database."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, text

from floodwatch.cli import main
from floodwatch.core.events import CLOSED
from floodwatch.db.models import AlertRow, CycleRow, DeliveryRow, EventRow, SourceRunRow
from floodwatch.db.outbox import NewAlert
from floodwatch.service.app import App
from floodwatch.service.cycle import utcnow
from floodwatch.service.polling import source_statuses
from floodwatch.service.replay import replay
from floodwatch.sources.csvfile import read_csv
from floodwatch.web.app import create_app
from tests.conftest import edit_config, on_test_roads
from tests.test_web import CHAT, CUT, REPLAY

OTHER_CHAT = -1009
SLACK_S = 300  # scrape time against the test's own clock


@pytest.fixture
def fw_app(project):
    """The test roads replayed up to CUT, one queued alert, and polls of the rain source."""
    on_test_roads(project)
    edit_config(project, units={"ubnd_an_xuyen": f"telegram_chats = [{CHAT}]"})
    app = App.open(project)  # with its sources: their status is reported too
    parsed = read_csv(REPLAY, app.geodata.stations)
    replay(app, [r for r in parsed.readings if CUT - timedelta(hours=30) <= r.time <= CUT])
    outbox = app.store.outbox
    [alert_id] = outbox.add(
        [NewAlert(CUT, "operators", ["test"], "thử", [(CHAT, None), (OTHER_CHAT, None)])]
    )
    with app.store.engine.connect() as conn:
        first, second = conn.execute(
            select(DeliveryRow.id).where(DeliveryRow.alert_id == alert_id).order_by(DeliveryRow.id)
        ).scalars()
    outbox.retry_later(first, CUT + timedelta(minutes=1), "HTTP 502")  # one failed try
    outbox.part_done(first, 0, CHAT, 11, CUT + timedelta(minutes=2))
    outbox.delivered(first, CUT + timedelta(minutes=2))
    outbox.give_up(second, "failed", "message rejected", CUT)
    health = app.store.health
    health.record_source_run("rain", "open_meteo_rain", CUT - timedelta(hours=1), ok=False,
                             duration_s=0.1, error="cannot connect")  # fmt: skip
    app.store.health.record_source_run("rain", "open_meteo_rain", CUT, ok=True, duration_s=0.4,
                                accepted=357, flagged=4, rejected=3, newest_at=CUT)  # fmt: skip
    yield app
    app.close()


def scrape(app: App, **kwargs) -> dict[str, dict[tuple, float]]:
    """Samples of /metrics by sample name, keyed by their sorted label pairs."""
    with TestClient(create_app(app, secret_key="test-secret", **kwargs)) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def one(samples, name: str, **labels) -> float:
    """The value of one sample."""
    return samples[name][tuple(sorted(labels.items()))]


def test_metrics_match_the_database(fw_app):
    samples = scrape(fw_app)
    now = utcnow()
    engine = fw_app.store.engine
    assert one(samples, "floodwatch_database_up") == 1

    # Sources: the latest poll, totals over every stored poll, age and status.
    for outcome, value in (("accepted", 357), ("flagged", 4), ("rejected", 3)):
        assert one(samples, "floodwatch_source_last_poll_readings", source="rain",
                   outcome=outcome) == value  # fmt: skip
    with engine.connect() as conn:
        accepted = conn.execute(
            select(func.sum(SourceRunRow.accepted)).where(SourceRunRow.source == "rain")
        ).scalar()
    assert one(samples, "floodwatch_source_readings_total", source="rain",
               outcome="accepted") == accepted  # fmt: skip
    assert one(samples, "floodwatch_source_polls_total", source="rain", result="failed") == 1
    assert one(samples, "floodwatch_source_polls_total", source="rain", result="ok") == 1
    age = one(samples, "floodwatch_source_newest_data_age_seconds", source="rain")
    assert age == pytest.approx((now - CUT).total_seconds(), abs=SLACK_S)
    statuses = source_statuses(fw_app, now)
    assert statuses["rain"] == "stale"  # its newest data is from the replayed December
    for source in fw_app.sources:
        flags = {
            dict(labels)["status"]: value
            for labels, value in samples["floodwatch_source_status"].items()
            if dict(labels)["source"] == source.name
        }
        assert sum(flags.values()) == 1
        assert flags[statuses.get(source.name, "never")] == 1
    # Every test road needs rain, and the only rain source is stale.
    assert one(samples, "floodwatch_blind_segments") == len(fw_app.geodata.segments)

    # The latest cycle.
    with engine.connect() as conn:
        cycle = conn.execute(select(CycleRow).order_by(CycleRow.at.desc()).limit(1)).first()
    assert one(samples, "floodwatch_cycle_duration_seconds") == pytest.approx(cycle.duration_s)
    assert one(samples, "floodwatch_cycle_age_seconds") == pytest.approx(
        (now - cycle.at).total_seconds(), abs=SLACK_S
    )

    # Open events by kind and level, zeros included.
    with engine.connect() as conn:
        open_counts = {
            (kind, str(level)): n
            for kind, level, n in conn.execute(
                select(EventRow.kind, EventRow.level, func.count())
                .where(EventRow.status != CLOSED)
                .group_by(EventRow.kind, EventRow.level)
            )
        }
    scraped = {
        (dict(labels)["kind"], dict(labels)["level"]): value
        for labels, value in samples["floodwatch_open_events"].items()
    }
    assert {k: v for k, v in scraped.items() if v} == open_counts
    assert sum(n for (kind, _), n in open_counts.items() if kind == "observed") == 2
    assert ("observed", "3") in scraped and ("forecast", "0") in scraped

    # The outbox: the replay's alerts wait for Telegram; ours went out (or gave up).
    with engine.connect() as conn:
        pending = conn.execute(
            select(func.count()).select_from(DeliveryRow).where(DeliveryRow.status == "pending")
        ).scalar()
        oldest = conn.execute(
            select(func.min(AlertRow.created_at)).where(AlertRow.status == "pending")
        ).scalar()
        per_chat = {
            (str(chat), status): n
            for chat, status, n in conn.execute(
                select(DeliveryRow.chat_id, DeliveryRow.status, func.count()).group_by(
                    DeliveryRow.chat_id, DeliveryRow.status
                )
            )
        }
    assert pending > 0
    assert one(samples, "floodwatch_outbox_pending") == pending
    assert one(samples, "floodwatch_outbox_oldest_pending_seconds") == pytest.approx(
        (now - oldest).total_seconds(), abs=SLACK_S
    )
    scraped_chats = {
        (dict(labels)["chat"], dict(labels)["status"]): value
        for labels, value in samples["floodwatch_deliveries_total"].items()
    }
    assert scraped_chats == per_chat
    assert per_chat[(str(OTHER_CHAT), "failed")] == 1
    assert one(samples, "floodwatch_delivery_failed_attempts_total", chat=str(CHAT)) == 1
    assert one(samples, "floodwatch_delivery_failed_attempts_total", chat=str(OTHER_CHAT)) == 1


def test_metrics_are_open_and_each_app_has_its_own_registry(fw_app):
    first = scrape(fw_app, open_reads=False)  # no login, as for /healthz
    second = scrape(fw_app)  # a second app in the same process: no duplicate series
    assert first["floodwatch_outbox_pending"] == second["floodwatch_outbox_pending"]


def test_a_broken_database_reports_down_instead_of_failing_the_scrape(fw_app):
    with fw_app.store.engine.begin() as conn:
        conn.execute(text("DROP TABLE source_run"))
    samples = scrape(fw_app)
    assert one(samples, "floodwatch_database_up") == 0
    assert "floodwatch_outbox_pending" not in samples


def test_status_json_for_scripts(fw_app, project):
    at = ["--at", CUT.isoformat()]
    result = CliRunner().invoke(main, ["--config", str(project), "status", "--json", *at])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert set(doc) == {
        "at", "last_cycle", "stations", "flooded", "expected", "sources", "blind_segments",
        "outbox_pending", "outbox_pending_alerts", "outbox_oldest_pending_at", "stale_inputs",
        "unknown_segments",
    }  # fmt: skip
    with fw_app.store.engine.connect() as conn:
        last_at = conn.execute(select(func.max(CycleRow.at))).scalar()
    assert doc["last_cycle"]["at"] == last_at.isoformat()
    assert doc["last_cycle"]["duration_s"] >= 0
    flooded = {e["segment_id"] for e in doc["flooded"]}
    assert len(flooded) == 2 and all(isinstance(e["id"], int) for e in doc["flooded"])
    with fw_app.store.engine.connect() as conn:
        forecast = conn.execute(
            select(EventRow.id).where(EventRow.kind == "forecast", EventRow.status != CLOSED)
        ).scalars()
        assert {e["id"] for e in doc["expected"]} == set(forecast)
    station = next(s for s in doc["stations"] if s["id"] == "tp_ca_mau")
    assert station["level_m"] > 0 and station["alarm"] in (0, 1, 2, 3)
    assert {"level_observed", "rain_24h_mm", "rain_category", "level_blind"} <= set(station)
    assert doc["sources"]["rain"] == "ok"  # fresh as of CUT
    assert doc["sources"]["tide"] == "never"
    assert doc["blind_segments"] == []
    assert doc["outbox_pending"] == fw_app.store.outbox.pending_count()

    human = CliRunner().invoke(main, ["--config", str(project), "status", *at])
    assert human.exit_code == 0, human.output
    assert human.output.startswith("Last cycle: ") and "Flooded now: 2" in human.output
    assert not human.output.lstrip().startswith("{")
