"""Bot commands through the real python-telegram-bot Application against the fake Bot API."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from telegram.ext import Application
from telegram.request import HTTPXRequest

from floodwatch.core.readings import Kind, Reading, Variable
from floodwatch.db.events import EventFilter
from floodwatch.db.models import AlertRow, DeliveryRow, EventChangeRow
from floodwatch.service.app import App
from floodwatch.service.outlook import next_high_waters
from floodwatch.telegram.commands import register
from tests.conftest import edit_config
from tests.fake_telegram import FakeTelegram

ICT = timezone(timedelta(hours=7))
NOW = datetime(2024, 12, 16, 8, tzinfo=ICT)
OPS_CHAT = -1001000000001
UNIT_CHAT = -1001000000002  # ubnd_an_xuyen
STRANGER_CHAT = -1009999999999
ALLOWED_USER = 777
USER = 4242
REPORTER = "Nguyễn Văn A"


@pytest.fixture(autouse=True)
def ptb_timedelta(monkeypatch):
    """Opt in to PTB's timedelta periods, avoiding its deprecation warning."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def tg():
    with FakeTelegram(longpoll_max_s=0.2) as server:
        yield server


@pytest.fixture
def app(project):
    """The shipped config with an operators' chat, An Xuyên's chat and one allowed user."""
    edit_config(
        project,
        units={"ubnd_an_xuyen": f"telegram_chats = [{UNIT_CHAT}]"},
        append=f"[telegram]\noperators_chats = [{OPS_CHAT}]\nallowed_users = [{ALLOWED_USER}]\n",
    )
    opened = App.open(project)
    yield opened
    opened.close()


@contextlib.asynccontextmanager
async def running_bot(tg: FakeTelegram, app: App):
    """A real PTB Application polling the fake server, with our commands, at NOW."""
    application = (
        Application.builder()
        .token("123:TEST")
        .base_url(f"{tg.url}/bot")
        .get_updates_request(HTTPXRequest(read_timeout=3))
        .build()
    )
    register(application, app, clock=lambda: NOW)
    await application.initialize()
    await application.start()
    await application.updater.start_polling(poll_interval=0.05, timeout=1)
    try:
        yield application
    finally:
        await application.updater.stop()
        await application.stop()
        await application.shutdown()


async def ask(tg: FakeTelegram, chat: int, text: str, user: int = USER, **kwargs) -> str:
    """Send a message as a user and return the bot's reply (as sent, HTML included)."""
    before = len(tg.messages(chat))
    tg.push_message(chat, user, text, username=REPORTER, **kwargs)
    deadline = time.monotonic() + 5
    while len(tg.messages(chat)) == before:
        assert time.monotonic() < deadline, f"no reply to {text!r}"
        await asyncio.sleep(0.02)
    return tg.messages(chat)[-1].text


def run(scenario):
    """Run an async scenario to completion."""
    return asyncio.run(scenario())


def test_unauthorized_refused_with_ids_and_help_for_the_allowed(tg, app, caplog):
    async def scenario():
        async with running_bot(tg, app):
            refused = await ask(tg, STRANGER_CHAT, "/status", user=99)
            private = await ask(tg, 99, "/help", user=99, chat_type="private")
            allowed = await ask(tg, ALLOWED_USER, "/help", user=ALLOWED_USER, chat_type="private")
            start = await ask(tg, UNIT_CHAT, "/start")
            return refused, private, allowed, start

    caplog.set_level("INFO", logger="floodwatch.telegram.commands")
    refused, private, allowed, start = run(scenario)
    assert refused.startswith("Xin lỗi, nhóm này chưa được cấp quyền dùng bot.")
    assert f"Mã nhóm: {STRANGER_CHAT}" in refused and "99" in refused
    assert "Mã người dùng: 99" in private and "bạn chưa được cấp quyền" in private
    assert f"chat {STRANGER_CHAT}, user 99" in caplog.text
    for text in (allowed, start):
        for command in ("/status", "/tide", "/report", "/mute", "/help"):
            assert command in text
        assert "Ví dụ: <code>/report Phan Ngoc Hien 35" in text
    assert [c.parse_mode for c in tg.messages(UNIT_CHAT)] == ["HTML"]
    assert "/help refused: chat 99" in caplog.text


