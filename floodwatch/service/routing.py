"""Where a unit's alerts go: its Telegram chats, plus the operators' (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from floodwatch.config import Settings

OPERATORS = "operators"


@dataclass(frozen=True)
class Target:
    """One chat (and forum topic) an alert is delivered to."""

    chat_id: int
    thread_id: int | None = None


def operator_targets(settings: Settings) -> list[Target]:
    """The operators' chats: `[telegram] operators_chats` and those of `operators_unit`."""
    tg = settings.telegram
    found = [Target(chat, tg.operators_thread_id) for chat in tg.operators_chats]
    unit = next((u for u in settings.units if u.id == settings.operators_unit), None)
    if unit is not None:
        found += [Target(chat, unit.thread_id) for chat in unit.telegram_chats]
    return _unique(found)


def targets(settings: Settings, unit_id: str) -> list[Target]:
    """Chats for an alert to `unit_id` (a unit id or "operators"): the unit's, then operators'
    (escalations, the daily bulletin; road alerts: `road_alert_targets`)."""
    unit = next((u for u in settings.units if u.id == unit_id), None)
    own = [Target(chat, unit.thread_id) for chat in unit.telegram_chats] if unit else []
    return _unique(own + operator_targets(settings))


def road_alert_targets(settings: Settings, unit_id: str) -> list[Target]:
    """Chats for a unit's road alert: the unit's own, and the operators' when they take full
    copies (`[telegram] operators_copy = "full"`) or when the unit has no chat of its own
    (its alerts would otherwise be read by nobody)."""
    unit = next((u for u in settings.units if u.id == unit_id), None)
    own = [Target(chat, unit.thread_id) for chat in unit.telegram_chats] if unit else []
    if settings.telegram.operators_copy == "full" or not own:
        return _unique(own + operator_targets(settings))
    return _unique(own)


def _unique(found: list[Target]) -> list[Target]:
    """Keep the first target of each chat."""
    seen: set[int] = set()
    out = []
    for target in found:
        if target.chat_id not in seen:
            seen.add(target.chat_id)
            out.append(target)
    return out


def known_chats(settings: Settings) -> set[int]:
    """Every chat the config names (bot commands are accepted from these)."""
    chats = set(settings.telegram.operators_chats)
    for unit in settings.units:
        chats.update(unit.telegram_chats)
    return chats


def unit_of_chat(settings: Settings, chat_id: int) -> str | None:
    """The unit whose chat this is (None for operators' or unknown chats)."""
    return next((u.id for u in settings.units if chat_id in u.telegram_chats), None)
