"""Deliveries that survive a kill, restarts that keep Telegram's limits, fast and fair recovery.

Against the fake Bot API on 127.0.0.1 (tests/fake_telegram.py), with the real
python-telegram-bot client; the kill test SIGKILLs a real `floodwatch run`.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from floodwatch.config import load_settings
from floodwatch.db.models import DeliveryPartRow, DeliveryRow
from floodwatch.db.outbox import NewAlert
from floodwatch.db.store import Store
from floodwatch.service.app import App
from floodwatch.telegram.sender import Limiter, TelegramNotifier, TelegramThread, alert_parts
from tests.conftest import DATA, ROOT, TEST_ROADS, edit_config, floodwatch_run, wait_until
from tests.fake_telegram import FakeTelegram

TOKEN = "123456:RECOVERY"
UNIT_CHAT, OPERATORS, GONE = -1001, -1009, -1002
REPLAY = DATA / "replay" / "spring_tide_dec2024.csv"
FAST = dict(per_chat_s=0.0, group_per_minute=10_000, per_second=10_000)


@pytest.fixture(autouse=True)
def ptb_timedelta(monkeypatch):
    """Opt in to PTB's timedelta periods (RetryAfter.retry_after)."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def tg():
    with FakeTelegram(timeout_s=60.0) as server:  # a hung call hangs past any client timeout
        yield server


@pytest.fixture
def config(project, tg):
    """The test roads with "triều vừa" read from a second tide station (Phước Long), no
    configured chats (the tests queue their own alerts), Telegram at the fake."""
    roads = json.loads(TEST_ROADS.read_text(encoding="utf-8"))
    for feature in roads["features"]:
        if feature["properties"]["id"] == "tide-mid":
            feature["properties"]["tide_station"] = "phuoc_long"
    two_stations = project.parent / "two_stations.geojson"
    two_stations.write_text(json.dumps(roads), encoding="utf-8")
    return edit_config(
        project,
        {'segments = "../geodata/segments.geojson"': f'segments = "{two_stations}"'},
        append=f'[telegram]\nbase_url = "{tg.url}/bot"\ntimeout_s = 5\n',
    )


def replay_two_stations(config, tmp_path) -> tuple[int, int]:
    """Replay the spring tide with Phước Long copying TP Cà Mau's levels; returns the ids of
    an event on a road of each station."""
    from floodwatch.service.replay import replay
    from floodwatch.sources.csvfile import read_csv

    rows = list(csv.DictReader(REPLAY.open(encoding="utf-8")))
    copies = [{**r, "station": "phuoc_long"} for r in rows if r["variable"] == "water_level"]
    data = tmp_path / "two_stations.csv"
    with data.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows + copies)
    app = App.open(config, with_sources=False)
    try:
        replay(app, read_csv(data, app.geodata.stations).readings)
        events = app.store.events.listing()
    finally:
        app.close()
    low = next(e.id for e in events if e.segment_id == "tide-low" and e.kind == "observed")
    mid = next(e.id for e in events if e.segment_id == "tide-mid" and e.kind == "observed")
    return low, mid


def start_run(config, log) -> subprocess.Popen:
    """`floodwatch run` with the token, as its own process (to be SIGKILLed)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FLOODWATCH_TELEGRAM_TOKEN": TOKEN,
           "PTB_TIMEDELTA": "true", "PYTHONUNBUFFERED": "1"}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "floodwatch", "--config", str(config), "run"],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=log.parent,
    )  # fmt: skip


def wait_for(predicate, what: str, timeout_s: float = 30.0, every_s: float = 0.02) -> None:
    """Poll until `predicate()` holds."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every_s)


def parts_of(url: str) -> dict[int, list[tuple[int, int | None]]]:
    """(part, message id) recorded per chat, in the order of the plan."""
    store = Store(url)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(
                select(DeliveryRow.chat_id, DeliveryPartRow.seq, DeliveryPartRow.message_id)
                .join(DeliveryRow, DeliveryRow.id == DeliveryPartRow.delivery_id)
                .order_by(DeliveryPartRow.seq)
            ).all()
    finally:
        store.close()
    out: dict[int, list[tuple[int, int | None]]] = {}
    for chat, seq, message_id in rows:
        out.setdefault(chat, []).append((seq, message_id))
    return out


def statuses(url: str) -> list[str]:
    """Every delivery's status."""
    store = Store(url)
    try:
        with store.engine.connect() as conn:
            return list(conn.execute(select(DeliveryRow.status)).scalars())
    finally:
        store.close()


