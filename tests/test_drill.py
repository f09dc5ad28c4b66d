"""`floodwatch drill`: the shipped drill file through the real PTB client and a fake Bot API,
every message marked, the live database untouched, the operators' summary printed."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import PIPE, Popen

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select

from floodwatch.cli import main
from floodwatch.db.models import AlertRow, CycleRow, DeliveryRow, EventRow
from floodwatch.messages.drill import MARK_TEXT
from floodwatch.service.app import App
from tests.conftest import DATA, ROOT, edit_config, on_database
from tests.fake_telegram import FakeTelegram, parse_html

TOKEN = "123456:TEST-TOKEN"
DRILL = ROOT / "drills" / "dec2024.csv"
AN_XUYEN, TAN_THANH, QL1, NAM_CAN, SONG_DOC = -1001, -1003, -1005, -1006, -1007
OPERATORS = -1009


@pytest.fixture(autouse=True)
def ptb_timedelta(monkeypatch):
    """Opt in to PTB's timedelta periods (RetryAfter.retry_after)."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def tg():
    with FakeTelegram(timeout_s=1.0) as server:
        server.enforce_limits = True  # Telegram's flood limits: a drill's 429s are retried
        yield server


def with_chats(config: Path, tg: FakeTelegram, chats: dict[str, int], **telegram) -> Path:
    """The shipped config with these units' chats, pointed at the fake Bot API."""
    lines = "".join(f"{key} = {value}\n" for key, value in telegram.items())
    return edit_config(
        config,
        units={unit: f"telegram_chats = [{chat}]" for unit, chat in chats.items()},
        append=f'[telegram]\nbase_url = "{tg.url}/bot"\ntimeout_s = 2\n{lines}',
    )


def live_url(config: Path) -> str:
    """The config's (live) database URL."""
    for line in config.read_text(encoding="utf-8").splitlines():
        if line.startswith("database_url = "):
            return line.split('"')[1]
    raise AssertionError("no database_url")


def live_snapshot(config: Path) -> tuple:
    """Row counts of the live database's log and outbox, and its file's hash (SQLite)."""
    url = live_url(config)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            counts = tuple(
                conn.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (CycleRow, EventRow, AlertRow, DeliveryRow)
            )
    finally:
        engine.dispose()
    path = url.removeprefix("sqlite:///")
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest() if url.startswith("sqlite") else ""
    return counts, digest


def run_drill(config: Path, *args: str, token: str | None = TOKEN, timeout_s: float = 240):
    """`floodwatch drill` as its own process; returns the completed process."""
    return subprocess.run(
        drill_command(config, *args), env=drill_env(token), cwd=os.getcwd(),
        capture_output=True, text=True, timeout=timeout_s,
    )  # fmt: skip


def drill_command(config: Path, *args: str) -> list[str]:
    """The drill's command line."""
    return [sys.executable, "-m", "floodwatch", "--config", str(config), "drill", *args]


