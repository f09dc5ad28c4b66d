"""Telegram bot commands: /start, /help, /status, /tide, /report, /mute (replies in Vietnamese).

Commands are accepted only from the chats the config names and from
`[telegram] allowed_users`; anyone else gets a polite refusal showing the ids
an administrator needs. Database work runs in a worker thread so the bot's
event loop never blocks on it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from typing import TYPE_CHECKING

from telegram import Message, Update
from telegram.constants import ChatType, ParseMode
from telegram.ext import Application, CommandHandler, ContextTypes, MessageHandler, filters

from floodwatch.core.known import Unknown
from floodwatch.core.text import (
    centimetres,
    fold,
    label,
    level_mark,
    local_time,
    metres,
)
from floodwatch.service.cycle import utcnow
from floodwatch.service.outlook import (
    alarm_reached,
    match_segments,
    mute_target,
    next_high_waters,
    unit_roads,
)
from floodwatch.service.polling import health_view
from floodwatch.service.routing import known_chats, unit_of_chat

if TYPE_CHECKING:  # the service imports the telegram side, not the other way
    from floodwatch.service.app import App

logger = logging.getLogger(__name__)

MAX_DEPTH_CM = 300
MAX_MUTE_HOURS = 168
MAX_ROADS = 25  # per section of /status, to stay well inside one message
MAX_CANDIDATES = 5
# A number of centimetres or hours: "35", "35cm", "12,5".
NUMBER = re.compile(r"\d+(?:[.,]\d+)?(?:cm)?", re.IGNORECASE)
# Words in many road names that say nothing about which road is meant.
COMMON_WORDS = {"duong", "quoc", "doan", "qua", "phuong", "song", "ven"}
REPORT_CAPTION = re.compile(r"^/report(?:@\w+)?(?:\s|$)", re.IGNORECASE)

HELP = """<b>Bot cảnh báo ngập đường Cà Mau</b>
Các lệnh:
/status — các tuyến đường đang ngập và dự kiến ngập của đơn vị
  Ví dụ: <code>/status</code>
/tide — các đỉnh triều sắp tới tại từng trạm
  Ví dụ: <code>/tide</code>
/report &lt;đường&gt; &lt;độ sâu cm&gt; [ghi chú] — báo cáo ngập tại hiện trường \
(có thể gửi kèm ảnh, ghi lệnh vào chú thích ảnh)
  Ví dụ: <code>/report Phan Ngoc Hien 35 nước ngập nửa bánh xe</code>
/mute &lt;đường|đơn vị&gt; &lt;số giờ&gt; [lý do] — tạm tắt cảnh báo (vẫn ghi nhật ký); \
/mute không kèm gì để xem danh sách
  Ví dụ: <code>/mute cm-de-tham 12 đang thi công cống</code>
/help — hướng dẫn này"""

REPORT_USAGE = (
    "Cách dùng: /report &lt;đường&gt; &lt;độ sâu cm&gt; [ghi chú]\n"
    "Ví dụ: <code>/report Phan Ngoc Hien 35 nước ngập nửa bánh xe</code>"
)
MUTE_USAGE = (
    "Cách dùng: /mute &lt;đường|đơn vị&gt; &lt;số giờ&gt; [lý do]\n"
    "Ví dụ: <code>/mute cm-de-tham 12 đang thi công cống</code>"
)
FAILED = "Xin lỗi, có lỗi khi xử lý lệnh. Vui lòng thử lại sau."

Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]


def _esc(text: str) -> str:
    """Escape text for Telegram HTML."""
    return escape(text, quote=False)


@dataclass(frozen=True)
class Split:
    """A command's arguments: what it is about, a number, and free text after it."""

    target: str
    number: float
    rest: str


def split_args(args: list[str], known: Callable[[str], bool]) -> Split | None:
    """Split "<name words> <number> [text]", preferring the last number after a known name.

    Names may hold numbers ("Đường 3 Tháng 2"), so the split is the rightmost number
    whose preceding words name something; failing that, the first number.
    """
    numeric = [i for i, arg in enumerate(args) if i > 0 and NUMBER.fullmatch(arg)]
    if not numeric:
        return None
    chosen = next((i for i in reversed(numeric) if known(" ".join(args[:i]))), numeric[0])
    value = float(args[chosen].lower().removesuffix("cm").replace(",", "."))
    return Split(" ".join(args[:chosen]), value, " ".join(args[chosen + 1 :]))


