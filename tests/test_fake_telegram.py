"""The fake Bot API server against the real python-telegram-bot client."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.request import HTTPXRequest

from tests.fake_telegram import FakeTelegram, envelope

TOKEN = "7000000001:AAF-fake-token-for-tests_0123456789"
GROUP = -1001234567890
OTHER = -1009876543210
# A PNG header and some binary noise: CR, LF, CRLF and NUL must survive multipart parsing.
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4 + b"\r\n\r\n--\r\n\x00"


@pytest.fixture(autouse=True)
def ptb_timedelta(monkeypatch):
    """Opt in to PTB's timedelta periods (RetryAfter.retry_after), avoiding its deprecation."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def tg():
    with FakeTelegram(timeout_s=1.5) as server:
        yield server


def make_bot(server: FakeTelegram) -> Bot:
    def request() -> HTTPXRequest:
        return HTTPXRequest(read_timeout=1, connect_timeout=1, write_timeout=1, pool_timeout=1)

    return Bot(
        TOKEN, base_url=f"{server.url}/bot", request=request(), get_updates_request=request()
    )


def run(server: FakeTelegram, scenario):
    """Run `await scenario(bot)` with an initialized bot aimed at `server`."""

    async def main():
        async with make_bot(server) as bot:
            return await scenario(bot)

    return asyncio.run(main())


def ack_keyboard(alert_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton("Đã nhận", callback_data=f"ack:{alert_id}")]]
    )


def test_get_me_and_token(tg):
    me = run(tg, lambda bot: bot.get_me())
    assert me.is_bot and me.username == "floodwatch_test_bot" and me.id == 7000000001
    assert tg.token_seen == TOKEN
    assert [c.method for c in tg.calls] == ["getMe", "getMe"]  # initialize() calls it too
    assert tg.sent == []  # get* calls are not recorded as sent


def test_send_message_html_with_keyboard_and_thread(tg):
    text = "<b>Ngập</b> đường Lý Thường Kiệt &amp; Trần Hưng Đạo: 0,25 m"

    async def scenario(bot):
        first = await bot.send_message(
            GROUP, text, parse_mode="HTML", reply_markup=ack_keyboard(1), message_thread_id=7
        )
        second = await bot.send_message(GROUP, "lần hai")
        other = await bot.send_message(OTHER, "khác")
        return first, second, other

    first, second, other = run(tg, scenario)
    assert (first.message_id, second.message_id, other.message_id) == (1, 2, 1)
    assert first.chat.id == GROUP and first.chat.type == "supergroup"
    assert first.text == "Ngập đường Lý Thường Kiệt & Trần Hưng Đạo: 0,25 m"  # parsed, like TG
    assert first.message_thread_id == 7
    assert first.reply_markup.inline_keyboard[0][0].callback_data == "ack:1"
    assert first.from_user.is_bot
    assert isinstance(first.date, dt.datetime)
    call = tg.sent[0]
    assert (call.method, call.chat_id, call.text, call.parse_mode) == (
        "sendMessage", GROUP, text, "HTML"
    )  # fmt: skip
    assert call.reply_markup == {
        "inline_keyboard": [[{"text": "Đã nhận", "callback_data": "ack:1"}]]
    }
    assert call.message_thread_id == 7 and not call.has_photo
    assert tg.texts(GROUP) == [text, "lần hai"]
    assert [c.message_id for c in tg.messages(OTHER)] == [1]
    assert tg.sent[0].at <= tg.sent[1].at <= tg.sent[2].at


def test_send_photo_multipart(tg):
    caption = "Trạm Cà Mau: <i>đỉnh triều</i> 1,12 m"
    message = run(tg, lambda bot: bot.send_photo(GROUP, PNG, caption=caption, parse_mode="HTML"))
    assert message.photo and message.photo[-1].width == 1280
    assert message.caption == "Trạm Cà Mau: đỉnh triều 1,12 m"
    call = tg.sent[0]
    assert call.method == "sendPhoto" and call.has_photo and call.photo == PNG
    assert call.text == caption and call.parse_mode == "HTML"
    assert tg.texts(GROUP) == [caption]