def test_report_without_diacritics_becomes_observed_event_and_status(tg, app):
    # A forecast peak of 1.05 m at TP Cà Mau in four hours: roads expected to flood.
    app.pipeline.ingest(
        [
            Reading(
                "tp_ca_mau",
                Variable.WATER_LEVEL,
                NOW + timedelta(hours=h),
                level,
                Kind.FORECAST,
                NOW - timedelta(hours=1),
            )  # fmt: skip
            for h, level in enumerate([0.6, 0.75, 0.9, 1.0, 1.05, 1.0, 0.8, 0.6])
        ],
        "test",
    )

    async def scenario():
        async with running_bot(tg, app):
            report = await ask(tg, UNIT_CHAT, "/report Phan Ngoc Hien 35 nước lên nhanh")
            other = await ask(tg, OPS_CHAT, "/report 3 thang 2 20")
            await asyncio.to_thread(app.pipeline.cycle, NOW + timedelta(minutes=5))
            unit_status = await ask(tg, UNIT_CHAT, "/status")
            ops_status = await ask(tg, OPS_CHAT, "/status")
            return report, other, unit_status, ops_status

    report, other, unit_status, ops_status = run(scenario)
    assert "Đường Phan Ngọc Hiển</b> ngập 35 cm" in report and "16/12/2024 08:00" in report
    assert "Đường 3 Tháng 2</b> ngập 20 cm" in other

    (stored,) = [r for r in app.store.reports.listing() if r.segment_id == "cm-phan-ngoc-hien"]
    assert (stored.depth_m, stored.user_name, stored.note) == (0.35, REPORTER, "nước lên nhanh")
    assert stored.chat_id == UNIT_CHAT and stored.user_id == USER and stored.event_id
    (event,) = app.store.events.listing(EventFilter(segment="cm-phan-ngoc-hien", kind="observed"))
    assert event.id == stored.event_id and event.status == "flooded"
    assert event.peak_depth_m == 0.35 and event.max_level == 2
    with app.store.engine.connect() as conn:
        notes = conn.execute(
            select(EventChangeRow.note).where(
                EventChangeRow.event_id == event.id, EventChangeRow.change == "field_report"
            )
        ).scalars()
        assert list(notes) == [f"Báo cáo hiện trường: 35 cm ({REPORTER}): nước lên nhanh"]

    assert "Tình hình ngập đường — UBND phường An Xuyên" in unit_status
    assert "Đang ngập (1):" in unit_status
    assert (
        "<b>Đường Phan Ngọc Hiển</b> (Phường An Xuyên): sâu 35 cm (mức 2), từ 16/12/2024 08:05"
        in unit_status
    )
    assert "3 Tháng 2" not in unit_status  # another unit's road
    assert "Dự kiến ngập" in unit_status and "sâu nhất" in unit_status
    assert "tất cả đơn vị" in ops_status and "Đang ngập (2):" in ops_status
    assert "Sở Xây dựng tỉnh Cà Mau" in ops_status and "Đường 3 Tháng 2" in ops_status


def test_report_ambiguous_unknown_and_out_of_range(tg, app):
    async def scenario():
        async with running_bot(tg, app):
            return [
                await ask(tg, UNIT_CHAT, text)
                for text in (
                    "/report nguyen 20",
                    "/report Duong Khong Co 20",
                    "/report Tran Van Thoi Moi 20",
                    "/report cm-de-tham 400",
                    "/report cm-de-tham",
                )
            ]

    ambiguous, unknown, similar, too_deep, usage = run(scenario)
    assert ambiguous.startswith("Có 3 đường khớp với “nguyen”")
    for name in ("Đường Nguyễn Trãi", "Đường Nguyễn Đình Chiểu", "Đường Nguyễn Tất Thành"):
        assert name in ambiguous
    assert unknown.startswith("Không tìm thấy đường “Duong Khong Co”.\nCó thể ghi tên")
    assert similar.startswith("Không tìm thấy đường “Tran Van Thoi Moi”.\nCó phải")
    assert "Đường Trần Văn Thời — mã <code>cm-tran-van-thoi</code>" in similar
    assert "Độ sâu phải từ 0 đến 300 cm" in too_deep
    assert usage.startswith("Cách dùng: /report")
    assert app.store.reports.listing() == []


def test_photo_with_report_caption_stores_largest_photo(tg, app):
    async def scenario():
        async with running_bot(tg, app):
            return await ask(tg, UNIT_CHAT, "/report de tham 15cm cống tràn", photo=True)

    reply = run(scenario)
    assert "Đường Đề Thám</b> ngập 15 cm" in reply and "có ảnh" in reply
    (stored,) = app.store.reports.listing()
    assert stored.segment_id == "cm-de-tham" and stored.depth_m == 0.15
    assert stored.photo_file_id.startswith("AgAC-") and stored.photo_file_id.endswith("-1280")
    assert stored.note == "cống tràn"


