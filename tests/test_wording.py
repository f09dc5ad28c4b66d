"""Messages that read right: good news looks good, levels run to red, late deliveries say
so, observed alerts say when the water should go, road links, and the operators' digest.

Composition is tested on its own (pure); delivery against the fake Bot API.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from click.testing import CliRunner

from floodwatch.cli import main
from floodwatch.config import parse_settings
from floodwatch.core.depth import recession_step
from floodwatch.core.events import FORECAST, OBSERVED, Change, EventState
from floodwatch.core.geo import load_geodata
from floodwatch.core.readings import Kind, Reading, Variable
from floodwatch.core.text import LEVEL_TONES, level_mark, level_tone
from floodwatch.errors import ConfigError
from floodwatch.messages.alerts import Wording, compose, late_line
from floodwatch.messages.bulletin import html_to_plain
from floodwatch.messages.digest import compose_digest
from floodwatch.service.app import App
from floodwatch.service.replay import replay
from floodwatch.service.routing import road_alert_targets
from floodwatch.telegram.sender import Limiter, TelegramNotifier
from floodwatch.web.maps import level_class
from tests import test_telegram_delivery as delivery
from tests.conftest import ROOT, TEST_ROADS, edit_config
from tests.test_telegram_delivery import (
    AN_XUYEN,
    FAST,
    OPERATORS,
    SO_XAY_DUNG,
    TAN_THANH,
    TOKEN,
    Clock,
    alerts,
    deliveries,
    drain,
    replay_quietly,
)

# Fixtures: units with chats, operators, and the fake Bot API.
config, tg, ptb_timedelta = delivery.config, delivery.tg, delivery.ptb_timedelta

ICT = timezone(timedelta(hours=7))
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
AT = datetime(2024, 12, 16, 14, tzinfo=ICT)
LEVEL_NAMES = (
    "Ngập nhẹ: xe máy đi chậm được",
    "Ngập nửa bánh xe máy: hạn chế đi lại",
    "Ngập sâu: không nên đi qua",
)
UNITS = {"ubnd_an_xuyen": "UBND phường An Xuyên", "so_xay_dung": "Sở Xây dựng tỉnh Cà Mau"}


@pytest.fixture(scope="module")
def geodata():
    return load_geodata(TEST_ROADS, ROOT / "geodata" / "stations.geojson")


def wording(geodata, **kw) -> Wording:
    return Wording(geodata, UNITS, ZONE, LEVEL_NAMES, **kw)


def change(segment: str, alert: str, level: int = 1, depth_m: float = 0.15, unit: str = "",
           at: datetime = AT) -> Change:  # fmt: skip
    """A change of `segment` carrying `alert`, at `level` and `depth_m`."""
    kind = FORECAST if alert.startswith("forecast") else OBSERVED
    ev = EventState(
        segment_id=segment, unit=unit or "ubnd_an_xuyen", kind=kind, status="flooded",
        opened_at=at - timedelta(hours=2), level=0 if alert == "all_clear" else level,
        max_level=level, depth_m=depth_m, peak_depth_m=depth_m + 0.05,
        peak_at=at - timedelta(hours=1), causes=1,
        expected_onset_at=at + timedelta(hours=3) if kind == FORECAST else None,
    )  # fmt: skip
    return Change(ev, "x", at, "", alert=alert)


# --- good news looks like good news -------------------------------------------------------


def test_an_all_clear_has_its_own_green_header_and_marks(geodata):
    [message] = compose([change("tide-low", "all_clear", level=3)], wording(geodata), AT)
    first, *_ = message.body.splitlines()
    assert first == "🟢 <b>THÔNG BÁO HẾT NGẬP — UBND phường An Xuyên</b>"
    assert "CẢNH BÁO" not in message.body and "⚠️" not in message.body
    [line] = [x for x in message.body.splitlines() if "Đường thử triều thấp" in x]
    assert line.startswith("🟢 ") and "đã hết ngập" in line
    assert not {"🟡", "🟠", "🔴"} & set(message.body)  # no level colour on good news


def test_a_cancelled_forecast_alone_is_good_news_too(geodata):
    [message] = compose([change("tide-edge", "forecast_cancelled")], wording(geodata), AT)
    assert message.body.startswith("🟢 <b>THÔNG BÁO HUỶ DỰ BÁO NGẬP — ")
    assert "🟢 <b>Đường thử sát ngưỡng</b>" in message.body


def test_a_mixed_message_warns_and_keeps_its_all_clear_lines_green(geodata):
    changes = [
        change("tide-low", "all_clear", level=2),
        change("tide-mid", "onset", level=3, depth_m=0.55),
        change("tide-edge", "forecast", level=1),
    ]
    [message] = compose(changes, wording(geodata), AT)
    lines = message.body.splitlines()
    assert lines[0] == "⚠️ <b>CẢNH BÁO NGẬP ĐƯỜNG — UBND phường An Xuyên</b>"
    heads = [x for x in lines if x.startswith("<b>") and x.endswith(":</b>")]
    assert heads == ["<b>BẮT ĐẦU NGẬP:</b>", "<b>HẾT NGẬP:</b>", "<b>DỰ BÁO NGẬP:</b>"]
    by_road = {name: x for x in lines for name in ("triều thấp", "triều vừa", "sát ngưỡng")
               if f"Đường thử {name}" in x}  # fmt: skip
    assert by_road["triều vừa"].startswith("🔴 ")  # level 3 of 3
    assert by_road["triều thấp"].startswith("🟢 ")  # the all clear
    assert by_road["sát ngưỡng"].startswith("🟡 ")  # forecast, level 1


# --- level colours: yellow to red, the deepest red -----------------------------------------


@pytest.mark.parametrize(
    ("levels", "marks"),
    [(1, "🔴"), (2, "🟡🔴"), (3, "🟡🟠🔴"), (4, "🟡🟠🟠🔴"), (6, "🟡🟡🟠🟠🔴🔴")],
)
def test_level_marks_run_from_yellow_to_red(levels, marks):
    assert "".join(level_mark(k, levels) for k in range(1, levels + 1)) == marks
    assert level_mark(0, levels) == "🟢"


def test_the_colour_rule_holds_for_every_allowed_number_of_levels():
    for levels in range(1, 11):
        tones = [LEVEL_TONES.index(level_tone(k, levels)) for k in range(1, levels + 1)]
        assert tones == sorted(tones), levels  # never lighter when deeper
        assert tones[-1] == 2, levels  # the deepest is red
        if levels >= 2:
            assert tones[0] == 0, levels  # the shallowest is yellow
        if levels >= 3:
            assert 1 in tones, levels  # orange between them


@pytest.mark.parametrize("levels", [2, 3, 6])
def test_messages_and_the_web_map_share_the_colours(geodata, levels):
    names = [f"Mức thử {k}" for k in range(1, levels + 1)]
    words = Wording(geodata, UNITS, ZONE, names)
    deepest = change("tide-low", "onset", level=levels, depth_m=0.6)
    [message] = compose([deepest], words, AT)
    assert "🔴 <b>Đường thử triều thấp</b>" in message.body
    marks = {"yellow": "🟡", "orange": "🟠", "red": "🔴"}
    for k in range(1, levels + 1):
        tone = level_class(k, levels).split("tone-")[1]
        assert marks[tone] == level_mark(k, levels)
    css = (ROOT / "floodwatch" / "web" / "static" / "style.css").read_text(encoding="utf-8")
    for tone in marks:
        assert f"svg .seg.tone-{tone} {{ stroke:" in css and f".swatch.tone-{tone} {{" in css


# --- the expected recession ------------------------------------------------------------------


def test_recession_step_is_the_first_dry_known_step_or_nothing():
    level = np.array([0, 1, 2, 2, 1, 0, 0], dtype=np.int8)
    assert recession_step(level, 1, 7) == 5
    assert recession_step(level, 1, 5) is None  # the dry step is beyond what is known
    assert recession_step(level, 0, 7) is None  # the model does not see water now
    assert recession_step(np.array([1, 1, 1]), 0, 3) is None  # wet to the horizon


def test_observed_lines_say_when_the_water_should_go(geodata):
    changes = [
        change("tide-low", "onset", level=2, depth_m=0.35),
        change("tide-mid", "reminder", level=1),
        change("tide-edge", "forecast", level=1),
        change("rain-only", "all_clear", level=1),
    ]
    recession = {"tide-low": datetime(2024, 12, 16, 21, tzinfo=ICT), "tide-mid": None}
    [message] = compose(changes, wording(geodata, recession=recession), AT)
    lines = {x.split("Đường thử ")[1].split("<")[0]: x for x in message.body.splitlines()
             if "Đường thử " in x}  # fmt: skip
    assert (
        "đang ngập 35 cm (mức 2), do triều cường. Dự kiến rút lúc ~21:00 16/12."
        in (lines["triều thấp"])
    )
    assert "Chưa dự báo được thời gian rút." in lines["triều vừa"]  # the forecast does not say
    assert "rút" not in lines["sát ngưỡng"] and "rút" not in lines["ngập mưa"]


def test_road_names_link_to_their_page_when_the_web_is_public(geodata):
    words = wording(geodata, public_url="https://ngap.camau.gov.vn/fw")
    [message] = compose([change("tide-low", "onset")], words, AT)
    link = '<a href="https://ngap.camau.gov.vn/fw/roads/tide-low"><b>Đường thử triều thấp</b></a>'
    assert f"{link} (Phường An Xuyên)" in message.body
    assert "Đường thử triều thấp (https://ngap.camau.gov.vn/fw/roads/tide-low)" in html_to_plain(
        message.body
    )  # the console and the plain-text fallback keep the address
    assert words.road_url("a b/ç") == "https://ngap.camau.gov.vn/fw/roads/a%20b%2F%C3%A7"
    [plain] = compose([change("tide-low", "onset")], wording(geodata), AT)
    assert "<a " not in plain.body and "http" not in plain.body


def test_public_url_must_be_an_http_address(tmp_path):
    ok = parse_settings({"web": {"public_url": "https://ngap.camau.gov.vn/"}})
    assert ok.web.public_url == "https://ngap.camau.gov.vn"
    assert parse_settings({}).web.public_url is None
    for bad in ("ngap.camau.gov.vn", "ftp://x.vn", "https://x.vn/?a=1", "https://x.vn/#m"):
        with pytest.raises(ConfigError) as info:
            parse_settings({"web": {"public_url": bad}})
        [line] = info.value.problems
        assert line.startswith("<config>: web.public_url: ") and "http(s)" in line


def test_check_names_a_bad_public_url_in_one_line(project):
    edit_config(project, {'[web]\ntiles = "none"\n': '[web]\ntiles = "none"\npublic_url = "www"\n'})
    result = CliRunner().invoke(main, ["--config", str(project), "check"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    [line] = [x for x in result.output.splitlines() if "public_url" in x]
    assert "'www' is not an http(s) address of the web" in line


# --- late deliveries --------------------------------------------------------------------------


def test_the_late_line_says_how_late_and_when_it_happened():
    event = datetime(2024, 12, 16, 14, 5, tzinfo=ICT)
    quarter = timedelta(minutes=15)
    assert late_line(event, event + quarter, ZONE, quarter) is None
    assert late_line(event, event + timedelta(hours=2, minutes=10), ZONE, quarter) == (
        "⏱ <b>Gửi trễ 2 giờ 10 phút</b> (sự kiện lúc 14:05)"
    )
    next_day = late_line(event, event + timedelta(hours=11), ZONE, quarter)
    assert next_day == "⏱ <b>Gửi trễ 11 giờ</b> (sự kiện lúc 16/12/2024 14:05)"


# --- the operators' digest ---------------------------------------------------------------------


def test_the_digest_counts_per_unit_and_level_and_names_the_deepest(geodata):
    changes = [
        change("tide-low", "onset", level=3, depth_m=0.55),
        change("tide-mid", "level_up", level=2, depth_m=0.32),
        change("tide-edge", "all_clear", level=1),
        change("rain-only", "onset", level=1, depth_m=0.2, unit="so_xay_dung"),
        change("high-dry", "forecast", level=1, unit="so_xay_dung"),
    ]
    words = wording(geodata, public_url="https://ngap.camau.gov.vn")
    units = compose(changes, words, AT, targets=lambda unit: [(-1, None)])
    digest = compose_digest(units, words, AT, "operators", [(OPERATORS, None)])
    body = digest.body
    assert digest.kinds == ("digest",) and digest.targets == ((OPERATORS, None),)
    assert body.startswith("📋 <b>TỔNG HỢP CẢNH BÁO NGẬP ĐƯỜNG</b>\n")
    assert "Thời điểm: 16/12/2024 14:00 · 2 đơn vị, 5 đoạn đường" in body
    assert (
        "<b>UBND phường An Xuyên</b> (3 đoạn): bắt đầu ngập 1, ngập sâu thêm 1, hết ngập 1"
        " · đang ngập 🔴 mức 3: 1, 🟠 mức 2: 1"
    ) in body
    assert "<b>Sở Xây dựng tỉnh Cà Mau</b> (2 đoạn): bắt đầu ngập 1, dự báo ngập 1" in body
    worst = body[body.index("<b>Sâu nhất:</b>") :].splitlines()[1:5]
    assert [x.split("</b>")[0].rsplit(">", 1)[1] for x in worst] == [
        "Đường thử triều thấp", "Đường thử triều vừa", "Đường thử ngập mưa", "Đường thử cao ráo",
    ]  # fmt: skip
    assert worst[0].startswith('🔴 <a href="https://ngap.camau.gov.vn/roads/tide-low">')
    assert "Bản đồ: https://ngap.camau.gov.vn/" in body
    assert digest.event_at == AT and len(digest.changes) == 5


def test_the_digest_leaves_muted_units_out_and_good_news_is_green(geodata):
    words = wording(geodata)
    quiet = compose([change("tide-low", "onset")], words, AT, muted=lambda u, s: True)
    assert compose_digest(quiet, words, AT, "operators", [(OPERATORS, None)]) is None
    good = compose([change("tide-low", "all_clear")], words, AT)
    digest = compose_digest(good, words, AT, "operators", [(OPERATORS, None)])
    assert digest.body.startswith("🟢 <b>TỔNG HỢP: HẾT NGẬP ĐƯỜNG</b>")


def test_road_alerts_reach_the_operators_as_configured():
    units = [{"id": "a", "name": "A", "telegram_chats": [-1]}, {"id": "b", "name": "B"}]

    def chats(copy: str, unit: str) -> list[int]:
        settings = parse_settings(
            {"units": units, "telegram": {"operators_chats": [-9], "operators_copy": copy}}
        )
        return [t.chat_id for t in road_alert_targets(settings, unit)]

    assert chats("digest", "a") == [-1] and chats("none", "a") == [-1]
    assert chats("full", "a") == [-1, -9]
    # A unit without a chat of its own: the operators read it in full, whatever the setting.
    assert chats("digest", "b") == chats("none", "b") == chats("full", "b") == [-9]


# --- against the fake Bot API ------------------------------------------------------------------


def operators_messages(config, tg, copy: str) -> tuple[int, int, list[str]]:
    """(texts, photos, texts) the operators' chat got for the replayed spring tide."""
    edit_config(config, {"timeout_s = 2\n": f'timeout_s = 2\noperators_copy = "{copy}"\n'})
    replay_quietly(config)
    app = App.open(config, with_sources=False)
    try:
        drain(TelegramNotifier(app, TOKEN, limiter=Limiter(**FAST), mark_late=False))
    finally:
        app.close()
    calls = tg.messages(OPERATORS)
    texts = [c.text for c in calls if c.method == "sendMessage"]
    return len(texts), sum(c.has_photo for c in calls), texts


