"""Telegram delivery: drain the outbox under Telegram's limits, acknowledge, escalate.

The sender keeps per-chat order (a chat's next delivery waits for the one
before it), spaces messages (1 s per chat, 20 a minute per group, 30 a second
overall), honours `RetryAfter`, backs off on network errors and 5xx, marks
gone chats broken without holding up the others, follows migrated groups, and
falls back to plain text when Telegram rejects the HTML. An alert's parts (its
text pieces, then its charts) are planned once; each sent part is recorded at
once, so a retry or a restart sends exactly the missing ones. The limits count
only accepted sends and start from those recorded in the last minute; after an
outage, delivery resumes as soon as Telegram answers a probe. The token comes only
from FLOODWATCH_TELEGRAM_TOKEN (or the systemd credential `telegram-token`) and
is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import warnings
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict
from datetime import datetime, timedelta
from functools import partial
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import Application, CallbackQueryHandler, ContextTypes
from telegram.request import HTTPXRequest

from floodwatch.core.text import local_time
from floodwatch.db.outages import is_outage
from floodwatch.db.outbox import BROKEN, FAILED, RETRY_AFTER, NewAlert, backoff
from floodwatch.messages.alerts import NEEDS_ACK, late_line
from floodwatch.messages.bulletin import TELEGRAM_LIMIT, html_to_plain, split_html
from floodwatch.service.charts import AlertChart, alert_charts, draw_alert_chart
from floodwatch.service.cycle import utcnow
from floodwatch.service.routing import known_chats, operator_targets, targets
from floodwatch.telegram.commands import register

if TYPE_CHECKING:
    from floodwatch.db.models import AlertRow, DeliveryRow
    from floodwatch.service.app import App

logger = logging.getLogger(__name__)

TOKEN_ENV = "FLOODWATCH_TELEGRAM_TOKEN"
CREDENTIAL = "telegram-token"
ACK_PREFIX = "ack:"
# The button of a drill's alerts (`floodwatch drill`): never taken for a live alert's.
DRILL_ACK_PREFIX = "drill-ack:"
DRILL_PRESS_VI = (
    "Đây là tin diễn tập: lượt bấm chỉ được ghi nhận khi đợt diễn tập đang chờ xác nhận."
)

# Room kept in an alert's first part for the late mark ("⏱ Gửi trễ …", under 80
# characters), so marking a late alert never changes how its body is split.
LATE_ROOM = 100


def alert_parts(body: str) -> list[str]:
    """An alert's body as the parts it is sent in (the same on every attempt)."""
    return split_html(body, TELEGRAM_LIMIT - LATE_ROOM)


# While sends fail with network errors or 5xx, ask Telegram (getMe) this often whether it
# answers again; when it does after an outage, everything held back is retried at once.
PROBE_EVERY_S = 2.0
PROBE_TIMEOUT_S = 5.0


class _NotJsonFilter(logging.Filter):
    """Drops PTB's traceback and page dump for a reply that is not JSON (Telegram's proxy
    answering 502 with an HTML page during an outage): the sender logs each failure itself,
    in one line, and an outage would otherwise write ~20 lines at every probe."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Can not load invalid JSON data")


def _quiet_ptb_outages() -> None:
    """Install `_NotJsonFilter` on PTB's request logger (once)."""
    ptb = logging.getLogger("telegram.request.BaseRequest")
    if not any(isinstance(f, _NotJsonFilter) for f in ptb.filters):
        ptb.addFilter(_NotJsonFilter())


def brief(exc: TelegramError) -> str:
    """An error's message without the page a proxy answered (PTB quotes it whole)."""
    return exc.message.split(". Parsing the server response", 1)[0]


def read_token(environ: Mapping[str, str] | None = None) -> str | None:
    """The bot token from the environment, or from systemd's credentials directory."""
    environ = os.environ if environ is None else environ
    if token := environ.get(TOKEN_ENV, "").strip():
        return token
    folder = environ.get("CREDENTIALS_DIRECTORY")
    if folder:
        path = Path(folder) / CREDENTIAL
        if path.is_file():
            return path.read_text(encoding="utf-8").strip() or None
    return None


