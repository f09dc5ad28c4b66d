"""Telegram delivery end to end: the real PTB client against a fake Bot API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from floodwatch.cli import main
from floodwatch.db.models import AlertRow, DeliveryRow
from floodwatch.service.app import App
from floodwatch.telegram.sender import Limiter, TelegramNotifier, read_token
from tests.conftest import DATA, edit_config, floodwatch_run, on_test_roads, wait_until
from tests.fake_telegram import FakeTelegram

TOKEN = "123456:TEST-TOKEN"
AN_XUYEN, SO_XAY_DUNG, TAN_THANH, OPERATORS = -1001, -1002, -1003, -1009
REPLAY = DATA / "replay" / "spring_tide_dec2024.csv"


@pytest.fixture(autouse=True)
def ptb_timedelta(monkeypatch):
    """Opt in to PTB's timedelta periods (RetryAfter.retry_after)."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def tg():
    with FakeTelegram(timeout_s=1.0) as server:
        yield server


@pytest.fixture
def config(project, tg):
    """The test segments, units with chats, operators, escalation after 30 minutes."""
    on_test_roads(project)
    return edit_config(
        project,
        units={
            "ubnd_an_xuyen": f"telegram_chats = [{AN_XUYEN}]\n"
            'escalate_to = "operators"\nescalate_after_minutes = 30',
            "so_xay_dung": f"telegram_chats = [{SO_XAY_DUNG}]",
            "ubnd_tan_thanh": f"telegram_chats = [{TAN_THANH}]",
        },
        append=f'[telegram]\nbase_url = "{tg.url}/bot"\noperators_chats = [{OPERATORS}]\n'
        "timeout_s = 2\n",
    )


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


FAST = dict(per_chat_s=0.0, group_per_minute=10_000, per_second=10_000)


def drain(notifier: TelegramNotifier, passes: int = 50, then=None) -> None:
    """Run delivery passes until nothing is due (`then` runs once the bot is up)."""

    async def go():
        await notifier.bot.initialize()
        if then:
            then()
        try:
            for _ in range(passes):
                if not await notifier.send_due():
                    break
        finally:
            await notifier.bot.shutdown()

    asyncio.run(go())


def deliveries(app: App) -> list[DeliveryRow]:
    """Every delivery, in id order."""
    with app.store.engine.connect() as conn:
        return list(conn.execute(select(DeliveryRow).order_by(DeliveryRow.id)))


def alerts(app: App) -> dict[int, AlertRow]:
    """Every alert by id."""
    with app.store.engine.connect() as conn:
        return {a.id: a for a in conn.execute(select(AlertRow))}


def replay_quietly(config) -> None:
    """Replay the spring tide; alerts stay in the outbox for Telegram."""
    from floodwatch.service.replay import replay
    from floodwatch.sources.csvfile import read_csv

    app = App.open(config, with_sources=False)
    try:
        replay(app, read_csv(REPLAY, app.geodata.stations).readings)
    finally:
        app.close()


def test_token_only_from_environment_or_credential(tmp_path):
    assert read_token({"FLOODWATCH_TELEGRAM_TOKEN": " abc "}) == "abc"
    (tmp_path / "telegram-token").write_text("from-systemd\n")
    assert read_token({"CREDENTIALS_DIRECTORY": str(tmp_path)}) == "from-systemd"
    assert read_token({}) is None