def test_operators_get_one_digest_per_cycle_instead_of_every_copy(config, tg):
    texts, photos, bodies = operators_messages(config, tg, "digest")
    # The same 3-day spring tide gave the operators 17 texts and 7 charts with full copies
    # (test_operators_can_still_take_full_copies): now one digest per cycle with alerts.
    assert (texts, photos) == (13, 0)
    titles = ("📋 <b>TỔNG HỢP CẢNH BÁO", "🟢 <b>TỔNG HỢP: HẾT NGẬP")
    assert all(b.startswith(titles) for b in bodies)
    assert "3 đơn vị, 4 đoạn đường" in bodies[1]  # one message for three units' alerts
    for unit_chat in (AN_XUYEN, SO_XAY_DUNG, TAN_THANH):  # units still get theirs in full
        assert not any("TỔNG HỢP" in (t or "") for t in tg.texts(unit_chat))


def test_operators_can_still_take_full_copies(config, tg):
    texts, photos, bodies = operators_messages(config, tg, "full")
    assert (texts, photos) == (17, 7)
    assert not any("TỔNG HỢP" in b for b in bodies)


def test_operators_can_take_no_copy(config, tg):
    assert operators_messages(config, tg, "none")[:2] == (0, 0)


def level_readings(levels: dict[int, float], issued_hour: int | None = None) -> list[Reading]:
    """TP Cà Mau levels (and no rain) at these hours of 16/12/2024, observed or forecast."""
    kind = Kind.OBSERVED if issued_hour is None else Kind.FORECAST
    issued = None if issued_hour is None else datetime(2024, 12, 16, issued_hour, tzinfo=ICT)
    out = []
    for hour, value in levels.items():
        when = (datetime(2024, 12, 16, tzinfo=ICT) + timedelta(hours=hour)).astimezone(UTC)
        for variable, v in ((Variable.WATER_LEVEL, value), (Variable.RAINFALL, 0.0)):
            out.append(Reading("tp_ca_mau", variable, when, v, kind, issued and issued))
    return out