class Limiter:
    """Telegram's flood limits: per chat, per group per minute, and overall per second.

    Only sends Telegram accepted count: a send is counted when it goes (`wait`) and
    forgotten again when Telegram refused it (`release`). A new sender starts from the
    sends recorded in the last minute (`load`), so a restart or a failover does not
    burst into a group that is already near its limit.
    """

    # A little slower than Telegram's figures: clocks and network delays differ.
    def __init__(self, per_chat_s: float = 1.1, group_per_minute: int = 19, per_second: int = 28):
        self.per_chat_s = per_chat_s
        self.group_per_minute = group_per_minute
        self.per_second = per_second
        self.chat_sends: dict[int, deque[float]] = {}  # each chat's sends in the last minute
        self.sends: deque[float] = deque()  # every send in the last second
        self.paused_until: dict[int, float] = {}

    def _recent(self, chat_id: int, now: float) -> deque[float]:
        """A chat's sends of the last minute, oldest first."""
        mine = self.chat_sends.setdefault(chat_id, deque())
        while mine and mine[0] <= now - 60.0:
            mine.popleft()
        return mine

    def wait_s(self, chat_id: int, now: float) -> float:
        """Seconds to wait before the next message to `chat_id` may go."""
        waits = [self.paused_until.get(chat_id, 0.0) - now]
        mine = self._recent(chat_id, now)
        if mine:
            waits.append(mine[-1] + self.per_chat_s - now)
        if chat_id < 0 and len(mine) >= self.group_per_minute:
            waits.append(mine[-self.group_per_minute] + 60.0 - now)
        while self.sends and self.sends[0] <= now - 1.0:
            self.sends.popleft()
        if len(self.sends) >= self.per_second:
            waits.append(self.sends[-self.per_second] + 1.0 - now)
        return max(0.0, *waits)

    def record(self, chat_id: int, now: float) -> float:
        """Count one message sent to `chat_id`; returns its stamp (for `release`)."""
        self._recent(chat_id, now).append(now)
        self.sends.append(now)
        return now

    def release(self, chat_id: int, stamp: float) -> None:
        """Forget a send Telegram refused: it used none of the limits."""
        for sends in (self.chat_sends.get(chat_id, deque()), self.sends):
            with contextlib.suppress(ValueError):
                sends.remove(stamp)

    def load(self, history: Iterable[tuple[int, float]]) -> None:
        """Count sends made before this limiter existed: (chat, monotonic time), oldest first."""
        for chat_id, at in sorted(history, key=lambda sent: sent[1]):
            self.record(chat_id, at)

    def pause(self, chat_id: int, seconds: float, now: float) -> None:
        """Hold a chat back (after Telegram's RetryAfter)."""
        self.paused_until[chat_id] = now + seconds

    async def wait(self, chat_id: int) -> float:
        """Sleep until a message to `chat_id` may go, then count it; returns its stamp."""
        while (delay := self.wait_s(chat_id, time.monotonic())) > 0:
            await asyncio.sleep(delay)
        return self.record(chat_id, time.monotonic())


