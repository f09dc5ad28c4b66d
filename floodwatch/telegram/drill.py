"""The sender of a drill: the live sender, with every message marked "DIỄN TẬP".

Every text part (alerts, alarms, bulletins, notes about chats, escalations) gets the
mark as its first line, and every hydrograph's caption starts with it, so nothing a
drill sends can be taken for a real alert. Its "Đã nhận" buttons carry their own
prefix: the live service answers a press of one with a note and never takes it for
one of its own alerts, and a drill never records a press of a live alert's button.
Charts are drawn at the alert's own (simulated) time; retries, deliveries and
acknowledgements keep the wall clock.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from telegram import Update
from telegram.ext import ContextTypes

from floodwatch.messages.drill import drill_parts, mark_caption
from floodwatch.telegram.sender import ACK_PREFIX, DRILL_ACK_PREFIX, TelegramNotifier

if TYPE_CHECKING:
    from floodwatch.db.models import AlertRow
    from floodwatch.service.app import App

logger = logging.getLogger(__name__)
# The answer to a press of a live alert's button that reached the drill instead of the
# live service (both read the bot's updates while a drill waits for acknowledgements).
LIVE_PRESS_VI = "Hệ thống đang diễn tập nên chưa ghi được lượt bấm này; xin bấm lại sau ít phút."


class DrillNotifier(TelegramNotifier):
    """Sends a drill database's outbox through the configured chats, marked as a drill."""

    ack_prefix = DRILL_ACK_PREFIX
    answers_commands = False  # a command's answer would come from the drill's data

    def __init__(self, app: App, token: str, *, read_updates: bool, **kwargs):
        super().__init__(app, token, **kwargs)
        # A drill's alerts describe old readings on purpose: never marked "sent late" (the
        # sender's late mark, where it has one, is off when this is None).
        self.late_after = None
        self.read_updates = read_updates
        self._simulated: dict[int, datetime] = {}

    def parts(self, body: str) -> list[str]:
        """The parts of a body, each with the drill mark as its first line."""
        return drill_parts(body)

    def caption(self, caption: str) -> str:
        """A hydrograph's caption, marked."""
        return mark_caption(caption)

    def alert_time(self, alert: AlertRow) -> datetime:
        """The alert's simulated time (an escalation's: its original's), not the wall clock."""
        if alert.escalation_of is None:
            return alert.created_at
        if alert.escalation_of not in self._simulated:
            original = self.outbox.alert(alert.escalation_of)
            self._simulated[alert.escalation_of] = (
                original.created_at if original is not None else alert.created_at
            )
        return self._simulated[alert.escalation_of]

    async def on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A press of a drill button is recorded; one of a live alert's is handed back."""
        query = update.callback_query
        if query is not None and (query.data or "").startswith(ACK_PREFIX):
            logger.warning("drill: a press of a live alert's button reached the drill")
            await query.answer(LIVE_PRESS_VI, show_alert=True)
            return
        await super().on_callback(update, context)

    async def run(self, stop: asyncio.Event, every_s: float = 1.0, with_updates: bool = True):
        """Send and escalate until `stop`; read updates only when waiting for presses."""
        await super().run(stop, every_s, with_updates and self.read_updates)