def texts_to(server, chat: int) -> list[str]:
    """The text messages (not the charts' captions) a chat received."""
    return [c.text for c in server.messages(chat) if c.method == "sendMessage"]


RISING = {8: 0.60, 9: 0.65, 10: 0.70, 11: 0.75, 12: 0.80, 13: 0.88, 14: 0.95}


@pytest.mark.parametrize(
    ("forecast", "said"),
    [
        ({15: 0.97, 16: 0.93, 17: 0.85, 18: 0.75, 19: 0.70}, "Dự kiến rút lúc ~17:00 16/12."),
        ({15: 0.97, 16: 0.93}, "Chưa dự báo được thời gian rút."),  # ends still wet
        ({}, "Chưa dự báo được thời gian rút."),  # no forecast at all
    ],
)
def test_an_onset_gives_the_forecast_recession_or_says_it_is_unknown(config, forecast, said):
    app = App.open(config, with_sources=False)
    try:
        replay(app, level_readings(RISING) + level_readings(forecast, issued_hour=14))
        onsets = [a for a in alerts(app).values() if "onset" in a.kinds]
    finally:
        app.close()
    [onset] = onsets
    assert "<b>Đường thử triều thấp</b> (Phường An Xuyên): đang ngập 13 cm (mức 1), do triều" in (
        onset.body
    )
    assert said in onset.body