def drill_env(token: str | None) -> dict[str, str]:
    """The environment of a drill process (with the fake's token, or none)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOODWATCH_")}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", PTB_TIMEDELTA="true")
    if token is not None:
        env["FLOODWATCH_TELEGRAM_TOKEN"] = token
    return env


def drill_databases(config: Path) -> list[Path]:
    """The drill files made beside the live SQLite database (in var/ when it is not one)."""
    url = live_url(config)
    sqlite = url.startswith("sqlite:")
    folder = Path(url.removeprefix("sqlite:///")).parent if sqlite else Path("var")
    return sorted(folder.glob("drill-*.db"))


def replay_live(config: Path) -> None:
    """The live database with a history of its own (the test spring tide)."""
    result = CliRunner().invoke(
        main,
        [
            "--config",
            str(config),
            "replay",
            "--quiet",
            str(DATA / "replay" / "spring_tide_dec2024.csv"),
        ],
    )
    assert result.exit_code == 0, result.output


def first_lines(tg: FakeTelegram, chat: int) -> list[str]:
    """The first line of every message (text or caption) a chat received, as people see it."""
    return [
        (parse_html(c.text) if c.parse_mode == "HTML" else c.text or "").split("\n", 1)[0]
        for c in tg.messages(chat)
    ]


def test_shipped_drill_file_is_small_and_covers_every_station_the_roads_use():
    assert DRILL.stat().st_size < 300_000
    header, *rows = DRILL.read_text(encoding="utf-8").splitlines()
    assert header == "time,station,variable,value,kind"
    used = {(r.split(",")[1], r.split(",")[2]) for r in rows}
    from floodwatch.service.app import load_checked

    _, shipped = load_checked(ROOT / "config" / "floodwatch.toml")
    needed = {(s.tide_station, "water_level") for s in shipped.segments} | {
        (s.rain_station, "rainfall") for s in shipped.segments
    }
    assert needed <= used
    # The generator writes the file as shipped.
    out = subprocess.run([sys.executable, str(ROOT / "drills" / "make_dec2024.py"), "--check"],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr


def test_drill_reaches_the_chats_marked_and_leaves_the_live_database_alone(project, tg):
    config = with_chats(
        project,
        tg,
        {"ubnd_an_xuyen": AN_XUYEN, "ubnd_tan_thanh": TAN_THANH, "ql1_quan_ly": QL1,
         "ubnd_nam_can": NAM_CAN, "ubnd_song_doc": SONG_DOC},
        hydrographs="false",
    )  # fmt: skip
    replay_live(config)
    before = live_snapshot(config)
    done = run_drill(config, str(DRILL))
    assert done.returncode == 0, done.stderr
    assert live_snapshot(config) == before  # not a row, not a byte of the live database
    # Every unit with a chat heard about its roads; every message starts with the mark.
    for chat in (AN_XUYEN, TAN_THANH, QL1, NAM_CAN, SONG_DOC):
        lines = first_lines(tg, chat)
        assert len(lines) >= 5, (chat, lines)  # its alerts and the four daily bulletins
        assert all(line == MARK_TEXT for line in lines), (chat, lines)
    texts = [c.text for chat in (QL1,) for c in tg.messages(chat)]
    assert any("BẮT ĐẦU NGẬP" in t and "Quốc lộ 1" in t for t in texts)
    assert sum("TIN CẢNH BÁO NGẬP LỤT DO TRIỀU CƯỜNG" in t for t in texts) == 4
    # Buttons are the drill's own: a live service never takes them for its alerts.
    buttons = [c.reply_markup for c in tg.sent if c.reply_markup]
    assert buttons and all(
        b["inline_keyboard"][0][0]["callback_data"].startswith("drill-ack:") for b in buttons
    )
    # The summary: what went to whom, and the units nobody could reach.
    out = done.stdout
    assert "TỔNG KẾT DIỄN TẬP" in out and "Gửi bằng: Telegram" in out
    row = next(line for line in out.splitlines() if line.strip().startswith(str(QL1)))
    assert "Đơn vị quản lý, bảo trì Quốc lộ 1" in row
    sent_to_ql1 = len(tg.messages(QL1))
    assert row.split()[-5:] == [str(sent_to_ql1), str(sent_to_ql1), str(sent_to_ql1), "0", "0"]
    assert "Sở Xây dựng tỉnh Cà Mau: 2 tin — đơn vị chưa có nhóm Telegram riêng" in out
    assert "drill: cycle 97/97" in done.stderr  # progress on stderr
    # The drill database is marked; its CAP feed is an exercise.
    [drill_db] = drill_databases(config)
    cap = CliRunner().invoke(
        main, ["--config", str(config), "export", "cap", "--since", "2024-12-01"],
        env={"FLOODWATCH_DATABASE_URL": f"sqlite:///{drill_db}"},
    )  # fmt: skip
    assert cap.exit_code == 0, cap.output
    assert "<status>Exercise</status>" in cap.stdout and "<status>Actual" not in cap.stdout
    refused = CliRunner().invoke(
        main, ["--config", str(config), "export", "cap", "--status", "Actual"],
        env={"FLOODWATCH_DATABASE_URL": f"sqlite:///{drill_db}"},
    )  # fmt: skip
    assert refused.exit_code == 1 and "drill database" in refused.output


def wait_for(condition, proc: Popen, seconds: float = 90) -> None:
    """Poll until true; fail with the process output if it ends or time runs out."""
    deadline = time.monotonic() + seconds
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(proc.communicate())
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_wait_ack_records_the_press_and_reports_who_and_how_fast(project, tg):
    config = with_chats(project, tg, {"ubnd_song_doc": SONG_DOC})
    proc = Popen(
        drill_command(config, str(DRILL), "--wait-ack", "3"),
        env=drill_env(TOKEN), cwd=os.getcwd(), stdout=PIPE, stderr=PIPE, text=True,
    )  # fmt: skip
    try:

        def onset():
            return next((c for c in tg.messages(SONG_DOC) if c.reply_markup), None)

        wait_for(lambda: onset() is not None, proc)
        call = onset()
        data = call.reply_markup["inline_keyboard"][0][0]["callback_data"]
        alert_id = int(data.removeprefix("drill-ack:"))
        # A live alert's button pressed while the drill reads the updates: handed back.
        tg.push_callback(SONG_DOC, 41, call.message_id, f"ack:{alert_id}", username="le_c")
        time.sleep(1.5)
        tg.push_callback(SONG_DOC, 42, call.message_id, data, username="nguyen_a")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    answers = [c.params.get("text") for c in tg.calls if c.method == "answerCallbackQuery"]
    assert any("bấm lại" in (a or "") for a in answers)  # the live press, handed back
    assert "Đã ghi nhận. Cảm ơn!" in answers
    edited = tg.current(SONG_DOC, call.message_id)["text"]
    assert edited.startswith(MARK_TEXT) and "Đã nhận: nguyen_a" in edited
    # Charts of a drill are drawn at the alert's own time, and marked.
    photos = [c for c in tg.messages(SONG_DOC) if c.has_photo]
    assert photos and all(c.text.startswith("📣 DIỄN TẬP — Mực nước trạm") for c in photos)
    assert 'Xác nhận "Đã nhận": 1/1 tin cần xác nhận đã tới nhóm; ' in out
    [line] = [ln for ln in out.splitlines() if f"tin #{alert_id} " in ln]
    assert "UBND xã Sông Đốc" in line and "nguyen_a lúc" in line and ", sau " in line


def test_telegram_down_gives_up_at_the_timeout_with_the_summary(project, tg):
    config = with_chats(project, tg, {"ubnd_song_doc": SONG_DOC})
    tg.down()
    done = run_drill(config, str(DRILL), "--timeout", "0.1")
    assert done.returncode == 1
    row = next(ln for ln in done.stdout.splitlines() if ln.strip().startswith(str(SONG_DOC)))
    assert row.split()[-5:] == ["7", "0", "0", "0", "7"]  # 7 alerts, nothing sent, 7 waiting
    last = done.stderr.splitlines()[-1]
    assert last.startswith("error: 7 deliveries still pending after --timeout 0.1 min")
    assert not tg.sent


def test_drill_refuses_the_live_database(project, tmp_path):
    url = live_url(project)
    same_file = "sqlite:///" + os.path.relpath(url.removeprefix("sqlite:///"), os.getcwd())
    if not url.startswith("sqlite"):
        pytest.skip("the same-file spelling is SQLite's")
    for db in (url, same_file, url + "?timeout=5"):
        result = CliRunner().invoke(
            main, ["--config", str(project), "drill", str(DRILL), "--db", db]
        )
        assert result.exit_code == 1
        [line] = result.output.splitlines()
        assert line.startswith("error: --db ") and "is the live database" in line
    assert not Path(url.removeprefix("sqlite:///")).exists()  # not even opened
    assert not drill_databases(project)


def test_drill_refuses_a_database_that_was_used(project, tmp_path):
    used = tmp_path / "used.db"
    on_database(project, f"sqlite:///{used}", copy=project.parent / "used.toml")
    replay_live(project.parent / "used.toml")  # a database with a history of its own
    result = CliRunner().invoke(
        main, ["--config", str(project), "drill", str(DRILL), "--db", f"sqlite:///{used}"]
    )
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert "already holds" in line and "empty database" in line


def test_bad_csv_is_one_line_and_nothing_is_made(project, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("when,where,what\n2024-12-16T00:00+07:00,tp_ca_mau,1\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(project), "drill", str(bad)])
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith("error: ") and "missing column(s) time, station, variable, value" in line
    # A file with one bad row: that row named, the drill not run.
    rows = DRILL.read_text(encoding="utf-8").splitlines()
    rows[2] = rows[2].replace("tp_ca_mau", "tp_ca_muu")
    bad.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["--config", str(project), "drill", str(bad)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"rejected: {bad}: line 3: unknown station 'tp_ca_muu'",
        f"error: {bad}: 1 rows rejected; fix them and run the drill again (nothing was sent)",
    ]
    assert not drill_databases(project)


def test_without_a_token_the_drill_prints_marked_messages(project):
    live = Path(live_url(project).removeprefix("sqlite:///"))
    result = CliRunner().invoke(main, ["--config", str(project), "drill", str(DRILL)])
    assert result.exit_code == 0, result.output
    blocks = result.stdout.split("── alert #")[1:]
    assert len(blocks) > 20
    assert all(block.split("\n")[1] == MARK_TEXT for block in blocks)
    assert "Gửi bằng: in ra màn hình" in result.stdout
    assert "(chỉ ghi nhận được qua Telegram)" in result.stdout
    assert not live.exists()  # never even opened


def test_live_service_answers_a_drill_press_and_records_nothing(project, tg):
    from floodwatch.db.outbox import NewAlert
    from floodwatch.telegram.sender import DRILL_PRESS_VI, TelegramNotifier

    config = with_chats(project, tg, {"ubnd_an_xuyen": AN_XUYEN})
    app = App.open(config, with_sources=False)
    try:
        [alert_id] = app.store.outbox.add(
            [NewAlert(datetime(2024, 12, 16, tzinfo=UTC), "ubnd_an_xuyen", ["onset"], "tin",
                      [(AN_XUYEN, None)])]
        )  # fmt: skip
        notifier = TelegramNotifier(app, TOKEN)

        async def press():
            from telegram import Update

            await notifier.bot.initialize()
            update = Update.de_json(
                tg.push_callback(AN_XUYEN, 7, 1, f"drill-ack:{alert_id}", username="x"),
                notifier.bot,
            )
            await notifier.on_callback(update, None)
            await notifier.bot.shutdown()

        asyncio.run(press())
        assert app.store.outbox.alert(alert_id).ack_at is None
        [answer] = [c for c in tg.calls if c.method == "answerCallbackQuery"]
        assert answer.params["text"] == DRILL_PRESS_VI
    finally:
        app.close()


def test_bulletin_times_cross_each_local_morning_once():
    from zoneinfo import ZoneInfo

    from floodwatch.service.drill import bulletin_times

    zone = ZoneInfo("Asia/Ho_Chi_Minh")
    start = datetime(2024, 12, 13, 17, tzinfo=UTC)  # 14/12 00:00 local
    steps = [start + timedelta(hours=h) for h in range(0, 97)]
    found, last = [], None
    for at in steps:
        found += bulletin_times(last, at, "06:00", zone)
        last = at
    assert [t.astimezone(zone).strftime("%d %H:%M") for t in found] == [
        "14 06:00", "15 06:00", "16 06:00", "17 06:00"
    ]  # fmt: skip
    assert bulletin_times(None, start, "", zone) == []


def test_drill_help_has_an_example():
    result = CliRunner().invoke(main, ["drill", "--help"])
    assert result.exit_code == 0
    assert "floodwatch drill drills/dec2024.csv --wait-ack 30" in result.output


def test_long_messages_are_marked_in_every_part_within_the_limit():
    from floodwatch.messages.bulletin import TELEGRAM_LIMIT
    from floodwatch.messages.drill import MARK_HTML, drill_parts

    body = "\n".join(f"<b>Đường số {n}</b>: đang ngập 35 cm 🟡" for n in range(400))
    parts = drill_parts(body)
    assert len(parts) > 3
    for part in parts:
        assert part.startswith(MARK_HTML + "\n")
        assert len(part.encode("utf-16-le")) // 2 <= TELEGRAM_LIMIT
        parse_html(part)  # balanced: Telegram would take it


def test_escalation_of_a_drill_alert_is_marked_and_acknowledges_the_original(project, tg):
    from floodwatch.db.outbox import NewAlert
    from floodwatch.service.drill import open_drill, prepare
    from floodwatch.telegram.drill import DrillNotifier
    from floodwatch.telegram.sender import Limiter
    from tests.test_telegram_delivery import FAST, Clock, drain

    config = with_chats(project, tg, {"ubnd_song_doc": SONG_DOC}, operators_chats=f"[{OPERATORS}]")
    edit_config(config, units={"ubnd_song_doc": 'escalate_to = "operators"'})
    app = open_drill(prepare(config, DRILL, None), "test")
    try:
        simulated = datetime(2024, 12, 16, 8, tzinfo=UTC)
        [original] = app.store.outbox.add(
            [NewAlert(simulated, "ubnd_song_doc", ["onset"], "<b>BẮT ĐẦU NGẬP</b>",
                      [(SONG_DOC, None)])]
        )  # fmt: skip
        clock = Clock(datetime.now(UTC))
        notifier = DrillNotifier(app, TOKEN, read_updates=False, clock=clock,
                                 limiter=Limiter(**FAST))  # fmt: skip
        drain(notifier)
        clock.now += timedelta(minutes=31)
        assert asyncio.run(notifier.escalate_due()) == 1
        drain(notifier)
        [escalated] = tg.messages(OPERATORS)
        assert first_lines(tg, OPERATORS) == [MARK_TEXT]
        assert "CHƯA CÓ XÁC NHẬN" in escalated.text
        button = escalated.reply_markup["inline_keyboard"][0][0]["callback_data"]
        assert button == f"drill-ack:{original}"
        copy = next(a for a in app.store.drills.copies() if a.escalation_of == original)
        assert notifier.alert_time(app.store.outbox.alert(copy.alert_id)) == simulated
    finally:
        app.close()
