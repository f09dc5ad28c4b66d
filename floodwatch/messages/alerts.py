"""Compose alerts: one Vietnamese message per unit per cycle, most severe first.

Messages are Telegram HTML (only <b> and <i>; every name escaped); the console
prints them as plain text. Changes for muted segments or units still make an
alert, recorded as muted and sent nowhere.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from floodwatch.core.events import Change, Message
from floodwatch.core.geo import Geodata
from floodwatch.core.text import ALERT_VI, LEVEL_MARK, centimetres, duration, label, local_time

# The kinds of a road alert, most severe first; headlines are the glossary's words in capitals.
ROAD_KINDS = ("onset", "level_up", "reminder", "level_down", "all_clear", "forecast",
              "forecast_update", "forecast_cancelled")  # fmt: skip
HEADLINE = {kind: ALERT_VI[kind].upper() for kind in ROAD_KINDS}
# Order of kinds in a message: what needs action first.
SEVERITY = {kind: rank for rank, kind in enumerate(HEADLINE)}
# Kinds that ask for an acknowledgement and escalate without one.
NEEDS_ACK = frozenset({"onset", "level_up"})


def _esc(text: str) -> str:
    """Escape text for Telegram HTML."""
    return escape(text, quote=False)


def _line(
    change: Change,
    geodata: Geodata,
    zone: ZoneInfo,
    level_names: Sequence[str],
    at: datetime | None = None,
) -> str:
    """One line of a message for one segment (with its own time when not the message's)."""
    ev = change.event
    segment = geodata.segment(ev.segment_id)
    road = f"<b>{_esc(segment.name)}</b> ({_esc(segment.ward)})" if segment else _esc(ev.segment_id)
    mark = LEVEL_MARK.get(ev.max_level if change.alert == "all_clear" else ev.level, "")
    cause = label("cause", ev.cause, empty="")
    because = f", do {cause}" if cause else ""
    level_name = level_names[ev.level - 1] if 1 <= ev.level <= len(level_names) else ""
    advice = f" <i>{_esc(level_name)}</i>" if level_name else ""
    kind = change.alert
    if kind in ("forecast", "forecast_update"):
        lead = duration(ev.expected_onset_at - change.at)
        return (
            f"{mark} {road}: dự kiến ngập từ {local_time(ev.expected_onset_at, zone)} "
            f"(còn {lead}), sâu nhất {centimetres(ev.peak_depth_m)} lúc "
            f"{local_time(ev.peak_at, zone, with_date=False)}{because}.{advice}"
        )
    if kind == "forecast_cancelled":
        return f"{mark} {road}: không còn dự báo ngập."
    if kind == "all_clear":
        return (
            f"{mark} {road}: đã hết ngập (sâu nhất {centimetres(ev.peak_depth_m)} "
            f"lúc {local_time(ev.peak_at, zone)})."
        )
    since = f", từ {local_time(ev.opened_at, zone)}" if kind == "reminder" else ""
    # An observation between two cycles: say when it was seen.
    seen = (
        f" lúc {local_time(change.at, zone, with_date=False)}"
        if at is not None and change.at != at and kind != "reminder"
        else ""
    )
    return (
        f"{mark} {road}: đang ngập {centimetres(ev.depth_m)}{seen} (mức {ev.level}){since}"
        f"{because}.{advice}"
    )


def compose(
    changes: Sequence[Change],
    geodata: Geodata,
    unit_names: dict[str, str],
    zone: ZoneInfo,
    level_names: Sequence[str],
    at: datetime,
    muted: Callable[[str, str], bool] = lambda unit, segment: False,
    targets: Callable[[str], Sequence[tuple[int, int | None]]] = lambda unit: (),
) -> list[Message]:
    """Group alert-carrying changes by unit into one message each (muted ones apart),
    each addressed to `targets(unit)`."""
    by_unit: dict[tuple[str, bool], list[Change]] = defaultdict(list)
    for change in changes:
        if change.alert:
            is_muted = muted(change.event.unit, change.event.segment_id)
            by_unit[(change.event.unit, is_muted)].append(change)
    messages = []
    for (unit, is_muted), unit_changes in sorted(by_unit.items()):
        unit_changes.sort(key=lambda c: (SEVERITY[c.alert], -c.event.level, c.event.segment_id))
        lines = [f"⚠️ <b>CẢNH BÁO NGẬP ĐƯỜNG — {_esc(unit_names.get(unit, unit))}</b>"]
        lines.append(f"Thời điểm: {local_time(at, zone)}")
        current = None
        for change in unit_changes:
            if change.alert != current:
                current = change.alert
                lines.append(f"\n<b>{HEADLINE[current]}:</b>")
            lines.append(_line(change, geodata, zone, level_names, at))
        messages.append(
            Message(
                unit=unit,
                kinds=tuple(sorted({c.alert for c in unit_changes}, key=SEVERITY.get)),
                body="\n".join(lines),
                changes=tuple(unit_changes),
                muted=is_muted,
                targets=tuple(targets(unit)),
            )
        )
    return messages