def test_replayed_spring_tide_reaches_each_unit_in_order(config, tg, caplog):
    replay_quietly(config)
    app = App.open(config, with_sources=False)
    try:
        # Replayed December 2024 alerts are old on purpose: no late mark here.
        notifier = TelegramNotifier(app, TOKEN, limiter=Limiter(**FAST), mark_late=False)
        drain(notifier)
        sent = deliveries(app)
        assert sent and all(d.status == "sent" for d in sent)
        by_alert = alerts(app)
        for chat in (AN_XUYEN, SO_XAY_DUNG, TAN_THANH, OPERATORS):
            mine = [d for d in sent if d.chat_id == chat]
            texts = [c.text for c in tg.messages(chat) if c.method == "sendMessage"]
            assert len(texts) == len(mine) > 0
            # Per chat, messages arrive in the order the alerts were committed.
            assert texts == [by_alert[d.alert_id].body for d in mine]
        # The unit with only the rain-only road hears nothing about the tide roads.
        assert all("Đường thử ngập mưa" in t or "HẾT NGẬP" in t for t in tg.texts(SO_XAY_DUNG))
        assert any("BẮT ĐẦU NGẬP" in t for t in tg.texts(AN_XUYEN))
        # Operators get one digest per cycle with alerts, no unit's copy and no chart;
        # units' onsets and forecasts come with a hydrograph.
        operator_calls = tg.messages(OPERATORS)
        digests = {d.alert_id for d in sent if by_alert[d.alert_id].kinds == ["digest"]}
        assert [d.alert_id for d in sent if d.chat_id == OPERATORS] == sorted(digests)
        assert not any(c.has_photo for c in operator_calls)
        cycles = {by_alert[i].created_at for i in by_alert if i not in digests}
        assert len(digests) == len(cycles)
        photos = [c for c in tg.messages(AN_XUYEN) if c.has_photo]
        assert photos and all(c.text.startswith("Mực nước trạm TP Cà Mau") for c in photos)
        onsets = [c for c in tg.messages(AN_XUYEN) if "BẮT ĐẦU NGẬP" in (c.text or "")]
        assert onsets[0].reply_markup["inline_keyboard"][0][0]["text"] == "✅ Đã nhận"
        assert tg.token_seen == TOKEN and TOKEN not in caplog.text
    finally:
        app.close()


def test_retry_after_outage_and_recovery_deliver_everything_once(config, tg):
    replay_quietly(config)
    app = App.open(config, with_sources=False)
    clock = Clock(datetime(2024, 12, 18, tzinfo=UTC))
    try:
        notifier = TelegramNotifier(app, TOKEN, clock=clock, limiter=Limiter(**FAST))
        tg.fail_next("sendMessage", 1, "retry_after", chat_id=AN_XUYEN)
        drain(notifier, passes=3, then=lambda: tg.down(502))
        assert all(d.status == "pending" for d in deliveries(app))
        assert any(d.last_error and "502" in d.last_error for d in deliveries(app))
        tg.up()
        for _ in range(40):  # minutes pass; every backoff expires
            clock.now += timedelta(minutes=10)
            drain(notifier)
            if all(d.status == "sent" for d in deliveries(app)):
                break
            # Telegram's retry_after (5 s here) holds the chat back in real time, whatever
            # the outbox clock says: let some of it pass.
            time.sleep(0.25)
        sent = deliveries(app)
        assert all(d.status == "sent" for d in sent), [(d.id, d.status, d.last_error) for d in sent]
        for chat in (AN_XUYEN, SO_XAY_DUNG, OPERATORS):
            texts = [c for c in tg.messages(chat) if c.method == "sendMessage"]
            assert len(texts) == len([d for d in sent if d.chat_id == chat])
    finally:
        app.close()


def test_gone_and_migrated_chats(config, tg):
    replay_quietly(config)
    tg.block(SO_XAY_DUNG, "kicked")
    tg.migrate(TAN_THANH, -1009003)
    app = App.open(config, with_sources=False)
    try:
        drain(TelegramNotifier(app, TOKEN, limiter=Limiter(**FAST)))
        rows = deliveries(app)
        assert {d.status for d in rows if d.chat_id == SO_XAY_DUNG} == {"broken"}
        assert all(d.status == "sent" for d in rows if d.chat_id not in (SO_XAY_DUNG,))
        assert tg.texts(-1009003) and not tg.texts(TAN_THANH)
        notes = "\n".join(t or "" for t in tg.texts(OPERATORS))
        assert f"nhóm Telegram {SO_XAY_DUNG}" in notes
        assert f"Nhóm Telegram {TAN_THANH} đã được nâng cấp thành siêu nhóm -1009003" in notes
        chats = app.store.outbox.chats()
        assert chats[SO_XAY_DUNG].status == "broken" and chats[TAN_THANH].migrated_to == -1009003
    finally:
        app.close()