def test_an_onset_committed_after_an_outage_says_how_late(config, tg):
    """Cycles stopped from 12:00 (the database was away); the one at 16:15 finds the road
    flooded since 14:00 and every copy says it is 2 h 15 min late, the ack edit too."""
    app = App.open(config, with_sources=False)
    resumed = datetime(2024, 12, 16, 16, 15, tzinfo=ICT)
    try:
        replay(app, level_readings({h: v for h, v in RISING.items() if h <= 12}))
        later = level_readings({13: 0.88, 14: 0.95, 15: 0.97, 16: 0.96})
        app.pipeline.ingest_checked(later, resumed, "gauge")
        app.pipeline.cycle(resumed)
        notifier = TelegramNotifier(app, TOKEN, clock=Clock(resumed), limiter=Limiter(**FAST))
        drain(notifier)
        mark = "⏱ <b>Gửi trễ 2 giờ 15 phút</b> (sự kiện lúc 14:00)\n"
        [onset] = [c for c in tg.messages(AN_XUYEN) if "BẮT ĐẦU NGẬP" in (c.text or "")]
        assert onset.text.startswith(mark + "⚠️ <b>CẢNH BÁO NGẬP ĐƯỜNG")
        assert "đang ngập 13 cm lúc 14:00 (mức 1)" in onset.text
        [digest] = texts_to(tg, OPERATORS)
        assert digest.startswith(mark + "📋 <b>TỔNG HỢP")

        async def press():
            from telegram import Update

            await notifier.bot.initialize()
            data = onset.reply_markup["inline_keyboard"][0][0]["callback_data"]
            update = Update.de_json(tg.push_callback(AN_XUYEN, 77, onset.message_id, data),
                                    notifier.bot)  # fmt: skip
            await notifier.on_callback(update, None)
            await notifier.bot.shutdown()

        asyncio.run(press())
        edited = tg.current(AN_XUYEN, onset.message_id)["text"]
        assert edited.startswith("⏱ Gửi trễ 2 giờ 15 phút") and "✅ Đã nhận:" in edited
    finally:
        app.close()


