"""Silences: one per target (muting again extends it), lifted early from the store and the CLI.

The web's "Bỏ tắt" is in tests/test_web.py and tests/test_browser.py, the bot's /mute in
tests/test_bot_commands.py.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from floodwatch.cli import main
from floodwatch.service.app import App

T0 = datetime(2024, 12, 16, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def app(project):
    opened = App.open(project, with_sources=False)
    yield opened
    opened.close()


def cli(config, *args):
    return CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)


def test_muting_a_muted_target_extends_its_one_silence(app):
    silences = app.store.silences
    first = silences.add("segment", "cm-de-tham", T0, T0 + 6 * HOUR, "thi công cống", "lan")
    assert not first.extended and first.until == T0 + 6 * HOUR
    again = silences.add("segment", "cm-de-tham", T0 + HOUR, T0 + 12 * HOUR, "thêm 6 giờ", "minh")
    assert again.extended and again.id == first.id and again.until == T0 + 12 * HOUR
    rows = silences.listing(T0 + HOUR)
    assert len(rows) == 1
    assert (rows[0].reason, rows[0].created_by, rows[0].starts_at) == ("thêm 6 giờ", "minh", T0)
    # A shorter mute never shortens it; no reason keeps the old one.
    shorter = silences.add("segment", "cm-de-tham", T0 + 2 * HOUR, T0 + 3 * HOUR, "", "cli")
    assert shorter.extended and shorter.until == T0 + 12 * HOUR
    assert silences.listing(T0 + 2 * HOUR)[0].reason == "thêm 6 giờ"
    # Another target, or the same one after its silence ended, gets its own.
    assert not silences.add("unit", "ubnd_nam_can", T0, T0 + HOUR, "", "cli").extended
    later = silences.add("segment", "cm-de-tham", T0 + 13 * HOUR, T0 + 14 * HOUR, "", "cli")
    assert not later.extended and later.id != first.id


def test_old_duplicates_fold_into_one(app):
    from sqlalchemy import insert

    from floodwatch.db.models import SilenceRow

    with app.store.engine.begin() as conn:  # as earlier versions left them
        for hours in (2, 5):
            row = {"target_kind": "unit", "target_id": "ubnd_nam_can", "starts_at": T0,
                   "until": T0 + hours * HOUR, "reason": "", "created_by": "bot"}  # fmt: skip
            conn.execute(insert(SilenceRow).values(**row))
    muted = app.store.silences.add("unit", "ubnd_nam_can", T0 + HOUR, T0 + 3 * HOUR, "", "cli")
    assert muted.extended and muted.until == T0 + 5 * HOUR
    assert [r.until for r in app.store.silences.listing(T0 + HOUR)] == [T0 + 5 * HOUR]


def test_lifting_ends_a_silence_now_and_logs_who(app, caplog):
    silences = app.store.silences
    muted = silences.add("segment", "cm-de-tham", T0, T0 + 6 * HOUR, "", "lan")
    assert ("segment", "cm-de-tham") in silences.active(T0 + HOUR)
    with caplog.at_level(logging.INFO, logger="floodwatch.db.silences"):
        lifted = silences.lift(muted.id, T0 + 2 * HOUR, "Nguyễn Thị Lan")
    assert lifted is not None and lifted.until == T0 + 6 * HOUR  # as it was
    assert "lifted by Nguyễn Thị Lan" in caplog.text
    assert ("segment", "cm-de-tham") not in silences.active(T0 + 2 * HOUR)
    assert silences.listing(T0 + 2 * HOUR) == []
    assert silences.get(muted.id).until == T0 + 2 * HOUR  # kept: it was muted until then
    assert silences.lift(muted.id, T0 + 3 * HOUR, "lan") is None  # already over
    assert silences.lift(999, T0, "lan") is None
    # A coming silence can be lifted before it starts.
    coming = silences.add("unit", "ubnd_nam_can", T0 + 5 * HOUR, T0 + 9 * HOUR, "", "lan")
    assert silences.lift(coming.id, T0 + 3 * HOUR, "lan") is not None
    assert silences.listing(T0 + 3 * HOUR) == []


def test_cli_unmute_by_id_or_target(project):
    muted = cli(project, "mute", "cm-de-tham", "--hours", "12", "--reason", "thi công cống")
    silence = re.search(r"\(silence (\d+)\)", muted.output).group(1)
    again = cli(project, "mute", "Đề Thám", "--hours", "24", "--reason", "thêm một ngày")
    assert again.exit_code == 0
    assert again.output.startswith(f"extended silence {silence}: segment cm-de-tham")
    listed = cli(project, "mute", "--list")
    assert listed.output.startswith("Silences: 1") and "thêm một ngày" in listed.output
    assert re.search(rf"^\s+{silence} segment\s+cm-de-tham", listed.output, re.M)

    lifted = cli(project, "unmute", silence)
    assert lifted.exit_code == 0 and lifted.output.startswith(f"lifted silence {silence}: segment")
    assert cli(project, "mute", "--list").output.startswith("Silences: 0")
    gone = cli(project, "unmute", silence)
    assert gone.exit_code == 1 and f"no running or coming silence {silence}" in gone.output

    cli(project, "mute", "ubnd_nam_can", "--hours", "2")
    by_name = cli(project, "unmute", "ubnd_nam_can")
    assert by_name.exit_code == 0 and "unit ubnd_nam_can" in by_name.output
    not_muted = cli(project, "unmute", "ubnd_nam_can")
    assert not_muted.exit_code == 1 and "is not muted" in not_muted.output
    unknown = cli(project, "unmute", "nowhere")
    assert unknown.exit_code == 1 and "'nowhere' is not a segment or unit" in unknown.output
    assert cli(project, "unmute").exit_code == 2  # TARGET missing
    assert "floodwatch unmute 12" in cli(project, "unmute", "--help").output