def test_tide_lists_next_high_waters(tg, app):
    async def scenario():
        async with running_bot(tg, app):
            return await ask(tg, OPS_CHAT, "/tide")

    reply = run(scenario)
    assert reply.startswith("<b>Đỉnh triều sắp tới")
    highs = dict((s.id, e) for s, e in next_high_waters(app, NOW))
    first = highs["tp_ca_mau"][0]
    local = first.time.astimezone(ICT).strftime("%d/%m %H:%M")
    level = f"{first.level_m:.2f}".replace(".", ",")
    assert "<b>Trạm TP Cà Mau</b> (sông Gành Hào):" in reply
    assert f"• {local}: {level} m — BĐ II" in reply  # 0.84 m over BĐ II (0.75 m)
    assert re.search(r"• \d\d/\d\d \d\d:\d\d: \d,\d\d m", reply)


def test_mute_lists_and_mutes_alerts(tg, app):
    async def scenario():
        async with running_bot(tg, app):
            empty = await ask(tg, UNIT_CHAT, "/mute")
            muted = await ask(tg, UNIT_CHAT, "/mute Phan Ngoc Hien 6 thi công cống")
            unit = await ask(tg, OPS_CHAT, "/mute ubnd_nam_can 24")
            bad = await ask(tg, UNIT_CHAT, "/mute cm-de-tham 200")
            listed = await ask(tg, UNIT_CHAT, "/mute")
            await ask(tg, UNIT_CHAT, "/report Phan Ngoc Hien 35")
            await ask(tg, UNIT_CHAT, "/report 3 thang 2 25")
            await asyncio.to_thread(app.pipeline.cycle, NOW + timedelta(minutes=5))
            return empty, muted, unit, bad, listed

    empty, muted, unit, bad, listed = run(scenario)
    assert empty.startswith("Hiện không có cảnh báo nào đang bị tắt")
    assert "đường <b>Đường Phan Ngọc Hiển</b> đến 16/12/2024 14:00 (6 giờ)" in muted
    assert "Lý do: thi công cống" in muted
    assert "đơn vị <b>UBND xã Năm Căn</b> đến 17/12/2024 08:00" in unit
    assert "từ 1 đến 168" in bad
    assert "Đường Phan Ngọc Hiển: 16/12/2024 08:00 → 16/12/2024 14:00 — thi công cống" in listed
    assert "đơn vị UBND xã Năm Căn" in listed
    rows = app.store.silences.listing(NOW)
    assert {(r.target_kind, r.target_id) for r in rows} == {
        ("segment", "cm-phan-ngoc-hien"),
        ("unit", "ubnd_nam_can"),
    }
    assert rows[0].created_by == f"{REPORTER} ({USER})"

    with app.store.engine.connect() as conn:
        alerts = {a.unit: a for a in conn.execute(select(AlertRow))}
        deliveries = {d.alert_id for d in conn.execute(select(DeliveryRow))}
    muted_alert, loud = alerts["ubnd_an_xuyen"], alerts["so_xay_dung"]
    assert muted_alert.status == "muted" and "Phan Ngọc Hiển" in muted_alert.body
    assert muted_alert.id not in deliveries
    assert loud.status == "pending" and loud.id in deliveries


def test_mute_again_extends_the_silence_instead_of_adding_one(tg, app):
    async def scenario():
        async with running_bot(tg, app):
            first = await ask(tg, UNIT_CHAT, "/mute Phan Ngoc Hien 6 thi công cống")
            again = await ask(tg, OPS_CHAT, "/mute cm-phan-ngoc-hien 12 thi công thêm")
            listed = await ask(tg, UNIT_CHAT, "/mute")
            return first, again, listed

    first, again, listed = run(scenario)
    assert first.startswith("🔕 Đã tắt cảnh báo cho đường")
    assert again.startswith("🔕 Đã gia hạn tắt cảnh báo cho đường <b>Đường Phan Ngọc Hiển</b>")
    assert "đến 16/12/2024 20:00 (12 giờ)" in again and "Lý do: thi công thêm" in again
    rows = app.store.silences.listing(NOW)
    assert len(rows) == 1 and rows[0].reason == "thi công thêm"
    assert listed.count("• ") == 1 and "→ 16/12/2024 20:00 — thi công thêm" in listed