def test_a_delivery_held_up_by_telegram_says_how_late(config, tg):
    """Telegram answers 502 from 14:00 to 14:40: the 14:00 onset goes out marked 40 minutes
    late; the 15:00 level-up, sent at 15:05, is on time and unmarked."""
    app = App.open(config, with_sources=False)
    onset_at = datetime(2024, 12, 16, 14, tzinfo=ICT)
    clock = Clock(onset_at + timedelta(seconds=30))
    try:
        replay(app, level_readings(RISING))
        notifier = TelegramNotifier(app, TOKEN, clock=clock, limiter=Limiter(**FAST))
        drain(notifier, passes=2, then=lambda: tg.down(502))
        assert all(d.status == "pending" for d in deliveries(app))
        tg.up()
        clock.now = onset_at + timedelta(minutes=40)
        drain(notifier)
        [late] = texts_to(tg, AN_XUYEN)
        assert late.startswith("⏱ <b>Gửi trễ 40 phút</b> (sự kiện lúc 14:00)\n⚠️ <b>CẢNH BÁO")
        replay(app, level_readings({15: 1.15}))  # 33 cm: level 2
        clock.now = onset_at + timedelta(hours=1, minutes=5)
        drain(notifier)
        [_, on_time] = texts_to(tg, AN_XUYEN)
        assert on_time.startswith("⚠️ <b>CẢNH BÁO NGẬP ĐƯỜNG") and "NGẬP SÂU THÊM" in on_time
        assert all(d.status == "sent" for d in deliveries(app))
    finally:
        app.close()