def test_long_messages_split_and_bad_html_falls_back_to_plain(config, tg):
    from floodwatch.db.outbox import NewAlert

    app = App.open(config, with_sources=False)
    try:
        lines = [
            f"🔵 <b>Đường số {i}</b>: đang ngập 35 cm (mức 2), do triều cường." for i in range(150)
        ]
        body = "⚠️ <b>CẢNH BÁO NGẬP ĐƯỜNG</b>\n" + "\n".join(lines)
        now = datetime(2024, 12, 16, tzinfo=UTC)
        app.store.outbox.add([NewAlert(now, "ubnd_an_xuyen", ["onset"], body, [(AN_XUYEN, None)])])
        tg.fail_next("sendMessage", 1, "parse_entities", chat_id=AN_XUYEN)
        drain(TelegramNotifier(app, TOKEN, limiter=Limiter(**FAST)))
        calls = tg.messages(AN_XUYEN)
        assert len(calls) >= 3 and all(len(c.text) <= 4096 for c in calls)
        assert calls[0].parse_mode is None and "<b>" not in calls[0].text  # the fallback
        assert all(c.parse_mode == "HTML" for c in calls[1:])
        assert calls[-1].reply_markup is not None  # the button rides on the last part
        assert [d.status for d in deliveries(app)] == ["sent"]
    finally:
        app.close()


def test_acknowledgement_edits_every_copy_and_stops_escalation(config, tg):
    from floodwatch.db.outbox import NewAlert

    app = App.open(config, with_sources=False)
    t0 = datetime(2024, 12, 16, 10, tzinfo=UTC)
    clock = Clock(t0)
    try:
        notifier = TelegramNotifier(app, TOKEN, clock=clock, limiter=Limiter(**FAST))
        outbox = app.store.outbox
        body = "⚠️ <b>BẮT ĐẦU NGẬP</b>\n🔵 <b>Đường thử</b>: đang ngập 15 cm"
        [taken, ignored] = outbox.add(
            [
                NewAlert(
                    t0, "ubnd_an_xuyen", ["onset"], body, [(AN_XUYEN, None), (OPERATORS, None)]
                ),
                NewAlert(t0, "ubnd_an_xuyen", ["onset"], body + " (2)", [(AN_XUYEN, None)]),
            ]
        )
        drain(notifier)
        message_id = tg.messages(AN_XUYEN)[0].message_id

        async def press_and_escalate():
            await notifier.bot.initialize()
            from telegram import Update

            update = Update.de_json(tg.push_callback(AN_XUYEN, 501, message_id, f"ack:{taken}",
                                                     username="tran_b"), notifier.bot)  # fmt: skip
            await notifier.on_callback(update, None)
            clock.now = t0 + timedelta(minutes=29)
            early = await notifier.escalate_due()
            clock.now = t0 + timedelta(minutes=31)
            late = await notifier.escalate_due()
            again = await notifier.escalate_due()
            await notifier.bot.shutdown()
            return early, late, again

        assert asyncio.run(press_and_escalate()) == (0, 1, 0)
        rows = alerts(app)
        assert rows[taken].ack_by and rows[taken].escalated_at is None
        [escalation] = [a for a in rows.values() if a.escalation_of == ignored]
        assert escalation.body.startswith("⏫ <b>CHƯA CÓ XÁC NHẬN sau 30 phút</b>")
        edited = tg.current(AN_XUYEN, message_id)
        assert "✅ Đã nhận:" in edited["text"]
        assert any(c.method == "answerCallbackQuery" for c in tg.sent)
        drain(notifier)
        assert any("CHƯA CÓ XÁC NHẬN" in (t or "") for t in tg.texts(OPERATORS))
    finally:
        app.close()