def candidates_text(segments: list, query: str, matched: bool = True) -> str:
    """Why a road name did not pick one road, with up to five candidates (matched or similar)."""
    if not matched or not segments:
        lines = [f"Không tìm thấy đường “{_esc(query)}”."]
        if segments:
            lines.append("Có phải một trong các đường sau?")
    else:
        lines = [f"Có {len(segments)} đường khớp với “{_esc(query)}”, hãy ghi rõ hơn:"]
    for segment in segments[:MAX_CANDIDATES]:
        lines.append(f"• {_esc(segment.name)} — mã <code>{_esc(segment.id)}</code>")
    if len(segments) > MAX_CANDIDATES:
        lines.append(f"… và {len(segments) - MAX_CANDIDATES} đường khác")
    lines.append("Có thể ghi tên đường (không cần dấu) hoặc mã đoạn đường.")
    return "\n".join(lines)


def _similar(app: App, query: str) -> list:
    """Roads sharing a distinctive word with the query, for an unknown name."""
    words = [w for w in fold(query).split() if len(w) >= 3 and w not in COMMON_WORDS]
    return [s for s in app.geodata.segments if any(w in fold(s.name) for w in words)]


def _user_name(update: Update) -> str:
    """The reporter's name as people know it."""
    user = update.effective_user
    if user is None:
        return "?"
    return user.full_name or (f"@{user.username}" if user.username else str(user.id))


def _unknown_lines(unknown: list[Unknown]) -> list[str]:
    """The /status section on roads without data (none when every road has data)."""
    if not unknown:
        return []
    lines = [f"❔ <b>Không có dữ liệu ({len(unknown)}):</b>"]
    for u in unknown[:MAX_ROADS]:
        lines.append(
            f"• <b>{_esc(u.segment.name)}</b> ({_esc(u.segment.ward)}): "
            f"thiếu số liệu {u.missing_vi}"
        )
    if len(unknown) > MAX_ROADS:
        lines.append(f"… và {len(unknown) - MAX_ROADS} đường khác")
    lines.append("")
    return lines


def _road(r: dict, unit_id: str | None, names: dict) -> str:
    """A road of /status: name and ward, and its unit when every unit is shown."""
    unit = f", {_esc(names.get(r['unit'], r['unit']))}" if unit_id is None else ""
    return f"<b>{_esc(r['name'])}</b> ({_esc(r['ward'])}{unit})"


def _cause(r: dict) -> str:
    """The cause suffix of a road of /status (", do …"), or '' when the cause is unknown."""
    return f", do {label('cause', r['cause'])}" if r["cause"] else ""


