"""Field reports as observations in the cycle, road matching, and `floodwatch mute`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from floodwatch.cli import main
from floodwatch.core.readings import Kind, Reading, Variable
from floodwatch.core.text import fold
from floodwatch.db.events import EventFilter, EventRecord
from floodwatch.db.models import EventChangeRow
from floodwatch.service.app import App
from floodwatch.service.outlook import match_segments, mute_target
from floodwatch.telegram.commands import split_args

ICT = timezone(timedelta(hours=7))
NOW = datetime(2024, 12, 16, 8, tzinfo=ICT)


@pytest.fixture
def app(project):
    opened = App.open(project, with_sources=False)
    yield opened
    opened.close()


def report(app: App, segment: str, depth_m: float, at: datetime, name: str = "Trần Thị B"):
    """Store a field report as the bot would."""
    return app.store.reports.add(segment, depth_m, at, chat_id=-100, user_id=5, user_name=name)


def observed_event(app: App, segment: str) -> EventRecord | None:
    """The segment's observed event, if any."""
    found = app.store.events.listing(EventFilter(segment=segment, kind="observed"))
    assert len(found) <= 1
    return found[0] if found else None


def notes(app: App, event_id: int) -> list[str]:
    """The field-report notes of an event."""
    with app.store.engine.connect() as conn:
        query = select(EventChangeRow.note).where(
            EventChangeRow.event_id == event_id, EventChangeRow.change == "field_report"
        )
        return list(conn.execute(query).scalars())


def test_fold_and_match_roads(app):
    assert fold("Đường Phan Ngọc Hiển") == "duong phan ngoc hien"
    assert match_segments(app.geodata, "Phan Ngoc Hien").unique.id == "cm-phan-ngoc-hien"
    assert match_segments(app.geodata, "PHAN NGỌC hiển").unique.id == "cm-phan-ngoc-hien"
    assert match_segments(app.geodata, "cm-de-tham").unique.name == "Đường Đề Thám"
    assert match_segments(app.geodata, "de tham").unique.id == "cm-de-tham"
    assert len(match_segments(app.geodata, "ql1").segments) == 3
    assert match_segments(app.geodata, "khong co").segments == []
    assert mute_target(app.settings, app.geodata, "ubnd_nam_can")[0] == (
        "unit", "ubnd_nam_can", "UBND xã Năm Căn"
    )  # fmt: skip
    known = {"3 thang 2", "phan ngoc hien"}.__contains__
    words = str.split
    assert split_args(words("3 thang 2 20 nuoc len"), known).target == "3 thang 2"
    split = split_args(words("phan ngoc hien 35 cao 20 cm"), known)
    assert (split.target, split.number, split.rest) == ("phan ngoc hien", 35, "cao 20 cm")
    assert split_args(["phan"], known) is None


def test_report_opens_observed_event_and_is_noted_once(app):
    report(app, "cm-de-tham", 0.35, NOW - timedelta(minutes=10), "Nguyễn Văn A")
    report(app, "cm-ngo-quyen", 0.20, NOW - timedelta(hours=3))  # too old to count
    app.pipeline.cycle(NOW)
    event = observed_event(app, "cm-de-tham")
    assert event.status == "flooded" and event.peak_depth_m == 0.35
    assert event.max_level == 2 and event.cause is None  # no model input at all
    assert notes(app, event.id) == ["Báo cáo hiện trường: 35 cm (Nguyễn Văn A)"]
    assert observed_event(app, "cm-ngo-quyen") is None
    linked = {r.segment_id: r.event_id for r in app.store.reports.listing()}
    assert linked == {"cm-de-tham": event.id, "cm-ngo-quyen": None}

    # A second report raises the same event; the first is not noted again.
    report(app, "cm-de-tham", 0.55, NOW + timedelta(minutes=20))
    result = app.pipeline.cycle(NOW + timedelta(minutes=30))
    assert [c.change for c in result.changes if c.change] == ["level_up", "field_report"]
    assert observed_event(app, "cm-de-tham").max_level == 3
    assert notes(app, event.id)[1] == "Báo cáo hiện trường: 55 cm (Trần Thị B)"

    # Reports age out like gauge readings: without one the event holds (no observed input).
    result = app.pipeline.cycle(NOW + timedelta(hours=3))
    assert [c.change for c in result.changes if c.change] == []
    assert observed_event(app, "cm-de-tham").status == "flooded"


def test_report_and_gauge_take_the_deeper_with_the_model_cause(app):
    # TP Cà Mau at 1.00 m observed: Phan Ngọc Hiển (crest 0.82 m) is 18 cm deep by the model.
    app.pipeline.ingest(
        [
            Reading("tp_ca_mau", Variable.WATER_LEVEL, NOW - timedelta(minutes=m), 1.0)
            for m in (0, 60)
        ],  # fmt: skip
        "test",
    )
    # Sông Đốc only forecast to rise over its riverside road.
    app.pipeline.ingest(
        [
            Reading(
                "song_doc",
                Variable.WATER_LEVEL,
                NOW + timedelta(hours=h),
                level,
                Kind.FORECAST,
                NOW - timedelta(hours=1),
            )  # fmt: skip
            for h, level in enumerate([0.9, 1.2, 1.4, 1.2, 0.9])
        ],
        "test",
    )
    report(app, "cm-phan-ngoc-hien", 0.05, NOW)  # shallower than the gauge says
    report(app, "cm-tran-van-thoi", 0.45, NOW)
    report(app, "sd-ven-song-ong-doc", 0.12, NOW)
    app.pipeline.cycle(NOW)
    assert observed_event(app, "cm-phan-ngoc-hien").peak_depth_m == pytest.approx(0.18)
    assert observed_event(app, "cm-phan-ngoc-hien").cause == "tide"
    assert observed_event(app, "cm-tran-van-thoi").peak_depth_m == 0.45
    riverside = observed_event(app, "sd-ven-song-ong-doc")
    assert riverside.peak_depth_m == 0.12 and riverside.cause == "tide"  # the forecast's


def test_cycle_without_reports_is_unchanged(app):
    assert app.store.reports.recent(NOW - timedelta(hours=2), NOW) == {}
    result = app.pipeline.cycle(NOW)
    assert result.changes == [] and not result.skipped


def cli(config, *args):
    return CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)


def test_cli_mute_and_list(project):
    ok = cli(project, "mute", "cm-de-tham", "--hours", "12", "--reason", "thi công cống")
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("muted segment cm-de-tham (Đường Đề Thám) until ")
    assert cli(project, "mute", "Phan Ngoc Hien", "--hours", "2").exit_code == 0
    assert cli(project, "mute", "ubnd_nam_can", "--hours", "24").exit_code == 0
    listed = cli(project, "mute", "--list")
    assert listed.exit_code == 0 and listed.output.startswith("Silences: 3")
    assert "cm-de-tham" in listed.output and "thi công cống" in listed.output
    assert "unit     ubnd_nam_can" in listed.output

    unknown = cli(project, "mute", "nowhere", "--hours", "2")
    assert unknown.exit_code == 1
    assert unknown.output == "error: 'nowhere' is not a segment or unit\n"
    ambiguous = cli(project, "mute", "nguyen", "--hours", "2")
    assert ambiguous.exit_code == 1 and "is ambiguous; did you mean: cm-nguyen-trai" in (
        ambiguous.output
    )
    assert cli(project, "mute", "cm-de-tham").exit_code == 1  # --hours missing
    assert cli(project, "mute", "cm-de-tham", "--hours", "200").exit_code == 2
    assert "floodwatch mute --list" in cli(project, "mute", "--help").output