def test_flood_limits_are_respected(config, tg):
    from floodwatch.db.outbox import NewAlert

    tg.enforce_limits = True
    app = App.open(config, with_sources=False)
    try:
        now = datetime(2024, 12, 16, tzinfo=UTC)
        app.store.outbox.add(
            [NewAlert(now, "u", ["onset"], f"tin {i}", [(AN_XUYEN, None), (OPERATORS, None)])
             for i in range(3)]
        )  # fmt: skip
        # The real limiter: 1 message a second per chat (the old alerts not marked late).
        drain(TelegramNotifier(app, TOKEN, mark_late=False))
        assert tg.limit_violations == []
        assert tg.texts(AN_XUYEN) == ["tin 0", "tin 1", "tin 2"]
        times = [c.at for c in tg.messages(AN_XUYEN)]
        assert all(b - a >= 0.95 for a, b in zip(times, times[1:], strict=False))
    finally:
        app.close()


def test_restart_after_commit_delivers_once(config, tg):
    replay_quietly(config)  # committed, never sent: as if the process died right after
    app = App.open(config, with_sources=False)
    try:
        drain(TelegramNotifier(app, TOKEN, limiter=Limiter(**FAST)))
        first = len(tg.sent)
        assert first > 0 and all(d.status == "sent" for d in deliveries(app))
    finally:
        app.close()
    app = App.open(config, with_sources=False)  # restarted
    try:
        drain(TelegramNotifier(app, TOKEN, limiter=Limiter(**FAST)))
        assert len(tg.sent) == first
    finally:
        app.close()


def test_replay_without_token_prints_alerts_on_the_console(config):
    result = CliRunner().invoke(main, ["--config", str(config), "replay", str(REPLAY)])
    assert result.exit_code == 0 and "BẮT ĐẦU NGẬP" in result.output


def test_run_without_token_delivers_on_the_console(config, tmp_path):
    replay_quietly(config)  # alerts committed and waiting in the outbox
    app = App.open(config, with_sources=False)
    try:
        waiting = {i for i, a in alerts(app).items() if a.status == "pending"}
    finally:
        app.close()
    assert waiting
    log = tmp_path / "run.log"

    def statuses() -> dict[int, str]:
        app = App.open(config, with_sources=False, writes=False)
        try:
            return {i: a.status for i, a in alerts(app).items() if i in waiting}
        finally:
            app.close()

    with floodwatch_run(config, log) as proc:
        wait_until(lambda: "pending" not in statuses().values(), proc, log)
    output = log.read_text()
    assert set(statuses().values()) == {"sent"}  # every waiting alert, written out
    assert "BẮT ĐẦU NGẬP" in output
    assert "Telegram delivery on." not in output and "Traceback" not in output


def test_run_with_a_token_delivers_through_telegram(config, tg, tmp_path):
    queued = CliRunner().invoke(
        main, ["--config", str(config), "bulletin", "--send", "--at", "2025-11-09T06:00+07:00"]
    )
    assert queued.exit_code == 0, queued.output
    assert "TIN CẢNH BÁO NGẬP LỤT DO TRIỀU CƯỜNG" in queued.output
    log = tmp_path / "run.log"
    with floodwatch_run(config, log, token=TOKEN) as proc:
        wait_until(lambda: bool(tg.texts(OPERATORS)), proc, log, seconds=30)
    texts = tg.texts(OPERATORS)
    assert any("TIN CẢNH BÁO NGẬP LỤT DO TRIỀU CƯỜNG" in (t or "") for t in texts)
    # Every message went to a configured chat, and nothing reached a chat twice.
    chats = {AN_XUYEN, SO_XAY_DUNG, TAN_THANH, OPERATORS}
    to = {c.chat_id for c in tg.sent if c.method in ("sendMessage", "sendPhoto")}
    assert to <= chats, to
    for chat in chats:
        texts = [t for t in tg.texts(chat) if t]
        assert len(texts) == len(set(texts)), chat
    output = log.read_text()
    assert "Telegram delivery on." in output and TOKEN not in output
    assert "Traceback" not in output