def test_callback_edit_answer_and_updates(tg):
    async def scenario(bot):
        sent = await bot.send_message(GROUP, "Cảnh báo", reply_markup=ack_keyboard(9))
        tg.push_message(GROUP, 42, "/status", username="nam")
        tg.push_callback(GROUP, 42, sent.message_id, "ack:9", username="nam")
        updates = await bot.get_updates(timeout=0)
        again = await bot.get_updates(offset=updates[0].update_id + 1, timeout=0)
        done = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
        query = updates[1].callback_query
        answered = await bot.answer_callback_query(query.id, text="Đã ghi nhận")
        edited = await bot.edit_message_text(
            "Cảnh báo\n✅ Đã nhận: nam", chat_id=GROUP, message_id=query.message.message_id
        )
        with pytest.raises(BadRequest, match="not modified"):
            await bot.edit_message_text(
                "Cảnh báo\n✅ Đã nhận: nam", chat_id=GROUP, message_id=sent.message_id
            )
        return sent, updates, again, done, answered, edited

    sent, updates, again, done, answered, edited = run(tg, scenario)
    command = updates[0].message
    assert command.text == "/status" and command.from_user.username == "nam"
    assert command.entities[0].type == "bot_command" and command.message_id == 2
    query = updates[1].callback_query
    assert query.data == "ack:9" and query.from_user.id == 42 and query.chat_instance
    assert query.message.message_id == sent.message_id and query.message.text == "Cảnh báo"
    assert [u.update_id for u in again] == [updates[1].update_id] and done == ()
    assert answered is True
    assert edited.text.endswith("Đã nhận: nam") and edited.reply_markup is None
    assert edited.edit_date is not None
    assert [c.method for c in tg.sent] == ["sendMessage", "answerCallbackQuery", "editMessageText"]
    assert tg.current(GROUP, sent.message_id)["text"] == edited.text


def test_get_updates_long_polls(tg):
    threading.Timer(0.3, tg.push_message, (GROUP, 42, "xin chào")).start()
    start = time.monotonic()
    updates = run(tg, lambda bot: bot.get_updates(timeout=30))
    assert [u.message.text for u in updates] == ["xin chào"]
    assert 0.25 < time.monotonic() - start < 1.5

    tg.longpoll_max_s = 0.3  # nothing arrives: [] after min(timeout, cap)
    assert run(tg, lambda bot: bot.get_updates(offset=updates[0].update_id + 1, timeout=30)) == ()


@pytest.mark.parametrize(
    ("error", "exc", "check"),
    [
        ("retry_after", RetryAfter, lambda e: e.retry_after == dt.timedelta(seconds=5)),
        ("kicked", Forbidden, lambda e: "kicked" in e.message),
        ("blocked", Forbidden, lambda e: "blocked by the user" in e.message),
        ("not_found", BadRequest, lambda e: e.message == "Chat not found"),
        ("migrated", ChatMigrated, lambda e: e.new_chat_id == -1001999999999),
        ("parse_entities", BadRequest, lambda e: "can't parse entities" in e.message.lower()),
        (502, NetworkError, lambda e: "Bad Gateway (502)" in e.message),
        (503, NetworkError, lambda e: not isinstance(e, TimedOut)),
        ("timeout", TimedOut, lambda e: True),
        (envelope(429, "Too Many Requests: retry after 1", retry_after=1), RetryAfter, None),
    ],
)
def test_canned_errors_raise_ptb_exceptions(tg, error, exc, check):
    tg.fail_next("sendMessage", 1, error)

    async def scenario(bot):
        with pytest.raises(exc) as info:
            await bot.send_message(GROUP, "thử")
        return info.value, await bot.send_message(GROUP, "lại")

    raised, retried = run(tg, scenario)
    assert check is None or check(raised)
    assert tg.texts(GROUP) == ["lại"] and retried.message_id == 1
    assert [c.status for c in tg.calls if c.method == "sendMessage"][0] != 200


def test_slow_reply_times_out_but_is_delivered(tg):
    tg.fail_next("sendMessage", 1, "slow")

    async def scenario(bot):
        with pytest.raises(TimedOut):
            await bot.send_message(GROUP, "một lần")

    run(tg, scenario)
    assert tg.texts(GROUP) == ["một lần"]  # the duplicate window: sent, but the client never knew