class Commands:
    """The command handlers over one App."""

    def __init__(self, app: App, clock: Callable[[], datetime]):
        self.app = app
        self.clock = clock
        self.zone = app.settings.zone
        self.levels = len(app.settings.levels.thresholds_m)  # for the level marks

    # --- guard ---------------------------------------------------------------

    def authorized(self, chat_id: int, user_id: int | None) -> bool:
        """A configured chat, or a user allowed anywhere."""
        settings = self.app.settings
        return chat_id in known_chats(settings) or (
            user_id is not None and user_id in settings.telegram.allowed_users
        )

    def guarded(self, name: str, handler: Handler) -> Handler:
        """Refuse strangers politely; turn failures into an apology and a log line."""

        async def run(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            message, chat = update.effective_message, update.effective_chat
            if message is None or chat is None:
                return
            user_id = update.effective_user.id if update.effective_user else None
            if not self.authorized(chat.id, user_id):
                logger.info("bot: /%s refused: chat %s, user %s", name, chat.id, user_id)
                await message.reply_text(self.refusal(chat.id, chat.type, user_id))
                return
            with self.app.store.availability.watch(f"bot: /{name}", logger) as outcome:
                await handler(update, context)
            if outcome.failed:
                await message.reply_text(FAILED)

        return run

    async def on_error(self, _update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A handler that failed outside `guarded` (a button press): an outage is told
        once, anything else logged with its traceback (rate-limited)."""
        error = context.error
        availability = self.app.store.availability
        if error is not None and not availability.failed(error, "bot: an update"):
            availability.unexpected("bot: an update", error, logger)

    @staticmethod
    def refusal(chat_id: int, chat_type: str, user_id: int | None) -> str:
        """The refusal, with the ids an administrator needs to grant access."""
        if chat_type == ChatType.PRIVATE:
            return (
                "Xin lỗi, bạn chưa được cấp quyền dùng bot. "
                f"Mã người dùng: {user_id}. Hãy gửi mã này cho quản trị viên hệ thống."
            )
        return (
            "Xin lỗi, nhóm này chưa được cấp quyền dùng bot. "
            f"Mã nhóm: {chat_id} (mã người dùng: {user_id}). "
            "Hãy gửi mã này cho quản trị viên hệ thống."
        )

    async def reply(self, message: Message, text: str) -> None:
        """Reply in HTML in the same chat (and topic)."""
        await message.reply_text(text, parse_mode=ParseMode.HTML)

    # --- commands ------------------------------------------------------------

    async def help(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """/start and /help."""
        await self.reply(update.effective_message, HELP)

    async def status(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """/status: this unit's roads flooded now and expected (every unit for operators)."""
        unit_id = unit_of_chat(self.app.settings, update.effective_chat.id)
        flooded, expected = await asyncio.to_thread(unit_roads, self.app, unit_id)
        unknown, quiet = await asyncio.to_thread(self.unknown_now, unit_id)
        await self.reply(
            update.effective_message, self.status_text(unit_id, flooded, expected, unknown, quiet)
        )

    def unknown_now(self, unit_id: str | None) -> tuple[list[Unknown], list[str]]:
        """The unit's roads without data now, and the inputs gone quiet ("mất tín hiệu")."""
        now = self.clock()
        health = health_view(self.app, now)
        situation = self.app.pipeline.situation(now, health)
        unknown = [u for u in situation.unknown if unit_id is None or u.segment.unit == unit_id]
        names = {sid: st.name for sid, st in self.app.geodata.stations.items()}
        quiet = []
        for item in health.stale_inputs():
            station, variable = item.pair
            newest = item.health.newest_at
            since = local_time(newest, self.zone) if newest else "khi khởi động"
            quiet.append(
                f"{names.get(station, station)} ({label('variable', variable)}) từ {since}"
            )
        return unknown, quiet

    def status_text(
        self,
        unit_id: str | None,
        flooded: list[dict],
        expected: list[dict],
        unknown: list[Unknown] = (),  # type: ignore[assignment]
        quiet: list[str] = (),  # type: ignore[assignment]
    ) -> str:
        """The /status reply; roads without data are named, never counted as dry."""
        names = {u.id: u.name for u in self.app.settings.units}
        title = names.get(unit_id, unit_id) if unit_id else "tất cả đơn vị"
        lines = [
            f"<b>Tình hình ngập đường — {_esc(title)}</b>",
            f"Thời điểm: {local_time(self.clock(), self.zone)}",
            "",
        ]
        if quiet:
            lines += ["⚠️ <b>Mất tín hiệu:</b> " + _esc("; ".join(quiet)) + ".", ""]
        lines += _unknown_lines(unknown)
        lines += self._flooded_lines(flooded, bool(unknown), unit_id, names)
        lines += self._expected_lines(expected, bool(unknown), unit_id, names)
        return "\n".join(lines)

    def _flooded_lines(
        self, flooded: list[dict], some_unknown: bool, unit_id: str | None, names: dict
    ) -> list[str]:
        """The /status section on roads flooded now, with a blank line after it."""
        none_flooded = (
            "Không có đường nào đang ngập trong số các đường có số liệu."
            if some_unknown
            else "Không có đường nào đang ngập."
        )
        lines = [f"<b>Đang ngập ({len(flooded)}):</b>" if flooded else none_flooded]
        for r in flooded[:MAX_ROADS]:
            receding = r["status"] == "receding"
            state = label("status", r["status"]) if receding else f"mức {r['level']}"
            lines.append(
                f"{level_mark(r['level'], self.levels)} {_road(r, unit_id, names)}: sâu "
                f"{centimetres(r['depth_m'])} ({state}), từ {local_time(r['since'], self.zone)}"
                f"{_cause(r)}"
            )
        if len(flooded) > MAX_ROADS:
            lines.append(f"… và {len(flooded) - MAX_ROADS} đường khác")
        lines.append("")
        return lines

    def _expected_lines(
        self, expected: list[dict], some_unknown: bool, unit_id: str | None, names: dict
    ) -> list[str]:
        """The /status section on roads expected to flood."""
        if expected:
            lines = [f"<b>Dự kiến ngập ({len(expected)}):</b>"]
        else:
            lines = [
                "Không có dự báo ngập cho các đường có số liệu."
                if some_unknown
                else "Không có dự báo ngập."
            ]
        for r in expected[:MAX_ROADS]:
            lines.append(
                f"{level_mark(r['level'], self.levels)} {_road(r, unit_id, names)}: từ "
                f"{local_time(r['onset_at'], self.zone)}, sâu nhất {centimetres(r['peak_depth_m'])}"
                f" lúc {local_time(r['peak_at'], self.zone)}{_cause(r)}"
            )
        if len(expected) > MAX_ROADS:
            lines.append(f"… và {len(expected) - MAX_ROADS} đường khác")
        return lines

    async def tide(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """/tide: the next predicted high waters per station."""
        highs = await asyncio.to_thread(next_high_waters, self.app, self.clock())
        if not highs:
            await self.reply(update.effective_message, "Chưa có bảng dự báo triều cho trạm nào.")
            return
        lines = ["<b>Đỉnh triều sắp tới (dự báo thiên văn, 48 giờ)</b>"]
        for station, extremes in highs:
            river = f" (sông {_esc(station.river)})" if station.river else ""
            lines.append(f"\n<b>Trạm {_esc(station.name)}</b>{river}:")
            for e in extremes:
                alarm = alarm_reached(station, e.level_m)
                reached = f" — {label('alarm', alarm)}" if alarm else ""
                when = e.time.astimezone(self.zone).strftime("%d/%m %H:%M")
                lines.append(f"• {when}: {metres(e.level_m)}{reached}")
            if not extremes:
                lines.append("• không có đỉnh triều trong 48 giờ tới")
        await self.reply(update.effective_message, "\n".join(lines))

    async def report(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/report <road> <depth cm> [note], as a command or as a photo's caption."""
        message = update.effective_message
        args = context.args if message.text else (message.caption or "").split()[1:]
        split = split_args(
            list(args or []), lambda q: bool(match_segments(self.app.geodata, q).segments)
        )
        if split is None:
            await self.reply(message, REPORT_USAGE)
            return
        match = match_segments(self.app.geodata, split.target)
        segment = match.unique
        if segment is None:
            found = match.segments or _similar(self.app, split.target)
            await self.reply(message, candidates_text(found, split.target, bool(match.segments)))
            return
        if not 0 <= split.number <= MAX_DEPTH_CM:
            await self.reply(message, f"Độ sâu phải từ 0 đến {MAX_DEPTH_CM} cm.")
            return
        photo = max(message.photo, key=lambda p: p.width * p.height, default=None)
        location = message.location or (
            message.reply_to_message.location if message.reply_to_message else None
        )
        now = self.clock()
        user_name = _user_name(update)
        await asyncio.to_thread(
            self.app.store.reports.add,
            segment.id,
            split.number / 100,
            now,
            chat_id=update.effective_chat.id,
            user_id=update.effective_user.id if update.effective_user else 0,
            user_name=user_name,
            photo_file_id=photo.file_id if photo else None,
            lat=location.latitude if location else None,
            lon=location.longitude if location else None,
            note=split.rest,
        )
        logger.info("bot: field report %s %.0f cm by %s (chat %s)", segment.id, split.number,
                    user_name, update.effective_chat.id)  # fmt: skip
        extras = [x for x, present in (("có ảnh", photo), ("có vị trí", location)) if present]
        depth = f"{split.number:g}".replace(".", ",")
        await self.reply(
            message,
            f"✅ Đã ghi nhận báo cáo: <b>{_esc(segment.name)}</b> ngập {depth} cm lúc "
            f"{local_time(now, self.zone)}" + (f" ({', '.join(extras)})" if extras else "") + ".\n"
            "Báo cáo được dùng như số liệu quan trắc ở chu kỳ đánh giá tiếp theo. Cảm ơn!",
        )

    async def mute(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/mute <road|unit> <hours> [reason]; /mute alone lists the silences."""
        message = update.effective_message
        settings, geodata = self.app.settings, self.app.geodata
        now = self.clock()
        if not context.args:
            rows = await asyncio.to_thread(self.app.store.silences.listing, now)
            await self.reply(message, self.silences_text(rows))
            return
        split = split_args(
            list(context.args), lambda q: mute_target(settings, geodata, q)[0] is not None
        )
        if split is None:
            await self.reply(message, MUTE_USAGE)
            return
        target, candidates = mute_target(settings, geodata, split.target)
        if target is None:
            found = candidates or _similar(self.app, split.target)
            text = candidates_text(found, split.target, bool(candidates))
            units = ", ".join(f"<code>{_esc(u.id)}</code>" for u in settings.units)
            await self.reply(message, f"{text}\nMã đơn vị: {units}")
            return
        if not (split.number.is_integer() and 1 <= split.number <= MAX_MUTE_HOURS):
            await self.reply(message, f"Số giờ phải là số nguyên từ 1 đến {MAX_MUTE_HOURS}.")
            return
        kind, target_id, name = target
        until = now + timedelta(hours=split.number)
        by = f"{_user_name(update)} ({update.effective_user.id if update.effective_user else '?'})"
        muted = await asyncio.to_thread(
            self.app.store.silences.add, kind, target_id, now, until, split.rest, by
        )
        logger.info("bot: %s %s muted until %s by %s (silence %d%s)", kind, target_id,
                    muted.until.isoformat(), by, muted.id,
                    ", extended" if muted.extended else "")  # fmt: skip
        what = "đơn vị" if kind == "unit" else "đường"
        reason = f" Lý do: {_esc(split.rest)}." if split.rest else ""
        done = "Đã gia hạn tắt cảnh báo" if muted.extended else "Đã tắt cảnh báo"
        await self.reply(
            message,
            f"🔕 {done} cho {what} <b>{_esc(name)}</b> đến "
            f"{local_time(muted.until, self.zone)} ({split.number:.0f} giờ).{reason}\n"
            "Cảnh báo vẫn được ghi vào nhật ký.",
        )

    def silences_text(self, rows: list) -> str:
        """The list of silences for /mute without arguments."""
        if not rows:
            return "Hiện không có cảnh báo nào đang bị tắt.\n" + MUTE_USAGE
        names = {u.id: u.name for u in self.app.settings.units}
        lines = ["<b>Cảnh báo đang tắt:</b>"]
        for row in rows:
            if row.target_kind == "unit":
                name = f"đơn vị {names.get(row.target_id, row.target_id)}"
            else:
                segment = self.app.geodata.segment(row.target_id)
                name = segment.name if segment else row.target_id
            reason = f" — {row.reason}" if row.reason else ""
            lines.append(
                f"• {_esc(name)}: {local_time(row.starts_at, self.zone)} → "
                f"{local_time(row.until, self.zone)}{_esc(reason)}"
            )
        return "\n".join(lines)


def register(application: Application, app: App, clock: Callable[[], datetime] = utcnow) -> None:
    """Add the command handlers (and photo-with-/report-caption handler) to a PTB application."""
    commands = Commands(app, clock)
    for name, handler in (
        ("start", commands.help),
        ("help", commands.help),
        ("status", commands.status),
        ("tide", commands.tide),
        ("report", commands.report),
        ("mute", commands.mute),
    ):
        application.add_handler(CommandHandler(name, commands.guarded(name, handler)))
    application.add_handler(
        MessageHandler(
            filters.PHOTO & filters.CaptionRegex(REPORT_CAPTION),
            commands.guarded("report", commands.report),
        )
    )
    application.add_error_handler(commands.on_error)