def test_replayed_spring_tide_sends_exactly_the_expected_messages_per_unit(config, tg):
    import re

    replay_quietly(config)
    app = App.open(config, with_sources=False)
    try:
        drain(TelegramNotifier(app, TOKEN, limiter=Limiter(**FAST)))
    finally:
        app.close()

    def summary(chat: int) -> list[tuple[list[str], list[str]]]:
        """(headlines, roads) of each text message a chat received, in order."""
        out = []
        for call in tg.messages(chat):
            if call.method == "sendMessage":
                heads = re.findall(r"<b>([A-ZÀ-Ỹ ]+):</b>", call.text)
                roads = re.findall(r"<b>Đường thử ([^<]+)</b>", call.text)
                out.append((heads, roads))
        return out

    assert summary(AN_XUYEN) == [
        (["BẮT ĐẦU NGẬP"], ["triều thấp"]),  # the high tide with the rain burst
        (["BẮT ĐẦU NGẬP", "NGẬP SÂU THÊM"], ["triều vừa", "triều thấp"]),
        (["NƯỚC GIẢM"], ["triều thấp"]),
        (["HẾT NGẬP"], ["triều thấp", "triều vừa"]),
        (["BẮT ĐẦU NGẬP"], ["triều thấp"]),  # the 1.07 m peak
        (["BẮT ĐẦU NGẬP"], ["triều vừa"]),
        (["HẾT NGẬP"], ["triều vừa"]),
        (["HẾT NGẬP"], ["triều thấp"]),
        (["BẮT ĐẦU NGẬP"], ["triều thấp"]),  # the next high water
        (["HẾT NGẬP"], ["triều thấp"]),
    ]
    assert summary(SO_XAY_DUNG) == [
        (["BẮT ĐẦU NGẬP"], ["ngập mưa"]),
        (["NGẬP SÂU THÊM"], ["ngập mưa"]),
        (["NƯỚC GIẢM"], ["ngập mưa"]),
        (["VẪN ĐANG NGẬP"], ["ngập mưa"]),  # a reminder three hours after the last alert
        (["HẾT NGẬP"], ["ngập mưa"]),
    ]
    assert summary(TAN_THANH) == [
        (["BẮT ĐẦU NGẬP"], ["sát ngưỡng"]),
        (["HẾT NGẬP"], ["sát ngưỡng"]),
    ]


def test_the_one_duplicate_window_and_timeouts(config, tg):
    """A reply lost after Telegram accepted the message: that one part goes twice, no more."""
    from floodwatch.db.outbox import NewAlert

    tg.timeout_s = 2.5  # longer than the client's 2 s read timeout
    app = App.open(config, with_sources=False)
    clock = Clock(datetime(2024, 12, 16, tzinfo=UTC))
    try:
        app.store.outbox.add(
            [NewAlert(clock.now, "u", ["onset"], f"tin {i}", [(AN_XUYEN, None)]) for i in range(3)]
        )
        notifier = TelegramNotifier(app, TOKEN, clock=clock, limiter=Limiter(**FAST),
                                    mark_late=False)  # fmt: skip
        tg.fail_next("sendMessage", 1, "slow", chat_id=AN_XUYEN)  # accepted, reply lost
        tg.fail_next("sendMessage", 1, "timeout", chat_id=AN_XUYEN)  # never reached Telegram
        for _ in range(4):
            drain(notifier)
            clock.now += timedelta(minutes=10)
        assert tg.texts(AN_XUYEN) == ["tin 0", "tin 0", "tin 1", "tin 2"]
        assert all(d.status == "sent" for d in deliveries(app))
    finally:
        app.close()


def test_ack_on_an_onset_with_a_hydrograph_edits_the_text_not_the_picture(config, tg):
    edit_config(config, {"timeout_s = 2\n": 'timeout_s = 2\noperators_copy = "full"\n'})
    replay_quietly(config)
    app = App.open(config, with_sources=False)
    try:
        notifier = TelegramNotifier(app, TOKEN, limiter=Limiter(**FAST))
        drain(notifier)
        calls = tg.messages(AN_XUYEN)
        onset = next(c for c in calls if "BẮT ĐẦU NGẬP" in (c.text or ""))
        assert calls[calls.index(onset) + 1].has_photo  # the hydrograph follows the text
        alert_id = int(onset.reply_markup["inline_keyboard"][0][0]["callback_data"][4:])

        async def press():
            from telegram import Update

            await notifier.bot.initialize()
            update = Update.de_json(
                tg.push_callback(AN_XUYEN, 77, onset.message_id, f"ack:{alert_id}",
                                 username="a<b>&c"), notifier.bot,
            )  # fmt: skip
            await notifier.on_callback(update, None)
            await notifier.bot.shutdown()

        asyncio.run(press())
        acked = app.store.outbox.alert(alert_id)
        events = app.store.events.listing()
        named = [e for e in events if e.id in acked.event_ids]
        assert named and all(e.ack_by == acked.ack_by for e in named)  # the log knows too
        edited = [c for c in tg.sent if c.method == "editMessageText"]
        assert edited and all(
            c.message_id != calls[calls.index(onset) + 1].message_id for c in edited
        )
        assert "Đã nhận" in tg.current(AN_XUYEN, onset.message_id)["text"]
        [operators_copy] = [c for c in edited if c.chat_id == OPERATORS]
        assert "Đã nhận" in operators_copy.text
    finally:
        app.close()