def test_fail_next_counts_and_chat_filter(tg):
    tg.fail_next("sendMessage", 2, "retry_after", chat_id=GROUP)

    async def scenario(bot):
        await bot.send_message(OTHER, "không ảnh hưởng")
        for _ in range(2):
            with pytest.raises(RetryAfter):
                await bot.send_message(GROUP, "thử")
        await bot.send_message(GROUP, "được")

    run(tg, scenario)
    assert tg.texts(OTHER) == ["không ảnh hưởng"] and tg.texts(GROUP) == ["được"]


def test_outage_502_and_refused_then_recovery(tg):
    url = tg.url

    async def scenario(bot):
        tg.down(502)
        with pytest.raises(NetworkError):
            await bot.send_message(GROUP, "a")
        with pytest.raises(NetworkError):
            await bot.get_updates(timeout=0)
        tg.down("refused")
        with pytest.raises(NetworkError, match="ConnectError"):
            await bot.send_message(GROUP, "b")
        tg.up()
        return await bot.send_message(GROUP, "c")

    assert run(tg, scenario).text == "c"
    assert tg.url == url and tg.texts(GROUP) == ["c"]


def test_migrate_and_block(tg):
    old_group, new_group = -4001, -1004001
    tg.migrate(old_group, new_group)
    tg.block(OTHER, "kicked")
    tg.block(555, "not_found")

    async def scenario(bot):
        with pytest.raises(ChatMigrated) as migrated:
            await bot.send_message(old_group, "a")
        moved = await bot.send_message(migrated.value.new_chat_id, "a")
        with pytest.raises(Forbidden):
            await bot.send_photo(OTHER, PNG)
        with pytest.raises(BadRequest, match="Chat not found"):
            await bot.send_message(555, "c")
        tg.unblock(OTHER)
        await bot.send_message(OTHER, "d")
        return moved

    moved = run(tg, scenario)
    assert moved.chat.id == new_group and moved.chat.type == "supergroup"
    assert tg.texts(new_group) == ["a"] and tg.texts(OTHER) == ["d"] and tg.texts(old_group) == []


def test_html_and_length_checked_like_telegram(tg):
    async def scenario(bot):
        with pytest.raises(BadRequest, match='unsupported start tag "x" at byte offset 7') as e:
            await bot.send_message(GROUP, "Ngập <x>", parse_mode="HTML")
        assert "can't parse entities" in e.value.message.lower()
        with pytest.raises(BadRequest, match="find end tag"):
            await bot.send_message(GROUP, "<b>mở", parse_mode="HTML")
        with pytest.raises(BadRequest, match="too long"):
            await bot.send_message(GROUP, "x" * 4097)
        await bot.send_message(GROUP, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML")
        await bot.send_message(GROUP, "a < b & c")  # no parse mode: anything goes

    run(tg, scenario)
    assert len(tg.texts(GROUP)) == 2


def test_limits_per_chat(tg):
    tg.enforce_limits = True

    async def scenario(bot):
        await bot.send_message(GROUP, "1")
        with pytest.raises(RetryAfter) as info:
            await bot.send_message(GROUP, "2")
        await bot.send_message(OTHER, "other chat is fine")
        return info.value

    raised = run(tg, scenario)
    assert raised.retry_after == dt.timedelta(seconds=1)
    assert [(v.rule, v.chat_id, v.retry_after) for v in tg.limit_violations] == [
        ("per_chat", GROUP, 1)
    ]


def test_limits_per_group_and_overall(tg):
    tg.enforce_limits = True
    tg.limits.per_chat_interval_s = 0  # to reach the other limits quickly

    async def scenario(bot):
        for i in range(20):
            await bot.send_message(GROUP, str(i))
        with pytest.raises(RetryAfter) as group:
            await bot.send_message(GROUP, "21st")
        for user in range(1, 11):  # 30 sends in this second so far
            await bot.send_message(user, "riêng")
        with pytest.raises(RetryAfter) as overall:
            await bot.send_message(11, "31st")
        return group.value, overall.value

    group, overall = run(tg, scenario)
    assert dt.timedelta(seconds=58) <= group.retry_after <= dt.timedelta(seconds=60)
    assert overall.retry_after == dt.timedelta(seconds=1)
    assert [v.rule for v in tg.limit_violations] == ["group_per_minute", "global_per_second"]
    assert len(tg.sent) == 30


def test_token_only_in_the_path(tg):
    run(tg, lambda bot: bot.send_message(GROUP, "x"))
    assert all(TOKEN not in repr(c.params) for c in tg.calls)
