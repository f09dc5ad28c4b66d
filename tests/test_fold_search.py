"""Road search and mute targets match without diacritics and case ("phan ngoc" finds
"Phan Ngọc Hiển", "DE THAM" finds "Đề Thám"): the log's road and ward filters (web, API,
CLI export), and `floodwatch mute` / the bot's /mute."""

from __future__ import annotations

import json
import unicodedata

from click.testing import CliRunner

from floodwatch.cli.main import main
from floodwatch.core.text import fold
from floodwatch.db.events import EventFilter, named_segments
from floodwatch.service.app import App
from tests import test_bot_commands, test_web
from tests.test_bot_commands import NOW, OPS_CHAT, ask, run, running_bot
from tests.test_web import api_events, log_ids

# Fixtures: a replayed spring tide (web), the shipped config with chats and a fake Bot API.
fw_app, client = test_web.fw_app, test_web.client
app, tg = test_bot_commands.app, test_bot_commands.tg
ptb_timedelta = test_bot_commands.ptb_timedelta


def test_fold_drops_marks_and_case_and_spaces():
    assert fold("Đường  Đề Thám") == "duong de tham"
    assert fold("PHAN NGỌC HIỂN") == fold("phan ngoc hien") == "phan ngoc hien"
    decomposed = unicodedata.normalize("NFD", "Phan Ngọc Hiển")
    assert fold(decomposed) == "phan ngoc hien"
    assert fold("\tUBND  xã\u00a0Năm Căn ") == "ubnd xa nam can"


def test_log_road_filter_ignores_diacritics_and_case(client):
    low = {e["id"] for e in api_events(client) if e["segment_id"] == "tide-low"}
    everything = set(log_ids(client))
    assert low and len(everything) > len(low)
    for typed in ("triều thấp", "trieu thap", "TRIEU THAP", "Đường thử triều thấp",
                  "duong  thu trieu thap", "DUONG THU TRIEU THAP"):  # fmt: skip
        assert set(log_ids(client, f"?road={typed}")) == low, typed
        assert {e["id"] for e in api_events(client, road=typed)} == low, typed
    assert set(log_ids(client, "?road=duong thu")) == everything  # Đ folds to d
    assert log_ids(client, "?road=pho khong co") == []


def test_log_ward_filter_ignores_diacritics_case_and_prefix(client):
    everything = log_ids(client)
    for typed in ("Phường An Xuyên", "phuong an xuyen", "AN XUYEN", "an xuyên"):
        assert log_ids(client, f"?ward={typed}") == everything, typed
    assert log_ids(client, "?ward=tan thanh") == []


def test_export_events_road_without_diacritics(fw_app, project, tmp_path):
    out = tmp_path / "events.json"
    result = CliRunner().invoke(
        main,
        ["--config", str(project), "export", "events", "--road", "DUONG THU TRIEU THAP",
         "--ward", "an xuyen", "--format", "json", "-o", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text(encoding="utf-8"))
    assert rows and {r["segment_id"] for r in rows} == {"tide-low"}


def test_shipped_roads_found_without_diacritics(project):
    opened = App.open(project, with_sources=False)
    try:
        with opened.store.engine.connect() as conn:
            assert named_segments(conn, EventFilter(road="phan ngoc")) == ["cm-phan-ngoc-hien"]
            assert named_segments(conn, EventFilter(road="DE THAM")) == ["cm-de-tham"]
            assert named_segments(conn, EventFilter()) is None
        # The listing runs the same resolution (no events yet: nothing, and no error).
        assert opened.store.events.listing(EventFilter(road="DE THAM")) == []
        assert opened.store.events.count(EventFilter(road="đề thám", ward="x")) == 0
    finally:
        opened.close()


def _mute(project, *args: str):
    return CliRunner().invoke(main, ["--config", str(project), "mute", *args])


def test_cli_mute_targets_without_diacritics(project):
    road = _mute(project, "DE THAM", "--hours", "2")
    assert road.exit_code == 0, road.output
    assert "muted segment cm-de-tham" in road.output
    for typed, said in (
        ("so xay dung", "muted unit so_xay_dung "),
        ("UBND XA NAM CAN", "muted unit ubnd_nam_can "),
        # the same units typed another way: the same silence, extended (never a second one)
        ("Sở Xây dựng tỉnh Cà Mau", ": unit so_xay_dung ("),
        ("ubnd nam can", ": unit ubnd_nam_can ("),
    ):
        result = _mute(project, typed, "--hours", "2")
        assert result.exit_code == 0, (typed, result.output)
        assert said in result.output, (typed, result.output)
        assert said.startswith("muted") or result.output.startswith("extended silence"), typed
    ambiguous = _mute(project, "ql1", "--hours", "2")
    assert ambiguous.exit_code != 0 and "ambiguous" in ambiguous.output


def test_bot_mute_unit_by_name_without_diacritics(tg, app):
    async def scenario():
        async with running_bot(tg, app):
            return await ask(tg, OPS_CHAT, "/mute ubnd xa nam can 12 bảo trì")

    reply = run(scenario)
    assert "đơn vị <b>UBND xã Năm Căn</b>" in reply, reply
    rows = app.store.silences.listing(NOW)
    assert [(r.target_kind, r.target_id, r.reason) for r in rows] == [
        ("unit", "ubnd_nam_can", "bảo trì")
    ]