def test_a_kill_between_two_charts_sends_exactly_the_missing_parts(config, tg, tmp_path):
    """SIGKILL of `floodwatch run` while the second chart is on its way: the restart sends
    that chart, and nothing else twice (before 0009 it was skipped in 2 of 3 kill runs)."""
    low, mid = replay_two_stations(config, tmp_path)
    url = load_settings(config).storage.database_url
    lines = [f"🔵 <b>Đường số {i}</b>: đang ngập 35 cm (mức 2), do triều cường." for i in range(90)]
    body = "⚠️ <b>BẮT ĐẦU NGẬP</b>\n" + "\n".join(lines)
    texts = alert_parts(body)  # as the sender splits it (room kept for a late mark)
    assert len(texts) == 2  # two text parts, then the two charts
    store = Store(url)
    store.outbox.add(
        [
            NewAlert(
                datetime.now(UTC),
                "ubnd_an_xuyen",
                ["onset"],
                body,
                [(UNIT_CHAT, None), (OPERATORS, None)],
                event_ids=[low, mid],
            )
        ]
    )
    store.close()  # fmt: skip
    for chat in (UNIT_CHAT, OPERATORS):  # the second chart hangs, never reaching the chat
        tg.fail_next("sendPhoto", 1, "timeout", chat_id=chat, skip=1)

    def hanging(chat: int) -> bool:
        return any(c.method == "sendPhoto" and c.chat_id == chat and c.status == "timeout"
                   for c in list(tg.calls))  # fmt: skip

    first = start_run(config, tmp_path / "first.log")
    try:
        wait_for(lambda: hanging(UNIT_CHAT) and hanging(OPERATORS), "the second charts", 60)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    recorded = parts_of(url)
    for chat in (UNIT_CHAT, OPERATORS):  # killed between the two charts
        assert [seq for seq, _ in recorded[chat]] == [0, 1, 2], recorded
        assert [c.has_photo for c in tg.messages(chat)] == [False, False, True]

    log = tmp_path / "second.log"
    with floodwatch_run(config, log, token=TOKEN, verbose=True) as proc:
        wait_until(lambda: statuses(url) == ["sent", "sent"], proc, log, seconds=60)
    # Even at -vv, where the HTTP client's lines would name every Bot API URL:
    assert "sendPhoto" in log.read_text() and TOKEN not in log.read_text()
    for chat in (UNIT_CHAT, OPERATORS):
        calls = tg.messages(chat)
        assert [c.text for c in calls[:2]] == texts
        captions = [c.text for c in calls[2:]]
        assert len(captions) == 2 and all(c.has_photo for c in calls[2:]), captions
        assert captions[0].startswith("Mực nước trạm Phước Long")
        assert captions[1].startswith("Mực nước trạm TP Cà Mau")
        assert [seq for seq, _ in parts_of(url)[chat]] == [0, 1, 2, 3]
        assert [m for _, m in parts_of(url)[chat]] == [c.message_id for c in calls]
    assert "Traceback" not in log.read_text()


def queue(app: App, texts: list[str], chats: list[int]) -> None:
    """Commit one alert per text to the chats, as a cycle would."""
    now = datetime.now(UTC)
    app.store.outbox.add(
        [NewAlert(now, "ubnd_an_xuyen", ["onset"], t, [(c, None) for c in chats]) for t in texts]
    )


OUTAGE_S = 20.0


def first_send_after(tg, back: float) -> float:
    """Seconds from `back` to the first message Telegram accepted after it."""
    return min(c.at for c in tg.sent if c.method == "sendMessage" and c.at >= back) - back


def test_after_an_outage_the_first_send_goes_within_seconds(config, tg, caplog, capsys):
    """Telegram answers 502 for 20 s (each chat's backoff has reached 16 s), then again: the
    sender notices by asking getMe every 2 s, not at its next backoff (~10 s later)."""
    app = App.open(config, with_sources=False)
    thread = TelegramThread(TelegramNotifier(app, TOKEN))
    try:
        thread.start()
        queue(app, ["trước"], [UNIT_CHAT])
        wait_for(lambda: tg.texts(UNIT_CHAT) == ["trước"], "the sender to be up", 30)
        tg.down(502)
        queue(app, [f"tin {i}" for i in range(3)], [UNIT_CHAT, OPERATORS])
        time.sleep(OUTAGE_S)
        refused = [c for c in tg.calls if c.method == "sendMessage" and c.status == 502]
        assert refused
        back = time.monotonic()
        tg.up()
        wait_for(lambda: len(tg.texts(UNIT_CHAT)) == 4 and len(tg.texts(OPERATORS)) == 3,
                 "every alert after the outage", 30, 0.05)  # fmt: skip
    finally:
        thread.stop()
        app.close()
    first = first_send_after(tg, back)
    with capsys.disabled():
        print(f"\n  502 for {OUTAGE_S:.0f} s: first send {first:.2f} s after Telegram was back")
    assert first < 4.0
    assert tg.texts(UNIT_CHAT) == ["trước", "tin 0", "tin 1", "tin 2"]
    # While down, each chat's first alert was tried at its backoff (2, 4, 8 s), not hammered.
    assert len(refused) <= 2 * 5, len(refused)
    # One line per failure and per state change; no tracebacks or proxy pages in the log.
    assert "Traceback" not in caplog.text and "<html>" not in caplog.text
    assert caplog.text.count("not answering (") == 1
    assert caplog.text.count("answering again") == 1