def test_broken_and_migrated_chats_are_reported_once(config, tg):
    from floodwatch.db.outbox import NewAlert

    tg.block(SO_XAY_DUNG, "kicked")
    tg.migrate(TAN_THANH, -1009003)
    app = App.open(config, with_sources=False)
    now = datetime(2024, 12, 16, tzinfo=UTC)
    try:
        notifier = TelegramNotifier(app, TOKEN, limiter=Limiter(**FAST), mark_late=False)
        for round_ in range(2):
            app.store.outbox.add(
                [NewAlert(now, "u", ["onset"], f"lượt {round_}", [(SO_XAY_DUNG, None),
                                                                   (TAN_THANH, None)])]
            )  # fmt: skip
            drain(notifier)
        notes = [t for t in tg.texts(OPERATORS) if t]
        assert len([n for n in notes if f"nhóm Telegram {SO_XAY_DUNG}" in n]) == 1
        assert len([n for n in notes if "siêu nhóm -1009003" in n]) == 1
        assert tg.texts(-1009003) == ["lượt 0", "lượt 1"]
        assert len([c for c in tg.calls if c.chat_id == TAN_THANH]) == 1  # asked once
        tg.unblock(SO_XAY_DUNG)  # the bot is added back: the next alert goes through
        app.store.outbox.add([NewAlert(now, "u", ["onset"], "lượt 2", [(SO_XAY_DUNG, None)])])
        drain(notifier)
        assert tg.texts(SO_XAY_DUNG) == ["lượt 2"]
        assert app.store.outbox.chats()[SO_XAY_DUNG].status == "ok"
    finally:
        app.close()


def test_escalation_counts_from_delivery_for_each_unit(config, tg):
    """An alert held back (an outage, a drill's old alert) escalates its unit's delay after
    it reached the chat, even when another unit's shorter delay lets it be looked at."""
    from floodwatch.db.outbox import NewAlert

    edit_config(
        config, units={"so_xay_dung": 'escalate_to = "operators"\nescalate_after_minutes = 10'}
    )
    app = App.open(config, with_sources=False)
    t0 = datetime(2024, 12, 16, 10, tzinfo=UTC)
    clock = Clock(t0 + timedelta(minutes=40))  # delivered 40 minutes after it was written
    try:
        notifier = TelegramNotifier(app, TOKEN, clock=clock, limiter=Limiter(**FAST),
                                    mark_late=False)  # fmt: skip
        body = "⚠️ <b>BẮT ĐẦU NGẬP</b>\n🔵 <b>Đường thử</b>: đang ngập 15 cm"
        app.store.outbox.add([NewAlert(t0, "ubnd_an_xuyen", ["onset"], body, [(AN_XUYEN, None)])])
        drain(notifier)

        async def escalate_at(minutes_after_delivery: int) -> int:
            clock.now = t0 + timedelta(minutes=40 + minutes_after_delivery)
            return await notifier.escalate_due()

        async def passes():
            await notifier.bot.initialize()
            try:
                return [await escalate_at(m) for m in (15, 29, 31)]
            finally:
                await notifier.bot.shutdown()

        # so_xay_dung's 10 minutes let the alert be looked at; ubnd_an_xuyen's 30 decide.
        assert asyncio.run(passes()) == [0, 0, 1]
    finally:
        app.close()
