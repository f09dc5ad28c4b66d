"""Compose alerts: one Vietnamese message per unit per cycle, most severe first.

Messages are Telegram HTML (only <b>, <i> and, with `[web] public_url`, <a href>
on road names; every name escaped); the console prints them as plain text.
Changes for muted segments or units still make an alert, recorded as muted and
sent nowhere.

How a message reads (docs/architecture.md, "Grouping"):
- the header says what kind of news it is: "⚠️ CẢNH BÁO NGẬP ĐƯỜNG" when any line
  warns (water on a road or expected), "🟢 THÔNG BÁO HẾT NGẬP" when every line is
  good news (all clear, forecast cancelled);
- each road's mark is the colour of its level (`core.text.level_mark`: yellow to
  red, the deepest level red), green for good news;
- observed lines say when the water is expected to go down (the forecast's first
  step below the first threshold), or that the forecast does not know;
- a late delivery is marked at send time (`late_line`), since only the sender
  knows when a message really goes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape
from urllib.parse import quote
from zoneinfo import ZoneInfo

from floodwatch.core.events import Change, Message
from floodwatch.core.geo import Geodata
from floodwatch.core.text import (
    ALERT_VI,
    GOOD_TONE,
    TONE_MARK,
    centimetres,
    duration,
    label,
    level_mark,
    local_time,
)

# The kinds of a road alert, most severe first; headlines are the glossary's words in capitals.
ROAD_KINDS = ("onset", "level_up", "reminder", "level_down", "all_clear", "forecast",
              "forecast_update", "forecast_cancelled")  # fmt: skip
HEADLINE = {kind: ALERT_VI[kind].upper() for kind in ROAD_KINDS}
# Order of kinds in a message: what needs action first.
SEVERITY = {kind: rank for rank, kind in enumerate(HEADLINE)}
# Kinds that ask for an acknowledgement and escalate without one.
NEEDS_ACK = frozenset({"onset", "level_up"})
# Kinds that are good news: the water is gone, or no longer expected.
GOOD_NEWS = frozenset({"all_clear", "forecast_cancelled"})
# Kinds about water on the road now: their lines give the expected recession.
OBSERVED_KINDS = frozenset({"onset", "level_up", "reminder", "level_down"})
WARNING_HEADER = "⚠️ <b>CẢNH BÁO NGẬP ĐƯỜNG — {unit}</b>"
ALL_CLEAR_HEADER = "🟢 <b>THÔNG BÁO HẾT NGẬP — {unit}</b>"
CANCELLED_HEADER = "🟢 <b>THÔNG BÁO HUỶ DỰ BÁO NGẬP — {unit}</b>"
NO_RECESSION = "Chưa dự báo được thời gian rút."


@dataclass(frozen=True)
class Wording:
    """What messages need to name things: roads, units, the zone, the levels, the web."""

    geodata: Geodata
    unit_names: Mapping[str, str]
    zone: ZoneInfo
    level_names: Sequence[str]
    public_url: str | None = None  # `[web] public_url`, without a trailing slash
    # Per segment: when its water is expected below the first threshold (None: not known).
    recession: Mapping[str, datetime | None] = field(default_factory=dict)

    @property
    def levels(self) -> int:
        """How many depth levels are configured."""
        return len(self.level_names)

    def unit_name(self, unit: str) -> str:
        """A unit's name (its id when not configured)."""
        return self.unit_names.get(unit, unit)

    def road_url(self, segment_id: str) -> str | None:
        """The road's page on the web (`/roads/ID`), or None without a public URL."""
        if self.public_url is None:
            return None
        return f"{self.public_url}/roads/{quote(segment_id, safe='')}"

    def road(self, segment_id: str, with_ward: bool = True) -> str:
        """The road's name in bold (linked to its page when the web is public), and its ward."""
        segment = self.geodata.segment(segment_id)
        name = f"<b>{_esc(segment.name if segment else segment_id)}</b>"
        url = self.road_url(segment_id)
        if url is not None:
            name = f'<a href="{escape(url, quote=True)}">{name}</a>'
        return f"{name} ({_esc(segment.ward)})" if segment and with_ward else name


def _esc(text: str) -> str:
    """Escape text for Telegram HTML."""
    return escape(text, quote=False)


def day_time(when: datetime, zone: ZoneInfo) -> str:
    """A time and its day, short: `21:00 16/12`."""
    return when.astimezone(zone).strftime("%H:%M %d/%m")


def recession_text(wording: Wording, segment_id: str) -> str:
    """When the water on a road is expected to go down, or that the forecast does not say."""
    when = wording.recession.get(segment_id)
    return NO_RECESSION if when is None else f"Dự kiến rút lúc ~{day_time(when, wording.zone)}."


def _mark(change: Change, levels: int) -> str:
    """The line's coloured circle: green for good news, else its level's colour."""
    if change.alert in GOOD_NEWS:
        return TONE_MARK[GOOD_TONE]
    return level_mark(max(change.event.level, 1), levels)


def _line(change: Change, wording: Wording, at: datetime | None = None) -> str:
    """One line of a message for one segment (with its own time when not the message's)."""
    ev, zone, kind = change.event, wording.zone, change.alert
    road = wording.road(ev.segment_id)
    mark = _mark(change, wording.levels)
    cause = label("cause", ev.cause, empty="")
    because = f", do {cause}" if cause else ""
    names = wording.level_names
    level_name = names[ev.level - 1] if 1 <= ev.level <= len(names) else ""
    advice = f" <i>{_esc(level_name)}</i>" if level_name else ""
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
        f"{because}. {recession_text(wording, ev.segment_id)}{advice}"
    )


def header(kinds: Sequence[str], unit_name: str) -> str:
    """The first line: a warning when any line warns, else the good news it brings."""
    if set(kinds) - GOOD_NEWS:
        template = WARNING_HEADER
    elif "all_clear" in kinds:
        template = ALL_CLEAR_HEADER
    else:
        template = CANCELLED_HEADER
    return template.format(unit=_esc(unit_name))


def _body(unit: str, changes: list[Change], wording: Wording, at: datetime) -> str:
    """The text of one unit's message: header, time, then one section per kind."""
    kinds = [c.alert for c in changes]
    lines = [header(kinds, wording.unit_name(unit)), f"Thời điểm: {local_time(at, wording.zone)}"]
    current = None
    for change in changes:
        if change.alert != current:
            current = change.alert
            lines.append(f"\n<b>{HEADLINE[current]}:</b>")
        lines.append(_line(change, wording, at))
    return "\n".join(lines)


def compose(
    changes: Sequence[Change],
    wording: Wording,
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
        messages.append(
            Message(
                unit=unit,
                kinds=tuple(sorted({c.alert for c in unit_changes}, key=SEVERITY.get)),
                body=_body(unit, unit_changes, wording, at),
                changes=tuple(unit_changes),
                muted=is_muted,
                targets=tuple(targets(unit)),
            )
        )
    return messages


def late_line(
    described_at: datetime, sent_at: datetime, zone: ZoneInfo, late_after: timedelta
) -> str | None:
    """ "⏱ Gửi trễ 2 giờ 10 phút (sự kiện lúc 14:05)" for a message going out more than
    `late_after` after the moment it describes; None when it is on time."""
    delay = sent_at - described_at
    if delay <= late_after:
        return None
    same_day = described_at.astimezone(zone).date() == sent_at.astimezone(zone).date()
    when = local_time(described_at, zone, with_date=not same_day)
    return f"⏱ <b>Gửi trễ {duration(delay)}</b> (sự kiện lúc {when})"