def test_a_sender_started_during_an_outage_delivers_when_telegram_is_back(config, tg, caplog):
    """Telegram refuses connections when the sender starts: it keeps asking, then delivers."""
    app = App.open(config, with_sources=False)
    thread = TelegramThread(TelegramNotifier(app, TOKEN))
    try:
        queue(app, ["tin 0"], [UNIT_CHAT])
        tg.down("refused")
        thread.start()
        time.sleep(5)
        back = time.monotonic()
        tg.up()
        wait_for(lambda: tg.texts(UNIT_CHAT) == ["tin 0"], "the alert", 30, 0.05)
    finally:
        thread.stop()
        app.close()
    assert first_send_after(tg, back) < 4.0
    assert caplog.text.count("not answering at start") == 1
    assert "Traceback" not in caplog.text


def test_refused_sends_do_not_count_toward_the_group_limit(config, tg):
    """Five 502s to a group, then three alerts under a limiter of 3 a minute: had the
    refused attempts counted, the group would wait a minute; they go within seconds."""
    tg.enforce_limits = True
    app = App.open(config, with_sources=False)
    clock_now = [datetime(2024, 12, 16, tzinfo=UTC)]
    try:
        notifier = TelegramNotifier(
            app, TOKEN, clock=lambda: clock_now[0],
            limiter=Limiter(per_chat_s=1.1, group_per_minute=3, per_second=28),
        )  # fmt: skip
        queue(app, ["tin 0", "tin 1", "tin 2"], [UNIT_CHAT])
        tg.fail_next("sendMessage", 5, 502, chat_id=UNIT_CHAT)
        started = time.monotonic()

        async def passes():
            await notifier.bot.initialize()
            try:
                while len(tg.texts(UNIT_CHAT)) < 3:
                    assert time.monotonic() - started < 20, tg.texts(UNIT_CHAT)
                    await notifier.send_due()
                    clock_now[0] += timedelta(minutes=10)  # every backoff expires
                    await asyncio.sleep(0.1)
            finally:
                await notifier.bot.shutdown()

        asyncio.run(passes())
    finally:
        app.close()
    refused = [c for c in tg.calls if c.method == "sendMessage" and c.status == 502]
    assert len(refused) == 5
    assert tg.texts(UNIT_CHAT) == ["tin 0", "tin 1", "tin 2"]
    assert tg.limit_violations == []
    assert time.monotonic() - started < 10


def test_a_note_about_a_broken_chat_goes_ahead_of_the_backlog(config, tg):
    """A chat is gone while the operators' chat has a backlog: their note comes next."""
    tg.block(GONE, "kicked")
    app = App.open(config, with_sources=False)
    try:
        edit_config(config, append=f"operators_chats = [{OPERATORS}]\n")  # under [telegram]
        app.close()
        app = App.open(config, with_sources=False)
        queue(app, ["cho nhóm đã mất"], [GONE])
        queue(app, [f"tồn {i}" for i in range(8)], [OPERATORS])
        notifier = TelegramNotifier(app, TOKEN, limiter=Limiter(**FAST))

        async def passes():
            await notifier.bot.initialize()
            try:
                while await notifier.send_due():
                    pass
            finally:
                await notifier.bot.shutdown()

        asyncio.run(passes())
    finally:
        app.close()
    texts = [t or "" for t in tg.texts(OPERATORS)]
    assert len(texts) == 9
    # The first backlog alert was already on its way in the pass that found the chat gone.
    assert texts[0] == "tồn 0" and texts[1].startswith("⚠️ Không gửi được cảnh báo tới nhóm")
    assert texts[2:] == [f"tồn {i}" for i in range(1, 8)]