def retry_after_s(exc: RetryAfter) -> float:
    """RetryAfter's wait in seconds (PTB 22 gives an int or, opted in, a timedelta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def ack_markup(alert: AlertRow, prefix: str = ACK_PREFIX) -> InlineKeyboardMarkup | None:
    """The "Đã nhận" button for alerts that need an acknowledgement."""
    if not set(alert.kinds) & NEEDS_ACK:
        return None
    target = alert.escalation_of or alert.id
    button = InlineKeyboardButton("✅ Đã nhận", callback_data=f"{prefix}{target}")
    return InlineKeyboardMarkup([[button]])


class TelegramNotifier:
    """Sends outbox deliveries, handles "Đã nhận" presses, escalates what nobody took.

    A drill (telegram/drill.py) changes what the hooks below give: the parts of a
    body and a picture's caption (marked "DIỄN TẬP"), the button's prefix, the time an
    alert is read against (its own simulated time, not the wall clock), the commands.
    """

    ack_prefix = ACK_PREFIX
    answers_commands = True

    def __init__(
        self,
        app: App,
        token: str,
        clock: Callable[[], datetime] = utcnow,
        limiter: Limiter | None = None,
        mark_late: bool = True,
    ):
        self.app = app
        self.settings = app.settings
        self.clock = clock
        _quiet_ptb_outages()
        timeout = self.settings.telegram.timeout_s
        self.bot = Bot(
            token,
            base_url=self.settings.telegram.base_url,
            request=HTTPXRequest(read_timeout=timeout, connect_timeout=timeout,
                                 write_timeout=timeout, media_write_timeout=timeout * 2),
            get_updates_request=HTTPXRequest(read_timeout=timeout + 30, connect_timeout=timeout),
        )  # fmt: skip
        self.limiter = limiter or Limiter()
        # Alerts sent this much after the moment they describe say so; not those of a
        # drill of old readings (mark_late=False), which are old on purpose.
        late_after = timedelta(minutes=self.settings.alerts.late_after_minutes)
        self.late_after: timedelta | None = late_after if mark_late else None
        self._limits_loaded = False
        self._broken_chats: set[int] = set()
        self._charts_of: dict[int, asyncio.Future] = {}
        self._drawings: dict[tuple[int, str], asyncio.Future] = {}
        # Telegram's health as the sends see it: a send failed on the network (trouble),
        # and the probe got no answer either (down), when to ask again. A new sender starts
        # as after an outage: once Telegram answers, what an earlier one held back goes.
        self._trouble = self._down = True
        self._next_probe = 0.0
        self._outage_logged = False
        self._polling_error: str | None = None
        self.outbox = app.store.outbox

    # --- sending ----------------------------------------------------------------

    async def send_due(self) -> int:
        """One pass over the outbox: each chat's next due delivery, in order; returns sent."""
        if not self._limits_loaded:
            await self._load_limits()
        if self._trouble and time.monotonic() >= self._next_probe:
            await self._probe()
        chats = await asyncio.to_thread(self.outbox.chats)
        self._broken_chats = {c for c, row in chats.items() if row.status == BROKEN}
        if any(row.migrated_to for row in chats.values()):
            # Groups known to have migrated: send to the new id without asking again.
            await asyncio.to_thread(self.outbox.follow_migrations)
        due = await asyncio.to_thread(self.outbox.next_per_chat, self.clock())
        # A chat held back by its flood limit waits for a later pass instead of
        # stalling this one (and every other chat's alerts with it).
        ready = [(d, a) for d, a in due if self.limiter.wait_s(d.chat_id, time.monotonic()) < 2]
        self._charts_of, self._drawings = {}, {}
        # Every delivery of the pass ends before the pass does, even when one fails (a
        # database error): one left running would be picked up again by the next pass
        # and send its part twice.
        results = await asyncio.gather(*(self._deliver(d, a) for d, a in ready),
                                       return_exceptions=True)  # fmt: skip
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return sum(results)

    async def _load_limits(self) -> None:
        """Count the sends of the last minute, whoever made them (a restart, a failover)."""
        wall, mono = utcnow(), time.monotonic()
        recent = await asyncio.to_thread(self.outbox.recent_sends, wall - timedelta(minutes=1))
        self.limiter.load((chat, mono - (wall - at).total_seconds()) for chat, at in recent)
        self._limits_loaded = True
        if recent:
            logger.info("telegram: %d sends in the last minute count toward the limits",
                        len(recent))  # fmt: skip

    async def _probe(self) -> None:
        """Ask Telegram whether it answers; when it does after an outage, retry everything."""
        try:
            await self.bot.get_me(read_timeout=PROBE_TIMEOUT_S, connect_timeout=PROBE_TIMEOUT_S)
        except TelegramError as exc:
            if not self._outage_logged:
                logger.warning("telegram: not answering (%s); asking every %.0f s", brief(exc),
                               PROBE_EVERY_S)  # fmt: skip
                self._outage_logged = True
            self._down = True
            self._next_probe = time.monotonic() + PROBE_EVERY_S
            return
        await self._answering()

    async def _answering(self) -> None:
        """Telegram answered: after an outage (or at start), what backoff held back goes now."""
        was_down, self._trouble, self._down = self._down, False, False
        self._polling_error = None
        if not was_down:
            return
        woken = await asyncio.to_thread(self.outbox.wake)
        if self._outage_logged:
            logger.warning("telegram: answering again; %d deliveries retried now", woken)
        elif woken:
            logger.info("telegram: %d deliveries held back by network errors retried now", woken)
        self._outage_logged = False

    def _on_polling_error(self, exc: TelegramError) -> None:
        """getUpdates failed (PTB retries it): one line, again only when the error changes."""
        if brief(exc) != self._polling_error:
            logger.warning("telegram: reading updates: %s", brief(exc))
        self._polling_error = brief(exc)

    async def _deliver(self, delivery: DeliveryRow, alert: AlertRow) -> bool:
        """Send one delivery (all its parts); record the outcome. True when sent."""
        chat = delivery.chat_id
        try:
            parts = await self._send_all(delivery, alert)
            if chat in self._broken_chats:  # the bot is back in a chat it had lost
                await asyncio.to_thread(self.outbox.chat_ok, chat, self.clock())
                self._broken_chats.discard(chat)
            if self._down:
                await self._answering()
            logger.info("telegram: alert #%d → chat %d: %d part(s)", alert.id, chat, parts)
            return True
        except RetryAfter as exc:
            wait_s = retry_after_s(exc)
            self.limiter.pause(chat, wait_s, time.monotonic())
            when = self.clock() + timedelta(seconds=wait_s)
            logger.warning("telegram: chat %d: flood limit, retry in %.0f s", chat, wait_s)
            await asyncio.to_thread(self.outbox.retry_later, delivery.id, when, RETRY_AFTER)
        except ChatMigrated as exc:
            await self._migrated(chat, exc.new_chat_id)
        except Forbidden as exc:
            await self._broken(chat, f"forbidden: {exc.message}")
        except BadRequest as exc:
            await self._refused(delivery, alert, exc)
        except (NetworkError, TelegramError) as exc:  # timeouts, refused, 5xx, garbled replies
            self._trouble = True
            when = self.clock() + backoff(delivery.attempts)
            logger.warning("telegram: chat %d: %s; retry at %s", chat, brief(exc),
                           when.isoformat())  # fmt: skip
            await asyncio.to_thread(self.outbox.retry_later, delivery.id, when, brief(exc))
        return False

    async def _send_all(self, delivery: DeliveryRow, alert: AlertRow) -> int:
        """Send the parts of the alert's plan not yet done, in order; record each. Returns
        the number of parts in the plan: its text parts, then its charts."""
        chat, thread = delivery.chat_id, delivery.thread_id
        texts = self.parts(alert.body)
        charts = await self._charts(alert)
        done = await asyncio.to_thread(self.outbox.parts_done, delivery.id)
        markup = ack_markup(alert, self.ack_prefix)
        for seq in range(len(texts) + len(charts)):
            if seq in done:
                continue
            if seq < len(texts):
                button = markup if seq == len(texts) - 1 else None
                text = texts[seq]
                if seq == 0:
                    text = self.marked_late(alert.event_at or alert.created_at, text, self.clock())
                send = partial(self._send_part, chat, thread, text, button)
            else:
                send = await self._photo(alert, charts[seq - len(texts)], chat, thread)
            message_id = None if send is None else await self._limited(chat, send)
            # Real time, whatever the notifier's clock: Telegram's limits run in it.
            await asyncio.to_thread(self.outbox.part_done, delivery.id, seq, chat, message_id,
                                    utcnow())  # fmt: skip
        await asyncio.to_thread(self.outbox.delivered, delivery.id, self.clock())
        return len(texts) + len(charts)

    async def _limited(self, chat: int, send: Callable[[], Awaitable[int]]) -> int:
        """One send within the flood limits; a refused send does not count toward them."""
        stamp = await self.limiter.wait(chat)
        try:
            return await send()
        except TimedOut:
            raise  # it may have reached Telegram: it stays counted
        except TelegramError:
            self.limiter.release(chat, stamp)
            raise

    def marked_late(self, described_at: datetime, first_part: str, sent_at: datetime) -> str:
        """An alert's first part, headed "⏱ Gửi trễ …" when it goes out more than `[alerts]
        late_after_minutes` after the moment it describes (`late_after` None: never)."""
        if self.late_after is None:
            return first_part
        line = late_line(described_at, sent_at, self.settings.zone, self.late_after)
        return first_part if line is None else f"{line}\n{first_part}"

    async def _migrated(self, chat: int, new_chat_id: int) -> None:
        """Follow a group that became a supergroup, and tell the operators to update the config."""
        logger.error("telegram: chat %d became %d; update the config", chat, new_chat_id)
        await asyncio.to_thread(self.outbox.redirect, chat, new_chat_id, self.clock())
        await self._tell_operators(
            "chat_migrated",
            f"⚠️ Nhóm Telegram {chat} đã được nâng cấp thành siêu nhóm "
            f"{new_chat_id}. Cảnh báo đã được chuyển sang nhóm mới; đề nghị cập "
            "nhật cấu hình (telegram_chats).",
            chat,
        )

    async def _refused(self, delivery: DeliveryRow, alert: AlertRow, exc: BadRequest) -> None:
        """A request Telegram refused: the chat is gone, or this message will never go."""
        chat = delivery.chat_id
        if "chat not found" in exc.message.lower():
            await self._broken(chat, "chat not found")
            return
        logger.error("telegram: alert #%d → chat %d rejected: %s", alert.id, chat,
                     exc.message)  # fmt: skip
        await asyncio.to_thread(self.outbox.give_up, delivery.id, FAILED, exc.message, self.clock())

    async def _charts(self, alert: AlertRow) -> list[AlertChart]:
        """The alert's charts, planned at its first attempt and kept: every chat and every
        retry gets the same ones. Planned once per pass for all its chats; a failure to
        plan them costs the pictures, never the alert."""
        if alert.charts is not None:
            return [AlertChart(**chart) for chart in alert.charts]
        if alert.id not in self._charts_of:
            self._charts_of[alert.id] = asyncio.ensure_future(self._plan_charts(alert))
        return await self._charts_of[alert.id]

    async def _plan_charts(self, alert: AlertRow) -> list[AlertChart]:
        """Work out an alert's charts and record them (the first plan recorded stands)."""
        charts: list[AlertChart] = []
        if self.settings.telegram.hydrographs:
            try:
                charts = await asyncio.to_thread(alert_charts, self.app, alert)
            except Exception as exc:
                if is_outage(exc):
                    raise  # the database is away: plan them when it is back, not as none
                logger.exception("telegram: alert #%d: charts failed; sent without", alert.id)
        plan = [asdict(chart) for chart in charts]
        stored = await asyncio.to_thread(self.outbox.plan_charts, alert.id, plan)
        return [AlertChart(**chart) for chart in stored]

    async def _photo(self, alert: AlertRow, chart: AlertChart, chat: int, thread: int | None):
        """A send of one chart (drawn once per pass for all chats), or None if it cannot
        be drawn: that picture is skipped, never the alert."""
        key = (alert.id, chart.station)
        if key not in self._drawings:
            self._drawings[key] = asyncio.ensure_future(
                asyncio.to_thread(draw_alert_chart, self.app, chart, self.alert_time(alert))
            )
        try:
            png = await self._drawings[key]
        except Exception as exc:
            if is_outage(exc):
                raise  # the readings could not be read: draw it again later, not skip it
            logger.exception("telegram: alert #%d: chart of %s failed; skipped", alert.id,
                             chart.station)  # fmt: skip
            return None

        async def send() -> int:
            message = await self.bot.send_photo(chat, png, caption=self.caption(chart.caption),
                                                message_thread_id=thread)  # fmt: skip
            return message.message_id

        return send

    def parts(self, body: str) -> list[str]:
        """The Telegram parts of an alert's body (also what an acknowledgement edits)."""
        return alert_parts(body)

    def caption(self, caption: str) -> str:
        """A hydrograph's caption as sent."""
        return caption

    def alert_time(self, alert: AlertRow) -> datetime:
        """The moment an alert is read against (its charts' "now"): the clock, live."""
        return self.clock()

    async def _send_part(self, chat: int, thread: int | None, html: str, markup) -> int:
        """Send one part as HTML, or as plain text if Telegram cannot parse it."""
        try:
            message = await self.bot.send_message(
                chat, html, parse_mode=ParseMode.HTML, message_thread_id=thread,
                reply_markup=markup, disable_web_page_preview=True,
            )  # fmt: skip
        except BadRequest as exc:
            if "parse entities" not in exc.message.lower():
                raise
            logger.warning("telegram: chat %d: HTML refused (%s); sending plain text", chat,
                           exc.message)  # fmt: skip
            message = await self.bot.send_message(
                chat, html_to_plain(html), message_thread_id=thread, reply_markup=markup
            )
        return message.message_id

    async def _broken(self, chat: int, reason: str) -> None:
        """A chat is gone: stop sending there and tell the operators (once)."""
        count, new = await asyncio.to_thread(self.outbox.break_chat, chat, reason, self.clock())
        logger.error("telegram: chat %d is broken (%s); %d deliveries dropped", chat, reason, count)
        if not new:
            return
        await self._tell_operators(
            "chat_broken",
            f"⚠️ Không gửi được cảnh báo tới nhóm Telegram {chat} ({reason}); "
            f"{count} tin chưa gửi được. Đề nghị kiểm tra bot còn trong nhóm và cấu hình.",
            chat,
        )

    async def _tell_operators(self, kind: str, body: str, about_chat: int) -> None:
        """Queue a note for the operators (not to the chat it is about)."""
        chats = [
            (t.chat_id, t.thread_id)
            for t in operator_targets(self.settings)
            if t.chat_id != about_chat
        ]
        # Ahead of each operators' chat's backlog: a chat is missing its alerts now.
        note = NewAlert(self.clock(), self.settings.operators_unit, [kind], body, chats,
                        urgent=True)  # fmt: skip
        await asyncio.to_thread(self.outbox.add, [note])

    # --- acknowledgement and escalation -----------------------------------------

    async def on_callback(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """A "Đã nhận" press: record the first, show it on every copy, stop escalation."""
        query = update.callback_query
        if query is None or not (query.data or "").startswith(self.ack_prefix):
            if query is not None and (query.data or "").startswith(DRILL_ACK_PREFIX):
                await query.answer(DRILL_PRESS_VI, show_alert=True)  # a drill no longer waiting
            return
        chat = query.message.chat.id if query.message else None
        user = query.from_user
        if (
            chat not in known_chats(self.settings)
            and user.id not in self.settings.telegram.allowed_users
        ):
            await query.answer("Nhóm này chưa được cấp quyền.", show_alert=True)
            return
        alert_id = int(query.data.removeprefix(self.ack_prefix))
        who = user.full_name or user.username or str(user.id)
        now = self.clock()
        alert = await asyncio.to_thread(self.outbox.acknowledge, alert_id, who, now)
        if alert is None:
            await query.answer("Không tìm thấy cảnh báo này.")
            return
        first = alert.ack_by == who and alert.ack_at == now
        when = local_time(alert.ack_at, self.settings.zone)
        await query.answer(
            "Đã ghi nhận. Cảm ơn!" if first else f"Đã được {alert.ack_by} nhận lúc {when}."
        )
        if first:
            logger.info("telegram: alert #%d acknowledged by user %d", alert_id, user.id)
            await self._show_ack(alert, when)

    async def _show_ack(self, alert: AlertRow, when: str) -> None:
        """Edit every sent copy of an alert (and its escalations) to show who took it."""
        stamp = f"\n\n✅ <b>Đã nhận:</b> {escape(alert.ack_by, quote=False)} lúc {when}"
        copies = await asyncio.to_thread(self.outbox.sent_copies, alert.id)
        for copy in copies:
            chat, message_ids = copy.chat_id, copy.message_ids
            parts = self.parts(copy.body)
            if len(message_ids) < len(parts):
                continue
            # The last text part carries the button; pictures come after it. A one-part
            # message keeps its late mark (as of its delivery).
            last = parts[-1]
            if len(parts) == 1 and copy.sent_at is not None:
                last = self.marked_late(copy.described_at, last, copy.sent_at)
            message_id = message_ids[len(parts) - 1]
            try:
                await self.bot.edit_message_text(
                    last + stamp, chat_id=chat, message_id=message_id,
                    parse_mode=ParseMode.HTML,
                )  # fmt: skip
            except (BadRequest, Forbidden, NetworkError) as exc:
                logger.warning("telegram: cannot mark ack in chat %d: %s", chat, exc.message)

    async def escalate_due(self) -> int:
        """Re-send unacknowledged onset and level-up alerts to each unit's escalation target."""
        now = self.clock()
        units = {u.id: u for u in self.settings.units if u.escalate_to}
        if not units:
            return 0
        shortest = min(u.escalate_after_minutes for u in units.values())
        waiting = await asyncio.to_thread(
            self.outbox.unacknowledged, NEEDS_ACK, now - timedelta(minutes=shortest)
        )
        done = 0
        for alert in waiting:
            unit = units.get(alert.unit)
            if (
                unit is None
                # From delivery, as `unacknowledged` counts (not from creation: an alert
                # held back by an outage, or a drill's simulated one, was not seen then).
                or (alert.sent_at or alert.created_at)
                + timedelta(minutes=unit.escalate_after_minutes)
                > now
            ):
                continue
            target_name = next((u.name for u in self.settings.units if u.id == unit.escalate_to),
                               "Văn phòng thường trực")  # fmt: skip
            body = (
                f"⏫ <b>CHƯA CÓ XÁC NHẬN sau {unit.escalate_after_minutes} phút</b> — "
                f"chuyển {target_name}\n\n{alert.body}"
            )
            chats = [(t.chat_id, t.thread_id) for t in targets(self.settings, unit.escalate_to)]
            escalation = NewAlert(now, unit.escalate_to, alert.kinds, body, chats,
                                  escalation_of=alert.id)  # fmt: skip
            if await asyncio.to_thread(self.outbox.escalate, alert.id, escalation, now):
                logger.warning("telegram: alert #%d unacknowledged; escalated to %s", alert.id,
                               unit.escalate_to)  # fmt: skip
                done += 1
        return done

    # --- running ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, every_s: float = 1.0, with_updates: bool = True):
        """Send, escalate and answer updates until `stop` is set."""
        application = None
        if with_updates:
            application = Application.builder().bot(self.bot).build()
            application.add_handler(CallbackQueryHandler(self.on_callback))
            if self.answers_commands:
                register(application, self.app, self.clock)
        try:
            await self._connect(application, stop)
            while not stop.is_set():
                # A bad pass must not stop delivery (the next one retries); a database
                # outage is told once, not every second.
                with self.app.store.availability.watch("telegram: delivery pass", logger):
                    await self.send_due()
                    await self.escalate_due()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=every_s)
        finally:
            if application is not None:
                if application.updater.running:
                    await application.updater.stop()
                if application.running:
                    await application.stop()
                await application.shutdown()
            else:
                await self.bot.shutdown()

    async def _connect(self, application: Application | None, stop: asyncio.Event) -> None:
        """Start talking to Telegram; while it does not answer (a start during an outage),
        ask again every few seconds instead of giving up delivery until the next restart."""
        warned = False
        while not stop.is_set():
            try:
                if application is None:
                    await self.bot.initialize()
                    return
                await application.initialize()
                if not application.running:
                    await application.start()
                await application.updater.start_polling(
                    poll_interval=0.5, timeout=20, drop_pending_updates=False,
                    error_callback=self._on_polling_error,
                )  # fmt: skip
                return
            except TelegramError as exc:
                if not warned:
                    logger.warning("telegram: not answering at start (%s); asking every %.0f s",
                                   brief(exc), PROBE_EVERY_S)  # fmt: skip
                warned = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=PROBE_EVERY_S)


class TelegramThread:
    """Runs a TelegramNotifier's loop in a background thread beside the scheduler."""

    def __init__(self, notifier: TelegramNotifier):
        self.notifier = notifier
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._main, name="telegram", daemon=True)
        self.ready = threading.Event()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.stop_event = asyncio.Event()
        self.ready.set()
        self.loop.run_until_complete(self.notifier.run(self.stop_event))

    def start(self) -> None:
        """Start the thread."""
        self.thread.start()
        self.ready.wait()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the loop to finish its pass and wait for it."""
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout_s)
